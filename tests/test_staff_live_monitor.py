"""The live monitor's rows (issue 12): who (when staff may see it), last activity, who wants a
person, quiet greeting-only conversations hidden by default; linked from the admin; and in
Chromium, kept current from the staff API and fitting at 1,280 px."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, WebSocketRoute, expect

from bookings.models import Customer
from chatdesk.conversations.models import Conversation, HandoffRequest
from chatdesk.conversations.selectors import QUIET_AFTER
from tests.browser import DESKTOP, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.conftest import MONDAY_NOON_UTC
from tests.test_chat_page import wait_until

OPEN_API = "/api/v1/staff/conversations/open"


def start(client: Client | None = None) -> tuple[Client, str, Conversation]:
    client = client or Client()
    session_id = client.post("/api/v1/chat/session/new").json()["session_id"]
    return client, session_id, Conversation.objects.get(session_id=session_id)


def say(client: Client, session_id: str, text: str) -> None:
    response = client.post(
        "/api/v1/chat/message", json.dumps({"session_id": session_id, "message": text}), content_type="application/json"
    )
    assert response.status_code == 200, response.content


def named(conversation: Conversation, name: str) -> Conversation:
    customer = Customer.objects.create(name=name, phone=f"+1416555{Customer.objects.count():04d}")
    Conversation.objects.filter(pk=conversation.pk).update(customer=customer)
    return conversation


def staff(*perms: str, username: str = "dispatch") -> Client:
    user = get_user_model().objects.create_user(username, password="pw-123456!", is_staff=True)
    # The monitor's door (chatdesk.conversations.access.VIEW_CONVERSATIONS), and what the test adds.
    for codename in {"view_conversation", *perms}:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def listed(client: Client, **params: str) -> dict:
    response = client.get(OPEN_API, params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    return time_machine


@pytest.mark.django_db
class TestRows:
    def test_the_customers_name_is_shown_as_at_every_other_staff_door_and_contact_details_are_not(
        self, business, clock
    ):
        # One rule (chatdesk.conversations.access): names to whoever may view conversations,
        # contact details only with view_customer_pii (the
        # monitor's rows carry none).
        _, _, conversation = start()
        named(conversation, "Dana Lopez")
        pii = listed(staff("view_customer_pii"))["conversations"][0]
        assert pii["customer_name"] == "Dana Lopez"
        plain = staff(username="plain")
        row = listed(plain)["conversations"][0]
        assert row["customer_name"] == "Dana Lopez"
        page = plain.get("/staff/live/").content.decode()
        assert "Dana Lopez" in page

    def test_without_a_customer_the_name_given_for_a_call_back_is_used(self, business, clock):
        _, _, conversation = start()
        HandoffRequest.objects.create(conversation=conversation, reason="Call me", contact_name="Sam Reyes")
        row = listed(staff("view_customer_pii"))["conversations"][0]
        assert (row["customer_name"], row["wants_person"]) == ("Sam Reyes", True)

    def test_no_name_at_all_reads_as_a_dash(self, business, clock):
        start()
        client = staff("view_customer_pii")
        assert listed(client)["conversations"][0]["customer_name"] == ""
        assert '<span class="name">–</span>' in client.get("/staff/live/").content.decode()

    def test_an_open_handoff_flags_the_row_and_lists_it_first(self, business, clock):
        _, _, waiting = start()
        clock.shift(timedelta(minutes=1))
        _, _, handled = start()
        HandoffRequest.objects.create(conversation=waiting, reason="Call me")
        HandoffRequest.objects.create(conversation=handled, reason="Done", handled_at=timezone.now())
        clock.shift(timedelta(minutes=1))
        _, _, latest = start()
        client = staff()
        rows = listed(client)["conversations"]
        # Waiting for a person first, then the most recently active.
        assert [(r["number"], r["wants_person"]) for r in rows] == [
            (waiting.number, True),
            (latest.number, False),
            (handled.number, False),
        ]
        page = client.get("/staff/live/").content.decode()
        assert page.count("Wants a person") == 1
        assert f'<tr data-number="{waiting.number}" tabindex="0" class="wants-person">' in page

    @pytest.mark.django_db(transaction=True)  # the chat API writes on its own thread's connection
    def test_the_last_activity_is_shown_in_business_time(self, business, clock):
        customer, session_id, _ = start()
        clock.shift(timedelta(minutes=5))
        say(customer, session_id, "hello")
        row = listed(staff())["conversations"][0]
        assert row["last_activity_short"] == "08:05"  # Toronto; 13:05 UTC
        assert row["last_activity_local"] == "Mon 2026-11-16 08:05 EST"
        page = staff(username="other").get("/staff/live/").content.decode()
        assert f'<time datetime="{row["last_activity_at"]}" title="Mon 2026-11-16 08:05 EST">08:05</time>' in page
        clock.shift(timedelta(days=1))
        assert listed(staff(username="third"))["conversations"][0]["last_activity_short"] == "Mon 16 Nov 08:05"

    def test_the_rows_take_the_same_queries_however_many(self, business, clock, django_assert_max_num_queries):
        client = staff()
        start()
        client.get(OPEN_API)  # the session and the user are read once before
        with django_assert_max_num_queries(8) as few:
            listed(client)
        # Counted now: every request resets Django's query log.
        count = len(few.captured_queries)
        for _ in range(4):
            _, _, conversation = start()
            HandoffRequest.objects.create(conversation=conversation, reason="Call me", contact_name="Sam")
            named(conversation, "Dana Lopez")
        with django_assert_max_num_queries(count):
            assert len(listed(client)["conversations"]) == 5


@pytest.mark.django_db(transaction=True)  # the chat API writes on its own thread's connection
class TestQuiet:
    @pytest.fixture
    def conversations(self, business, clock):
        customer, session_id, spoke = start()
        say(customer, session_id, "hello")
        _, _, greeted = start()
        _, _, waiting = start()
        HandoffRequest.objects.create(conversation=waiting, reason="Call me")
        _, _, taken = start()
        user = get_user_model().objects.create_user("taker", is_staff=True)
        Conversation.objects.filter(pk=taken.pk).update(taken_over_by=user)
        clock.shift(QUIET_AFTER + timedelta(seconds=1))
        _, _, fresh = start()
        return {"spoke": spoke, "greeted": greeted, "waiting": waiting, "taken": taken, "fresh": fresh}

    def test_stale_greeting_only_conversations_are_hidden_by_default(self, conversations):
        client = staff()
        data = listed(client)
        shown = {r["number"] for r in data["conversations"]}
        greeted = conversations.pop("greeted").number
        assert shown == {i.number for i in conversations.values()}
        assert (data["hidden_quiet"], data["include_quiet"]) == (1, False)
        page = client.get("/staff/live/").content.decode()
        assert greeted not in page
        assert '<a href="?quiet=1">Show 1 quiet conversation</a>' in page

    def test_the_toggle_shows_them(self, conversations):
        client = staff()
        data = listed(client, quiet="1")
        assert {r["number"] for r in data["conversations"]} == {i.number for i in conversations.values()}
        assert (data["hidden_quiet"], data["include_quiet"]) == (0, True)
        page = client.get("/staff/live/?quiet=1").content.decode()
        assert conversations["greeted"].number in page
        assert '<a href="?quiet=0">Hide quiet conversations</a>' in page
        assert 'data-quiet="1"' in page

    def test_no_toggle_when_nothing_is_hidden(self, business, clock):
        start()
        page = staff().get("/staff/live/").content.decode()
        assert "quiet=1" not in page and "Hide quiet" not in page

    def test_a_bad_toggle_is_a_clear_400(self, business):
        client = staff()
        response = client.get(OPEN_API, {"quiet": "maybe"})
        assert response.status_code == 400
        assert response.json()["error"] and "quiet must be 0 or 1" in json.dumps(response.json())
        page = client.get("/staff/live/?quiet=maybe")
        assert page.status_code == 400 and b"quiet must be 0 or 1" in page.content


@pytest.mark.django_db
def test_the_admin_links_to_the_live_monitor(business):
    client = staff()
    assert 'href="/staff/live/"' in client.get("/admin/").content.decode()


# --- in Chromium --------------------------------------------------------------------------------


def busy_monitor() -> list[str]:
    """Open conversations with long names, handoffs, bookings and costs: the widest rows."""
    numbers = []
    for index in range(6):
        _, _, conversation = start()
        named(conversation, f"Maximilian-Alexander Wolfeschlegelsteinhausen {index}")
        Conversation.objects.filter(pk=conversation.pk).update(booking_count=12, message_count=148)
        if index % 2:
            HandoffRequest.objects.create(conversation=conversation, reason="Call me")
        numbers.append(conversation.number)
    return numbers


def log_in(page, url: str) -> None:
    page.goto(f"{url}/admin/login/?next=/staff/live/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/staff/live/")


def fits(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "e => e.scrollWidth <= e.clientWidth")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_monitor_fits_at_1280_and_keeps_its_rows_current(business, admin_user, live_server, chromium: Browser):
    numbers = orm(busy_monitor)
    sockets: list[WebSocketRoute] = []
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route_web_socket("**/api/v1/staff/live", lambda socket: sockets.append(socket))
    log_in(page, live_server.url)
    errors.clear()  # the admin login page's own /favicon.ico 404 is not this page's
    expect(page.locator("#conversations tr[data-number]")).to_have_count(6)
    expect(page.locator("#conversations tr.wants-person")).to_have_count(3)
    assert fits(page, "html") and fits(page, ".list")

    # With a conversation open beside the list, still no sideways scrolling.
    page.locator(f'tr[data-number="{numbers[0]}"]').click()
    expect(page.locator("#detail")).to_be_visible()
    assert fits(page, "html") and fits(page, ".list")
    assert page.eval_on_selector(".list table", "t => t.getBoundingClientRect().right") <= DESKTOP["width"]

    # A new conversation asks for a person: the socket says something changed, and the row
    # comes from the staff API, with its name and flag.
    def newcomer() -> str:
        _, _, conversation = start()
        named(conversation, "Priya Natarajan")
        HandoffRequest.objects.create(conversation=conversation, reason="Call me", urgent=True)
        return conversation.number

    number = orm(newcomer)
    wait_until(page, lambda: sockets)
    sockets[-1].send(json.dumps({"type": "summary", "number": number, "status": "open"}))
    new_row = page.locator(f'tr[data-number="{number}"]')
    expect(new_row).to_contain_text("Priya Natarajan")
    expect(new_row).to_contain_text("Wants a person")
    expect(page.locator("#conversations tr.wants-person")).to_have_count(4)
    # Still in the order the server gives: waiting for a person first.
    assert page.locator("#conversations tr").first.get_attribute("data-number") == number
    assert fits(page, "html") and fits(page, ".list")
    assert errors == []  # no script or CSP errors, no missing resource
    context.close()
