"""A conversation's transcript for staff: messages and tool calls in time order, ready to render."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.urls import reverse

from bookings.models import Booking
from bookings.phones import phone_display
from bookings.selectors import business_tz
from chatdesk.backoffice.common import local_time, staff_name, usd
from chatdesk.backoffice.pii import MASK, mask_json, mask_text
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall

# JSON longer than this is folded into <details> so the conversation stays readable.
FOLD_CHARS = 160
ROLE_LABELS = {
    Message.Role.CUSTOMER: "Customer",
    Message.Role.ASSISTANT: "Assistant",
    Message.Role.STAFF: "Staff",
    Message.Role.EVENT: "System",
}


@dataclass(frozen=True)
class JsonBlock:
    text: str
    folded: bool
    summary: str


def _json_block(value: object, *, pii: bool) -> JsonBlock | None:
    if value in (None, {}, []):
        return None
    if not pii:
        value = mask_json(value)
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    compact = json.dumps(value, ensure_ascii=False, default=str)
    if len(compact) <= FOLD_CHARS:
        return JsonBlock(text=compact, folded=False, summary="")
    size = f"{len(value)} keys" if isinstance(value, dict) else f"{len(value)} items" if isinstance(value, list) else ""
    return JsonBlock(text=text, folded=True, summary=size)


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(business_tz()):%H:%M:%S}"


def _seconds(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


@dataclass(frozen=True)
class Transcript:
    entries: list[dict]
    bookings: list[dict]
    handoffs: list[dict]
    tool_errors: int


def conversation_transcript(conversation: Conversation, *, pii: bool, costs: bool) -> Transcript:
    """Messages and tool calls in time order, ready to render, in three queries.

    Tool calls are recorded when they start, so each sits between the customer's
    message that led to it and the reply that used its result.
    """
    tz = business_tz()
    rows: list[tuple[datetime, int, int, object]] = []
    for message in conversation.messages.select_related("staff_user").order_by("created_at", "id"):
        rows.append((message.created_at, 0, message.pk, message))
    calls = list(conversation.tool_calls.select_related("booking").order_by("created_at", "id"))
    rows += [(call.created_at, 1, call.pk, call) for call in calls]
    rows.sort(key=lambda row: row[:3])

    entries: list[dict] = []
    day = None
    for at, _, _, row in rows:
        if at.astimezone(tz).date() != day:
            day = at.astimezone(tz).date()
            entries.append({"kind": "day", "label": f"{at.astimezone(tz):%A %-d %B %Y}"})
        if isinstance(row, Message):
            entries.append(
                {
                    "kind": "message",
                    "id": row.pk,
                    "role": row.role,
                    "who": staff_name(row.staff_user) if row.role == Message.Role.STAFF else ROLE_LABELS[row.role],
                    "time": _clock(at),
                    "iso": at.isoformat(),
                    "text": row.text if pii else mask_text(row.text),
                    "latency": _seconds(row.latency_ms),
                    "cost": usd(row.cost_usd, 6) if costs and row.cost_usd is not None else "",
                    "voice": row.channel == Conversation.ChannelKind.VOICE,
                    "interrupted": row.interrupted,
                }
            )
        else:
            call: ToolCall = row  # type: ignore[assignment]
            arguments = call.arguments
            if not arguments and call.raw_arguments:
                # Arguments that did not parse: show what the model sent.
                arguments = {"raw": call.raw_arguments}
            entries.append(
                {
                    "kind": "tool",
                    "id": call.pk,
                    "name": call.name,
                    "call_id": call.call_id,
                    "time": _clock(at),
                    "iso": at.isoformat(),
                    "ok": call.ok,
                    "error": call.error,
                    "duration": _seconds(call.duration_ms),
                    "arguments": _json_block(arguments, pii=pii),
                    "result": _json_block(call.result, pii=pii),
                    "booking": _booking_link(call.booking) if call.booking else None,
                }
            )

    bookings: dict[int, dict] = {}
    for call in calls:
        if call.booking and call.ok and call.name in BOOKING_TOOLS:
            link = bookings.setdefault(call.booking_id, {**_booking_link(call.booking), "actions": []})
            link["actions"].append(BOOKING_TOOLS[call.name])
    handoffs = [
        {
            "reason": h.reason if pii else mask_text(h.reason),
            "urgent": h.urgent,
            "contact": _handoff_contact(h, pii),
            "requested": local_time(h.created_at),
            "handled": f"{local_time(h.handled_at)} by {staff_name(h.handled_by)}" if h.handled_at else "",
            "url": reverse("admin:chatdesk_handoffrequest_change", args=[h.pk]),
        }
        for h in conversation.handoffs.select_related("handled_by").order_by("created_at")
    ]
    return Transcript(
        entries=entries,
        bookings=list(bookings.values()),
        handoffs=handoffs,
        tool_errors=sum(1 for call in calls if not call.ok),
    )


# What each booking tool did to the booking it names (lookups are not listed).
BOOKING_TOOLS = {"create_booking": "booked", "reschedule_booking": "rescheduled", "cancel_booking": "cancelled"}


def _booking_link(booking: Booking) -> dict:
    return {"number": booking.number, "url": reverse("admin:bookings_booking_change", args=[booking.pk])}


def _handoff_contact(handoff: HandoffRequest, pii: bool) -> str:
    phone = phone_display(handoff.contact_phone) if pii else (MASK if handoff.contact_phone else "")
    return " · ".join(part for part in [handoff.contact_name, phone] if part)


def cost_by_modality(conversation: Conversation) -> list[tuple[str, Decimal]]:
    """USD per modality and kind, e.g. [("Audio output", 0.04), ("Text (chat model)", 0.0012)].

    Voice responses record their cost by modality in cost_breakdown; text chat turns only
    add to cost_usd, so whatever the breakdown does not explain is the text chat model's.
    """
    rows = []
    explained = Decimal("0")
    for kind, amount in sorted((conversation.cost_breakdown or {}).items()):
        value = Decimal(str(amount))
        explained += value
        rows.append((kind.replace("_", " ").capitalize(), value))
    rest = conversation.cost_usd - explained
    if rest > 0:
        rows.append(("Text (chat model)", rest))
    return rows
