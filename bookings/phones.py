"""Phone numbers as people type them, normalized to E.164 with libphonenumber."""

from __future__ import annotations

import phonenumbers
from django.conf import settings

from bookings.errors import InvalidInput
from bookings.limits import MAX_PHONE_TYPED


def normalize_phone(raw: str, *, region: str | None = None) -> str:
    """Return the E.164 form of `raw` ("(416) 555-0123" -> "+14165550123").

    Raises InvalidInput for anything that is not a valid, dialable number.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidInput("A phone number is required.", field="phone")
    if len(text) > MAX_PHONE_TYPED:
        raise InvalidInput("That phone number is too long.", field="phone")
    try:
        number = phonenumbers.parse(text, region or settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidInput("That does not look like a phone number.", field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("That phone number is not valid.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phones_match(raw: str, stored_e164: str) -> bool:
    try:
        return normalize_phone(raw) == stored_e164
    except InvalidInput:
        return False
