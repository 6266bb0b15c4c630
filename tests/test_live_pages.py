"""The pages' live connections in Chromium: a dropped socket loses no staff reply, and live
updates that are unavailable (Redis down: close code 4503) are said, not fatal.

As in tests/test_chat_page.py, the live server is WSGI without WebSockets, so the page's live
socket is answered in the browser by a stand-in (Playwright's route_web_socket) that speaks like
chatdesk.web.consumers; the history the page fetches is the real API over the real database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, WebSocketRoute, expect

from chatdesk.conversations import live
from tests.browser import DESKTOP, PHONE, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.test_chat_page import Chat, take_over, wait_until

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
    from chatdesk.conversations.models import Interaction

    interaction = Interaction.objects.get(session_id=session_id)
    message = services.staff_message_send(interaction=interaction, user=interaction.taken_over_by, text=text)
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
