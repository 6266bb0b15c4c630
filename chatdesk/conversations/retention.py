"""Conversation lifecycle after the customer leaves: closing idle ones, and the retention policy.

- Idle conversations are closed as abandoned, ended at their last activity.
- Old conversations are deleted, or anonymized: the rows and their metrics (tokens, cost,
  counts, tool names, outcomes) stay for reporting, every trace of the customer goes.

Bookings are never touched: they are the business's record (a booking keeps its customer,
address and audit trail; ToolCall.booking is SET_NULL the other way round, so deleting a
conversation only drops the link).

Each function works in batches of primary keys, each batch in its own transaction, so a
run holds no long locks and an interrupted run leaves whole conversations done or not done.
Running again picks up what is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from chatdesk.conversations import live
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall
from chatdesk.conversations.pii import replace_contact_details

REDACTED = "[redacted]"
BATCH_SIZE = 200

# Tool result keys whose values identify the customer (booking_public_dict and friends).
# "name" is not one: in results it names a service or a technician.
RESULT_PII_KEYS = frozenset(
    {"customer_name", "customer_phone", "customer_email", "phone", "email", "address", "notes", "contact_name"}
)
# In arguments every free-text value came from the customer: their name and phone for
# request_human, notes, reasons, what they said about a day.
ARGUMENT_PII_KEYS = RESULT_PII_KEYS | {"name", "reason", "text"}


def _batches(queryset: QuerySet) -> Iterator[list[int]]:
    """Primary keys in batches, read afresh each time (the work removes rows from the set)."""
    last = 0
    while True:
        pks = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH_SIZE])
        if not pks:
            return
        yield pks
        last = pks[-1]


@dataclass
class RunResult:
    matched: int = 0
    done: int = 0
    stopped: bool = False


# --- idle conversations -----------------------------------------------------------------


def stale_conversations(*, idle_minutes: int, now: datetime | None = None) -> QuerySet[Conversation]:
    cutoff = (now or timezone.now()) - timedelta(minutes=idle_minutes)
    return Conversation.objects.filter(status=Conversation.Status.OPEN, last_activity_at__lt=cutoff)


def conversations_close_stale(
    *,
    idle_minutes: int,
    now: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Close open conversations idle longer than `idle_minutes` as abandoned.

    They end at their last activity (so their duration is how long the customer was
    there, not how long until we noticed), with end_reason "idle". The resolution says
    what happened: booked if they booked, escalated if they asked for a person (staff
    still owe them a call), abandoned otherwise.
    """
    now = now or timezone.now()
    stale = stale_conversations(idle_minutes=idle_minutes, now=now)
    result = RunResult(matched=stale.count())
    for pks in _batches(stale):
        with transaction.atomic():
            # Lock the rows that are still idle: PostgreSQL re-checks the condition on each
            # row it had to wait for, so a customer whose message landed since the batch was
            # read keeps their conversation open.
            closed = list(stale.filter(pk__in=pks).select_for_update().values_list("pk", flat=True))
            Conversation.objects.filter(pk__in=closed).update(
                status=Conversation.Status.ABANDONED,
                ended_at=F("last_activity_at"),
                end_reason="idle",
                resolution=Case(
                    When(booking_count__gt=0, then=Value(Conversation.Resolution.BOOKED)),
                    When(resolution=Conversation.Resolution.ESCALATED, then=Value(Conversation.Resolution.ESCALATED)),
                    default=Value(Conversation.Resolution.ABANDONED),
                ),
            )
        result.done += len(closed)
        for conversation in Conversation.objects.filter(pk__in=closed):
            # The live monitor drops a conversation once its summary is no longer open.
            live.publish(
                conversation, {"kind": "message", "role": Message.Role.EVENT, "text": "Closed: the customer went idle."}
            )
        if on_batch:
            on_batch(len(closed))
        if should_stop and should_stop():
            result.stopped = True
            break
    return result


# --- retention --------------------------------------------------------------------------


def retention_cutoff(*, older_than_days: int, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=older_than_days)


def expired_conversations(*, older_than_days: int, now: datetime | None = None) -> QuerySet[Conversation]:
    """Conversations whose last activity is older than the retention period.

    Open conversations are never touched, however old: close_stale_sessions ends them first.
    """
    cutoff = retention_cutoff(older_than_days=older_than_days, now=now)
    return Conversation.objects.filter(last_activity_at__lt=cutoff).exclude(status=Conversation.Status.OPEN)


def still_identifying(queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Those of `queryset` that still hold something about the customer.

    Anonymizing a conversation clears all of these in one transaction, so this is also
    what makes `--anonymize` cheap to re-run: done conversations are not matched again.
    """
    unredacted = Message.objects.filter(conversation=OuterRef("pk")).exclude(text=REDACTED)
    unscrubbed_calls = ToolCall.objects.filter(conversation=OuterRef("pk")).exclude(raw_arguments="")
    contact = HandoffRequest.objects.filter(conversation=OuterRef("pk")).filter(
        ~Q(contact_name="") | ~Q(contact_phone="") | ~Q(reason=REDACTED)
    )
    return queryset.filter(
        Q(customer__isnull=False)
        | ~Q(client_ip_hash="")
        | ~Q(user_agent="")
        | ~Q(model_items=[])
        | ~Q(guided_state={})
        | Exists(unredacted)
        | Exists(unscrubbed_calls)
        | Exists(contact)
    )


@dataclass
class RetentionCounts:
    conversations: int
    messages: int
    tool_calls: int
    handoffs: int


def retention_counts(queryset: QuerySet[Conversation]) -> RetentionCounts:
    return RetentionCounts(
        conversations=queryset.count(),
        messages=Message.objects.filter(conversation__in=queryset).count(),
        tool_calls=ToolCall.objects.filter(conversation__in=queryset).count(),
        handoffs=HandoffRequest.objects.filter(conversation__in=queryset).count(),
    )


def conversations_delete(
    queryset: QuerySet[Conversation],
    *,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Delete the conversations with their messages, tool calls and handoffs (CASCADE)."""
    result = RunResult(matched=queryset.count())
    for pks in _batches(queryset):
        with transaction.atomic():
            queryset.filter(pk__in=pks).delete()
        result.done += len(pks)
        if on_batch:
            on_batch(len(pks))
        if should_stop and should_stop():
            result.stopped = True
            break
    return result


def _known_values(
    conversation: Conversation, calls: Iterable[ToolCall], handoffs: Iterable[HandoffRequest]
) -> set[str]:
    """The customer's own details as this conversation knows them, to find them in free text."""
    values: set[str] = set()
    if conversation.customer is not None:
        customer = conversation.customer
        values |= {customer.name, customer.phone, customer.email, customer.address}
    for call in calls:
        values |= set(_pii_values(call.arguments, ARGUMENT_PII_KEYS))
        values |= set(_pii_values(call.result, RESULT_PII_KEYS))
    for handoff in handoffs:
        values |= {handoff.contact_name, handoff.contact_phone}
    # Short values ("Al", "5") would shred unrelated text.
    return {v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= 4}


def _pii_values(data: object, keys: frozenset[str]) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from _pii_values(value, keys)
    elif isinstance(data, list):
        for value in data:
            yield from _pii_values(value, keys)


def scrub_text(text: str, known: Iterable[str] = ()) -> str:
    """`text` without the known values, email addresses and phone numbers in it."""
    for value in sorted(known, key=len, reverse=True):
        text = re.sub(re.escape(value), REDACTED, text, flags=re.IGNORECASE)
    # The same emails and phones the admin masks (one definition, in conversations.pii).
    return replace_contact_details(text, REDACTED)


def scrub_json(data: object, known: Iterable[str] = (), keys: frozenset[str] = ARGUMENT_PII_KEYS) -> object:
    """A copy of tool arguments or results with the customer's details replaced.

    Values under `keys` go whole; other strings lose the known values, emails and phones.
    Keys stay, so the shape of a call (which arguments the model gave, which error came
    back) is still there to study.
    """
    known = tuple(known)
    if isinstance(data, dict):
        return {
            key: (REDACTED if key in keys and value not in (None, "") else scrub_json(value, known, keys))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [scrub_json(value, known, keys) for value in data]
    if isinstance(data, str):
        return scrub_text(data, known)
    return data


def conversation_anonymize(conversation: Conversation) -> None:
    """Remove everything about the customer from one conversation, keeping its metrics."""
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",)).select_related("customer").get(pk=conversation.pk)
        )
        calls = list(conversation.tool_calls.all())
        handoffs = list(conversation.handoffs.all())
        known = _known_values(conversation, calls, handoffs)
        conversation.messages.update(text=REDACTED)
        for call in calls:
            call.arguments = scrub_json(call.arguments, known, ARGUMENT_PII_KEYS)
            call.result = scrub_json(call.result, known, RESULT_PII_KEYS) if call.result is not None else None
            call.raw_arguments = ""
        ToolCall.objects.bulk_update(calls, ["arguments", "result", "raw_arguments"])
        conversation.handoffs.update(contact_name="", contact_phone="", reason=REDACTED)
        conversation.customer = None
        conversation.client_ip_hash = ""
        conversation.user_agent = ""
        conversation.model_items = []
        conversation.guided_state = {}
        conversation.last_error = scrub_text(conversation.last_error, known)
        conversation.save(
            update_fields=["customer", "client_ip_hash", "user_agent", "model_items", "guided_state", "last_error"]
        )


def conversations_anonymize(
    queryset: QuerySet[Conversation],
    *,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    todo = still_identifying(queryset)
    result = RunResult(matched=todo.count())
    for pks in _batches(todo):
        for conversation in Conversation.objects.filter(pk__in=pks):
            conversation_anonymize(conversation)
        result.done += len(pks)
        if on_batch:
            on_batch(len(pks))
        if should_stop and should_stop():
            result.stopped = True
            break
    return result
