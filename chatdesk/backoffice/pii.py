"""Customer details masked for staff without chatdesk.view_customer_pii.

The masking itself is chatdesk.conversations.pii (one definition for the admin, the staff
API, the staff live socket and the exports); this module keeps the admin's imports short.
"""

from __future__ import annotations

from chatdesk.conversations.pii import MASK, PII_KEYS, mask_json, mask_text, redact

__all__ = ["MASK", "PII_KEYS", "mask_json", "mask_text", "redact"]
