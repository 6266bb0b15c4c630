"""Calendar feeds (issue 12): secret, rotatable iCalendar URLs, read back with icalendar's parser."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from icalendar import Calendar

from bookings.calendar_feeds import WINDOW_DAYS_AHEAD, WINDOW_DAYS_BACK, address_area, feed_rotate
from bookings.models import Booking, BookingStatus, CalendarFeed, Channel
from bookings.selectors import available_slots, business_tz, local_today
from bookings.services import Actor, booking_cancel, booking_create, booking_reschedule
from tests.conftest import MONDAY_NOON_UTC
from tests.staff import staff_groups

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
TORONTO = "America/Toronto"


@pytest.fixture(autouse=True)
def monday_morning(time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


def book(service, *, technician=None, day_offset: int = 1, name: str = "Dana Lopez", phone: str = "416-555-0142"):
    day = local_today() + timedelta(days=day_offset)
    slot = available_slots(
        service=service,
        start_date=day,
        end_date=day + timedelta(days=7),
        technician_id=technician.pk if technician else None,
    )[0]
    return booking_create(
        service=service,
        start=slot.start,
        technician=technician,
        customer_name=name,
        customer_phone=phone,
        customer_email="dana@example.com",
        address="12 Queen St W, Toronto",
        notes="Gate code 4321",
        channel=Channel.CHAT,
        actor=Actor.customer(Channel.CHAT),
    )


def fetch(client: Client, feed: CalendarFeed, method: str = "get", **headers):
    return getattr(client, method)(reverse("calendar-feed", args=[feed.token]), headers=headers)


def events(response) -> dict[str, object]:
    assert response.status_code == 200, response.status_code
    calendar = Calendar.from_ical(response.content)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def test_a_technicians_feed_has_their_visits_in_the_business_time_zone(client, business):
    mine = book(business.repair, technician=business.alice)
    book(business.repair, technician=business.bob, phone="416-555-0143")
    feed = feed_rotate(technician=business.alice)
    response = fetch(client, feed)
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.content)
    assert calendar["X-WR-CALNAME"] == "Maple Home Services: Alice T."
    # Apple and Thunderbird poll as often as the feed asks.
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in response.content.decode()
    assert "X-PUBLISHED-TTL:PT1H" in response.content.decode()
    found = events(response)
    assert list(found) == [f"{mine.number}@chatdesk"]
    event = found[f"{mine.number}@chatdesk"]
    # The wall-clock time at the business, labelled with its zone, and the zone's rules alongside.
    assert event["DTSTART"].params["TZID"] == TORONTO
    assert event.decoded("DTSTART") == mine.start.astimezone(business_tz())
    assert event.decoded("DTSTART").tzinfo.key == TORONTO
    assert event.decoded("DTEND") == mine.end
    assert f"DTSTART;TZID={TORONTO}:" in response.content.decode()
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == [TORONTO]
    assert str(event["SUMMARY"]) == "HVAC Repair · Toronto"
    assert str(event["LOCATION"]) == "12 Queen St W, Toronto"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "Customer: Dana" in str(event["DESCRIPTION"])


def test_a_technicians_feed_carries_no_more_about_the_customer_than_the_visit_needs(client, business):
    book(business.repair, technician=business.alice)
    body = fetch(client, feed_rotate(technician=business.alice)).content.decode()
    for secret in ["Lopez", "416", "+1416", "dana@example.com", "Gate code", "200.00", "41.00", "Secret Lane"]:
        assert secret not in body


def test_the_business_feed_has_every_technicians_visits_without_street_or_customer(client, business):
    alices = book(business.repair, technician=business.alice)
    carols = book(business.drain, technician=business.carol, phone="416-555-0143")
    found = events(fetch(client, feed_rotate(technician=None)))
    assert set(found) == {f"{alices.number}@chatdesk", f"{carols.number}@chatdesk"}
    carol = found[f"{carols.number}@chatdesk"]
    assert str(carol["SUMMARY"]) == "Drain Cleaning · Toronto (Carol T.)"
    assert str(carol["LOCATION"]) == "Toronto"
    body = fetch(client, CalendarFeed.objects.get(kind="business")).content.decode()
    assert "Queen St" not in body and "Dana" not in body


def test_a_cancelled_visit_stays_in_the_feed_as_cancelled(client, business):
    booking = book(business.repair, technician=business.alice)
    booking_cancel(booking=booking, actor=Actor.system(), reason="customer called")
    event = events(fetch(client, feed_rotate(technician=business.alice)))[f"{booking.number}@chatdesk"]
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["TRANSP"]) == "TRANSPARENT"


def test_a_pending_visit_is_tentative(client, business):
    booking = book(business.repair, technician=business.alice)
    Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.PENDING)
    event = events(fetch(client, feed_rotate(technician=business.alice)))[f"{booking.number}@chatdesk"]
    assert str(event["STATUS"]) == "TENTATIVE"


def test_a_moved_visit_keeps_its_uid_and_moves(client, business):
    booking = book(business.repair, technician=business.alice)
    feed = feed_rotate(technician=business.alice)
    before = events(fetch(client, feed))
    later_day = local_today() + timedelta(days=3)
    slot = available_slots(
        service=business.repair, start_date=later_day, end_date=later_day, technician_id=business.alice.pk
    )[0]
    booking_reschedule(booking=booking, new_start=slot.start, actor=Actor.system())
    after = events(fetch(client, feed))
    uid = f"{booking.number}@chatdesk"
    assert list(before) == list(after) == [uid]
    assert after[uid].decoded("DTSTART") == slot.start
    assert after[uid].decoded("DTSTART") != before[uid].decoded("DTSTART")


def test_the_feed_covers_30_days_back_to_90_ahead(client, business, time_machine):
    # Book visits 1 day ahead, then look at them from other days: visits of the past are
    # made the same way as every other, through the service, at the time they were booked.
    booking = book(business.repair, technician=business.alice)
    visit_day = booking.start.astimezone(business_tz()).date()
    feed = feed_rotate(technician=business.alice)

    def seen_on(day) -> bool:
        time_machine.move_to(datetime.combine(day, time(12), tzinfo=business_tz()), tick=False)
        return f"{booking.number}@chatdesk" in events(fetch(client, feed))

    assert seen_on(visit_day + timedelta(days=WINDOW_DAYS_BACK))
    assert not seen_on(visit_day + timedelta(days=WINDOW_DAYS_BACK + 1))
    assert seen_on(visit_day - timedelta(days=WINDOW_DAYS_AHEAD))
    assert not seen_on(visit_day - timedelta(days=WINDOW_DAYS_AHEAD + 1))


def test_the_feed_takes_the_same_queries_however_many_visits(client, business, django_assert_max_num_queries):
    feed = feed_rotate(technician=None)
    book(business.repair, technician=business.alice)
    with django_assert_max_num_queries(3) as few:
        fetch(client, feed)
    for offset, technician in enumerate([business.bob, business.carol, business.alice], start=2):
        service = business.drain if technician == business.carol else business.repair
        book(service, technician=technician, day_offset=offset, phone=f"416-555-01{offset:02d}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(events(fetch(client, feed))) == 4


def test_a_wrong_token_is_a_404(client, business):
    feed_rotate(technician=business.alice)
    assert client.get("/calendar/not-the-token.ics").status_code == 404
    assert client.get("/calendar/" + "x" * 200 + ".ics").status_code == 404


def test_rotating_ends_the_old_url_and_the_new_one_works(client, business):
    first = feed_rotate(technician=business.alice)
    old_token = first.token
    rotated = feed_rotate(technician=business.alice)
    assert rotated.pk == first.pk and rotated.token != old_token and rotated.rotated_at is not None
    assert client.get(f"/calendar/{old_token}.ics").status_code == 404
    assert fetch(client, rotated).status_code == 200
    assert CalendarFeed.objects.count() == 1


def test_an_inactive_technicians_feed_is_a_404(client, business):
    feed = feed_rotate(technician=business.alice)
    business.alice.active = False
    business.alice.save()
    assert fetch(client, feed).status_code == 404


def test_only_get_and_head_are_answered(client, business):
    feed = feed_rotate(technician=business.alice)
    url = reverse("calendar-feed", args=[feed.token])
    assert client.post(url).status_code == 405
    assert client.put(url).status_code == 405
    assert client.delete(url).status_code == 405
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Type"].startswith("text/calendar")


def test_the_feed_says_how_long_to_keep_it_and_answers_304_when_unchanged(client, business):
    booking = book(business.repair, technician=business.alice)
    feed = feed_rotate(technician=business.alice)
    response = fetch(client, feed)
    assert response["Cache-Control"] == "private, max-age=900"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    etag = response["ETag"]
    assert fetch(client, feed, If_None_Match=etag).status_code == 304
    booking_cancel(booking=booking, actor=Actor.system())
    changed = fetch(client, feed, If_None_Match=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_one_business_feed_even_when_asked_twice(business):
    first = feed_rotate(technician=None)
    second = feed_rotate(technician=None)
    assert CalendarFeed.objects.filter(kind="business").count() == 1
    assert first.pk == second.pk


@pytest.mark.parametrize(
    ("address", "area"),
    [("12 Queen St W, Toronto", "Toronto"), ("5 Lakeshore Rd, Mississauga, ON L5H 1A1", "Mississauga"), ("12 Elm", "")],
)
def test_the_area_is_the_locality_after_the_street(address, area):
    assert address_area(address) == area


# --- the admin page --------------------------------------------------------------------------


def staff_client(*perms: str) -> Client:
    user = get_user_model().objects.create_user("dispatch", password="pw-123456!", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


FEEDS_URL = "/admin/bookings/calendarfeed/"
ROTATE_URL = "/admin/bookings/calendarfeed/rotate/"


def test_staff_who_may_change_bookings_create_copy_and_rotate_urls(business):
    client = staff_client("change_booking", "view_booking")
    page = client.get(FEEDS_URL)
    assert page.status_code == 200
    assert page.content.decode().count("Create URL") == 4  # the business and three technicians
    assert "Calendar feeds" in client.get("/admin/").content.decode()

    created = client.post(ROTATE_URL, {"owner": str(business.alice.pk)}, follow=True)
    feed = CalendarFeed.objects.get(technician=business.alice)
    url = f"http://testserver/calendar/{feed.token}.ics"
    html = created.content.decode()
    assert f'value="{url}"' in html and 'data-copy="feed-' in html and "calendar-feeds.js" in html
    assert "URL created for Maple Home Services: Alice T." in html

    old = feed.token
    rotated = client.post(ROTATE_URL, {"owner": str(business.alice.pk)}, follow=True)
    feed.refresh_from_db()
    assert feed.token != old
    assert "The previous URL no longer works" in rotated.content.decode()
    assert Client().get(f"/calendar/{old}.ics").status_code == 404
    assert Client().get(f"/calendar/{feed.token}.ics").status_code == 200

    client.post(ROTATE_URL, {"owner": "business"})
    assert CalendarFeed.objects.filter(kind="business", technician=None).count() == 1


def test_staff_who_may_not_change_bookings_see_no_feeds(business):
    client = staff_client("view_booking")
    assert client.get(FEEDS_URL).status_code == 403
    assert client.post(ROTATE_URL, {"owner": "business"}).status_code == 403
    assert "Calendar feeds" not in client.get("/admin/").content.decode()
    assert not CalendarFeed.objects.exists()


@pytest.mark.parametrize(("group", "allowed"), [("Dispatcher", True), ("Owner", True), (None, False)])
def test_dispatchers_and_owners_hand_out_feeds_and_bare_staff_do_not(business, group, allowed):
    user = get_user_model().objects.create_user("someone", password="pw-123456!", is_staff=True)
    if group:
        user.groups.add(staff_groups()[group])
    client = Client()
    client.force_login(user)
    assert client.get(FEEDS_URL).status_code == (200 if allowed else 403)
    assert client.post(ROTATE_URL, {"owner": "business"}).status_code == (302 if allowed else 403)
    assert CalendarFeed.objects.exists() == allowed


def test_rotating_is_a_post_for_a_known_active_owner(business):
    client = staff_client("change_booking")
    assert client.get(ROTATE_URL).status_code == 405
    assert client.post(ROTATE_URL, {"owner": "nobody"}).status_code == 404
    assert client.post(ROTATE_URL, {"owner": "999999"}).status_code == 404
    business.carol.active = False
    business.carol.save()
    assert client.post(ROTATE_URL, {"owner": str(business.carol.pk)}).status_code == 404
    assert not CalendarFeed.objects.exists()


# --- SQLite, the make run default --------------------------------------------------------------

SQLITE_SCRIPT = """
from django.test import Client
from icalendar import Calendar
from bookings.calendar_feeds import feed_rotate
from bookings.models import CalendarFeed, Technician
technician = Technician.objects.filter(bookings__isnull=False).first()
for feed in (feed_rotate(technician=None), feed_rotate(technician=technician)):
    response = Client().get(f"/calendar/{feed.token}.ics")
    assert response.status_code == 200, response.status_code
    found = Calendar.from_ical(response.content).walk("VEVENT")
    assert found and all(e["DTSTART"].params["TZID"] for e in found)
    print(feed.kind, len(found))
feed_rotate(technician=None)
print("business feeds", CalendarFeed.objects.filter(kind="business").count())
# The live monitor's query (Exists, Subquery) on SQLite too, both ways of the quiet toggle.
from django.contrib.auth import get_user_model
staff = Client()
staff.force_login(get_user_model().objects.create_superuser("sqlite-admin", password="pw-sqlite-1"))
for quiet in ("0", "1"):
    assert staff.get(f"/staff/live/?quiet={quiet}").status_code == 200
    rows = staff.get(f"/api/v1/staff/conversations/open?quiet={quiet}").json()["conversations"]
    print("monitor rows", quiet, len(rows))
"""


def test_the_feeds_and_the_live_monitor_work_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'feeds.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    manage("migrate", "--no-input")
    manage("seed_demo")
    out = manage("shell", "-c", SQLITE_SCRIPT)
    assert "business " in out and "technician " in out
    assert "business feeds 1" in out
    assert "monitor rows 0 " in out and "monitor rows 1 " in out
