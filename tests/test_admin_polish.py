"""Admin polish (issue 12): the bookings list's order and default, internal models out of
staff's index, the latency axis, and lists and links that fit at 1280 px (in Chromium).

The page checks are plain functions so they run twice: in pytest on PostgreSQL, and in a
subprocess on a fresh SQLite file, `make run`'s default (test_the_pages_on_sqlite).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, expect

from bookings.models import Booking, BookingStatus, Customer, Service, Technician, Trade
from bookings.selectors import business_tz, local_today
from chatdesk.backoffice.charts import line_chart, seconds, step_places
from chatdesk.conversations.models import Conversation, Message
from tests.browser import DESKTOP, chromium_fixture  # noqa: F401  (registers `chromium`)
from tests.staff import staff_groups
from tests.test_conversation_admin import converse

ROOT = Path(__file__).resolve().parent.parent
LIST = "/admin/bookings/booking/"


# --- the pages' checks, shared by both databases ----------------------------------------------


def make_bookings() -> dict[str, str]:
    """Bookings around now, by what the list should do with them: {role: booking number}."""
    trade = Trade.objects.create(name="Polish Trade", slug="polish-trade")
    service = Service.objects.create(
        trade=trade, name="Polish Service", slug="polish-service", duration_minutes=60, price_min=Decimal("100")
    )
    technician = Technician.objects.create(first_name="Pia", last_name="Polish")
    customer = Customer.objects.create(name="Quinn Polish", phone="+14165550311")
    now = timezone.now()
    plan = {
        "past": (now - timedelta(days=2), BookingStatus.COMPLETED),
        "yesterday": (now - timedelta(days=1), BookingStatus.CONFIRMED),
        "under_way": (now - timedelta(minutes=30), BookingStatus.CONFIRMED),
        "day_after": (now + timedelta(days=2), BookingStatus.PENDING),
        "tomorrow": (now + timedelta(days=1), BookingStatus.CONFIRMED),
        "cancelled": (now + timedelta(days=1, hours=2), BookingStatus.CANCELLED),
    }
    numbers = {}
    for i, (role, (start, status)) in enumerate(plan.items()):
        end = start + timedelta(hours=1)
        booking = Booking.objects.create(
            number=f"BK-2026-7{i:05d}",
            service=service,
            technician=technician,
            customer=customer,
            start=start,
            end=end,
            occupied_start=start,
            occupied_end=end,
            status=status,
            estimated_price_min=service.price_min,
            address="1 Main St",
            channel="chat",
        )
        numbers[role] = booking.number
    return numbers


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(LIST + query)
    assert response.status_code == 200, response.status_code
    return [booking.number for booking in response.context["cl"].result_list]


def check_bookings_list(client: Client, numbers: dict[str, str]) -> None:
    n = numbers
    # By default: active visits not over yet, soonest first (the one under way at the top).
    assert listed(client) == [n["under_way"], n["tomorrow"], n["day_after"]]
    page = client.get(LIST).content.decode()
    assert re.search(r'<li class="selected">\s*<a href="\?show=upcoming"[^>]*>Upcoming, active</a>', page)
    # All: what is not over yet first, soonest first; then the past, latest first.
    assert listed(client, "?show=all") == [
        n["under_way"],
        n["tomorrow"],
        n["cancelled"],
        n["day_after"],
        n["yesterday"],
        n["past"],
    ]
    assert listed(client, "?show=upcoming") == listed(client)
    # Narrowing the list yourself sets the default aside: old and cancelled bookings are found.
    assert listed(client, f"?q={n['past']}") == [n["past"]]
    assert listed(client, "?status__exact=cancelled") == [n["cancelled"]]
    assert listed(client, "?visit=past")[-2:] == [n["yesterday"], n["past"]]
    assert listed(client, "?status__exact=confirmed&show=upcoming") == [n["under_way"], n["tomorrow"]]
    # A column header still sorts the whole list.
    assert listed(client, "?show=all&o=2")[0] == n["past"]


def make_fast_replies() -> None:
    """Today's replies of 12 to 48 ms: an axis of hundredths of a second."""
    tz = business_tz()
    at = datetime.combine(local_today(), time(0, 5), tzinfo=tz)
    conversation = Conversation.objects.create(number="INT-2026-77001", channel="text")
    Conversation.objects.filter(pk=conversation.pk).update(started_at=at, last_activity_at=at)
    for latency in (12, 30, 48):
        message = Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT, text="ok", latency_ms=latency, channel="text"
        )
        Message.objects.filter(pk=message.pk).update(created_at=at)


def latency_ticks(client: Client) -> list[str]:
    response = client.get("/admin/chatdesk/conversation/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    chart = page[page.index('aria-label="Reply latency (seconds)"') :]
    chart = chart[: chart.index("</svg>")]
    return re.findall(r'<text class="tick" x="\d+" y="[\d.]+" text-anchor="end" font-size="11">([^<]+)</text>', chart)


def check_latency_axis(client: Client) -> None:
    ticks = latency_ticks(client)
    assert ticks == ["0.00 s", "0.01 s", "0.02 s", "0.03 s", "0.04 s", "0.05 s"], ticks


INTERNAL = ("Yearly counters", "Booking events")


def check_index(superuser: Client, dispatcher: Client) -> None:
    mine = dispatcher.get("/admin/").content.decode()
    assert "Bookings" in mine and "Customers" in mine
    for name in INTERNAL:
        assert name not in mine
    everything = superuser.get("/admin/").content.decode()
    for name in INTERNAL:
        assert name in everything
    # Only left out of the index: a booking's audit trail is still there to read.
    assert dispatcher.get("/admin/bookings/bookingevent/").status_code == 200


def clients() -> tuple[Client, Client]:
    """A superuser's client and a Dispatcher's (the group as the migrations make it)."""
    users = get_user_model().objects
    superuser, dispatcher = Client(), Client()
    superuser.force_login(users.create_superuser("polish-admin", "a@example.com", "pw-polish-admin-1"))
    member = users.create_user("polish-dispatch", password="pw-polish-dispatch-1", is_staff=True)
    member.groups.add(Group.objects.get(name="Dispatcher"))
    dispatcher.force_login(member)
    return superuser, dispatcher


# --- on PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def staff(db) -> tuple[Client, Client]:
    staff_groups()
    return clients()


def test_bookings_list_opens_on_upcoming_active_bookings_soonest_first(staff):
    superuser, dispatcher = staff
    numbers = make_bookings()
    check_bookings_list(superuser, numbers)
    check_bookings_list(dispatcher, numbers)


def test_internal_models_are_left_out_of_the_index_for_staff(staff):
    check_index(*staff)


def test_the_latency_axis_tells_fast_replies_apart(staff):
    make_fast_replies()
    check_latency_axis(staff[0])


@pytest.mark.parametrize(
    "step,places",
    [(5, 0), (1, 0), (2.5, 1), (0.5, 1), (0.2, 1), (0.05, 2), (0.025, 3), (0.01, 2), (2e-5, 5)],
)
def test_step_places(step, places):
    assert step_places(step) == places


def test_latency_ticks_follow_their_step_and_tooltips_keep_their_precision():
    day = local_today()
    slow = line_chart("slow", [day], [("p50", "s-p50", [3.2])], fmt=seconds, tick_fmt=lambda v, p: seconds(v, p))
    # Ticks 0, 1, 2, 3, 4 need no decimals; the tooltip keeps fmt's.
    assert ">0 s<" in slow and ">4 s<" in slow and ">4.0 s<" not in slow
    assert "p50 3.2 s" in slow
    # Without tick_fmt the ticks use fmt, as before.
    plain = line_chart("plain", [day], [("p50", "s-p50", [3.2])], fmt=seconds)
    assert ">4.0 s<" in plain


# --- on SQLite, make run's default ---------------------------------------------------------------


def test_the_pages_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "1",
        "OPENAI_API_KEY": "",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    script = textwrap.dedent(
        """
        from django.test.utils import setup_test_environment
        setup_test_environment()  # responses carry their context, as in pytest
        from tests import test_admin_polish as t
        superuser, dispatcher = t.clients()
        t.check_bookings_list(dispatcher, t.make_bookings())
        t.check_index(superuser, dispatcher)
        t.make_fast_replies()
        t.check_latency_axis(superuser)
        print("sqlite ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sqlite ok" in done.stdout


# --- in Chromium, at 1280 px ---------------------------------------------------------------------


@pytest.fixture
def many_bookings(business) -> None:
    """Full lists: twenty upcoming bookings with long names, so columns would squeeze, and conversations."""
    staff_groups()
    converse(business, handoff=True)
    converse(business, name="Maximilian Featherstonehaugh", phone="416-555-0188", channel="voice")
    get_user_model().objects.create_superuser("admin", "admin@example.com", "password")
    make_bookings()
    booking = Booking.objects.get(number="BK-2026-700004")
    customer = Customer.objects.create(name="Alexandrina Montgomery-Vanderbilt", phone="+14165550399")
    for i in range(20):
        start = booking.start + timedelta(hours=3 + i)
        Booking.objects.create(
            number=f"BK-2026-71{i:04d}",
            service=booking.service,
            technician=booking.technician,
            customer=customer,
            start=start,
            end=start + timedelta(hours=1),
            occupied_start=start,
            occupied_end=start + timedelta(hours=1),
            status=BookingStatus.CONFIRMED,
            estimated_price_min=Decimal("1250"),
            address="1 Main St",
            channel="voice",
        )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_lists_fit_and_links_do_not_break_at_1280px(many_bookings, live_server, chromium: Browser):
    page = chromium.new_context(viewport=DESKTOP).new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")

    # The back office's links read as words: one line box each, never "Dashb" / "oard".
    links = page.locator(".back-office a")
    expect(links.first).to_be_visible()
    for i in range(links.count()):
        lines = links.nth(i).evaluate("a => a.getClientRects().length")
        assert lines == 1, links.nth(i).inner_text()

    for path in (LIST, LIST + "?show=all", "/admin/chatdesk/conversation/"):
        page.goto(live_server.url + path)
        fits = page.evaluate(
            """() => {
                const table = document.querySelector('#result_list');
                const box = table.closest('.results') || table.parentElement;
                return {table: table.scrollWidth, box: box.clientWidth, page: document.documentElement.scrollWidth};
            }"""
        )
        page.screenshot(path=f"/tmp/admin_list_{path.strip('/').replace('/', '_').replace('?', '_')}.png")
        assert fits["table"] <= fits["box"], (path, fits)
        assert fits["page"] <= DESKTOP["width"], (path, fits)


def test_actions_apply_to_the_rows_picked_and_select_all_to_what_the_default_showed(staff):
    superuser, _ = staff
    n = make_bookings()
    past = Booking.objects.get(number=n["past"])
    # Picked one by one: a booking the default hides is still acted on (here, refused by name).
    response = superuser.post(LIST, {"action": "confirm", "_selected_action": [past.pk]}, follow=True)
    assert f"Booking {past.number} is completed" in response.content.decode()
    # "Select all" from the default view means the rows it showed: the pending one is confirmed,
    # and the past and cancelled ones are not even tried.
    pks = list(Booking.objects.values_list("pk", flat=True))
    response = superuser.post(
        LIST, {"action": "confirm", "select_across": "1", "_selected_action": pks[:1]}, follow=True
    )
    page = response.content.decode()
    assert "Confirmed 1 booking(s)." in page
    assert n["past"] not in page.split("messagelist")[1].split("</ul>")[0]
    assert Booking.objects.get(number=n["day_after"]).status == BookingStatus.CONFIRMED
    assert Booking.objects.get(number=n["cancelled"]).status == BookingStatus.CANCELLED
