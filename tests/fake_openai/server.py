"""`FakeOpenAI`: one loopback aiohttp server that speaks the OpenAI wire protocol, scripted per test.

The server runs on its own event loop in a background thread, so the same object serves sync tests,
async tests (whose loop is a different one) and a separate server process under test that was given
`fake.base_url`. Scripting methods may be called from any thread.

Lives here: the server's lifecycle (start, stop, port, URLs) and its routes. The rest of `FakeOpenAI`
is mixed in: what tests call for `POST /v1/responses` from `responses_script.py`, how it answers from
`responses_api.py`. The Realtime WebSocket is `fake.realtime`: scripted in `realtime_script.py`,
spoken in `realtime.py`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

from .rate_limits import RateLimits
from .realtime import handle_websocket
from .realtime_script import FakeRealtime
from .responses_api import IdFactory, ResponsesEndpoint, ResponseStore
from .responses_script import ResponsesScript

__all__ = ["FakeOpenAI"]


class FakeOpenAI(ResponsesScript, ResponsesEndpoint):
    """A scripted fake of the OpenAI API on `127.0.0.1:<ephemeral port>`.

    Typical use::

        with FakeOpenAI() as fake:
            fake.queue_function_calls([("get_available_services", {"trade": "hvac"})])
            fake.queue_text("We have HVAC repair on Friday.")
            client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
            ...
            assert fake.requests[1]["json"]["input"][-1]["type"] == "function_call_output"

    Reply selection per `POST /v1/responses`: see `ResponsesScript`. `latency` is added to every reply,
    with `asyncio.sleep`, so concurrent requests overlap instead of queueing behind each other.
    """

    def __init__(
        self,
        *,
        default_text: str = "OK",
        latency: float = 0.0,
        require_auth: bool = True,
        validate_requests: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(default_text=default_text)
        self.latency = latency
        """Seconds added before every HTTP reply (benchmarks; non-blocking)."""
        self.stream_event_delay = 0.0
        """Seconds between SSE events of a streamed reply (to observe incremental rendering)."""
        self.start_together = 0
        """Hold each reply until this many requests are waiting, then start them all at once (a
        benchmark's worst case: every reply's first words in the same instant); 0 = off."""
        self._company: tuple[asyncio.Event, list[int]] | None = None
        self.require_auth = require_auth
        """Answer 401 when `Authorization: Bearer <key>` is missing, as the real API does."""
        self.validate_requests = validate_requests
        """Answer 400 for the request mistakes the real API rejects (see `validate_request`)."""
        self.rate_limits = RateLimits()
        """The text model's limits: reported in `x-ratelimit-*` headers, a 429 when over (rate_limits.py)."""

        self._host = host
        self._requested_port = port
        self._ids = IdFactory()
        self._store = ResponseStore()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

        self.realtime = FakeRealtime(self)
        """Script and recordings for the Realtime WebSocket (`GET /v1/realtime`)."""

    # ----------------------------------------------------------------------------------------------
    # Lifecycle

    def start(self) -> Self:
        """Start serving; returns self. Blocks until the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAI is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, args=(loop,), name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Close open WebSockets, stop the server and join its thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """HTTP base URL for `OpenAI(base_url=...)`, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def websocket_base_url(self) -> str:
        """`ws://127.0.0.1:PORT/v1`; the SDK derives the same from `base_url`, so this is rarely needed."""
        return f"ws://{self._host}:{self.port}/v1"

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/responses", self._handle_responses)
        app.router.add_get("/v1/realtime", functools.partial(handle_websocket, self.realtime))
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        # handler_cancellation: when a client times out and disconnects, the sleeping handler is
        # cancelled instead of lingering until shutdown. A short shutdown_timeout keeps stop() quick.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def _shutdown(self) -> None:
        await self.realtime._close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        """Forget queued replies, the responder and all recordings (HTTP and Realtime)."""
        super().reset()
        self.realtime.reset()
        self.rate_limits = RateLimits()
