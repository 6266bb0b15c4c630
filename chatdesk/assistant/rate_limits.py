"""Customers' rate limits: new conversations and messages, per client IP and per session.

Counted in the shared cache by django-ratelimit's core (its decorator does not support async
views); while Redis is down, at the same rates in each process (chatdesk/fallback_cache.py).
The doors pass the values the limits are keyed on (client IP, session id), not the request,
so the turn engine can check them in its first worker-thread trip.
"""

from __future__ import annotations

import ipaddress
import math

from django.conf import settings
from django_ratelimit.core import get_usage


def _client_key(ip: str) -> str:
    # As django-ratelimit's "ip" key: IPv6 clients are counted per /64 (RATELIMIT_IPV6_MASK),
    # so the counters are the ones the "ip" key would use.
    if not ip:
        return ""
    mask = getattr(settings, "RATELIMIT_IPV6_MASK", 64) if ":" in ip else getattr(settings, "RATELIMIT_IPV4_MASK", 32)
    return str(ipaddress.ip_network(f"{ip}/{mask}", strict=False).network_address)


def wait_phrase(seconds: int) -> str:
    """How long until the limit lets go, said once and the same way at every door:
    'in 40 seconds', 'in 1 minute', 'in 37 minutes', 'in 2 hours'."""
    if seconds < 90:
        count, unit = max(1, seconds), "second"
    elif seconds < 90 * 60:
        count, unit = math.ceil(seconds / 60), "minute"
    else:
        count, unit = math.ceil(seconds / 3600), "hour"
    return f"in {count} {unit}{'' if count == 1 else 's'}"


def too_many_messages(wait: int) -> str:
    return f"Too many messages. You can send again {wait_phrase(wait)}."


def too_many_conversations(wait: int) -> str:
    return f"Too many new conversations from your network. You can start one again {wait_phrase(wait)}."


def rate_limit_wait(*, group: str, rate: str, key: str) -> int | None:
    """Count one more against `rate` for `key`; the seconds to wait when over it, else None."""
    if not settings.RATELIMIT_ENABLE:
        return None
    usage = get_usage(None, group=group, key=lambda _group, _request: key, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, math.ceil(usage.get("time_left", 60)))


def new_conversation_wait(*, ip: str) -> int | None:
    """Per-IP limit on starting conversations."""
    return rate_limit_wait(group="chat-session-ip", rate=settings.CHAT_RATE_SESSION_PER_IP, key=_client_key(ip))


def message_wait(*, ip: str, session_id: str) -> int | None:
    """Per-IP and per-session limits on a customer's messages."""
    return rate_limit_wait(
        group="chat-message-ip", rate=settings.CHAT_RATE_MESSAGE_PER_IP, key=_client_key(ip)
    ) or rate_limit_wait(group="chat-message-session", rate=settings.CHAT_RATE_MESSAGE_PER_SESSION, key=session_id)
