"""`FakeOpenAI`: a loopback aiohttp server that speaks the OpenAI wire protocol, scripted per test.

The server runs on its own event loop in a background thread, so the same object serves sync tests,
async tests (whose loop is a different one) and a separate server process under test that was given
`fake.base_url`. Scripting methods may be called from any thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .responses_api import (
    Delay,
    ErrorReply,
    FunctionCall,
    IdFactory,
    RawReply,
    Reply,
    ReplySpec,
    Responder,
    ResponseStore,
    build_output,
    build_response,
    coerce_reply,
    compute_usage,
    stream_events,
    validate_request,
)

__all__ = ["FakeOpenAI"]

_NO_RETRY = {"x-should-retry": "false"}


class FakeOpenAI:
    """A scripted fake of the OpenAI API on `127.0.0.1:<ephemeral port>`.

    Typical use::

        with FakeOpenAI() as fake:
            fake.queue_function_calls([("get_available_services", {"trade": "hvac"})])
            fake.queue_text("We have HVAC repair on Friday.")
            client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
            ...
            assert fake.requests[1]["json"]["input"][-1]["type"] == "function_call_output"

    Reply selection per `POST /v1/responses`: the next queued reply (delays queued with
    `queue_delay()` are added up until the next reply), else the `respond_with()` callable, else a
    text reply with `default_text`. `latency` is added to every reply, with `asyncio.sleep`, so
    concurrent requests overlap instead of queueing behind each other.
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
        self.default_text = default_text
        """Text of the reply used when nothing is queued and no responder answers."""
        self.latency = latency
        """Seconds added before every HTTP reply (benchmarks; non-blocking)."""
        self.stream_event_delay = 0.0
        """Seconds between SSE events of a streamed reply (to observe incremental rendering)."""
        self.require_auth = require_auth
        """Answer 401 when `Authorization: Bearer <key>` is missing, as the real API does."""
        self.validate_requests = validate_requests
        """Answer 400 for the request mistakes the real API rejects (see `validate_request`)."""
        self.requests: list[dict[str, Any]] = []
        """Every HTTP request received: method, path, query, headers (lower-cased), json (parsed body;
        also under "body"), received_at (time.monotonic())."""
        self.replies: list[dict[str, Any]] = []
        """Every reply sent to `/v1/responses`: status and the JSON body (the final response for streams)."""
        self.responder_errors: list[BaseException] = []
        """Exceptions raised by the `respond_with()` callable (the client got a 500 for each)."""

        self._host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._script: deque[Reply | ErrorReply | RawReply | Delay] = deque()
        self._responder: Responder | None = None
        self._ids = IdFactory()
        self._store = ResponseStore()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

        from .realtime import FakeRealtime

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
        app.router.add_get("/v1/realtime", self.realtime._handle_websocket)
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

    # ----------------------------------------------------------------------------------------------
    # Scripting (Responses API)

    def queue(self, *specs: ReplySpec) -> None:
        """Queue replies in any form `coerce_reply` accepts (text, call tuples, Reply, ErrorReply, ...)."""
        with self._lock:
            for spec in specs:
                reply = coerce_reply(spec)
                self._script.append(reply if reply is not None else Reply(text=self.default_text))

    def queue_text(self, text: str, *, usage: Mapping[str, Any] | None = None) -> None:
        """Queue an assistant message with `text` (read back by the SDK as `response.output_text`)."""
        self.queue(Reply(text=text, usage=usage))

    def queue_function_calls(
        self,
        calls: Sequence[tuple[str, Mapping[str, Any] | str] | FunctionCall],
        *,
        text: str | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one response holding all `calls` (several = parallel tool calls), ids `call_<n>`.

        `text` adds an assistant message before the calls, as models sometimes do.
        """
        self.queue(Reply(text=text, function_calls=[_as_call(call) for call in calls], usage=usage))

    def queue_function_call(
        self, name: str, arguments: Mapping[str, Any] | str | None = None, *, usage: Mapping[str, Any] | None = None
    ) -> None:
        """Queue a response with a single function call."""
        self.queue_function_calls([(name, arguments if arguments is not None else {})], usage=usage)

    def queue_malformed_arguments(self, name: str, raw_arguments: str) -> None:
        """Queue a function call whose `arguments` string is sent verbatim (e.g. invalid JSON)."""
        self.queue(Reply(function_calls=[FunctionCall(name, raw_arguments)]))

    def queue_error(
        self,
        status: int,
        message: str = "",
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        mid_stream: bool = False,
    ) -> None:
        """Queue an HTTP error (`{"error": {...}}` body, `x-should-retry: false`).

        The SDK raises by status: 400 BadRequestError, 401 AuthenticationError, 429 RateLimitError,
        >=500 InternalServerError. `error_type`/`code` default to what the real API sends for the
        status (429: "requests"/"rate_limit_exceeded"; 5xx: "server_error"). `headers` can add e.g.
        `retry-after-ms`. See `ErrorReply` for `mid_stream`.
        """
        self.queue(
            ErrorReply(
                status,
                message or f"Scripted error {status}",
                error_type=error_type,
                code=code,
                param=param,
                headers=dict(headers or {}),
                mid_stream=mid_stream,
            )
        )

    def queue_delay(self, seconds: float) -> None:
        """Wait `seconds` before sending the next reply (queued or default): triggers client timeouts."""
        with self._lock:
            self._script.append(Delay(seconds))

    def respond_with(self, responder: Responder | None) -> None:
        """Answer with `responder(request_json)` whenever the queue is empty; `None` removes it.

        The callable runs on the fake's event-loop thread and may return any reply spec accepted by
        `queue()`, or `None` for the default reply. Helpers for inspecting the request:
        `function_call_outputs`, `last_function_call_output`, `last_user_text`.
        """
        with self._lock:
            self._responder = responder

    def reset(self) -> None:
        """Forget queued replies, the responder and all recordings (HTTP and Realtime)."""
        with self._lock:
            self._script.clear()
            self._responder = None
            self.requests.clear()
            self.replies.clear()
            self.responder_errors.clear()
        self.realtime.reset()

    @property
    def pending_replies(self) -> int:
        """Number of queued replies not consumed yet (delay markers excluded)."""
        with self._lock:
            return sum(1 for item in self._script if not isinstance(item, Delay))

    @property
    def last_request(self) -> dict[str, Any]:
        """The most recent request recorded (raises IndexError if there is none)."""
        return self.requests[-1]

    @property
    def response_requests(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of the `POST /v1/responses` requests, in arrival order."""
        return [r["json"] for r in self.requests if r["path"] == "/v1/responses" and r["method"] == "POST"]

    # ----------------------------------------------------------------------------------------------
    # HTTP handlers

    def _record(self, request: web.Request, body: Any) -> dict[str, Any]:
        record = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {key.lower(): value for key, value in request.headers.items()},
            "json": body,
            "body": body,
            "received_at": time.monotonic(),
        }
        with self._lock:
            self.requests.append(record)
        return record

    def _auth_error(self, request: web.Request) -> ErrorReply | None:
        if not self.require_auth:
            return None
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.strip():
            return ErrorReply(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="",
            )
        return None

    def _next_reply(self, body: dict[str, Any]) -> tuple[Reply | ErrorReply | RawReply, float]:
        delay = 0.0
        with self._lock:
            while self._script and isinstance(self._script[0], Delay):
                delay += self._script.popleft().seconds  # type: ignore[union-attr]
            if self._script:
                return self._script.popleft(), delay  # type: ignore[return-value]
            responder = self._responder
        if responder is not None:
            try:
                reply = coerce_reply(responder(body))
            except Exception as exc:
                # The client just sees a 500; the test sees the real exception in responder_errors.
                with self._lock:
                    self.responder_errors.append(exc)
                reply = ErrorReply(500, f"fake_openai responder raised {exc!r}")
            if reply is not None:
                return reply, delay
        return Reply(text=self.default_text), delay

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(request, body)

        problem = self._auth_error(request)
        if problem is None and not isinstance(body, dict):
            problem = ErrorReply(400, "We could not parse the JSON body of your request.", code="invalid_json")
        if problem is None and self.validate_requests:
            problem = validate_request(body, self._store)
        if problem is not None:
            # Client mistakes don't consume the script: the test's next scripted reply is still there.
            return self._error_response(problem)

        reply, delay = self._next_reply(body)
        if delay + self.latency > 0:
            await asyncio.sleep(delay + self.latency)

        if isinstance(reply, RawReply):
            with self._lock:
                self.replies.append({"status": reply.status, "json": reply.body})
            return web.json_response(reply.body, status=reply.status, headers=self._headers(reply.headers))
        if isinstance(reply, ErrorReply) and not (reply.mid_stream and body.get("stream")):
            return self._error_response(reply)

        response_id = self._ids.next("resp")
        created_at = int(time.time())
        if isinstance(reply, ErrorReply):
            # Mid-stream failure: the body the client sees is the stream itself.
            return await self._stream(request, body, response_id, created_at, Reply(), stream_error=reply)

        if body.get("stream"):
            return await self._stream(request, body, response_id, created_at, reply)

        output = build_output(reply, self._ids)
        payload = build_response(
            body,
            response_id=response_id,
            created_at=created_at,
            status=reply.status,
            output=output,
            usage=compute_usage(body, output, reply.usage),
            incomplete_reason=reply.incomplete_reason,
        )
        self._remember(body, response_id, output, payload)
        return web.json_response(payload, headers=self._headers())

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        response_id: str,
        created_at: int,
        reply: Reply,
        *,
        stream_error: ErrorReply | None = None,
    ) -> web.StreamResponse:
        output = build_output(reply, self._ids)
        usage = compute_usage(body, output, reply.usage)
        response = web.StreamResponse(
            headers=self._headers({"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"})
        )
        await response.prepare(request)
        final: dict[str, Any] | None = None
        events = stream_events(
            body,
            response_id=response_id,
            created_at=created_at,
            final_status=reply.status,
            output=output,
            usage=usage,
            incomplete_reason=reply.incomplete_reason,
            stream_error=stream_error,
        )
        for sequence_number, event in enumerate(events):
            event = {**event, "sequence_number": sequence_number}
            if "response" in event:
                final = event["response"]
            # The SDK only reads `data:` lines; `event:` is sent because the real API sends it.
            chunk = f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
            await response.write(chunk.encode())
            if self.stream_event_delay:
                await asyncio.sleep(self.stream_event_delay)
        await response.write_eof()
        if final is not None and stream_error is None:
            self._remember(body, response_id, output, final)
        else:
            with self._lock:
                self.replies.append({"status": 200, "json": final, "stream_error": stream_error})
        return response

    def _remember(self, body: dict[str, Any], response_id: str, output: list[dict[str, Any]], payload: Any) -> None:
        with self._lock:
            self.replies.append({"status": 200, "json": payload})
            if body.get("store", True) is not False:
                self._store.save(response_id, body, output)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"x-request-id": self._ids.next("req"), "openai-processing-ms": "1", **(extra or {})}

    def _error_response(self, error: ErrorReply) -> web.Response:
        with self._lock:
            self.replies.append({"status": error.status, "json": error.body()})
        return web.json_response(
            error.body(), status=error.status, headers=self._headers({**_NO_RETRY, **error.headers})
        )

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self._record(request, body)
        error = ErrorReply(
            404, f"Invalid URL ({request.method} {request.path})", error_type="invalid_request_error", code=""
        )
        return self._error_response(error)


def _as_call(call: tuple[str, Mapping[str, Any] | str] | FunctionCall) -> FunctionCall:
    if isinstance(call, FunctionCall):
        return call
    name, arguments = call
    return FunctionCall(name, arguments)
