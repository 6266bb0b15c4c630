"""The conversation record's services: find, close, staff takeover and replies.

Database work for async callers runs in small sync functions on a thread pool (`db`),
not in Django's single shared sync thread, which would serialize every customer in the
process. The turn engine (running a customer's turn) is chatdesk.assistant.turns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from bookings.errors import DomainError, NotFound
from bookings.limits import MAX_NAME
from bookings.numbering import next_number
from chatdesk.conversations import booking_cards, live, model_items, record
from chatdesk.conversations.limits import message_length_check
from chatdesk.conversations.models import Conversation, HandoffRequest, Message


class ConversationClosed(DomainError):
    code = "conversation_closed"
    http_status = 409


class SessionNotFound(NotFound):
    code = "session_not_found"


async def db[T](fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run sync ORM work on the thread pool, returning its connection to the pool after."""

    def run() -> T:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return await sync_to_async(run, thread_sensitive=False)()


def hash_ip(ip: str) -> str:
    # Salted with SECRET_KEY: enough to group abuse by client without storing the IP.
    return hashlib.sha256(f"{settings.SECRET_KEY}:{ip}".encode()).hexdigest()[:32] if ip else ""


def conversation_create(
    *,
    channel: str,
    mode: str,
    model: str,
    ip: str = "",
    user_agent: str = "",
    number: str = "",
    has_call: bool = False,
    widget_page: str | None = None,
) -> Conversation:
    """Open a conversation: a text chat, a voice call, or a replay's scratch copy (`number` given).

    `widget_page` (a checked page URL, or "" when unknown) marks one started in the website
    widget; None is any other door. Its yearly number is allocated in the caller's transaction,
    if any (no savepoint).
    """
    with transaction.atomic(savepoint=False):
        return Conversation.objects.create(
            number=number or next_number("INT", timezone.localdate().year, 5),
            channel=channel,
            mode=mode,
            model=model,
            client_ip_hash=hash_ip(ip),
            user_agent=user_agent[:300],
            has_call=has_call,
            from_widget=widget_page is not None,
            widget_page=widget_page or "",
        )


def conversation_by_session(session_id: str) -> Conversation:
    conversation = Conversation.objects.filter(session_id=session_id).first() if session_id else None
    if conversation is None:
        raise SessionNotFound("No conversation with that session id.")
    return conversation


def conversation_close(*, session_id: str, resolution: str = "", reason: str = "customer_closed") -> Conversation:
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(session_id=session_id).first()
        if conversation is None:
            raise SessionNotFound("No conversation with that session id.")
        if conversation.status != Conversation.Status.OPEN:
            raise ConversationClosed("This conversation is already closed.")
        conversation.status = Conversation.Status.CLOSED
        conversation.ended_at = timezone.now()
        conversation.end_reason = reason
        if resolution:
            conversation.resolution = resolution
        elif not conversation.resolution:
            conversation.resolution = (
                Conversation.Resolution.BOOKED if conversation.booking_count else Conversation.Resolution.ANSWERED
            )
        conversation.save(update_fields=["status", "ended_at", "end_reason", "resolution"])
    return conversation


def history(conversation: Conversation) -> list[dict]:
    """The transcript as the customer sees it (no system events, no tool internals); each
    message carries the cards of the bookings its turn produced, in their current state."""
    return booking_cards.transcript(conversation)


def booking_summaries(conversation: Conversation, entries: list[dict] | None = None) -> list[dict]:
    """Every booking the conversation touched, once, as it stands now, in transcript order.

    Pass `history()`'s entries when you have them, to save reading them again.
    """
    entries = history(conversation) if entries is None else entries
    return [card for entry in entries for card in entry["bookings"]]


def staff_event_record(conversation: Conversation, text: str) -> Message:
    """A line in the conversation's transcript saying what a staff member did (the audit row:
    who is in the text, when is `created_at`). Call it inside the transaction of the change."""
    message = Message.objects.create(conversation=conversation, role=Message.Role.EVENT, text=text)
    record.count_message(conversation.pk)
    return message


def conversation_take_over(*, conversation: Conversation, user: object) -> Conversation:
    """A staff member takes the conversation: the assistant stays quiet until handed back.

    Refused (LiveUnavailable) while live updates cannot reach the customer: they would wait
    on a person whose replies never show. Handing back needs no such check, since the assistant
    answers through the chat API itself.
    """
    live.require_live()
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if locked.status != Conversation.Status.OPEN:
            raise ConversationClosed("This conversation is closed.")
        if locked.taken_over_by_id and locked.taken_over_by_id != getattr(user, "pk", None):
            raise ConversationClosed(f"{locked.taken_over_by} is already handling this conversation.")
        locked.taken_over_by = user
        locked.taken_over_at = timezone.now()
        locked.save(update_fields=["taken_over_by", "taken_over_at"])
        staff_event_record(locked, f"{user} took over the conversation.")
    live.publish(locked, {"kind": "takeover", "taken_over": True, "staff": str(user)})
    return locked


def conversation_hand_back(*, conversation: Conversation, user: object) -> Conversation:
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        locked.taken_over_by = None
        locked.taken_over_at = None
        locked.save(update_fields=["taken_over_by", "taken_over_at"])
        staff_event_record(locked, f"{user} handed the conversation back to the assistant.")
    live.publish(locked, {"kind": "takeover", "taken_over": False, "staff": str(user)})
    return locked


def staff_message_send(*, conversation: Conversation, user: object, text: str) -> Message:
    """A staff reply, shown to the customer live and added to the model's history."""
    text = text.strip()
    if not text:
        raise DomainError("The message is empty.", field="text")
    message_length_check(text)
    live.require_live()  # the customer sees staff replies live: refuse while that cannot happen
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if locked.status != Conversation.Status.OPEN:
            raise ConversationClosed("This conversation is closed.")
        if locked.taken_over_by_id != getattr(user, "pk", None):
            raise ConversationClosed("Take the conversation over before replying.")
        message = Message.objects.create(conversation=locked, role=Message.Role.STAFF, text=text, staff_user=user)
        # The model sees staff replies as its own, so it can carry on after the handback.
        record.append_model_items(
            locked.pk, [model_items.assistant_item(text)], messages=1, last_activity_at=timezone.now()
        )
        locked.message_count += 1  # for the live summary, as the row now says
    live.publish(locked, live.message_event(message))
    return message


def text_handoff_create(*, customer_id: int | None, phone: str, name: str, text: str) -> HandoffRequest | None:
    """A customer's text message that is not STOP, START or HELP: a callback request for staff,
    on the customer's latest conversation (the queue lists handoffs by conversation).

    None when the customer has no conversation (a booking staff made by phone): the text is
    then in the admin's "texts from customers" list only.
    """
    if customer_id is None:
        return None
    conversation = Conversation.objects.filter(customer_id=customer_id).order_by("-started_at").first()
    if conversation is None:
        return None
    return HandoffRequest.objects.create(
        conversation=conversation,
        reason=" ".join(f"Text message: {text}".split())[:500],
        contact_name=name[:MAX_NAME],
        contact_phone=phone,
    )
