"""Fake of the Realtime GA WebSocket API (`GET /v1/realtime?model=...`), scripted per test.

Event names, field names and orderings follow /work/shared/reference/openai-wire-protocol.md section 4
and were checked against the SDK 3.57.0 types in `openai/types/realtime/`. Behaviour in short:

- `session.created` on connect; `session.update` is validated (`session.type == "realtime"`, audio
  formats, rate 24000), merged and echoed as `session.updated`.
- `input_audio_buffer.append` audio is counted and, with server/semantic VAD on and `audio/pcm` input,
  run through a deterministic VAD: RMS energy per 20 ms window. The first loud window gives
  `speech_started`; `silence_duration_ms` (default 500) of quiet windows gives `speech_stopped`,
  `committed`, `conversation.item.added`/`.done`, the input transcription (when
  `audio.input.transcription` is configured) and, with `create_response`, a response.
- Responses play the next scripted `RealtimeReply`: a spoken answer (transcript deltas interleaved
  with a sine tone as `response.output_audio.delta`), a text answer (`output_modalities: ["text"]`),
  or function calls. `response.done` carries deterministic usage.
- Barge-in: loud audio during a response cancels it (`response.done` cancelled, `turn_detected`)
  when `interrupt_response` is on. Set `audio_pacing` so a response lasts long enough to interrupt.
- Errors come back as `error` events (the socket stays open), with the real codes:
  `missing_required_parameter`, `invalid_value`, `input_audio_buffer_commit_empty`,
  `conversation_already_has_active_response`, `response_cancel_not_active`,
  `unsupported_content_type`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .audio import BYTES_PER_MS, b64, pcm16_ms, rms_pcm16, sine_pcm16
from .responses_api import FunctionCall, IdFactory

if TYPE_CHECKING:
    from .server import FakeOpenAI

__all__ = ["FakeRealtime", "RealtimeConnection", "RealtimeReply"]

_VAD_WINDOW_MS = 20
_VAD_WINDOW_BYTES = _VAD_WINDOW_MS * BYTES_PER_MS
# G.711 (pcmu/pcma) is 8 kHz, one byte per sample.
_G711_BYTES_PER_MS = 8
_AUDIO_FORMATS = ("audio/pcm", "audio/pcmu", "audio/pcma")


@dataclass
class RealtimeReply:
    """One scripted model response on the Realtime socket.

    - `text`: the answer; spoken (transcript + audio) with `output_modalities: ["audio"]`, written with
      `["text"]`. `audio_ms` is the length of the tone (default: 60 ms per character, at least 200).
    - `function_calls`: the response is these calls instead (several = parallel calls).
    - `drop_after_chunks`: abruptly end the connection after this many audio deltas (0 = right after
      `response.created`); `close_code=None` kills TCP without a close frame (the SDK raises
      `websockets.ConnectionClosedError`, code 1006), an int sends that close code instead.
    - `fail`: end with `response.done` status `failed` and this `status_details.error` mapping.
    - `error_event`: the response dies with an `error` event of this mapping (e.g. type
      `server_error`) right after `response.created`, and no `response.done`; the socket stays open.
    - `usage`: overrides for `response.done.response.usage` (nested details are merged).
    """

    text: str | None = None
    audio_ms: int | None = None
    function_calls: Sequence[FunctionCall] = ()
    drop_after_chunks: int | None = None
    close_code: int | None = None
    fail: Mapping[str, Any] | None = None
    error_event: Mapping[str, Any] | None = None
    usage: Mapping[str, Any] | None = None

    def spoken_ms(self) -> int:
        if self.audio_ms is not None:
            return self.audio_ms
        return max(200, 60 * len(self.text or ""))


RealtimeReplySpec = RealtimeReply | FunctionCall | str | Sequence[Any] | None
"""What `FakeRealtime.queue()` and a `respond_with()` callable may give: a reply, a text (spoken),
a function call, a `(name, args)` tuple or a list of them (parallel calls), or `None` (default)."""


def _coerce(spec: RealtimeReplySpec, default_text: str) -> RealtimeReply:
    if spec is None:
        return RealtimeReply(text=default_text)
    if isinstance(spec, RealtimeReply):
        return spec
    if isinstance(spec, str):
        return RealtimeReply(text=spec)
    if isinstance(spec, FunctionCall):
        return RealtimeReply(function_calls=[spec])
    if isinstance(spec, Sequence):
        if len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping | str):
            return RealtimeReply(function_calls=[FunctionCall(spec[0], spec[1])])
        return RealtimeReply(function_calls=[c if isinstance(c, FunctionCall) else FunctionCall(*c) for c in spec])
    raise TypeError(f"Unsupported realtime reply spec: {spec!r}")


@dataclass
class RealtimeConnection:
    """Recordings of one WebSocket connection."""

    query: dict[str, str]
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    """Client events received, parsed, in order."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Server events sent, in order."""
    pcm_bytes_received: int = 0
    session: dict[str, Any] = field(default_factory=dict)
    """The effective session (as last sent in `session.created`/`session.updated`)."""
    items: list[dict[str, Any]] = field(default_factory=list)
    """The conversation as the fake sees it (items as sent to the client)."""
    closed: bool = False
    dropped: bool = False

    def event_types(self) -> list[str]:
        return [event.get("type", "") for event in self.events]

    def sent_types(self) -> list[str]:
        return [event["type"] for event in self.sent]


class FakeRealtime:
    """Script and recordings for the Realtime WebSocket; reach it as `fake.realtime`.

    Scripted transcripts are consumed one per committed user audio item (default
    `default_transcript`); scripted replies one per response (queue, then `respond_with()`, then a
    spoken `default_reply_text`). All scripting methods are thread-safe.
    """

    def __init__(self, owner: FakeOpenAI) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._transcripts: deque[str] = deque()
        self._replies: deque[RealtimeReply] = deque()
        self._responder: Callable[[list[dict[str, Any]]], RealtimeReplySpec] | None = None
        self._sessions: list[_Session] = []
        self._ids = IdFactory()

        self.default_transcript = "Hello."
        self.default_reply_text = "OK"
        self.chunk_ms = 100
        """Length of each `response.output_audio.delta`."""
        self.audio_pacing = 0.0
        """Wall-clock seconds per second of reply audio (0: as fast as possible, 1.0: real time)."""
        self.response_latency = 0.0
        """Seconds between `response.created` and the first output item."""
        self.close_delay = 0.0
        """Seconds before the fake answers a client's close frame. A real server in the middle of a
        reply answers only after the audio it queued before it (and a client that stopped reading
        never gets there), so a client waiting for the close handshake waits this long."""
        self.vad_rms_threshold: float | None = None
        """RMS (int16 units) above which a 20 ms window is speech; None: session threshold * 2000."""
        self.transcription_requires_config = True
        """Only transcribe when the session has `audio.input.transcription`, like the real API.
        Transcription events are sent right after `conversation.item.done`, before the response (the
        real API sends them asynchronously, sometimes after `response.created`)."""

        self.connections: list[RealtimeConnection] = []
        """One record per WebSocket connection, in connection order."""
        self.events: list[dict[str, Any]] = []
        """Client events received on any connection, in order."""
        self.sent: list[dict[str, Any]] = []
        """Server events sent on any connection, in order."""
        self.truncations: list[dict[str, Any]] = []
        """Accepted `conversation.item.truncate` requests: item_id, content_index, audio_end_ms."""
        self.pcm_bytes_received = 0
        """Decoded audio bytes received via `input_audio_buffer.append`, all connections."""

    # ----------------------------------------------------------------------------------------------
    # Scripting

    def queue(self, *specs: RealtimeReplySpec) -> None:
        """Queue replies (see `RealtimeReplySpec`)."""
        with self._lock:
            self._replies.extend(_coerce(spec, self.default_reply_text) for spec in specs)

    def queue_transcript(self, text: str) -> None:
        """Queue the transcript of the next committed user audio item."""
        with self._lock:
            self._transcripts.append(text)

    def queue_turn(
        self,
        transcript: str,
        reply_text: str | None = None,
        *,
        audio_ms: int | None = None,
        function_calls: Sequence[tuple[str, Mapping[str, Any] | str] | FunctionCall] | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> None:
        """Script one user turn: what the caller said and how the model answers.

        `queue_turn(transcript="I need a furnace repair", reply_text="Sure...", audio_ms=1200)`.
        With `function_calls` the answer is those calls (send the outputs and `response.create`,
        then the next queued reply plays). With neither, only the transcript is queued.
        """
        self.queue_transcript(transcript)
        if function_calls:
            calls = [c if isinstance(c, FunctionCall) else FunctionCall(*c) for c in function_calls]
            self.queue(RealtimeReply(text=reply_text, function_calls=calls, usage=usage))
        elif reply_text is not None:
            self.queue(RealtimeReply(text=reply_text, audio_ms=audio_ms, usage=usage))

    def queue_reply(self, text: str, *, audio_ms: int | None = None, usage: Mapping[str, Any] | None = None) -> None:
        """Queue a spoken (or, in a text-only session, written) reply."""
        self.queue(RealtimeReply(text=text, audio_ms=audio_ms, usage=usage))

    def queue_function_call(
        self, name: str, arguments: Mapping[str, Any] | str | None = None, *, call_id: str | None = None
    ) -> None:
        """Queue a response that is a single function call (`call_id` defaults to `call_<n>`)."""
        self.queue(
            RealtimeReply(function_calls=[FunctionCall(name, arguments if arguments is not None else {}, call_id)])
        )

    def queue_function_calls(self, calls: Sequence[tuple[str, Mapping[str, Any] | str] | FunctionCall]) -> None:
        """Queue one response with several (parallel) function calls."""
        self.queue([c if isinstance(c, FunctionCall) else FunctionCall(*c) for c in calls])

    def queue_drop(
        self, *, after_chunks: int = 1, reply_text: str = "Let me check that for you.", close_code: int | None = None
    ) -> None:
        """Make the next response die mid-stream: the upstream connection drops after `after_chunks`
        audio deltas (TCP closed without a close frame, or a close frame with `close_code`)."""
        self.queue(RealtimeReply(text=reply_text, drop_after_chunks=after_chunks, close_code=close_code))

    def queue_failed_response(self, message: str = "The server had an error.", *, code: str = "server_error") -> None:
        """Make the next response end with `response.done` status `failed`."""
        self.queue(RealtimeReply(fail={"type": "server_error", "code": code, "message": message}))

    def queue_error_event(self, message: str = "The server had an error while processing your request.") -> None:
        """Make the next response die with an `error` event (type `server_error`), no `response.done`."""
        self.queue(RealtimeReply(error_event={"type": "server_error", "code": "server_error", "message": message}))

    def respond_with(self, responder: Callable[[list[dict[str, Any]]], RealtimeReplySpec] | None) -> None:
        """Decide replies dynamically once the queue is empty: `responder(conversation_items)`.

        The callable gets a copy of the conversation (items as sent to the client, e.g. the last one
        may be a `function_call_output`) and returns a `RealtimeReplySpec`; `None` means default.
        """
        with self._lock:
            self._responder = responder

    def reset(self) -> None:
        """Forget the script and the recordings (open connections keep running)."""
        with self._lock:
            self._transcripts.clear()
            self._replies.clear()
            self._responder = None
            self.connections.clear()
            self.events.clear()
            self.sent.clear()
            self.truncations.clear()
            self.pcm_bytes_received = 0

    @property
    def pending_replies(self) -> int:
        with self._lock:
            return len(self._replies)

    # ----------------------------------------------------------------------------------------------
    # Inspection

    def event_types(self) -> list[str]:
        """Types of the client events received, in order (all connections)."""
        return [event.get("type", "") for event in list(self.events)]

    def sent_types(self) -> list[str]:
        """Types of the server events sent, in order (all connections)."""
        return [event["type"] for event in list(self.sent)]

    def client_events(self, event_type: str) -> list[dict[str, Any]]:
        """Client events of one type."""
        return [event for event in list(self.events) if event.get("type") == event_type]

    def server_events(self, event_type: str) -> list[dict[str, Any]]:
        """Server events of one type."""
        return [event for event in list(self.sent) if event["type"] == event_type]

    def wait_for_client_event(self, event_type: str, *, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """Block until `count` client events of `event_type` have arrived; return the last of them.

        For sync tests and tests of another process. In an async test whose own loop must keep
        running (e.g. it hosts the client), use `await wait_for_client_event_async(...)`.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.client_events(event_type)
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event_type!r} #{count} within {timeout}s; got {self.event_types()}")
            time.sleep(0.01)

    async def wait_for_client_event_async(
        self, event_type: str, *, count: int = 1, timeout: float = 5.0
    ) -> dict[str, Any]:
        """`wait_for_client_event` that yields to the caller's event loop while waiting."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.client_events(event_type)
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event_type!r} #{count} within {timeout}s; got {self.event_types()}")
            await asyncio.sleep(0.01)

    def drop_connections(self, *, close_code: int | None = None) -> None:
        """Kill every open connection now (no close frame unless `close_code` is given)."""
        loop = self._owner._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._drop_all(close_code), loop).result(timeout=5)

    # ----------------------------------------------------------------------------------------------
    # Internals used by the session

    def _next_transcript(self) -> str:
        with self._lock:
            return self._transcripts.popleft() if self._transcripts else self.default_transcript

    def _next_reply(self, items: list[dict[str, Any]]) -> RealtimeReply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            responder = self._responder
        if responder is not None:
            return _coerce(responder(copy.deepcopy(items)), self.default_reply_text)
        return RealtimeReply(text=self.default_reply_text)

    async def _drop_all(self, close_code: int | None) -> None:
        for session in list(self._sessions):
            await session.drop(close_code)

    async def _close_all(self) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"fake server shutting down")

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        record = RealtimeConnection(
            query=dict(request.query), headers={key.lower(): value for key, value in request.headers.items()}
        )
        with self._lock:
            self.connections.append(record)

        # Handshake failures are plain HTTP answers, which the SDK surfaces as websockets' InvalidStatus.
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if self._owner.require_auth and (scheme != "Bearer" or not key.strip()):
            return web.json_response(
                {"error": {"message": "Missing bearer authentication.", "type": "invalid_request_error"}}, status=401
            )
        if not request.query.get("model") and not request.query.get("call_id"):
            return web.json_response(
                {"error": {"message": "Missing required parameter: 'model'.", "type": "invalid_request_error"}},
                status=400,
            )

        ws = web.WebSocketResponse(
            max_msg_size=16 * 1024**2, compress=False, autoping=True, autoclose=not self.close_delay
        )
        await ws.prepare(request)
        if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
            # The beta interface was retired; the real server closes such sockets with 4000.
            await ws.close(code=4000, message=b"beta_api_shape_disabled")
            record.closed = True
            return ws

        session = _Session(self, ws, request, record)
        self._sessions.append(session)
        try:
            await session.run()
        finally:
            self._sessions.remove(session)
            record.closed = True
        return ws


class _Dropped(Exception):
    """The scripted drop happened: stop producing events."""


@dataclass
class _Item:
    item: dict[str, Any]
    audio_ms: float = 0.0
    transcript: str | None = None


@dataclass
class _ActiveResponse:
    id: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None


class _Session:
    """State of one connection: session config, audio buffer, VAD, conversation, active response."""

    def __init__(self, fake: FakeRealtime, ws: web.WebSocketResponse, request: web.Request, record: RealtimeConnection):
        self.fake = fake
        self.ws = ws
        self.request = request
        self.record = record
        self.ids = fake._ids
        self.send_lock = asyncio.Lock()
        self.session = self._default_session(request.query.get("model", ""))
        self.conversation_id = self.ids.next("conv")
        self.items: list[_Item] = []
        self.buffer = bytearray()
        self.stream_ms = 0.0  # position in all audio appended on this connection
        self.vad_rest = bytearray()
        self.speaking = False
        self.speech_item_id: str | None = None
        self.silence_ms = 0
        self.last_loud_end_ms = 0.0
        self.active: _ActiveResponse | None = None
        self.audio_produced = False
        self.dropped = False

    # -- plumbing ---------------------------------------------------------------------------------

    def _default_session(self, model: str) -> dict[str, Any]:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.ids.next("sess"),
            "expires_at": int(time.time()) + 30 * 60,
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "idle_timeout_ms": None,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
            },
        }

    async def send(self, event: dict[str, Any]) -> None:
        if self.dropped or self.ws.closed:
            raise _Dropped
        event = {"event_id": self.ids.next("event"), **event}
        self.record.sent.append(event)
        self.fake.sent.append(event)
        async with self.send_lock:
            await self.ws.send_str(json.dumps(event, separators=(",", ":")))

    async def error(
        self, code: str | None, message: str, *, param: str | None = None, client_event: Mapping[str, Any] | None = None
    ) -> None:
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": (client_event or {}).get("event_id"),
                },
            }
        )

    async def drop(self, close_code: int | None) -> None:
        self.dropped = True
        self.record.dropped = True
        if close_code is None:
            transport = self.request.transport
            if transport is not None:
                # abort(): no close frame, no FIN handshake; the client sees an abnormal closure (1006).
                transport.abort()
        else:
            await self.ws.close(code=close_code, message=b"upstream dropped")

    async def run(self) -> None:
        try:
            self.record.session = copy.deepcopy(self.session)
            await self.send({"type": "session.created", "session": copy.deepcopy(self.session)})
            async for message in self.ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    event = json.loads(message.data)
                except ValueError:
                    await self.error("invalid_json", "The event is not valid JSON.")
                    continue
                if not isinstance(event, dict):
                    await self.error("invalid_json", "The event must be a JSON object.")
                    continue
                self.record.events.append(event)
                self.fake.events.append(event)
                await self.dispatch(event)
            if not self.ws.closed:
                # The client's close frame arrived (autoclose off): answer it late.
                await asyncio.sleep(self.fake.close_delay)
                await self.ws.close()
        except (_Dropped, ConnectionResetError):
            pass
        finally:
            if self.active is not None and self.active.task is not None:
                self.active.task.cancel()

    async def dispatch(self, event: dict[str, Any]) -> None:
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "session.update": self.on_session_update,
            "input_audio_buffer.append": self.on_append,
            "input_audio_buffer.commit": self.on_commit,
            "input_audio_buffer.clear": self.on_clear,
            "conversation.item.create": self.on_item_create,
            "conversation.item.truncate": self.on_truncate,
            "conversation.item.delete": self.on_item_delete,
            "conversation.item.retrieve": self.on_item_retrieve,
            "response.create": self.on_response_create,
            "response.cancel": self.on_response_cancel,
            "output_audio_buffer.clear": self.on_output_audio_clear,
        }
        handler = handlers.get(event.get("type", ""))
        if handler is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{event.get('type')}'. Unknown event type.",
                param="type",
                client_event=event,
            )
            return
        await handler(event)

    # -- session ------------------------------------------------------------------------------------

    async def on_session_update(self, event: dict[str, Any]) -> None:
        update = event.get("session")
        if not isinstance(update, dict):
            await self.error(
                "missing_required_parameter",
                "Missing required parameter: 'session'.",
                param="session",
                client_event=event,
            )
            return
        problem = _session_update_problem(update)
        if problem is not None:
            code, message, param = problem
            await self.error(code, message, param=param, client_event=event)
            return
        update = {key: value for key, value in update.items() if key not in ("model", "object", "id", "expires_at")}
        self.session = _merge(self.session, update)
        self.record.session = copy.deepcopy(self.session)
        await self.send({"type": "session.updated", "session": copy.deepcopy(self.session)})

    def _turn_detection(self) -> dict[str, Any] | None:
        return self.session["audio"]["input"].get("turn_detection")

    def _input_format(self) -> str:
        return (self.session["audio"]["input"].get("format") or {}).get("type", "audio/pcm")

    def _output_modalities(self, overrides: Mapping[str, Any]) -> list[str]:
        return list(overrides.get("output_modalities") or self.session.get("output_modalities") or ["audio"])

    # -- input audio --------------------------------------------------------------------------------

    async def on_append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            await self.error(
                "missing_required_parameter", "Missing required parameter: 'audio'.", param="audio", client_event=event
            )
            return
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            await self.error(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio.", param="audio", client_event=event
            )
            return
        self.record.pcm_bytes_received += len(pcm)
        self.fake.pcm_bytes_received += len(pcm)
        self.buffer.extend(pcm)
        if self._input_format() != "audio/pcm":
            # No VAD on G.711 here: count the time and leave turn-taking to explicit commits.
            self.stream_ms += len(pcm) / _G711_BYTES_PER_MS
            return
        turn_detection = self._turn_detection()
        if turn_detection is None:
            self.stream_ms += pcm16_ms(len(pcm))
            return
        self.vad_rest.extend(pcm)
        while len(self.vad_rest) >= _VAD_WINDOW_BYTES:
            window = bytes(self.vad_rest[:_VAD_WINDOW_BYTES])
            del self.vad_rest[:_VAD_WINDOW_BYTES]
            await self._vad_window(window, turn_detection)

    async def _vad_window(self, window: bytes, turn_detection: Mapping[str, Any]) -> None:
        start_ms = self.stream_ms
        self.stream_ms += _VAD_WINDOW_MS
        threshold = self.fake.vad_rms_threshold
        if threshold is None:
            threshold = float(turn_detection.get("threshold") or 0.5) * 2000
        loud = rms_pcm16(window) >= threshold
        if not self.speaking:
            if loud:
                self.speaking = True
                self.silence_ms = 0
                self.last_loud_end_ms = self.stream_ms
                self.speech_item_id = self.ids.next("item")
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": int(start_ms),
                        "item_id": self.speech_item_id,
                    }
                )
                if self.active is not None and turn_detection.get("interrupt_response", True):
                    self.active.cancel_reason = "turn_detected"
            return
        if loud:
            self.silence_ms = 0
            self.last_loud_end_ms = self.stream_ms
            return
        self.silence_ms += _VAD_WINDOW_MS
        silence_needed = turn_detection.get("silence_duration_ms")
        if silence_needed is None:
            silence_needed = 500
        if self.silence_ms < silence_needed:
            return
        self.speaking = False
        item_id = self.speech_item_id or self.ids.next("item")
        self.speech_item_id = None
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": int(self.last_loud_end_ms),
                "item_id": item_id,
            }
        )
        await self._commit(item_id)
        if turn_detection.get("create_response", True) and self.active is None:
            self._start_response({})

    async def on_commit(self, event: dict[str, Any]) -> None:
        bytes_per_ms = BYTES_PER_MS if self._input_format() == "audio/pcm" else _G711_BYTES_PER_MS
        buffered_ms = len(self.buffer) / bytes_per_ms
        if buffered_ms < 100:
            await self.error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {buffered_ms:.2f}ms of audio.",
                client_event=event,
            )
            return
        item_id = self.speech_item_id or self.ids.next("item")
        self.speaking = False
        self.speech_item_id = None
        self.silence_ms = 0
        await self._commit(item_id)

    async def on_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self.vad_rest.clear()
        self.speaking = False
        self.speech_item_id = None
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str) -> None:
        bytes_per_ms = BYTES_PER_MS if self._input_format() == "audio/pcm" else _G711_BYTES_PER_MS
        audio_ms = len(self.buffer) / bytes_per_ms
        self.buffer.clear()
        previous = self._last_item_id()
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        # The transcript is consumed even when transcription is off, so the script stays in step.
        transcript = self.fake._next_transcript()
        state = _Item(item=item, audio_ms=audio_ms, transcript=transcript)
        self._append_item(state)
        await self.send({"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous})
        await self.send({"type": "conversation.item.done", "item": copy.deepcopy(item), "previous_item_id": previous})
        transcription = self.session["audio"]["input"].get("transcription")
        if transcription is None and self.fake.transcription_requires_config:
            return
        item["content"][0]["transcript"] = transcript
        audio_tokens = math.ceil(audio_ms / 100)
        text_tokens = _tokens(transcript)
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": transcript,
            }
        )
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "tokens",
                    "input_tokens": audio_tokens,
                    "output_tokens": text_tokens,
                    "total_tokens": audio_tokens + text_tokens,
                    "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                },
            }
        )

    # -- conversation items -------------------------------------------------------------------------

    def _last_item_id(self) -> str | None:
        return self.items[-1].item["id"] if self.items else None

    def _append_item(self, state: _Item, previous_item_id: str | None = None) -> None:
        position = len(self.items)
        if previous_item_id is not None:
            for index, existing in enumerate(self.items):
                if existing.item["id"] == previous_item_id:
                    position = index + 1
        self.items.insert(position, state)
        self.record.items = [state.item for state in self.items]

    def _find(self, item_id: Any) -> _Item | None:
        return next((state for state in self.items if state.item["id"] == item_id), None)

    async def on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            await self.error(
                "missing_required_parameter", "Missing required parameter: 'item'.", param="item", client_event=event
            )
            return
        item = copy.deepcopy(item)
        kind = item.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            await self.error("invalid_value", f"Invalid value: '{kind}'.", param="item.type", client_event=event)
            return
        required = {"function_call_output": ("call_id", "output"), "function_call": ("name", "arguments")}.get(kind, ())
        for name in required:
            if name not in item:
                await self.error(
                    "missing_required_parameter",
                    f"Missing required parameter: 'item.{name}'.",
                    param=f"item.{name}",
                    client_event=event,
                )
                return
        if kind == "function_call_output" and not isinstance(item["output"], str):
            await self.error(
                "invalid_type",
                "Invalid type for 'item.output': expected a string.",
                param="item.output",
                client_event=event,
            )
            return
        previous_item_id = event.get("previous_item_id")
        if previous_item_id is not None and self._find(previous_item_id) is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{previous_item_id}'. No item with this id.",
                param="previous_item_id",
                client_event=event,
            )
            return
        item.setdefault("id", self.ids.next("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        previous = previous_item_id if previous_item_id is not None else self._last_item_id()
        self._append_item(_Item(item=item), previous_item_id)
        await self.send({"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous})
        await self.send({"type": "conversation.item.done", "item": copy.deepcopy(item), "previous_item_id": previous})

    async def on_truncate(self, event: dict[str, Any]) -> None:
        state = self._find(event.get("item_id"))
        if state is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{event.get('item_id')}'. No item with this id.",
                param="item_id",
                client_event=event,
            )
            return
        content = state.item.get("content") or []
        if state.item.get("role") != "assistant" or not any(part.get("type") == "output_audio" for part in content):
            await self.error(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                client_event=event,
            )
            return
        audio_end_ms = event.get("audio_end_ms")
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            await self.error(
                "invalid_value", "Invalid value for 'audio_end_ms'.", param="audio_end_ms", client_event=event
            )
            return
        if audio_end_ms > state.audio_ms:
            await self.error(
                "invalid_value",
                f"Audio content of {int(state.audio_ms)}ms is already shorter than {audio_end_ms}ms",
                param="audio_end_ms",
                client_event=event,
            )
            return
        content_index = event.get("content_index", 0)
        state.audio_ms = audio_end_ms
        # The real API drops the text transcript so the model can't "know" words the caller never heard.
        for part in content:
            if part.get("type") == "output_audio":
                part["transcript"] = None
        truncation = {"item_id": state.item["id"], "content_index": content_index, "audio_end_ms": audio_end_ms}
        self.fake.truncations.append(truncation)
        await self.send({"type": "conversation.item.truncated", **truncation})

    async def on_item_delete(self, event: dict[str, Any]) -> None:
        state = self._find(event.get("item_id"))
        if state is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{event.get('item_id')}'. No item with this id.",
                param="item_id",
                client_event=event,
            )
            return
        self.items.remove(state)
        self.record.items = [s.item for s in self.items]
        await self.send({"type": "conversation.item.deleted", "item_id": state.item["id"]})

    async def on_item_retrieve(self, event: dict[str, Any]) -> None:
        state = self._find(event.get("item_id"))
        if state is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{event.get('item_id')}'. No item with this id.",
                param="item_id",
                client_event=event,
            )
            return
        await self.send({"type": "conversation.item.retrieved", "item": copy.deepcopy(state.item)})

    async def on_output_audio_clear(self, event: dict[str, Any]) -> None:
        # Fake-specific wording: output_audio_buffer.* exists only for WebRTC/SIP, never over WebSocket.
        await self.error(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            param="type",
            client_event=event,
        )

    # -- responses ----------------------------------------------------------------------------------

    async def on_response_create(self, event: dict[str, Any]) -> None:
        if self.active is not None:
            await self.error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
                client_event=event,
            )
            return
        overrides = event.get("response") if isinstance(event.get("response"), dict) else {}
        self._start_response(overrides)

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            await self.error(
                "response_cancel_not_active", "Cancellation failed: no active response found.", client_event=event
            )
            return
        self.active.cancel_reason = "client_cancelled"

    def _start_response(self, overrides: Mapping[str, Any]) -> None:
        active = _ActiveResponse(id=self.ids.next("resp"))
        self.active = active
        # A task, so the reader keeps handling appends (barge-in) and cancels while audio streams.
        active.task = asyncio.get_running_loop().create_task(self._respond(active, overrides))

    async def _respond(self, active: _ActiveResponse, overrides: Mapping[str, Any]) -> None:
        try:
            await self._produce(active, overrides)
        except _Dropped:
            pass
        except (ConnectionError, asyncio.CancelledError):  # the client went away mid-reply
            pass
        finally:
            if self.active is active:
                self.active = None

    async def _produce(self, active: _ActiveResponse, overrides: Mapping[str, Any]) -> None:
        in_conversation = overrides.get("conversation", "auto") != "none"
        modalities = self._output_modalities(overrides)
        input_usage = self._input_usage(overrides)
        try:
            reply = self.fake._next_reply([state.item for state in self.items])
        except Exception as exc:
            # The test sees the exception in fake.responder_errors; the client sees a failed response.
            self.fake._owner.responder_errors.append(exc)
            reply = RealtimeReply(fail={"type": "server_error", "code": "server_error", "message": repr(exc)})
        response = {
            "object": "realtime.response",
            "id": active.id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id if in_conversation else None,
            "output_modalities": modalities,
            "max_output_tokens": overrides.get("max_output_tokens", self.session.get("max_output_tokens", "inf")),
            "audio": {"output": copy.deepcopy(self.session["audio"]["output"])},
            "usage": None,
            "metadata": overrides.get("metadata"),
        }
        await self.send({"type": "response.created", "response": copy.deepcopy(response)})
        if reply.drop_after_chunks == 0:
            await self.drop(reply.close_code)
            raise _Dropped
        if reply.error_event is not None:
            await self.send({"type": "error", "error": {"event_id": None, "param": None, **reply.error_event}})
            return
        if self.fake.response_latency:
            await asyncio.sleep(self.fake.response_latency)

        output: list[dict[str, Any]] = []
        produced_text = ""
        produced_audio_ms = 0.0
        if reply.fail is None:
            if reply.function_calls:
                for index, call in enumerate(reply.function_calls):
                    if active.cancel_reason:
                        break
                    item = await self._function_call(active, index, call, in_conversation)
                    output.append(item)
                    produced_text += item["name"] + item["arguments"]
            elif reply.text is not None:
                item, produced_text, produced_audio_ms = await self._message(
                    active, reply, "audio" in modalities, in_conversation
                )
                output.append(item)

        if active.cancel_reason:
            status = "cancelled"
            details: dict[str, Any] | None = {"type": "cancelled", "reason": active.cancel_reason}
        elif reply.fail is not None:
            status = "failed"
            details = {"type": "failed", "error": dict(reply.fail)}
        else:
            status, details = "completed", None
        output_usage = {"text_tokens": _tokens(produced_text) if produced_text else 0}
        output_usage["audio_tokens"] = math.ceil(produced_audio_ms / 50)
        usage = _realtime_usage(input_usage, output_usage, reply.usage)
        # Clear before sending response.done: a client answering it with response.create must not be
        # told a response is still active.
        if self.active is active:
            self.active = None
        await self.send(
            {
                "type": "response.done",
                "response": {**response, "status": status, "status_details": details, "output": output, "usage": usage},
            }
        )

    async def _function_call(
        self, active: _ActiveResponse, index: int, call: FunctionCall, in_conversation: bool
    ) -> dict[str, Any]:
        arguments = call.arguments_json()
        item = {
            "id": self.ids.next("item"),
            "type": "function_call",
            "object": "realtime.item",
            "status": "in_progress",
            "call_id": call.call_id or self.ids.next("call"),
            "name": call.name,
            "arguments": "",
        }
        where = {"response_id": active.id, "output_index": index}
        previous = self._last_item_id()
        await self.send({"type": "response.output_item.added", **where, "item": copy.deepcopy(item)})
        if in_conversation:
            self._append_item(_Item(item=item))
            await self.send(
                {"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous}
            )
        ids = {"item_id": item["id"], "call_id": item["call_id"]}
        size = max(1, math.ceil(len(arguments) / 3))
        for start in range(0, len(arguments), size):
            await self.send(
                {
                    "type": "response.function_call_arguments.delta",
                    **where,
                    **ids,
                    "delta": arguments[start : start + size],
                }
            )
        item.update(arguments=arguments, status="completed")
        await self.send(
            {"type": "response.function_call_arguments.done", **where, **ids, "name": call.name, "arguments": arguments}
        )
        await self.send({"type": "response.output_item.done", **where, "item": copy.deepcopy(item)})
        if in_conversation:
            await self.send(
                {"type": "conversation.item.done", "item": copy.deepcopy(item), "previous_item_id": previous}
            )
        return copy.deepcopy(item)

    async def _message(
        self, active: _ActiveResponse, reply: RealtimeReply, audio: bool, in_conversation: bool
    ) -> tuple[dict[str, Any], str, float]:
        text = reply.text or ""
        item = {
            "id": self.ids.next("item"),
            "type": "message",
            "object": "realtime.item",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        state = _Item(item=item)
        where = {"response_id": active.id, "item_id": item["id"], "output_index": 0, "content_index": 0}
        previous = self._last_item_id()
        await self.send(
            {
                "type": "response.output_item.added",
                **_drop_key(where, "item_id", "content_index"),
                "item": copy.deepcopy(item),
            }
        )
        if in_conversation:
            self._append_item(state)
            await self.send(
                {"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous}
            )
        part_type = "audio" if audio else "text"
        text_key = "transcript" if audio else "text"
        await self.send({"type": "response.content_part.added", **where, "part": {"type": part_type, text_key: ""}})

        words = _words(text)
        sent_words = 0
        delivered = ""
        if audio:
            chunk_ms = self.fake.chunk_ms
            total_ms = reply.spoken_ms()
            n_chunks = max(1, math.ceil(total_ms / chunk_ms))
            for index in range(n_chunks):
                if active.cancel_reason:
                    break
                if reply.drop_after_chunks is not None and index >= reply.drop_after_chunks:
                    await self.drop(reply.close_code)
                    raise _Dropped
                # Spread the words over the chunks so transcript and audio advance together.
                upto = math.ceil(len(words) * (index + 1) / n_chunks)
                piece = "".join(words[sent_words:upto])
                sent_words = max(sent_words, upto)
                if piece:
                    delivered += piece
                    await self.send({"type": "response.output_audio_transcript.delta", **where, "delta": piece})
                this_ms = min(chunk_ms, total_ms - index * chunk_ms)
                pcm = sine_pcm16(this_ms, phase_samples=index * chunk_ms * 24)
                await self.send({"type": "response.output_audio.delta", **where, "delta": b64(pcm)})
                state.audio_ms += pcm16_ms(len(pcm))
                self.audio_produced = True
                await asyncio.sleep(this_ms / 1000 * self.fake.audio_pacing)
            await self.send({"type": "response.output_audio.done", **where})
            await self.send({"type": "response.output_audio_transcript.done", **where, "transcript": delivered})
            final_part = {"type": "output_audio", "transcript": delivered}
        else:
            for word in words:
                if active.cancel_reason:
                    break
                delivered += word
                await self.send({"type": "response.output_text.delta", **where, "delta": word})
                await asyncio.sleep(0)
            await self.send({"type": "response.output_text.done", **where, "text": delivered})
            final_part = {"type": "output_text", "text": delivered}
        await self.send(
            {"type": "response.content_part.done", **where, "part": {"type": part_type, text_key: delivered}}
        )
        item.update(status="incomplete" if active.cancel_reason else "completed", content=[final_part])
        await self.send(
            {
                "type": "response.output_item.done",
                **_drop_key(where, "item_id", "content_index"),
                "item": copy.deepcopy(item),
            }
        )
        if in_conversation:
            await self.send(
                {"type": "conversation.item.done", "item": copy.deepcopy(item), "previous_item_id": previous}
            )
        return copy.deepcopy(item), delivered, state.audio_ms

    def _input_usage(self, overrides: Mapping[str, Any]) -> dict[str, int]:
        """Tokens the model reads for this response: instructions, tools and the conversation so far."""
        instructions = overrides.get("instructions", self.session.get("instructions")) or ""
        tools = overrides.get("tools", self.session.get("tools")) or []
        text = instructions + json.dumps(tools, separators=(",", ":"))
        audio_tokens = 0
        for state in self.items:
            item = state.item
            if item.get("type") == "message" and item.get("role") == "user" and state.audio_ms:
                audio_tokens += math.ceil(state.audio_ms / 100)  # ~1 token per 100 ms of caller audio
            elif item.get("type") == "message" and item.get("role") == "assistant" and state.audio_ms:
                audio_tokens += math.ceil(state.audio_ms / 50)  # ~1 token per 50 ms of model audio
            else:
                text += json.dumps(item.get("content") or item.get("output") or item.get("arguments") or "")
        return {"text_tokens": _tokens(text), "audio_tokens": audio_tokens}


def _drop_key(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in keys}


def _words(text: str) -> list[str]:
    # Word-sized pieces whose concatenation is exactly `text`.
    return [chunk for chunk in re.findall(r"\S*\s*", text) if chunk]


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _realtime_usage(
    input_usage: Mapping[str, int], output_usage: Mapping[str, int], override: Mapping[str, Any] | None
) -> dict[str, Any]:
    input_details: dict[str, Any] = {
        "text_tokens": input_usage["text_tokens"],
        "audio_tokens": input_usage["audio_tokens"],
        "image_tokens": 0,
        "cached_tokens": 0,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
    }
    output_details: dict[str, Any] = {
        "text_tokens": output_usage["text_tokens"],
        "audio_tokens": output_usage["audio_tokens"],
    }
    override = copy.deepcopy(dict(override or {}))
    if "input_token_details" in override:
        extra = override.pop("input_token_details")
        cached_details = extra.pop("cached_tokens_details", None)
        input_details.update(extra)
        if cached_details:
            input_details["cached_tokens_details"].update(cached_details)
    if "output_token_details" in override:
        output_details.update(override.pop("output_token_details"))
    usage: dict[str, Any] = {
        "input_tokens": input_details["text_tokens"] + input_details["audio_tokens"] + input_details["image_tokens"],
        "output_tokens": output_details["text_tokens"] + output_details["audio_tokens"],
        "input_token_details": input_details,
        "output_token_details": output_details,
    }
    usage.update(override)
    usage.setdefault("total_tokens", usage["input_tokens"] + usage["output_tokens"])
    return usage


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge a session.update: nested objects merge, anything else (lists, null) replaces."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict) and key not in ("turn_detection",):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _session_update_problem(update: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(code, message, param) of the error the real API sends for this session.update, if any."""
    session_type = update.get("type")
    if session_type is None:
        return ("missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type")
    if session_type != "realtime":
        return (
            "invalid_value",
            f"Invalid value: '{session_type}'. This fake supports only 'realtime' sessions.",
            "session.type",
        )
    modalities = update.get("output_modalities")
    if modalities is not None and (not modalities or set(modalities) - {"audio", "text"} or len(modalities) > 1):
        return (
            "invalid_value",
            f"Invalid value: {modalities!r}. Supported combinations are: ['text'] and ['audio'].",
            "session.output_modalities",
        )
    audio = update.get("audio") or {}
    for direction in ("input", "output"):
        audio_format = (audio.get(direction) or {}).get("format")
        if audio_format is None:
            continue
        param = f"session.audio.{direction}.format"
        format_type = audio_format.get("type")
        if format_type not in _AUDIO_FORMATS:
            return (
                "invalid_value",
                f"Invalid value: '{format_type}'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'.",
                f"{param}.type",
            )
        if format_type == "audio/pcm":
            if "rate" not in audio_format:
                return ("missing_required_parameter", f"Missing required parameter: '{param}.rate'.", f"{param}.rate")
            if audio_format["rate"] != 24000:
                return (
                    "invalid_value",
                    f"Invalid value: {audio_format['rate']}. Supported values are: 24000.",
                    f"{param}.rate",
                )
    turn_detection = (audio.get("input") or {}).get("turn_detection")
    if turn_detection is not None and turn_detection.get("type") not in ("server_vad", "semantic_vad"):
        return (
            "invalid_value",
            f"Invalid value: '{turn_detection.get('type')}'. Supported values are: 'server_vad' and 'semantic_vad'.",
            "session.audio.input.turn_detection.type",
        )
    return None
