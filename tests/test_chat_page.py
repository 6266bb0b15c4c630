"""The customer's chat page in a real browser: headless Chromium against a live server.

No OPENAI_API_KEY is set, so the page runs the guided flow unless a test points the
settings at the fake OpenAI server. The live server runs the app in its own thread and the
app does its DB work on worker threads, so tests use committed data (transaction=True).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from playwright.sync_api import Browser, BrowserContext, Locator, Page, WebSocketRoute, expect

from tests.browser import DESKTOP, PHONE, chromium_fixture, orm  # noqa: F401  (registers `chromium`)
from tests.fake_openai import fake_openai_fixture  # noqa: F401  (registers `fake_openai`)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"
BOOKING_NUMBER = re.compile(r"BK-\d{4}-\d{6}")


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    # Rate-limit counters live in the cache and key on the client IP, and every browser
    # test comes from 127.0.0.1: without this, later tests would be throttled.
    cache.clear()


class Chat:
    """The chat page in one browser context, and what the page wrote to its console.

    The live server is WSGI and has no WebSockets, so the page's live connection for staff
    replies is answered in the browser by a stand-in (`live_sockets`) that speaks like
    chatdesk.web.consumers.CustomerLiveConsumer: it reports the takeover state on connect.
    """

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.page: Page = context.new_page()
        self.console_errors: list[str] = []
        self.live_sockets: list[WebSocketRoute] = []
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.route_web_socket("**/api/v1/chat/live", self._live_connected)

    def _live_connected(self, socket: WebSocketRoute) -> None:
        self.live_sockets.append(socket)
        socket.send(json.dumps({"type": "takeover", "taken_over": False}))

    def open(self) -> Chat:
        self.page.goto(self.base_url + "/")
        return self

    @property
    def textarea(self) -> Locator:
        return self.page.locator("#message")

    @property
    def replies(self) -> Locator:
        return self.page.locator("#transcript li.msg.assistant .text")

    @property
    def customer_messages(self) -> Locator:
        return self.page.locator("#transcript li.msg.customer .text")

    @property
    def error(self) -> Locator:
        return self.page.locator("#error")

    def expect_enhanced(self) -> None:
        # chat.js sets this last: proves the static file was served and ran under the CSP.
        expect(self.page.locator("#chat")).to_have_attribute("data-enhanced", "true")

    def send(self, text: str) -> Locator:
        """Send through the JS path and return the assistant's reply to it."""
        before = self.replies.count()
        self.textarea.fill(text)
        self.page.locator("#send").click()
        reply = self.replies.nth(before)
        expect(reply).to_be_visible()
        return reply

    def send_without_js(self, text: str) -> None:
        """Post the form and follow the redirect back to the transcript."""
        self.textarea.fill(text)
        with self.page.expect_navigation():
            self.page.locator("#send").click()

    def xss_fired(self) -> bool:
        return self.page.evaluate("() => window.__xss !== undefined")


@pytest.fixture
def chat(business, live_server, chromium: Browser) -> Iterator[Chat]:
    # `business` before `chromium`: DB fixtures must run before Playwright's loop starts.
    context = chromium.new_context(viewport=PHONE)
    yield Chat(context, live_server.url)
    context.close()


@pytest.fixture
def chat_without_js(business, live_server, chromium: Browser) -> Iterator[Chat]:
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    yield Chat(context, live_server.url)
    context.close()


def wait_until(page: Page, condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll a Python-side condition while letting Playwright deliver its events."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        page.wait_for_timeout(20)


def a_weekday_ahead() -> str:
    """A Monday-Friday date at least two days out, as a customer would type it."""
    from bookings.selectors import business_tz

    day = datetime.now(business_tz()).date() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return f"{day:%B} {day.day}"


def booking_in_db(number: str) -> dict | None:
    from bookings.models import Booking

    booking = Booking.objects.select_related("customer", "service").filter(number=number).first()
    if booking is None:
        return None
    return {"customer": booking.customer.name, "service": booking.service.name, "address": booking.address}


# --- with JavaScript ------------------------------------------------------------------------


def test_customer_books_a_visit_through_the_guided_flow_and_sees_the_confirmation_card(chat: Chat):
    chat.open().expect_enhanced()
    page = chat.page
    expect(page.locator("#mode")).to_have_attribute("data-mode", "guided")
    expect(page.locator("#mode")).to_contain_text("Guided booking")
    expect(page.locator("header")).to_contain_text(django_settings.BUSINESS_NAME)
    expect(page.locator("#hours")).to_contain_text("Mon–Fri 08:00–18:00")

    expect(chat.send("1")).to_contain_text("Which service do you need?")
    assert page.locator("#chat").get_attribute("data-session"), "the first message should have started a session"
    expect(chat.send("1")).to_contain_text("HVAC Repair. Which day would suit you?")
    expect(chat.send(a_weekday_ahead())).to_contain_text("Free times on")
    expect(chat.send("1")).to_contain_text("What is your full name?")
    expect(chat.send("Jane Customer")).to_contain_text("What phone number")
    expect(chat.send("416-555-0123")).to_contain_text("May we text you")
    expect(chat.send("yes please")).to_contain_text("What is the address")
    expect(chat.send("12 Elm Street, Toronto")).to_contain_text("What email")
    expect(chat.send("skip")).to_contain_text("Shall I book it?")
    expect(chat.send("yes")).to_contain_text("You're booked!")

    card = page.locator("#transcript li.booking .booking-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Booking confirmed")
    expect(card).to_contain_text("HVAC Repair")
    expect(card).to_contain_text("12 Elm Street, Toronto")
    number = card.locator(".booking-number").inner_text()
    assert BOOKING_NUMBER.fullmatch(number)
    assert orm(booking_in_db, number) == {
        "customer": "Jane Customer",
        "service": "HVAC Repair",
        "address": "12 Elm Street, Toronto",
    }
    expect(chat.textarea).to_be_focused()
    expect(chat.customer_messages).to_have_count(10)

    # The server renders the same transcript and card, next to the booking reply, after a reload.
    page.reload()
    expect(page.locator("#transcript li.booking .booking-number")).to_have_text(number)
    assert [(n, state) for n, state, _ in card_placement(page)] == [(number, "confirmed")]
    assert "You're booked!" in card_placement(page)[0][2]
    expect(chat.customer_messages).to_have_count(10)

    # Cancelled in the same chat: the card says so where it is, live and after a reload.
    chat.expect_enhanced()
    expect(chat.send("I need to cancel my visit")).to_contain_text("booking number")
    expect(chat.send(number)).to_contain_text("phone number")
    expect(chat.send("416-555-0123")).to_contain_text("Do you want to cancel it?")
    expect(chat.send("yes")).to_contain_text(f"Booking {number} is cancelled")
    for shown in ("live", "reloaded"):
        if shown == "reloaded":
            page.reload()
            chat.expect_enhanced()
        card = page.locator("#transcript li.booking")
        expect(card).to_have_count(1)
        expect(card.locator("h3")).to_have_text("Booking cancelled")
        assert [(n, state) for n, state, _ in card_placement(page)] == [(number, "cancelled")], shown
        assert "You're booked!" in card_placement(page)[0][2], shown
        expect(page.locator("#transcript")).not_to_contain_text("Booking confirmed")
    assert chat.console_errors == []  # no CSP violations, no script errors


def test_message_shows_at_once_with_a_typing_indicator_and_send_disabled_until_the_reply(chat: Chat):
    chat.open().expect_enhanced()
    page = chat.page
    held = []
    # Hold the API request so the waiting state can be observed, then let it through.
    page.route("**/api/v1/chat/message", lambda route: held.append(route))

    chat.textarea.fill("1")
    page.locator("#send").click()
    expect(chat.customer_messages.last).to_have_text("1")
    expect(page.locator("#typing")).to_be_visible()
    expect(page.locator("#send")).to_be_disabled()
    expect(chat.textarea).to_have_value("")
    expect(chat.textarea).to_be_focused()
    wait_until(page, lambda: held)

    # The next message can be typed while waiting, but Enter doesn't send it yet.
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    page.wait_for_timeout(200)
    assert len(held) == 1
    expect(chat.customer_messages).to_have_count(1)
    expect(chat.textarea).to_have_value("2")

    held[0].continue_()
    expect(chat.replies.last).to_contain_text("Which service do you need?")
    expect(page.locator("#typing")).to_be_hidden()
    expect(page.locator("#send")).to_be_enabled()
    expect(chat.textarea).to_have_value("2")
    expect(page.locator("#announcer")).to_contain_text("Which service do you need?")
    # The newest message is scrolled into view above the sticky composer.
    expect(chat.replies.last).to_be_in_viewport()


def test_markup_in_customer_messages_is_shown_as_text_and_never_runs(chat: Chat):
    chat.open().expect_enhanced()
    chat.send(XSS_IMG)
    chat.send(XSS_SCRIPT)

    expect(chat.customer_messages.nth(0)).to_have_text(XSS_IMG)
    expect(chat.customer_messages.nth(1)).to_have_text(XSS_SCRIPT)
    expect(chat.page.locator("#transcript img, #transcript script")).to_have_count(0)
    assert not chat.xss_fired()

    # Rendered by the server this time.
    chat.page.reload()
    chat.expect_enhanced()
    expect(chat.customer_messages.nth(0)).to_have_text(XSS_IMG)
    expect(chat.customer_messages.nth(1)).to_have_text(XSS_SCRIPT)
    expect(chat.page.locator("#transcript img, #transcript script")).to_have_count(0)
    assert not chat.xss_fired()


def test_message_over_the_limit_is_refused_visibly_and_kept_in_the_textarea(chat: Chat):
    chat.open().expect_enhanced()
    too_long = "x" * (django_settings.CHAT_MAX_MESSAGE_CHARS + 1)
    chat.textarea.fill(too_long)
    expect(chat.page.locator("#counter")).to_contain_text("too long")
    chat.page.locator("#send").click()

    expect(chat.error).to_be_visible()
    expect(chat.error).to_contain_text(f"under {django_settings.CHAT_MAX_MESSAGE_CHARS} characters")
    expect(chat.textarea).to_have_value(too_long)
    expect(chat.customer_messages).to_have_count(0)  # the refused message is taken back
    expect(chat.page.locator("#send")).to_be_enabled()

    # Shortening it and sending again works and clears the error.
    expect(chat.send("1")).to_contain_text("Which service do you need?")
    expect(chat.error).to_be_hidden()


def test_keyboard_only_customer_can_type_and_send_with_enter(chat: Chat):
    chat.open().expect_enhanced()
    page = chat.page
    # With a keyboard and mouse the box has focus from the start.
    expect(chat.textarea).to_be_focused()
    expect(page.locator("#composer-hint")).to_contain_text("Enter to send")

    page.keyboard.type("hello")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("there")
    expect(chat.textarea).to_have_value("hello\nthere")
    expect(chat.customer_messages).to_have_count(0)  # Shift+Enter is a new line, not send

    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(chat.replies.last).to_contain_text("Which service do you need?")
    expect(chat.customer_messages).to_have_text(["1"])
    expect(chat.textarea).to_be_focused()
    expect(chat.textarea).to_have_value("")

    # Tab order after the box: Send, then nothing is trapped.
    page.keyboard.press("Tab")
    expect(page.locator("#send")).to_be_focused()


def test_skip_link_takes_keyboard_users_on_a_touch_device_to_the_message_box(business, live_server, chromium: Browser):
    # On touch screens nothing is focused on load (it would pop up the on-screen keyboard),
    # so the first Tab lands on the skip link.
    context = chromium.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    chat = Chat(context, live_server.url).open()
    chat.expect_enhanced()
    page = chat.page
    expect(chat.textarea).not_to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    expect(page.locator(".skip-link")).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(chat.textarea).to_be_focused()
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(chat.replies.last).to_contain_text("Which service do you need?")
    context.close()


def close_all_conversations() -> None:
    from chatdesk.conversations.models import Conversation

    Conversation.objects.update(status=Conversation.Status.CLOSED)


def test_closed_conversation_offers_a_new_one_and_keeps_the_text(chat: Chat):
    chat.open().expect_enhanced()
    chat.send("1")
    old_session = chat.page.locator("#chat").get_attribute("data-session")
    orm(close_all_conversations)

    chat.textarea.fill("2")
    chat.textarea.press("Enter")
    expect(chat.error).to_contain_text("closed")
    expect(chat.textarea).to_have_value("2")
    start_over = chat.error.get_by_role("button", name="Start a new conversation")
    start_over.focus()
    chat.page.keyboard.press("Enter")

    expect(chat.error).to_be_hidden()
    expect(chat.page.locator("#transcript li.msg")).to_have_count(1)  # just the new greeting
    assert chat.page.locator("#chat").get_attribute("data-session") not in ("", old_session)
    expect(chat.textarea).to_have_value("2")
    expect(chat.textarea).to_be_focused()
    chat.page.keyboard.press("Enter")
    expect(chat.replies.last).to_contain_text("booking number")


def test_rate_limited_message_says_how_long_to_wait_and_keeps_the_text(chat: Chat, settings):
    settings.CHAT_RATE_MESSAGE_PER_SESSION = "2/h"
    chat.open().expect_enhanced()
    chat.send("hello")
    chat.send("1")
    chat.textarea.fill("2")
    chat.page.locator("#send").click()

    expect(chat.error).to_contain_text("Too many messages")
    expect(chat.error).to_contain_text(re.compile(r"send again in \d+ (seconds?|minutes)"))
    expect(chat.textarea).to_have_value("2")
    expect(chat.customer_messages).to_have_count(2)


def take_over(session_id: str) -> None:
    from django.contrib.auth import get_user_model

    from chatdesk.conversations.models import Conversation

    staff = get_user_model().objects.create_user("dana", password="not-used-here", is_staff=True)
    Conversation.objects.filter(session_id=session_id).update(taken_over_by=staff)


def test_staff_replies_arrive_live_and_are_shown_as_text(chat: Chat):
    chat.open().expect_enhanced()
    chat.send("1")
    wait_until(chat.page, lambda: chat.live_sockets)  # the page listens once it has a conversation
    live = chat.live_sockets[-1]
    notices = chat.page.locator("#transcript li.notice")
    expect(notices).to_have_count(0)  # nobody has joined yet

    live.send(json.dumps({"type": "takeover", "taken_over": True}))
    expect(notices.last).to_contain_text("A member of our team has joined")
    live.send(json.dumps({"type": "staff_message", "text": XSS_IMG, "at": None}))
    staff_reply = chat.page.locator("#transcript li.msg.staff")
    expect(staff_reply.locator(".text")).to_have_text(XSS_IMG)
    expect(staff_reply.locator(".who")).to_have_text("Staff")
    expect(chat.page.locator("#announcer")).to_contain_text("Staff:")
    expect(chat.page.locator("#transcript img")).to_have_count(0)
    assert not chat.xss_fired()

    live.send(json.dumps({"type": "takeover", "taken_over": False}))
    expect(notices.last).to_contain_text("handed you back to the assistant")
    live.send("not json")  # ignored, not an error
    expect(notices).to_have_count(2)
    assert chat.console_errors == []


def test_message_during_a_staff_takeover_waits_for_staff_without_an_empty_reply(chat: Chat):
    chat.open().expect_enhanced()
    chat.send("1")
    orm(take_over, chat.page.locator("#chat").get_attribute("data-session"))
    replies_before = chat.replies.count()

    chat.textarea.fill("Is anyone there?")
    chat.textarea.press("Enter")
    expect(chat.page.locator("#transcript li.notice")).to_contain_text("A member of our team has joined")
    expect(chat.customer_messages.last).to_have_text("Is anyone there?")
    expect(chat.replies).to_have_count(replies_before)  # no empty assistant bubble
    expect(chat.page.locator("#typing")).to_be_hidden()
    expect(chat.error).to_be_hidden()


def test_layout_fits_a_phone_without_sideways_scrolling(chat: Chat):
    chat.open().expect_enhanced()
    chat.send("1")
    page = chat.page
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#send")).to_be_in_viewport()
    expect(chat.textarea).to_be_in_viewport()
    # 16px or more, or iOS zooms the page when the box gets focus.
    assert page.evaluate("() => parseFloat(getComputedStyle(document.getElementById('message')).fontSize)") >= 16
    page.set_viewport_size(DESKTOP)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= DESKTOP["width"]
    assert chat.console_errors == []


# --- without JavaScript -----------------------------------------------------------------------


def test_page_works_without_javascript_through_post_redirect_get(chat_without_js: Chat):
    chat = chat_without_js.open()
    page = chat.page
    expect(page.locator("#chat")).not_to_have_attribute("data-enhanced", "true")
    expect(chat.replies.first).to_contain_text("Book a visit")

    chat.send_without_js("1")
    assert page.url.endswith("/#latest")  # redirected back, not a rendered POST
    expect(chat.customer_messages).to_have_text(["1"])
    expect(chat.replies.last).to_contain_text("Which service do you need?")

    chat.send_without_js("1")
    expect(chat.customer_messages).to_have_text(["1", "1"])
    expect(chat.replies.last).to_contain_text("HVAC Repair. Which day would suit you?")

    # Reloading shows the same transcript (from the signed session cookie), not a resubmission.
    page.reload()
    expect(chat.customer_messages).to_have_count(2)


def test_markup_in_customer_messages_is_shown_as_text_without_javascript(chat_without_js: Chat, chromium: Browser):
    chat = chat_without_js.open()
    chat.send_without_js(XSS_IMG)
    chat.send_without_js(XSS_SCRIPT)
    expect(chat.customer_messages).to_have_text([XSS_IMG, XSS_SCRIPT])
    expect(chat.page.locator("#transcript img, #transcript script")).to_have_count(0)

    # The same conversation opened with JavaScript on: the markup still doesn't run.
    context = chromium.new_context(viewport=PHONE)
    context.add_cookies(chat.context.cookies())
    with_js = Chat(context, chat.base_url).open()
    with_js.expect_enhanced()
    expect(with_js.customer_messages).to_have_text([XSS_IMG, XSS_SCRIPT])
    assert not with_js.xss_fired()
    context.close()


def test_message_over_the_limit_without_javascript_is_refused_and_kept(chat_without_js: Chat):
    chat = chat_without_js.open()
    too_long = "y" * (django_settings.CHAT_MAX_MESSAGE_CHARS + 1)
    chat.textarea.fill(too_long)
    with chat.page.expect_navigation() as navigation:
        chat.page.locator("#send").click()
    assert navigation.value.status == 413
    expect(chat.error).to_contain_text(f"under {django_settings.CHAT_MAX_MESSAGE_CHARS} characters")
    expect(chat.textarea).to_have_value(too_long)
    expect(chat.customer_messages).to_have_count(0)


# --- with the AI assistant (fake OpenAI) ---------------------------------------------------------


def test_model_reply_with_markup_is_shown_as_text_and_never_runs(chat: Chat, settings, fake_openai):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    reply = '<b>bold</b><img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
    fake_openai.queue_text(reply)

    chat.open().expect_enhanced()
    expect(chat.page.locator("#mode")).to_have_attribute("data-mode", "model")
    expect(chat.page.locator("#mode")).to_contain_text("AI assistant")
    expect(chat.send("Can someone look at my furnace?")).to_have_text(reply)
    expect(chat.page.locator("#transcript b, #transcript img, #transcript script")).to_have_count(0)
    assert not chat.xss_fired()

    chat.page.reload()
    chat.expect_enhanced()
    expect(chat.replies.last).to_have_text(reply)
    expect(chat.page.locator("#transcript b, #transcript img, #transcript script")).to_have_count(0)
    assert not chat.xss_fired()


def test_mode_label_follows_a_switch_from_the_assistant_to_the_guided_flow(chat: Chat, settings, fake_openai):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    fake_openai.queue_error(500, "upstream down")
    fake_openai.queue_error(500, "still down")

    chat.open().expect_enhanced()
    mode = chat.page.locator("#mode")
    expect(mode).to_have_attribute("data-mode", "model")
    expect(chat.send("My AC is broken")).to_contain_text("send that again")
    expect(mode).to_have_attribute("data-mode", "model")
    expect(chat.send("My AC is broken")).to_contain_text("step by step")
    expect(mode).to_have_attribute("data-mode", "guided")
    expect(mode).to_contain_text("Guided booking")
    expect(chat.page.locator("#announcer")).to_contain_text("Guided booking")


# --- booking cards: the booking's state now, next to the reply that produced it ------------------
# Bookings are made, moved and cancelled through the real turn with the fake model calling our
# tools, so these tests do not depend on the wording of the guided flow.

CARD_PHONE = "416-555-0123"


def two_open_slots() -> tuple[str, str]:
    """Two free HVAC Repair starts on different days, as the model would pass them."""
    from bookings.models import Service
    from bookings.selectors import available_slots, business_tz

    service = Service.objects.get(slug="hvac-repair")
    today = datetime.now(business_tz()).date()
    slots = available_slots(service=service, start_date=today + timedelta(days=2), end_date=today + timedelta(days=9))
    first = slots[0].start
    later = next(s.start for s in slots if s.start.date() != first.date())
    return first.isoformat(), later.isoformat()


def book_args(start: str) -> dict:
    return {
        "service_id": "hvac-repair",
        "start": start,
        "technician_id": None,
        "customer_name": "Dana Customer",
        "customer_phone": CARD_PHONE,
        "customer_email": None,
        "address": "12 Elm Street, Toronto",
        "notes": None,
        "customer_confirmed": True,
    }


def reschedule_args(number: str, start: str) -> dict:
    return {
        "booking_number": number,
        "phone": CARD_PHONE,
        "new_start": start,
        "technician_id": None,
        "customer_confirmed": True,
    }


def cancel_args(number: str) -> dict:
    return {"booking_number": number, "phone": CARD_PHONE, "reason": None, "customer_confirmed": True}


def use_the_model(settings, fake_openai) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url


def card_placement(page: Page) -> list[tuple[str, str, str]]:
    """Each card's (number, state, text of the message right before it)."""
    placement = page.eval_on_selector_all(
        "#transcript li.booking",
        """cards => cards.map(card => {
            let before = card.previousElementSibling;
            while (before && before.classList.contains("booking")) before = before.previousElementSibling;
            return [card.dataset.booking, card.dataset.state, before.querySelector(".text").textContent];
        })""",
    )
    return [tuple(card) for card in placement]


def expect_card(page: Page, number: str, state: str, headline: str, reply: str) -> Locator:
    card = page.locator(f'#transcript li.booking[data-booking="{number}"]')
    expect(card).to_have_count(1)
    expect(card.locator("h3")).to_have_text(headline)
    assert card_placement(page) == [(number, state, reply)]
    return card


def test_a_booking_card_shows_the_move_and_the_cancellation_and_stays_with_the_booking_reply(
    chat: Chat, settings, fake_openai
):
    use_the_model(settings, fake_openai)
    first, later = orm(two_open_slots)
    chat.open().expect_enhanced()
    page = chat.page
    fake_openai.queue_function_call("create_booking", book_args(first))
    fake_openai.queue_text("You're booked!")
    chat.send("Please book the first time, Dana Customer, 416-555-0123, 12 Elm Street.")
    number = page.locator("#transcript li.booking .booking-number").inner_text()
    assert BOOKING_NUMBER.fullmatch(number)
    card = expect_card(page, number, "confirmed", "Booking confirmed", "You're booked!")
    first_when = card.locator(".booking-when").inner_text()
    expect(page.locator("#announcer")).to_contain_text(f"Booking confirmed: {number}")

    fake_openai.queue_function_call("reschedule_booking", reschedule_args(number, later))
    fake_openai.queue_text("Done, it's moved.")
    chat.send("Can you move it to the other day?")
    card = expect_card(page, number, "moved", "Booking moved", "You're booked!")
    expect(card.locator(".booking-was")).to_have_text(first_when)
    expect(card.locator(".booking-when")).not_to_have_text(first_when)
    expect(page.locator("#announcer")).to_contain_text(f"Booking moved: {number}")
    moved_when = card.locator(".booking-when").inner_text()

    page.reload()
    chat.expect_enhanced()
    card = expect_card(page, number, "moved", "Booking moved", "You're booked!")
    expect(card.locator(".booking-when")).to_have_text(moved_when)
    expect(card.locator(".booking-was")).to_have_text(first_when)

    fake_openai.queue_function_call("cancel_booking", cancel_args(number))
    fake_openai.queue_text("Your visit is cancelled.")
    chat.send("Sorry, please cancel it.")
    card = expect_card(page, number, "cancelled", "Booking cancelled", "You're booked!")
    expect(card.locator(".booking-was")).to_have_count(0)

    # After a reload: still one card, cancelled, with the booking reply (above the cancellation).
    page.reload()
    chat.expect_enhanced()
    card = expect_card(page, number, "cancelled", "Booking cancelled", "You're booked!")
    expect(page.locator("#transcript")).not_to_contain_text("Booking confirmed")
    expect(card.locator(".booking-note")).to_contain_text("no technician will come")
    expect(chat.replies.last).to_have_text("Your visit is cancelled.")
    assert chat.console_errors == []


def test_booking_cards_without_javascript_show_the_current_state_next_to_the_booking_reply(
    chat_without_js: Chat, settings, fake_openai
):
    use_the_model(settings, fake_openai)
    first, later = orm(two_open_slots)
    chat = chat_without_js.open()
    page = chat.page
    fake_openai.queue_function_call("create_booking", book_args(first))
    fake_openai.queue_text("You're booked!")
    chat.send_without_js("Book the first time please.")
    number = page.locator("#transcript li.booking .booking-number").inner_text()
    expect_card(page, number, "confirmed", "Booking confirmed", "You're booked!")

    fake_openai.queue_function_call("reschedule_booking", reschedule_args(number, later))
    fake_openai.queue_text("Moved.")
    chat.send_without_js("Move it to the other day.")
    expect_card(page, number, "moved", "Booking moved", "You're booked!")

    fake_openai.queue_function_call("cancel_booking", cancel_args(number))
    fake_openai.queue_text("Cancelled.")
    chat.send_without_js("Cancel it.")
    expect_card(page, number, "cancelled", "Booking cancelled", "You're booked!")
    expect(page.locator("#transcript")).not_to_contain_text("Booking confirmed")
    assert_newest_message_in_view(page)


# --- without JavaScript, the newest reply is in view after a post -----------------------------------


def assert_newest_message_in_view(page: Page) -> None:
    """The newest message is inside the viewport and not under the sticky composer."""
    newest = page.locator("#transcript li.msg").last.bounding_box()
    composer = page.locator("#composer").bounding_box()
    assert newest and composer
    assert newest["y"] >= 0, (newest, composer)
    assert newest["y"] + newest["height"] <= composer["y"], (newest, composer)
    assert composer["y"] + composer["height"] <= page.viewport_size["height"] + 1


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_after_a_post_without_javascript_the_newest_reply_is_in_view_above_the_composer(
    business, live_server, chromium: Browser, settings, fake_openai, viewport
):
    use_the_model(settings, fake_openai)
    context = chromium.new_context(viewport=viewport, java_script_enabled=False)
    chat = Chat(context, live_server.url).open()
    # Enough turns that the transcript is taller than the window.
    for turn in range(8):
        fake_openai.queue_text(f"Reply number {turn}: we can help with that.\nAnything else you'd like to add?")
        chat.send_without_js(f"Message number {turn}")
        assert chat.page.url.endswith("/#latest")  # redirected back, not a rendered POST
        expect(chat.replies.last).to_contain_text(f"Reply number {turn}")
        assert_newest_message_in_view(chat.page)
    assert chat.page.evaluate("() => document.documentElement.scrollHeight") > viewport["height"] * 1.5
    context.close()
