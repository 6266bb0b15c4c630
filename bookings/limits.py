"""How long a customer's details may be: the booking domain's limits, defined once.

The booking services enforce them; the model tool schema (`maxLength`), the guided flow, the
booking API's serializers and the admin's forms repeat them to the customer or the model
before the service does, and the columns hold them. All read these constants, so no door
accepts what the service would refuse.
"""

from __future__ import annotations

MAX_NAME = 120
MAX_ADDRESS = 300
MAX_NOTES = 2000
MAX_REASON = 300
# RFC 5321's longest address, Django's EmailField default.
MAX_EMAIL = 254
# A phone number as typed ("+1 (416) 555-0123 ext. 12"), before it is normalized to E.164.
MAX_PHONE_TYPED = 40
