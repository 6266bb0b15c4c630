"""What counts as a customer's contact details in free text: one definition.

Staff without the PII permission see these masked (chatdesk.backoffice.pii), and retention
scrubs them from old transcripts (chatdesk.conversations.retention); both use this module, so
whatever the admin hides is also what pruning removes.
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


def is_phone_number(run: str) -> bool:
    """Whether a PHONE_RUN match is a phone number rather than a date or a short number."""
    return not ISO_DATE.match(run) and sum(ch.isdigit() for ch in run) in PHONE_DIGITS


def replace_contact_details(text: str, replacement: str) -> str:
    """`text` with every email address and phone number in it replaced by `replacement`."""

    def phone(match: re.Match[str]) -> str:
        return replacement if is_phone_number(match.group()) else match.group()

    return PHONE_RUN.sub(phone, EMAIL.sub(replacement, text))
