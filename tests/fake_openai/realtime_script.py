"""Scripting API of the fake Realtime WebSocket (`GET /v1/realtime`): what a test says the caller and
the model say, and what went over the socket. Reach it as `fake.realtime`.

Lives here:
- `RealtimeReply`, one scripted model response (spoken or written text, function calls, a drop, a
  failed response, an `error` event, usage overrides), and the loose forms `queue()` accepts;
- `FakeRealtime`: `queue_turn`, `queue_transcript`, `queue_reply`, `queue_function_call(s)`,
  `queue_drop`, `queue_failed_response`, `queue_error_event`, `respond_with`, `reset`,
  `drop_connections`; the knobs (`chunk_ms`, `audio_pacing`, `response_latency`, `close_delay`,
  `vad_rms_threshold`, `transcription_requires_config`); the recordings (`connections`, `events`,
  `sent`, `truncations`, `pcm_bytes_received`) and ways to read them (`event_types`,
  `wait_for_client_event[_async]`, ...);
- `RealtimeConnection`, the recordings of one connection.

How the socket behaves (handshake, event dispatch, VAD, items, response event sequences, audio
chunking, usage) is the wire emulation in `realtime.py` and the `realtime_*.py` modules it names.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .rate_limits import RateLimits
from .responses_api import IdFactory
from .responses_script import FunctionCall, as_function_call, coerce_reply

if TYPE_CHECKING:
    from .realtime import _Session
    from .server import FakeOpenAI

__all__ = ["FakeRealtime", "RealtimeConnection", "RealtimeReply", "RealtimeReplySpec"]


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


def coerce_realtime_reply(spec: RealtimeReplySpec, default_text: str) -> RealtimeReply:
    """A `RealtimeReply` from any `RealtimeReplySpec` (`None`: a spoken `default_text`)."""
    if spec is None:
        return RealtimeReply(text=default_text)
    if isinstance(spec, RealtimeReply):
        return spec
    if isinstance(spec, str | FunctionCall | Sequence):
        # The same loose forms as the Responses API script: a text, one call, or a list of calls.
        reply = coerce_reply(spec)
        return RealtimeReply(text=reply.text, function_calls=reply.function_calls)
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
        self._sessions: list[_Session] = []  # the open connections, run by realtime.py
        self._ids = IdFactory()

        self.rate_limits = RateLimits()
        """The voice model's limits, sent as `rate_limits.updated` when each response starts
        (rate_limits.py). Report only: a Realtime session is not refused mid-call."""
        self.rate_limits.enforce = False
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
            self._replies.extend(coerce_realtime_reply(spec, self.default_reply_text) for spec in specs)

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
            calls = [as_function_call(call) for call in function_calls]
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
        self.queue([as_function_call(call) for call in calls])

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
        self.rate_limits = RateLimits()
        self.rate_limits.enforce = False

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
        while (event := self._arrived(event_type, count, deadline, timeout)) is None:
            time.sleep(0.01)
        return event

    async def wait_for_client_event_async(
        self, event_type: str, *, count: int = 1, timeout: float = 5.0
    ) -> dict[str, Any]:
        """`wait_for_client_event` that yields to the caller's event loop while waiting."""
        deadline = time.monotonic() + timeout
        while (event := self._arrived(event_type, count, deadline, timeout)) is None:
            await asyncio.sleep(0.01)
        return event

    def _arrived(self, event_type: str, count: int, deadline: float, timeout: float) -> dict[str, Any] | None:
        """Client event #`count` of `event_type` if it has arrived; raise TimeoutError after `deadline`."""
        found = self.client_events(event_type)
        if len(found) >= count:
            return found[count - 1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event_type!r} #{count} within {timeout}s; got {self.event_types()}")
        return None

    def drop_connections(self, *, close_code: int | None = None) -> None:
        """Kill every open connection now (no close frame unless `close_code` is given)."""
        loop = self._owner._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._drop_all(close_code), loop).result(timeout=5)

    # ----------------------------------------------------------------------------------------------
    # Used by the wire side (realtime.py): the script is consumed one transcript, one reply at a time

    def _next_transcript(self) -> str:
        with self._lock:
            return self._transcripts.popleft() if self._transcripts else self.default_transcript

    def _next_reply(self, items: list[dict[str, Any]]) -> RealtimeReply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            responder = self._responder
        if responder is not None:
            return coerce_realtime_reply(responder(copy.deepcopy(items)), self.default_reply_text)
        return RealtimeReply(text=self.default_reply_text)

    async def _drop_all(self, close_code: int | None) -> None:
        for session in list(self._sessions):
            await session.drop(close_code)

    async def _close_all(self) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"fake server shutting down")
