"""Microphone input for browser tests, generated at test time (no audio files in the repo).

Chromium's fake microphone (`--use-file-for-fake-audio-capture=<wav>`) plays a WAV file in
a loop. `speech_wav` speaks a sentence with espeak-ng and pads it with silence, so every
loop is one caller turn: speech, then enough quiet for the fake Realtime server's VAD
(500 ms of silence) to end the turn and for the answer to play.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

ESPEAK = shutil.which("espeak-ng") or "espeak-ng"
SOX = shutil.which("sox") or "sox"


def speech_wav(
    directory: Path,
    text: str,
    *,
    lead_s: float = 0.5,
    tail_s: float = 4.0,
    rate: int = 48_000,
    name: str = "speech.wav",
) -> Path:
    """`text` spoken by espeak-ng as 16-bit mono WAV at `rate`, with silence before and after."""
    raw = directory / f"{name}.espeak.wav"
    out = directory / name
    subprocess.run([ESPEAK, "-v", "en-us", "-s", "165", "-w", str(raw), text], check=True, capture_output=True)
    # norm -3: a steady, clearly-speech level whatever espeak's default amplitude is.
    subprocess.run(
        [
            SOX,
            str(raw),
            "-r",
            str(rate),
            "-b",
            "16",
            "-c",
            "1",
            str(out),
            "norm",
            "-3",
            "pad",
            str(lead_s),
            str(tail_s),
        ],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return out


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()
