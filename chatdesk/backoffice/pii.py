"""Customer details masked for staff without chatdesk.view_customer_pii: emails, phones, address keys."""

from __future__ import annotations

from chatdesk.conversations.pii import replace_contact_details

MASK = "•••"

# Keys of tool arguments and results that hold a customer's contact details.
PII_KEYS = frozenset({"phone", "customer_phone", "contact_phone", "email", "customer_email", "address"})


def mask_text(text: str) -> str:
    """Mask emails and phone numbers in free text (what a customer typed, or was read back).

    Free-text street addresses cannot be told apart reliably and are left as typed; the
    structured ones (tool arguments, bookings) are masked by key.
    """
    return replace_contact_details(text, MASK)


def mask_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: (MASK if k in PII_KEYS and v else mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value
