"""Writes to bookings: bookings.services, the audit trail, emails, numbers and the DB constraint.

Uses the `business` fixture (tests/conftest.py). "now" is Monday 2026-11-16 08:00 Toronto; the
usual visit is an HVAC Repair on Tuesday at 10:00, which alice and bob are both free for
(alice comes first in the technicians' order).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction

from bookings.errors import BookingNotFound, DomainError, InvalidInput, InvalidTransition, SlotUnavailable
from bookings.models import (
    ActorKind,
    Booking,
    BookingEvent,
    BookingStatus,
    CalendarEvent,
    Channel,
    Customer,
)
from bookings.selectors import available_slots, booking_for_customer
from bookings.services import (
    Actor,
    booking_cancel,
    booking_complete,
    booking_confirm,
    booking_create,
    booking_mark_no_show,
    booking_reschedule,
)
from tests.conftest import MONDAY_NOON_UTC

TORONTO = ZoneInfo("America/Toronto")
NOW = MONDAY_NOON_UTC  # Monday 2026-11-16 08:00 in Toronto
MONDAY = date(2026, 11, 16)
TUESDAY = date(2026, 11, 17)
WEDNESDAY = date(2026, 11, 18)
CHAT = Actor.customer(Channel.CHAT, reference="INT-2026-00007 call_abc")


def at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=TORONTO)


def book(business, **overrides) -> Booking:
    """booking_create with a valid request; each test overrides what it is about."""
    kwargs = {
        "service": business.repair,
        "start": at(TUESDAY, "10:00"),
        "customer_name": "Dana Smith",
        "customer_phone": "(416) 555-0123",
        "address": "12 Elm St, Toronto",
        "channel": Channel.CHAT,
        "actor": CHAT,
        "now": NOW,
    }
    kwargs.update(overrides)
    return booking_create(**kwargs)


def free_at(business, start: datetime) -> set[int]:
    """Ids of technicians the engine offers for a repair at `start`."""
    slots = available_slots(service=business.repair, start_date=start.astimezone(TORONTO).date(), now=NOW)
    return next(({t.id for t in s.technicians} for s in slots if s.start == start), set())


# --- Creating a booking ------------------------------------------------------------------------


def test_it_books_an_offered_slot_with_the_first_free_technician(business):
    booking = book(business, notes="Furnace clicks but no heat.")

    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.technician == business.alice
    assert booking.service == business.repair
    assert booking.start == at(TUESDAY, "10:00")
    assert booking.end == at(TUESDAY, "12:00")
    # The technician is busy from the 30 min travel buffer to the 15 min wrap-up buffer.
    assert booking.occupied_start == at(TUESDAY, "09:30")
    assert booking.occupied_end == at(TUESDAY, "12:15")
    assert (booking.estimated_price_min, booking.estimated_price_max) == (Decimal("200"), Decimal("600"))
    assert booking.currency == business.repair.currency
    assert booking.address == "12 Elm St, Toronto"
    assert booking.notes == "Furnace clicks but no heat."
    assert booking.channel == Channel.CHAT
    assert booking.customer.name == "Dana Smith"
    assert booking.customer.phone == "+14165550123"


def test_it_gives_the_next_free_technician_when_the_first_is_taken(business):
    first = book(business)
    second = book(business, customer_phone="+1 416 555 0199")

    assert first.technician_id == business.alice.pk
    assert second.technician_id == business.bob.pk
    with pytest.raises(SlotUnavailable):
        book(business, customer_phone="+1 416 555 0142")
    # An overlapping (not identical) start is just as taken.
    with pytest.raises(SlotUnavailable):
        book(business, start=at(TUESDAY, "11:00"), customer_phone="+1 416 555 0142")
    assert Booking.objects.count() == 2


def test_it_books_the_technician_asked_for(business):
    booking = book(business, technician=business.bob)

    assert booking.technician_id == business.bob.pk
    assert free_at(business, at(TUESDAY, "10:00")) == {business.alice.pk}


def test_it_creates_a_pending_booking_that_already_holds_the_slot(business):
    booking = book(business, status=BookingStatus.PENDING, technician=business.alice)

    assert booking.status == BookingStatus.PENDING
    assert free_at(business, at(TUESDAY, "10:00")) == {business.bob.pk}


@pytest.mark.parametrize(
    "raw",
    ["(416) 555-0123", "416.555.0123", "+1 416 555 0123", "416-555-0123", "1-416-555-0123", "  4165550123  "],
)
def test_it_normalizes_the_phone_as_people_type_it(business, raw):
    booking = book(business, customer_phone=raw)

    assert booking.customer.phone == "+14165550123"


def test_it_recognizes_a_returning_customer_by_phone_whatever_its_format(business):
    first = book(business, customer_phone="416.555.0123", customer_name="Dana Smith")
    second = book(
        business,
        start=at(WEDNESDAY, "10:00"),
        customer_phone="+1 416 555 0123",
        customer_name="Dana Smith-Lee",
        customer_email="dana@example.com",
    )

    assert first.customer_id == second.customer_id
    assert Customer.objects.count() == 1
    customer = Customer.objects.get()
    assert customer.name == "Dana Smith-Lee"
    assert customer.email == "dana@example.com"


# --- Validation -------------------------------------------------------------------------------


def assert_rejected(business, error_class, field: str | None = None, **overrides) -> DomainError:
    with pytest.raises(error_class) as error:
        book(business, **overrides)
    if field is not None:
        assert error.value.field == field
    # Nothing is half-written when a booking is refused.
    assert Booking.objects.count() == 0
    assert Customer.objects.count() == 0
    assert BookingEvent.objects.count() == 0
    return error.value


@pytest.mark.parametrize("raw", ["", "12345", "555-0123", "call me maybe", "+1 416 555 01234", "4" * 41])
def test_it_rejects_an_invalid_phone(business, raw):
    assert_rejected(business, InvalidInput, "phone", customer_phone=raw)


def test_it_rejects_an_inactive_service(business):
    business.repair.active = False
    business.repair.save()

    assert_rejected(business, InvalidInput, "service")


def test_it_rejects_a_technician_of_another_trade(business):
    error = assert_rejected(business, InvalidInput, "technician", technician=business.carol)
    assert "HVAC" in error.message


def test_it_rejects_an_inactive_technician(business):
    business.alice.active = False
    business.alice.save()

    assert_rejected(business, InvalidInput, "technician", technician=business.alice)


@pytest.mark.parametrize(
    ("who", "when"),
    [
        ("bob", (TUESDAY, "08:30")),  # bob starts at 09:00 and the repair needs 30 min of travel first
        ("alice", (TUESDAY, "15:00")),  # alice stops at 17:00: 15:00 + 2 h + 15 min does not fit
        ("alice", (date(2026, 11, 21), "10:00")),  # alice does not work Saturdays
    ],
)
def test_it_rejects_a_time_the_technician_does_not_work(business, who, when):
    assert_rejected(business, SlotUnavailable, technician=getattr(business, who), start=at(*when))


def test_it_rejects_a_time_the_technician_has_time_off(business):
    CalendarEvent.objects.create(technician=business.alice, start=at(TUESDAY, "11:00"), end=at(TUESDAY, "12:00"))

    assert_rejected(business, SlotUnavailable, technician=business.alice)


def test_it_rejects_a_time_in_the_past(business):
    error = assert_rejected(business, InvalidInput, "start", start=at(MONDAY, "07:00"))
    assert "past" in error.message


def test_it_rejects_a_time_without_a_time_zone(business):
    assert_rejected(business, InvalidInput, "start", start=datetime(2026, 11, 17, 10, 0))


def test_it_rejects_a_time_inside_the_minimum_notice(business):
    # now is 08:00; an HVAC repair needs 2 h notice, so 09:30 is too soon and 10:00 is fine.
    error = assert_rejected(business, InvalidInput, "start", start=at(MONDAY, "09:30"))
    assert "notice" in error.message

    assert book(business, start=at(MONDAY, "10:00")).start == at(MONDAY, "10:00")


def test_it_rejects_a_time_beyond_the_booking_horizon(business):
    beyond = MONDAY + timedelta(days=settings.BOOKING_HORIZON_DAYS + 3)  # a Monday
    error = assert_rejected(business, InvalidInput, "start", start=at(beyond, "10:00"))
    assert str(settings.BOOKING_HORIZON_DAYS) in error.message

    last = MONDAY + timedelta(days=settings.BOOKING_HORIZON_DAYS)  # a Friday
    assert book(business, start=at(last, "10:00")).start == at(last, "10:00")


@pytest.mark.parametrize(
    "when",
    [
        (TUESDAY, "10:15"),  # off the 30 min grid
        (TUESDAY, "16:30"),  # would end 18:30: after closing time and everyone's working hours
        (date(2026, 11, 22), "10:00"),  # Sunday: closed
    ],
)
def test_it_rejects_a_slot_that_is_not_on_offer(business, when):
    assert_rejected(business, SlotUnavailable, start=at(*when))


def test_it_rejects_a_closed_day(business):
    from bookings.models import ClosedDay

    ClosedDay.objects.create(date=TUESDAY, reason="Holiday")

    assert_rejected(business, SlotUnavailable)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customer_name": "x" * 121}, "name"),
        ({"customer_name": "   "}, "name"),
        ({"address": "x" * 301}, "address"),
        ({"address": ""}, "address"),
        ({"notes": "x" * 2001}, "notes"),
        ({"customer_email": "not-an-email"}, "email"),
        ({"channel": "fax"}, "channel"),
        ({"status": BookingStatus.CANCELLED}, "status"),
    ],
)
def test_it_rejects_invalid_customer_input(business, overrides, field):
    assert_rejected(business, InvalidInput, field, **overrides)


def test_it_accepts_a_name_and_address_at_their_maximum_length_and_tidies_whitespace(business):
    booking = book(business, customer_name="  Dana   " + "x" * 115 + " ", address="a" * 300)

    assert booking.customer.name == "Dana " + "x" * 115
    assert booking.address == "a" * 300


# --- Booking numbers and lookups ------------------------------------------------------------


def test_it_numbers_bookings_per_year_in_sequence(business):
    first = book(business)
    second = book(business, start=at(WEDNESDAY, "10:00"))
    # The year is the year the booking is made (business time), not the visit's year.
    for_next_year = book(business, start=at(date(2027, 1, 5), "10:00"))
    new_years_day_noon = datetime(2027, 1, 1, 17, 0, tzinfo=UTC)  # 12:00 in Toronto
    made_next_year = book(business, start=at(date(2027, 1, 6), "10:00"), now=new_years_day_noon)

    assert re.fullmatch(r"BK-\d{4}-\d{6}", first.number)
    assert [first.number, second.number, for_next_year.number] == [
        "BK-2026-000001",
        "BK-2026-000002",
        "BK-2026-000003",
    ]
    assert made_next_year.number == "BK-2027-000001"


def test_it_finds_a_booking_only_with_its_number_and_phone(business):
    booking = book(business)

    assert booking_for_customer(number=booking.number, phone="416-555-0123").pk == booking.pk
    # Spoken or typed numbers come with stray case and spaces.
    assert booking_for_customer(number=f"  {booking.number.lower()} ", phone="+14165550123").pk == booking.pk

    with pytest.raises(BookingNotFound) as wrong_phone:
        booking_for_customer(number=booking.number, phone="(416) 555-0199")
    with pytest.raises(BookingNotFound) as wrong_number:
        booking_for_customer(number="BK-2026-000999", phone="(416) 555-0123")
    with pytest.raises(BookingNotFound) as garbage_phone:
        booking_for_customer(number=booking.number, phone="not a phone")
    # The same answer either way: a lookup cannot tell which booking numbers exist.
    assert wrong_phone.value.as_dict() == wrong_number.value.as_dict() == garbage_phone.value.as_dict()


# --- Audit trail and emails -------------------------------------------------------------------


def test_it_records_who_created_the_booking(business):
    booking = book(business)

    event = BookingEvent.objects.get(booking=booking)
    assert event.kind == BookingEvent.Kind.CREATED
    assert event.actor_kind == ActorKind.CUSTOMER
    assert event.actor_channel == Channel.CHAT
    assert event.actor_user is None
    assert event.actor_reference == "INT-2026-00007 call_abc"
    assert event.changes == {
        "start": at(TUESDAY, "10:00").isoformat(),
        "technician_id": business.alice.pk,
        "status": BookingStatus.CONFIRMED,
    }


def test_it_records_a_staff_user_and_a_system_actor(business, django_user_model):
    user = django_user_model.objects.create_user(username="dispatcher", password="a-long-test-password")

    by_staff = book(business, actor=Actor.staff(user), channel=Channel.STAFF)
    by_system = book(business, actor=Actor.system("seed_demo"), channel=Channel.API, start=at(WEDNESDAY, "10:00"))

    staff_event = by_staff.events.get()
    assert (staff_event.actor_kind, staff_event.actor_channel, staff_event.actor_user) == (
        ActorKind.STAFF,
        Channel.STAFF,
        user,
    )
    system_event = by_system.events.get()
    assert (system_event.actor_kind, system_event.actor_channel, system_event.actor_reference) == (
        ActorKind.SYSTEM,
        "",
        "seed_demo",
    )
    assert system_event.actor_user is None


def test_it_emails_the_confirmation_only_after_commit(business, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        booking = book(business, customer_email="dana@example.com")
    assert mailoutbox == []  # nothing leaves before the booking is committed
    assert len(callbacks) == 2  # the email, and the bookings-made count of the metrics

    for callback in callbacks:
        callback()

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["dana@example.com"]
    assert message.subject == f"Booking {booking.number} confirmed"
    assert booking.number in message.body
    assert "Tuesday November 17, 2026 at 10:00 AM" in message.body
    assert "Alice T." in message.body
    assert "12 Elm St, Toronto" in message.body
    # Staff-only details never reach a customer.
    assert "Secret Lane" not in message.body
    assert "+14165550000" not in message.body


def test_it_sends_no_email_when_the_booking_rolls_back(business, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            book(business, customer_email="dana@example.com")
            raise RuntimeError("the caller's transaction fails after booking")

    assert mailoutbox == []
    assert Booking.objects.count() == 0


def test_it_sends_no_email_to_a_customer_without_one(business, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        book(business)

    assert mailoutbox == []


# --- Rescheduling -----------------------------------------------------------------------------


def test_it_reschedules_keeping_the_number_and_the_same_technician(
    business, mailoutbox, django_capture_on_commit_callbacks
):
    booking = book(business, technician=business.bob, customer_email="dana@example.com")
    booking.reminder_sent_at = NOW
    booking.save()
    mailoutbox.clear()

    # alice comes first in the technicians' order and is free too, but the customer keeps bob.
    assert free_at(business, at(WEDNESDAY, "11:00")) == {business.alice.pk, business.bob.pk}
    with django_capture_on_commit_callbacks(execute=True):
        moved = booking_reschedule(
            booking=booking, new_start=at(WEDNESDAY, "11:00"), actor=CHAT, reason="At work", now=NOW
        )

    moved.refresh_from_db()
    assert moved.pk == booking.pk
    assert moved.number == "BK-2026-000001"
    assert moved.technician_id == business.bob.pk
    assert (moved.start, moved.end) == (at(WEDNESDAY, "11:00"), at(WEDNESDAY, "13:00"))
    assert (moved.occupied_start, moved.occupied_end) == (at(WEDNESDAY, "10:30"), at(WEDNESDAY, "13:15"))
    assert moved.reminder_sent_at is None  # a reminder for the old time says nothing about the new one
    assert moved.status == BookingStatus.CONFIRMED
    event = moved.events.get(kind=BookingEvent.Kind.RESCHEDULED)
    assert event.changes == {
        "from": {"start": at(TUESDAY, "10:00").isoformat(), "technician_id": business.bob.pk},
        "to": {"start": at(WEDNESDAY, "11:00").isoformat(), "technician_id": business.bob.pk},
    }
    assert (event.actor_kind, event.actor_channel, event.note) == (ActorKind.CUSTOMER, Channel.CHAT, "At work")
    assert [m.subject for m in mailoutbox] == [f"Booking {moved.number} rescheduled"]
    assert "Wednesday November 18, 2026 at 11:00 AM" in mailoutbox[0].body
    # The old time is free again, the new one taken.
    assert free_at(business, at(TUESDAY, "10:00")) == {business.alice.pk, business.bob.pk}
    assert free_at(business, at(WEDNESDAY, "11:00")) == {business.alice.pk}


def test_it_reschedules_to_another_technician_when_the_same_one_is_busy(business):
    booking = book(business, technician=business.bob)
    CalendarEvent.objects.create(technician=business.bob, start=at(WEDNESDAY, "08:00"), end=at(WEDNESDAY, "17:00"))

    moved = booking_reschedule(booking=booking, new_start=at(WEDNESDAY, "11:00"), actor=CHAT, now=NOW)

    assert moved.technician_id == business.alice.pk
    assert moved.number == booking.number


def test_it_reschedules_onto_a_time_overlapping_its_own(business):
    booking = book(business, technician=business.alice)

    moved = booking_reschedule(
        booking=booking, new_start=at(TUESDAY, "10:30"), technician=business.alice, actor=CHAT, now=NOW
    )

    assert moved.start == at(TUESDAY, "10:30")
    assert Booking.objects.count() == 1


def test_it_refuses_a_reschedule_onto_a_taken_time_and_leaves_the_booking_alone(business):
    booking = book(business, technician=business.alice)
    book(business, technician=business.alice, start=at(WEDNESDAY, "10:00"), customer_phone="+1 416 555 0199")

    with pytest.raises(SlotUnavailable):
        booking_reschedule(
            booking=booking, new_start=at(WEDNESDAY, "10:30"), technician=business.alice, actor=CHAT, now=NOW
        )

    booking.refresh_from_db()
    assert booking.start == at(TUESDAY, "10:00")
    assert not booking.events.filter(kind=BookingEvent.Kind.RESCHEDULED).exists()


def test_it_validates_the_new_time_of_a_reschedule(business):
    booking = book(business)

    with pytest.raises(InvalidInput):
        booking_reschedule(booking=booking, new_start=at(MONDAY, "09:00"), actor=CHAT, now=NOW)
    with pytest.raises(InvalidInput):
        booking_reschedule(booking=booking, new_start=at(MONDAY + timedelta(days=90), "10:00"), actor=CHAT, now=NOW)
    with pytest.raises(InvalidInput):
        booking_reschedule(
            booking=booking, new_start=at(WEDNESDAY, "10:00"), technician=business.carol, actor=CHAT, now=NOW
        )


def test_it_does_not_reschedule_an_inactive_or_started_booking(business):
    booking = book(business)

    with pytest.raises(InvalidTransition):
        booking_reschedule(booking=booking, new_start=at(WEDNESDAY, "10:00"), actor=CHAT, now=at(TUESDAY, "10:30"))

    booking_cancel(booking=booking, actor=CHAT, now=NOW)
    with pytest.raises(InvalidTransition):
        booking_reschedule(booking=booking, new_start=at(WEDNESDAY, "10:00"), actor=CHAT, now=NOW)


# --- Cancelling and the other transitions ---------------------------------------------------------


def test_cancelling_frees_the_slot_and_is_recorded(business, mailoutbox, django_capture_on_commit_callbacks):
    booking = book(business, technician=business.alice, customer_email="dana@example.com")
    mailoutbox.clear()
    assert free_at(business, at(TUESDAY, "10:00")) == {business.bob.pk}

    with django_capture_on_commit_callbacks(execute=True):
        cancelled = booking_cancel(booking=booking, actor=CHAT, reason="Fixed it myself", now=NOW)

    assert cancelled.status == BookingStatus.CANCELLED
    assert cancelled.cancellation_reason == "Fixed it myself"
    assert cancelled.cancelled_at == NOW
    assert free_at(business, at(TUESDAY, "10:00")) == {business.alice.pk, business.bob.pk}
    event = cancelled.events.get(kind=BookingEvent.Kind.CANCELLED)
    assert event.changes == {"status": [BookingStatus.CONFIRMED, BookingStatus.CANCELLED]}
    assert (event.actor_kind, event.actor_reference, event.note) == (
        ActorKind.CUSTOMER,
        "INT-2026-00007 call_abc",
        "Fixed it myself",
    )
    assert [m.subject for m in mailoutbox] == [f"Booking {booking.number} cancelled"]
    # The freed time can be booked again with the same technician.
    again = book(business, technician=business.alice, customer_phone="+1 416 555 0199")
    assert again.number != booking.number


def test_it_does_not_cancel_twice(business):
    booking = book(business)
    booking_cancel(booking=booking, actor=CHAT, now=NOW)

    with pytest.raises(InvalidTransition):
        booking_cancel(booking=booking, actor=CHAT, now=NOW)
    assert booking.events.filter(kind=BookingEvent.Kind.CANCELLED).count() == 1


def test_a_customer_cannot_cancel_a_started_visit_but_staff_can(business, django_user_model):
    booking = book(business)
    during = at(TUESDAY, "10:30")

    with pytest.raises(InvalidTransition):
        booking_cancel(booking=booking, actor=CHAT, now=during)

    user = django_user_model.objects.create_user(username="dispatcher", password="a-long-test-password")
    cancelled = booking_cancel(booking=booking, actor=Actor.staff(user), reason="Tech sick", now=during)
    assert cancelled.status == BookingStatus.CANCELLED
    assert cancelled.events.get(kind=BookingEvent.Kind.CANCELLED).actor_user == user


def test_it_confirms_a_pending_booking_once(business):
    booking = book(business, status=BookingStatus.PENDING)

    confirmed = booking_confirm(booking=booking, actor=Actor.system("auto-confirm"))

    assert confirmed.status == BookingStatus.CONFIRMED
    event = confirmed.events.get(kind=BookingEvent.Kind.CONFIRMED)
    assert event.changes == {"status": [BookingStatus.PENDING, BookingStatus.CONFIRMED]}
    with pytest.raises(InvalidTransition):
        booking_confirm(booking=booking, actor=Actor.system())


def test_it_completes_a_visit_only_once_it_has_started(business):
    booking = book(business)
    staff = Actor.system("dispatch")

    with pytest.raises(InvalidTransition):
        booking_complete(booking=booking, actor=staff, now=at(TUESDAY, "09:59"))

    done = booking_complete(booking=booking, actor=staff, now=at(TUESDAY, "12:30"))
    assert done.status == BookingStatus.COMPLETED
    assert done.events.get(kind=BookingEvent.Kind.COMPLETED).changes == {
        "status": [BookingStatus.CONFIRMED, BookingStatus.COMPLETED]
    }
    with pytest.raises(InvalidTransition):
        booking_complete(booking=booking, actor=staff, now=at(TUESDAY, "12:30"))
    with pytest.raises(InvalidTransition):
        booking_cancel(booking=booking, actor=staff, now=at(TUESDAY, "12:30"))
    with pytest.raises(InvalidTransition):
        booking_mark_no_show(booking=booking, actor=staff, now=at(TUESDAY, "12:30"))


def test_it_marks_a_no_show_only_once_the_visit_has_started(business):
    booking = book(business)
    staff = Actor.system("dispatch")

    with pytest.raises(InvalidTransition):
        booking_mark_no_show(booking=booking, actor=staff, now=NOW)

    missed = booking_mark_no_show(booking=booking, actor=staff, now=at(TUESDAY, "10:45"))
    assert missed.status == BookingStatus.NO_SHOW
    assert missed.events.filter(kind=BookingEvent.Kind.NO_SHOW).count() == 1
    with pytest.raises(InvalidTransition):
        booking_complete(booking=booking, actor=staff, now=at(TUESDAY, "12:30"))
    with pytest.raises(InvalidTransition):
        booking_confirm(booking=booking, actor=staff)


def test_a_cancelled_booking_cannot_be_completed_or_confirmed(business):
    booking = book(business, status=BookingStatus.PENDING)
    booking_cancel(booking=booking, actor=CHAT, now=NOW)

    with pytest.raises(InvalidTransition):
        booking_confirm(booking=booking, actor=CHAT)
    with pytest.raises(InvalidTransition):
        booking_complete(booking=booking, actor=CHAT, now=at(TUESDAY, "12:30"))
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED


# --- The database's own guarantee ---------------------------------------------------------------


def raw_booking(
    business, *, start: datetime, end: datetime, status=BookingStatus.CONFIRMED, technician=None
) -> Booking:
    """An INSERT that bypasses bookings.services entirely."""
    customer, _ = Customer.objects.get_or_create(phone="+14165550142", defaults={"name": "Raw Insert"})
    return Booking.objects.create(
        number=f"RAW-{Booking.objects.count() + 1}-{start:%H%M}",
        service=business.repair,
        technician=technician or business.alice,
        customer=customer,
        start=start,
        end=end,
        occupied_start=start,
        occupied_end=end,
        status=status,
        estimated_price_min=Decimal("200"),
        address="1 Main St",
        channel=Channel.STAFF,
    )


def test_the_database_rejects_an_overlapping_active_booking_inserted_directly(business):
    book(business, technician=business.alice)  # occupies alice 09:30-12:15

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        raw_booking(business, start=at(TUESDAY, "12:00"), end=at(TUESDAY, "13:00"))

    # psycopg's ExclusionViolation: the constraint itself said no, not a Python check.
    assert error.value.__cause__.sqlstate == "23P01"
    assert "booking_no_overlap" in str(error.value)
    with pytest.raises(IntegrityError) as pending, transaction.atomic():
        raw_booking(business, start=at(TUESDAY, "08:00"), end=at(TUESDAY, "09:45"), status=BookingStatus.PENDING)
    assert pending.value.__cause__.sqlstate == "23P01"
    assert Booking.objects.count() == 1


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW])
def test_the_database_lets_an_inactive_booking_overlap(business, status):
    book(business, technician=business.alice)

    raw_booking(business, start=at(TUESDAY, "10:00"), end=at(TUESDAY, "12:00"), status=status)

    assert Booking.objects.count() == 2


def test_the_database_lets_adjacent_and_other_technicians_bookings_through(business):
    book(business, technician=business.alice)  # occupies alice 09:30-12:15

    raw_booking(business, start=at(TUESDAY, "12:15"), end=at(TUESDAY, "13:00"))  # [) ranges touch
    raw_booking(business, start=at(TUESDAY, "08:30"), end=at(TUESDAY, "09:30"))
    raw_booking(business, start=at(TUESDAY, "10:00"), end=at(TUESDAY, "12:00"), technician=business.bob)

    assert Booking.objects.count() == 4


def test_the_database_rejects_moving_a_cancelled_booking_back_onto_a_taken_time(business):
    cancelled = book(business, technician=business.alice)
    booking_cancel(booking=cancelled, actor=CHAT, now=NOW)
    book(business, technician=business.alice, customer_phone="+1 416 555 0199")

    cancelled.status = BookingStatus.CONFIRMED
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        cancelled.save(update_fields=["status"])
    assert error.value.__cause__.sqlstate == "23P01"


def test_times_are_stored_in_utc(business):
    booking = book(business)

    booking.refresh_from_db()
    assert booking.start == datetime(2026, 11, 17, 15, 0, tzinfo=UTC)
