"""The website widget in headless Chromium, on a business's site served from another origin.

The app runs under daphne's runserver (HTTP and WebSockets) on the test database at
http://127.0.0.1:<port>. The business's site is a tiny HTTP server of this module's at
http://localhost:<port>: another origin and another *site*, so the widget's frame is a
third-party frame and Chromium's third-party cookie blocking applies to it (the tests check
that a plain third-party cookie really is dropped). Its pages carry the one-line snippet,
and some hostile CSS the launcher must survive.
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from playwright.sync_api import Browser, FrameLocator, Locator, Page, expect, sync_playwright

from chatdesk.backoffice.widget_snippet import deferred_snippet
from tests.browser import CHROMIUM_ARGS, CHROMIUM_PATH, DESKTOP, PHONE, chromium_fixture, orm  # noqa: F401
from tests.fake_openai import fake_openai_fixture  # noqa: F401  (registers `fake_openai`)
from tests.servers import free_port, subprocess_database_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
AXE = Path(__file__).parent / "axe" / "axe.min.js"
BOOKING_NUMBER = re.compile(r"BK-\d{4}-\d{6}")
SLOW_IMAGE_SECONDS = 0.6
# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a1f2a96a0000000049454e44ae426082"
)
# When the page's load event started, and when each request to Chatdesk started (page clock, ms).
LOAD_AND_APP_FETCHES = """(app) => ({
    load: performance.getEntriesByType("navigation")[0].loadEventStart,
    fetches: performance.getEntriesByType("resource").filter((r) => r.name.startsWith(app)).map((r) => r.startTime),
})"""
# The site's own CSS, at its worst: nothing of it may reach the launcher or the panel.
HOSTILE_CSS = (
    "* { font-family: 'Comic Sans MS', cursive !important; color: #f0f !important; line-height: 3 !important; }"
    " button { display: none !important; } div { border: 5px dashed red !important; }"
    " iframe { width: 10px !important; height: 10px !important; }"
)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    cache.clear()


# --- the servers -----------------------------------------------------------------------------


class BusinessSite:
    """The business's website: pages with the snippet, on http://localhost:<port>."""

    def __init__(self, app_url: str, port: int) -> None:
        self.port = port
        self.url = f"http://localhost:{self.port}"
        app = app_url
        snippet_attributes = 'data-color="#ffcc00" data-greeting="Furnace trouble? Chat with us."'
        plain_snippet = f'<script src="{app}/widget.js" async {snippet_attributes}></script>'
        # The admin's snippet (widget.js inserted after the load event), its options via dataset.
        deferred = deferred_snippet(f"{app}/widget.js", {"color": "#ffcc00", "greeting": "Deferred, and here."})
        # An image that takes SLOW_IMAGE_SECONDS holds the page's load event back.
        slow_image = '<img src="/slow.png" alt="" width="1" height="1">'

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/slow.png":
                    time.sleep(SLOW_IMAGE_SECONDS)
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(PNG)))
                    self.end_headers()
                    self.wfile.write(PNG)
                    return
                if path in ("/deferred/", "/deferred/services", "/slow-async"):
                    snippet = plain_snippet if path == "/slow-async" else deferred
                    body = (
                        f"<main><h1>Maple Home Services: {path}</h1>{slow_image}"
                        '<p><a href="/deferred/services">Our services</a></p></main>'
                        f"{snippet}"
                    )
                elif path == "/frame-chat-page":
                    # The full chat page (not the widget's) framed directly: must be refused.
                    body = f'<iframe id="direct" title="chat" src="{app}/"></iframe>'
                elif path in ("/", "/services", "/contact"):
                    body = (
                        f"<main><h1>Maple Home Services: {path}</h1>"
                        '<p><a href="/services">Our services</a> <a href="/contact">Contact</a></p>'
                        '<label>Search <input id="site-search"></label></main>'
                        f"{plain_snippet}"
                    )
                else:
                    self.send_error(404)
                    return
                html = (
                    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
                    '<meta name="viewport" content="width=device-width, initial-scale=1">'
                    '<link rel="icon" href="data:,">'
                    f"<title>Maple {path}</title><style>{HOSTILE_CSS}</style></head><body>{body}</body></html>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BusinessSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def app_server(tmp_path: Path, site_port: int, extra_env: dict[str, str]) -> Iterator[str]:
    """The app under daphne's runserver (HTTP + WebSocket) on the test database; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": subprocess_database_url(),
        "SECRET_KEY": "widget-browser-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        # Production's Secure cookies: Chromium accepts them over http://127.0.0.1.
        "SECURE_COOKIES": "1",
        "ALLOWED_HOSTS": "127.0.0.1",
        "WIDGET_ALLOWED_ORIGINS": f"http://localhost:{site_port}",
        "OPENAI_API_KEY": "",
        "BUSINESS_TIMEZONE": django_settings.BUSINESS_TIMEZONE,
        "DB_POOL_MIN": "1",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    env.pop("REDIS_URL", None)  # one process: the in-memory channel layer
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base_url + "/widget.js", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the app did not start:\n" + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print("--- app server log (tail) ---\n" + log_path.read_text(errors="replace")[-4000:])


@pytest.fixture
def site_port() -> int:
    return free_port()


@pytest.fixture
def app(business, tmp_path: Path, site_port: int) -> Iterator[str]:
    with app_server(tmp_path, site_port, {}) as url:
        yield url


@pytest.fixture
def site(app: str, site_port: int) -> Iterator[BusinessSite]:
    with BusinessSite(app, site_port) as business_site:
        yield business_site


# --- the widget from the site's side ------------------------------------------------------------


class Widget:
    """One browser tab on the business's site, with the widget in it."""

    def __init__(self, page: Page, app: str) -> None:
        self.page = page
        self.app = app
        self.console: list[str] = []
        self.app_requests: list[str] = []
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console.append(str(e)))
        page.on("request", lambda r: self.app_requests.append(r.url) if r.url.startswith(app) else None)

    @property
    def launcher(self) -> Locator:
        return self.page.locator("chatdesk-widget button.launcher")

    @property
    def panel(self) -> Locator:
        return self.page.locator("chatdesk-widget .panel")

    @property
    def frame(self) -> FrameLocator:
        return self.page.frame_locator("chatdesk-widget iframe")

    def open(self) -> FrameLocator:
        self.launcher.click()
        expect(self.panel).to_be_visible()
        expect(self.frame.locator("#chat")).to_have_attribute("data-enhanced", "true")
        return self.frame

    def send(self, text: str) -> Locator:
        replies = self.frame.locator("#transcript li.msg.assistant .text")
        before = replies.count()
        self.frame.locator("#message").fill(text)
        self.frame.locator("#send").click()
        reply = replies.nth(before)
        expect(reply).to_be_visible()
        return reply

    def focused(self) -> str:
        """What has focus: 'launcher', 'close', 'frame:<id or tag>', or the site's element."""
        return self.page.evaluate(
            """() => {
                const el = document.activeElement;
                if (el.tagName !== 'CHATDESK-WIDGET') return 'site:' + (el.id || el.tagName);
                const inner = el.shadowRoot.activeElement;
                if (!inner) return 'none';
                return inner.tagName === 'IFRAME' ? 'frame' : inner.className;
            }"""
        )

    def settled_focus(self, timeout: float = 2.0) -> str:
        """What has focus once a Tab across the cross-site frame's edge has landed.

        Chromium moves focus into and out of an out-of-process frame asynchronously: for a moment
        after the key press the document's body is the active element (nothing is focused). Wait
        that out; a control of the site getting focus is still reported, and fails the caller.
        """
        deadline = time.monotonic() + timeout
        where = self.focused()
        while where in ("site:BODY", "none") and time.monotonic() < deadline:
            time.sleep(0.02)
            where = self.focused()
        return where

    def focused_in_frame(self) -> str:
        return self.frame.locator(":root").evaluate(
            "() => document.hasFocus() ? (document.activeElement.id || document.activeElement.tagName) : ''"
        )


def a_weekday_ahead() -> str:
    from bookings.selectors import business_tz

    day = datetime.now(business_tz()).date() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return f"{day:%B} {day.day}"


def widget_conversations() -> list[dict]:
    from chatdesk.conversations.models import Conversation

    return list(
        Conversation.objects.order_by("started_at").values(
            "session_id", "from_widget", "widget_page", "booking_count", "channel", "has_call"
        )
    )


# --- the tests ----------------------------------------------------------------------------------


def test_a_visitor_books_in_the_widget_and_finds_the_conversation_on_the_next_page(
    site: BusinessSite, app: str, chromium: Browser
) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    widget = Widget(page, app)
    page.goto(site.url + "/")

    # The launcher, styled by us whatever the site's CSS says, and nothing loaded but widget.js.
    expect(widget.launcher).to_be_visible()
    expect(widget.launcher).to_have_css("background-color", "rgb(255, 204, 0)")
    expect(widget.launcher).to_have_css("color", "rgb(17, 17, 17)")  # dark ink on a light colour
    bubble = page.locator("chatdesk-widget .bubble")
    expect(bubble).to_have_text("Furnace trouble? Chat with us.")
    assert "Comic Sans" not in bubble.evaluate("b => getComputedStyle(b).fontFamily")
    page.wait_for_load_state("networkidle")
    assert [url.removeprefix(app) for url in widget.app_requests] == ["/widget.js"]

    frame = widget.open()
    expect(bubble).to_be_hidden()
    expect(widget.launcher).to_have_attribute("aria-expanded", "true")
    iframe = page.locator("chatdesk-widget iframe")
    assert iframe.get_attribute("allow") == "microphone"
    box = iframe.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 400  # the site's iframe rule did not shrink it
    # The compact page: guided flow (no key), call button present (and says voice is off).
    expect(frame.locator("html")).to_have_class(re.compile(r"\bwidget\b"))
    expect(frame.locator("#mode")).to_have_attribute("data-mode", "guided")
    expect(frame.locator("#call-button")).to_be_visible()
    expect(frame.locator("#call-hint")).to_have_text("Voice calls are off here")
    expect(frame.locator("#message")).to_be_focused()

    # This Chromium blocks third-party cookies: an ordinary one set in the frame is dropped...
    assert not frame.locator(":root").evaluate(
        "() => { document.cookie = 'probe=1; SameSite=None; Secure; Path=/';"
        " return document.cookie.includes('probe=1'); }"
    )

    expect(widget.send("1")).to_contain_text("Which service do you need?")
    session = frame.locator("#chat").get_attribute("data-session")
    assert session
    expect(widget.send("1")).to_contain_text("HVAC Repair. Which day would suit you?")
    expect(widget.send(a_weekday_ahead())).to_contain_text("Free times on")
    expect(widget.send("1")).to_contain_text("What is your full name?")
    expect(widget.send("Wendy Widget")).to_contain_text("What phone number")
    expect(widget.send("416-555-0199")).to_contain_text("May we text you")
    expect(widget.send("yes")).to_contain_text("What is the address")
    expect(widget.send("7 Birch Lane, Toronto")).to_contain_text("What email")
    expect(widget.send("skip")).to_contain_text("Shall I book it?")
    expect(widget.send("yes")).to_contain_text("We'll text you a reminder the day before.")
    card = frame.locator("#transcript li.booking .booking-card")
    expect(card).to_contain_text("Booking confirmed")
    number = card.locator(".booking-number").inner_text()
    assert BOOKING_NUMBER.fullmatch(number)

    # ...while the conversation's own cookie is a partitioned one, keyed by the business's site.
    cookies = {c["name"]: c for c in context.cookies(app)}
    assert cookies["chatdesk_session"]["sameSite"] == "None" and cookies["chatdesk_session"]["secure"]
    assert cookies["csrftoken"]["sameSite"] == "None"

    # Another page of the site (its query string is not recorded), then a reload: the same conversation.
    page.get_by_role("link", name="Our services").click()
    page.wait_for_url(site.url + "/services")
    frame = widget.open()
    assert frame.locator("#chat").get_attribute("data-session") == session
    expect(frame.locator(f'#transcript li.booking[data-booking="{number}"]')).to_be_visible()
    expect(widget.send("Thanks")).to_be_visible()
    page.goto(site.url + "/contact?email=wendy@example.com")
    page.reload()
    frame = widget.open()
    assert frame.locator("#chat").get_attribute("data-session") == session
    expect(frame.locator("#transcript li.msg.customer .text").first).to_have_text("1")
    assert widget.console == []
    page.screenshot(path="/tmp/widget_desktop_open.png")
    context.close()

    conversations = orm(widget_conversations)
    assert len(conversations) == 1
    assert conversations[0]["session_id"] == session
    assert conversations[0]["from_widget"] and conversations[0]["widget_page"] == site.url + "/"
    assert conversations[0]["booking_count"] == 1


def test_the_admins_snippet_fetches_nothing_before_the_page_has_loaded_and_keeps_the_conversation(
    site: BusinessSite, app: str, chromium: Browser
) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()

    # The control: the plain async tag is fetched while the slow image still holds the load event.
    page.goto(site.url + "/slow-async", wait_until="load")
    timing = page.evaluate(LOAD_AND_APP_FETCHES, app)
    assert timing["load"] > SLOW_IMAGE_SECONDS * 1000
    assert timing["fetches"] and min(timing["fetches"]) < timing["load"]

    # The admin's snippet: nothing from Chatdesk until the load event, then widget.js alone.
    page = context.new_page()
    widget = Widget(page, app)
    page.goto(site.url + "/deferred/", wait_until="load")
    expect(widget.launcher).to_be_visible()
    page.wait_for_load_state("networkidle")
    timing = page.evaluate(LOAD_AND_APP_FETCHES, app)
    assert timing["load"] > SLOW_IMAGE_SECONDS * 1000
    assert len(timing["fetches"]) == 1 and timing["fetches"][0] >= timing["load"]
    assert [url.removeprefix(app) for url in widget.app_requests] == ["/widget.js"]
    # Its options, set on the created <script> element's dataset, are read.
    expect(widget.launcher).to_have_css("background-color", "rgb(255, 204, 0)")
    expect(page.locator("chatdesk-widget .bubble")).to_have_text("Deferred, and here.")

    # It opens, and the conversation follows the visitor to the next page.
    frame = widget.open()
    expect(widget.send("1")).to_contain_text("Which service do you need?")
    session = frame.locator("#chat").get_attribute("data-session")
    assert session
    page.get_by_role("link", name="Our services").click()
    page.wait_for_url(site.url + "/deferred/services")
    expect(widget.launcher).to_be_visible()
    frame = widget.open()
    assert frame.locator("#chat").get_attribute("data-session") == session
    expect(frame.locator("#transcript li.msg.customer .text").first).to_have_text("1")
    assert widget.console == []
    context.close()

    conversations = orm(widget_conversations)
    assert len(conversations) == 1
    assert conversations[0]["from_widget"] and conversations[0]["widget_page"] == site.url + "/deferred/"


def test_escape_closes_the_panel_focus_returns_to_the_launcher_and_tab_stays_inside(
    site: BusinessSite, app: str, chromium: Browser
) -> None:
    page = chromium.new_page(viewport=DESKTOP)
    widget = Widget(page, app)
    page.goto(site.url + "/")
    widget.open()
    expect(widget.frame.locator("#message")).to_be_focused()

    # Tab and Shift+Tab go round the panel (close button, the chat's controls), never to the site.
    seen = set()
    for _ in range(14):
        page.keyboard.press("Tab")
        where = widget.settled_focus()
        assert where in ("close", "frame"), where
        seen.add(where if where != "frame" else "frame:" + widget.focused_in_frame())
    assert {"close", "frame:message", "frame:send"} <= seen, seen
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        assert widget.settled_focus() in ("close", "frame")
    # The site taking focus by script, or a click on it, gives it back to the panel.
    page.evaluate("document.getElementById('site-search').focus()")
    assert widget.focused() == "close"

    # Escape inside the frame closes the panel and puts focus back on the launcher.
    widget.frame.locator("#message").focus()
    page.keyboard.press("Escape")
    expect(widget.panel).to_be_hidden()
    assert widget.focused() == "launcher"
    expect(widget.launcher).to_have_attribute("aria-expanded", "false")
    # Closed, the site has its focus back.
    page.locator("#site-search").focus()
    assert widget.focused() == "site:site-search"

    # Escape on the panel's own close button does too, and reopening keeps the frame (no reload).
    widget.launcher.click()
    expect(widget.panel).to_be_visible()
    page.locator("chatdesk-widget button.close").focus()
    page.keyboard.press("Escape")
    expect(widget.panel).to_be_hidden()
    assert widget.focused() == "launcher"
    assert sum(1 for url in widget.app_requests if "/widget/?" in url) == 1
    assert widget.console == []


def test_on_a_phone_the_panel_fills_the_screen(site: BusinessSite, app: str, chromium: Browser) -> None:
    page = chromium.new_page(viewport=PHONE)
    widget = Widget(page, app)
    page.goto(site.url + "/")
    widget.open()
    box = widget.panel.bounding_box()
    assert box == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
    expect(widget.launcher).to_be_hidden()  # it would cover the message box
    page.screenshot(path="/tmp/widget_phone_open.png")
    page.locator("chatdesk-widget button.close").click()
    expect(widget.launcher).to_be_visible()
    assert widget.focused() == "launcher"


def test_a_site_that_is_not_allowed_cannot_frame_the_widget(app: str, site_port: int, chromium: Browser) -> None:
    # The same pages, on a port the app does not list in WIDGET_ALLOWED_ORIGINS.
    with BusinessSite(app, free_port()) as stranger:
        page = chromium.new_page(viewport=DESKTOP)
        widget = Widget(page, app)
        page.goto(stranger.url + "/")
        widget.launcher.click()
        expect(widget.panel).to_be_visible()
        deadline = time.monotonic() + 10
        while not any("frame-ancestors" in message for message in widget.console):
            assert time.monotonic() < deadline, widget.console
            page.wait_for_timeout(50)
        # The frame shows Chromium's error page, not the chat: none of our page ran in it.
        child = page.frames[1]
        assert child.url in ("", "chrome-error://chromewebdata/", "about:blank"), child.url
        assert child.locator("#chat").count() == 0

    # On an allowed site, only the widget's page may be framed: the full chat page keeps DENY.
    with BusinessSite(app, site_port) as allowed:
        page = chromium.new_page(viewport=DESKTOP)
        widget = Widget(page, app)
        page.goto(allowed.url + "/frame-chat-page")
        deadline = time.monotonic() + 10
        while not any("frame-ancestors" in m or "X-Frame-Options" in m for m in widget.console):
            assert time.monotonic() < deadline, widget.console
            page.wait_for_timeout(50)
        assert page.frame_locator("#direct").locator("#chat").count() == 0


def test_launcher_and_panel_pass_axe(site: BusinessSite, app: str, chromium: Browser) -> None:
    context = chromium.new_context(viewport=DESKTOP, bypass_csp=True)
    page = context.new_page()
    widget = Widget(page, app)
    page.goto(site.url + "/")
    expect(widget.launcher).to_be_visible()
    found = {"closed": axe(page.main_frame, "chatdesk-widget")}
    widget.open()
    found["open"] = axe(page.main_frame, "chatdesk-widget")
    found["frame"] = axe(page.frames[1], "html")
    failing = {name: [v for v in vs if v["impact"] in ("serious", "critical")] for name, vs in found.items()}
    assert failing == {"closed": [], "open": [], "frame": []}, failing
    context.close()


def axe(frame, include: str) -> list[dict]:
    frame.add_script_tag(path=str(AXE))
    return frame.evaluate(
        """async (include) => {
            const result = await axe.run({include: [[include]]}, {resultTypes: ["violations"]});
            return result.violations.map(v => ({id: v.id, impact: v.impact, targets: v.nodes.map(n => n.target)}));
        }""",
        include,
    )


# --- a call from the widget ----------------------------------------------------------------------


def spoken_lines() -> list[str]:
    from chatdesk.conversations.models import Message

    return list(Message.objects.filter(channel="voice").exclude(role="event").values_list("text", flat=True))


@contextmanager
def chromium_with_microphone(tmp_path: Path) -> Iterator[Browser]:
    """Chromium with a microphone that hears silence, so nothing interrupts the assistant's greeting."""
    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(b"\0\0" * 48000 * 2)
    args = [
        *CHROMIUM_ARGS,
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={silence}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_the_call_button_in_the_widget_places_a_call_that_the_widget_keeps(
    business, fake_openai, tmp_path: Path, site_port: int
) -> None:
    extra = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_openai.base_url}
    with app_server(tmp_path, site_port, extra) as app, BusinessSite(app, site_port) as site:
        with chromium_with_microphone(tmp_path) as browser:
            context = browser.new_context(viewport=DESKTOP)
            page = context.new_page()
            widget = Widget(page, app)
            page.goto(site.url + "/services")
            frame = widget.open()
            expect(frame.locator("#voice")).to_have_attribute("data-voice-enabled", "true")
            frame.locator("#call-button").click()
            expect(frame.locator("#voice")).to_have_attribute(
                "data-call-state", re.compile("listening|thinking|speaking"), timeout=15_000
            )
            # The assistant greets first: its audio came through the app into the frame, and played.
            expect(frame.locator("#voice")).to_have_attribute(
                "data-played-ms", re.compile(r"^[1-9]\d*$"), timeout=15_000
            )
            session = frame.locator("#chat").get_attribute("data-session")
            assert session
            # voice.js ties the frame to the call's conversation with a (partitioned) cookie.
            deadline = time.monotonic() + 10
            while "chatdesk_session" not in {c["name"] for c in context.cookies(app)}:
                assert time.monotonic() < deadline, "no session cookie after the call started"
                page.wait_for_timeout(50)
            frame.locator("#call-end").click()
            expect(frame.locator("#voice")).to_have_attribute("data-call-state", "idle", timeout=10_000)

            page.reload()
            frame = widget.open()
            assert frame.locator("#chat").get_attribute("data-session") == session
            # The server renders what was said on the call in the frame again.
            spoken = orm(spoken_lines)
            assert spoken
            expect(frame.locator("#transcript li.msg .text")).to_have_text(spoken)
            assert widget.console == []
            context.close()

    conversations = orm(widget_conversations)
    assert len(conversations) == 1
    conversation = conversations[0]
    assert conversation["channel"] == "voice" and conversation["has_call"]
    assert conversation["from_widget"] and conversation["widget_page"] == site.url + "/services"
