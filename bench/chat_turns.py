"""Chat turns under concurrency: does waiting on the model block other customers?

Starts the app as `make run` serves it (daphne, one process) but on PostgreSQL, plus the
loopback fake model with a fixed latency, then drives N concurrent customers through the
real HTTP API. Prints turns per second, wall time against the ideal (N turns with model
latency L should take about L, not N x L) and the server's own overhead per turn (total
minus the model's latency), p50 and p95.

Rounds: 200 concurrent plain turns (one model call); 20 turns with two parallel tool calls
(two model calls) sent one at a time, which shows the server's own overhead with no
queue; then 20 and 200 such turns sent at once, which add the wait for one process's CPU.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/chat_turns.py

Rate limits are switched off for the run (every simulated customer shares one IP).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    bench_database_url,
    cpu_seconds,
    free_port,
    percentile,
    recreate_database,
    server_command,
    server_process,
)
from tests.fake_openai import FakeOpenAI  # noqa: E402


async def wait_for_server(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def run_round(
    base: str, customers: int, message: str, model_calls: int, latency: float, pid: int, one_at_a_time: bool = False
) -> dict:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{base}/") as page:
            token = page.cookies["csrftoken"].value
        headers = {"X-CSRFToken": token, "Cookie": f"csrftoken={token}", "Origin": base}

        async def new_session() -> str:
            async with http.post(f"{base}/api/v1/chat/session/new", headers=headers) as response:
                assert response.status == 201, await response.text()
                return (await response.json())["session_id"]

        sessions = await asyncio.gather(*(new_session() for _ in range(customers)))

        async def turn(session_id: str) -> float:
            started = time.perf_counter()
            async with http.post(
                f"{base}/api/v1/chat/message", json={"session_id": session_id, "message": message}, headers=headers
            ) as response:
                body = await response.json()
                assert response.status == 200, body
                assert len(body["tool_calls"]) == (2 if model_calls == 2 else 0), body
            return time.perf_counter() - started

        server_cpu = cpu_seconds(pid)
        started = time.perf_counter()
        if one_at_a_time:  # a server with no queue: its own overhead per turn, nothing else
            durations = [await turn(s) for s in sessions]
        else:
            durations = await asyncio.gather(*(turn(s) for s in sessions))
        wall = time.perf_counter() - started
        server_cpu = cpu_seconds(pid) - server_cpu
    per_turn = model_calls * latency
    ideal = per_turn * (customers if one_at_a_time else 1)
    overheads = [(d - per_turn) * 1000 for d in durations]
    return {
        "customers": f"{customers} in turn" if one_at_a_time else customers,
        "model_calls": model_calls,
        "wall_s": wall,
        "ideal_s": ideal,
        "turns_per_s": customers / wall,
        "overhead_p50_ms": percentile(overheads, 0.50),
        "overhead_p95_ms": percentile(overheads, 0.95),
        "overhead_max_ms": max(overheads),
        "latency_p50_ms": statistics.median(durations) * 1000,
        "server_cpu_ms_per_turn": server_cpu * 1000 / customers,
    }


def responder(body: dict):
    """Plain questions get text; 'two tools' gets two parallel tool calls, then text."""
    items = body.get("input") or []
    last = items[-1] if items else {}
    if last.get("type") == "function_call_output":
        return "Here is what I found."
    text = last.get("content") if isinstance(last.get("content"), str) else ""
    if "two tools" in text:
        return [("resolve_date", {"text": "friday"}), ("get_available_services", {"trade": "HVAC"})]
    return "Happy to help."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200, help="concurrent customers in the big round")
    parser.add_argument("--latency", type=float, default=1.0, help="model latency in seconds")
    parser.add_argument("--tool-customers", type=int, default=20, help="concurrent customers in the two-tool round")
    parser.add_argument("--one-at-a-time", type=int, default=20, help="two-tool turns sent one after another")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    args = parser.parse_args()

    database_url = bench_database_url("chatdesk_bench_chat")
    recreate_database(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RATELIMIT_ENABLE": "0",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX": "20",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo", "--no-bookings"], cwd=ROOT, env=env, check=True, capture_output=True
    )

    with FakeOpenAI() as fake:
        fake.latency = args.latency
        fake.respond_with(responder)
        env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake.base_url)
        port = free_port()
        venv_bin = Path(python).parent
        command = server_command(args.server, port)
        if os.environ.get("BENCH_PROFILE"):  # e.g. BENCH_PROFILE=/tmp/profile.txt: sample the server with py-spy
            profile = os.environ["BENCH_PROFILE"]
            command = [str(venv_bin / "py-spy"), "record", "-r", "200", "-f", "raw", "-o", profile, "--", *command]
        with server_process(command, env, ROOT) as server:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_for_server(f"{base}/"))
            asyncio.run(run_round(base, 10, "warm up", 1, args.latency, server.pid))  # warm pools and imports
            results = []
            for customers, message, calls, one_at_a_time in (
                (args.customers, "hello", 1, False),
                (args.one_at_a_time, "two tools please", 2, True),
                (args.tool_customers, "two tools please", 2, False),
                (args.customers, "two tools please", 2, False),
            ):
                own_cpu = time.process_time()
                result = asyncio.run(
                    run_round(base, customers, message, calls, args.latency, server.pid, one_at_a_time)
                )
                result["load_cpu_ms_per_turn"] = (time.process_time() - own_cpu) * 1000 / customers
                results.append(result)

    print(f"server: {args.server}, one process, {os.cpu_count()} cores; model latency {args.latency:.2f} s (fake)")
    print("   customers  model calls  wall s  ideal s  turns/s  overhead p50 ms  p95 ms  max ms  server CPU ms/turn*")
    for r in results:
        print(
            f"{r['customers']:>12}  {r['model_calls']:>11}  {r['wall_s']:>6.2f}  {r['ideal_s']:>7.2f}  "
            f"{r['turns_per_s']:>7.1f}  {r['overhead_p50_ms']:>15.1f}  {r['overhead_p95_ms']:>6.1f}  "
            f"{r['overhead_max_ms']:>6.1f}  {r['server_cpu_ms_per_turn']:>19.1f}"
        )
    print("* CPU time of the server process during the timed turns, divided by the turns.")
    print(f"  The load generator + fake model process used {results[0]['load_cpu_ms_per_turn']:.1f} ms CPU per turn")
    print("  (including session creation, which is not timed).")


if __name__ == "__main__":
    main()
