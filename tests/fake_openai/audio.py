"""PCM16 helpers: 24 kHz mono signed 16-bit little-endian, the only PCM format the Realtime API takes.

Used by the fake (its VAD and its spoken replies) and by tests that need "loud" and "silent" audio.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array

SAMPLE_RATE = 24_000
BYTES_PER_SAMPLE = 2
# 24 000 samples/s * 2 bytes / 1000 ms: played_ms = bytes / 48.
BYTES_PER_MS = SAMPLE_RATE * BYTES_PER_SAMPLE // 1000


def pcm16_ms(n_bytes: int) -> float:
    """Duration in milliseconds of `n_bytes` of PCM16 24 kHz mono."""
    return n_bytes / BYTES_PER_MS


def _samples(values: array) -> bytes:
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def sine_pcm16(ms: float, *, frequency: float = 440.0, amplitude: int = 8000, phase_samples: int = 0) -> bytes:
    """A sine tone (`amplitude` 8000 is ~-12 dBFS: clearly speech-loud for the fake's VAD)."""
    count = round(ms * SAMPLE_RATE / 1000)
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return _samples(array("h", (int(amplitude * math.sin(step * (phase_samples + i))) for i in range(count))))


def silence_pcm16(ms: float) -> bytes:
    """Digital silence."""
    return bytes(round(ms * SAMPLE_RATE / 1000) * BYTES_PER_SAMPLE)


def rms_pcm16(pcm: bytes) -> float:
    """Root mean square of the samples (0 for silence, ~amplitude/1.414 for a sine)."""
    usable = len(pcm) - len(pcm) % BYTES_PER_SAMPLE
    if not usable:
        return 0.0
    values = array("h", pcm[:usable])
    if sys.byteorder != "little":
        values.byteswap()
    return math.sqrt(sum(v * v for v in values) / len(values))


def b64(pcm: bytes) -> str:
    """Base64 text, as `input_audio_buffer.append.audio` and `response.output_audio.delta.delta` carry it."""
    return base64.b64encode(pcm).decode("ascii")


def chunks(pcm: bytes, ms: float = 100) -> list[bytes]:
    """Split PCM into `ms`-long pieces (20-100 ms appends are what OpenAI recommends)."""
    size = max(BYTES_PER_SAMPLE, round(ms * BYTES_PER_MS) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
