"""The shape of every identifier a URL carries: booking and conversation numbers, session ids.

Registered as the `ident` path converter, so a path whose identifier has any other shape
(a NUL byte, a slash, a space, 65 characters) matches no route and is a 404 at the door,
before a view or the database sees it. PostgreSQL refuses NUL in text with an error, SQLite
would just find nothing: checking here makes both answer the same.
"""

from __future__ import annotations

import re

from django.urls import register_converter

# Booking numbers (BK-2026-00001), conversation numbers (INT-2026-00001) and session ids
# (secrets.token_urlsafe(32): 43 URL-safe characters) all fit; the longest column is 64.
PATTERN = r"[A-Za-z0-9_-]{1,64}"
_FULL = re.compile(PATTERN)


def is_identifier(value: str) -> bool:
    """Whether `value` has an identifier's shape (for identifiers that come in a body, not the path)."""
    return bool(_FULL.fullmatch(value))


class IdentifierConverter:
    regex = PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdentifierConverter, "ident")
