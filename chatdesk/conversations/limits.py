"""How long one message in a conversation may be: one rule for every door.

The chat API, the no-JavaScript page and staff replies all refuse an over-long message
with the same error (413, `message_too_long`, the same sentence), so a customer or a
dispatcher sees one limit whichever way they typed. The number is the setting
CHAT_MAX_MESSAGE_CHARS; the page's character counter reads it too.
"""

from __future__ import annotations

from django.conf import settings

from bookings.errors import DomainError
from bookings.serializers import Text


class MessageTooLong(DomainError):
    code = "message_too_long"
    http_status = 413


def message_length_check(text: str) -> None:
    """Raise MessageTooLong when `text` is over the limit."""
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise MessageTooLong(f"Please keep messages under {settings.CHAT_MAX_MESSAGE_CHARS} characters.")


class MessageText(Text):
    """A message in an API body (customer or staff): a string with something besides whitespace.

    Trimmed, a blank message is a 400 here; its length is left to message_length_check (413,
    the same for every door). The OpenAPI schema states both (chatdesk.openapi): a non-space
    character, and at most CHAT_MAX_MESSAGE_CHARS characters.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(trim_whitespace=True, allow_blank=False, **kwargs)
