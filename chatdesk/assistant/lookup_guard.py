"""The failed-lookup limits: booking number + phone lookups that did not match, counted per
conversation and per client IP in the shared cache. Used by the tools that find a customer's
booking (chatdesk/assistant/tool_bodies.py); the limit every door shares (text chat, voice, guided).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache as shared_cache

from bookings.errors import DomainError
from bookings.phones import business_phone
from chatdesk.conversations.models import Conversation

logger = logging.getLogger(__name__)


class LookupLocked(DomainError):
    code = "lookup_locked"
    http_status = 429


class LookupUnavailable(DomainError):
    code = "lookup_unavailable"
    http_status = 503


class LookupGuard:
    """Counts failed booking number + phone lookups per conversation and per client IP.

    Booking numbers are sequential, so the phone is the only secret: without a limit a
    model (or a script) can try phone after phone. The counters live in the shared cache
    (Redis in production, so every process and the voice relay see the same counts; LocMem
    in the one-process embedded default) and move with atomic increments.

    An attempt is counted before the lookup runs and given back when it matches, so
    parallel lookups cannot all slip under the limit before any of them fails. Each failure
    restarts the window, so the lock lasts CHAT_LOOKUP_LOCK_SECONDS after the last failure.

    While Redis is down the shared cache (chatdesk/fallback_cache.py) counts in each process,
    and lookups go on under the same limits per process: with P processes a guesser gets at
    most P times the limit per window, still hopeless against a phone number, while refusing
    every lookup would send every customer to the phone for the outage. A cache that raises
    (one without that fallback) still refuses lookups (fail closed) with a message that sends
    the customer to the phone, never a 500.
    """

    def __init__(self, conversation: Conversation) -> None:
        self.limits = [
            (f"chatdesk:lookup-failures:conversation:{conversation.pk}", settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION)
        ]
        if conversation.client_ip_hash:
            self.limits.append(
                (f"chatdesk:lookup-failures:ip:{conversation.client_ip_hash}", settings.CHAT_LOOKUP_FAILURES_PER_IP)
            )

    def attempt(self) -> None:
        """Count one attempt; raises LookupLocked past a limit, LookupUnavailable without a cache."""
        counted: list[str] = []
        try:
            for key, limit in self.limits:
                value = self._incr(key)
                counted.append(key)
                if value > limit:
                    # The refused attempt is not a guess: give it back, the lock stays.
                    self._give_back(counted)
                    raise LookupLocked(
                        "For your security, booking lookups are paused after several booking numbers or phone "
                        f"numbers that did not match. Please call us at {business_phone()} and we will help."
                    )
        except DomainError:
            raise
        except Exception:
            logger.exception("The lookup counters are unreachable; refusing booking lookups")
            raise LookupUnavailable(
                f"We cannot look up bookings here right now. Please call us at {business_phone()}."
            ) from None

    def matched(self) -> None:
        """The pair matched: the attempt was not a failure."""
        self._give_back([key for key, _ in self.limits])

    def failed(self) -> None:
        """The pair did not match: the attempt stays counted, and the window restarts."""
        try:
            for key, _ in self.limits:
                shared_cache.touch(key, settings.CHAT_LOOKUP_LOCK_SECONDS)
        except Exception:
            logger.exception("Could not extend the lookup lock window")

    @staticmethod
    def _incr(key: str) -> int:
        # add() creates the counter with its window only if it is missing; incr() is atomic
        # (Redis INCRBY; LocMem under its lock). A counter that expires in between is re-added.
        for _ in range(2):
            shared_cache.add(key, 0, settings.CHAT_LOOKUP_LOCK_SECONDS)
            try:
                return shared_cache.incr(key)
            except ValueError:
                continue
        raise RuntimeError(f"Cache key {key} keeps expiring")

    @staticmethod
    def _give_back(keys: list[str]) -> None:
        for key in keys:
            try:
                shared_cache.decr(key)
            except Exception:  # expired meanwhile, or the cache went away: nothing to give back
                logger.warning("Could not give back a lookup attempt on %s", key)
