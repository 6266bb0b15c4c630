"""OpenAI's per-model rate limits as the fake reports and enforces them.

The real API answers every request with its standing against the model's limits:

    x-ratelimit-limit-requests: 5000        x-ratelimit-limit-tokens: 4000000
    x-ratelimit-remaining-requests: 4999    x-ratelimit-remaining-tokens: 3999180
    x-ratelimit-reset-requests: 12ms        x-ratelimit-reset-tokens: 9ms

`reset` is the time until the window is full again (it refills continuously, the limit per
minute). Over a limit, the request is refused with 429 `rate_limit_exceeded`, `retry-after`
(seconds) and `retry-after-ms`, before anything runs. The Realtime API reports the same as
`rate_limits.updated` events (`[{name, limit, remaining, reset_seconds}]`) when a response starts.

`RateLimits` keeps one model's two windows: `fake.rate_limits` for `POST /v1/responses`,
`fake.realtime.rate_limits` for Realtime responses. Tests script standing with `set(...)`
(e.g. one request left of two, so the next reply says 0 remaining and a 30 s reset), or switch
`enforce` off to only report. The defaults (5,000 RPM, 4M TPM) are never reached by a test.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimits", "format_duration"]


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: "12ms" under a second, "1.5s", "6m0s", "1h2m3s"."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{round(secs, 3):g}s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


class RateLimits:
    """A model's requests and tokens windows, refilled continuously at `limit` per minute."""

    def __init__(
        self, *, requests: int = 5000, tokens: int = 4_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.limits = {"requests": requests, "tokens": tokens}
        self._remaining = {"requests": float(requests), "tokens": float(tokens)}
        self._at = clock()
        self.enforce = True
        """Answer 429 when a request does not fit (False: only report, as if the limits were elsewhere)."""
        self.refused = 0
        """Requests answered 429 because they did not fit."""

    def set(
        self,
        *,
        requests_limit: int | None = None,
        tokens_limit: int | None = None,
        requests_remaining: int | None = None,
        tokens_remaining: int | None = None,
    ) -> None:
        """Script the standing: limits (remaining follows a lowered limit) and what is left now."""
        with self._lock:
            self._refill()
            for kind, limit, remaining in (
                ("requests", requests_limit, requests_remaining),
                ("tokens", tokens_limit, tokens_remaining),
            ):
                if limit is not None:
                    self.limits[kind] = limit
                    self._remaining[kind] = min(self._remaining[kind], float(limit))
                if remaining is not None:
                    self._remaining[kind] = float(remaining)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._at
        self._at = now
        for kind, limit in self.limits.items():
            self._remaining[kind] = min(float(limit), self._remaining[kind] + elapsed * limit / 60)

    def take(self, tokens: int) -> tuple[str, float] | None:
        """Take one request and `tokens`: None when taken, else (kind, seconds until it fits)."""
        with self._lock:
            self._refill()
            for kind, cost in (("requests", 1), ("tokens", tokens)):
                cost = min(cost, self.limits[kind])
                if self._remaining[kind] < cost and self.enforce:
                    self.refused += 1
                    return kind, (cost - self._remaining[kind]) * 60 / self.limits[kind]
            self._remaining["requests"] -= 1
            self._remaining["tokens"] -= min(tokens, self.limits["tokens"])
            return None

    def remaining(self, kind: str) -> int:
        with self._lock:
            self._refill()
            return max(0, math.floor(self._remaining[kind]))

    def _standing(self) -> dict[str, tuple[int, int, float]]:
        """kind -> (limit, remaining, seconds until full); the caller holds the lock."""
        self._refill()
        standing = {}
        for kind, limit in self.limits.items():
            left = max(0.0, self._remaining[kind])
            standing[kind] = (limit, math.floor(left), (limit - left) * 60 / limit if limit else 0.0)
        return standing

    def headers(self) -> dict[str, str]:
        """The `x-ratelimit-*` headers of a response sent now."""
        with self._lock:
            standing = self._standing()
        headers = {}
        for kind, (limit, left, reset) in standing.items():
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(left)
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(reset)
        return headers

    def realtime_entries(self) -> list[dict[str, Any]]:
        """`rate_limits.updated`'s `rate_limits` list."""
        with self._lock:
            standing = self._standing()
        return [
            {"name": kind, "limit": limit, "remaining": left, "reset_seconds": round(reset, 3)}
            for kind, (limit, left, reset) in standing.items()
        ]

    def refusal_message(self, model: str, kind: str, tokens: int, wait: float) -> str:
        """The real API's 429 message for a request that did not fit."""
        unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
        limit = self.limits[kind]
        requested = 1 if kind == "requests" else tokens
        with self._lock:
            used = limit - max(0, math.floor(self._remaining[kind]))
        return (
            f"Rate limit reached for {model} in organization org-fake on {unit}: Limit {limit}, Used {used}, "
            f"Requested {requested}. Please try again in {format_duration(wait)}. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        )
