"""Voice calls in headless Chromium: the browser side of voice/PROTOCOL.md.

Three layers, from the inside out:

- The DSP in static/voice-capture-worklet.js (resampler, PCM16 framing) on known signals,
  in the page and inside a real AudioWorklet (OfflineAudioContext).
- static/voice.js against a scripted server: Playwright's `route_web_socket` stands in for
  our consumer, so every protocol rule (no audio before `ready`, 40 ms frames, playback
  reports, flush, mute, hangup, errors) is checked from the browser's side alone.
- A whole call end to end: Chromium's fake microphone plays speech made with espeak-ng,
  the real app runs under daphne (ASGI, so WebSockets work) against the test database,
  and tests/fake_openai plays OpenAI's Realtime API. The caller books a visit by voice.

Chromium launches with a fake microphone and speaker and with autoplay allowed; it never
downloads anything (Debian's /usr/bin/chromium, CHROMIUM_PATH to override).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Browser, Page, WebSocket, WebSocketRoute, expect, sync_playwright

from tests.audio import speech_wav
from tests.browser import CHROMIUM_ARGS, CHROMIUM_PATH, DESKTOP, PHONE, orm
from tests.fake_openai import FunctionCall, RealtimeReply, fake_openai_fixture  # noqa: F401  (registers `fake_openai`)
from tests.servers import free_port, subprocess_database_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
CALL_PATH = "/api/v1/chat/voice/call"
FRAME_BYTES = 1920  # 40 ms of 24 kHz PCM16 mono
BYTES_PER_MS = 48
SAID = "I need my furnace repaired on Wednesday"
BOOKING_NUMBER = re.compile(r"BK-\d{4}-\d{6}")


def chromium_args(microphone_wav: Path | None) -> list[str]:
    args = [
        *CHROMIUM_ARGS,
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
    ]
    if microphone_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone_wav}")
    return args


@contextmanager
def chromium(microphone_wav: Path | None = None) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=chromium_args(microphone_wav), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """What a page wrote to its console: errors (including CSP violations) fail the tests."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def tone_pcm16(ms: float, *, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    count = round(ms * 24)
    step = 2 * math.pi * frequency / 24000
    return struct.pack(f"<{count}h", *(int(amplitude * math.sin(step * i)) for i in range(count)))


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    # Rate-limit counters live in the cache and key on the client IP (always 127.0.0.1 here).
    cache.clear()


@pytest.fixture
def microphone(tmp_path: Path) -> Path:
    """Speech, then 4 s of silence: one caller turn per loop of Chromium's fake microphone."""
    return speech_wav(tmp_path, SAID, lead_s=0.5, tail_s=4.0)


# --- the DSP on known signals --------------------------------------------------------------

RESAMPLE_JS = """
([inRate, freq, block]) => {
  const {Resampler} = window.ChatdeskVoiceDsp;
  const seconds = 1;
  const n = Math.round(inRate * seconds);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 0.5 * Math.sin(2 * Math.PI * freq * i / inRate);
  const r = new Resampler(inRate, 24000);
  const out = [];
  for (let i = 0; i < n; i += block) out.push(...r.process(x.subarray(i, i + block)));
  // Skip the filter's start-up, then measure.
  const y = out.slice(500, out.length - 500);
  let crossings = 0;
  for (let i = 1; i < y.length; i++) if ((y[i - 1] < 0) !== (y[i] < 0)) crossings++;
  let re = 0, im = 0, power = 0;
  for (let i = 0; i < y.length; i++) {
    re += y[i] * Math.cos(2 * Math.PI * freq * i / 24000);
    im += y[i] * Math.sin(2 * Math.PI * freq * i / 24000);
    power += y[i] * y[i];
  }
  return {
    length: out.length,
    frequency: crossings / 2 / (y.length / 24000),
    amplitude: 2 * Math.hypot(re, im) / y.length,
    rms: Math.sqrt(power / y.length),
    head: out.slice(0, 2000),
  };
}
"""


def test_resampler_keeps_frequency_and_length_and_rejects_aliases(live_server, settings) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    with chromium() as browser:
        page = browser.new_page()
        console = Console(page)
        page.goto(live_server.url + "/voice/")
        # The same file the AudioWorklet loads; outside a worklet it only defines the DSP.
        page.add_script_tag(url="/static/voice-capture-worklet.js")

        for in_rate in (48000, 44100, 32000, 16000):
            result = page.evaluate(RESAMPLE_JS, [in_rate, 1000, 128])
            # 1 s in -> 24 000 samples out, less the filter's look-ahead (< 2 ms) still held back.
            assert 23_950 <= result["length"] <= 24_000, (in_rate, result["length"])
            assert result["frequency"] == pytest.approx(1000, abs=2), in_rate
            assert result["amplitude"] == pytest.approx(0.5, rel=0.01), in_rate

        # Speech band passes untouched at the common rates...
        for frequency in (300, 3400, 7000):
            result = page.evaluate(RESAMPLE_JS, [48000, frequency, 128])
            assert result["amplitude"] == pytest.approx(0.5, rel=0.02), frequency
        # ...and what the 24 kHz output can't represent is filtered out instead of folding
        # back (18 kHz would alias to 6 kHz, 14 kHz to 10 kHz).
        for in_rate, frequency in ((48000, 18000), (48000, 14000), (44100, 20000)):
            result = page.evaluate(RESAMPLE_JS, [in_rate, frequency, 128])
            assert 20 * math.log10(result["rms"] / (0.5 / math.sqrt(2)) + 1e-12) < -60, (in_rate, frequency)

        # Stateful across blocks: 128-sample render quanta, odd sizes and one big block agree.
        quanta = page.evaluate(RESAMPLE_JS, [44100, 1000, 128])["head"]
        for block in (1, 37, 44100):
            other = page.evaluate(RESAMPLE_JS, [44100, 1000, block])["head"]
            assert max(abs(a - b) for a, b in zip(quanta, other, strict=True)) < 1e-6, block

        # PCM16 framing: little-endian, clipped, fixed 960-sample frames.
        framed = page.evaluate(
            """() => {
              const framer = new window.ChatdeskVoiceDsp.Pcm16Framer(960);
              const input = new Float32Array(2000);
              input[0] = 1.5; input[1] = -1.5; input[2] = 0.5; input[3] = -0.25;
              const frames = framer.push(input);
              const bytes = new Uint8Array(frames[0]);
              return {sizes: frames.map((f) => f.byteLength), first: Array.from(bytes.slice(0, 8)), left: framer.fill};
            }"""
        )
        assert framed["sizes"] == [FRAME_BYTES, FRAME_BYTES]
        assert framed["left"] == 2000 - 2 * 960
        assert framed["first"] == list(struct.pack("<4h", 32767, -32768, 16384, -8192))
        assert console.errors == []


def test_capture_worklet_makes_24khz_frames_from_any_context_rate(live_server, settings) -> None:
    """The real AudioWorklet, rendered offline: a 1 kHz tone at 44.1 kHz in, PCM16 24 kHz frames out."""
    settings.OPENAI_API_KEY = "sk-test"
    with chromium() as browser:
        page = browser.new_page()
        console = Console(page)
        page.goto(live_server.url + "/voice/")
        result = page.evaluate(
            """async ([url, rate]) => {
              const ctx = new OfflineAudioContext(1, rate * 2, rate);
              await ctx.audioWorklet.addModule(url);
              const osc = new OscillatorNode(ctx, {frequency: 1000});
              const gain = new GainNode(ctx, {gain: 0.5});
              const node = new AudioWorkletNode(ctx, "chatdesk-capture", {
                numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
                channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers",
              });
              const frames = [];
              node.port.onmessage = (event) => frames.push(event.data.pcm);
              osc.connect(gain).connect(node).connect(ctx.destination);
              osc.start();
              await ctx.startRendering();
              await new Promise((resolve) => setTimeout(resolve, 300));  // last port messages
              const samples = [];
              for (const frame of frames) {
                const view = new DataView(frame);
                for (let i = 0; i < frame.byteLength; i += 2) samples.push(view.getInt16(i, true));
              }
              const y = samples.slice(1000);
              let crossings = 0;
              for (let i = 1; i < y.length; i++) if ((y[i - 1] < 0) !== (y[i] < 0)) crossings++;
              const peak = Math.max(...y.map(Math.abs));
              return {sizes: frames.map((f) => f.byteLength), frequency: crossings / 2 / (y.length / 24000), peak};
            }""",
            ["/static/voice-capture-worklet.js", 44100],
        )
        # 2 s at 24 kHz = 48 000 samples = 50 frames of 960 (the last may wait for look-ahead).
        assert set(result["sizes"]) == {FRAME_BYTES}
        assert 49 <= len(result["sizes"]) <= 50
        assert result["frequency"] == pytest.approx(1000, abs=2)
        assert result["peak"] == pytest.approx(0.5 * 32767, rel=0.02)
        assert console.errors == []


# --- voice.js against a scripted server (route_web_socket) ----------------------------------


class ScriptedServer:
    """Our consumer's side of the protocol, played by the test through Playwright's WebSocket routing."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sockets: list[WebSocketRoute] = []
        self.binary: list[int] = []
        self.text: list[dict[str, Any]] = []
        self.closed: list[int | None] = []
        page.route_web_socket(f"**{CALL_PATH}", self._connect)

    def _connect(self, ws: WebSocketRoute) -> None:
        self.sockets.append(ws)
        ws.on_message(self._message)
        ws.on_close(lambda code, reason: self.closed.append(code))

    def _message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.binary.append(len(message))
        else:
            self.text.append(json.loads(message))

    @property
    def ws(self) -> WebSocketRoute:
        return self.sockets[-1]

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def audio(self, ms: int, chunk_ms: int = 100) -> None:
        for _ in range(ms // chunk_ms):
            self.ws.send(tone_pcm16(chunk_ms))

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got text={self.text[-5:]}")
            self.page.wait_for_timeout(25)

    def playback(self, item_id: str) -> list[int]:
        return [m["played_ms"] for m in self.text if m.get("type") == "playback" and m.get("item_id") == item_id]

    def state(self) -> str:
        return self.page.get_attribute("#voice", "data-call-state") or ""


def started_by_a_call() -> str:
    """A conversation as the server starts it for a call with nothing to continue; its session id."""
    from chatdesk.conversations.models import Conversation

    return Conversation.objects.create(
        number="INT-2026-000001", channel=Conversation.ChannelKind.VOICE, model="gpt-realtime-2.1-mini", has_call=True
    ).session_id


def open_call_page(browser: Browser, url: str, viewport: dict | None = None) -> tuple[Page, ScriptedServer, Console]:
    page = browser.new_page(viewport=viewport or PHONE)
    console = Console(page)
    server = ScriptedServer(page)
    page.goto(url)
    expect(page.locator("#voice")).to_have_attribute("data-ready", "true")
    return page, server, console


def test_call_protocol_from_the_browser_side(live_server, settings, microphone: Path) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    with chromium(microphone) as browser:
        page, server, console = open_call_page(browser, live_server.url + "/")
        expect(page.locator("#chat")).to_have_attribute("data-enhanced", "true")
        assert page.get_attribute("#chat", "data-session") == ""
        page.evaluate(
            """() => { window.sessionEvents = [];
                 document.getElementById('chat').addEventListener('chatdesk:session',
                   (event) => window.sessionEvents.push(event.detail.session_id)); }"""
        )
        requests: list[str] = []
        page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
        page.click("#call-button")
        server.wait(lambda: bool(server.sockets), what="the WebSocket")
        assert server.state() == "connecting"
        # No conversation is started before the call: the call itself starts a voice one (the
        # page has nothing typed), so no text conversation with a greeting nobody saw.
        assert page.get_attribute("#chat", "data-session") == ""
        assert not any("/api/v1/chat/session/new" in r for r in requests)

        # Nothing is streamed before `ready`: the upstream isn't there to take it yet.
        page.wait_for_timeout(600)
        assert server.binary == []
        # The server started the call's conversation; the page adopts it and gets its cookie.
        session_id = orm(started_by_a_call)
        server.send(type="ready", conversation_number="INT-2026-000001", session_id=session_id)
        server.send(type="state", state="listening")
        expect(page.locator("#call-status")).to_have_text("Listening")
        expect(page.locator("#chat")).to_have_attribute("data-session", session_id)
        assert page.evaluate("window.sessionEvents") == [session_id]
        server.wait(
            lambda: any(c["name"] == "chatdesk_session" for c in page.context.cookies()), what="the session cookie"
        )
        assert "chatdesk_session=" not in page.evaluate("document.cookie")  # HttpOnly, as it should be

        # 40 ms frames of 24 kHz PCM16, in real time.
        server.wait(lambda: len(server.binary) >= 5, what="first frames")
        first, started = len(server.binary), time.monotonic()
        page.wait_for_timeout(2000)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert set(server.binary) == {FRAME_BYTES}
        assert (len(server.binary) - first) * 40 == pytest.approx(elapsed_ms, rel=0.15)

        # The assistant speaks: transcript deltas then the final text, audio played and reported.
        server.send(type="audio_item", item_id="item_a1")
        server.send(type="state", state="speaking")
        server.send(type="transcript", role="assistant", item_id="item_a1", text="Hello, ", final=False)
        server.send(
            type="transcript", role="assistant", item_id="item_a1", text="<img src=x onerror=alert(1)>", final=False
        )
        server.audio(1000)
        line = page.locator('#transcript li.msg.assistant[data-item-id="item_a1"]')
        expect(line.locator(".text")).to_have_text("Hello, <img src=x onerror=alert(1)>")
        expect(line).to_have_class(re.compile(r"\blive\b"))
        server.send(type="transcript", role="assistant", item_id="item_a1", text="Hello, how can I help?", final=True)
        expect(line.locator(".text")).to_have_text("Hello, how can I help?")
        expect(line).not_to_have_class(re.compile(r"\blive\b"))
        assert page.locator("#transcript img").count() == 0
        # All of it, to the millisecond: the server compares this with what it sent to tell a
        # reply that was heard in full from one that was cut off.
        server.wait(lambda: server.playback("item_a1")[-1:] == [1000], what="a1 played in full")
        reports = server.playback("item_a1")
        assert reports == sorted(reports)  # never goes backwards
        assert len([r for r in reports if 0 < r < 1000]) >= 3  # progress while playing, not only at the end
        assert int(page.get_attribute("#voice", "data-played-ms") or 0) == 1000

        # One reply failed: the page says sorry (not an error: the call goes on) until the
        # assistant speaks again.
        server.send(type="notice", code="reply_failed", message="Sorry, I missed that. Could you say it again?")
        expect(page.locator("#call-note")).to_have_text("Sorry, I missed that. Could you say it again?")
        expect(page.locator("#voice")).to_have_attribute("data-call-notice", "reply_failed")
        expect(page.locator("#call-note")).not_to_have_class(re.compile("call-note-error"))

        # The caller answers; their transcript comes late, after our answer started: it still
        # goes above the answer it prompted.
        server.send(type="state", state="listening")
        server.send(type="state", state="thinking")
        server.send(type="audio_item", item_id="item_a2")
        expect(page.locator("#call-note")).to_be_hidden()
        assert page.get_attribute("#voice", "data-call-notice") is None
        server.send(type="transcript", role="assistant", item_id="item_a2", text="Sure, let me ", final=False)
        server.audio(3000)
        server.send(type="transcript", role="customer", item_id="item_c1", text=SAID, final=True)
        lines = page.locator("#transcript li.msg.voice")
        expect(lines).to_have_count(3)
        assert lines.nth(1).get_attribute("data-item-id") == "item_c1"
        assert lines.nth(2).get_attribute("data-item-id") == "item_a2"

        # Barge-in: `flush` silences the queue at once and reports where a2 stopped.
        server.wait(lambda: any(0 < r for r in server.playback("item_a2")), what="a2 playing")
        played_before = int(page.get_attribute("#voice", "data-played-ms") or 0)
        reports_before = len(server.playback("item_a2"))
        server.send(type="flush")
        server.wait(lambda: len(server.playback("item_a2")) > reports_before, what="the flush report")
        cut_at = server.playback("item_a2")[-1]
        assert 0 < cut_at < 2500
        # Audio still arriving for the flushed item must not play.
        server.audio(500)
        page.wait_for_timeout(800)
        assert server.playback("item_a2")[-1] == cut_at
        assert int(page.get_attribute("#voice", "data-played-ms") or 0) - played_before < 600
        server.send(
            type="transcript", role="assistant", item_id="item_a2", text="Sure, let me", final=True, interrupted=True
        )
        expect(page.locator('[data-item-id="item_a2"]')).to_have_class(re.compile(r"\binterrupted\b"))

        # A booking made on the call shows the same card as a typed booking.
        server.send(
            type="booking",
            booking={
                "booking_number": "BK-2026-000042",
                "service": "HVAC Repair",
                "when": "Wednesday December 2, 2026 at 9:00 AM",
                "technician": "Alice T.",
                "address": "12 Queen St W",
                "estimated_price": "$200–$600",
            },
        )
        card = page.locator('#transcript li.booking[data-booking="BK-2026-000042"]')
        expect(card).to_contain_text("Booking confirmed")
        expect(card).to_contain_text("Alice T.")

        # Mute: no frames, same socket; unmute: frames again.
        page.click("#call-mute")
        expect(page.locator("#call-mute")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#call-status")).to_have_text("Muted")
        page.wait_for_timeout(200)
        muted_at = len(server.binary)
        page.wait_for_timeout(1000)
        assert len(server.binary) == muted_at
        assert len(server.sockets) == 1 and not server.closed
        page.click("#call-mute")
        server.wait(lambda: len(server.binary) > muted_at + 5, what="frames after unmute")

        # Hang up: playback report first, then `hangup`, then the socket closes; typing works.
        server.send(type="audio_item", item_id="item_a3")
        server.audio(2000)
        server.wait(lambda: any(r > 0 for r in server.playback("item_a3")), what="a3 playing")
        page.click("#call-end")
        server.wait(lambda: any(m["type"] == "hangup" for m in server.text), what="hangup")
        types = [m["type"] for m in server.text]
        hangup_at = types.index("hangup")
        assert types[hangup_at - 1] == "playback" and server.text[hangup_at - 1]["item_id"] == "item_a3"
        frames_at_hangup = len(server.binary)
        server.send(type="ended", reason="customer_hung_up")
        server.ws.close(code=1000)
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle")
        expect(page.locator("#call-note")).to_have_text("Call ended.")
        assert len(server.binary) == frames_at_hangup
        assert page.locator("#transcript li.msg.voice.live").count() == 0
        page.locator("#message").fill("Thanks!")
        expect(page.locator("#message")).to_be_editable()
        assert console.errors == []


def test_server_error_offers_text_and_focuses_the_text_box(live_server, settings, microphone: Path) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    with chromium(microphone) as browser:
        page, server, console = open_call_page(browser, live_server.url + "/")
        page.click("#call-button")
        server.wait(lambda: bool(server.sockets), what="the WebSocket")
        # The greeting may arrive before the capture worklet has even loaded.
        server.send(type="audio_item", item_id="item_greeting")
        server.audio(300)
        # The call started its own conversation (nothing typed on the page yet): adopt it.
        session_id = orm(started_by_a_call)
        server.send(type="ready", conversation_number="INT-2026-000001", session_id=session_id)
        expect(page.locator("#chat")).to_have_attribute("data-session", session_id)
        message = "The voice line dropped. <b>Please</b> keep typing: your conversation is saved."
        server.send(type="error", code="upstream_error", message=message, fallback="chat")
        server.send(type="ended", reason="upstream_error")
        server.ws.close(code=4503)
        note = page.locator("#call-note")
        expect(note).to_contain_text(message)  # shown as text, markup and all
        assert note.locator("b").count() == 0
        expect(page.locator("#message")).to_be_focused()
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle")
        expect(page.locator("#call-button")).to_be_visible()
        assert console.errors == []


def test_typing_after_a_first_call_on_the_chat_page_continues_its_conversation(
    live_server, settings, microphone: Path
) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    with chromium(microphone) as browser:
        page, server, _console = open_call_page(browser, live_server.url + "/")
        expect(page.locator("#chat")).to_have_attribute("data-enhanced", "true")
        page.click("#call-button")
        server.wait(lambda: bool(server.sockets), what="the WebSocket")
        session_id = orm(started_by_a_call)
        server.send(type="ready", conversation_number="INT-2026-000001", session_id=session_id)
        expect(page.locator("#chat")).to_have_attribute("data-session", session_id)
        page.click("#call-end")
        server.wait(lambda: any(m["type"] == "hangup" for m in server.text), what="hangup")
        server.ws.close(code=1000)
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle")

        sent: list[dict[str, Any]] = []

        def answer(route) -> None:
            sent.append(route.request.post_data_json)
            reply = {"conversation_number": "INT-2026-000001", "reply": "OK", "mode": "model", "tool_calls": []}
            route.fulfill(json={**reply, "bookings": [], "latency_ms": 1, "paused": False})

        page.route("**/api/v1/chat/message", answer)
        page.locator("#message").fill("One more thing")
        page.locator("#send").click()
        expect(page.locator("#transcript li.msg.assistant .text").last).to_have_text("OK")
        assert [body["session_id"] for body in sent] == [session_id]


def test_unanswered_call_gives_up_with_a_message(live_server, settings, microphone: Path) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    with chromium(microphone) as browser:
        page, server, _console = open_call_page(browser, live_server.url + "/")
        page.click("#call-button")
        server.wait(lambda: bool(server.sockets), what="the WebSocket")
        server.ws.close(code=4429, reason="too many calls")
        expect(page.locator("#call-note")).to_contain_text("Too many calls right now")
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle")
        assert server.binary == []


@pytest.mark.parametrize(
    ("error_name", "expected"),
    [
        ("NotAllowedError", "The microphone is blocked for this site"),
        ("NotFoundError", "We couldn't find a microphone"),
        ("NotReadableError", "Your microphone is busy"),
    ],
)
def test_microphone_problems_are_explained(live_server, settings, error_name: str, expected: str) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    with chromium(None) as browser:
        page = browser.new_page(viewport=PHONE)
        console = Console(page)
        # What the browser does when the customer says no, or there is no microphone at all.
        page.add_init_script(
            f"navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('no', '{error_name}'));"
        )
        server = ScriptedServer(page)
        page.goto(live_server.url + "/")
        page.click("#call-button")
        note = page.locator("#call-note")
        expect(note).to_contain_text(expected)
        expect(note).to_have_class(re.compile("call-note-error"))
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle")
        assert server.sockets == []  # no call is placed without a microphone
        page.screenshot(path=f"/tmp/voice_mic_{error_name}.png")
        assert console.errors == []


@pytest.mark.parametrize("path", ["/", "/voice/"])
def test_without_openai_key_the_call_button_explains_and_offers_text(live_server, settings, path: str) -> None:
    settings.OPENAI_API_KEY = ""
    with chromium(None) as browser:
        page = browser.new_page(viewport=PHONE)
        console = Console(page)
        server = ScriptedServer(page)
        page.goto(live_server.url + path)
        expect(page.locator("#voice")).to_have_attribute("data-voice-enabled", "false")
        expect(page.locator("#call-hint")).to_have_text("Voice calls are off here")
        page.click("#call-button")
        note = page.locator("#call-note")
        expect(note).to_contain_text("OPENAI_API_KEY")
        if path == "/":
            expect(page.locator("#message")).to_be_focused()
        else:
            expect(note.get_by_role("link", name="Type instead")).to_have_attribute("href", "/")
        assert server.sockets == []
        page.screenshot(path=f"/tmp/voice_off_{'chat' if path == '/' else 'voice'}.png")
        assert console.errors == []


def test_voice_page_renders_under_the_csp(client, settings) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    response = client.get("/voice/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert 'data-voice-enabled="true"' in html
    assert f'data-url-call="{CALL_PATH}"' in html
    assert "<script>" not in html and " style=" not in html and "<style" not in html
    assert client.post("/voice/").status_code == 405


# --- a whole call: real app under daphne, fake OpenAI, fake microphone -----------------------


@pytest.fixture
def asgi_server(business, fake_openai, tmp_path: Path) -> Iterator[str]:
    """The app under daphne's runserver (HTTP + WebSocket) on the test database; its base URL.

    DEBUG stays off, as in production; --insecure makes runserver serve /static/ anyway
    (plain `daphne chatdesk.asgi:application` serves no static files at all).
    """
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": subprocess_database_url(),
        "SECRET_KEY": "voice-browser-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "BUSINESS_TIMEZONE": django_settings.BUSINESS_TIMEZONE,
        "DB_POOL_MIN": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)  # one process: the in-memory channel layer is the right one
    log_path = tmp_path / "server.log"
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
                with urllib.request.urlopen(base_url + "/static/voice.js", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the ASGI server did not start:\n" + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Shown by pytest when the test fails.
        print("--- ASGI server log (tail) ---\n" + log_path.read_text(errors="replace")[-6000:])


def first_slot_days_ahead(business, days: int = 3):
    """A real free slot a few days out, computed now: both processes use the real clock."""
    from bookings.selectors import available_slots

    today = timezone.localdate()
    slots = available_slots(
        service=business.repair, start_date=today + timedelta(days=days), end_date=today + timedelta(days=days + 10)
    )
    assert slots, "the business fixture should have free HVAC slots"
    return slots[0]


CONFIRMATION = "You're booked. Your booking number is on your screen."


def script_booking_call(fake_openai, business) -> Any:
    """Script the Realtime fake for a call that books a real free slot; return that slot.

    Replies go by what the conversation holds, not by position, so the script works whether
    or not the server greets first and whatever the caller typed before the call.
    """
    slot = first_slot_days_ahead(business)
    booking_args = {
        "service_id": "hvac-repair",
        "start": slot.start.astimezone(ZoneInfo(django_settings.BUSINESS_TIMEZONE)).isoformat(),
        "technician_id": None,
        "customer_name": "Dana Caller",
        "customer_phone": "416-555-0123",
        "customer_email": None,
        "address": "12 Queen St W, Toronto",
        "notes": "Furnace repair, booked by voice",
        "customer_confirmed": True,
    }
    realtime = fake_openai.realtime
    realtime.queue_transcript(SAID)  # the first thing the caller says; later turns are "Thanks."
    realtime.default_transcript = "Thanks."
    booked: list[bool] = []

    def respond(items: list[dict[str, Any]]):
        if items and items[-1].get("type") == "function_call_output":
            return RealtimeReply(text=CONFIRMATION, audio_ms=1500)
        # Spoken turns only: the typed chat before the call is in the conversation too.
        caller_spoke = any(
            i.get("role") == "user" and any(part.get("type") == "input_audio" for part in i.get("content") or [])
            for i in items
        )
        if caller_spoke and not booked:
            booked.append(True)
            return FunctionCall("create_booking", booking_args)
        if caller_spoke:
            return RealtimeReply(text="Anything else?", audio_ms=600)
        return RealtimeReply(text="Hi, Maple Home Services. How can I help?", audio_ms=1200)

    realtime.respond_with(respond)
    return slot


def test_voice_call_books_a_visit_end_to_end(asgi_server: str, business, fake_openai, microphone: Path) -> None:
    from bookings.models import Booking
    from chatdesk.conversations.models import Conversation

    slot = script_booking_call(fake_openai, business)
    confirmation = CONFIRMATION
    realtime = fake_openai.realtime
    fake_openai.queue_text("Hi! Sure, how can I help with your heating?")
    fake_openai.queue_text("Glad to help. Anything else?")

    sent_binary: list[int] = []
    sent_text: list[dict[str, Any]] = []
    received_text: list[dict[str, Any]] = []

    def watch(ws: WebSocket) -> None:
        if CALL_PATH not in ws.url:
            return
        ws.on(
            "framesent",
            lambda payload: (
                sent_binary.append(len(payload))
                if isinstance(payload, bytes)
                else sent_text.append(json.loads(payload))
            ),
        )
        ws.on(
            "framereceived",
            lambda payload: received_text.append(json.loads(payload)) if isinstance(payload, str) else None,
        )

    with chromium(microphone) as browser:
        page = browser.new_page(viewport=PHONE)
        console = Console(page)
        page.on("websocket", watch)
        page.goto(asgi_server + "/")
        expect(page.locator("#chat")).to_have_attribute("data-enhanced", "true")

        # Typed first: the call must continue this conversation (the session cookie).
        page.locator("#message").fill("Hi, my furnace is acting up")
        page.locator("#send").click()
        expect(page.locator("#transcript li.msg.assistant .text").last).to_have_text(
            "Hi! Sure, how can I help with your heating?"
        )
        session_before = page.get_attribute("#chat", "data-session")
        assert session_before

        page.click("#call-button")
        expect(page.locator("#voice")).to_have_attribute(
            "data-call-state", re.compile("listening|thinking|speaking"), timeout=15_000
        )
        assert any(m.get("type") == "ready" for m in received_text)
        ready = next(m for m in received_text if m.get("type") == "ready")
        assert ready["session_id"] == session_before

        # The caller's words, then the booking made by the function call, then the spoken confirmation.
        customer_line = page.locator("#transcript li.msg.customer.voice .text", has_text=SAID)
        expect(customer_line.first).to_be_visible(timeout=20_000)
        card = page.locator("#transcript li.booking")
        expect(card).to_have_count(1, timeout=20_000)
        number = card.get_attribute("data-booking") or ""
        assert BOOKING_NUMBER.fullmatch(number)
        expect(card).to_contain_text("HVAC Repair")
        expect(page.locator("#transcript li.msg.assistant.voice .text", has_text=confirmation).first).to_be_visible(
            timeout=20_000
        )

        # In the order it happened: what the caller said, the booking it led to, the confirmation.
        order = page.evaluate(
            """(said) => Array.from(document.querySelectorAll('#transcript > li')).map((li) =>
                 li.classList.contains('booking') ? 'booking'
                 : li.classList.contains('voice') && li.textContent.includes(said) ? 'said'
                 : li.classList.contains('voice') && li.textContent.includes("You're booked") ? 'confirmed'
                 : null).filter(Boolean)""",
            SAID,
        )
        assert order[:3] == ["said", "booking", "confirmed"]

        # The assistant's audio really played, and the server was told how much.
        page.wait_for_function(
            "() => Number(document.getElementById('voice').dataset.playedMs) >= 1400", timeout=20_000
        )
        played = [m for m in sent_text if m.get("type") == "playback"]
        assert played and max(m["played_ms"] for m in played) > 0

        # Microphone audio: 24 kHz PCM16 in 1 920-byte frames at 48 bytes per ms of call time.
        assert sent_binary and set(sent_binary) == {FRAME_BYTES}
        bytes_before, t_before = realtime.pcm_bytes_received, time.monotonic()
        page.wait_for_timeout(4000)
        bytes_after, t_after = realtime.pcm_bytes_received, time.monotonic()
        rate = (bytes_after - bytes_before) / ((t_after - t_before) * 1000)
        assert rate == pytest.approx(BYTES_PER_MS, rel=0.15)
        assert realtime.pcm_bytes_received % 2 == 0
        page.screenshot(path="/tmp/voice_e2e_call_phone.png", full_page=True)

        page.click("#call-end")
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle", timeout=10_000)
        assert any(m.get("type") == "hangup" for m in sent_text)
        sent_total = sum(sent_binary)
        # Everything the browser sent reached OpenAI (the server may drop the last frame or two).
        assert sent_total - 4 * FRAME_BYTES <= realtime.pcm_bytes_received <= sent_total

        # After the call the customer keeps typing in the same conversation.
        page.locator("#message").fill("Thank you!")
        page.locator("#send").click()
        expect(page.locator("#transcript li.msg.assistant .text").last).to_have_text("Glad to help. Anything else?")
        assert page.get_attribute("#chat", "data-session") == session_before
        page.screenshot(path="/tmp/voice_e2e_after_phone.png", full_page=True)
        assert [e for e in console.errors if "Content Security Policy" in e] == []
        assert console.errors == []

    booking = orm(lambda: Booking.objects.select_related("customer").get(number=number))
    assert booking.start == slot.start
    conversations = orm(lambda: list(Conversation.objects.all()))
    assert len(conversations) == 1
    assert conversations[0].session_id == session_before
    # Typed first, then called: started in chat, with a call in it (counted in both channels).
    assert conversations[0].channel == "chat" and conversations[0].has_call


def test_call_first_on_the_voice_page_then_type_in_the_same_conversation(
    asgi_server: str, business, fake_openai, microphone: Path
) -> None:
    """No chat before the call: the call starts the conversation, the chat page continues it."""
    from chatdesk.conversations.models import Conversation

    script_booking_call(fake_openai, business)
    fake_openai.queue_text("You're welcome! See you on the day.")
    with chromium(microphone) as browser:
        page = browser.new_page(viewport=DESKTOP)
        console = Console(page)
        page.goto(asgi_server + "/voice/")
        expect(page.locator("#voice")).to_have_attribute("data-ready", "true")
        page.click("#call-button")
        card = page.locator("#transcript li.booking")
        expect(card).to_have_count(1, timeout=30_000)
        number = card.get_attribute("data-booking") or ""
        expect(page.locator("#transcript li.msg.assistant.voice .text", has_text=CONFIRMATION)).to_be_visible(
            timeout=20_000
        )
        page.wait_for_function(
            "() => Number(document.getElementById('voice').dataset.playedMs) >= 1400", timeout=20_000
        )
        page.screenshot(path="/tmp/voice_e2e_voice_page_desktop.png")
        page.click("#call-end")
        expect(page.locator("#voice")).to_have_attribute("data-call-state", "idle", timeout=10_000)

        # "Chat instead": the chat page shows what was said on the call and the booking, and
        # what the customer types goes on in the same conversation.
        page.get_by_role("link", name="Chat instead").click()
        expect(page.locator("#chat")).to_have_attribute("data-enhanced", "true")
        expect(page.locator("#transcript li.msg.customer .text", has_text=SAID).first).to_be_visible()
        expect(page.locator(f'#transcript li.booking[data-booking="{number}"]')).to_be_visible()
        page.locator("#message").fill("Thank you!")
        page.locator("#send").click()
        expect(page.locator("#transcript li.msg.assistant .text").last).to_have_text(
            "You're welcome! See you on the day."
        )
        page.screenshot(path="/tmp/voice_e2e_then_chat_desktop.png", full_page=True)
        assert console.errors == []

    conversations = orm(lambda: list(Conversation.objects.all()))
    assert len(conversations) == 1
    assert conversations[0].booking_count == 1
    # Recorded as what it was: a voice conversation (then typed in), not a text one.
    assert conversations[0].channel == "voice" and conversations[0].has_call
    assert conversations[0].model == django_settings.OPENAI_REALTIME_MODEL
    instructions = fake_openai.realtime.connections[0].session["instructions"]
    assert "typing in the chat" not in instructions
    assert not [
        e
        for e in fake_openai.realtime.events
        if e["type"] == "conversation.item.create" and e["item"].get("type") == "message"
    ]
