"""Customer details masked for staff without chatdesk.view_customer_pii: emails, phones, address keys."""

from __future__ import annotations

import re

MASK = "•••"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits and the separators people type in phone numbers. Not right after a word
# character or a hyphen, so booking and conversation numbers (BK-2026-000042) survive.
PHONE_RUN = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{5,}\d(?![\w])")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Keys of tool arguments and results that hold a customer's contact details.
PII_KEYS = frozenset({"phone", "customer_phone", "contact_phone", "email", "customer_email", "address"})


def _mask_phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    # Dates and short numbers (prices, times, counts) are not phone numbers.
    if ISO_DATE.match(text) or not 7 <= digits <= 15:
        return text
    return MASK


def mask_text(text: str) -> str:
    """Mask emails and phone numbers in free text (what a customer typed, or was read back).

    Free-text street addresses cannot be told apart reliably and are left as typed; the
    structured ones (tool arguments, bookings) are masked by key.
    """
    return PHONE_RUN.sub(_mask_phone, EMAIL.sub(MASK, text))


def mask_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: (MASK if k in PII_KEYS and v else mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value
