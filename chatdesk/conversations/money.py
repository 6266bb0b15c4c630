"""The precision of every cost the conversation record stores.

Its own module, with no model import, so the price tables (chatdesk.assistant.costs, read
at startup by the voice app's checks) and the record's writer round costs the same way.
"""

from decimal import Decimal

# The cost columns' decimal_places=6: every cost is rounded to this, and only here is it written.
MONEY = Decimal("0.000001")
