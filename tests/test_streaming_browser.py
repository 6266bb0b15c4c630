"""Replies that stream, in Chromium, end to end: a real daphne process (its WebSockets too), the
fake model writing slowly through the unmodified SDK, the page's static/chat.js and the staff
monitor's static/staff-live.js.

The first words are on the customer's screen, and on the screen of staff watching, while the
model is still writing; the stored reply replaces them. A stream that breaks mid-reply never
leaves its half sentence standing. Plain daphne serves no /static/: the browser gets those
files where Django's static finders find them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser import DESKTOP, PHONE, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.fake_openai import FakeOpenAI, fake_openai_fixture  # noqa: F401  (registers `fake_openai`)
from tests.servers import free_port, subprocess_database_url, wait_for_port
from tests.staff import grant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "Alice can come on Friday at nine in the morning, and the visit takes about an hour."
PARTIAL = "We have a technician free on Friday, and the"


@pytest.fixture
def server(business, fake_openai: FakeOpenAI) -> Iterator[str]:
    """One daphne process on the test database, with the fake as its model: its base URL."""
    get_user_model().objects.create_user("sam", password="pw-sam-watch-1", is_staff=True)
    grant(get_user_model().objects.get(username="sam"), "chatdesk.view_conversation")
    env = {
        **os.environ,
        # The production settings: the test settings would blank the OpenAI key.
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": subprocess_database_url(),
        "SECRET_KEY": django_settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)  # one process: the in-memory channel layer, as `make run`
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def open_page(browser: Browser, url: str, viewport: dict) -> Page:
    page = browser.new_context(viewport=viewport).new_page()
    page.route("**/static/**", serve_static)
    page.goto(url)
    return page


def serve_static(route: Route) -> None:
    """A static file as collectstatic would serve it (ours, the admin's), found where it lives."""
    found = finders.find(route.request.url.split("/static/", 1)[1].split("?", 1)[0])
    if found:
        route.fulfill(path=found)
    else:
        route.fulfill(status=404)


def stream_done(fake: FakeOpenAI) -> bool:
    """Whether the fake has finished writing the reply (it records a stream once it ends)."""
    return any(reply.get("first_text_at") is not None for reply in fake.replies)


def test_the_first_words_are_on_screen_while_the_model_is_still_writing(server, fake_openai, chromium):
    fake_openai.stream_event_delay = 0.2  # about 4 s for the whole reply
    customer = open_page(chromium, server + "/", PHONE)
    expect(customer.locator("#chat")).to_have_attribute("data-enhanced", "true")
    customer.locator("#message").fill("Hello")  # starts the conversation (and its live socket)
    customer.locator("#send").click()
    expect(customer.locator("#transcript li.msg.assistant .text").nth(1)).to_have_text("OK")
    session_id = customer.locator("#chat").get_attribute("data-session")
    number = customer.context.request.get(f"{server}/api/v1/chat/session/{session_id}/history").json()[
        "conversation_number"
    ]

    staff = open_page(chromium, f"{server}/admin/login/?next=/staff/live/", DESKTOP)
    staff.fill("#id_username", "sam")
    staff.fill("#id_password", "pw-sam-watch-1")
    staff.click("input[type=submit]")
    staff.wait_for_url(f"{server}/staff/live/")
    staff.wait_for_function("document.getElementById('status').textContent === 'Live'")
    staff.click(f'tr[data-number="{number}"]')
    expect(staff.locator("#transcript li").first).to_be_visible()
    fake_openai.replies.clear()

    fake_openai.queue_text(ANSWER)
    customer.locator("#message").fill("Can someone come Friday?")
    customer.locator("#send").click()

    writing = customer.locator("#transcript li.msg.assistant.writing .text")
    expect(writing).to_contain_text("Alice can come")
    watched = staff.locator("#transcript li.assistant.writing")
    expect(watched).to_contain_text("Alice can come")
    # Both screens show the first words while the model is still writing the rest.
    assert not stream_done(fake_openai)
    assert writing.text_content() != ANSWER
    assert customer.locator("#typing").is_visible()

    # The answer replaces the preview: the stored reply, no longer marked as being written.
    reply = customer.locator("#transcript li.msg.assistant").last
    expect(reply.locator(".text")).to_have_text(ANSWER, timeout=15_000)
    expect(reply).not_to_have_class(re.compile("writing"))
    expect(customer.locator("#transcript li.msg.assistant.writing")).to_have_count(0)
    expect(customer.locator("#typing")).to_be_hidden()
    expect(customer.locator("#announcer")).to_have_text(f"Assistant: {ANSWER}")
    expect(staff.locator("#transcript li.assistant").last).to_have_text(ANSWER)
    expect(staff.locator("#transcript li.writing")).to_have_count(0)


def test_a_reply_that_breaks_mid_sentence_is_replaced_by_the_kind_note(server, fake_openai, chromium):
    fake_openai.stream_event_delay = 0.15
    customer = open_page(chromium, server + "/", PHONE)
    expect(customer.locator("#chat")).to_have_attribute("data-enhanced", "true")
    customer.locator("#message").fill("Hello")
    customer.locator("#send").click()
    expect(customer.locator("#transcript li.msg.assistant .text").nth(1)).to_have_text("OK")

    fake_openai.queue_broken_stream(PARTIAL, how="cut")
    customer.locator("#message").fill("Is anyone free Friday?")
    customer.locator("#send").click()

    expect(customer.locator("#transcript li.msg.assistant.writing .text")).to_contain_text("We have a technician")
    last = customer.locator("#transcript li.msg.assistant .text").last
    expect(last).to_have_text("Sorry, I'm having trouble thinking right now. Please send that again in a moment.")
    expect(customer.locator("#transcript")).not_to_contain_text("and the")
    expect(customer.locator("#transcript li.msg.assistant.writing")).to_have_count(0)
    assert orm(broken_words) == [PARTIAL]


def broken_words() -> list[str]:
    """What the broken streams had written, from their failure rows."""
    from chatdesk.conversations.models import Message

    return list(Message.objects.filter(failure_kind="stream_broken").values_list("generated_text", flat=True))
