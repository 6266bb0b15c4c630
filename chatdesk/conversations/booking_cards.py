"""Booking cards: the bookings a conversation touched, as the customer's transcript shows them.

A card always shows the booking as it stands now, not as the tool call that produced it
saw it: a visit booked in one turn and cancelled two turns later shows "Booking cancelled"
on its card, after a reload as well as live. There is one card per booking, kept next to
the assistant reply of the turn whose tool call first touched the booking in this
conversation (the booking, or the lookup of one made elsewhere), so a later cancellation
updates that card instead of adding another one below the cancellation message.

The page (templates/chat.html), the chat API (turn responses and the history endpoint)
and static/booking-card.js all render these dicts; the state and its wording are decided
here only.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime

from bookings.models import Booking, BookingEvent, BookingStatus
from bookings.phones import business_phone
from bookings.selectors import booking_public_dict, visit_when
from chatdesk.conversations.models import Conversation, Message


class CardState:
    CONFIRMED = "confirmed"
    PENDING = "pending"
    MOVED = "moved"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"

    ALL = (CONFIRMED, PENDING, MOVED, CANCELLED, COMPLETED, NO_SHOW)


_KEEP_NUMBER = "Keep this number and your phone handy to change or cancel the visit."


def _wording(state: str) -> tuple[str, str]:
    """The card's heading and its closing note, written for the customer."""
    return {
        CardState.CONFIRMED: ("Booking confirmed", _KEEP_NUMBER),
        CardState.PENDING: ("Booking requested", f"We will confirm this visit shortly. {_KEEP_NUMBER}"),
        CardState.MOVED: ("Booking moved", _KEEP_NUMBER),
        CardState.CANCELLED: (
            "Booking cancelled",
            "This visit is cancelled and no technician will come. Ask here if you'd like to book another time.",
        ),
        CardState.COMPLETED: ("Visit completed", "Thank you for choosing us."),
        CardState.NO_SHOW: (
            "Visit missed",
            f"We could not carry out this visit. Call us at {business_phone()} to book again.",
        ),
    }[state]


def card_state(booking: Booking, *, moved: bool) -> str:
    """Cancelled, completed and missed visits say so whatever happened before; an active
    booking that was rescheduled says it was moved."""
    if booking.status == BookingStatus.CANCELLED:
        return CardState.CANCELLED
    if booking.status == BookingStatus.COMPLETED:
        return CardState.COMPLETED
    if booking.status == BookingStatus.NO_SHOW:
        return CardState.NO_SHOW
    if moved:
        return CardState.MOVED
    if booking.status == BookingStatus.PENDING:
        return CardState.PENDING
    return CardState.CONFIRMED


def booking_card(booking: Booking, *, moved_from: datetime | None = None) -> dict:
    """`booking_public_dict` plus what the card says about its state.

    `moved_from` is the start before the booking's latest reschedule, None if it was never moved.
    """
    state = card_state(booking, moved=moved_from is not None)
    headline, note = _wording(state)
    return {
        **booking_public_dict(booking),
        "state": state,
        "headline": headline,
        "note": note,
        "previous_when": visit_when(moved_from) if state == CardState.MOVED and moved_from else None,
    }


def booking_cards(booking_ids: list[int]) -> list[dict]:
    """Cards for these bookings as they stand now, in the given order, each once."""
    cards = _cards_by_id(booking_ids)
    return [cards[i] for i in dict.fromkeys(booking_ids) if i in cards]


def _cards_by_id(booking_ids: list[int]) -> dict[int, dict]:
    ids = list({i for i in booking_ids if i})
    if not ids:
        return {}
    bookings = Booking.objects.select_related("service", "technician", "customer").in_bulk(ids)
    moved_from: dict[int, datetime] = {}
    # Oldest first, so the latest reschedule of each booking is the one kept.
    for booking_id, changes in (
        BookingEvent.objects.filter(booking_id__in=ids, kind=BookingEvent.Kind.RESCHEDULED)
        .order_by("created_at", "id")
        .values_list("booking_id", "changes")
    ):
        start = (changes or {}).get("from", {}).get("start")
        if start:
            moved_from[booking_id] = datetime.fromisoformat(start)
    return {pk: booking_card(booking, moved_from=moved_from.get(pk)) for pk, booking in bookings.items()}


def transcript(conversation: Conversation) -> list[dict]:
    """The conversation as the customer sees it: messages (no system events, no tool
    internals), each with the cards of the bookings it produced (`bookings`, usually empty).

    Tool calls are not linked to messages by a key, but every turn stores its tool calls
    before its reply: a booking's card goes with the first assistant reply stored at or
    after the first successful tool call that touched the booking. A turn still running
    (no reply yet) puts its cards after the newest message.
    """
    messages = list(
        conversation.messages.exclude(role=Message.Role.EVENT)
        .order_by("created_at", "id")
        .values_list("role", "text", "created_at")
    )
    entries = [{"role": role, "text": text, "at": at.isoformat(), "bookings": []} for role, text, at in messages]
    first_touch: dict[int, datetime] = {}
    for booking_id, at in (
        conversation.tool_calls.filter(booking__isnull=False, error="")
        .order_by("created_at", "id")
        .values_list("booking_id", "created_at")
    ):
        first_touch.setdefault(booking_id, at)
    if not first_touch or not entries:
        return entries
    replies = [(at, index) for index, (role, _, at) in enumerate(messages) if role == Message.Role.ASSISTANT]
    reply_times = [at for at, _ in replies]
    cards = _cards_by_id(list(first_touch))
    for booking_id, touched in first_touch.items():  # first touched first
        if booking_id not in cards:
            continue
        position = bisect_left(reply_times, touched)
        index = replies[position][1] if position < len(replies) else len(entries) - 1
        entries[index]["bookings"].append(cards[booking_id])
    return entries
