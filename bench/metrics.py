"""What the metrics cost: CPU per chat turn for the counting, and the time of one scrape.

1. Per turn: the metric updates a two-tool model turn makes (three model requests timed, two
   tool calls counted on commit, the turn counted and timed, the conversation put in the log
   context) plus the request-id middleware around its request, repeated in one process; with
   PROMETHEUS_MULTIPROC_DIR (each update writes to a memory-mapped file) and without it. Read
   against the ~9 ms of server CPU a turn costs (BENCHMARKS.md, "Chat turns").
2. Per voice frame: one relay latency observation (every audio frame, both ways).
3. Per log line: one JSON line through the scrubbing formatter.
4. A scrape: GET /metrics's work (merge every worker's files, read the database's facts, write
   the text) for 2, 8 and 32 worker processes' files, each worker having used every label
   value our code can produce (the series count is printed); 32 is what a host accumulates
   after many restarts, since a dead worker's counter files stay until the directory is
   emptied at service start.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/metrics.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

DATABASE = "chatdesk_bench_metrics"
TOOLS = [
    "get_available_services",
    "get_service_details",
    "get_technician_availability",
    "get_available_time_slots",
    "create_booking",
    "get_booking_info",
    "cancel_booking",
    "reschedule_booking",
    "resolve_date",
    "request_human",
    "unknown",
]
TOOL_OUTCOMES = ["ok", "invalid_input", "slot_unavailable", "not_found", "too_many_tool_calls"]

# Every label value our code produces, written by one simulated worker process.
WRITER = f"""
import os, signal, sys
from chatdesk.observability import metrics as m
for tool in {TOOLS!r}:
    for outcome in {TOOL_OUTCOMES!r}:
        m.count_tool_call(tool=tool, outcome=outcome)
for channel in ("chat", "voice"):
    for mode in ("model", "guided"):
        for outcome in ("answered", "model_failed", "limited", "paused", "interrupted"):
            m.count_turn(channel=channel, mode=mode, outcome=outcome, seconds=0.8)
for api in ("responses", "realtime"):
    for kind in m.MODEL_ERROR_KINDS:
        m.count_model_error(api=api, kind=kind)
for ok in (True, False):
    m.observe_model_request(1.2, ok=ok)
for reason in ("customer_hung_up", "client_disconnected", "idle", "max_duration", "upstream_error",
               "limit_reached", "bad_frame", "server_shutdown", "voice_unavailable", "server_error"):
    m.count_voice_call(reason)
m.VOICE_REPLY_SECONDS.observe(0.9)
m.RELAY_UPLINK.observe(0.001)
m.RELAY_DOWNLINK.observe(0.001)
m.voice_call_admitted()
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def per_turn(repeats: int) -> dict[str, float]:
    """Microseconds of CPU per turn for the metric updates, per relay frame and per log line."""
    import asyncio
    import logging

    from chatdesk.assistant.tools import _count_on_commit
    from chatdesk.log_lines import ContextFilter, JsonFormatter
    from chatdesk.observability import context, metrics
    from chatdesk.request_ids import RequestIdMiddleware

    def turn() -> None:
        with context.conversation("INT-2026-000123"):
            for _ in range(3):
                metrics.observe_model_request(0.9, ok=True)
            _count_on_commit("get_available_time_slots", "")
            _count_on_commit("create_booking", "")
            metrics.count_turn(channel="chat", mode="model", outcome="answered", seconds=2.7)

    def timed(fn, n: int) -> float:
        start = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - start) / n * 1e6

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def noop(message):
        return None

    scope = {"type": "http", "headers": [(b"host", b"x")], "client": ("127.0.0.1", 1)}

    async def requests(handler, n: int) -> float:
        start = time.process_time()
        for _ in range(n):
            await handler(scope, None, noop)
        return (time.process_time() - start) / n * 1e6

    turn()  # first use creates the series
    results = []
    for _ in range(5):
        bare = asyncio.run(requests(app, repeats))
        wrapped = asyncio.run(requests(RequestIdMiddleware(app), repeats))
        results.append((timed(turn, repeats), wrapped - bare))
    updates = statistics.median(r[0] for r in results)
    middleware = statistics.median(r[1] for r in results)

    args = ("INT-2026-000123", "timeout: call me at 416-555-0142")
    record = logging.LogRecord(
        "chatdesk.assistant.turns", logging.WARNING, __file__, 1, "Model unavailable for %s: %s", args, None
    )
    formatter, context_filter = JsonFormatter(), ContextFilter()

    def relay_frame() -> None:
        metrics.RELAY_DOWNLINK.observe(0.0012)

    def log_line() -> None:
        context_filter.filter(record)
        formatter.format(record)

    return {
        "turn_updates_us": updates,
        "request_id_middleware_us": middleware,
        "turn_total_us": updates + middleware,
        "relay_frame_us": statistics.median(timed(relay_frame, repeats) for _ in range(5)),
        "json_log_line_us": statistics.median(timed(log_line, repeats // 10) for _ in range(5)),
    }


def scrape_time(repeats: int) -> dict[str, float]:
    """Milliseconds (wall) of one /metrics render, and the series it reports."""
    from chatdesk.metrics_view import render

    times = []
    body = b""
    for _ in range(repeats):
        start = time.perf_counter()
        body = render()
        times.append((time.perf_counter() - start) * 1000)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {"median_ms": statistics.median(times), "max_ms": max(times), "series": series, "bytes": len(body)}


def child(part: str, repeats: int) -> None:
    import django

    django.setup()
    result = per_turn(repeats) if part == "turn" else scrape_time(repeats)
    print(json.dumps(result))


def run_child(part: str, repeats: int, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", part, "--repeats", str(repeats)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["turn", "scrape"])
    parser.add_argument("--repeats", type=int, default=20000)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats)
        return

    common.setup_django(DATABASE)  # migrated once; the children reuse it
    from chatdesk.conversations.models import Conversation, HandoffRequest

    # A busy moment: 300 open conversations, 20 people waiting for a person.
    rows = Conversation.objects.bulk_create(Conversation(number=f"INT-2026-{i:06d}") for i in range(300))
    HandoffRequest.objects.bulk_create(HandoffRequest(conversation=row, reason="call me") for row in rows[:20])
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}

    print("Per chat turn (two tool calls, three model requests): CPU of the metric updates + request id")
    for label, extra in (("one process", {}), ("multiprocess", {"PROMETHEUS_MULTIPROC_DIR": ""})):
        with tempfile.TemporaryDirectory() as directory:
            if "PROMETHEUS_MULTIPROC_DIR" in extra:
                extra = {"PROMETHEUS_MULTIPROC_DIR": directory}
            r = run_child("turn", args.repeats, {**env, **extra})
        print(
            f"  {label:13} {r['turn_total_us']:6.1f} us per turn ({r['turn_updates_us']:.1f} metrics + "
            f"{r['request_id_middleware_us']:.1f} request id); relay frame {r['relay_frame_us']:.2f} us; "
            f"JSON log line {r['json_log_line_us']:.1f} us"
        )

    print("One scrape of /metrics (merge the workers' files, read the database, write the text)")
    for workers in (2, 8, 32):
        with tempfile.TemporaryDirectory() as directory:
            writer_env = {**env, "PROMETHEUS_MULTIPROC_DIR": directory}
            for index in range(workers):
                # Half of them killed: their live gauges are swept during the first scrape.
                how = "killed" if index % 2 else "exited"
                subprocess.run([sys.executable, "-c", WRITER, how], cwd=ROOT, env=writer_env, check=False)
            r = run_child("scrape", 30, writer_env)
        print(
            f"  {workers:2} workers' files: {r['median_ms']:6.1f} ms median, {r['max_ms']:6.1f} ms max, "
            f"{r['series']} series, {r['bytes'] / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
