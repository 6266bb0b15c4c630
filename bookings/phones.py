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


def phone_display(number: str) -> str:
    """A number as people at the business write it: "+14165550123" -> "(416) 555-0123".

    The one definition of how a phone number is shown to a person (admin, dashboard, live
    monitor, emails, the customer page and the assistant's words). Numbers of the business's
    own country (DEFAULT_PHONE_REGION) in its national format; others in international format
    ("+44 20 7946 0958"), where dropping the country code would give a wrong number. E.164
    stays in storage and the API. Accepts a typed number too (BUSINESS_PHONE); anything
    unreadable is shown as it is.
    """
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return number
    home = phonenumbers.country_code_for_region(settings.DEFAULT_PHONE_REGION)
    style = phonenumbers.PhoneNumberFormat.NATIONAL if parsed.country_code == home else None
    return phonenumbers.format_number(parsed, style or phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_e164(number: str) -> str:
    """A number for machines (tel: links): E.164 when it can be read, else its digits and +."""
    try:
        return normalize_phone(number)
    except InvalidInput:
        return "".join(c for c in number if c.isdigit() or c == "+")


def business_phone() -> str:
    """The business's own number (BUSINESS_PHONE) as customers are told it."""
    return phone_display(settings.BUSINESS_PHONE)
