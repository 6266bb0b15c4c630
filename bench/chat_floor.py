"""What one chat turn cannot go below on this machine: the fixed CPU costs under a turn.

bench/chat_turns.py measures whole turns. This script measures, in one process and one
at a time, the pieces every turn pays whatever our code does, so a turn's server CPU can
be read against them:

- an empty async JSON view through our ASGI handler and the full middleware stack
  (no HTTP server: the handler's own cost), and through Django's stock handler, their
  repeats alternating,
- the same with one trip to a worker thread (every turn makes two),
- one trip to a worker thread that runs one SQL statement on a pooled connection,
- one model call through the SDK as chatdesk.assistant.openai_client makes it (its client CPU), against
  the loopback fake model, and the same request with plain aiohttp for comparison.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/chat_floor.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

FAKE_MODEL = """
import time
from tests.fake_openai import FakeOpenAI
with FakeOpenAI(default_text="Happy to help.") as fake:
    print(fake.base_url, flush=True)
    time.sleep(3600)
"""
RUNS = int(os.environ.get("BENCH_RUNS", "400"))
REPEATS = 5  # the figure is the median of the repeats' means (this machine's speed drifts)


def setup() -> None:
    common.setup_django("chatdesk_bench_floor", DEBUG="0", SECURE_SSL_REDIRECT="0", ALLOWED_HOSTS="testserver")


async def cpu_ms(calls: dict[str, Callable[[], Awaitable]], results: dict[str, float]) -> None:
    """CPU ms per call of each of `calls`; their repeats alternate, so the machine's drift hits all alike."""
    for call in calls.values():
        for _ in range(20):
            await call()
    means: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(REPEATS):
        for label, call in calls.items():
            started = time.process_time()
            for _ in range(RUNS):
                await call()
            means[label].append((time.process_time() - started) * 1000 / RUNS)
    for label, values in means.items():
        results[label] = statistics.median(values)


async def measure() -> dict[str, float]:
    import aiohttp
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.db import connection
    from django.http import JsonResponse
    from django.urls import clear_url_caches, path
    from django.utils import timezone

    import chatdesk.urls
    from chatdesk.asgi import application
    from chatdesk.assistant import openai_client
    from chatdesk.assistant.prompts import system_prompt
    from chatdesk.assistant.tools import tool_definitions
    from chatdesk.conversations import model_items, services

    async def empty(request):
        return JsonResponse({"ok": True})

    async def one_hop(request):
        await sync_to_async(lambda: None, thread_sensitive=False)()
        return JsonResponse({"ok": True})

    chatdesk.urls.urlpatterns += [path("bench/empty", empty), path("bench/one-hop", one_hop)]
    clear_url_caches()

    def http(path_: str, app=application):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",  # every middleware hook runs; CSRF checks only unsafe methods
            "scheme": "http",
            "path": path_,
            "raw_path": path_.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }

        async def call() -> None:
            delivered = False

            async def receive():
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                await asyncio.Event().wait()

            status = []

            async def send(message):
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await app(scope, receive, send)
            assert status == [200], status

        return call

    results: dict[str, float] = {}
    await cpu_ms(
        {
            "empty async view, full middleware, our handler": http("/bench/empty"),
            "the same under Django's stock ASGIHandler": http("/bench/empty", ASGIHandler()),
        },
        results,
    )
    await cpu_ms({"our handler + one worker-thread trip": http("/bench/one-hop")}, results)
    await cpu_ms(
        {
            "worker-thread trip + one SQL statement (pooled)": lambda: services.db(
                lambda: connection.cursor().execute("SELECT 1")
            )
        },
        results,
    )
    # The fake model runs in a child process, so its CPU is not counted here.
    fake = subprocess.Popen([sys.executable, "-c", FAKE_MODEL], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    base_url = fake.stdout.readline().strip()
    try:
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-bench", base_url
        instructions = await services.db(system_prompt, timezone.now())
        items, tools = [model_items.user_item("hello")], tool_definitions()
        await cpu_ms(
            {
                "one model call through the SDK (openai_client.respond)": lambda: openai_client.respond(
                    instructions=instructions, items=items, tools=tools
                )
            },
            results,
        )
        body = {"model": settings.OPENAI_MODEL, "instructions": instructions, "input": items, "tools": tools}
        async with aiohttp.ClientSession() as session:

            async def plain() -> None:
                async with session.post(
                    f"{base_url}/responses", json=body, headers={"Authorization": "Bearer sk-bench"}
                ) as response:
                    await response.json()

            await cpu_ms({"the same request with plain aiohttp (no SDK)": plain}, results)
    finally:
        fake.kill()
    return results


def main() -> None:
    setup()
    # The machine may be shared: its load tells a slow run from slow code.
    load_before = os.getloadavg()[0]
    results = asyncio.run(measure())
    print(f"CPU per call, in one process, one at a time; median of {REPEATS} x {RUNS} calls ({os.cpu_count()} cores)")
    print(f"Load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    for label, value in results.items():
        print(f"  {label:<55} {value:6.2f} ms")


if __name__ == "__main__":
    main()
