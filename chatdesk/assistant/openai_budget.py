"""The fleet's OpenAI budget: one view of the account's rate limits, shared by every worker.

Every worker asks here before it sends a model request (a text turn's round, a voice call's
start) and tells here what OpenAI said after it:

- `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` on every response (and the Realtime
  API's `rate_limits.updated` events) set what is left of each model's window, and until when.
  Each request takes its share (1 request, its estimated tokens) with an atomic decrement, so
  the requests other workers send before the next response's headers arrive are counted too.
  The headers are OpenAI's own count and overwrite ours whenever they come.
- Before any header has arrived (or after the window they described has reset), the limits in
  OPENAI_LIMIT_RPM / OPENAI_LIMIT_TPM, when set, are counted per minute instead.
- A 429 with `retry-after-ms` / `retry-after` (or, without them, headers that show a window
  used up) pauses the whole fleet until then: nothing is sent to OpenAI by any worker (text or
  voice) while paused.
- Short of budget, a caller waits (polling) until `wait_until` at most; then BudgetExhausted
  says to use the guided flow. A pause or a refill known to outlast the wait gives up at once:
  waiting would only delay the customer's answer.

State lives in the shared cache (settings.CACHES, Redis with REDIS_URL): while Redis is down,
chatdesk/fallback_cache.py keeps it per process, so each worker still honours what it saw
itself, and a turn never fails on the budget. The window arithmetic is deliberately simple
(no shared clock but the cache's): a window refills at the rate its last headers imply (what
was missing, over the time to its reset), and counts as full again once its reset has passed;
under traffic every response brings fresh headers anyway.

Headers describe the model they came with (OpenAI's limits are per model), so windows are
kept per model; the pause is fleet-wide for every model, as a 429 asks the fleet to back off.
`budget_snapshot()` is the read-only view for metrics.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

PREFIX = "openai-budget"
PAUSE_KEY = f"{PREFIX}:paused-until"
KINDS = ("requests", "tokens")
# A waiting turn looks again at least this often: another worker's fresher headers (OpenAI's
# windows refill continuously) may free budget before the reset the last headers named.
POLL_SECONDS = 0.25
# A retry-after beyond this is taken as this: a bogus header must not stop the model for hours.
MAX_PAUSE_SECONDS = 300.0


class BudgetExhausted(Exception):
    """No budget within the wait: use the guided flow (text) or refuse the call (voice).

    `paused` is True when the fleet is paused by a 429, False when a window is used up.
    """

    def __init__(self, detail: str, *, paused: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.paused = paused


@dataclass(frozen=True)
class Window:
    """One rate-limit window as OpenAI reported it: `kind` is "requests" or "tokens"."""

    kind: str
    limit: int | None
    remaining: int
    reset_seconds: float


@dataclass(frozen=True)
class Verdict:
    """What `try_take` decided: taken, or how long until it is worth asking again and why."""

    wait: float = 0.0
    reason: str = ""

    @property
    def taken(self) -> bool:
        return not self.reason


# --- reading what OpenAI says ------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS_PER_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float | None:
    """Seconds in OpenAI's reset format ("12ms", "1s", "6m0s", "1h2m3.5s"); None if unreadable."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))  # a bare number of seconds
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _SECONDS_PER_UNIT[unit] for number, unit in parts)


def windows_from_headers(headers: Mapping[str, str]) -> list[Window]:
    """The windows in a response's `x-ratelimit-*` headers (none when they are absent or garbled)."""
    windows = []
    for kind in KINDS:
        remaining = _int(headers.get(f"x-ratelimit-remaining-{kind}"))
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}") or "")
        if remaining is None or reset is None:
            continue
        windows.append(Window(kind, _int(headers.get(f"x-ratelimit-limit-{kind}")), remaining, reset))
    return windows


def windows_from_realtime(rate_limits: object) -> list[Window]:
    """The windows in a Realtime `rate_limits.updated` event's `rate_limits` list."""
    windows = []
    for entry in rate_limits if isinstance(rate_limits, list) else []:
        if not isinstance(entry, Mapping) or entry.get("name") not in KINDS:
            continue
        remaining = _int(entry.get("remaining"))
        reset = entry.get("reset_seconds")
        if remaining is None or not isinstance(reset, int | float) or isinstance(reset, bool):
            continue
        windows.append(Window(entry["name"], _int(entry.get("limit")), remaining, max(0.0, float(reset))))
    return windows


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, else `retry-after` (seconds or an HTTP date), as the SDK reads them."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if name == "retry-after" else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def estimate_tokens(body: Mapping[str, Any], max_output_tokens: int) -> int:
    """What OpenAI counts against the tokens window for a request: ~4 characters a token of
    what is sent, plus the most it may write (OpenAI reserves max_output_tokens up front)."""
    return math.ceil(len(json.dumps(body, separators=(",", ":"), default=str)) / 4) + max_output_tokens


# --- the shared state ------------------------------------------------------------------------


def _remaining_key(model: str, kind: str) -> str:
    return f"{PREFIX}:{model}:{kind}:remaining"


def _window_key(model: str, kind: str) -> str:
    return f"{PREFIX}:{model}:{kind}:window"


def _minute_key(model: str, kind: str, minute: int) -> str:
    return f"{PREFIX}:{model}:{kind}:used:{minute}"


def _configured_limit(kind: str) -> int:
    return int(settings.OPENAI_LIMIT_RPM if kind == "requests" else settings.OPENAI_LIMIT_TPM)


def record(model: str, windows: Iterable[Window]) -> None:
    """Store what OpenAI said is left of `model`'s windows, until their reset."""
    now = time.time()
    # Kept until the window is full again; after that, nothing known = nothing owed. One
    # pipelined write (a Redis round trip) per timeout: usually one for both windows.
    by_ttl: dict[int, dict[str, Any]] = {}
    for window in windows:
        values = by_ttl.setdefault(max(1, math.ceil(window.reset_seconds)), {})
        values[_remaining_key(model, window.kind)] = window.remaining
        values[_window_key(model, window.kind)] = {
            "limit": window.limit,
            "remaining": window.remaining,
            "reset_at": now + window.reset_seconds,
            "seen_at": now,
            # OpenAI's windows refill continuously, to full by the reset: so much a second
            # comes back (None when the limit is not given).
            "refill": _refill_rate(window),
        }
    for ttl, values in by_ttl.items():
        cache.set_many(values, ttl)


def pause(seconds: float, reason: str = "") -> float:
    """Pause every worker's OpenAI use for `seconds` (never shortening a longer pause).
    Returns the pause's end (epoch seconds)."""
    seconds = min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
    until = time.time() + seconds
    current = cache.get(PAUSE_KEY)
    if isinstance(current, int | float) and current >= until:
        return float(current)
    # A read-then-write race between two workers that both saw a 429 only loses the shorter
    # of two nearly equal pauses.
    cache.set(PAUSE_KEY, until, max(1, math.ceil(seconds)))
    logger.warning("OpenAI answered 429: pausing every worker's model calls for %.1f s (%s)", seconds, reason)
    return until


def rate_limited(model: str, headers: Mapping[str, str]) -> float:
    """A 429 came back: record its windows and pause the fleet for its retry-after. Returns the
    pause in seconds (0.0 when the 429 says nothing of how long: no pause)."""
    windows = windows_from_headers(headers)
    if windows:
        record(model, windows)
    seconds = retry_after_seconds(headers)
    why = "retry-after"
    if seconds is None:
        # No retry-after: until the latest reset of a window it says is used up. A 429 that
        # says neither (another kind of limit) pauses nothing: the turn that saw it fails alone.
        spent = [w.reset_seconds for w in windows if w.remaining <= 0]
        if not spent:
            return 0.0
        seconds, why = max(spent), "used-up window's reset"
    seconds = min(seconds, MAX_PAUSE_SECONDS)
    if seconds > 0:
        pause(seconds, f"{model}, {why} {seconds:.1f} s")
    return seconds


def try_take(model: str, tokens: int) -> Verdict:
    """Take one request and `tokens` from `model`'s budget, or say how long to wait and why.

    One read for the pause and both windows, then an atomic decrement (incr for the per-minute
    counts) per window that is known; what was taken is given back when a later window refuses.
    """
    now = time.time()
    keys = [PAUSE_KEY, *(_remaining_key(model, k) for k in KINDS), *(_window_key(model, k) for k in KINDS)]
    known = cache.get_many(keys)
    paused_until = known.get(PAUSE_KEY)
    if isinstance(paused_until, int | float) and paused_until > now:
        return Verdict(paused_until - now, "paused")
    taken: list[tuple[str, int]] = []  # (key, amount to add back to undo)
    for kind, cost in (("requests", 1), ("tokens", tokens)):
        remaining_key = _remaining_key(model, kind)
        window = known.get(_window_key(model, kind)) or {}
        # A window past its reset is full again, even if its key has not expired yet (the
        # cache's timeouts are whole seconds, resets are often milliseconds).
        if remaining_key in known and window.get("reset_at", 0) > now:
            if window.get("limit"):
                # A request bigger than the whole window could never go; let it try.
                cost = min(cost, int(window["limit"]))
            try:
                left = cache.decr(remaining_key, cost)
            except ValueError:  # the window reset since the read: nothing owed
                continue
            taken.append((remaining_key, cost))
            refill = window.get("refill") or 0.0
            short = -(left + refill * (now - window.get("seen_at", now)))
            if short > 0:
                _undo(taken)
                until_full = max(window["reset_at"] - now, 0.0)
                return Verdict(min(short / refill, until_full) if refill else until_full, kind)
            continue
        limit = _configured_limit(kind)
        if limit <= 0:
            continue
        minute = int(now // 60)
        key = _minute_key(model, kind, minute)
        cache.add(key, 0, 120)
        try:
            used = cache.incr(key, min(cost, limit))
        except ValueError:  # evicted between add and incr
            cache.add(key, min(cost, limit), 120)
            used = min(cost, limit)
        taken.append((key, -min(cost, limit)))
        if used > limit:
            _undo(taken)
            return Verdict((minute + 1) * 60 - now, kind)
    return Verdict()


def _refill_rate(window: Window) -> float | None:
    if not window.limit or window.reset_seconds <= 0 or window.limit <= window.remaining:
        return None
    return (window.limit - window.remaining) / window.reset_seconds


def _left(remaining: int, window: Mapping[str, Any], now: float) -> int:
    """What is left now of a window OpenAI described: the count (what it said, less what was
    taken since) plus what has refilled since it said it."""
    refilled = (window.get("refill") or 0.0) * max(0.0, now - window.get("seen_at", now))
    left = int(remaining + refilled)
    return max(0, min(left, window["limit"]) if window.get("limit") else left)


def _undo(taken: list[tuple[str, int]]) -> None:
    for key, amount in taken:
        try:
            cache.incr(key, amount)
        except ValueError:  # expired meanwhile: nothing to give back to
            pass


async def acquire(model: str, tokens: int, *, wait_until: float) -> tuple[float, str]:
    """Wait (until `wait_until`, time.monotonic()) for budget for one request of `tokens`.

    Returns the seconds waited (0.0 when budget was there) and what for ("paused", "requests"
    or "tokens"; "" without a wait). Raises BudgetExhausted when there is none by then, and at
    once when the fleet is paused past `wait_until`.
    """
    started = time.monotonic()
    check = sync_to_async(try_take, thread_sensitive=False)
    waited_for = ""
    while True:
        verdict = await check(model, tokens)
        if verdict.taken:
            return (time.monotonic() - started if waited_for else 0.0), waited_for
        waited_for = waited_for or verdict.reason
        now = time.monotonic()
        left = wait_until - now
        if verdict.reason == "paused" and verdict.wait > left:
            raise BudgetExhausted(f"the fleet is paused for {verdict.wait:.1f} s after a 429", paused=True)
        if verdict.wait > left:
            raise BudgetExhausted(
                f"{model}'s {verdict.reason} budget returns in {verdict.wait:.1f} s, after the wait", paused=False
            )
        if left <= 0:
            raise BudgetExhausted(
                f"no {verdict.reason} budget left for {model} within {now - started:.1f} s", paused=False
            )
        await asyncio.sleep(max(0.01, min(verdict.wait, POLL_SECONDS, left)))


async def arecord(model: str, windows: list[Window]) -> None:
    if windows:
        await sync_to_async(record, thread_sensitive=False)(model, windows)


async def arate_limited(model: str, headers: Mapping[str, str]) -> float:
    return await sync_to_async(rate_limited, thread_sensitive=False)(model, headers)


# --- for metrics --------------------------------------------------------------------------------


def budget_snapshot(models: Iterable[str] | None = None) -> dict[str, Any]:
    """What the fleet knows of its OpenAI budget now, for metrics and operators.

    {"paused_seconds": 12.5 (0 when not paused), "shared": False while Redis is down (each
    worker then knows only its own), "configured": {"requests": OPENAI_LIMIT_RPM, "tokens":
    OPENAI_LIMIT_TPM}, "models": {model: {"requests": {"limit", "remaining", "reset_seconds",
    "source"}, "tokens": {...}}}}. `source` is "headers" (what OpenAI last said, less what was
    taken since), "configured" (counted this minute against the settings) or "unknown"
    (`remaining` is then None: nothing is held back).
    """
    now = time.time()
    models = list(models or dict.fromkeys([settings.OPENAI_MODEL, settings.OPENAI_REALTIME_MODEL]))
    minute = int(now // 60)
    keys = [PAUSE_KEY]
    for model in models:
        for kind in KINDS:
            keys += [_remaining_key(model, kind), _window_key(model, kind), _minute_key(model, kind, minute)]
    known = cache.get_many(keys)
    paused_until = known.get(PAUSE_KEY)
    snapshot: dict[str, Any] = {
        "paused_seconds": round(max(0.0, paused_until - now), 3) if isinstance(paused_until, int | float) else 0.0,
        "shared": not getattr(cache, "degraded", False),
        "configured": {kind: _configured_limit(kind) for kind in KINDS},
        "models": {},
    }
    for model in models:
        entry = {}
        for kind in KINDS:
            window = known.get(_window_key(model, kind))
            remaining = known.get(_remaining_key(model, kind))
            limit = _configured_limit(kind)
            if window is not None and remaining is not None:
                entry[kind] = {
                    "limit": window.get("limit"),
                    "remaining": _left(int(remaining), window, now),
                    "reset_seconds": round(max(0.0, window["reset_at"] - now), 3),
                    "source": "headers",
                }
            elif limit > 0:
                used = int(known.get(_minute_key(model, kind, minute)) or 0)
                entry[kind] = {
                    "limit": limit,
                    "remaining": max(0, limit - used),
                    "reset_seconds": round((minute + 1) * 60 - now, 3),
                    "source": "configured",
                }
            else:
                entry[kind] = {"limit": None, "remaining": None, "reset_seconds": 0.0, "source": "unknown"}
        snapshot["models"][model] = entry
    return snapshot
