"""Sending one text message, through a pluggable backend chosen by settings.SMS_BACKEND.

Like Django's email backends: `ConsoleBackend` (the default) prints each text, so `make run`
needs nothing; `bookings.sms_twilio.TwilioBackend` sends through Twilio in production.

The contract of a backend (`SmsBackend.send`): send `body` to `to` (E.164) and return the
provider's id for the message. Raise `SmsRejected` when the provider refused this message
for good (a bad or unsubscribed number): it is not retried. Any other exception means "not
sent this time" (provider down, timeout, rate limit): bookings.text_messages retries it on
the next run. A backend must not retry by itself: the caller records every attempt.
"""

from __future__ import annotations

import sys
import uuid
from functools import cache
from typing import TextIO

from django.conf import settings
from django.utils.module_loading import import_string


class SmsRejected(Exception):
    """The provider refused the message for good; `code` is its reason code, if it gave one."""

    def __init__(self, message: str, *, code: str = "", unsubscribed: bool = False) -> None:
        super().__init__(message)
        self.code = code
        # The number opted out at the provider (Twilio error 21610): record it on our list too.
        self.unsubscribed = unsubscribed


class SmsBackend:
    def send(self, *, to: str, body: str) -> str:
        raise NotImplementedError


class ConsoleBackend(SmsBackend):
    """Prints each text to stdout (or `stream`), like Django's console email backend."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, *, to: str, body: str) -> str:
        message_id = f"console-{uuid.uuid4().hex[:16]}"
        stream = self.stream or sys.stdout
        stream.write(f"--- Text message {message_id} to {to}\n{body}\n---\n")
        stream.flush()
        return message_id


@cache
def _backend_class(path: str) -> type[SmsBackend]:
    return import_string(path)


def get_backend() -> SmsBackend:
    """The configured backend (settings.SMS_BACKEND), new for each use: settings may change in tests."""
    return _backend_class(settings.SMS_BACKEND)()
