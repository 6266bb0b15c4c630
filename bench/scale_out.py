"""Scale measured (issue 13): the production recipe with 1 and with 2 workers, in one sitting.

Starts the recipe of tests/fleet.py for real: two uvicorn workers with the systemd unit's options,
on PostgreSQL (a database of the benchmark's own) and Redis (REDIS_URL_FOR_TESTS), the loopback
fake OpenAI, and two nginx instances rendered from deploy/nginx/: one whose upstream is worker 1
only, one with both workers. Every request goes through nginx. The configurations take turns
(1, 2, 1, 2, ...) so that the outside load of this shared machine hits both alike. Prints:

- burst: N customers (200) each send one turn at once, one model call each, model latency L (1 s):
  wall time, turns per second (N / wall), and the ratio 2 workers : 1 worker (goal >= 1.7);
  the wall time with 2 workers is the goal "200 concurrent 1 s turns within 1.5 s";
- sustained: N customers (300) send turns back to back for S seconds (closed loop): turns per
  second completed, and the ratio 2 : 1;
- voice: N calls (200) through nginx at 40 ms frames, both directions stamped (bench/voice_relay.py's
  browsers and fake Realtime): p50/p95 latency, i.e. what nginx + the relay add (goal p95 <= 20 ms);
- rolling restart: tests/test_rolling_restart.py's customers (chat.js's retry rules) chat while
  each worker in turn is SIGTERMed, drains and restarts: requests failed, messages lost (goal 0, 0);
- for every round: the 1-minute load average before and after, and the CPU seconds used by each
  part (the workers, nginx, this database's PostgreSQL backends, the Redis server, the fake model,
  the load generator), so it shows whether the load generator is the bottleneck;
- the floor of this machine (its cores / the CPU every part needs per turn) against each goal.

The load generator runs in a child process of its own (chat) or in this process (voice, while the
chat fake idles), the voice fake in another: each part's CPU is read from /proc/<pid>/stat.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk \\
    REDIS_URL_FOR_TESTS=redis://127.0.0.1:6379/0 .venv/bin/python bench/scale_out.py

`--quick` runs every piece at a toy size (10 turns, 10 calls for 2 s, no rolling restart), as the
smoke test does. Figures from a machine shared with other work are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, percentile, setup_django  # noqa: E402

# --- CPU per part ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The direct children of a process (nginx's worker processes), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def safe_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


class Parts:
    """Which processes make up each part; `snapshot()` reads their CPU seconds now."""

    def __init__(self) -> None:
        self.pids: dict[str, Callable[[], list[int]]] = {}

    def add(self, name: str, pids: Callable[[], list[int]]) -> None:
        self.pids[name] = pids

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {name: {pid: safe_cpu(pid) for pid in pids()} for name, pids in self.pids.items()}

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds per part between two snapshots (a process born in between counts from 0)."""
        return {
            name: sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in after[name].items()) for name in after
        }


# Parts on the server's side of the wire; the rest (fake model, load generator) is the test rig.
SERVER_PARTS = ("workers", "nginx", "postgres", "redis")


@dataclass
class Measure:
    kind: str
    workers: int
    count: int  # turns or calls
    wall: float
    load_before: float
    load_after: float
    cpu: dict[str, float]
    figures: dict[str, float] = field(default_factory=dict)
    machine: dict[str, float] = field(default_factory=dict)  # whole machine, in cores (from /proc/stat)
    after_split: float = float("nan")  # CPU seconds of every part after the model's first answers

    def cpu_line(self) -> str:
        parts = "  ".join(f"{name} {seconds / self.wall:.2f}" for name, seconds in self.cpu.items())
        ours = sum(self.cpu.values()) / self.wall
        machine = f"; the machine: {self.machine['busy']:.2f} of {self.machine['cores']:.1f} busy, others' work"
        return f"cores used: {parts}  (ours {ours:.2f}{machine} {self.machine['others']:.2f})"


# --- the chat load generator, in a process of its own ------------------------------------------------


def chat_client(control: multiprocessing.connection.Connection) -> None:
    """Commands from the pipe: ('burst'|'sustained', base url, customers, seconds) -> results."""
    import aiohttp

    async def run(kind: str, base: str, customers: int, seconds: float) -> dict:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=180)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async with http.get(f"{base}/") as page:
                token = page.cookies["csrftoken"].value
            headers = {"X-CSRFToken": token, "Cookie": f"csrftoken={token}", "Origin": base}

            async def new_session() -> str:
                async with http.post(f"{base}/api/v1/chat/session/new", headers=headers) as response:
                    assert response.status == 201, await response.text()
                    return (await response.json())["session_id"]

            sessions = await asyncio.gather(*(new_session() for _ in range(customers)))
            errors: Counter = Counter()

            async def turn(session_id: str, number: int) -> float | None:
                started = time.perf_counter()
                body = {"session_id": session_id, "message": f"hello {number}"}
                async with http.post(f"{base}/api/v1/chat/message", json=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors[response.status] += 1
                        return None
                return time.perf_counter() - started

            control.send("ready")
            assert control.recv() == "go"
            cpu = time.process_time()
            started = time.perf_counter()
            if kind == "burst":
                durations = await asyncio.gather(*(turn(s, 0) for s in sessions))
                finished = [time.perf_counter() - started]
            else:  # closed loop: each customer sends its next message as soon as it has the answer
                durations, finished = [], []
                deadline = started + seconds

                async def customer(session_id: str) -> None:
                    number = 0
                    while time.perf_counter() < deadline:
                        number += 1
                        took = await turn(session_id, number)
                        durations.append(took)
                        finished.append(time.perf_counter() - started)

                await asyncio.gather(*(customer(s) for s in sessions))
            wall = time.perf_counter() - started
            return {
                "wall": wall,
                "durations": [d for d in durations if d is not None],
                "finished": finished,
                "errors": dict(errors),
                "client_cpu": time.process_time() - cpu,
            }

    while True:
        command = control.recv()
        if command == "stop":
            return
        control.send(asyncio.run(run(*command)))


# --- the rounds --------------------------------------------------------------------------------------


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core, from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks[:8])  # guest time is already inside user
    hertz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hertz, total / hertz


def measure(
    parts: Parts,
    kind: str,
    workers: int,
    count: int,
    run: Callable[[], dict],
    ready: Callable[[], None] | None = None,
    split_at: float | None = None,
) -> tuple[Measure, dict]:
    """Run one round between two CPU snapshots; `ready` waits for the untimed set-up first.

    With `split_at` (the model latency), a third snapshot that many seconds into the round: the CPU
    used after it is the work that had to wait for the model's first answers.
    """
    if ready:
        ready()
    load_before = os.getloadavg()[0]
    busy_before = machine_busy_seconds()
    before = parts.snapshot()
    middle: list[dict] = []
    timer = threading.Timer(split_at, lambda: middle.append(parts.snapshot())) if split_at else None
    started = time.perf_counter()
    if timer:
        timer.start()
    result = run()
    wall = time.perf_counter() - started
    after = parts.snapshot()
    busy_after = machine_busy_seconds()
    if timer:
        timer.join()
    used = Parts.used(before, after)
    measured = Measure(kind, workers, count, wall, load_before, os.getloadavg()[0], used)
    busy = busy_after[0] - busy_before[0]
    measured.machine = {
        "cores": (busy_after[1] - busy_before[1]) / wall,
        "busy": busy / wall,
        "others": max(0.0, busy - sum(used.values())) / wall,
    }
    if middle:
        measured.after_split = sum(Parts.used(middle[0], after).values())
    return measured, result


def chat_round(
    parts: Parts, control, base: str, workers: int, kind: str, customers: int, seconds: float, latency: float
) -> Measure:
    control.send((kind, base, customers, seconds))

    def ready() -> None:
        assert control.recv() == "ready"

    def run() -> dict:
        control.send("go")
        return control.recv()

    split = latency if kind == "burst" else None
    result_measure, result = measure(parts, kind, workers, customers, run, ready, split)
    result_measure.cpu["load generator"] = result["client_cpu"]
    result_measure.machine["others"] = max(
        0.0, result_measure.machine["others"] - result["client_cpu"] / result_measure.wall
    )
    durations = result["durations"]
    overheads = [(d - latency) * 1000 for d in durations]
    figures = {
        "errors": sum(result["errors"].values()),
        "p50_ms": percentile(overheads, 0.5),
        "p95_ms": percentile(overheads, 0.95),
    }
    if kind == "burst":
        figures["wall_s"] = result["wall"]
        figures["turns_per_s"] = len(durations) / result["wall"]
        result_measure.count = len(durations)
    else:
        # Counted after the first model latency + 1 s: the opening burst of every customer at once
        # is the burst round's figure, not a steady rate.
        skip = latency + 1.0
        steady = [t for t in result["finished"] if skip <= t <= seconds]
        figures["turns_per_s"] = len(steady) / max(1e-9, seconds - skip)
        result_measure.count = len(result["finished"])
    result_measure.figures = figures
    return result_measure


def voice_round(parts: Parts, voice_control, url: str, workers: int, calls: int, seconds: float) -> Measure:
    from bench import voice_relay

    def run() -> dict:
        result = asyncio.run(voice_relay.run_round(url, f"{workers}w", os.getpid(), calls, seconds))
        voice_control.send("collect")
        first, last = result.window
        samples = [(sent, latency) for sent, latency in voice_control.recv() if first <= sent <= last]
        result.uplink = [latency for _, latency in samples]
        return {"round": result}

    result_measure, result = measure(parts, "voice", workers, calls, run)
    voice = result["round"]
    result_measure.figures = {
        "failed": voice.failed,
        "up_p50_ms": voice.p("uplink", 50),
        "up_p95_ms": voice.p("uplink", 95),
        "down_p50_ms": voice.p("downlink", 50),
        "down_p95_ms": voice.p("downlink", 95),
        "worst_p95_ms": voice.worst_p95,
    }
    return result_measure


def rolling_restart(fleet) -> dict:
    """tests/test_rolling_restart.py's scenario, with its customers, on the 2-worker fleet."""
    import aiohttp

    from chatdesk.conversations.models import Message
    from tests.fake_openai import last_user_text
    from tests.test_rolling_restart import (
        CUSTOMERS,
        FLEET_ENV,
        MODEL_SECONDS,
        NGINX_FAIL_TIMEOUT,
        Customer,
        Traffic,
        wait_ready,
    )

    for worker in fleet.workers:
        worker.restart(FLEET_ENV)
    fleet.fake.latency = MODEL_SECONDS
    fleet.fake.respond_with(lambda body: f"Re: {last_user_text(body)}")
    traffic = Traffic()
    drains: list[tuple[str, float, int | None]] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        sessions = [
            aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(force_close=True)
            )
            for _ in range(CUSTOMERS)
        ]
        try:
            customers = [
                asyncio.create_task(Customer(fleet, http, traffic).chat(n, stop)) for n, http in enumerate(sessions)
            ]
            await asyncio.sleep(2)
            for worker in fleet.workers:
                signalled = time.monotonic()
                worker.terminate()
                code = await asyncio.to_thread(worker.wait)
                drains.append((worker.name, time.monotonic() - signalled, code))
                await asyncio.to_thread(worker.start, FLEET_ENV)
                await wait_ready(worker.url)
                await asyncio.sleep(NGINX_FAIL_TIMEOUT + 1)
            stop.set()
            await asyncio.gather(*customers)
        finally:
            for http in sessions:
                await http.close()

    asyncio.run(scenario())
    rows = Message.objects.filter(client_message_id__in=list(traffic.sent))
    stored = Counter(rows.filter(role=Message.Role.CUSTOMER).values_list("client_message_id", flat=True))
    replies = Counter(rows.filter(role=Message.Role.ASSISTANT).values_list("client_message_id", flat=True))
    lost = sum(1 for message_id in traffic.sent if stored[message_id] != 1 or replies[message_id] != 1)
    wrong = sum(1 for m, text in traffic.sent.items() if traffic.answered.get(m) != f"Re: {text}")
    nginx_unavailable = sum(
        n for answer, n in traffic.answers.items() if str(answer).startswith(("502", "503 service_unavailable"))
    )
    return {
        "messages": len(traffic.sent),
        "failed": len(traffic.failed),
        "lost": lost,
        "wrong_reply": wrong,
        "nginx_unavailable": nginx_unavailable,
        "answers": dict(traffic.answers),
        "served_by": dict(traffic.served_by),
        "drains": [(name, round(seconds, 2), code) for name, seconds, code in drains],
    }


# --- the report --------------------------------------------------------------------------------------


def median(measures: list[Measure], key: str) -> float:
    values = [m.figures[key] for m in measures]
    return statistics.median(values) if values else float("nan")


def cpu_per(measures: list[Measure], names: tuple[str, ...] | None = None) -> float:
    """Median CPU seconds per turn (or call) of the named parts (all parts when None)."""
    values = [sum(s for n, s in m.cpu.items() if names is None or n in names) / max(1, m.count) for m in measures]
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report(rounds: list[Measure], restart: dict | None, args: argparse.Namespace, cores: int) -> list[str]:
    lines: list[str] = []
    say = lines.append
    say(f"{cores} cores, shared with other work: every figure is an upper bound (load averages shown).")
    say(f"model latency {args.latency:.2f} s (fake); {args.repeat} rounds per configuration, taking turns")
    say("")
    say("round      workers  count  wall s  load before/after  figures")
    for m in rounds:
        figures = "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.figures.items())
        load = f"{m.load_before:6.2f} / {m.load_after:<6.2f}"
        say(f"{m.kind:<10} {m.workers:>7}  {m.count:>5}  {m.wall:6.2f}  {load}  {figures}")
        say(f"{'':<10}    {m.cpu_line()}")
    say("")

    def pick(kind: str, workers: int) -> list[Measure]:
        return [m for m in rounds if m.kind == kind and m.workers == workers]

    burst1, burst2 = pick("burst", 1), pick("burst", 2)
    steady1, steady2 = pick("sustained", 1), pick("sustained", 2)
    voice1, voice2 = pick("voice", 1), pick("voice", 2)
    goals: list[tuple[str, str, bool]] = []
    if burst1 and burst2:
        t1, t2 = median(burst1, "turns_per_s"), median(burst2, "turns_per_s")
        wall2 = median(burst2, "wall_s")
        goals.append(
            (
                f"burst turns/s ratio 2:1 >= 1.7 ({args.customers} turns)",
                f"{t2:.1f}/{t1:.1f} = {t2 / t1:.2f}",
                t2 / t1 >= 1.7,
            )
        )
        goals.append(
            (
                f"{args.customers} concurrent {args.latency:g} s turns within 1.5 s, 2 workers",
                f"{wall2:.2f} s (1 worker: {median(burst1, 'wall_s'):.2f} s)",
                wall2 <= 1.5,
            )
        )
    if steady1 and steady2:
        t1, t2 = median(steady1, "turns_per_s"), median(steady2, "turns_per_s")
        goals.append(
            (
                f"sustained turns/s ratio 2:1 >= 1.7 ({args.sustained_customers} customers)",
                f"{t2:.1f}/{t1:.1f} = {t2 / t1:.2f}",
                t2 / t1 >= 1.7,
            )
        )
    if voice2:
        p2 = median(voice2, "worst_p95_ms")
        p1 = f" (1 worker: {median(voice1, 'worst_p95_ms'):.1f} ms)" if voice1 else ""
        failed = sum(m.figures["failed"] for m in voice2)
        goals.append(
            (
                f"{args.calls} calls, p95 added <= 20 ms, 2 workers",
                f"{p2:.1f} ms worst direction{p1}, {failed} failed",
                p2 <= 20 and not failed,
            )
        )
    if restart:
        goals.append(
            (
                "rolling restart: 0 failed requests, 0 lost messages",
                f"{restart['failed']} failed, {restart['lost']} lost of {restart['messages']}",
                restart["failed"] == 0 and restart["lost"] == 0,
            )
        )
    say("goal                                                          measured                                  met?")
    for goal, measured, ok in goals:
        say(f"{goal:<62}{measured:<56} {verdict(ok)}")
    if restart:
        say(f"  rolling restart: answers {restart['answers']}; served by {restart['served_by']}")
        say(f"  drains (worker, seconds from SIGTERM to exit, exit code): {restart['drains']}")
        say(f"  load average before/after: {restart['load'][0]:.2f} / {restart['load'][1]:.2f}")
    say("")

    # The floor: what this machine's cores allow, from the CPU every part used per turn.
    if burst1 and burst2:
        everything = cpu_per(burst2)
        server = cpu_per(burst2, SERVER_PARTS)
        worker = cpu_per(burst2, ("workers",))
        rig = everything - server
        say("CPU per turn (2-worker bursts, median): "
            f"workers {worker * 1000:.1f} ms, server side (workers+nginx+postgres+redis) {server * 1000:.1f} ms, "
            f"fake model + load generator {rig * 1000:.1f} ms, all {everything * 1000:.1f} ms")  # fmt: skip
        n, latency = args.customers, args.latency
        post = statistics.median(m.after_split / max(1e-9, sum(m.cpu.values())) for m in burst2)
        say(f"Share of that CPU spent after the model's first answers ({latency:g} s into the round): {post:.0%}")
        say(f"Floor of {n} turns at once on {cores} cores of our own: the model's {latency:g} s, then the work that "
            f"waits for its answers ({n} x {everything * 1000:.1f} ms x {post:.0%}) on {cores} cores: "
            f"{latency + n * everything * post / cores:.2f} s; with the fake model and load generator on another "
            f"machine: {latency + n * server * post / cores:.2f} s (goal 1.5 s)")  # fmt: skip
        # One worker is one process: at most one core. Two share the cores with everything else.
        ratio_all = min(2.0, cores * worker / everything)
        ratio_server = min(2.0, cores * worker / server)
        say(f"Ceiling of the 2:1 ratio on {cores} cores of our own: 1 worker <= 1 core / {worker * 1000:.1f} ms = "
            f"{1 / worker:.0f} turns/s; 2 workers <= {cores} cores / {everything * 1000:.1f} ms = "
            f"{cores / everything:.0f} turns/s: ratio <= {ratio_all:.2f}; without the test rig on these cores: "
            f"<= {ratio_server:.2f} (goal 1.7)")  # fmt: skip
        others = statistics.median(m.machine["others"] for m in rounds if m.machine)
        say(f"Other work on the machine took a median {others:.2f} of its {cores} cores during the rounds.")
    for kind in dict.fromkeys(m.kind for m in rounds):
        of_kind = [m for m in rounds if m.kind == kind]
        single = max(max(m.cpu.get("load generator", 0), m.cpu.get("fake model", 0)) / m.wall for m in of_kind)
        rig = statistics.median((m.cpu.get("load generator", 0) + m.cpu.get("fake model", 0)) / m.wall for m in of_kind)
        server = statistics.median(sum(m.cpu.get(p, 0) for p in SERVER_PARTS) / m.wall for m in of_kind)
        # Each rig process is one Python event loop: near 1.0 core it would be the limit itself.
        saturated = "SATURATED: it is the bottleneck" if single > 0.8 else "none saturated"
        say(f"Test rig during {kind}: fake model + load generator {rig:.2f} cores (busiest process {single:.2f}: "
            f"{saturated}) against the server side's {server:.2f}; on {cores} cores it takes "
            f"{rig / max(1e-9, rig + server):.0%} of what this benchmark gets")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200, help="turns sent at once in the burst rounds")
    parser.add_argument("--sustained-customers", type=int, default=300, help="customers in the closed-loop rounds")
    parser.add_argument("--sustained-seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=1.0, help="model latency in seconds")
    parser.add_argument("--calls", type=int, default=200, help="concurrent voice calls")
    parser.add_argument("--voice-seconds", type=float, default=8.0, help="measured seconds per voice round")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per configuration, taking turns")
    parser.add_argument("--no-restart", action="store_true", help="skip the rolling restart")
    parser.add_argument("--database", default="chatdesk_bench_scale", help="the database it recreates")
    parser.add_argument("--quick", action="store_true", help="every piece at a toy size (a smoke test)")
    parser.add_argument("--output", help="also write the report to this file")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.sustained_customers, args.sustained_seconds = 10, 10, 3.0
        args.calls, args.voice_seconds, args.repeat, args.no_restart = 10, 2.0, 1, True

    # This process uses Django too: the rolling restart counts the stored messages.
    database_url = setup_django(args.database, RATELIMIT_ENABLE="0")
    from django.core.management import call_command

    call_command("seed_demo", "--no-bookings", verbosity=0)
    from django.db import connections

    connections.close_all()  # the workers migrate nothing, but let nothing hold a connection

    import redis

    from bench import chat_turns, voice_relay
    from tests.fleet import Fleet, Nginx

    redis_url = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")
    redis_client = redis.Redis.from_url(redis_url)
    redis_client.flushdb()  # fails (never skips) when Redis is unreachable
    env = {
        "RATELIMIT_ENABLE": "0",  # every simulated customer is 127.0.0.1
        "VOICE_LIMITS_ENABLE": "0",
        "VOICE_GREET_FIRST": "1",  # the fake then streams audio back from the start of each call
        "DB_POOL_MAX": "15",  # two workers: 30 of the server's 100 connections, which others share
    }
    cores = len(os.sched_getaffinity(0))
    rounds: list[Measure] = []
    restart = None
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="chatdesk-scale-") as directory, Fleet(
        directory, database_url=database_url, redis_url=redis_url, workers=2, env=env
    ) as fleet:  # fmt: skip
        # A second nginx whose upstream is worker 1 only: the 1-worker configuration.
        solo = Nginx(Path(directory) / "nginx-solo", [fleet.workers[0].port], fleet.static_root).start()
        fronts = {1: f"http://127.0.0.1:{solo.port}", 2: fleet.url}
        parts = Parts()
        parts.add("workers", lambda: [w.pid for w in fleet.workers if w.pid])
        parts.add("nginx", lambda: [p for n in (solo, fleet.nginx) for p in [n.process.pid, *children(n.process.pid)]])
        dbname = urlsplit(database_url).path.lstrip("/")

        def backends() -> list[int]:
            import psycopg

            maintenance = database_url.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(maintenance, autocommit=True) as conn:
                rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchall()
            return [pid for (pid,) in rows]

        parts.add("postgres", backends)
        redis_pid = int(redis_client.info("server")["process_id"])
        parts.add("redis", lambda: [redis_pid])  # the server is shared: others' use counts too
        parts.add("fake model", lambda: [os.getpid()])  # the chat fake's threads live in this process
        fleet.fake.latency = args.latency
        fleet.fake.respond_with(chat_turns.responder)

        control, child = spawn.Pipe()
        client = spawn.Process(target=chat_client, args=(child,), daemon=True)
        client.start()
        try:
            print(f"load average at start {os.getloadavg()[0]:.2f}", file=sys.stderr)
            for workers in (1, 2):  # warm up each front (imports, pools)
                chat_round(parts, control, fronts[workers], workers, "burst", 10, 0, args.latency)
            for _ in range(args.repeat):
                for workers in (1, 2):
                    m = chat_round(parts, control, fronts[workers], workers, "burst", args.customers, 0, args.latency)
                    rounds.append(m)
                    print(f"  burst {workers}w: {m.figures} load {m.load_before:.2f}", file=sys.stderr)
            for _ in range(args.repeat):
                for workers in (1, 2):
                    m = chat_round(parts, control, fronts[workers], workers, "sustained", args.sustained_customers,
                                   args.sustained_seconds, args.latency)  # fmt: skip
                    rounds.append(m)
                    print(f"  sustained {workers}w: {m.figures} load {m.load_before:.2f}", file=sys.stderr)
            fleet.fake.requests.clear()
        finally:
            control.send("stop")
            client.join(10)

        # Voice: the workers call bench/voice_relay.py's stamped fake Realtime (its own process).
        voice_control, voice_child = spawn.Pipe()
        voice_fake = spawn.Process(target=voice_relay.fake_process, args=(voice_child,), daemon=True)
        voice_fake.start()
        voice_url = voice_control.recv()
        try:
            for worker in fleet.workers:
                worker.restart({"OPENAI_BASE_URL": voice_url})
            parts.pids["fake model"] = lambda: [voice_fake.pid]
            parts.add("load generator", lambda: [os.getpid()])  # this process: the browsers
            calls_url = {w: f"{fronts[w].replace('http://', 'ws://')}/api/v1/chat/voice/call" for w in fronts}
            for workers in (1, 2):  # warm up
                asyncio.run(voice_relay.run_round(calls_url[workers], "warm", os.getpid(), 5, 1.0))
            voice_control.send("collect")
            voice_control.recv()
            for _ in range(args.repeat):
                for workers in (1, 2):
                    m = voice_round(parts, voice_control, calls_url[workers], workers, args.calls, args.voice_seconds)
                    rounds.append(m)
                    print(f"  voice {workers}w: {m.figures} load {m.load_before:.2f}", file=sys.stderr)
        finally:
            voice_control.send("stop")
            voice_fake.join(10)
            del parts.pids["load generator"]
            parts.pids["fake model"] = lambda: [os.getpid()]
            for worker in fleet.workers:
                worker.restart()  # back on the chat fake

        if not args.no_restart:
            load_before = os.getloadavg()[0]
            restart = rolling_restart(fleet)
            restart["load"] = (load_before, os.getloadavg()[0])
            print(f"  rolling restart: {restart}", file=sys.stderr)
        solo.stop()

    lines = report(rounds, restart, args, cores)
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
