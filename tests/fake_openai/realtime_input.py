"""The input audio buffer of a fake Realtime connection (wire protocol sections 4.3 to 4.5):
`input_audio_buffer.append` / `.commit` / `.clear`, the deterministic server VAD, and the caller's
committed audio item with its input transcription.

VAD: with server/semantic VAD on and `audio/pcm` input, appended audio is cut into 20 ms windows and a
window is speech when its RMS energy reaches the threshold (`FakeRealtime.vad_rms_threshold`, else the
session's `threshold` * 2000). The first loud window gives `speech_started` (and, with
`interrupt_response`, cancels an active response: barge-in); `silence_duration_ms` (default 500) of
quiet windows gives `speech_stopped`, the commit and, with `create_response`, a response.

`InputAudioBuffer` is mixed into the connection (`_Session` in `realtime.py`), which provides `send`,
`error`, `ids`, `fake` (the script), `record`, `session`, `active` and `_start_response`, and holds the
buffer state it sets up in `__init__`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from collections.abc import Mapping
from typing import Any

from .audio import BYTES_PER_MS, pcm16_ms, rms_pcm16
from .realtime_items import ConversationItem
from .responses_api import estimate_tokens

__all__ = ["InputAudioBuffer"]

_VAD_WINDOW_MS = 20
_VAD_WINDOW_BYTES = _VAD_WINDOW_MS * BYTES_PER_MS
# G.711 (pcmu/pcma) is 8 kHz, one byte per sample.
_G711_BYTES_PER_MS = 8


class InputAudioBuffer:
    """`input_audio_buffer.*` handling and VAD for the connection."""

    def _turn_detection(self) -> dict[str, Any] | None:
        return self.session["audio"]["input"].get("turn_detection")

    def _input_format(self) -> str:
        return (self.session["audio"]["input"].get("format") or {}).get("type", "audio/pcm")

    def _buffered_ms(self) -> float:
        bytes_per_ms = BYTES_PER_MS if self._input_format() == "audio/pcm" else _G711_BYTES_PER_MS
        return len(self.buffer) / bytes_per_ms

    async def on_append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            await self.missing_parameter("audio", event)
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
        buffered_ms = self._buffered_ms()
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
        audio_ms = self._buffered_ms()
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
        state = ConversationItem(item=item, audio_ms=audio_ms, transcript=transcript)
        self._append_item(state)
        await self.send({"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous})
        await self.send({"type": "conversation.item.done", "item": copy.deepcopy(item), "previous_item_id": previous})
        transcription = self.session["audio"]["input"].get("transcription")
        if transcription is None and self.fake.transcription_requires_config:
            return
        item["content"][0]["transcript"] = transcript
        audio_tokens = math.ceil(audio_ms / 100)
        text_tokens = estimate_tokens(transcript)
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
