"""Call limits: how many calls a client may hold at once and start per hour, and its frame rate.

Checked by `VoiceCall` before a call reaches the Realtime API (`call_admit`, `call_release`) and
on every frame it receives (`FrameBudget`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache


def _counter_incr(key: str, ttl: int) -> int:
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, ttl)
        return 1


def call_admit(ip_hash: str) -> str:
    """Count a new call for this client: "" when it may go ahead, else why not.

    Counters live in the shared cache (atomic incr in Redis and in LocMem), keyed by the
    hashed IP; while Redis is down, in this process (chatdesk/fallback_cache.py). The
    active-calls counter expires a little after the longest possible call, so a crashed
    process cannot lock a client out for longer than that.
    """
    if not settings.VOICE_LIMITS_ENABLE:
        return ""
    ttl = int(settings.VOICE_MAX_CALL_SECONDS) + 120
    active_key = f"voice:active:{ip_hash}"
    if _counter_incr(active_key, ttl) > settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP:
        call_release(ip_hash)
        return "Too many calls at once from your network. Please hang up another call first."
    cache.touch(active_key, ttl)
    hour_key = f"voice:hour:{ip_hash}:{int(time.time() // 3600)}"
    if _counter_incr(hour_key, 3600 + 60) > settings.VOICE_CALLS_PER_HOUR_PER_IP:
        call_release(ip_hash)
        return "Too many calls from your network this hour. Please type instead, or try again later."
    return ""


def call_release(ip_hash: str) -> None:
    key = f"voice:active:{ip_hash}"
    try:
        if cache.decr(key) < 0:
            cache.set(key, 0, int(settings.VOICE_MAX_CALL_SECONDS) + 120)
    except ValueError:  # expired: nothing to release
        pass


class FrameBudget:
    """Token bucket: `per_second` frames a second on average, bursts of one second's worth."""

    def __init__(self, per_second: int, clock: Callable[[], float]) -> None:
        self.rate = float(per_second)
        self.tokens = float(per_second)
        self.clock = clock
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
