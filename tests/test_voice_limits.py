"""Voice call limits and refusals: bad frames, Origin, no key, rates, idle and maximum length."""

from __future__ import annotations

import asyncio

import pytest

from chatdesk.models import Interaction, Message
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.fake_openai.audio import silence_pcm16
from tests.test_voice_call import ORIGIN, Caller, fresh_limits, interaction_of, messages_of  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


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
    row = await Interaction.objects.aget(channel="voice")
    assert row.end_reason == "bad_frame"
    assert voice.connections[0].closed


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
    assert not await Interaction.objects.aexists()


async def test_without_an_api_key_voice_is_unavailable(settings):
    settings.OPENAI_API_KEY = ""
    caller = Caller()
    connected, _ = await caller.ws.connect()
    assert connected
    error = await caller.expect("error")
    assert error["code"] == "voice_unavailable" and "OPENAI_API_KEY" in error["message"]
    assert error["fallback"] == "text"
    assert await caller.closed() == 4503
    await caller.leave()
    assert not await Interaction.objects.aexists()


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
    assert (await interaction_of(ready["session_id"])).end_reason == "limit_reached"


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
    interaction = await interaction_of(ready["session_id"])
    assert interaction.end_reason == "idle"
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
    assert (await interaction_of(ready["session_id"])).end_reason == "max_duration"


async def test_a_browser_that_vanishes_ends_the_call(voice):
    caller = Caller()
    ready = await caller.connect()
    await caller.leave(code=1006)
    interaction = await interaction_of(ready["session_id"])
    assert interaction.end_reason == "client_disconnected"
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
    interaction = await interaction_of(ready["session_id"])
    assert interaction.end_reason == "server_shutdown"
    assert voice.connections[0].closed
