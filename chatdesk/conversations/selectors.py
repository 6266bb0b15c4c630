"""Reads of the conversation record that several doors share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from chatdesk.conversations.models import Conversation, HandoffRequest, Message

# The live monitor lists at most this many open conversations.
MONITOR_LIMIT = 100
# A conversation where the customer never wrote past the greeting, idle this long, is
# "quiet": somebody opened the page and walked away. The monitor hides those by default
# (close_stale_sessions closes them later).
QUIET_AFTER = timedelta(minutes=10)


def open_conversation_for(session_id: str) -> QuerySet[Conversation]:
    """The open conversation of a browser session (from its signed cookie), as a query.

    At most one row (session_id is unique). A query rather than a row, so each door reads
    only what it needs: `.first()` for the page and the live socket, `.exists()` when the
    voice page only asks whether there is one, `.filter(has_call=True)` for a call's cookie.
    No session, no conversation.
    """
    if not session_id:
        return Conversation.objects.none()
    return Conversation.objects.filter(session_id=session_id, status=Conversation.Status.OPEN)


@dataclass(frozen=True)
class MonitorList:
    # Annotated with wants_person (an unhandled HandoffRequest) and handoff_name (the name
    # given in the newest one), customer selected.
    conversations: list[Conversation]
    hidden_quiet: int  # quiet conversations left out (0 when they are included)


def monitor_conversations(*, include_quiet: bool = False, now: datetime | None = None) -> MonitorList:
    """The open conversations for the live monitor: whoever waits for a person first, then the
    most recently active. Three queries whatever the number of rows."""
    waiting = HandoffRequest.objects.filter(conversation=OuterRef("pk"), handled_at__isnull=True)
    spoke = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.CUSTOMER)
    rows = Conversation.objects.filter(status=Conversation.Status.OPEN).annotate(
        wants_person=Exists(waiting),
        customer_spoke=Exists(spoke),
        handoff_name=Subquery(waiting.order_by("-created_at").values("contact_name")[:1]),
    )
    cutoff = (now or timezone.now()) - QUIET_AFTER
    # Never quiet: a customer who wrote, one waiting for a person, one staff have taken over.
    quiet = Q(customer_spoke=False, wants_person=False, taken_over_by__isnull=True, last_activity_at__lt=cutoff)
    hidden = 0
    if not include_quiet:
        hidden = rows.filter(quiet).count()
        rows = rows.exclude(quiet)
    rows = rows.select_related("customer").order_by("-wants_person", "-last_activity_at", "-id")[:MONITOR_LIMIT]
    return MonitorList(conversations=list(rows), hidden_quiet=hidden)
