"""Phone numbers as people type them, normalized to E.164 with libphonenumber."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings

from bookings.errors import InvalidInput
from bookings.limits import MAX_PHONE_TYPED

# Something a person would type as a phone number, not a booking number or a name.
PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,}$")


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


def looks_like_phone(text: str) -> bool:
    """Whether `text` is shaped like a typed phone number (digits and the usual separators)."""
    return bool(PHONE_LIKE.match(text))


def phone_from_search(term: str) -> str | None:
    """The E.164 number a staff search term means, or None when it is not a phone number.

    Phones are stored in E.164, so a search must normalize what staff typed ("(416) 555-0142")
    and match it exactly; both admins' searches use this.
    """
    term = term.strip()
    if not looks_like_phone(term):
        return None
    try:
        return normalize_phone(term)
    except InvalidInput:
        return None


def phone_display(e164: str) -> str:
    """A stored number as people at the business write it ("+14165550123" -> "(416) 555-0123")."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164
