"""The availability engine: bookings.selectors.available_slots and technicians_available.

Every test runs against real PostgreSQL with the `business` fixture (tests/conftest.py):
opening hours Mon-Fri 08:00-18:00 and Sat 09:00-14:00 in Toronto; HVAC technicians alice
(Mon-Fri 08-17) and bob (Mon-Sat 09-17); plumber carol (Mon-Fri 08-16); HVAC Repair is
120 min with 30 min before and 15 min after, Drain Cleaning 60 min with the same buffers,
both with 2 h notice. "now" is Monday 2026-11-16 08:00 Toronto unless a test says otherwise.

A repair for alice on a plain weekday therefore runs from 08:30 (its 30 min buffer starts at
08:00) to 14:30 (its 15 min buffer ends at 16:45, the last grid start inside 17:00); for bob
from 09:30 to 14:30.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bookings.errors import InvalidInput
from bookings.models import (
    Booking,
    BookingStatus,
    BusinessHours,
    CalendarEvent,
    Channel,
    ClosedDay,
    Customer,
    Service,
    Technician,
    Trade,
    WorkingHours,
)
from bookings.selectors import Slot, available_slots, technicians_available
from tests.conftest import MONDAY_NOON_UTC

TORONTO = ZoneInfo("America/Toronto")
NOW = MONDAY_NOON_UTC  # Monday 2026-11-16 08:00 in Toronto
MONDAY = date(2026, 11, 16)
TUESDAY = date(2026, 11, 17)
SATURDAY = date(2026, 11, 21)
SUNDAY = date(2026, 11, 22)

REPAIR_WALLS_ALICE = [f"{h:02d}:{m:02d}" for h in range(8, 15) for m in (0, 30)][1:]  # 08:30 .. 14:30
REPAIR_WALLS_BOB = REPAIR_WALLS_ALICE[2:]  # 09:30 .. 14:30


def at(day: date, hhmm: str) -> datetime:
    """An aware datetime for a Toronto wall-clock time."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=TORONTO)


def walls(slots: list[Slot]) -> list[str]:
    return [f"{slot.start.astimezone(TORONTO):%H:%M}" for slot in slots]


def walls_for(slots: list[Slot], technician: Technician) -> list[str]:
    return [f"{s.start.astimezone(TORONTO):%H:%M}" for s in slots if technician.pk in {t.id for t in s.technicians}]


def add_booking(
    business, technician: Technician, start: datetime, end: datetime, *, occupied=None, status=BookingStatus.CONFIRMED
) -> Booking:
    """A booking written directly (the engine must read what is in the table, however it got there)."""
    customer, _ = Customer.objects.get_or_create(phone="+14165550199", defaults={"name": "Existing Customer"})
    occupied_start, occupied_end = occupied or (start, end)
    return Booking.objects.create(
        number=f"BK-TEST-{Booking.objects.count() + 1:06d}",
        service=business.repair,
        technician=technician,
        customer=customer,
        start=start,
        end=end,
        occupied_start=occupied_start,
        occupied_end=occupied_end,
        status=status,
        estimated_price_min=Decimal("200"),
        address="1 Main St",
        channel=Channel.STAFF,
    )


# --- The grid, working hours and buffers -------------------------------------------------


def test_it_offers_repair_slots_on_the_30_minute_grid_inside_working_hours_and_buffers(business):
    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    assert walls(slots) == REPAIR_WALLS_ALICE
    assert walls_for(slots, business.alice) == REPAIR_WALLS_ALICE
    assert walls_for(slots, business.bob) == REPAIR_WALLS_BOB
    for slot in slots:
        assert slot.end - slot.start == timedelta(minutes=120)
        assert slot.start.tzinfo is not None


def test_it_follows_the_configured_slot_grid(business, settings):
    settings.SLOT_GRID_MINUTES = 60

    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)

    # 08:30 is no longer on the grid; whole hours from 09:00 to 14:00 are.
    assert walls(slots) == ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00"]


def test_it_counts_the_grid_from_midnight_not_from_opening_time(business):
    BusinessHours.objects.filter(weekday=TUESDAY.weekday()).update(opens=time(8, 40))
    business.repair.buffer_before_minutes = 0
    business.repair.save()

    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)

    # Opening at 08:40 does not create an 08:40, 09:10, ... grid: the first start is 09:00.
    assert walls(slots)[:2] == ["09:00", "09:30"]


def test_it_lists_technicians_in_a_stable_order_with_only_public_fields(business):
    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    both = slots[walls(slots).index("10:00")]
    assert [t.name for t in both.technicians] == ["Alice T.", "Bob T."]
    assert [t.id for t in both.technicians] == [business.alice.pk, business.bob.pk]
    # Staff-only fields (phone, pay, home address) are not part of what the engine returns.
    assert set(vars(both.technicians[0])) == {"id", "name", "title"}


def test_it_takes_the_service_duration_and_buffers_into_account(business):
    business.repair.buffer_before_minutes = 0
    business.repair.buffer_after_minutes = 0
    business.repair.save()

    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)

    # Without buffers the visit itself may touch both ends of 08:00-17:00.
    assert walls(slots)[0] == "08:00"
    assert walls(slots)[-1] == "15:00"

    business.repair.duration_minutes = 240
    business.repair.save()
    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)
    assert walls(slots)[-1] == "13:00"
    assert all(slot.end - slot.start == timedelta(hours=4) for slot in slots)


def test_it_honours_several_working_spans_a_day(business):
    WorkingHours.objects.filter(technician=business.alice, weekday=TUESDAY.weekday()).delete()
    WorkingHours.objects.create(
        technician=business.alice, weekday=TUESDAY.weekday(), start_time=time(8), end_time=time(12)
    )
    WorkingHours.objects.create(
        technician=business.alice, weekday=TUESDAY.weekday(), start_time=time(13), end_time=time(17)
    )

    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)

    # A visit (with its buffers) must fit inside one span: nothing straddles the lunch break.
    assert walls(slots) == ["08:30", "09:00", "09:30", "13:30", "14:00", "14:30"]
    # Wednesday keeps the single 08:00-17:00 span.
    wednesday = available_slots(
        service=business.repair, start_date=TUESDAY + timedelta(days=1), technician_id=business.alice.pk, now=NOW
    )
    assert walls(wednesday) == REPAIR_WALLS_ALICE


def test_it_offers_visits_only_inside_business_hours(business):
    # Bob works Saturday 09:00-17:00 but the business closes at 14:00: the last 2 h visit starts at 12:00.
    slots = available_slots(service=business.repair, start_date=SATURDAY, now=NOW)

    assert walls(slots) == ["09:30", "10:00", "10:30", "11:00", "11:30", "12:00"]
    assert all([t.id for t in slot.technicians] == [business.bob.pk] for slot in slots)


def test_it_honours_several_business_spans_a_day(business):
    BusinessHours.objects.filter(weekday=TUESDAY.weekday()).delete()
    BusinessHours.objects.create(weekday=TUESDAY.weekday(), opens=time(8), closes=time(12))
    BusinessHours.objects.create(weekday=TUESDAY.weekday(), opens=time(13), closes=time(18))

    slots = available_slots(service=business.drain, start_date=TUESDAY, now=NOW)

    # Carol works 08-16; a 1 h visit lies wholly in 08-12 or 13-18, buffers may spill out of them.
    morning = ["08:30", "09:00", "09:30", "10:00", "10:30", "11:00"]
    afternoon = ["13:00", "13:30", "14:00", "14:30"]
    assert walls(slots) == morning + afternoon


def test_it_offers_nothing_on_a_weekday_without_business_hours(business):
    assert available_slots(service=business.repair, start_date=SUNDAY, now=NOW) == []
    assert technicians_available(trade=business.hvac, on_date=SUNDAY, now=NOW) == []


def test_it_offers_nothing_on_a_closed_day(business):
    ClosedDay.objects.create(date=TUESDAY, reason="Staff training")

    assert available_slots(service=business.repair, start_date=TUESDAY, now=NOW) == []
    assert technicians_available(trade=business.hvac, on_date=TUESDAY, now=NOW) == []
    wednesday = TUESDAY + timedelta(days=1)
    assert walls(available_slots(service=business.repair, start_date=wednesday, now=NOW)) == REPAIR_WALLS_ALICE


# --- Calendar events and existing bookings -----------------------------------------------


def test_it_keeps_calendar_events_free_and_an_adjacent_event_does_not_block(business):
    CalendarEvent.objects.create(
        technician=business.alice, title="Dentist", start=at(TUESDAY, "11:15"), end=at(TUESDAY, "12:00")
    )

    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    # 09:00 occupies 08:30-11:15 and 12:30 occupies 12:00-14:45: both only touch the event.
    alice = ["08:30", "09:00", "12:30", "13:00", "13:30", "14:00", "14:30"]
    assert walls_for(slots, business.alice) == alice
    assert walls_for(slots, business.bob) == REPAIR_WALLS_BOB


def test_it_blocks_a_whole_day_of_time_off(business):
    CalendarEvent.objects.create(
        technician=business.alice,
        kind=CalendarEvent.Kind.TIME_OFF,
        start=at(TUESDAY, "00:00"),
        end=at(TUESDAY + timedelta(days=1), "00:00"),
    )

    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    assert walls_for(slots, business.alice) == []
    assert walls_for(slots, business.bob) == REPAIR_WALLS_BOB


def test_it_blocks_existing_bookings_including_their_buffers(business):
    # A visit 10:00-11:00 whose own buffers make alice busy 09:00-12:00.
    add_booking(
        business,
        business.alice,
        at(TUESDAY, "10:00"),
        at(TUESDAY, "11:00"),
        occupied=(
            at(TUESDAY, "09:00"),
            at(TUESDAY, "12:00"),
        ),
    )

    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    # A new repair occupies [start - 30 min, start + 135 min): before 09:00 it would have to
    # start by 06:45 (no grid time after 08:30 does), after 12:00 from 12:30 on.
    assert walls_for(slots, business.alice) == ["12:30", "13:00", "13:30", "14:00", "14:30"]
    assert walls_for(slots, business.bob) == REPAIR_WALLS_BOB


def test_it_does_not_block_on_an_adjacent_booking(business):
    # alice is busy 11:15-14:45 (a visit 12:30-14:30 with its buffers).
    add_booking(
        business,
        business.alice,
        at(TUESDAY, "12:30"),
        at(TUESDAY, "14:30"),
        occupied=(
            at(TUESDAY, "11:15"),
            at(TUESDAY, "14:45"),
        ),
    )

    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)

    # 09:00 occupies 08:30-11:15, ending exactly where the booking's buffer begins: [) periods.
    assert walls(slots) == ["08:30", "09:00"]


@pytest.mark.parametrize(
    ("status", "blocks"),
    [
        (BookingStatus.PENDING, True),
        (BookingStatus.CONFIRMED, True),
        (BookingStatus.CANCELLED, False),
        (BookingStatus.COMPLETED, False),
        (BookingStatus.NO_SHOW, False),
    ],
)
def test_it_blocks_only_active_bookings(business, status, blocks):
    add_booking(business, business.alice, at(TUESDAY, "08:00"), at(TUESDAY, "17:00"), status=status)

    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    assert walls_for(slots, business.alice) == ([] if blocks else REPAIR_WALLS_ALICE)


def test_it_ignores_the_excluded_booking_so_it_can_be_moved_onto_its_own_time(business):
    booking = add_booking(
        business,
        business.alice,
        at(TUESDAY, "10:00"),
        at(TUESDAY, "12:00"),
        occupied=(
            at(TUESDAY, "09:30"),
            at(TUESDAY, "12:15"),
        ),
    )

    blocked = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW)
    moved = available_slots(
        service=business.repair,
        start_date=TUESDAY,
        technician_id=business.alice.pk,
        now=NOW,
        exclude_booking_id=booking.pk,
    )

    assert "10:00" not in walls(blocked)
    assert "10:30" not in walls(blocked)
    assert walls(moved) == REPAIR_WALLS_ALICE


# --- Notice, horizon, the past -------------------------------------------------------------


def test_it_requires_the_services_minimum_notice(business):
    now = at(TUESDAY, "09:00").astimezone(UTC)

    slots = available_slots(service=business.repair, start_date=TUESDAY, now=now)

    # Exactly now + 2 h is offered; anything earlier is not.
    assert walls(slots)[0] == "11:00"

    business.repair.min_notice_minutes = 0
    business.repair.save()
    slots = available_slots(service=business.repair, start_date=TUESDAY, now=at(TUESDAY, "09:10"))
    # With no notice the next grid time after now, never a time in the past.
    assert walls(slots)[0] == "09:30"


def test_it_offers_nothing_in_the_past(business):
    assert available_slots(service=business.repair, start_date=MONDAY - timedelta(days=7), now=NOW) == []

    late = at(TUESDAY, "17:30")
    assert available_slots(service=business.repair, start_date=TUESDAY, now=late) == []


def test_it_offers_nothing_beyond_the_booking_horizon(business):
    horizon = MONDAY + timedelta(days=settings.BOOKING_HORIZON_DAYS)
    # The fixture's working week starts on a weekday; make the horizon day and the next one bookable.
    for day in (horizon, horizon + timedelta(days=1)):
        for weekday_open in BusinessHours.objects.filter(weekday=day.weekday()):
            weekday_open.delete()
        BusinessHours.objects.create(weekday=day.weekday(), opens=time(8), closes=time(18))
        WorkingHours.objects.get_or_create(
            technician=business.alice, weekday=day.weekday(), defaults={"start_time": time(8), "end_time": time(17)}
        )

    on_horizon = available_slots(service=business.repair, start_date=horizon, now=NOW)
    after = available_slots(service=business.repair, start_date=horizon + timedelta(days=1), now=NOW)
    spanning = available_slots(
        service=business.repair, start_date=horizon - timedelta(days=1), end_date=horizon + timedelta(days=5), now=NOW
    )

    assert walls_for(on_horizon, business.alice) == REPAIR_WALLS_ALICE
    assert after == []
    assert max(slot.start.astimezone(TORONTO).date() for slot in spanning) == horizon


def test_it_follows_a_changed_booking_horizon(business, settings):
    settings.BOOKING_HORIZON_DAYS = 1

    assert available_slots(service=business.repair, start_date=TUESDAY, now=NOW) != []
    assert available_slots(service=business.repair, start_date=TUESDAY + timedelta(days=1), now=NOW) == []


def test_it_rejects_an_end_date_before_the_start_date(business):
    with pytest.raises(InvalidInput) as error:
        available_slots(service=business.repair, start_date=TUESDAY, end_date=MONDAY, now=NOW)
    assert error.value.field == "end_date"


def test_it_uses_the_current_time_when_none_is_given(business):
    with time_machine.travel(at(TUESDAY, "12:05"), tick=False):
        slots = available_slots(service=business.repair, start_date=TUESDAY)

    assert walls(slots)[0] == "14:30"


# --- Who may be offered ------------------------------------------------------------------


def test_it_never_offers_an_inactive_technician(business):
    business.alice.active = False
    business.alice.save()

    slots = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    assert walls(slots) == REPAIR_WALLS_BOB
    assert all(business.alice.pk not in {t.id for t in slot.technicians} for slot in slots)
    assert available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk, now=NOW) == []


def test_it_offers_nothing_for_an_inactive_service(business):
    business.repair.active = False
    business.repair.save()

    assert available_slots(service=business.repair, start_date=TUESDAY, now=NOW) == []
    assert technicians_available(trade=business.hvac, on_date=TUESDAY, service=business.repair, now=NOW) == []


def test_it_never_offers_a_technician_of_another_trade(business):
    repair = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)
    drain = available_slots(service=business.drain, start_date=TUESDAY, now=NOW)

    assert {t.id for s in repair for t in s.technicians} == {business.alice.pk, business.bob.pk}
    assert {t.id for s in drain for t in s.technicians} == {business.carol.pk}
    # Asking for carol by id does not make her an HVAC technician.
    assert available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.carol.pk, now=NOW) == []


def test_it_offers_a_technician_of_several_trades_for_each(business):
    business.carol.trades.add(business.hvac)

    repair = available_slots(service=business.repair, start_date=TUESDAY, now=NOW)

    assert business.carol.pk in {t.id for s in repair for t in s.technicians}


def test_it_narrows_to_one_technician_when_asked(business):
    slots = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.bob.pk, now=NOW)

    assert walls(slots) == REPAIR_WALLS_BOB
    assert {t.id for s in slots for t in s.technicians} == {business.bob.pk}


# --- technicians_available ------------------------------------------------------------------


def test_technicians_available_lists_free_technicians_of_the_trade_with_their_slots(business):
    days = technicians_available(trade=business.hvac, on_date=TUESDAY, service=business.repair, now=NOW)

    assert [d.technician.id for d in days] == [business.alice.pk, business.bob.pk]
    alice, bob = days
    assert [f"{s.astimezone(TORONTO):%H:%M}" for s, _ in alice.slots] == REPAIR_WALLS_ALICE
    assert [f"{s.astimezone(TORONTO):%H:%M}" for s, _ in bob.slots] == REPAIR_WALLS_BOB
    assert all(end - start == timedelta(hours=2) for start, end in alice.slots)


def test_technicians_available_leaves_out_busy_inactive_and_other_trade_technicians(business):
    CalendarEvent.objects.create(technician=business.alice, start=at(TUESDAY, "07:00"), end=at(TUESDAY, "18:00"))

    hvac = technicians_available(trade=business.hvac, on_date=TUESDAY, service=business.repair, now=NOW)
    assert [d.technician.id for d in hvac] == [business.bob.pk]

    business.bob.active = False
    business.bob.save()
    assert technicians_available(trade=business.hvac, on_date=TUESDAY, service=business.repair, now=NOW) == []

    plumbing = technicians_available(trade=business.plumbing, on_date=TUESDAY, now=NOW)
    assert [d.technician.id for d in plumbing] == [business.carol.pk]


def test_technicians_available_without_a_service_sizes_slots_for_the_shortest_active_one(business):
    Service.objects.create(
        trade=business.hvac,
        name="Thermostat Check",
        slug="thermostat-check",
        duration_minutes=30,
        price_min=Decimal("80"),
        min_notice_minutes=0,
    )

    alice = technicians_available(trade=business.hvac, on_date=TUESDAY, now=NOW)[0]

    assert alice.technician.id == business.alice.pk
    # 30 min, no buffers: 08:00 through 16:30 for alice.
    assert f"{alice.slots[0][0].astimezone(TORONTO):%H:%M}" == "08:00"
    assert f"{alice.slots[-1][0].astimezone(TORONTO):%H:%M}" == "16:30"
    assert all(end - start == timedelta(minutes=30) for start, end in alice.slots)


def test_technicians_available_rejects_a_service_of_another_trade(business):
    with pytest.raises(InvalidInput) as error:
        technicians_available(trade=business.hvac, on_date=TUESDAY, service=business.drain, now=NOW)
    assert error.value.field == "service"


def test_technicians_available_is_empty_for_a_trade_without_active_services(business):
    electrical = Trade.objects.create(name="Electrical", slug="electrical")

    assert technicians_available(trade=electrical, on_date=TUESDAY, now=NOW) == []


# --- Date ranges and DST -------------------------------------------------------------------


def test_it_covers_a_seven_day_range_day_by_day(business):
    slots = available_slots(service=business.repair, start_date=MONDAY, end_date=SUNDAY, now=NOW)

    by_day: dict[date, list[str]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(TORONTO).date(), []).append(f"{slot.start.astimezone(TORONTO):%H:%M}")

    assert [s.start for s in slots] == sorted(s.start for s in slots)
    # Monday: now is 08:00, so 2 h notice leaves 10:00 on. Tue-Fri: full days. Saturday: bob
    # within 09:00-14:00 opening. Sunday: closed.
    assert by_day[MONDAY] == [w for w in REPAIR_WALLS_ALICE if w >= "10:00"]
    for offset in range(1, 5):
        assert by_day[MONDAY + timedelta(days=offset)] == REPAIR_WALLS_ALICE
    assert by_day[SATURDAY] == ["09:30", "10:00", "10:30", "11:00", "11:30", "12:00"]
    assert SUNDAY not in by_day
    # The range is the union of the single days.
    single = []
    for offset in range(7):
        single += available_slots(service=business.repair, start_date=MONDAY + timedelta(days=offset), now=NOW)
    assert slots == single


def open_weekend_like_a_weekday(business) -> None:
    """Give Saturday and Sunday the same day as Tuesday (business 08-18, alice 08-17).

    Both DST changes happen on a Sunday; with identical days, any shift is the DST's doing.
    """
    BusinessHours.objects.filter(weekday__in=(5, 6)).delete()
    for weekday in (5, 6):
        BusinessHours.objects.create(weekday=weekday, opens=time(8), closes=time(18))
        WorkingHours.objects.create(technician=business.alice, weekday=weekday, start_time=time(8), end_time=time(17))


def open_sundays_around_the_clock(business) -> None:
    """Open Sundays all day for alice, so the night of the DST change can be offered."""
    BusinessHours.objects.create(weekday=6, opens=time(0), closes=time(23, 59))
    WorkingHours.objects.create(technician=business.alice, weekday=6, start_time=time(0), end_time=time(23, 59))


@pytest.mark.parametrize(
    ("frozen", "days", "offsets"),
    [
        # Spring forward: Sunday 2026-03-08 02:00 EST becomes 03:00 EDT.
        (
            datetime(2026, 3, 6, 12, tzinfo=TORONTO),
            [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)],
            [timedelta(hours=-5), timedelta(hours=-4), timedelta(hours=-4)],
        ),
        # Fall back: Sunday 2026-11-01 02:00 EDT becomes 01:00 EST.
        (
            datetime(2026, 10, 30, 12, tzinfo=TORONTO),
            [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)],
            [timedelta(hours=-4), timedelta(hours=-5), timedelta(hours=-5)],
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_it_keeps_wall_clock_slots_across_dst(business, frozen, days, offsets):
    open_weekend_like_a_weekday(business)

    with time_machine.travel(frozen, tick=False):
        slots = available_slots(
            service=business.repair, start_date=days[0], end_date=days[-1], technician_id=business.alice.pk
        )

    for day, offset in zip(days, offsets, strict=True):
        that_day = [s for s in slots if s.start.astimezone(TORONTO).date() == day]
        assert walls(that_day) == REPAIR_WALLS_ALICE, day
        first = that_day[0].start
        assert first.astimezone(TORONTO).utcoffset() == offset, day
        # 08:30 local is 13:30 UTC in winter (EST) and 12:30 UTC in summer (EDT).
        assert first.astimezone(UTC).time() == (datetime.combine(day, time(8, 30)) - offset).time(), day
        for slot in that_day:
            assert slot.end - slot.start == timedelta(hours=2)
            assert slot.end.astimezone(UTC) - slot.start.astimezone(UTC) == timedelta(hours=2)


def test_it_skips_wall_times_that_do_not_exist_when_clocks_spring_forward(business):
    open_sundays_around_the_clock(business)
    day = date(2026, 3, 8)

    with time_machine.travel(datetime(2026, 3, 7, 12, tzinfo=TORONTO), tick=False):
        slots = available_slots(service=business.repair, start_date=day, technician_id=business.alice.pk)

    labels = walls(slots)
    # 02:00 and 02:30 do not exist that night; 00:30 is the first start after the 30 min buffer.
    assert labels[:5] == ["00:30", "01:00", "01:30", "03:00", "03:30"]
    assert "02:00" not in labels
    assert "02:30" not in labels
    one_thirty = slots[labels.index("01:30")]
    # 01:30 EST + 2 real hours is 04:30 EDT on the wall.
    assert one_thirty.start.astimezone(TORONTO).utcoffset() == timedelta(hours=-5)
    assert f"{one_thirty.end.astimezone(TORONTO):%H:%M}" == "04:30"
    assert one_thirty.end.astimezone(TORONTO).utcoffset() == timedelta(hours=-4)
    assert one_thirty.end - one_thirty.start == timedelta(hours=2)


def test_it_cuts_working_spans_with_an_edge_in_the_spring_forward_gap_at_the_jump(business):
    # 02:30 does not exist on 2026-03-08: the clocks jump from 02:00 EST to 03:00 EDT. A shift
    # "until 02:30" ends at the jump, and one "from 02:30" starts there (03:00 EDT).
    BusinessHours.objects.create(weekday=6, opens=time(0), closes=time(23, 59))
    WorkingHours.objects.create(technician=business.alice, weekday=6, start_time=time(0), end_time=time(2, 30))
    WorkingHours.objects.create(technician=business.bob, weekday=6, start_time=time(2, 30), end_time=time(5))
    check = Service.objects.create(
        trade=business.hvac,
        name="Night Check",
        slug="night-check",
        duration_minutes=30,
        price_min=Decimal("90"),
        min_notice_minutes=0,
    )

    with time_machine.travel(datetime(2026, 3, 7, 12, tzinfo=TORONTO), tick=False):
        slots = available_slots(service=check, start_date=date(2026, 3, 8))

    assert walls_for(slots, business.alice) == ["00:00", "00:30", "01:00", "01:30"]
    assert walls_for(slots, business.bob) == ["03:00", "03:30", "04:00", "04:30"]


def test_it_offers_each_wall_time_once_when_clocks_fall_back(business):
    open_sundays_around_the_clock(business)
    day = date(2026, 11, 1)

    with time_machine.travel(datetime(2026, 10, 31, 12, tzinfo=TORONTO), tick=False):
        slots = available_slots(service=business.repair, start_date=day, technician_id=business.alice.pk)

    labels = walls(slots)
    assert labels[:5] == ["00:30", "01:00", "01:30", "02:00", "02:30"]
    assert len(labels) == len(set(labels))
    # The grid steps in wall-clock time: 01:30 EDT is followed by 02:00 EST, 90 real minutes later.
    one_thirty, two = slots[2], slots[3]
    assert one_thirty.start.astimezone(TORONTO).utcoffset() == timedelta(hours=-4)
    assert two.start.astimezone(TORONTO).utcoffset() == timedelta(hours=-5)
    assert two.start - one_thirty.start == timedelta(minutes=90)
    # 00:30 EDT + 2 real hours is 01:30 EST on the wall.
    first = slots[0]
    assert f"{first.end.astimezone(TORONTO):%H:%M}" == "01:30"
    assert first.end - first.start == timedelta(hours=2)


# --- A fixed number of queries ---------------------------------------------------------------


def test_it_runs_the_same_number_of_queries_whatever_the_size_of_the_calendar(business, django_assert_num_queries):
    electrical = Trade.objects.create(name="Electrical", slug="electrical")
    service = Service.objects.create(
        trade=electrical,
        name="Panel Inspection",
        slug="panel-inspection",
        duration_minutes=60,
        price_min=Decimal("120"),
        buffer_before_minutes=15,
        buffer_after_minutes=15,
        min_notice_minutes=60,
    )

    def electrician(n: int) -> Technician:
        technician = Technician.objects.create(first_name=f"Sparky{n:02d}", last_name="Volt")
        technician.trades.add(electrical)
        WorkingHours.objects.bulk_create(
            [
                WorkingHours(technician=technician, weekday=weekday, start_time=start, end_time=end)
                for weekday in range(6)
                for start, end in ((time(7), time(12)), (time(12, 30), time(17)))
            ]
        )
        return technician

    first = electrician(0)
    with CaptureQueriesContext(connection) as small_day:
        small = available_slots(service=service, start_date=TUESDAY, now=NOW)
    with CaptureQueriesContext(connection) as small_week:
        available_slots(service=service, start_date=MONDAY, end_date=SUNDAY, now=NOW)
    with CaptureQueriesContext(connection) as small_techs:
        technicians_available(trade=electrical, on_date=TUESDAY, service=service, now=NOW)
    assert small, "the small calendar must offer something, or the comparison proves nothing"

    technicians = [first] + [electrician(n) for n in range(1, 20)]
    customer = Customer.objects.create(name="Busy Customer", phone="+14165550142")
    bookings = []
    events = []
    for i, technician in enumerate(technicians):
        for day_offset in range(1, 6):  # Tuesday .. Saturday
            day = MONDAY + timedelta(days=day_offset)
            # Two one-hour visits a day, shifted per technician, so the calendar is not uniform.
            for hhmm in (f"{8 + i % 3}:00", f"{13 + i % 2}:30"):
                start = at(day, hhmm)
                bookings.append(
                    Booking(
                        number=f"BK-2026-{len(bookings) + 1:06d}",
                        service=service,
                        technician=technician,
                        customer=customer,
                        start=start,
                        end=start + timedelta(hours=1),
                        occupied_start=start - timedelta(minutes=15),
                        occupied_end=start + timedelta(minutes=75),
                        estimated_price_min=Decimal("120"),
                        address="2 Busy Rd",
                        channel=Channel.STAFF,
                    )
                )
            events.append(
                CalendarEvent(technician=technician, title="Stand-up", start=at(day, "11:00"), end=at(day, "11:30"))
            )
    Booking.objects.bulk_create(bookings)
    CalendarEvent.objects.bulk_create(events)
    ClosedDay.objects.create(date=SATURDAY - timedelta(days=1), reason="Inventory")
    assert Booking.objects.filter(service=service).count() == 200

    with django_assert_num_queries(len(small_day.captured_queries)):
        big = available_slots(service=service, start_date=TUESDAY, now=NOW)
    with django_assert_num_queries(len(small_week.captured_queries)):
        available_slots(service=service, start_date=MONDAY, end_date=SUNDAY, now=NOW)
    with django_assert_num_queries(len(small_techs.captured_queries)):
        busy = technicians_available(trade=electrical, on_date=TUESDAY, service=service, now=NOW)

    # The big calendar was really read: 20 technicians, and bookings/events took slots away.
    assert len({t.id for s in big for t in s.technicians}) == 20
    assert len(busy) == 20
    # No slot is free for everyone: each technician's bookings and the stand-up took their share.
    assert max(len(s.technicians) for s in big) < 20
