"""The dispatch board and slot-aware staff booking (issue 12): the board shows who is where,
a free slot starts a booking with everything filled in, and adding or moving a booking in the
admin offers the availability engine's real slots, refuses a taken one, and records an override."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from bookings.models import ActorKind, Booking, BookingEvent, BookingStatus, CalendarEvent, ClosedDay, Technician
from bookings.selectors import available_slots, board_data, business_tz
from bookings.services import Actor, booking_create
from chatdesk.backoffice.booking_forms import slot_value
from tests.conftest import MONDAY_NOON_UTC
from tests.test_conversation_admin import dispatcher_fixture, staff_groups_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

MONDAY = date(2026, 11, 16)
TUESDAY = date(2026, 11, 17)
BOARD = "admin:bookings_dispatch_board"


@pytest.fixture(autouse=True)
def monday_morning(time_machine):
    """Monday 2026-11-16 08:00 in Toronto, far from DST."""
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


def at(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=business_tz())


def book(business, start: datetime, *, technician=None, service=None, phone: str = "416-555-0101") -> Booking:
    return booking_create(
        service=service or business.repair,
        start=start,
        technician=technician or business.alice,
        customer_name="Dana Lee",
        customer_phone=phone,
        address="9 Bay St",
        channel="chat",
        actor=Actor.system(),
    )


def board(client, **params):
    return client.get(reverse(BOARD), params)


def cells(response, technician: str) -> list:
    """The day view's cells of one technician's row."""
    rows = [row for row in response.context["day_rows"] if row.technician == technician]
    assert rows, [row.technician for row in response.context["day_rows"]]
    return rows[0].cells


# --- The board -------------------------------------------------------------------------------------


def test_day_view_shows_technicians_bookings_buffers_time_off_and_hours(admin_client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    CalendarEvent.objects.create(
        technician=business.bob, kind="time_off", title="Dentist", start=at(TUESDAY, "13:00"), end=at(TUESDAY, "15:00")
    )
    response = board(admin_client, day="2026-11-17")
    assert response.status_code == 200
    assert [row.technician for row in response.context["day_rows"]] == ["Alice Tech", "Bob Tech", "Carol Tech"]
    alice = cells(response, "Alice Tech")
    kinds = [(c.kind, c.span) for c in alice]
    # 08:00 is the first column (15 minutes each): Alice works 08-17, the visit is 10-12 with
    # 30 minutes of travel before and 15 after.
    assert kinds[:4] == [("free", 6), ("buffer", 2), ("booking", 8), ("buffer", 1)]
    booking_cell = alice[2]
    assert booking_cell.css == "st-confirmed"
    assert booking_cell.url == reverse("admin:bookings_booking_change", args=[visit.pk])
    assert booking_cell.move_url == reverse("admin:bookings_booking_move", args=[visit.pk])
    assert ("off", 4) in kinds  # 17:00-18:00, after her shift, until the business closes
    bob = cells(response, "Bob Tech")
    assert [(c.kind, c.span) for c in bob][:3] == [("off", 4), ("free", 16), ("event", 8)]
    assert "Dentist" in bob[2].title
    html = response.content.decode()
    assert 'class="k-booking st-confirmed"' in html and visit.number in html
    assert reverse(BOARD) in admin_client.get(reverse("admin:index")).content.decode()


def test_a_closed_day_and_a_cancelled_booking(admin_client, business):
    ClosedDay.objects.create(date=TUESDAY, reason="Staff training")
    response = board(admin_client, day="2026-11-17")
    assert [(c.kind, c.label) for c in cells(response, "Alice Tech")] == [("closed", "Closed: Staff training")]
    assert "Closed: Staff training" in response.content.decode()
    # A cancelled booking holds no time: it is not drawn.
    from bookings.services import booking_cancel

    visit = book(business, at(MONDAY, "13:00"))
    booking_cancel(booking=visit, actor=Actor.system())
    assert all(c.kind != "booking" for c in cells(board(admin_client, day="2026-11-16"), "Alice Tech"))


def test_states_have_their_colour(admin_client, business):
    book(business, at(TUESDAY, "10:00"), phone="416-555-0102")
    pending = booking_create(
        service=business.repair,
        start=at(TUESDAY, "13:00"),
        technician=business.alice,
        customer_name="Sam",
        customer_phone="416-555-0103",
        address="1 King St",
        channel="chat",
        status=BookingStatus.PENDING,
        actor=Actor.system(),
    )
    css = [c.css for c in cells(board(admin_client, day="2026-11-17"), "Alice Tech") if c.kind == "booking"]
    assert css == ["st-confirmed", "st-pending"]
    assert pending.number in board(admin_client, day="2026-11-17", view="week").content.decode()


def test_week_view_lists_each_day_with_links_to_the_day(admin_client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    ClosedDay.objects.create(date=date(2026, 11, 20), reason="")
    response = board(admin_client, day="2026-11-18", view="week")
    assert response.status_code == 200
    assert response.context["week_days"][0][0] == MONDAY
    name, _, week = response.context["week_rows"][0]
    assert name == "Alice Tech"
    assert [cell.kind for cell in week] == ["open"] * 4 + ["closed", "off", "off"]
    assert [item.label for item in week[1].items] == ["10:00 HVAC Repair · Dana Lee"]
    assert week[1].items[0].url == reverse("admin:bookings_booking_change", args=[visit.pk])
    assert week[0].hours == "08:00–17:00"
    html = response.content.decode()
    assert "view=day" in html and "day=2026-11-17" in html


def test_navigation_by_date_keeps_the_view_and_filters(admin_client, business):
    response = board(admin_client, day="2026-11-17", view="week", trade=business.hvac.pk)
    for key, expected in (("prev_url", "2026-11-10"), ("next_url", "2026-11-24")):
        query = parse_qs(urlsplit(response.context[key]).query)
        assert query == {"day": [expected], "view": ["week"], "trade": [str(business.hvac.pk)]}
    day = board(admin_client, day="2026-11-17")
    assert parse_qs(urlsplit(day.context["next_url"]).query)["day"] == ["2026-11-18"]


def test_trade_filter(admin_client, business):
    response = board(admin_client, day="2026-11-17", trade=business.plumbing.pk)
    assert [row.technician for row in response.context["day_rows"]] == ["Carol Tech"]


def test_bad_input_is_a_400_with_the_error_shown(admin_client, business):
    response = board(admin_client, day="not-a-day")
    assert response.status_code == 400
    assert "Day: Enter a valid date." in response.content.decode()
    mismatch = board(admin_client, service=business.drain.pk, trade=business.hvac.pk)
    assert mismatch.status_code == 400
    assert "Drain Cleaning is Plumbing work, not HVAC." in mismatch.content.decode()


def test_a_dispatcher_sees_the_board_without_contact_details(client, business, dispatcher):
    book(business, at(TUESDAY, "10:00"))
    client.force_login(dispatcher)
    response = board(client, day="2026-11-17", service=business.repair.pk)
    assert response.status_code == 200
    html = response.content.decode()
    # The name, as on the booking page; never the phone or the address.
    assert "Dana Lee" in html
    assert "555" not in html and "9 Bay St" not in html
    # A Dispatcher moves bookings (change_booking) but adds none (migration 0003 gives no
    # add_booking): move links, and free slots without a link to Add booking.
    assert any(c.move_url for c in cells(response, "Alice Tech") if c.kind == "booking")
    slots = [c for c in cells(response, "Alice Tech") if c.kind == "slot"]
    assert slots and not any(c.url for c in slots)


def test_staff_without_view_bookings_may_not_see_the_board(client, business):
    user = User.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(user)
    assert board(client).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_booking"))
    client.force_login(User.objects.get(pk=user.pk))
    response = board(client, day="2026-11-17", service=business.repair.pk)
    assert response.status_code == 200
    # May look, not book or move: no free-slot links.
    assert all(not c.url for c in cells(response, "Alice Tech") if c.kind == "slot")


def test_free_slots_come_from_the_availability_engine_and_start_a_booking(admin_client, business):
    book(business, at(TUESDAY, "10:00"))
    response = board(admin_client, day="2026-11-17", service=business.repair.pk)
    slot_cells = [c for c in cells(response, "Alice Tech") if c.kind == "slot"]
    engine = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk)
    assert len(slot_cells) == len(engine) > 0
    first = slot_cells[0]
    query = parse_qs(urlsplit(first.url).query)
    assert query == {
        "service": [str(business.repair.pk)],
        "technician": [str(business.alice.pk)],
        "day": ["2026-11-17"],
        "slot": [slot_value(engine[0].start)],
    }
    # The add form opens with all of it filled in, the slot chosen among the offered ones.
    add = admin_client.get(first.url)
    assert add.status_code == 200
    html = add.content.decode()
    assert f'value="{slot_value(engine[0].start)}"' in html
    form = add.context["adminform"].form
    assert [value for value, _ in form.fields["slot"].choices] == [slot_value(s.start) for s in engine]


def test_the_board_reads_in_a_fixed_number_of_queries(business, django_assert_num_queries):
    book(business, at(TUESDAY, "10:00"))
    with django_assert_num_queries(11):
        board_data(first_day=MONDAY, last_day=MONDAY + timedelta(days=6), service=business.repair)
    for i in range(5):
        extra = Technician.objects.create(first_name=f"Extra{i}", last_name="Tech")
        extra.trades.add(business.hvac)
    with django_assert_num_queries(11):
        data = board_data(first_day=MONDAY, last_day=MONDAY + timedelta(days=6), service=business.repair)
    assert len(data.technicians) == 8
    with django_assert_num_queries(7):  # no service: no free slots to compute
        board_data(first_day=MONDAY, last_day=MONDAY)


def test_the_board_page_takes_a_fixed_number_of_queries(admin_client, business):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert board(admin_client, day="2026-11-17", view="week", service=business.repair.pk).status_code == 200
        return len(captured)

    book(business, at(TUESDAY, "10:00"))
    before = queries()
    for i in range(4):
        book(business, at(TUESDAY + timedelta(days=1 + i), "10:00"), technician=business.bob, phone=f"416-555-02{i}0")
        extra = Technician.objects.create(first_name=f"Extra{i}", last_name="Tech")
        extra.trades.add(business.hvac)
    assert queries() == before


# --- Slot-aware "Add booking" ------------------------------------------------------------------------


def customer_fields(**fields) -> dict:
    return {
        "status": "confirmed",
        "customer_name": "Dana Lee",
        "customer_phone": "(416) 555-0177",
        "customer_email": "",
        "address": "9 Bay St, Toronto",
        "notes": "",
        **fields,
    }


def test_show_free_slots_offers_the_engines_slots_and_books_nothing(admin_client, business):
    data = customer_fields(service=business.repair.pk, day="2026-11-17", technician=business.bob.pk, _slots="1")
    response = admin_client.post(reverse("admin:bookings_booking_add"), data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert not form.is_bound and not form.errors
    engine = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.bob.pk)
    assert [value for value, _ in form.fields["slot"].choices] == [slot_value(s.start) for s in engine]
    assert form.fields["slot"].choices[0][1] == "09:30–11:30 (Bob T.)"
    # What was typed is kept for step two.
    assert 'value="Dana Lee"' in response.content.decode()
    assert not Booking.objects.exists()


def test_booking_a_chosen_slot(admin_client, admin_user, business):
    slot = available_slots(service=business.repair, start_date=TUESDAY)[0]
    data = customer_fields(service=business.repair.pk, day="2026-11-17", technician="", slot=slot_value(slot.start))
    response = admin_client.post(reverse("admin:bookings_booking_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    booking = Booking.objects.get()
    assert booking.start == slot.start
    assert booking.events.get().actor_user == admin_user


def test_a_chosen_slot_needs_no_override(admin_client, business):
    slot = available_slots(service=business.repair, start_date=TUESDAY, technician_id=business.alice.pk)[0]
    data = customer_fields(
        service=business.repair.pk,
        day="2026-11-17",
        technician=business.alice.pk,
        slot=slot_value(slot.start),
        override_reason="not needed",
    )
    assert admin_client.post(reverse("admin:bookings_booking_add"), data).status_code == 302
    event = Booking.objects.get().events.get()
    assert "override" not in event.changes and event.note == ""


def test_a_slot_taken_meanwhile_is_refused(admin_client, business):
    start = at(TUESDAY, "10:00")
    value = slot_value(start)
    book(business, start, technician=business.alice)
    book(business, start, technician=business.bob, phone="416-555-0199")
    data = customer_fields(service=business.repair.pk, day="2026-11-17", technician="", slot=value)
    response = admin_client.post(reverse("admin:bookings_booking_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "slot" in errors and "is not one of the available choices" in errors["slot"][0]
    assert Booking.objects.count() == 2


def test_no_slot_and_no_time_asks_for_one(admin_client, business):
    response = admin_client.post(
        reverse("admin:bookings_booking_add"), customer_fields(service=business.repair.pk, day="2026-11-17")
    )
    assert response.context["adminform"].form.errors["__all__"] == [
        "Choose one of the free slots (Show free slots), or type a time."
    ]
    assert not Booking.objects.exists()


def test_an_override_books_outside_the_slots_and_is_recorded(admin_client, admin_user, business):
    data = customer_fields(
        service=business.repair.pk,
        technician=business.alice.pk,
        start_0="2026-11-17",
        start_1="18:30",  # after the business closes and after Alice's shift
        override_reason="Burst pipe, customer's heating is off",
    )
    response = admin_client.post(reverse("admin:bookings_booking_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    booking = Booking.objects.get()
    assert (booking.start, booking.technician) == (at(TUESDAY, "18:30"), business.alice)
    event = booking.events.get()
    assert (event.kind, event.actor_kind, event.actor_user) == ("created", ActorKind.STAFF, admin_user)
    assert event.changes["override"] is True
    assert event.note == "Override: Burst pipe, customer's heating is off"


def test_without_a_reason_the_same_time_is_refused(admin_client, business):
    data = customer_fields(
        service=business.repair.pk, technician=business.alice.pk, start_0="2026-11-17", start_1="18:30"
    )
    response = admin_client.post(reverse("admin:bookings_booking_add"), data)
    assert response.context["adminform"].form.errors["__all__"] == [
        "That time is not available. Please pick one of the offered slots."
    ]
    assert not Booking.objects.exists()


def test_an_override_still_refuses_a_busy_technician_and_needs_one(admin_client, business):
    book(business, at(TUESDAY, "10:00"))
    data = customer_fields(
        service=business.repair.pk,
        technician=business.alice.pk,
        start_0="2026-11-17",
        start_1="11:00",
        override_reason="Squeeze in",
        customer_phone="416-555-0150",
    )
    response = admin_client.post(reverse("admin:bookings_booking_add"), data)
    assert response.context["adminform"].form.errors["__all__"] == [
        "That technician is busy then (another visit or time off), even with an override."
    ]
    response = admin_client.post(reverse("admin:bookings_booking_add"), {**data, "technician": "", "start_1": "19:00"})
    assert response.context["adminform"].form.errors["technician"] == ["An override needs a technician."]
    assert Booking.objects.count() == 1


def test_only_staff_may_override(business):
    from bookings.errors import InvalidInput

    with pytest.raises(InvalidInput, match="Only staff"):
        booking_create(
            service=business.repair,
            start=at(TUESDAY, "18:30"),
            technician=business.alice,
            customer_name="Dana",
            customer_phone="416-555-0101",
            address="1 King St",
            channel="chat",
            actor=Actor.customer("chat"),
            override_reason="please",
        )


# --- Moving a booking ------------------------------------------------------------------------------------


def move_url(booking: Booking) -> str:
    return reverse("admin:bookings_booking_move", args=[booking.pk])


def test_move_page_offers_slots_and_moves_through_the_reschedule_service(admin_client, admin_user, business):
    visit = book(business, at(TUESDAY, "10:00"))
    page = admin_client.get(move_url(visit), {"day": "2026-11-18", "technician": business.alice.pk})
    assert page.status_code == 200
    engine = available_slots(
        service=business.repair,
        start_date=date(2026, 11, 18),
        technician_id=business.alice.pk,
        exclude_booking_id=visit.pk,
    )
    form = page.context["form"]
    assert [value for value, _ in form.fields["slot"].choices] == [slot_value(s.start) for s in engine]
    # Its own time is free for it (the booking does not block itself).
    same_day = admin_client.get(move_url(visit), {"day": "2026-11-17", "technician": business.alice.pk})
    assert slot_value(visit.start) in [v for v, _ in same_day.context["form"].fields["slot"].choices]

    target = engine[2].start
    response = admin_client.post(
        move_url(visit),
        {"day": "2026-11-18", "technician": business.alice.pk, "slot": slot_value(target), "reason": "Asked"},
    )
    assert response.status_code == 302
    visit.refresh_from_db()
    assert visit.start == target
    event = visit.events.get(kind=BookingEvent.Kind.RESCHEDULED)
    assert (event.actor_user, event.note) == (admin_user, "Asked")
    assert "override" not in event.changes


def test_show_free_slots_on_the_move_page_moves_nothing(admin_client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    response = admin_client.post(move_url(visit), {"day": "2026-11-18", "technician": "", "_slots": "1"})
    assert response.status_code == 200
    assert not response.context["form"].is_bound
    assert response.context["form"].fields["slot"].choices
    visit.refresh_from_db()
    assert visit.start == at(TUESDAY, "10:00")


def test_moving_onto_a_taken_slot_is_refused_clearly(admin_client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    other = book(business, at(date(2026, 11, 18), "10:00"), phone="416-555-0190")
    response = admin_client.post(
        move_url(visit),
        {"day": "2026-11-18", "technician": business.alice.pk, "start_0": "2026-11-18", "start_1": "10:00"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["__all__"] == [
        "That time is not available. Please pick one of the offered slots."
    ]
    taken = admin_client.post(
        move_url(visit), {"day": "2026-11-18", "technician": business.alice.pk, "slot": slot_value(other.start)}
    )
    assert "slot" in taken.context["form"].errors
    visit.refresh_from_db()
    assert visit.start == at(TUESDAY, "10:00")


def test_a_move_override_is_recorded(admin_client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    response = admin_client.post(
        move_url(visit),
        {
            "day": "2026-11-18",
            "technician": business.alice.pk,
            "start_0": "2026-11-18",
            "start_1": "07:00",
            "override_reason": "Only time the customer is home",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    visit.refresh_from_db()
    assert visit.start == at(date(2026, 11, 18), "07:00")
    event = visit.events.get(kind=BookingEvent.Kind.RESCHEDULED)
    assert event.changes["override"] is True and event.note == "Override: Only time the customer is home"


def test_the_booking_page_links_to_move_and_the_board(admin_client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    html = admin_client.get(reverse("admin:bookings_booking_change", args=[visit.pk])).content.decode()
    assert move_url(visit) in html and reverse(BOARD) in html
    assert reverse(BOARD) in admin_client.get(reverse("admin:bookings_booking_changelist")).content.decode()


def test_the_move_page_needs_change_permission(client, business):
    visit = book(business, at(TUESDAY, "10:00"))
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_booking"))
    client.force_login(user)
    assert client.get(move_url(visit)).status_code == 403


# --- SQLite, make run's database ------------------------------------------------------------------------


def test_board_add_and_move_pages_on_sqlite(tmp_path):
    """The board, the slot-aware add form and the move page on `make run`'s default database."""
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "1",
        "OPENAI_API_KEY": "",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    script = textwrap.dedent(
        """
        from datetime import time, timedelta
        from decimal import Decimal
        from django.contrib.auth.models import User
        from django.test import Client
        from django.test.utils import setup_test_environment
        from bookings.models import BusinessHours, CalendarEvent, Technician, Service, Trade, WorkingHours
        from bookings.selectors import available_slots, local_today
        from bookings.services import Actor, booking_create

        setup_test_environment()  # so responses carry their template context
        trade = Trade.objects.create(name="HVAC", slug="hvac")
        service = Service.objects.create(
            trade=trade, name="Repair", slug="repair", duration_minutes=60, price_min=Decimal("100"),
            buffer_before_minutes=30, min_notice_minutes=0,
        )
        tech = Technician.objects.create(first_name="Alice", last_name="Tech")
        tech.trades.add(trade)
        for weekday in range(7):
            BusinessHours.objects.create(weekday=weekday, opens=time(8), closes=time(18))
            WorkingHours.objects.create(technician=tech, weekday=weekday, start_time=time(8), end_time=time(17))
        day = local_today() + timedelta(days=1)
        slots = available_slots(service=service, start_date=day)
        visit = booking_create(
            service=service, start=slots[0].start, customer_name="Dana", customer_phone="416-555-0101",
            address="1 King St", channel="chat", actor=Actor.system(),
        )
        CalendarEvent.objects.create(technician=tech, start=slots[4].start, end=slots[6].start)
        boss = User.objects.create_superuser("boss", "boss@example.com", "pw-for-tests-only")
        c = Client()
        c.force_login(boss)  # Client.login() gives no request, which the login throttle (django-axes) needs
        for view in ("day", "week"):
            r = c.get("/admin/bookings/booking/board/", {"day": day.isoformat(), "view": view, "service": service.pk})
            assert r.status_code == 200, (view, r.status_code)
            assert visit.number in r.content.decode(), view
        r = c.get("/admin/bookings/booking/add/", {"service": service.pk, "day": day.isoformat()})
        assert r.status_code == 200 and len(r.context["adminform"].form.fields["slot"].choices) > 1
        r = c.get(f"/admin/bookings/booking/{visit.pk}/move/", {"day": day.isoformat()})
        assert r.status_code == 200 and r.context["form"].fields["slot"].choices
        print("sqlite ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "sqlite ok" in done.stdout


def test_slot_values_are_utc_instants():
    assert slot_value(datetime(2026, 11, 17, 10, 0, tzinfo=business_tz())) == "2026-11-17T15:00:00+00:00"
    assert datetime.fromisoformat(slot_value(datetime(2026, 11, 17, 15, 0, tzinfo=UTC))).tzinfo is not None
