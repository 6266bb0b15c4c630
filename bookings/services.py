"""The one way to change a booking.

The admin, the API, the assistant's tools and the management commands all call these
functions, so validation, the audit trail and the customer's emails and text messages
(bookings.text_messages: queued in the transaction of the change) are the same whoever acts.

Double booking is prevented twice over:
- in Python: the technician row is locked (SELECT ... FOR UPDATE) before the overlap check
  and the insert, so concurrent bookings for one technician queue instead of racing;
  SQLite has no row locks but its IMMEDIATE transactions (settings) serialize writers;
- in PostgreSQL: an exclusion constraint over (technician, occupied period) for active
  bookings (migration 0002) rejects any overlap that slips past, e.g. a raw SQL write.
  Its violation is mapped to SlotUnavailable here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from bookings.errors import InvalidInput, InvalidTransition, SlotUnavailable
from bookings.limits import MAX_ADDRESS, MAX_EMAIL, MAX_NAME, MAX_NOTES, MAX_REASON
from bookings.models import (
    ACTIVE_STATUSES,
    ActorKind,
    Booking,
    BookingEvent,
    BookingStatus,
    CalendarEvent,
    Channel,
    Customer,
    Service,
    Technician,
    TextMessage,
)
from bookings.numbering import next_number
from bookings.phones import business_phone, normalize_phone, phone_display
from bookings.selectors import active_bookings_in, available_slots, booking_public_dict, business_tz
from bookings.text_messages import TextConsent, booking_change_text_queue, consent_record
from chatdesk.observability import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who is acting, for the audit trail."""

    kind: str  # ActorKind
    channel: str = ""  # Channel, for customers
    user: object | None = None  # the staff user
    reference: str = ""  # e.g. "INT-2026-00012 call_abc"

    @classmethod
    def system(cls, reference: str = "") -> Actor:
        return cls(kind=ActorKind.SYSTEM, reference=reference)

    @classmethod
    def staff(cls, user: object) -> Actor:
        return cls(kind=ActorKind.STAFF, channel=Channel.STAFF, user=user)

    @classmethod
    def customer(cls, channel: str, reference: str = "") -> Actor:
        return cls(kind=ActorKind.CUSTOMER, channel=channel, reference=reference)


def _clean_text(value: str | None, *, field: str, max_length: int, required: bool) -> str:
    text = " ".join((value or "").split()) if field != "notes" else (value or "").strip()
    if required and not text:
        raise InvalidInput(f"The {field.replace('_', ' ')} is required.", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"The {field.replace('_', ' ')} is too long (at most {max_length} characters).", field=field)
    return text


def _record(booking: Booking, *, kind: str, actor: Actor, changes: dict | None = None, note: str = "") -> BookingEvent:
    return BookingEvent.objects.create(
        booking=booking,
        kind=kind,
        actor_kind=actor.kind,
        actor_channel=actor.channel,
        actor_user=actor.user if getattr(actor.user, "pk", None) else None,
        actor_reference=actor.reference[:120],
        changes=changes or {},
        note=note[:300],
    )


def _check_time(*, service: Service, start: datetime, now: datetime) -> None:
    if timezone.is_naive(start):
        raise InvalidInput("The start time needs a time zone.", field="start")
    if start <= now:
        raise InvalidInput("That time is in the past.", field="start")
    if start < now + service.min_notice:
        hours = service.min_notice_minutes / 60
        raise InvalidInput(f"{service.name} needs at least {hours:g} hours' notice.", field="start")
    horizon = (now.astimezone(business_tz()).date()) + timedelta(days=settings.BOOKING_HORIZON_DAYS)
    if start.astimezone(business_tz()).date() > horizon:
        raise InvalidInput(
            f"We book at most {settings.BOOKING_HORIZON_DAYS} days ahead.",
            field="start",
        )


def _candidates(
    *, service: Service, start: datetime, technician: Technician | None, now: datetime, exclude_booking_id: int | None
) -> list[int]:
    """Technicians free for exactly this visit, by every rule the availability engine knows."""
    if technician is not None:
        if not technician.active:
            raise InvalidInput("That technician is not available for bookings.", field="technician")
        if not technician.trades.filter(pk=service.trade_id).exists():
            raise InvalidInput(f"That technician does not do {service.trade.name} work.", field="technician")
    local_day = start.astimezone(business_tz()).date()
    slots = available_slots(
        service=service,
        start_date=local_day,
        technician_id=technician.pk if technician else None,
        now=now,
        exclude_booking_id=exclude_booking_id,
    )
    for slot in slots:
        if slot.start == start:
            return [t.id for t in slot.technicians]
    raise SlotUnavailable("That time is not available. Please pick one of the offered slots.")


def _override_candidates(
    *, service: Service, start: datetime, technician: Technician | None, actor: Actor, reason: str, now: datetime
) -> list[int]:
    """A staff override (an urgent squeeze-in): the slot rules give way, not the technician's time.

    Business hours, working hours, the slot grid, the notice and the horizon are set aside, so
    staff can book a named technician at any future time. Another visit or time off in that
    period still refuses it (_claim_technician re-checks under the row lock, and PostgreSQL's
    exclusion constraint backs that up), and the reason goes on the audit row.
    """
    if actor.kind != ActorKind.STAFF:
        raise InvalidInput("Only staff may override the offered slots.", field="override_reason")
    if not reason:
        raise InvalidInput("Say why the offered slots are overridden.", field="override_reason")
    if technician is None:
        raise InvalidInput("An override needs a technician.", field="technician")
    if not technician.active:
        raise InvalidInput("That technician is not available for bookings.", field="technician")
    if not technician.trades.filter(pk=service.trade_id).exists():
        raise InvalidInput(f"That technician does not do {service.trade.name} work.", field="technician")
    if timezone.is_naive(start):
        raise InvalidInput("The start time needs a time zone.", field="start")
    if start <= now:
        raise InvalidInput("That time is in the past.", field="start")
    return [technician.pk]


def _still_free(*, technician_id: int, occupied_start: datetime, occupied_end: datetime, exclude: int | None) -> bool:
    clash = active_bookings_in([technician_id], occupied_start, occupied_end)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        return False
    return not CalendarEvent.objects.filter(
        technician_id=technician_id, start__lt=occupied_end, end__gt=occupied_start
    ).exists()


def _claim_technician(
    *,
    candidates: list[int],
    occupied_start: datetime,
    occupied_end: datetime,
    exclude: int | None,
    write: Callable[[int], Booking],
    override: bool = False,
) -> Booking:
    """Run `write(technician_id)` for the first candidate still free for the occupied period.

    Each try locks the technician's row, so concurrent bookings of one technician queue
    here, re-checks under the lock, then writes. On PostgreSQL the exclusion constraint
    backs this up; its violation means "taken", so the next candidate is tried.
    """
    for technician_id in candidates:
        try:
            with transaction.atomic():
                Technician.objects.select_for_update().filter(pk=technician_id).values_list("pk").get()
                if not _still_free(
                    technician_id=technician_id,
                    occupied_start=occupied_start,
                    occupied_end=occupied_end,
                    exclude=exclude,
                ):
                    continue
                return write(technician_id)
        except IntegrityError as error:
            if _is_overlap_violation(error):
                continue
            raise
    if override:
        # The one technician named has another visit, or time off, in that period.
        raise SlotUnavailable("That technician is busy then (another visit or time off), even with an override.")
    raise SlotUnavailable("Sorry, that time was just taken. Please pick another slot.")


def _is_overlap_violation(error: IntegrityError) -> bool:
    # psycopg's ExclusionViolation, SQLSTATE 23P01.
    return getattr(error.__cause__, "sqlstate", None) == "23P01"


def _send_email(booking_id: int, what: str, template: str) -> None:
    booking = Booking.objects.select_related("service", "technician", "customer").get(pk=booking_id)
    if not booking.customer.email:
        return
    body = template.format(business=settings.BUSINESS_NAME, **email_details(booking))
    try:
        send_mail(f"Booking {booking.number} {what}", body, settings.DEFAULT_FROM_EMAIL, [booking.customer.email])
    except Exception:  # an email failure must never undo a committed booking
        logger.exception("Could not email %s about %s", booking.customer.email, booking.number)


CONFIRMATION = """Hello {customer_name},

Your {service} visit with {business} is booked.

Booking number: {booking_number}
When: {when}
Technician: {technician}
Address: {address}
Estimated price: {estimated_price}

We will call you at {customer_phone} if we need to.
To change or cancel, chat with us and give your booking number and phone number, or call us
at {business_phone}.
"""

CANCELLATION = """Hello {customer_name},

Your {service} visit {booking_number} on {when} has been cancelled.

To book again, chat with us or call us at {business_phone}.
"""


def email_details(booking: Booking) -> dict[str, str]:
    """What the customer's emails say about a booking: its public details, and the phone numbers
    as a person reads them (E.164 stays in storage and the API)."""
    return {
        **booking_public_dict(booking),
        "customer_phone": phone_display(booking.customer.phone),
        "business_phone": business_phone(),
    }


def email_clean(raw: str | None) -> str:
    """The email as stored ("" for none), or InvalidInput: the one rule every door uses."""
    email = _clean_text(raw, field="email", max_length=MAX_EMAIL, required=False)
    if email and ("@" not in email or " " in email):
        raise InvalidInput("That email address is not valid.", field="email")
    return email


def customer_upsert(
    *, name: str, phone: str, email: str = "", address: str = "", sms_consent: TextConsent | None = None
) -> Customer:
    """Find the customer by phone (the identity we match on) or create them.

    With `sms_consent`, the customer's answer to the text-message question is recorded too.
    """
    phone_e164 = normalize_phone(phone)
    name = _clean_text(name, field="name", max_length=MAX_NAME, required=True)
    email = email_clean(email)
    customer, created = Customer.objects.get_or_create(
        phone=phone_e164, defaults={"name": name, "email": email, "address": address}
    )
    if not created:
        updates = {"name": name}
        if email:
            updates["email"] = email
        if address:
            updates["address"] = address
        for key, value in updates.items():
            setattr(customer, key, value)
        customer.save(update_fields=list(updates))
    if sms_consent is not None:
        consent_record(customer, sms_consent)
    return customer


def booking_create(
    *,
    service: Service,
    start: datetime,
    customer_name: str,
    customer_phone: str,
    address: str,
    channel: str,
    actor: Actor,
    customer_email: str = "",
    notes: str = "",
    technician: Technician | None = None,
    status: str = BookingStatus.CONFIRMED,
    now: datetime | None = None,
    override_reason: str = "",
    sms_consent: TextConsent | None = None,
) -> Booking:
    """Book `service` at `start` (a slot the availability engine offers).

    The confirmation goes by email (when the customer gave an address) and by text (when they
    agreed to texts, now in `sms_consent` or in an earlier conversation).

    With no `technician`, the first qualified technician free for that slot gets it. With an
    `override_reason` (staff only, a named technician), any future time the technician is not
    busy is accepted, and the override is recorded on the audit row.
    Raises InvalidInput, SlotUnavailable.
    """
    now = now or timezone.now()
    if not service.active:
        raise InvalidInput("That service is not offered at the moment.", field="service")
    if status not in ACTIVE_STATUSES:
        raise InvalidInput("A new booking is pending or confirmed.", field="status")
    if channel not in Channel.values:
        raise InvalidInput("Unknown channel.", field="channel")
    address = _clean_text(address, field="address", max_length=MAX_ADDRESS, required=True)
    notes = _clean_text(notes, field="notes", max_length=MAX_NOTES, required=False)
    phone = normalize_phone(customer_phone)
    name = _clean_text(customer_name, field="name", max_length=MAX_NAME, required=True)
    override_reason = _clean_text(override_reason, field="override_reason", max_length=MAX_REASON, required=False)
    if override_reason:
        candidates = _override_candidates(
            service=service, start=start, technician=technician, actor=actor, reason=override_reason, now=now
        )
    else:
        _check_time(service=service, start=start, now=now)
        candidates = _candidates(service=service, start=start, technician=technician, now=now, exclude_booking_id=None)

    end = start + service.duration
    occupied_start = start - service.buffer_before
    occupied_end = end + service.buffer_after

    def write(technician_id: int) -> Booking:
        customer = customer_upsert(
            name=name, phone=phone, email=customer_email, address=address, sms_consent=sms_consent
        )
        booking = Booking.objects.create(
            # The year the booking was made (business time), so numbers rise with time.
            number=next_number("BK", now.astimezone(business_tz()).year, 6),
            service=service,
            technician_id=technician_id,
            customer=customer,
            start=start,
            end=end,
            occupied_start=occupied_start,
            occupied_end=occupied_end,
            status=status,
            estimated_price_min=service.price_min,
            estimated_price_max=service.price_max,
            currency=service.currency,
            address=address,
            notes=notes,
            channel=channel,
        )
        changes = {"start": start.isoformat(), "technician_id": technician_id, "status": status}
        if override_reason:
            changes["override"] = True
        if sms_consent is not None:
            changes["sms_consent"] = sms_consent.given
        event = _record(
            booking,
            kind=BookingEvent.Kind.CREATED,
            actor=actor,
            changes=changes,
            note=f"Override: {override_reason}" if override_reason else "",
        )
        transaction.on_commit(partial(_send_email, booking.pk, "confirmed", CONFIRMATION))
        booking_change_text_queue(booking=booking, kind=TextMessage.Kind.CONFIRMATION, event=event)
        # Counted once committed: a slot lost to a race (rolled back) or a replay is no booking.
        transaction.on_commit(partial(metrics.count_booking_made, channel))
        return booking

    return _claim_technician(
        candidates=candidates,
        occupied_start=occupied_start,
        occupied_end=occupied_end,
        exclude=None,
        write=write,
        override=bool(override_reason),
    )


def booking_reschedule(
    *,
    booking: Booking,
    new_start: datetime,
    actor: Actor,
    technician: Technician | None = None,
    reason: str = "",
    now: datetime | None = None,
    override_reason: str = "",
) -> Booking:
    """Move an active booking to another offered slot (same service), keeping its number.

    With an `override_reason` (staff only, a named technician), any future time that
    technician is not busy is accepted, as in booking_create.
    """
    now = now or timezone.now()
    if booking.status not in ACTIVE_STATUSES:
        raise InvalidTransition(f"Booking {booking.number} is {booking.get_status_display().lower()}.")
    if booking.start <= now:
        raise InvalidTransition("A visit that has started cannot be rescheduled.")
    service = booking.service
    reason = _clean_text(reason, field="reason", max_length=MAX_REASON, required=False)
    override_reason = _clean_text(override_reason, field="override_reason", max_length=MAX_REASON, required=False)
    if override_reason:
        candidates = _override_candidates(
            service=service, start=new_start, technician=technician, actor=actor, reason=override_reason, now=now
        )
    else:
        _check_time(service=service, start=new_start, now=now)
        # Prefer the same technician when they are free and none was asked for.
        candidates = _candidates(
            service=service, start=new_start, technician=technician, now=now, exclude_booking_id=booking.pk
        )
    if technician is None and booking.technician_id in candidates:
        candidates.remove(booking.technician_id)
        candidates.insert(0, booking.technician_id)

    end = new_start + service.duration
    occupied_start = new_start - service.buffer_before
    occupied_end = end + service.buffer_after
    old = {"start": booking.start.isoformat(), "technician_id": booking.technician_id}

    def write(technician_id: int) -> Booking:
        locked = Booking.objects.select_for_update().get(pk=booking.pk)
        if locked.status not in ACTIVE_STATUSES:
            raise InvalidTransition(f"Booking {booking.number} is no longer active.")
        locked.start, locked.end = new_start, end
        locked.occupied_start, locked.occupied_end = occupied_start, occupied_end
        locked.technician_id = technician_id
        locked.reminder_sent_at = None
        locked.save(
            update_fields=[
                "start",
                "end",
                "occupied_start",
                "occupied_end",
                "technician",
                "reminder_sent_at",
                "updated_at",
            ]
        )
        changes = {"from": old, "to": {"start": new_start.isoformat(), "technician_id": technician_id}}
        note = reason
        if override_reason:
            changes["override"] = True
            note = f"Override: {override_reason}" + (f" ({reason})" if reason else "")
        event = _record(locked, kind=BookingEvent.Kind.RESCHEDULED, actor=actor, changes=changes, note=note)
        transaction.on_commit(partial(_send_email, locked.pk, "rescheduled", CONFIRMATION))
        booking_change_text_queue(booking=locked, kind=TextMessage.Kind.RESCHEDULE, event=event)
        return locked

    _claim_technician(
        candidates=candidates,
        occupied_start=occupied_start,
        occupied_end=occupied_end,
        exclude=booking.pk,
        write=write,
        override=bool(override_reason),
    )
    booking.refresh_from_db()
    return booking


def _transition(
    *,
    booking: Booking,
    to: str,
    allowed_from: tuple[str, ...],
    kind: str,
    actor: Actor,
    note: str = "",
    text: str = "",
    **fields,
) -> Booking:
    """Move the booking to status `to`, with its audit row and, when `text` names a kind, the
    customer's text message, in one transaction."""
    with transaction.atomic():
        locked = Booking.objects.select_for_update().get(pk=booking.pk)
        if locked.status not in allowed_from:
            status = locked.get_status_display().lower()
            raise InvalidTransition(f"Booking {locked.number} is {status} and cannot be {kind.replace('_', ' ')}.")
        old_status = locked.status
        locked.status = to
        for key, value in fields.items():
            setattr(locked, key, value)
        locked.save(update_fields=["status", "updated_at", *fields])
        event = _record(locked, kind=kind, actor=actor, changes={"status": [old_status, to]}, note=note)
        if text:
            booking_change_text_queue(booking=locked, kind=text, event=event)
    booking.refresh_from_db()
    return booking


def booking_cancel(*, booking: Booking, actor: Actor, reason: str = "", now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    reason = _clean_text(reason, field="reason", max_length=MAX_REASON, required=False)
    if booking.status in ACTIVE_STATUSES and booking.start <= now and actor.kind == ActorKind.CUSTOMER:
        raise InvalidTransition("This visit has already started; please call us to change it.")
    booking = _transition(
        booking=booking,
        to=BookingStatus.CANCELLED,
        allowed_from=ACTIVE_STATUSES,
        kind=BookingEvent.Kind.CANCELLED,
        actor=actor,
        note=reason,
        text=TextMessage.Kind.CANCELLATION,
        cancellation_reason=reason,
        cancelled_at=now,
    )
    transaction.on_commit(partial(_send_email, booking.pk, "cancelled", CANCELLATION))
    return booking


def booking_confirm(*, booking: Booking, actor: Actor) -> Booking:
    return _transition(
        booking=booking,
        to=BookingStatus.CONFIRMED,
        allowed_from=(BookingStatus.PENDING,),
        kind=BookingEvent.Kind.CONFIRMED,
        actor=actor,
    )


def booking_complete(*, booking: Booking, actor: Actor, now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    if booking.start > now:
        raise InvalidTransition("A visit cannot be completed before it starts.")
    return _transition(
        booking=booking,
        to=BookingStatus.COMPLETED,
        allowed_from=ACTIVE_STATUSES,
        kind=BookingEvent.Kind.COMPLETED,
        actor=actor,
    )


def booking_mark_no_show(*, booking: Booking, actor: Actor, now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    if booking.start > now:
        raise InvalidTransition("A visit cannot be a no-show before it starts.")
    return _transition(
        booking=booking,
        to=BookingStatus.NO_SHOW,
        allowed_from=ACTIVE_STATUSES,
        kind=BookingEvent.Kind.NO_SHOW,
        actor=actor,
    )
