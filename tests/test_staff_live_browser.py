"""The live monitor page in Chromium, as staff with different permissions see it.

Staff who may view conversations but not take them over watch only: no takeover controls,
whatever the API says about the conversation. Contact details and costs follow their
permissions on the page as in the API. As in tests/test_live_pages.py, the live server is
WSGI without WebSockets, so the staff socket is a stand-in in the browser that pushes what
StaffLiveConsumer would push to that member (the summary through their Visibility); the page
and the transcript are the real server's.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db.models import F
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from chatdesk.conversations import access, live
from chatdesk.conversations.models import Conversation
from tests.browser import DESKTOP, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.staff import grant, staff_groups
from tests.test_conversation_admin import converse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def pushed_summary(username: str, number: str) -> str:
    """The summary StaffLiveConsumer pushes to `username` after a new message."""
    # The consumer pushes after the message is stored: the page's refresh from the API that
    # follows a push must read the same count.
    Conversation.objects.filter(number=number).update(message_count=F("message_count") + 1)
    conversation = Conversation.objects.get(number=number)
    seen = access.Visibility.of(get_user_model().objects.get(username=username))
    return json.dumps({"type": "summary", "conversation": number, **seen.present(live.summary(conversation))})


@pytest.fixture
def open_conversation(business) -> Conversation:
    conversation = converse(business)
    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.OPEN, ended_at=None)
    users = get_user_model().objects
    grant(users.create_user("watcher", password="pw-watcher-1", is_staff=True), "chatdesk.view_conversation")
    users.create_user("owner", password="pw-owner-1", is_staff=True).groups.add(staff_groups()["Owner"])
    return conversation


def monitor(browser: Browser, live_server, username: str, number: str) -> tuple[Page, list[WebSocketRoute]]:
    """The live page as `username`, with `number` opened; the stand-in sockets it connected."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    sockets: list[WebSocketRoute] = []
    page.route_web_socket("**/api/v1/staff/live", lambda socket: sockets.append(socket))
    page.goto(f"{live_server.url}/admin/login/?next=/staff/live/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/staff/live/")
    page.click(f'tr[data-number="{number}"]')
    expect(page.locator("#transcript li").first).to_be_visible()
    page.wait_for_function("document.getElementById('status').textContent === 'Live'")
    return page, sockets


def test_staff_who_may_only_watch_see_no_takeover_and_no_contact_details(live_server, open_conversation, chromium):
    page, sockets = monitor(chromium, live_server, "watcher", open_conversation.number)
    expect(page.locator("#transcript")).to_contain_text("call me at •••")
    expect(page.locator("#transcript")).not_to_contain_text("416-555-0142")
    expect(page.locator("#takeover")).to_be_hidden()
    expect(page.locator("#release")).to_be_hidden()
    expect(page.locator("#reply")).to_be_hidden()
    row = page.locator(f'tr[data-number="{open_conversation.number}"]')
    expect(row.locator("td.cost")).to_have_text("–")  # as the server rendered it
    sockets[-1].send(orm(pushed_summary, "watcher", open_conversation.number))
    expect(row.locator("td.count")).to_have_text(str(open_conversation.message_count + 1))
    expect(row.locator("td.cost")).to_have_text("–")  # as the page redraws it from a push


def test_an_owner_can_take_over_and_sees_everything(live_server, open_conversation, chromium):
    page, sockets = monitor(chromium, live_server, "owner", open_conversation.number)
    expect(page.locator("#transcript")).to_contain_text("call me at 416-555-0142")
    row = page.locator(f'tr[data-number="{open_conversation.number}"]')
    expect(row.locator("td.cost")).to_contain_text("$")
    sockets[-1].send(orm(pushed_summary, "owner", open_conversation.number))
    expect(row.locator("td.count")).to_have_text(str(open_conversation.message_count + 1))
    expect(row.locator("td.cost")).to_contain_text("$")
    expect(page.locator("#takeover")).to_be_visible()
    page.click("#takeover")
    expect(page.locator("#reply")).to_be_visible()
    expect(page.locator("#release")).to_be_visible()
