"""The Realtime session object (wire protocol section 4.2): what a connection starts with, which
`session.update` the real API rejects, and how an accepted update is merged.

Used by the connection in `realtime.py`, which sends the result as `session.created` / `session.updated`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from .responses_api import IdFactory

__all__ = ["default_session", "merge_session_update", "session_update_problem"]

_AUDIO_FORMATS = ("audio/pcm", "audio/pcmu", "audio/pcma")


def default_session(ids: IdFactory, model: str) -> dict[str, Any]:
    """The session a new connection gets (`session.created`): the real API's defaults for `model`."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": ids.next("sess"),
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


def merge_session_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge a session.update: nested objects merge, anything else (lists, null) replaces."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict) and key not in ("turn_detection",):
            merged[key] = merge_session_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def session_update_problem(update: Mapping[str, Any]) -> tuple[str, str, str] | None:
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
