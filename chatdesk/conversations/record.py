"""The conversation record's one writer for its running columns.

A Conversation's model history (`model_items`), usage (tokens, cost, `cost_breakdown`) and
counters (`message_count`, `failure_count`, `booking_count`) are written by text turns, staff
replies, voice calls and tools, often at the same moment: a staff reply or a spoken line can
be stored while a text turn waits on the model. They all write through here, and no writer
sends back a copy it read earlier:
- appends and counter moves happen in the UPDATE itself (`model_items || new items`,
  `count = count + n`), on the row as it is once the UPDATE holds the row's lock; that lock
  is the statement's own, so a turn pays no extra round trip for it;
- changes that must read first (merging `cost_breakdown`, trimming a spoken line) lock the
  row with SELECT ... FOR UPDATE in the transaction that writes it.
The statements on a chat turn's path skip the ORM's per-query CPU (chatdesk.conversations.rows,
used only here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from chatdesk.conversations import rows
from chatdesk.conversations.models import Conversation, Message, ToolCall
from chatdesk.conversations.money import MONEY


@dataclass(frozen=True)
class Usage:
    """What one model reply (text) or response (voice) used, and what it cost."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    cost: Decimal = Decimal("0")
    price_missing: bool = False

    def counters(self) -> dict[str, object]:
        moved = {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "audio_input_tokens": self.audio_input_tokens,
            "audio_output_tokens": self.audio_output_tokens,
            "cost_usd": self.cost,
        }
        return {name: amount for name, amount in moved.items() if amount}


def session_conversation(session_id: str) -> Conversation | None:
    """The conversation of this session id, or None."""
    return rows.fetch_one(Conversation, field="session_id", value=session_id) if session_id else None


def add_message(message: Message) -> Message:
    """Store a new message (the caller counts it with `write`, usually in the same statement as the rest)."""
    rows.insert(message)
    return message


def claim_message(message: Message) -> bool:
    """Store a customer's message that carries the client's id; False when a message with that
    id is already stored in the conversation (a retry), and nothing is stored."""
    try:
        # As claim_tool_call: a savepoint only inside a caller's transaction.
        with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
            rows.insert(message)
    except IntegrityError:
        return False
    return True


def write(
    conversation_id: int,
    *,
    items: Sequence[dict] = (),
    messages: int = 0,
    failure: str = "",
    bookings: int = 0,
    usage: Usage | None = None,
    assign: Mapping[str, object] | None = None,
) -> None:
    """One UPDATE of the conversation: append `items` to the model history, count `messages`,
    a `failure` (also kept as last_error) and `bookings`, add `usage`, and set the columns in
    `assign`."""
    add: dict[str, object] = {}
    values = dict(assign or {})
    if messages:
        add["message_count"] = messages
    if bookings:
        add["booking_count"] = bookings
    if failure:
        add["failure_count"] = 1
        values["last_error"] = failure[:300]
    if usage is not None:
        add.update(usage.counters())
        if usage.price_missing:
            values["price_missing"] = True
    if not (add or values or items):
        return
    rows.update(Conversation, conversation_id, add=add, assign=values, append={"model_items": items})


def append_model_items(conversation_id: int, items: Sequence[dict], *, messages: int = 0, **assign: object) -> None:
    """Add `items` to the end of the model history as stored now (and count `messages`)."""
    write(conversation_id, items=items, messages=messages, assign=assign)


def count_message(conversation_id: int, messages: int = 1, *, failure: str = "", **assign: object) -> None:
    """Count stored messages (events included), and a failure if there was one."""
    write(conversation_id, messages=messages, failure=failure, assign=assign)


def add_usage(conversation_id: int, usage: Usage, *, breakdown: Mapping[str, Decimal] | None = None) -> None:
    """Add a response's tokens and cost; `breakdown` (cost by kind) merges into `cost_breakdown`."""
    if not breakdown:
        write(conversation_id, usage=usage)
        return
    with transaction.atomic():
        current = (
            Conversation.objects.select_for_update().values_list("cost_breakdown", flat=True).get(pk=conversation_id)
        )
        merged = dict(current or {})
        for kind, amount in breakdown.items():
            merged[kind] = str((Decimal(merged.get(kind, "0")) + amount).quantize(MONEY))
        write(conversation_id, usage=usage, assign={"cost_breakdown": merged})


def replace_model_item(conversation_id: int, old: dict, new: dict | None) -> None:
    """Replace the newest history item equal to `old` by `new` (None removes it)."""
    with transaction.atomic():
        items = list(
            Conversation.objects.select_for_update().values_list("model_items", flat=True).get(pk=conversation_id)
        )
        for index in range(len(items) - 1, -1, -1):
            if items[index] == old:
                if new is None:
                    del items[index]
                else:
                    items[index] = new
                Conversation.objects.filter(pk=conversation_id).update(model_items=items)
                break


# --- tool calls -----------------------------------------------------------------------


def claim_tool_call(row: ToolCall) -> bool:
    """INSERT the call's row; False when its call_id is already recorded (a replay)."""
    try:
        # A savepoint only inside a caller's transaction: in autocommit a failed INSERT
        # breaks nothing, and BEGIN/COMMIT would be two more round trips on every call.
        with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
            rows.insert(row)
    except IntegrityError:
        return False
    return True


def tool_call_done(row: ToolCall) -> None:
    """Store what a claimed call did: its arguments, result, error, booking and duration."""
    rows.update(
        ToolCall,
        row.pk,
        assign={
            "arguments": row.arguments,
            "result": row.result,
            "error": row.error,
            "booking": row.booking_id,
            "duration_ms": row.duration_ms,
        },
    )


def bookings_made_locked(conversation_id: int) -> int:
    """The conversation's booking count, its row locked until the caller's transaction ends.

    Parallel tool calls, two tabs and a voice call on one conversation queue here, and each
    sees the others' committed bookings. On SQLite select_for_update is a no-op, but the
    IMMEDIATE transaction (settings) already holds the database's write lock from BEGIN.
    """
    return Conversation.objects.select_for_update().values_list("booking_count", flat=True).get(pk=conversation_id)


def count_booking(conversation_id: int, *, customer_id: int) -> None:
    """The conversation made a booking for this customer: it is booked."""
    write(
        conversation_id,
        bookings=1,
        assign={"customer": customer_id, "resolution": Conversation.Resolution.BOOKED},
    )
