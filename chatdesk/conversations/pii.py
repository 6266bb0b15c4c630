"""Customers' contact details and what staff may see of them: one definition, one masking.

What counts as contact details in free text (7-15 digit phone numbers, emails) is defined
here once: retention scrubs it from old transcripts (chatdesk.conversations.retention), and
staff without `chatdesk.view_customer_pii` see it masked. `redact` is the one masking of
what a staff door sends out (the admin's transcript, the staff API's JSON, the staff live
socket's pushes, the CSV and the transcript export); chatdesk.conversations.access decides
from a user's permissions which parts it hides.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits and the separators people type in phone numbers. Not right after a word
# character or a hyphen, so booking and conversation numbers (BK-2026-000042) survive.
PHONE_RUN = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{5,}\d(?!\w)")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# 7 digits is a local number as people say it ("555-0142", no area code); 15 is the most
# E.164 allows. Fewer digits are prices, times and counts, so they are left alone.
PHONE_DIGITS = range(7, 16)

MASK = "•••"

# Keys that hold a customer's contact details, in tool arguments and results, bookings,
# customers and handoffs: masked whole.
PII_KEYS = frozenset(
    {"phone", "customer_phone", "contact_phone", "callback_phone", "email", "customer_email", "address"}
)
# Keys whose value is free text someone typed or was read back: masked by pattern.
FREE_TEXT_KEYS = frozenset({"text", "reason", "notes", "note", "cancellation_reason", "error", "last_error"})
# Keys whose value is JSON the system recorded (tool arguments and results, a booking
# event's changes): every string in it is free text, every PII key is masked whole.
JSON_KEYS = frozenset({"arguments", "result", "changes"})
# Keys that hold what a conversation cost: null for staff without chatdesk.view_costs.
COST_KEYS = frozenset(
    {
        "cost_usd",
        "cost_by_channel",
        "cost_breakdown",
        "cost_per_booking",
        "tokens",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "audio_input_tokens",
        "audio_output_tokens",
    }
)


def is_phone_number(run: str) -> bool:
    """Whether a PHONE_RUN match is a phone number rather than a date or a short number."""
    return not ISO_DATE.match(run) and sum(ch.isdigit() for ch in run) in PHONE_DIGITS


def replace_contact_details(text: str, replacement: str) -> str:
    """`text` with every email address and phone number in it replaced by `replacement`."""

    def phone(match: re.Match[str]) -> str:
        return replacement if is_phone_number(match.group()) else match.group()

    return PHONE_RUN.sub(phone, EMAIL.sub(replacement, text))


# The end of a text still being written that may yet grow into contact details: a run of
# phone digits and separators, or a word with an @ in it, not ended yet.
_UNFINISHED = re.compile(r"(?:\+?\(?\d[\d\s().-]*|\S*@\S*)\Z")


def settled_part(text: str) -> str:
    """The part of a text still being written (a reply as the model writes it) that masking can
    already judge: "call 613 555" is not a phone number yet, but may be one word later, so
    staff who may not see contact details get it when it is complete (then masked)."""
    return _UNFINISHED.sub("", text)


def mask_text(text: str) -> str:
    """Mask emails and phone numbers in free text (what a customer typed, or was read back).

    Free-text street addresses cannot be told apart reliably and are left as typed; the
    structured ones (tool arguments, bookings) are masked by key.
    """
    return replace_contact_details(text, MASK)


def mask_json(value: object) -> object:
    """Recorded JSON with PII keys masked whole and every string masked as free text."""
    if isinstance(value, dict):
        return {k: (MASK if k in PII_KEYS and v else mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def redact(value: object, *, pii: bool, costs: bool) -> object:
    """What a staff door may send out of `value` (JSON-like: dicts, lists, scalars).

    Without `pii`: contact details masked (whole under PII_KEYS, by pattern in free text
    and recorded JSON); customers' names stay, as in the admin: staff address customers by
    name. Without `costs`: every cost and token value is null (the key stays, so clients
    see one shape). Strings outside those keys (numbers, dates, prices) are left alone:
    a price such as "12000.00" must not read as a phone number.
    """
    if pii and costs:
        return value
    if isinstance(value, list):
        return [redact(v, pii=pii, costs=costs) for v in value]
    if not isinstance(value, dict):
        return value
    shown: dict = {}
    for key, v in value.items():
        if not costs and key in COST_KEYS:
            shown[key] = None
        elif pii or v is None:
            shown[key] = redact(v, pii=pii, costs=costs)
        elif key in PII_KEYS:
            shown[key] = MASK if v else v
        elif key in FREE_TEXT_KEYS and isinstance(v, str):
            shown[key] = mask_text(v)
        elif key in JSON_KEYS:
            shown[key] = mask_json(v)
        else:
            shown[key] = redact(v, pii=pii, costs=costs)
    return shown
