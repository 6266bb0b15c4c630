"""The Prometheus metrics: every counter, gauge and histogram Chatdesk reports, defined once.

Each event is counted at the one place it happens (README, "Metrics"):

- customer turns: the turn engine (chatdesk.assistant.turns) and voice calls (voice.calls);
- tool calls: the tool registry's execution (chatdesk.assistant.tools), committed calls only;
- model requests and errors: the text model's one module (chatdesk.assistant.openai_client)
  and voice calls for the Realtime API;
- bookings made: bookings.services.booking_create, on commit;
- voice calls and the relay: voice.calls.

Facts that live in the database (open conversations, handoffs waiting) are not counted here:
chatdesk.metrics_view reads them at scrape time, so every worker reports the same truth.

Several workers: with PROMETHEUS_MULTIPROC_DIR set (before this module is imported; the
settings check it is a directory), prometheus_client writes each process's values to
memory-mapped files there and the /metrics view adds them up across processes. The gauge of
active calls counts live processes only ("livesum"): a worker's file for it is removed by the
view's sweep of dead process ids at each scrape (or by the worker itself on a normal exit).

Label values are bounded by construction: channels, modes, outcomes and kinds are fixed words,
tool names are the registry's (an unknown name the model made up is counted as "unknown").
"""

from __future__ import annotations

import atexit
import os

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client import multiprocess as _multiprocess

# Where the worker processes' values live; empty: this process counts alone (make run, tests).
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

TURNS = Counter(
    "chatdesk_turns",
    "Customer turns, by channel (chat, voice), mode (model, guided) and outcome "
    "(answered, model_failed, limited, paused; voice: answered, model_failed, interrupted).",
    ["channel", "mode", "outcome"],
)
TURN_SECONDS = Histogram(
    "chatdesk_turn_seconds",
    "Chat turns: from the customer's message arriving to the reply stored, by mode.",
    ["mode"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60),
)
TOOL_CALLS = Counter(
    "chatdesk_tool_calls",
    "Tool calls run (or refused over the caps), by tool and outcome (ok, or the error code).",
    ["tool", "outcome"],
)
MODEL_REQUEST_SECONDS = Histogram(
    "chatdesk_model_request_seconds",
    "Text model (Responses API) requests: time to the whole response, by outcome (ok, error).",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30),
)
MODEL_ERRORS = Counter(
    "chatdesk_model_errors",
    "Model failures by API (responses, realtime) and kind (timeout, unreachable, rate_limited, "
    "server_error, bad_request, incomplete, bad_reply, budget_exhausted: the fleet's budget was used up).",
    ["api", "kind"],
)
BOOKINGS_MADE = Counter(
    "chatdesk_bookings_made",
    "Bookings made (committed), by channel (chat, voice, staff, api).",
    ["channel"],
)
VOICE_CALLS_ACTIVE = Gauge(
    "chatdesk_voice_calls_active",
    "Voice calls in progress (admitted and not yet ended), over the live worker processes.",
    multiprocess_mode="livesum",
)
VOICE_CALLS = Counter(
    "chatdesk_voice_calls",
    "Voice calls ended, by end reason (customer_hung_up, idle, upstream_error, limit_reached, ...).",
    ["reason"],
)
VOICE_REPLY_SECONDS = Histogram(
    "chatdesk_voice_reply_seconds",
    "Voice: from the end of the caller's speech to the first audio of the reply sent to the browser.",
    buckets=(0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 5, 8),
)
VOICE_RELAY_SECONDS = Histogram(
    "chatdesk_voice_relay_seconds",
    "Voice relay: time our server spends passing one audio frame on, by direction (uplink: from "
    "the browser's frame to OpenAI's socket; downlink: from OpenAI's audio event to the browser's socket).",
    ["direction"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)

# Bound once: the relay observes every audio frame of every call (25 a second each way at
# 40 ms frames), and .labels() costs as much again as the observation.
RELAY_UPLINK = VOICE_RELAY_SECONDS.labels(direction="uplink")
RELAY_DOWNLINK = VOICE_RELAY_SECONDS.labels(direction="downlink")

# Shown at 0 before the first one, so `rate()` and `increase()` alerts see them from the start.
MODEL_ERROR_KINDS = (
    "timeout",
    "unreachable",
    "rate_limited",
    "server_error",
    "bad_request",
    "incomplete",
    "bad_reply",
    "budget_exhausted",
)
for _kind in MODEL_ERROR_KINDS:
    MODEL_ERRORS.labels(api="responses", kind=_kind)
for _channel in ("chat", "voice", "staff", "api"):
    BOOKINGS_MADE.labels(channel=_channel)


def count_turn(*, channel: str, mode: str, outcome: str, seconds: float | None = None) -> None:
    """One customer turn finished (`seconds`: the chat turn's time, for the histogram)."""
    TURNS.labels(channel=channel, mode=mode, outcome=outcome).inc()
    if seconds is not None:
        TURN_SECONDS.labels(mode=mode).observe(seconds)


def count_tool_call(*, tool: str, outcome: str) -> None:
    TOOL_CALLS.labels(tool=tool, outcome=outcome or "ok").inc()


def observe_model_request(seconds: float, *, ok: bool) -> None:
    MODEL_REQUEST_SECONDS.labels(outcome="ok" if ok else "error").observe(seconds)


def count_model_error(*, api: str, kind: str) -> None:
    MODEL_ERRORS.labels(api=api, kind=kind).inc()


def count_booking_made(channel: str) -> None:
    BOOKINGS_MADE.labels(channel=channel).inc()


def voice_call_admitted() -> None:
    VOICE_CALLS_ACTIVE.inc()


def voice_call_released() -> None:
    VOICE_CALLS_ACTIVE.dec()


def count_voice_call(reason: str) -> None:
    VOICE_CALLS.labels(reason=reason or "unknown").inc()


def _forget_this_process() -> None:
    # A process that exits normally takes its live gauges with it (its counters stay: totals
    # must not go down). A worker ended by a signal (uvicorn re-raises SIGTERM after its
    # graceful shutdown, so no exit hook runs) or killed outright is forgotten by the sweep in
    # chatdesk.metrics_view at the next scrape.
    _multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIR)


if MULTIPROCESS_DIR:
    atexit.register(_forget_this_process)
