"""Voice call limits and refusals: bad frames, Origin, no key, rates, idle and maximum length."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient

from chatdesk.conversations.models import Conversation, Message
from chatdesk.conversations.services import hash_ip
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.fake_openai.audio import silence_pcm16, sine_pcm16
from tests.servers import free_port, wait_for_port
from tests.test_voice_call import ORIGIN, Caller, conversation_of, fresh_limits, messages_of  # noqa: F401
from voice.wire import BadFrame, Frame, read_frame

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent
PLAYBACK_NEEDS = "playback needs item_id (string) and played_ms (integer >= 0)."


@pytest.fixture
def voice(fake_openai, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.VOICE_GREET_FIRST = False  # quiet calls: nothing but what each test does
    return fake_openai.realtime


async def refused_with(caller: Caller, frame: dict) -> tuple[int, dict]:
    await caller.connect()
    await caller.ws.send_to(**frame)
    error = await caller.expect("error")
    code = await caller.closed()
    await caller.leave()
    return code, error


@pytest.mark.parametrize(
    ("frame", "code", "error"),
    [
        ({"bytes_data": bytes(32 * 1024 + 2)}, 4413, "frame_too_large"),
        ({"bytes_data": bytes(1919)}, 4400, "bad_frame"),
        ({"text_data": "hello?"}, 4400, "bad_frame"),
        ({"text_data": "[1, 2]"}, 4400, "bad_frame"),
        ({"text_data": '{"type": "dance"}'}, 4400, "bad_frame"),
        ({"text_data": '{"type": "playback", "item_id": "item_1", "played_ms": -5}'}, 4400, "bad_frame"),
        ({"text_data": '{"type": "ping", "pad": "' + "x" * 5000 + '"}'}, 4413, "frame_too_large"),
    ],
    ids=[
        "audio-too-large",
        "odd-length",
        "not-json",
        "not-an-object",
        "unknown-type",
        "bad-playback",
        "text-too-large",
    ],
)
async def test_bad_frames_close_the_call_with_a_clear_code(voice, frame, code, error):
    caller = Caller()
    closed, message = await refused_with(caller, frame)
    assert (closed, message["code"]) == (code, error)
    assert caller.of("ended") == [{"type": "ended", "reason": "bad_frame"}]
    row = await Conversation.objects.aget(channel="voice")
    assert row.end_reason == "bad_frame"
    assert voice.connections[0].closed


@pytest.mark.parametrize(
    ("frame", "read"),
    [
        ({"data": bytes(4)}, Frame("audio", audio=bytes(4))),
        ({"data": b""}, Frame("audio")),
        (
            {"text": '{"type": "playback", "item_id": "item_1", "played_ms": 250}'},
            Frame("playback", item_id="item_1", played_ms=250),
        ),
        ({"text": '{"type": "hangup"}'}, Frame("hangup")),
        ({"text": '{"type": "ping"}'}, Frame("ping")),
        ({}, None),
        ({"data": bytes(3)}, BadFrame(4400, "Audio frames must hold whole 16-bit samples (an even length).")),
        ({"text": '{"type": "playback", "item_id": "i", "played_ms": true}'}, BadFrame(4400, PLAYBACK_NEEDS)),
    ],
)
def test_the_wire_reads_each_frame_the_protocol_allows(frame, read):
    # voice/wire.py alone, without a socket: what VoiceCall.receive acts on.
    assert read_frame(text=frame.get("text"), data=frame.get("data"), max_bytes=64, max_chars=200) == read


async def test_ping_is_answered_and_audio_is_relayed(voice):
    caller = Caller()
    await caller.connect()
    await caller.send({"type": "ping"})
    await caller.expect("pong")
    await caller.ws.send_to(bytes_data=silence_pcm16(40))
    await voice.wait_for_client_event_async("input_audio_buffer.append")
    assert voice.pcm_bytes_received == 40 * 48
    assert await caller.hang_up() == 1000


@pytest.mark.parametrize(
    "headers",
    [
        [(b"origin", b"https://evil.example.com"), (b"host", b"testserver")],
        [(b"host", b"testserver")],
    ],
    ids=["foreign-origin", "no-origin"],
)
async def test_a_page_from_another_origin_cannot_open_a_call(voice, headers):
    caller = Caller(headers=headers)
    connected, _ = await caller.ws.connect()
    assert not connected  # refused during the handshake: the browser sees HTTP 403
    assert voice.connections == []
    assert not await Conversation.objects.aexists()


async def test_without_an_api_key_voice_is_unavailable(settings):
    settings.OPENAI_API_KEY = ""
    caller = Caller()
    connected, _ = await caller.ws.connect()
    assert connected
    error = await caller.expect("error")
    assert error["code"] == "voice_unavailable" and "OPENAI_API_KEY" in error["message"]
    assert error["fallback"] == "chat"
    assert await caller.closed() == 4503
    await caller.leave()
    assert not await Conversation.objects.aexists()


async def test_too_many_frames_per_second_is_rate_limited(voice, settings):
    settings.VOICE_MAX_FRAMES_PER_SECOND = 10
    caller = Caller()
    ready = await caller.connect()
    for _ in range(30):
        await caller.ws.send_to(bytes_data=silence_pcm16(40))
    error = await caller.expect("error")
    assert error["code"] == "rate_limited"
    assert (await caller.expect("ended"))["reason"] == "limit_reached"
    assert await caller.closed() == 4429
    await caller.leave()
    assert (await conversation_of(ready["session_id"])).end_reason == "limit_reached"


async def test_concurrent_calls_per_ip_are_limited_and_freed_on_hang_up(voice, settings):
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 2
    first, second = Caller(ip="198.51.100.1"), Caller(ip="198.51.100.1")
    await first.connect()
    await second.connect()

    third = Caller(ip="198.51.100.1")
    await third.ws.connect()
    error = await third.expect("error")
    assert error["code"] == "rate_limited" and "at once" in error["message"]
    assert await third.closed() == 4429
    await third.leave()
    other_network = Caller(ip="192.0.2.55")
    await other_network.connect()

    await first.hang_up()
    again = Caller(ip="198.51.100.1")
    await again.connect()  # the slot was freed
    for caller in (second, other_network, again):
        await caller.hang_up()
    assert len(voice.connections) == 4  # the refused call never opened an upstream socket


async def test_calls_per_hour_per_ip_are_limited(voice, settings):
    settings.VOICE_CALLS_PER_HOUR_PER_IP = 2
    for _ in range(2):
        caller = Caller(ip="198.51.100.9")
        await caller.connect()
        await caller.hang_up()
    late = Caller(ip="198.51.100.9")
    await late.ws.connect()
    error = await late.expect("error")
    assert error["code"] == "rate_limited" and "this hour" in error["message"]
    assert await late.closed() == 4429
    await late.leave()


async def test_an_idle_call_is_ended(voice, settings):
    settings.VOICE_IDLE_SECONDS = 0.3
    caller = Caller()
    ready = await caller.connect()
    assert (await caller.expect("ended"))["reason"] == "idle"
    assert await caller.closed() == 4408
    await caller.leave()
    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "idle"
    assert voice.connections[0].closed


async def test_a_call_ends_at_its_maximum_length(voice, settings):
    settings.VOICE_MAX_CALL_SECONDS = 0.5
    caller = Caller()
    ready = await caller.connect()
    for _ in range(20):  # keep talking: the call is not idle
        await caller.send({"type": "playback", "item_id": "none", "played_ms": 0})
        await asyncio.sleep(0.05)
    error = await caller.expect("error")
    assert error["code"] == "max_duration"
    assert await caller.closed() == 4409
    await caller.leave()
    assert (await conversation_of(ready["session_id"])).end_reason == "max_duration"


async def test_a_browser_that_vanishes_ends_the_call(voice):
    caller = Caller()
    ready = await caller.connect()
    await caller.leave(code=1006)
    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "client_disconnected"
    assert voice.connections[0].closed
    messages = await messages_of(ready["session_id"])
    assert messages[-1].role == Message.Role.EVENT and "client_disconnected" in messages[-1].text


async def test_a_server_shutdown_records_the_call_end(voice):
    caller = Caller()
    ready = await caller.connect()
    # What daphne does to every application when it stops: cancel it and wait for it.
    caller.ws.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller.ws.future
    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "server_shutdown"
    assert voice.connections[0].closed


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_a_server_restart_mid_call_keeps_the_transcript_and_says_why(business, voice, fake_openai, server):
    """A real server process, stopped the way a deploy stops it (SIGTERM) in the middle of a call."""
    db = settings.DATABASES["default"]
    host = f"{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    env = {
        **os.environ,
        # Production settings (tests.settings would blank the key).
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": f"postgres://{host}/{db['NAME']}",
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    binary = str(Path(sys.executable).parent / server)
    command = [binary, "-b", "127.0.0.1", "-p", str(port)] if server == "daphne" else [binary, "--port", str(port)]
    if server == "uvicorn":
        command += ["--host", "127.0.0.1", "--lifespan", "off", "--timeout-graceful-shutdown", "5"]
    process = subprocess.Popen([*command, "chatdesk.asgi:application"], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        await asyncio.to_thread(wait_for_port, port, process)
        voice.queue_reply("Hello, Maple Home Services.", audio_ms=200)
        voice.queue_turn("My sink is leaking.", "Sorry to hear that. Let me find a plumber.", audio_ms=400)
        url = f"ws://127.0.0.1:{port}/api/v1/chat/voice/call"
        async with websockets.connect(url, origin=f"http://127.0.0.1:{port}") as ws:
            ready = await next_of(ws, "ready")
            greeting = await next_of(ws, "transcript", role="assistant", final=True)
            # Like a browser, say the greeting was played to its end (clamped to what was sent)
            # before speaking: otherwise the server takes the caller to have cut in on it.
            await ws.send(json.dumps({"type": "playback", "item_id": greeting["item_id"], "played_ms": 60_000}))
            pcm = sine_pcm16(600) + silence_pcm16(700)
            for start in range(0, len(pcm), 4800):
                await ws.send(pcm[start : start + 4800])
            await next_of(ws, "transcript", role="assistant", final=True)
            if server == "daphne":
                # daphne 4.2.3 keeps the HTTP side of each WebSocket upgrade in its connection table
                # until a once-a-second sweep; a SIGTERM before that sweep raises KeyError in
                # kill_all_applications and no call is ended properly (see BENCHMARKS.md).
                await asyncio.sleep(1.5)
            process.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(15):
                    while True:
                        await ws.recv()
        await asyncio.to_thread(process.wait, 20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "server_shutdown"
    said = [(m.role, m.text) for m in await messages_of(ready["session_id"]) if m.role != Message.Role.EVENT]
    assert said == [
        ("assistant", "Hello, Maple Home Services."),
        ("customer", "My sink is leaking."),
        ("assistant", "Sorry to hear that. Let me find a plumber."),
    ]
    assert voice.connections[0].closed


async def next_of(ws, kind: str, **fields) -> dict:
    async with asyncio.timeout(10):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                event = json.loads(message)
                if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                    return event


async def test_calls_behind_a_trusted_proxy_are_counted_per_forwarded_client(voice, settings):
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 1

    def via(peer: str, forwarded: str) -> Caller:
        return Caller(headers=[*ORIGIN, (b"x-forwarded-for", forwarded.encode())], ip=peer)

    # An untrusted peer rotating X-Forwarded-For is still one client.
    first = via("198.51.100.1", "203.0.113.1")
    await first.connect()
    second = via("198.51.100.1", "203.0.113.2")
    await second.ws.connect()
    assert (await second.expect("error"))["code"] == "rate_limited"
    await second.leave()
    # Behind the listed proxy, two clients each get their own slot; the same client does not.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    alice, bob = via("10.0.0.5", "203.0.113.1"), via("10.0.0.5", "203.0.113.2")
    await alice.connect()
    await bob.connect()
    alice_again = via("10.0.0.6", "6.6.6.6, 203.0.113.1")
    await alice_again.ws.connect()
    assert (await alice_again.expect("error"))["code"] == "rate_limited"
    await alice_again.leave()
    for caller in (first, alice, bob):
        await caller.hang_up()
    numbers = await sync_to_async(list)(Conversation.objects.order_by("pk").values_list("client_ip_hash", flat=True))
    assert numbers == [hash_ip("198.51.100.1"), hash_ip("203.0.113.1"), hash_ip("203.0.113.2")]


@pytest.mark.parametrize("switch", ["RATELIMIT_ENABLE", "VOICE_LIMITS_ENABLE"])
async def test_each_switch_lifts_only_its_own_limits(voice, settings, switch):
    """RATELIMIT_ENABLE is the chat's; the per-IP call limits have VOICE_LIMITS_ENABLE."""
    setattr(settings, switch, False)
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 1
    settings.CHAT_RATE_SESSION_PER_IP = "1/h"
    first, second = Caller(ip="198.51.100.3"), Caller(ip="198.51.100.3")
    await first.connect()
    await second.ws.connect()
    async with asyncio.timeout(5):
        while not second.of("ready") and not second.of("error"):
            await second._next(5)
    voice_limited = bool(second.of("error"))
    if voice_limited:
        assert await second.closed() == 4429
        await second.leave()
    else:
        await second.hang_up()
    await first.hang_up()
    client = AsyncClient(REMOTE_ADDR="198.51.100.3")
    chats = [(await client.post("/api/v1/chat/session/new")).status_code for _ in range(2)]
    if switch == "RATELIMIT_ENABLE":
        assert chats == [201, 201] and voice_limited
    else:
        assert chats == [201, 429] and not voice_limited
