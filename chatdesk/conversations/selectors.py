"""Reads of the conversation record that several doors share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet, Subquery
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


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def answer_to(conversation_id: int, question: str) -> tuple[Message, Message] | None:
    """The newest assistant message of the conversation that asked `question` (its words,
    ignoring case and punctuation), and the customer's first message after it; None when it
    was never asked, or not answered yet.

    Evidence of what the customer agreed to comes from the stored transcript, never from
    the model's say-so (text-message consent: chatdesk.assistant.tool_bodies).
    """
    wanted = _words(question)
    # A conversation holds at most CHAT_MAX_MESSAGES (plus a call's lines): read it whole.
    messages = list(
        Message.objects.filter(
            conversation_id=conversation_id, role__in=(Message.Role.ASSISTANT, Message.Role.CUSTOMER)
        ).order_by("created_at", "pk")
    )
    for index in range(len(messages) - 1, -1, -1):
        asked = messages[index]
        if asked.role == Message.Role.ASSISTANT and wanted in _words(asked.text):
            reply = next((m for m in messages[index + 1 :] if m.role == Message.Role.CUSTOMER), None)
            return (asked, reply) if reply is not None else None
    return None


@dataclass(frozen=True)
class Workload:
    """What is waiting right now, as the operator's metrics report it (chatdesk.metrics_view)."""

    open_by_channel: dict[str, int]  # every channel, 0 when none
    handoffs_waiting: int
    oldest_handoff_waiting_seconds: float  # 0 when none waits


def workload(*, now: datetime | None = None) -> Workload:
    """Open conversations by channel and unhandled handoff requests: two aggregate queries.

    Read from the database at scrape time rather than counted by each process, so every
    worker reports the same numbers and a restart loses nothing. The open count uses the
    (status, last_activity_at) index; idle ones stay open until close_stale_sessions closes them.
    """
    counts = dict(
        Conversation.objects.filter(status=Conversation.Status.OPEN)
        .values_list("channel")
        .annotate(n=Count("id"))
        .values_list("channel", "n")
    )
    waiting = HandoffRequest.objects.filter(handled_at__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    oldest = waiting["oldest"]
    age = max(0.0, ((now or timezone.now()) - oldest).total_seconds()) if oldest else 0.0
    return Workload(
        open_by_channel={channel: counts.get(channel, 0) for channel in Conversation.ChannelKind.values},
        handoffs_waiting=waiting["n"],
        oldest_handoff_waiting_seconds=age,
    )
