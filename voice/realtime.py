"""The one module that opens the OpenAI Realtime socket (GA interface, through the official SDK).

One upstream connection per call, opened with `AsyncOpenAI(...).realtime.connect()` (no beta
header: the beta shape was retired and is refused with close code 4000). The SDK never retries
here (`max_retries=0`, no `on_reconnecting`): a call whose socket died is ended and the customer
is offered the text chat, rather than silently resumed in a new session with no memory.

Events are sent and received as raw JSON (`send_raw` / `recv_bytes`): the wire is identical,
but the SDK's typed path validates every outgoing event against its TypedDicts and builds a
pydantic model for every incoming one, which for 25 audio frames a second in each direction
is most of a relay's CPU (bench/voice_relay.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import weakref
from typing import Any

import websockets
from django.conf import settings
from openai import AsyncOpenAI

logger = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple, AsyncOpenAI]] = weakref.WeakKeyDictionary()

VOICE_ADDENDUM = """
This is a live voice call: the customer hears you and speaks to you.
- Speak briefly: one or two short sentences per turn, then let the customer answer.
- Before you call a tool, say a short filler such as "Let me check." so the line is never silent.
- Say dates as weekday, month and day, and times like "nine thirty a.m.".
- Spell booking numbers character by character (for example "B K, 2 0 2 6, 0 0 0 1 2 3") and phone numbers
  digit by digit when you read them back.
- If you did not catch something (a name, a number, an address), ask the customer to repeat it.
"""

GREETING_NEW = (
    "When the call starts, greet the caller as the receptionist in one short sentence and ask how you can help."
)
# Only for a conversation the customer really typed in: a fresh call must not be told about a
# chat that never happened (nor get the chat's greeting, which the caller never saw).
GREETING_AFTER_CHAT = (
    "The customer was typing in the chat before switching to this call; that conversation is in the history. "
    "When the call starts, say hello in one short sentence and continue where the chat left off."
)
GREETING_AFTER_CALL = (
    "The customer already spoke with you on an earlier call in this conversation; it is in the history. "
    "When the call starts, say hello in one short sentence and continue where you left off."
)
# What came before a call: nothing (a new voice conversation), a typed chat, or only earlier calls.
NEW, AFTER_CHAT, AFTER_CALL = "new", "after_chat", "after_call"
_GREETINGS = {NEW: GREETING_NEW, AFTER_CHAT: GREETING_AFTER_CHAT, AFTER_CALL: GREETING_AFTER_CALL}


UPSTREAM_CLOSE_SECONDS = 1.0


class RealtimeUnavailable(Exception):
    """The Realtime API could not be reached, refused the session, or the socket died."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail[:250]


def instructions(base: str, *, before: str = NEW) -> str:
    """The text chat's instructions and policies, plus how to behave on a call.

    `before` is what the conversation held before this call: NEW, AFTER_CHAT or AFTER_CALL.
    """
    return base + VOICE_ADDENDUM + _GREETINGS[before]


def turn_detection() -> dict[str, Any]:
    # interrupt_response: the model stops talking as soon as the caller does (barge-in);
    # create_response: the server answers each finished turn, we never commit audio ourselves.
    if settings.OPENAI_REALTIME_TURN_DETECTION == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": settings.OPENAI_REALTIME_VAD_SILENCE_MS,
        "create_response": True,
        "interrupt_response": True,
    }


def session_config(*, instructions: str, tools: list[dict]) -> dict[str, Any]:
    """The GA `session.update.session` for a call."""
    return {
        "type": "realtime",
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                # Browser microphones are close to the mouth.
                "noise_reduction": {"type": "near_field"},
                # Off by default; without it there is no customer transcript at all.
                "transcription": {
                    "model": settings.OPENAI_REALTIME_TRANSCRIPTION_MODEL,
                    "prompt": f"{settings.BUSINESS_NAME}: HVAC, furnace, plumbing, drains, electrical.",
                },
                "turn_detection": turn_detection(),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": settings.OPENAI_REALTIME_VOICE},
        },
        "tools": tools,
        "tool_choice": "auto",
        "max_output_tokens": settings.OPENAI_REALTIME_MAX_OUTPUT_TOKENS,
    }


def conversation_items(model_items: list[dict], limit: int = 40) -> list[dict]:
    """The text chat's history (Responses API items) as Realtime conversation items.

    Messages and function calls with their outputs carry over; reasoning items cannot
    (they are encrypted for the text model). An output whose call was cut off by `limit`
    is dropped, because the Realtime API rejects an output without its call.
    """
    items: list[dict] = []
    calls: set[str] = set()
    for item in model_items[-limit:]:
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("user", "assistant", "system"):
            text = _text_of(item.get("content"))
            if not text:
                continue
            role = item["role"]
            part = "output_text" if role == "assistant" else "input_text"
            items.append({"type": "message", "role": role, "content": [{"type": part, "text": text}]})
        elif kind == "function_call" and item.get("call_id"):
            calls.add(item["call_id"])
            items.append(
                {
                    "type": "function_call",
                    "call_id": item["call_id"],
                    "name": item.get("name", ""),
                    "arguments": item.get("arguments") or "{}",
                }
            )
        elif kind == "function_call_output" and item.get("call_id") in calls:
            output = item.get("output")
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": item["call_id"],
                    "output": output if isinstance(output, str) else json.dumps(output, default=str),
                }
            )
    return items


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or part.get("transcript") or "") for part in content if isinstance(part, dict)
        )
    return ""


class RealtimeLink:
    """One open Realtime socket. Every method raises RealtimeUnavailable when the socket is gone."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._closed = False
        self.session_id = ""

    async def send(self, event: dict[str, Any]) -> None:
        await self._send_raw(json.dumps(event, separators=(",", ":")))

    async def append_audio(self, pcm: bytes) -> None:
        # Built by hand: base64 needs no JSON escaping, and this runs 25 times a second per call.
        b64 = base64.b64encode(pcm).decode("ascii")
        await self._send_raw('{"type":"input_audio_buffer.append","audio":"' + b64 + '"}')

    async def recv(self) -> dict[str, Any] | None:
        """The next server event, or None when the server closed the socket normally."""
        try:
            data = await self._connection.recv_bytes()
        except websockets.ConnectionClosedOK:
            return None
        except (websockets.ConnectionClosed, OSError) as error:
            raise RealtimeUnavailable("dropped", str(error) or type(error).__name__) from error
        try:
            event = json.loads(data)
        except ValueError as error:
            raise RealtimeUnavailable("bad_event", "the server sent something that is not JSON") from error
        return event if isinstance(event, dict) else {}

    async def configure(self, session: dict[str, Any], items: list[dict], timeout: float) -> None:
        """Send the session and the prior conversation; return once the session is confirmed."""
        await self.send({"type": "session.update", "session": session})
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self.recv()
                    if event is None:
                        raise RealtimeUnavailable("closed", "the server closed the socket during setup")
                    kind = event.get("type")
                    if kind == "session.created":
                        self.session_id = str((event.get("session") or {}).get("id") or "")
                    elif kind == "session.updated":
                        break
                    elif kind == "error":
                        error = event.get("error") or {}
                        raise RealtimeUnavailable(
                            "session_rejected", f"{error.get('code')}: {error.get('message')} ({error.get('param')})"
                        )
        except TimeoutError as error:
            raise RealtimeUnavailable("timeout", "no session.updated from the server") from error
        for item in items:
            await self.send({"type": "conversation.item.create", "item": item})

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._connection.close()
        except Exception:  # already dead: nothing left to release
            logger.debug("closing a dead realtime socket", exc_info=True)

    async def _send_raw(self, data: str) -> None:
        try:
            await self._connection.send_raw(data)
        except (websockets.ConnectionClosed, OSError) as error:
            raise RealtimeUnavailable("dropped", str(error) or type(error).__name__) from error


def _client() -> AsyncOpenAI:
    """One client per event loop and configuration (building one per call costs an HTTP pool)."""
    loop = asyncio.get_running_loop()
    config = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL)
    cached = _clients.get(loop)
    if cached is None or cached[0] != config:
        cached = (
            config,
            AsyncOpenAI(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=0),
        )
        _clients[loop] = cached
    return cached[1]


async def connect() -> RealtimeLink:
    """Open the socket for one call. The caller must `close()` it on every path out."""
    manager = _client().realtime.connect(
        model=settings.OPENAI_REALTIME_MODEL,
        websocket_connection_options={
            "open_timeout": settings.VOICE_CONNECT_TIMEOUT_SECONDS,
            # Closing mid-reply, the server's close frame sits behind audio nobody reads any more
            # (the call is over): give up on the handshake quickly instead of after the default 10 s.
            "close_timeout": UPSTREAM_CLOSE_SECONDS,
        },
    )
    try:
        connection = await manager.enter()
    except asyncio.CancelledError:
        raise
    except Exception as error:  # refused, DNS, TLS, HTTP 401/403/5xx on the upgrade, timeout
        raise RealtimeUnavailable("unreachable", f"{type(error).__name__}: {error}") from error
    return RealtimeLink(connection)


async def discard_connection(connecting: asyncio.Task[RealtimeLink]) -> None:
    """Cancel a connection attempt; close the socket if it opened anyway."""
    if not connecting.done():
        connecting.cancel()
    await asyncio.wait([connecting])
    if not connecting.cancelled() and connecting.exception() is None:
        await connecting.result().close()
