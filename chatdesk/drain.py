"""Graceful drain of a worker on SIGTERM: readiness off, goodbyes said, turns finished, then exit.

Why not leave SIGTERM to uvicorn alone: on SIGTERM it stops accepting connections and waits
for HTTP requests in flight (for ever, or `--timeout-graceful-shutdown`, then it cancels them
with a 500), but it closes every WebSocket at once with 1012. A caller would be cut off
mid-sentence. So the ASGI lifespan's startup (`lifespan` below, routed in chatdesk/asgi.py)
puts a handler in front of uvicorn's own, and on SIGTERM:

1. `lifecycle.start_draining()`: /readyz answers 503, new chat turns are refused with 503
   server_draining (chatdesk.assistant.turns.ServerDraining; nothing stored, so nginx or the
   page sends them to another worker) and new calls are told to call again.
2. Every open call hears a short goodbye from the assistant and ends as `server_shutdown`, its
   transcript stored (voice.calls.end_calls_for_shutdown, at most VOICE_GOODBYE_SECONDS).
3. uvicorn's handler runs: it closes the listening socket (nginx now gets "connection refused"
   and retries the next worker, for any method), closes idle keep-alive connections, closes
   live chat sockets with 1012 (static/chat.js reconnects, through nginx, to another worker)
   and waits for the HTTP requests in flight: the turns still running.
4. At DRAIN_SECONDS after the SIGTERM, turns still running are cut: each answers 503
   server_draining, its message stays stored and the retry of its id is answered by another
   worker (chatdesk.assistant.turns.cut_turns_in_flight). uvicorn then exits.

Give uvicorn `--timeout-graceful-shutdown` above DRAIN_SECONDS (so our cut comes first, with a
503, not its cancel with a 500), and the process manager a stop timeout above both. A second
SIGTERM skips the wait for goodbyes. SIGINT (Ctrl+C) is left to uvicorn.

daphne (`make run`) has no lifespan: there, a shutdown ends calls as before
(voice.consumers closes them as server_shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from django.conf import settings

from chatdesk import collector, lifecycle
from chatdesk.assistant.turns import cut_turns_in_flight
from voice.calls import end_calls_for_shutdown, open_call_count

logger = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any] | int | None


class Drain:
    """The drain of this process, started by SIGTERM (or `start()`, in tests)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, then: Callable[[], None]) -> None:
        self.loop = loop
        # What stops the server once the calls are done (uvicorn's own SIGTERM handler).
        self.then = then
        self.task: asyncio.Task[None] | None = None
        self.handed_over = False

    def start(self) -> None:
        """Begin draining (once); a second call hands over to the server at once."""
        if self.task is None:
            lifecycle.start_draining()
            self.task = self.loop.create_task(self.run())
        else:
            self.hand_over()

    def hand_over(self) -> None:
        if not self.handed_over:
            self.handed_over = True
            self.then()

    async def run(self) -> None:
        started = time.monotonic()
        deadline = started + settings.DRAIN_SECONDS
        logger.warning(
            "SIGTERM: draining (calls %d, turns in flight %d); turns get %.0f s",
            open_call_count(),
            lifecycle.in_flight_count(),
            settings.DRAIN_SECONDS,
        )
        calls = await end_calls_for_shutdown(min(settings.VOICE_GOODBYE_SECONDS, settings.DRAIN_SECONDS))
        if calls:
            logger.warning("Ended %d call(s) with a goodbye in %.1f s", calls, time.monotonic() - started)
        self.hand_over()
        while lifecycle.in_flight_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cut = cut_turns_in_flight() if lifecycle.in_flight_count() else 0
        if cut:
            logger.error("Drain deadline (%.0f s): cut %d turn(s) still running", settings.DRAIN_SECONDS, cut)
        else:
            logger.warning("Drained in %.1f s", time.monotonic() - started)


def install(loop: asyncio.AbstractEventLoop) -> Drain | None:
    """Put the drain in front of the server's SIGTERM handler (main thread only; else None)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous: Handler = signal.getsignal(signal.SIGTERM)

    def stop_server() -> None:
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:
            # No server handler (not uvicorn): the default action, as if we were not here.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    drain = Drain(loop, stop_server)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the main thread, which is the loop's:
        # schedule the work rather than do it here.
        loop.call_soon_threadsafe(drain.start)

    signal.signal(signal.SIGTERM, on_sigterm)
    return drain


Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


async def lifespan(scope: dict, receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol (uvicorn speaks it): install the drain at startup, and run
    the full garbage collections at quiet moments while serving (chatdesk/collector.py)."""
    drain: Drain | None = None
    full_collections: collector.FullCollections | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            drain = install(asyncio.get_running_loop())
            full_collections = collector.start(asyncio.get_running_loop(), settings.FULL_COLLECTION_MAX_SECONDS)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if drain is not None and drain.task is not None and not drain.task.done():
                drain.task.cancel()
            if full_collections is not None:
                await full_collections.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
