"""Wire emulation of the Realtime GA WebSocket (`GET /v1/realtime?model=...`): one `_Session` per connection.

Event names, field names and orderings follow /work/shared/reference/openai-wire-protocol.md section 4
and were checked against the SDK 3.57.0 types in `openai/types/realtime/`. What a connection answers
comes from the script in `realtime_script.py` (`fake.realtime`). The connection is split by the
protocol's own areas:

- here: the handshake, the event loop and dispatch, `error` events, drops, `session.update`, and the
  responses (`response.create` / `.cancel`: event sequences, audio chunking, `response.done` usage);
- `realtime_config.py`: the session object (defaults, which `session.update` is rejected, merging);
- `realtime_input.py`: `input_audio_buffer.*`, the deterministic VAD, commits and input transcription;
- `realtime_items.py`: the conversation items and `conversation.item.*`.

Behaviour in short:
- `session.created` on connect; `session.update` is validated (`session.type == "realtime"`, audio
  formats, rate 24000), merged and echoed as `session.updated`.
- Appended audio is counted and, with server/semantic VAD on and `audio/pcm` input, turned into turns
  (`speech_started` ... `committed`, `conversation.item.added`/`.done`, the input transcription when
  `audio.input.transcription` is configured, and with `create_response` a response).
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
import copy
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from .audio import b64, pcm16_ms, sine_pcm16
from .realtime_config import default_session, merge_session_update, session_update_problem
from .realtime_input import InputAudioBuffer
from .realtime_items import ConversationItem, ConversationItems
from .realtime_script import FakeRealtime, RealtimeConnection, RealtimeReply
from .responses_api import argument_deltas, estimate_tokens, word_deltas
from .responses_script import FunctionCall

__all__ = ["handle_websocket"]


async def handle_websocket(fake: FakeRealtime, request: web.Request) -> web.StreamResponse:
    """`GET /v1/realtime`: check the handshake, upgrade, and run a `_Session` until the socket closes."""
    record = RealtimeConnection(
        query=dict(request.query), headers={key.lower(): value for key, value in request.headers.items()}
    )
    with fake._lock:
        fake.connections.append(record)

    # Handshake failures are plain HTTP answers, which the SDK surfaces as websockets' InvalidStatus.
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if fake._owner.require_auth and (scheme != "Bearer" or not key.strip()):
        return web.json_response(
            {"error": {"message": "Missing bearer authentication.", "type": "invalid_request_error"}}, status=401
        )
    if not request.query.get("model") and not request.query.get("call_id"):
        return web.json_response(
            {"error": {"message": "Missing required parameter: 'model'.", "type": "invalid_request_error"}},
            status=400,
        )

    ws = web.WebSocketResponse(max_msg_size=16 * 1024**2, compress=False, autoping=True, autoclose=not fake.close_delay)
    await ws.prepare(request)
    if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
        # The beta interface was retired; the real server closes such sockets with 4000.
        await ws.close(code=4000, message=b"beta_api_shape_disabled")
        record.closed = True
        return ws

    session = _Session(fake, ws, request, record)
    fake._sessions.append(session)
    try:
        await session.run()
    finally:
        fake._sessions.remove(session)
        record.closed = True
    return ws


class _Dropped(Exception):
    """The scripted drop happened: stop producing events."""


@dataclass
class _ActiveResponse:
    id: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None


class _Session(InputAudioBuffer, ConversationItems):
    """State of one connection: session config, audio buffer, VAD, conversation, active response.

    The input audio buffer (`realtime_input.py`) and the conversation items (`realtime_items.py`) are
    mixed in; all the state they use is set up here. bench/voice_relay.py replaces `_Session.on_append`
    and this module's `sine_pcm16` to time audio through the relay, so both keep their names and place.
    """

    def __init__(self, fake: FakeRealtime, ws: web.WebSocketResponse, request: web.Request, record: RealtimeConnection):
        self.fake = fake
        self.ws = ws
        self.request = request
        self.record = record
        self.ids = fake._ids
        self.send_lock = asyncio.Lock()
        self.session = default_session(self.ids, request.query.get("model", ""))
        self.conversation_id = self.ids.next("conv")
        self.items: list[ConversationItem] = []
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

    async def missing_parameter(self, param: str, client_event: Mapping[str, Any]) -> None:
        await self.error(
            "missing_required_parameter",
            f"Missing required parameter: '{param}'.",
            param=param,
            client_event=client_event,
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
            await self.missing_parameter("session", event)
            return
        problem = session_update_problem(update)
        if problem is not None:
            code, message, param = problem
            await self.error(code, message, param=param, client_event=event)
            return
        update = {key: value for key, value in update.items() if key not in ("model", "object", "id", "expires_at")}
        self.session = merge_session_update(self.session, update)
        self.record.session = copy.deepcopy(self.session)
        await self.send({"type": "session.updated", "session": copy.deepcopy(self.session)})

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

    def _output_modalities(self, overrides: Mapping[str, Any]) -> list[str]:
        return list(overrides.get("output_modalities") or self.session.get("output_modalities") or ["audio"])

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
        # As the real API: the standing once a response has started (its output tokens reserved).
        limit = response["max_output_tokens"]
        self.fake.rate_limits.take(limit if isinstance(limit, int) else 4096)
        await self.send({"type": "rate_limits.updated", "rate_limits": self.fake.rate_limits.realtime_entries()})
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
        output_usage = {"text_tokens": estimate_tokens(produced_text)}
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
            self._append_item(ConversationItem(item=item))
            await self.send(
                {"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous}
            )
        ids = {"item_id": item["id"], "call_id": item["call_id"]}
        for delta in argument_deltas(arguments):
            await self.send({"type": "response.function_call_arguments.delta", **where, **ids, "delta": delta})
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
        state = ConversationItem(item=item)
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

        words = word_deltas(text)
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
        return {"text_tokens": estimate_tokens(text), "audio_tokens": audio_tokens}


def _drop_key(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in keys}


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
