"""The pages' live connections in Chromium: a dropped socket loses no staff reply, and live
updates that are unavailable (Redis down: close code 4503) are said, not fatal.

As in tests/test_chat_page.py, the live server is WSGI without WebSockets, so the page's live
socket is answered in the browser by a stand-in (Playwright's route_web_socket) that speaks like
chatdesk.web.consumers; the history the page fetches is the real API over the real database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, WebSocketRoute, expect

from chatdesk.conversations import live
from tests.browser import DESKTOP, PHONE, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.staff import grant
from tests.test_chat_page import Chat, take_over, wait_until

STATIC = Path(__file__).resolve().parent.parent / "static"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat(business, live_server, chromium: Browser) -> Iterator[Chat]:
    # `business` before `chromium`: DB fixtures must run before Playwright's loop starts.
    context = chromium.new_context(viewport=PHONE)
    yield Chat(context, live_server.url)
    context.close()


def staff_says(session_id: str, text: str) -> dict:
    """A staff reply stored as the staff API stores it; the live event it would publish."""
    from chatdesk.conversations import services
    from chatdesk.conversations.models import Conversation

    conversation = Conversation.objects.get(session_id=session_id)
    message = services.staff_message_send(conversation=conversation, user=conversation.taken_over_by, text=text)
    return {"type": "staff_message", "text": message.text, "at": message.created_at.isoformat()}


def test_a_staff_reply_sent_while_the_page_was_not_listening_is_shown_once_it_reconnects(chat: Chat):
    chat.open().expect_enhanced()
    chat.send("1")
    wait_until(chat.page, lambda: chat.live_sockets)
    session_id = chat.page.locator("#chat").get_attribute("data-session")
    orm(take_over, session_id)
    staff = chat.page.locator("#transcript li.msg.staff .text")

    # Staff answer while the page's socket is about to drop: the event never reaches it.
    event = orm(staff_says, session_id, "Sorry for the wait, Dana here.")
    chat.live_sockets[-1].close(code=1011)
    # The page reconnects (after a second) and fetches what it missed from the history.
    wait_until(chat.page, lambda: len(chat.live_sockets) == 2, timeout=10)
    expect(staff).to_have_text(["Sorry for the wait, Dana here."])
    expect(chat.page.locator("#announcer")).to_contain_text("Staff: Sorry for the wait")

    # The same reply arriving live after all is not shown twice; a new one is.
    chat.live_sockets[-1].send(json.dumps(event))
    chat.live_sockets[-1].send(json.dumps(orm(staff_says, session_id, "Are you still there?")))
    expect(staff).to_have_text(["Sorry for the wait, Dana here.", "Are you still there?"])

    # A reload renders them from the server; the catch-up on connect adds nothing.
    chat.page.reload()
    chat.expect_enhanced()
    wait_until(chat.page, lambda: len(chat.live_sockets) == 3, timeout=10)
    chat.page.wait_for_load_state("networkidle")
    expect(staff).to_have_text(["Sorry for the wait, Dana here.", "Are you still there?"])
    assert chat.console_errors == []


def test_live_updates_unavailable_are_said_and_the_chat_keeps_working_until_they_are_back(chat: Chat):
    chat.open().expect_enhanced()
    chat.send("1")
    wait_until(chat.page, lambda: chat.live_sockets)
    notice = chat.page.locator("#transcript li.notice.live-unavailable")

    chat.live_sockets[-1].close(code=live.LIVE_UNAVAILABLE_CLOSE)
    expect(notice).to_contain_text("Live updates are unavailable right now")
    expect(chat.page.locator("#announcer")).to_contain_text("Live updates are unavailable")
    # The chat goes on through the API.
    reply = chat.send("2")
    expect(reply).not_to_be_empty()
    expect(chat.error).to_be_hidden()

    # The page tries again on its own (every 10 s), and the notice goes once live is back.
    wait_until(chat.page, lambda: len(chat.live_sockets) == 2, timeout=15)
    expect(notice).to_have_count(0)
    assert chat.console_errors == []


def test_the_staff_monitor_says_live_updates_are_unavailable_and_reconnects(live_server, admin_user, chromium):
    sockets: list[WebSocketRoute] = []

    def connected(socket: WebSocketRoute) -> None:
        sockets.append(socket)
        if len(sockets) == 1:
            socket.close(code=live.LIVE_UNAVAILABLE_CLOSE)

    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.route_web_socket("**/api/v1/staff/live", connected)
    page.goto(f"{live_server.url}/admin/login/?next=/staff/live/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/staff/live/")
    status = page.locator("#status")
    expect(status).to_have_text("Live updates unavailable. Retrying…")
    wait_until(page, lambda: len(sockets) == 2, timeout=15)
    expect(status).to_have_text("Live")
    context.close()


# --- the real thing: a daphne process on a Redis that stops and starts -----------------------


@pytest.fixture
def sam(db):
    from django.contrib.auth import get_user_model

    sam = get_user_model().objects.create_user("sam", password="dispatch-pass-123", is_staff=True)
    return grant(sam, "chatdesk.view_conversation", "chatdesk.take_over_conversation")


def test_through_a_real_outage_the_page_says_so_and_gets_the_reply_it_missed(
    sam, server_on_private_redis, private_redis, chromium: Browser
):
    host, log = server_on_private_redis
    base = f"http://{host}"
    customer = chromium.new_context(viewport=PHONE)
    page = customer.new_page()
    # Reconnects pass through to the server once `gate` opens; until then they are refused as
    # the server refuses them while Redis is down. So the staff reply below is surely sent
    # while the page is not listening, however the timing of the restart falls.
    gate = {"open": True}
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:
        sockets.append(socket)
        if gate["open"]:
            socket.connect_to_server()
        else:
            socket.close(code=live.LIVE_UNAVAILABLE_CLOSE)

    page.route_web_socket("**/api/v1/chat/live", through)
    page.route("**/static/**", lambda route: route.fulfill(path=STATIC / route.request.url.split("/static/", 1)[1]))
    page.goto(base + "/")
    expect(page.locator("#chat")).to_have_attribute("data-enhanced", "true")
    page.locator("#message").fill("1")
    page.locator("#send").click()
    expect(page.locator("#transcript li.msg.assistant .text").nth(1)).to_be_visible()
    session_id = page.locator("#chat").get_attribute("data-session")
    number = customer.request.get(f"{base}/api/v1/chat/session/{session_id}/history").json()["conversation_number"]

    staff = chromium.new_context(viewport=DESKTOP)
    staff_page = staff.new_page()
    staff_page.goto(f"{base}/admin/login/?next=/admin/")
    staff_page.fill("#id_username", "sam")
    staff_page.fill("#id_password", "dispatch-pass-123")
    staff_page.click("input[type=submit]")
    staff_page.wait_for_url(f"{base}/admin/")
    token = next(c["value"] for c in staff.cookies() if c["name"] == "csrftoken")
    headers = {"X-CSRFToken": token, "Origin": base}
    api = f"{base}/api/v1/staff/conversations/{number}"
    assert staff.request.post(f"{api}/takeover", headers=headers).status == 200
    notices = page.locator("#transcript li.notice")
    expect(notices.last).to_contain_text("A member of our team has joined")

    gate["open"] = False
    private_redis.stop()
    expect(page.locator("#transcript li.notice.live-unavailable")).to_contain_text("Live updates are unavailable")
    refused = staff.request.post(f"{api}/messages", headers=headers, data={"text": "Hello?"})
    assert refused.status == 503 and refused.json()["error"] == "live_unavailable"
    # The customer can still write; the message is stored and waits for staff.
    page.locator("#message").fill("Is anyone there?")
    page.locator("#send").click()
    expect(page.locator("#transcript li.msg.customer .text").last).to_have_text("Is anyone there?")
    expect(page.locator("#error")).to_be_hidden()

    private_redis.start()
    deadline = time.monotonic() + 15
    while (
        said := staff.request.post(f"{api}/messages", headers=headers, data={"text": "Yes, Sam here."})
    ).status != 201:
        assert time.monotonic() < deadline, said.text()
        page.wait_for_timeout(500)
    gate["open"] = True

    # The page's next try (every 10 s) connects, fetches the history and shows the reply once.
    staff_replies = page.locator("#transcript li.msg.staff .text")
    expect(staff_replies).to_have_text(["Yes, Sam here."], timeout=25_000)
    expect(page.locator("#transcript li.notice.live-unavailable")).to_have_count(0)
    # And live again: the next reply arrives over the socket.
    assert staff.request.post(f"{api}/messages", headers=headers, data={"text": "Still here."}).status == 201
    expect(staff_replies).to_have_text(["Yes, Sam here.", "Still here."])
    # Said once per outage, and once back nothing failed on the dead connections Redis's
    # restart left in the pools (that would be a second outage in the log).
    log.seek(0)
    logged = log.read().decode(errors="replace")
    assert logged.count("Live updates unavailable") == 1, logged[-3000:]
    assert logged.count("Live updates are back") == 1, logged[-3000:]
    staff.close()
    customer.close()
