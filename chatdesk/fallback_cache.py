"""The shared cache (settings.CACHES with REDIS_URL): Django's Redis cache that keeps counting
in this process while Redis is unreachable.

Every counter the app keeps lives in this cache: the chat rate limits (django-ratelimit), the
failed booking lookups (chatdesk.assistant.lookup_guard) and the voice call limits
(voice.limits). When Redis goes away, each operation falls back to a per-process LocMem cache
instead of raising, so the same rates still apply, counted per process, and a chat turn never
fails on a counter. This is the one place that decides it; the callers do not know.

- The first failure of an outage is logged at ERROR; then Redis is left alone for
  RETRY_SECONDS (so a dead or blackholed server does not cost every request a connect
  attempt), after which the next operation tries it again.
- The first success after an outage is logged at WARNING, and the per-process counters are
  dropped: the shared ones, which Redis kept, apply again.

Django keeps one cache object per thread, so the outage state and the fallback's storage are
per process (module level, keyed by the Redis location), not per object.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What "Redis is unreachable" looks like: refused or reset connections, timeouts, a server
# that is loading or read-only. A ValueError (incr of a missing key) is an answer, not an outage.
UNREACHABLE = (RedisError, OSError)

DEFAULT_RETRY_SECONDS = 5.0


class _Outage:
    """Whether Redis at one location is being skipped, process-wide."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.retry_at = 0.0

    def skip(self) -> bool:
        return self.down_since is not None and time.monotonic() < self.retry_at

    def failed(self, location: str, error: Exception, retry_seconds: float) -> None:
        with self.lock:
            first = self.down_since is None
            now = time.monotonic()
            if first:
                self.down_since = now
            self.retry_at = now + retry_seconds
        if first:
            logger.error(
                "Redis is unreachable (%s: %s): rate limits and call limits are counted per process "
                "until it is back; retrying every %ss",
                type(error).__name__,
                error,
                retry_seconds,
            )

    def recovered(self) -> bool:
        """True when this success ends an outage (once)."""
        if self.down_since is None:
            return False
        with self.lock:
            if self.down_since is None:
                return False
            seconds = time.monotonic() - self.down_since
            self.down_since = None
        logger.warning("Redis is back after %.0f s: rate limits and call limits are shared again", seconds)
        return True


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


def _outage_for(location: str) -> _Outage:
    with _outages_lock:
        return _outages.setdefault(location, _Outage())


class FallbackRedisCache(RedisCache):
    """RedisCache whose operations fall back to a per-process LocMem cache when Redis is down.

    Extra key in the CACHES entry: RETRY_SECONDS, how long to leave Redis alone after a
    failure (default 5).
    """

    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._location = server if isinstance(server, str) else ",".join(server)
        self._retry_seconds = float(params.get("RETRY_SECONDS", DEFAULT_RETRY_SECONDS))
        self._outage = _outage_for(self._location)
        # LocMem storage is module level, shared by every LocMemCache of the same name: one
        # per-process store for all threads. Keys are made (prefix, version) by the same rules.
        self._local = LocMemCache(
            f"chatdesk-fallback:{self._location}",
            {
                "TIMEOUT": params.get("TIMEOUT", 300),
                "KEY_PREFIX": params.get("KEY_PREFIX", ""),
                "VERSION": params.get("VERSION", 1),
                "OPTIONS": {"MAX_ENTRIES": 100_000},
            },
        )

    @property
    def degraded(self) -> bool:
        """True while this process counts locally because Redis is unreachable."""
        return self._outage.down_since is not None

    def _either(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self._outage.skip():
            try:
                result = getattr(RedisCache, name)(self, *args, **kwargs)
            except UNREACHABLE as error:
                self._outage.failed(self._location, error, self._retry_seconds)
            else:
                if self._outage.recovered():
                    self._local.clear()
                return result
        return getattr(self._local, name)(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> bool:
        return self._either("add", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._either("get", *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> None:
        return self._either("set", *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> bool:
        return self._either("touch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> bool:
        return self._either("delete", *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> dict:
        return self._either("get_many", *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> bool:
        return self._either("has_key", *args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> int:
        return self._either("incr", *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> list:
        return self._either("set_many", *args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> None:
        return self._either("delete_many", *args, **kwargs)

    def clear(self) -> bool:
        self._local.clear()
        return self._either("clear")
