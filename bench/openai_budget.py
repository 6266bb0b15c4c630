"""What the fleet's OpenAI budget costs each model request (chatdesk.assistant.openai_budget).

Every model request of a chat turn first takes its share (`acquire`: one trip to a worker
thread, one read of the pause and both windows, a decrement per window) and records the
response's x-ratelimit-* headers after (`arecord`: one more trip, one pipelined write per
window). This measures the pair, one at a time in one process, on Redis (REDIS_URL, default
redis://127.0.0.1:6379/0; only this benchmark's own keys are written, then deleted) and on the
in-process cache `make run` uses, and prints wall and CPU time per request.

    .venv/bin/python bench/openai_budget.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = int(os.environ.get("BENCH_RUNS", "2000"))
REPEATS = 5
MODEL = "bench-budget-model"


def setup(redis_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": redis_url,
        }
    )
    import django

    django.setup()


async def measure(label: str) -> tuple[str, float, float]:
    from chatdesk.assistant import openai_budget
    from chatdesk.assistant.openai_budget import Window

    # Plenty left: the common case, where nothing waits.
    windows = [Window("requests", 10_000_000, 9_999_999, 0.006), Window("tokens", 10**12, 10**12 - 5000, 0.006)]

    async def one_request() -> None:
        await openai_budget.acquire(MODEL, 5000, wait_until=time.monotonic() + 5)
        await openai_budget.arecord(MODEL, windows)

    for _ in range(200):
        await one_request()
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(RUNS):
            await one_request()
        walls.append((time.perf_counter() - wall) * 1e6 / RUNS)
        cpus.append((time.process_time() - cpu) * 1e6 / RUNS)
    return label, statistics.median(walls), statistics.median(cpus)


def main() -> None:
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    setup(redis_url)
    from django.core.cache import caches
    from django.test.utils import override_settings

    from chatdesk.assistant import openai_budget

    results = [asyncio.run(measure(f"Redis ({redis_url})"))]
    keys = [
        openai_budget.PREFIX + f":{MODEL}:{kind}:{what}"
        for kind in openai_budget.KINDS
        for what in ("remaining", "window")
    ]
    caches["default"].delete_many(keys)
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        results.append(asyncio.run(measure("in-process cache (no REDIS_URL)")))
    print(f"OpenAI budget per model request (acquire + record), {RUNS} x {REPEATS} repeats, median:")
    for label, wall, cpu in results:
        print(f"  {label}: {wall:.0f} us wall, {cpu:.0f} us CPU")


if __name__ == "__main__":
    main()
