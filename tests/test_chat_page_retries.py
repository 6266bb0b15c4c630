"""static/chat.js names each message and resends it once, with the same id, when it fails
on the way (network, 5xx, 503): the server stores it once and the page shows one reply. A
server that is restarting (503 server_draining) is tried again a few more times.

Headless Chromium against the live server (guided flow); the first request's fate is set
by Playwright's routing: its answer lost after the server handled it, or a 503.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route, expect

from chatdesk.conversations.models import Message
from tests.browser import PHONE, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.test_chat_page import Chat

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(name="chat")
def chat_fixture(business, live_server, chromium: Browser) -> Iterator[Chat]:
    # `business` before `chromium`: DB fixtures must run before Playwright's loop starts.
    context = chromium.new_context(viewport=PHONE)
    yield Chat(context, live_server.url)
    context.close()


def customer_messages(text: str) -> int:
    return Message.objects.filter(role="customer", text=text).count()


def test_a_reply_lost_on_the_way_is_fetched_again_with_the_same_id(chat: Chat):
    chat.open().expect_enhanced()
    sent: list[dict] = []

    def lose_the_first_answer(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        if len(sent) == 1:
            route.fetch()  # the server stores and answers it...
            route.abort("connectionreset")  # ...and the answer never arrives
        else:
            route.continue_()

    chat.page.route("**/api/v1/chat/message", lose_the_first_answer)
    reply = chat.send("1")
    expect(reply).to_contain_text("Which service do you need?")
    expect(chat.replies).to_have_count(2)  # the greeting and one reply
    expect(chat.error).to_be_hidden()
    assert len(sent) == 2
    assert sent[0]["message_id"] == sent[1]["message_id"]
    assert UUID.match(sent[0]["message_id"])
    assert orm(customer_messages, "1") == 1


def test_a_503_is_retried_once_after_its_retry_after(chat: Chat):
    chat.open().expect_enhanced()
    sent: list[dict] = []

    def unavailable_once(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        if len(sent) == 1:
            body = {"error": "service_unavailable", "message": "Briefly unavailable.", "retry_after": 1}
            route.fulfill(status=503, json=body, headers={"Retry-After": "1"})
        else:
            route.continue_()

    chat.page.route("**/api/v1/chat/message", unavailable_once)
    expect(chat.send("1")).to_contain_text("Which service do you need?")
    assert [m["message_id"] for m in sent] == [sent[0]["message_id"]] * 2
    assert orm(customer_messages, "1") == 1


def test_a_restarting_server_is_retried_until_another_one_takes_the_message(chat: Chat):
    chat.open().expect_enhanced()
    sent: list[dict] = []

    def draining_three_times(route: Route) -> None:
        # As a worker answers while it drains (chatdesk/drain.py): nothing stored, try another.
        sent.append(json.loads(route.request.post_data or "{}"))
        if len(sent) <= 3:
            body = {"error": "server_draining", "message": "This server is restarting.", "retry_after": 1}
            route.fulfill(status=503, json=body, headers={"Retry-After": "1"})
        else:
            route.continue_()

    chat.page.route("**/api/v1/chat/message", draining_three_times)
    expect(chat.send("1")).to_contain_text("Which service do you need?", timeout=10_000)
    expect(chat.error).to_be_hidden()
    assert [m["message_id"] for m in sent] == [sent[0]["message_id"]] * 4
    assert orm(customer_messages, "1") == 1


def test_a_second_failure_is_shown_and_sending_it_again_keeps_its_id(chat: Chat):
    chat.open().expect_enhanced()
    sent: list[dict] = []

    def always_unavailable(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        body = {"error": "service_unavailable", "message": "Down."}
        route.fulfill(status=503, json=body, headers={"Retry-After": "1"})

    chat.page.route("**/api/v1/chat/message", always_unavailable)
    chat.textarea.fill("1")
    chat.page.locator("#send").click()
    expect(chat.error).to_contain_text("Something went wrong on our side")
    expect(chat.textarea).to_have_value("1")  # given back, to send again
    assert len(sent) == 2  # the first try and one resend, no more
    chat.page.unroute("**/api/v1/chat/message")
    ids: list[str] = []
    chat.page.route(
        "**/api/v1/chat/message",
        lambda route: (ids.append(json.loads(route.request.post_data or "{}")["message_id"]), route.continue_()),
    )
    # Sent again unchanged: the same id (the server may have stored it); a new message: a new id.
    chat.page.locator("#send").click()
    expect(chat.replies).to_have_count(2)
    chat.send("2")
    assert ids[0] == sent[0]["message_id"]
    assert ids[1] != ids[0]
    assert orm(customer_messages, "1") == 1
