"""The dispatch board in headless Chromium, at 1,280 px and at 390 px, as a dispatcher uses it:
read the day, click a free slot to book it, move a visit, all with plain links and forms.

Screenshots go to /tmp/board_*.png. The pages run under the real CSP: a violation shows in
the console and fails the test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from bookings.models import Booking, BookingEvent, CalendarEvent
from bookings.selectors import available_slots, local_today
from bookings.services import Actor, booking_create
from tests.browser import DESKTOP, PHONE, chromium_fixture, orm  # noqa: F401  (registers `chromium`)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def busy_day(business) -> dict:
    """Next Tuesday: two visits for Alice, one for Bob, and Bob's afternoon off."""
    today = local_today()
    day = today + timedelta(days=(1 - today.weekday()) % 7 or 7)
    slots = available_slots(service=business.repair, start_date=day, technician_id=business.alice.pk)
    made = []
    for i, slot in enumerate((slots[0], slots[-1])):
        made.append(
            booking_create(
                service=business.repair,
                start=slot.start,
                technician=business.alice,
                customer_name=f"Customer {i}",
                customer_phone=f"416-555-01{i}0",
                address="1 King St",
                channel="chat",
                actor=Actor.system(),
            )
        )
    bob = available_slots(service=business.repair, start_date=day, technician_id=business.bob.pk)[0]
    made.append(
        booking_create(
            service=business.repair,
            start=bob.start,
            technician=business.bob,
            customer_name="Customer B",
            customer_phone="416-555-0190",
            address="2 King St",
            channel="voice",
            actor=Actor.system(),
        )
    )
    CalendarEvent.objects.create(
        technician=business.bob,
        title="Dentist",
        start=bob.start + timedelta(hours=4),
        end=bob.start + timedelta(hours=6),
    )
    return {"day": day, "bookings": made, "service": business.repair.pk}


def open_board(
    browser: Browser, live_server, viewport: dict, path: str, *, javascript: bool = True
) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport=viewport, java_script_enabled=javascript)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Dispatch board").first.click()
    expect(page.locator("table.board")).to_be_visible()
    page.goto(live_server.url + path)
    return page, problems


def csp_problems(problems: list[str]) -> list[str]:
    return [p for p in problems if "Content Security Policy" in p or "Refused" in p]


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def board_scrolls(page: Page) -> bool:
    return page.locator(".board-scroll").evaluate("e => e.scrollWidth > e.clientWidth")


def test_the_board_fits_at_1280_and_books_a_free_slot(live_server, admin_user, busy_day, chromium):
    day = busy_day["day"].isoformat()
    page, problems = open_board(chromium, live_server, DESKTOP, f"/admin/bookings/booking/board/?day={day}")
    expect(page.locator("td.k-booking")).to_have_count(3)
    expect(page.locator("td.k-booking.st-confirmed").first).to_be_visible()
    expect(page.locator("td.k-event")).to_have_count(1)
    expect(page.locator("td.k-buffer").first).to_be_visible()
    # At 1,280 px, beside the admin's navigation, the whole day fits: no scrolling at all.
    assert page_width(page) <= DESKTOP["width"] and not board_scrolls(page)
    page.screenshot(path="/tmp/board_day_1280.png", full_page=True)

    # Pick a service: its free slots become links to Add booking, filled in. With JavaScript
    # the choice applies at once (static/dispatch-board.js), so there is no Show button.
    expect(page.get_by_role("button", name="Show")).to_be_hidden()
    with page.expect_navigation():
        page.select_option("#id_service", str(busy_day["service"]))
    assert f"service={busy_day['service']}" in page.url
    slot = page.locator("td.k-slot a").first
    expect(slot).to_be_visible()
    slot.click()
    expect(page.locator("input[name=slot]:checked")).to_have_count(1)
    page.fill("#id_customer_name", "Walk In")
    page.fill("#id_customer_phone", "416 555 0177")
    page.fill("#id_address", "5 Queen St")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("added successfully")
    assert orm(Booking.objects.filter(customer__name="Walk In").count) == 1

    page.goto(f"{live_server.url}/admin/bookings/booking/board/?day={day}&view=week")
    expect(page.locator("table.board-week")).to_be_visible()
    expect(page.locator("table.board-week li.st-confirmed")).to_have_count(4)
    assert page_width(page) <= DESKTOP["width"] and not board_scrolls(page)
    page.screenshot(path="/tmp/board_week_1280.png", full_page=True)
    assert not csp_problems(problems), problems


def test_the_board_is_usable_at_390_without_javascript_and_moves_a_visit(live_server, admin_user, busy_day, chromium):
    day = busy_day["day"].isoformat()
    page, problems = open_board(
        chromium, live_server, PHONE, f"/admin/bookings/booking/board/?day={day}", javascript=False
    )
    # Without JavaScript the settings are a plain form with its Show button.
    page.select_option("#id_view", "week")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("table.board-week")).to_be_visible()
    page.goto(f"{live_server.url}/admin/bookings/booking/board/?day={day}")
    # The grid scrolls inside its box; the page itself does not scroll sideways.
    assert board_scrolls(page)
    assert page_width(page) <= PHONE["width"]
    page.screenshot(path="/tmp/board_day_390.png", full_page=True)

    page.locator("td.k-booking a.move").first.click()
    expect(page.locator("h1")).to_contain_text("Move booking")
    page.get_by_role("button", name="Show free slots").click()
    choices = page.locator("input[name=slot]")
    expect(choices.first).to_be_visible()
    choices.nth(1).check()
    page.fill("#id_reason", "Customer asked")
    page.get_by_role("button", name="Move booking").click()
    expect(page.locator(".messagelist")).to_contain_text("Moved")
    first = busy_day["bookings"][0]
    assert (
        orm(lambda: BookingEvent.objects.filter(booking=first, kind="rescheduled", note="Customer asked").count()) == 1
    )
    page.screenshot(path="/tmp/board_moved_390.png", full_page=True)
    assert not csp_problems(problems), problems
