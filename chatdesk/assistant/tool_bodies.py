"""The tool bodies: what each of the assistant's tools does, through bookings.services and
bookings.selectors only, with the argument checks they share. The contract every tool follows,
the schemas the model sees, the registry and the execution (validation, recording, limits) are
chatdesk/assistant/tools.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.utils import timezone

from bookings import limits
from bookings.errors import BookingNotFound, DomainError, InvalidInput, NotFound
from bookings.models import Booking, Channel, Service, Technician, Trade
from bookings.phones import business_phone, normalize_phone
from bookings.selectors import (
    available_slots,
    booking_for_customer,
    booking_public_dict,
    business_tz,
    services_list,
    technicians_available,
)
from bookings.services import Actor, booking_cancel, booking_create, booking_reschedule
from bookings.text_messages import SMS_CONSENT_ASK, SMS_CONSENT_QUESTION, TextConsent
from chatdesk.assistant.dates import day_for_booking
from chatdesk.assistant.lookup_guard import LookupGuard
from chatdesk.conversations import record
from chatdesk.conversations.models import Conversation, HandoffRequest
from chatdesk.conversations.selectors import answer_to

MAX_SLOTS_LISTED = 16


class LimitReached(DomainError):
    code = "limit_reached"
    http_status = 409


class ConfirmationMissing(DomainError):
    code = "confirmation_required"


class ConsentNotAsked(DomainError):
    code = "sms_consent_not_asked"


@dataclass(frozen=True)
class ToolContext:
    conversation: Conversation
    now: datetime
    # The door the call came through (Conversation.ChannelKind), set by the caller: a voice call
    # continuing a chat conversation books for the voice channel.
    channel: str = Conversation.ChannelKind.CHAT

    @property
    def booking_channel(self) -> str:
        # One vocabulary: a conversation's channel is the booking channel of the same name.
        return Channel(self.channel)

    def actor(self, call_id: str) -> Actor:
        return Actor.customer(self.booking_channel, reference=f"{self.conversation.number} {call_id}")


# --- argument helpers -----------------------------------------------------------------


def _service(service_id: str) -> Service:
    service = Service.objects.select_related("trade").filter(slug=service_id.strip().lower(), active=True).first()
    if service is None:
        raise NotFound("No such service. Call get_available_services for valid service_id values.", field="service_id")
    return service


def _trade(name: str) -> Trade:
    key = name.strip().lower()
    for trade in Trade.objects.all():
        if key in (trade.slug, trade.name.lower()):
            return trade
    raise NotFound("Unknown trade. Use HVAC, Plumbing or Electrical.", field="trade")


def _day(value: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("Use a date like 2026-12-04 (call resolve_date first).", field=field) from None


def _start(value: str) -> datetime:
    try:
        start = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("Use the slot start exactly as listed by get_available_time_slots.", field="start") from None
    if timezone.is_naive(start):
        start = start.replace(tzinfo=business_tz())
    return start


def _technician(technician_id: int | None) -> Technician | None:
    if technician_id is None:
        return None
    technician = Technician.objects.filter(pk=technician_id, active=True).first()
    if technician is None:
        raise NotFound("No such technician.", field="technician_id")
    return technician


def _local(moment: datetime) -> datetime:
    return moment.astimezone(business_tz())


def _slot_dict(start: datetime, end: datetime) -> dict:
    local = _local(start)
    return {
        "start": local.isoformat(),
        "end": _local(end).isoformat(),
        "weekday": local.strftime("%A"),
        "date": local.date().isoformat(),
        "time": local.strftime("%-I:%M %p"),
    }


def _service_dict(service: Service, detailed: bool = False) -> dict:
    data = {
        "service_id": service.slug,
        "name": service.name,
        "trade": service.trade.name,
        "duration_minutes": service.duration_minutes,
        "price": service.price_display,
        "emergency": service.is_emergency,
    }
    if detailed:
        data["description"] = service.description
        data["minimum_notice_hours"] = round(service.min_notice_minutes / 60, 1)
    return data


def _require_confirmation(args: dict) -> None:
    if args.get("customer_confirmed") is not True:
        raise ConfirmationMissing(
            "Read the details back to the customer and get a clear yes, then call again with customer_confirmed=true."
        )


def _customers_booking(ctx: ToolContext, args: dict) -> Booking:
    """The booking for this number + phone pair, under the failed-lookup limits."""
    guard = LookupGuard(ctx.conversation)
    guard.attempt()
    try:
        booking = booking_for_customer(number=args["booking_number"], phone=args["phone"])
    except BookingNotFound:
        guard.failed()
        raise
    except Exception:
        guard.matched()  # not a wrong guess (a database error): do not count it
        raise
    guard.matched()
    return booking


# --- tool bodies ----------------------------------------------------------------------


def get_available_services(ctx: ToolContext, args: dict, call_id: str) -> dict:
    services = services_list(trade=args.get("trade"))
    return {"services": [_service_dict(s) for s in services]}


def get_service_details(ctx: ToolContext, args: dict, call_id: str) -> dict:
    return {"service": _service_dict(_service(args["service_id"]), detailed=True)}


def get_technician_availability(ctx: ToolContext, args: dict, call_id: str) -> dict:
    day = _day(args["date"])
    service = _service(args["service_id"]) if args.get("service_id") else None
    trade = service.trade if service else _trade(args["trade"])
    days = technicians_available(trade=trade, on_date=day, service=service, now=ctx.now)
    return {
        "date": day.isoformat(),
        "weekday": day.strftime("%A"),
        "technicians": [
            {
                "technician_id": d.technician.id,
                "name": d.technician.name,
                "title": d.technician.title,
                "free_slots": [_slot_dict(s, e)["time"] for s, e in d.slots[:MAX_SLOTS_LISTED]],
            }
            for d in days
        ],
    }


def get_available_time_slots(ctx: ToolContext, args: dict, call_id: str) -> dict:
    service = _service(args["service_id"])
    first = _day(args["date"])
    last = _day(args["end_date"], "end_date") if args.get("end_date") else first
    if (last - first).days > 13:
        raise InvalidInput("Ask for at most 14 days at a time.", field="end_date")
    slots = available_slots(
        service=service,
        start_date=first,
        end_date=last,
        technician_id=args.get("technician_id"),
        now=ctx.now,
    )
    listed = [
        {
            **_slot_dict(slot.start, slot.end),
            "technicians": [{"technician_id": t.id, "name": t.name} for t in slot.technicians],
        }
        for slot in slots[:MAX_SLOTS_LISTED]
    ]
    result = {"service": service.name, "slots": listed, "more_available": len(slots) > MAX_SLOTS_LISTED}
    if not slots:
        result["message"] = "No free slots then. Offer another day."
    return result


def _sms_consent(ctx: ToolContext, answer: bool | None) -> TextConsent | None:
    """The customer's answer to the text-message question, with its evidence from the transcript:
    the message that asked, word for word, and the reply. The model only says yes or no."""
    if answer is None:
        return None
    found = answer_to(ctx.conversation.pk, SMS_CONSENT_ASK)
    if found is None:
        if not answer:
            return None  # nothing was asked, so there is no answer to record
        raise ConsentNotAsked(
            f'Before sms_consent=true, ask the customer in these exact words and wait for the answer: "'
            f'{SMS_CONSENT_QUESTION}"',
            field="sms_consent",
        )
    asked, reply = found
    return TextConsent(
        given=answer, wording=asked.text, reply=reply.text, at=reply.created_at, source=ctx.conversation.number
    )


def create_booking(ctx: ToolContext, args: dict, call_id: str) -> dict:
    _require_confirmation(args)
    sms_consent = _sms_consent(ctx, args.get("sms_consent"))
    # Counted under a lock on the conversation's row, in the transaction that books.
    booked = record.bookings_made_locked(ctx.conversation.pk)
    if booked >= settings.CHAT_MAX_BOOKINGS:
        raise LimitReached("This conversation has made as many bookings as we allow. Offer a callback from staff.")
    booking = booking_create(
        service=_service(args["service_id"]),
        start=_start(args["start"]),
        technician=_technician(args.get("technician_id")),
        customer_name=args["customer_name"],
        customer_phone=args["customer_phone"],
        customer_email=args.get("customer_email") or "",
        address=args["address"],
        notes=args.get("notes") or "",
        channel=ctx.booking_channel,
        actor=ctx.actor(call_id),
        now=ctx.now,
        sms_consent=sms_consent,
    )
    record.count_booking(ctx.conversation.pk, customer_id=booking.customer_id)
    ctx.conversation.booking_count = booked + 1
    texts = booking.customer.sms_consent_at is not None
    return {
        "booked": True,
        "booking": booking_public_dict(booking),
        "text_messages": "on" if texts else "off",
        "_booking_id": booking.pk,
    }


def get_booking_info(ctx: ToolContext, args: dict, call_id: str) -> dict:
    booking = _customers_booking(ctx, args)
    return {"booking": booking_public_dict(booking), "_booking_id": booking.pk}


def cancel_booking(ctx: ToolContext, args: dict, call_id: str) -> dict:
    booking = _customers_booking(ctx, args)
    _require_confirmation(args)
    booking = booking_cancel(booking=booking, actor=ctx.actor(call_id), reason=args.get("reason") or "", now=ctx.now)
    return {"cancelled": True, "booking": booking_public_dict(booking), "_booking_id": booking.pk}


def reschedule_booking(ctx: ToolContext, args: dict, call_id: str) -> dict:
    booking = _customers_booking(ctx, args)
    _require_confirmation(args)
    booking = booking_reschedule(
        booking=booking,
        new_start=_start(args["new_start"]),
        technician=_technician(args.get("technician_id")),
        actor=ctx.actor(call_id),
        now=ctx.now,
    )
    return {"rescheduled": True, "booking": booking_public_dict(booking), "_booking_id": booking.pk}


DATE_PARTS = ("weekday", "week", "month", "day", "year", "nth", "offset_days", "offset_weeks")


def resolve_date_tool(ctx: ToolContext, args: dict, call_id: str) -> dict:
    """The customer's words (or structured parts, when the words were not understood) as a day,
    with what it means for booking. The date arithmetic is chatdesk.assistant.dates', never the model's."""
    parts = {name: args.get(name) for name in DATE_PARTS}
    answer = day_for_booking(args.get("text"), parts=parts, now=ctx.now)
    if answer["status"] == "unresolved":
        raise InvalidInput(answer["message"], field="text")
    return answer


def request_human(ctx: ToolContext, args: dict, call_id: str) -> dict:
    phone = normalize_phone(args["phone"]) if args.get("phone") else ""
    reason = " ".join((args.get("reason") or "").split())
    if not reason:
        raise InvalidInput("Say briefly why the customer wants a person.", field="reason")
    handoff = HandoffRequest.objects.create(
        conversation=ctx.conversation,
        reason=reason[:500],
        contact_name=(args.get("name") or "")[: limits.MAX_NAME],
        contact_phone=phone,
        urgent=bool(args.get("urgent")),
    )
    Conversation.objects.filter(pk=ctx.conversation.pk).exclude(resolution=Conversation.Resolution.BOOKED).update(
        resolution=Conversation.Resolution.ESCALATED
    )
    return {
        "handoff_requested": True,
        "reference": f"{ctx.conversation.number}-H{handoff.pk}",
        "message": f"A staff member will call back during business hours. Our phone: {business_phone()}.",
    }
