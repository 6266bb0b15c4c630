"""Django's admin autodiscovery imports this module: it registers the back office's admins.

The admins themselves (conversations, handoffs, bookings and reference data) live in
chatdesk.backoffice, the staff-facing layer.
"""

from chatdesk.backoffice import booking_admin, calendar_feeds, conversation_admin, handoffs, reference_admin

__all__ = ["booking_admin", "calendar_feeds", "conversation_admin", "handoffs", "reference_admin"]
