"""The one permission policy for every staff door.

The admin, the staff API (chatdesk.backoffice.permissions builds its DRF permission
classes from this), the live monitor page, the staff live WebSocket, the CSV export and the
transcript export all ask here who may act and what they may see, so a staff member gets
the same answer at every door.

- A door is for active staff accounts only (`is_staff`, as the admin), and then for those
  holding the model permission of what the door does:
  view/add/change a booking (cancelling, moving, confirming, completing are changes);
  view conversations; take a conversation over (`chatdesk.take_over_conversation`, which
  also covers handing it back and writing to the customer).
- What they see: without `chatdesk.view_customer_pii` customers' phone numbers, emails
  and addresses are masked, in fields and in what was typed; without `chatdesk.view_costs`
  costs and token counts are null. Superusers hold every permission.

It lives in the conversations layer, below the web, voice and back-office layers, because
doors in all of them apply it (the staff socket is in chatdesk.web).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from chatdesk.conversations.pii import redact

User = AbstractBaseUser | AnonymousUser

VIEW_BOOKINGS = "bookings.view_booking"
ADD_BOOKINGS = "bookings.add_booking"
CHANGE_BOOKINGS = "bookings.change_booking"
VIEW_CONVERSATIONS = "chatdesk.view_conversation"
# A custom permission rather than change_conversation: the record itself stays read-only for
# everyone (the admin refuses any change), while taking over is an action on the live
# conversation. Owners and Dispatchers hold it (migration 0009).
TAKE_OVER = "chatdesk.take_over_conversation"
VIEW_COSTS = "chatdesk.view_costs"
VIEW_PII = "chatdesk.view_customer_pii"


def is_staff(user: User | None) -> bool:
    """An active staff account: the admin's own test (AdminSite.has_permission)."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def may(user: User | None, permission: str) -> bool:
    """Whether `user` may pass a staff door that needs `permission`."""
    return is_staff(user) and user.has_perm(permission)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Visibility:
    """What one staff member may see of customers' details and of costs."""

    pii: bool
    costs: bool

    @classmethod
    def of(cls, user: User | None) -> Visibility:
        return cls(pii=may(user, VIEW_PII), costs=may(user, VIEW_COSTS))

    def present(self, value: object) -> object:
        """`value` (JSON-like) as this staff member may see it: the one masking, pii.redact."""
        return redact(value, pii=self.pii, costs=self.costs)


EVERYTHING = Visibility(pii=True, costs=True)
