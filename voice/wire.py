"""The browser's side of a voice call's wire (voice/PROTOCOL.md): close codes, what the call
needs of the browser, the frames it accepts, and the words it sends when something fails.

Split from voice/calls.py, whose `VoiceCall` speaks this protocol; voice/consumers.py is the
`Browser` and closes with these codes too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

# Close codes (voice/PROTOCOL.md).
NORMAL = 1000
SERVER_ERROR = 1011
SERVICE_RESTART = 1012
BAD_FRAME = 4400
IDLE = 4408
MAX_DURATION = 4409
FRAME_TOO_LARGE = 4413
RATE_LIMITED = 4429
UNAVAILABLE = 4503

REPLY_FAILED = "Sorry, I missed that because of a problem on our side. Could you say it again?"
UPSTREAM_LOST = (
    "upstream_error",
    "The voice service stopped responding. Everything said so far is saved: you can continue by typing.",
)


class Browser(Protocol):
    """The customer's end of the call (the Channels consumer)."""

    async def send_json(self, message: dict[str, Any]) -> None: ...

    async def send_audio(self, pcm: bytes) -> None: ...

    async def close(self, code: int) -> None: ...


@dataclass(frozen=True)
class Frame:
    """A well-formed frame from the browser: audio, a playback report, a hang-up or a ping."""

    kind: str
    audio: bytes = b""
    item_id: str = ""
    played_ms: int = 0


@dataclass(frozen=True)
class BadFrame:
    """A frame the protocol does not allow: the call ends with this close code and message."""

    code: int
    message: str


def read_frame(*, text: str | None, data: bytes | None, max_bytes: int, max_chars: int) -> Frame | BadFrame | None:
    """One browser frame, checked against the protocol (None: a frame with nothing in it)."""
    if data is not None:
        if len(data) > max_bytes:
            return BadFrame(FRAME_TOO_LARGE, f"Audio frames must be at most {max_bytes} bytes.")
        if len(data) % 2:
            return BadFrame(BAD_FRAME, "Audio frames must hold whole 16-bit samples (an even length).")
        return Frame("audio", audio=data)
    if text is None:
        return None
    if len(text) > max_chars:
        return BadFrame(FRAME_TOO_LARGE, f"Text frames must be at most {max_chars} characters.")
    try:
        message = json.loads(text)
    except ValueError:
        return BadFrame(BAD_FRAME, "Text frames must be JSON objects.")
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "playback":
        item_id, played_ms = message.get("item_id"), message.get("played_ms")
        if (
            not isinstance(item_id, str)
            or len(item_id) > 100
            or not isinstance(played_ms, int)
            or isinstance(played_ms, bool)
            or played_ms < 0
        ):
            return BadFrame(BAD_FRAME, "playback needs item_id (string) and played_ms (integer >= 0).")
        return Frame("playback", item_id=item_id, played_ms=played_ms)
    if kind in ("hangup", "ping"):
        return Frame(kind)
    return BadFrame(BAD_FRAME, "Unknown message type.")
