"""Read-only reports over conversations: cost per group, and transcripts for export.

Both work on a [start, end) window of `Conversation.started_at`; the commands turn the
operator's days into that window in the business time zone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, F, Prefetch, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from bookings.selectors import business_tz
from chatdesk.conversations.access import EVERYTHING, Visibility
from chatdesk.conversations.models import Conversation, Message, ToolCall
from chatdesk.conversations.money import MONEY

GROUPINGS = ("day", "channel", "model")
TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "audio_input_tokens", "audio_output_tokens")


@dataclass(frozen=True)
class CostRow:
    group: str
    conversations: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    audio_input_tokens: int
    audio_output_tokens: int
    cost_usd: Decimal


def _totals() -> dict:
    sums = {name: Coalesce(Sum(name), 0) for name in TOKEN_FIELDS}
    return {"conversations": Count("id"), **sums, "cost_usd": Coalesce(Sum("cost_usd"), Decimal("0"))}


def _row(group: str, values: dict) -> CostRow:
    return CostRow(
        group=group,
        conversations=values["conversations"],
        **{name: values[name] for name in TOKEN_FIELDS},
        cost_usd=Decimal(values["cost_usd"]).quantize(MONEY),
    )


def cost_report(*, start: datetime, end: datetime, by: str) -> tuple[list[CostRow], CostRow]:
    """Conversations, tokens and cost per day, channel or model, and the total.

    Summed by the database (one GROUP BY and one aggregate), whatever the number of
    conversations. Days are the business's calendar days, not UTC ones.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}")
    window = Conversation.objects.filter(started_at__gte=start, started_at__lt=end)
    key = {"day": TruncDate("started_at", tzinfo=business_tz()), "channel": F("channel"), "model": F("model")}[by]
    grouped = window.order_by().values(group=key).annotate(**_totals()).order_by("group")
    rows = [_row(str(values["group"]) if values["group"] else "(none)", values) for values in grouped]
    total = _row("total", window.aggregate(**_totals()))
    return rows, total


# --- transcripts ------------------------------------------------------------------------


def transcripts(*, start: datetime, end: datetime, chunk_size: int = 200) -> QuerySet[Conversation]:
    """Conversations in the window with their messages and tool calls, for streaming.

    Meant for `.iterator(chunk_size=...)`: Django then fetches `chunk_size` conversations
    at a time through a server-side cursor and runs the prefetches for that chunk only,
    so memory stays flat however many conversations there are.
    """
    messages = Message.objects.order_by("created_at", "id")
    tool_calls = ToolCall.objects.select_related("booking").order_by("created_at", "id")
    return (
        Conversation.objects.filter(started_at__gte=start, started_at__lt=end)
        .order_by("started_at", "id")
        .prefetch_related(Prefetch("messages", queryset=messages), Prefetch("tool_calls", queryset=tool_calls))
    )


def transcript_dict(conversation: Conversation) -> dict:
    """One conversation as exported: what happened, what it cost, every message and tool call.

    Customer PII is in here (messages, tool arguments) until transcript_lines masks it.
    The model's raw item history is left out; the messages and tool calls say the same.
    """
    return {
        "number": conversation.number,
        "channel": conversation.channel,
        "status": conversation.status,
        "resolution": conversation.resolution,
        "mode": conversation.mode,
        "started_at": conversation.started_at,
        "last_activity_at": conversation.last_activity_at,
        "ended_at": conversation.ended_at,
        "end_reason": conversation.end_reason,
        "duration_seconds": conversation.duration_seconds,
        "customer_id": conversation.customer_id,
        "message_count": conversation.message_count,
        "booking_count": conversation.booking_count,
        "model": conversation.model,
        "tokens": {name: getattr(conversation, name) for name in (*TOKEN_FIELDS, "reasoning_tokens")},
        "cost_usd": conversation.cost_usd,
        "cost_breakdown": conversation.cost_breakdown,
        "messages": [
            {
                "role": m.role,
                "text": m.text,
                "channel": m.channel,
                "at": m.created_at,
                "latency_ms": m.latency_ms,
                "cost_usd": m.cost_usd,
                "interrupted": m.interrupted,
            }
            for m in conversation.messages.all()
        ],
        "tool_calls": [
            {
                "call_id": c.call_id,
                "name": c.name,
                "arguments": c.arguments,
                "result": c.result,
                "error": c.error,
                "duration_ms": c.duration_ms,
                "at": c.created_at,
                "booking_number": c.booking.number if c.booking else None,
            }
            for c in conversation.tool_calls.all()
        ],
    }


def transcript_lines(
    queryset: QuerySet[Conversation], *, chunk_size: int = 200, seen: Visibility = EVERYTHING
) -> Iterator[str]:
    """JSON Lines, one conversation per line (no newline inside a line: JSON escapes them).

    Each conversation as `seen` may see it: the staff doors' one masking (access.Visibility).
    """
    for conversation in queryset.iterator(chunk_size=chunk_size):
        yield json.dumps(seen.present(transcript_dict(conversation)), cls=DjangoJSONEncoder, ensure_ascii=False)
