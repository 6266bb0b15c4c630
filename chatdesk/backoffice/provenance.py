"""Why a booking exists: every change with who or what made it, and the customer's words before it."""

from __future__ import annotations

import re

from django.db.models import OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from bookings.models import ActorKind, Booking
from chatdesk.backoffice.common import local_time, staff_name
from chatdesk.backoffice.pii import mask_text
from chatdesk.conversations.models import Message, ToolCall

REFERENCE = re.compile(r"^(?P<number>INT-\d{4}-\d+) (?P<call_id>\S+)$")
QUOTE_CHARS = 200


def booking_provenance(booking: Booking, *, pii: bool = False) -> list[dict]:
    """Who or what is behind every change of `booking`, oldest first, in two queries.

    Chat and voice changes carry "INT-2026-00012 call_abc" in BookingEvent.actor_reference:
    that finds the tool call, its conversation, and the customer's words just before it.
    Tool calls that only looked the booking up are listed after the changes. Notes (a
    cancellation reason may hold a phone number) are masked unless `pii`: the staff member
    may see customers' contact details (chatdesk.conversations.access).
    """
    events = list(booking.events.select_related("actor_user").order_by("created_at", "id"))
    references = {}
    for event in events:
        match = REFERENCE.match(event.actor_reference or "")
        if match:
            references[event.pk] = (match["number"], match["call_id"])
    wanted = Q(booking=booking)
    for number, call_id in references.values():
        wanted |= Q(conversation__number=number, call_id=call_id)
    said = Message.objects.filter(
        conversation=OuterRef("conversation"), role=Message.Role.CUSTOMER, created_at__lte=OuterRef("created_at")
    ).order_by("-created_at", "-id")
    calls = {
        (call.conversation.number, call.call_id): call
        for call in ToolCall.objects.filter(wanted)
        .select_related("conversation")
        .annotate(customer_said=Subquery(said.values("text")[:1]))
    }

    def call_row(call: ToolCall) -> dict:
        url = reverse("admin:chatdesk_conversation_change", args=[call.conversation_id])
        said_text = mask_text(call.customer_said or "")  # type: ignore[attr-defined]
        return {
            "conversation": call.conversation.number,
            "url": f"{url}#call-{call.pk}",
            "tool": call.name,
            "call_id": call.call_id,
            "said": said_text[:QUOTE_CHARS] + ("…" if len(said_text) > QUOTE_CHARS else ""),
        }

    rows = []
    used = set()
    for event in events:
        row = {
            "when": local_time(event.created_at),
            "kind": event.get_kind_display(),
            "channel": event.get_actor_channel_display() if event.actor_channel else "",
            "note": event.note if pii else mask_text(event.note),
            "call": None,
            "staff": "",
            "actor": event.get_actor_kind_display(),
            "reference": event.actor_reference,
        }
        if event.actor_kind == ActorKind.STAFF:
            row["staff"] = staff_name(event.actor_user) if event.actor_user else "a staff user since removed"
        key = references.get(event.pk)
        if key and key in calls:
            row["call"] = call_row(calls[key])
            used.add(key)
        rows.append(row)
    lookups = [call_row(call) for key, call in calls.items() if key not in used]
    return [*rows, *({"kind": "Looked up", "call": c, "actor": "Customer", "lookup": True} for c in lookups)]


def booking_provenance_html(booking: Booking, *, pii: bool = False) -> SafeString:
    if booking.pk is None:
        return mark_safe("-")
    return render_to_string("admin/chatdesk/provenance.html", {"rows": booking_provenance(booking, pii=pii)})
