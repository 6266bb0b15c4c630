"""Full garbage collections at quiet moments, not in the middle of a burst of streamed replies.

CPython collects its oldest generation by itself once enough objects have outlived the
younger ones. In a worker relaying 100 streamed replies that came every few seconds and held
the event loop for 30-115 ms, even with the modules frozen out of it at start (chatdesk/asgi.py):
what remains is the requests' own garbage (coroutines, tasks, futures of finished turns).
Every reply in flight on that worker stalled as long, and the pieces behind queued up:
bench/streaming.py's first-token relay went from p95 ~3 ms to 50-140 ms in the rounds a
collection hit.

While the server runs (the ASGI lifespan, chatdesk/drain.py), the automatic full collection is
off and a task on the event loop runs it instead: once nothing has been in flight for
QUIET_SECONDS (no chat turn, no call: chatdesk.lifecycle.in_flight), and in any case
settings.FULL_COLLECTION_MAX_SECONDS after the last, so memory stays bounded under continuous
load. The young generations are collected automatically as before. 0 leaves CPython's own
schedule alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

from chatdesk import lifecycle

# Generation 2's threshold while we schedule its collections: never reached.
OUT_OF_REACH = 1_000_000_000
# How long the worker must have had nothing in flight to count as quiet.
QUIET_SECONDS = 0.5
# Quiet collections at most this often (an idle worker has little new garbage).
QUIET_COLLECTION_MIN_SECONDS = 2.0
CHECK_SECONDS = 0.1


class FullCollections:
    """Runs generation 2's collections from a task on the loop (start/stop around the server)."""

    def __init__(
        self,
        max_seconds: float,
        *,
        quiet_seconds: float = QUIET_SECONDS,
        quiet_min_seconds: float = QUIET_COLLECTION_MIN_SECONDS,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.max_seconds = max_seconds
        self.quiet_seconds = quiet_seconds
        self.quiet_min_seconds = quiet_min_seconds
        self.check_seconds = check_seconds
        self.collections = 0
        self._thresholds: tuple[int, int, int] | None = None
        self._task: asyncio.Task | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, OUT_OF_REACH)
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = quiet_since = loop.time()
        while True:
            await asyncio.sleep(self.check_seconds)
            now = loop.time()
            if lifecycle.in_flight_count():
                quiet_since = now
            quiet = now - quiet_since >= self.quiet_seconds and now - last >= self.quiet_min_seconds
            # gc.get_count()[2]: collections of generation 1 since the last full one, i.e.
            # whether anything has reached generation 2 since.
            if (quiet and gc.get_count()[2]) or now - last >= self.max_seconds:
                gc.collect()
                self.collections += 1
                last = loop.time()


def start(loop: asyncio.AbstractEventLoop, max_seconds: float) -> FullCollections | None:
    """Schedule the full collections on `loop` (None, and CPython's own schedule, for 0)."""
    if max_seconds <= 0:
        return None
    collections = FullCollections(max_seconds)
    collections.start(loop)
    return collections
