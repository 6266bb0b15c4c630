"""Voice calls end to end: a browser (WebsocketCommunicator on the real ASGI application) talks to
our server, which talks to the loopback fake Realtime API through the unmodified openai SDK.

Database work runs on worker threads, so the tests use transactional databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client

from bookings.models import Booking
from chatdesk.asgi import application
from chatdesk.assistant.costs import realtime_usage, transcription_usage
from chatdesk.conversations import live
from chatdesk.conversations.models import Conversation, Message, ToolCall
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.fake_openai.audio import silence_pcm16, sine_pcm16

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/chat/voice/call"
ORIGIN = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
BOOKING_ARGS = {
    "service_id": "hvac-repair",
    "start": "2026-11-18T08:30:00-05:00",
    "technician_id": None,
    "customer_name": "Dana Customer",
    "customer_phone": "416-555-0123",
    "customer_email": None,
    "address": "12 Queen St W, Toronto",
    "notes": "Banging furnace",
    "customer_confirmed": True,
}
SLOTS_ARGS = {"service_id": "hvac-repair", "date": "2026-11-18", "end_date": None, "technician_id": None}


class Closed(Exception):
    pass


class Caller:
    """A browser on a call: sends microphone frames and control messages, records what comes back."""

    def __init__(self, *, headers: list[tuple[bytes, bytes]] | None = None, ip: str = "203.0.113.7", cookie: str = ""):
        headers = list(ORIGIN if headers is None else headers)
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.ws = WebsocketCommunicator(application, PATH, headers=headers)
        self.ws.scope["client"] = (ip, 50123)
        self.messages: list[dict[str, Any]] = []
        self.audio: dict[str, bytearray] = {}
        self.item: str | None = None
        self.close_code: int | None = None

    async def connect(self) -> dict[str, Any]:
        connected, _ = await self.ws.connect()
        assert connected
        return await self.expect("ready")

    async def _next(self, timeout: float) -> dict[str, Any] | None:
        if self.close_code is not None:
            raise Closed(self.close_code)
        output = await self.ws.receive_output(timeout)
        if output["type"] == "websocket.close":
            self.close_code = output.get("code", 1000)
            raise Closed(self.close_code)
        if output.get("bytes") is not None:
            self.audio.setdefault(self.item or "", bytearray()).extend(output["bytes"])
            return None
        message = json.loads(output["text"])
        self.messages.append(message)
        if message["type"] == "audio_item":
            self.item = message["item_id"]
        return message

    async def expect(self, kind: str, timeout: float = 5, **fields: Any) -> dict[str, Any]:
        """Read until a message of this type (with these field values) arrives."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self._next(timeout)
                if message and message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message

    async def audio_ms(self, item_id: str, at_least: int, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while len(self.audio.get(item_id, b"")) < at_least * 48:
                await self._next(timeout)

    async def closed(self, timeout: float = 5) -> int:
        """Read everything up to the server's close; its close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self._next(timeout)
        except Closed:
            pass
        assert self.close_code is not None
        return self.close_code

    async def say(self, loud_ms: int = 600, quiet_ms: int = 700, frame_ms: int = 100) -> None:
        """Speech then enough silence for server VAD to end the turn, in microphone-sized frames.

        Like a browser whose speaker has played the last answer to its end before the caller
        speaks, it first reports that answer as played in full (the server would otherwise take
        the caller to have cut in on it).
        """
        if self.item and self.item in self.audio:
            await self.send({"type": "playback", "item_id": self.item, "played_ms": len(self.audio[self.item]) // 48})
        pcm = sine_pcm16(loud_ms) + silence_pcm16(quiet_ms)
        size = frame_ms * 48
        for start in range(0, len(pcm), size):
            await self.ws.send_to(bytes_data=pcm[start : start + size])

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_to(text_data=json.dumps(message))

    async def hang_up(self) -> int:
        await self.send({"type": "hangup"})
        code = await self.closed()
        await self.ws.disconnect(code=1000, timeout=10)
        return code

    async def leave(self, code: int = 1000) -> None:
        """The browser side goes away (after the server closed, or abruptly)."""
        await self.ws.disconnect(code=code, timeout=10)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


@pytest.fixture(autouse=True)
def fresh_limits():
    # Per-IP call counters live in the (process-local) cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        yield


@pytest.fixture
def voice(fake_openai, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.VOICE_GREET_FIRST = True
    settings.VOICE_MAX_FRAMES_PER_SECOND = 1000  # tests send audio faster than real time
    return fake_openai.realtime


@sync_to_async
def conversation_of(session_id: str) -> Conversation:
    return Conversation.objects.get(session_id=session_id)


@sync_to_async
def messages_of(session_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation__session_id=session_id).order_by("created_at", "id"))


@sync_to_async
def tool_calls_of(session_id: str) -> list[ToolCall]:
    return list(ToolCall.objects.filter(conversation__session_id=session_id).order_by("created_at", "id"))


def spoken(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in messages if m.role != Message.Role.EVENT]


async def test_a_customer_books_a_visit_by_voice(business, voice, frozen):
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=300)
    voice.queue_turn(
        "My furnace is banging, can someone come Wednesday?", function_calls=[("resolve_date", {"text": "Wednesday"})]
    )
    voice.queue_function_call("get_available_time_slots", SLOTS_ARGS)
    voice.queue_reply("Alice can come Wednesday November eighteenth at eight thirty. Shall I book it?", audio_ms=600)
    voice.queue_turn(
        "Yes. Dana Customer, 416 555 0123, 12 Queen Street West.", function_calls=[("create_booking", BOOKING_ARGS)]
    )
    voice.queue_reply("You're booked. Your booking number is B K 2 0 2 6.", audio_ms=500)

    dana = Caller()
    ready = await dana.connect()
    assert ready["conversation_number"].startswith("INT-2026-")
    assert ready["interaction_number"] == ready["conversation_number"]  # the old key, for old clients
    greeting = await dana.expect("transcript", role="assistant", final=True)
    assert greeting["text"] == "Maple Home Services, how can I help?"
    assert len(dana.audio[greeting["item_id"]]) == 300 * 48

    await dana.say()
    await dana.expect("flush")
    heard = await dana.expect("transcript", role="customer", final=True)
    assert heard["text"] == "My furnace is banging, can someone come Wednesday?"
    assert (await dana.expect("tool"))["name"] == "resolve_date"
    slots = await dana.expect("tool")
    assert slots == {"type": "tool", "name": "get_available_time_slots", "ok": True, "error": None}
    offer = await dana.expect("transcript", role="assistant", final=True)
    assert offer["text"].startswith("Alice can come Wednesday")

    await dana.say()
    booked = await dana.expect("booking")
    assert booked["booking"]["when"] == "Wednesday November 18, 2026 at 8:30 AM"
    assert booked["booking"]["booking_number"].startswith("BK-2026-")
    # The same card the chat page shows (chatdesk.conversations.booking_cards), with its state.
    assert booked["booking"]["state"] == "confirmed" and booked["booking"]["headline"] == "Booking confirmed"
    await dana.expect(
        "transcript", role="assistant", final=True, text="You're booked. Your booking number is B K 2 0 2 6."
    )
    assert await dana.hang_up() == 1000
    assert dana.of("ended") == [{"type": "ended", "reason": "customer_hung_up"}]

    # The upstream session: GA shape, our instructions and the text chat's tools.
    connection = voice.connections[0]
    assert "openai-beta" not in connection.headers
    assert connection.headers["authorization"] == "Bearer sk-test"
    session = connection.session
    assert session["type"] == "realtime" and session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert "Monday 2026-11-16" in session["instructions"] and "Spell booking numbers" in session["instructions"]
    assert {t["name"] for t in session["tools"]} >= {"create_booking", "resolve_date", "request_human"}
    assert all("strict" not in t for t in session["tools"])
    # Each tool round: every output, then exactly one response.create.
    types = connection.event_types()
    rounds = [i for i, t in enumerate(types) if t == "conversation.item.create"]
    assert len(rounds) == 3 and all(types[i + 1] == "response.create" for i in rounds)
    assert types.count("response.create") == 4  # greeting + one after each tool round
    assert connection.closed

    conversation = await conversation_of(ready["session_id"])
    assert conversation.channel == "voice" and conversation.number == ready["conversation_number"]
    assert conversation.end_reason == "customer_hung_up"
    assert conversation.status == Conversation.Status.OPEN  # the customer may keep typing
    assert conversation.booking_count == 1 and conversation.resolution == Conversation.Resolution.BOOKED
    assert conversation.cost_usd > 0
    assert conversation.audio_output_tokens > 0 and conversation.audio_input_tokens > 0
    assert conversation.input_tokens >= conversation.audio_input_tokens
    assert set(conversation.cost_breakdown) >= {"text_input", "audio_input", "audio_output", "text_output"}
    assert sum(Decimal(v) for v in conversation.cost_breakdown.values()) == conversation.cost_usd

    messages = await messages_of(ready["session_id"])
    assert spoken(messages) == [
        ("assistant", "Maple Home Services, how can I help?"),
        ("customer", "My furnace is banging, can someone come Wednesday?"),
        ("assistant", "Alice can come Wednesday November eighteenth at eight thirty. Shall I book it?"),
        ("customer", "Yes. Dana Customer, 416 555 0123, 12 Queen Street West."),
        ("assistant", "You're booked. Your booking number is B K 2 0 2 6."),
    ]
    assert all(m.channel == "voice" for m in messages)
    assert all(m.item_id for m in messages if m.role != Message.Role.EVENT)
    assert messages[0].role == Message.Role.EVENT and messages[0].text == "Voice call started."
    assert "customer_hung_up" in messages[-1].text
    offer_row = messages[3]
    assert offer_row.latency_ms is not None and offer_row.latency_ms < 5000
    assert offer_row.cost_usd > 0 and not offer_row.interrupted
    # The text chat continues from these.
    assert conversation.model_items[-2:] == [
        {"role": "user", "content": "Yes. Dana Customer, 416 555 0123, 12 Queen Street West."},
        {"role": "assistant", "content": "You're booked. Your booking number is B K 2 0 2 6."},
    ]

    calls = await tool_calls_of(ready["session_id"])
    assert [(c.name, c.error) for c in calls] == [
        ("resolve_date", ""),
        ("get_available_time_slots", ""),
        ("create_booking", ""),
    ]
    booking = await Booking.objects.select_related("customer").aget(pk=calls[2].booking_id)
    assert booking.channel == "voice" and booking.customer.name == "Dana Customer"
    assert booking.number == booked["booking"]["booking_number"]


async def test_barge_in_truncates_the_answer_where_the_caller_stopped_hearing_it(business, voice):
    voice.audio_pacing = 1.0  # the answer streams in real time, so there is time to cut in
    voice.queue_reply("Let me list every technician we have and all their skills, one by one.", audio_ms=4000)
    voice.queue_transcript("Stop, I just need a plumber.")
    voice.queue_reply("Sure, a plumber.", audio_ms=200)

    ana = Caller()
    ready = await ana.connect()
    item = (await ana.expect("audio_item"))["item_id"]
    await ana.audio_ms(item, 500)
    await ana.ws.send_to(bytes_data=sine_pcm16(100))  # the caller starts talking
    await ana.expect("flush")
    await ana.send({"type": "playback", "item_id": item, "played_ms": 420})
    async with asyncio.timeout(5):
        while not voice.truncations:
            await asyncio.sleep(0.01)
    assert voice.truncations == [{"item_id": item, "content_index": 0, "audio_end_ms": 420}]
    cut = await ana.expect("transcript", role="assistant", final=True, item_id=item)
    assert cut["interrupted"] is True
    received_at_flush = len(ana.audio[item])
    assert received_at_flush < 4000 * 48  # the rest of the answer was never forwarded

    await ana.say(loud_ms=400, quiet_ms=600)
    await ana.expect("transcript", role="assistant", final=True, text="Sure, a plumber.")
    assert len(ana.audio[item]) == received_at_flush
    await ana.hang_up()

    messages = await messages_of(ready["session_id"])
    assert [(m.role, m.interrupted) for m in messages if m.role != Message.Role.EVENT] == [
        ("assistant", True),
        ("customer", False),
        ("assistant", False),
    ]
    assert messages[1].item_id == item


async def test_barge_in_truncation_is_clamped_to_the_audio_sent(business, voice):
    voice.audio_pacing = 1.0
    voice.queue_reply("A long answer about furnaces and boilers and heat pumps.", audio_ms=4000)
    ben = Caller()
    await ben.connect()
    item = (await ben.expect("audio_item"))["item_id"]
    await ben.audio_ms(item, 300)
    await ben.ws.send_to(bytes_data=sine_pcm16(100))
    await ben.expect("flush")
    await ben.send({"type": "playback", "item_id": item, "played_ms": 60_000})  # more than it was sent
    async with asyncio.timeout(5):
        while not voice.truncations:
            await asyncio.sleep(0.01)
    assert voice.truncations[0]["audio_end_ms"] == len(ben.audio[item]) // 48
    await ben.hang_up()


async def test_barge_in_before_anything_played_truncates_at_zero_and_keeps_the_reply_for_audit(business, voice):
    voice.audio_pacing = 1.0
    voice.queue_reply("A long answer about furnaces and boilers and heat pumps.", audio_ms=4000)
    cy = Caller()
    ready = await cy.connect()
    item = (await cy.expect("audio_item"))["item_id"]
    await cy.audio_ms(item, 200)
    await cy.ws.send_to(bytes_data=sine_pcm16(100))
    await cy.expect("flush")
    await cy.send({"type": "playback", "item_id": item, "played_ms": 0})
    cut = await cy.expect("transcript", role="assistant", final=True, item_id=item, interrupted=True)
    assert cut["text"] == ""  # the caller heard none of it
    async with asyncio.timeout(5):
        while not voice.truncations:
            await asyncio.sleep(0.01)
    await cy.hang_up()
    # Without it the model would believe the caller heard the whole answer.
    assert voice.truncations == [{"item_id": item, "content_index": 0, "audio_end_ms": 0}]
    messages = await messages_of(ready["session_id"])
    assert [m for m in messages if m.role == Message.Role.ASSISTANT] == []
    (unheard,) = [m for m in messages if m.item_id == item]
    assert unheard.role == Message.Role.EVENT and unheard.interrupted
    # What the model had generated when it was cut off: the start of the scripted answer.
    assert unheard.generated_text.strip()
    assert "A long answer about furnaces and boilers and heat pumps.".startswith(unheard.generated_text.strip())
    assert unheard.generated_text in unheard.text


async def test_a_tool_error_goes_back_to_the_model(business, voice, frozen):
    voice.queue_reply("Hi, how can I help?", audio_ms=200)
    unconfirmed = {**BOOKING_ARGS, "customer_confirmed": False}
    voice.queue_turn("Book me Wednesday at eight thirty.", function_calls=[("create_booking", unconfirmed)])
    voice.queue_reply("Before I book, let me read it back.", audio_ms=300)

    eve = Caller()
    ready = await eve.connect()
    await eve.expect("transcript", role="assistant", final=True)
    await eve.say()
    tool = await eve.expect("tool")
    assert tool == {"type": "tool", "name": "create_booking", "ok": False, "error": "confirmation_required"}
    await eve.expect("transcript", role="assistant", final=True, text="Before I book, let me read it back.")
    await eve.hang_up()

    output = next(
        e["item"]
        for e in voice.events
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    )
    assert json.loads(output["output"])["error"] == "confirmation_required"
    assert not eve.of("booking")
    calls = await tool_calls_of(ready["session_id"])
    assert [(c.name, c.error) for c in calls] == [("create_booking", "confirmation_required")]
    assert not await Booking.objects.aexists()


async def test_an_upstream_drop_mid_answer_keeps_the_transcript_and_offers_text(business, voice):
    voice.queue_reply("Hello, Maple Home Services.", audio_ms=200)
    voice.queue_transcript("I need a plumber tomorrow.")
    voice.queue_drop(after_chunks=2, reply_text="Sure, let me look at tomorrow for plumbers in your area.")

    fay = Caller()
    ready = await fay.connect()
    await fay.expect("transcript", role="assistant", final=True)
    await fay.say()
    error = await fay.expect("error")
    assert error["code"] == "upstream_error" and error["fallback"] == "chat"
    assert (await fay.expect("ended"))["reason"] == "upstream_error"
    assert await fay.closed() == 4503
    await fay.leave()

    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "upstream_error"
    assert conversation.failure_count == 1 and conversation.last_error.startswith("Realtime dropped")
    messages = await messages_of(ready["session_id"])
    said = [(m.role, m.text, m.interrupted) for m in messages if m.role != Message.Role.EVENT]
    assert said[:2] == [
        ("assistant", "Hello, Maple Home Services.", False),
        ("customer", "I need a plumber tomorrow.", False),
    ]
    # What was said before the drop is kept, marked as cut off.
    assert said[2][0] == "assistant" and said[2][2] is True
    assert "Sure, let me look at tomorrow for plumbers in your area.".startswith(said[2][1]) and said[2][1]


async def test_an_unreachable_upstream_is_reported_and_the_call_is_closed(business, voice, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: connection refused
    gil = Caller()
    await gil.ws.connect()
    error = await gil.expect("error")
    assert error["code"] == "upstream_error" and error["fallback"] == "chat"
    assert await gil.closed() == 4503
    assert gil.of("ended") == [{"type": "ended", "reason": "upstream_error"}]
    await gil.leave()
    row = await Conversation.objects.aget(channel="voice")
    assert row.end_reason == "upstream_error" and "unreachable" in row.last_error


async def test_a_call_continues_the_text_conversation(business, voice, fake_openai, frozen):
    fake_openai.queue_text("Yes, we repair furnaces. When would suit you?")

    def type_in_chat() -> tuple[str, str]:
        client = Client()
        session = client.post("/api/v1/chat/session/new").json()
        reply = client.post(
            "/api/v1/chat/message",
            json.dumps({"session_id": session["session_id"], "message": "Do you fix furnaces?"}),
            content_type="application/json",
        )
        assert reply.status_code == 200, reply.content
        return session["session_id"], client.cookies["chatdesk_session"].value

    session_id, cookie = await sync_to_async(type_in_chat)()
    voice.queue_reply("Hi again! Shall we find a time for the furnace?", audio_ms=300)
    voice.queue_turn("Yes, Wednesday morning please.", "Let me check Wednesday.", audio_ms=300)

    hal = Caller(cookie=f"chatdesk_session={cookie}")
    ready = await hal.connect()
    assert ready["session_id"] == session_id
    await hal.expect("transcript", role="assistant", final=True)
    await hal.say()
    await hal.expect("transcript", role="assistant", final=True, text="Let me check Wednesday.")
    await hal.hang_up()

    # The model heard the chat so far, as conversation items, before the call began.
    history = [e["item"] for e in voice.events if e["type"] == "conversation.item.create"]
    assert [(i["role"], i["content"][0]["text"]) for i in history if i["type"] == "message"][-2:] == [
        ("user", "Do you fix furnaces?"),
        ("assistant", "Yes, we repair furnaces. When would suit you?"),
    ]
    assert history[-1]["content"][0]["type"] == "output_text"
    assert "switching to this call" in voice.connections[0].session["instructions"]

    conversation = await conversation_of(session_id)
    assert conversation.channel == "chat" and conversation.end_reason == "customer_hung_up"
    assert await Conversation.objects.acount() == 1
    messages = await messages_of(session_id)
    assert [(m.channel, m.role, m.text) for m in messages if m.role != Message.Role.EVENT][-4:] == [
        ("chat", "assistant", "Yes, we repair furnaces. When would suit you?"),
        ("voice", "assistant", "Hi again! Shall we find a time for the furnace?"),
        ("voice", "customer", "Yes, Wednesday morning please."),
        ("voice", "assistant", "Let me check Wednesday."),
    ]

    # And typing continues after the call with everything that was said on it.
    fake_openai.queue_text("Wednesday it is.")

    def type_again() -> None:
        client = Client()
        client.cookies["chatdesk_session"] = cookie
        reply = client.post(
            "/api/v1/chat/message",
            json.dumps({"session_id": session_id, "message": "Actually, can we do it by text?"}),
            content_type="application/json",
        )
        assert reply.status_code == 200, reply.content

    await sync_to_async(type_again)()
    sent = fake_openai.response_requests[-1]["input"]
    assert {"role": "user", "content": "Yes, Wednesday morning please."} in sent
    assert {"role": "assistant", "content": "Let me check Wednesday."} in sent


async def test_parallel_tool_calls_get_all_outputs_then_one_response(business, voice, frozen):
    voice.queue_reply("Hi!", audio_ms=200)
    voice.queue_turn(
        "What can you do on Wednesday?",
        function_calls=[("resolve_date", {"text": "Wednesday"}), ("get_available_services", {"trade": "HVAC"})],
    )
    voice.queue_reply("On Wednesday we can repair your furnace.", audio_ms=300)
    ida = Caller()
    ready = await ida.connect()
    await ida.expect("transcript", role="assistant", final=True, text="Hi!")
    await ida.say()
    await ida.expect("transcript", role="assistant", final=True, text="On Wednesday we can repair your furnace.")
    await ida.hang_up()

    types = voice.connections[0].event_types()
    first_output = types.index("conversation.item.create")
    assert types[first_output : first_output + 3] == [
        "conversation.item.create",
        "conversation.item.create",
        "response.create",
    ]
    assert [m["name"] for m in ida.of("tool")] == ["resolve_date", "get_available_services"]
    assert {c.name for c in await tool_calls_of(ready["session_id"])} == {"resolve_date", "get_available_services"}


async def test_semantic_vad_can_be_chosen_in_settings(voice, settings):
    settings.OPENAI_REALTIME_TURN_DETECTION = "semantic_vad"
    settings.VOICE_GREET_FIRST = False
    jo = Caller()
    await jo.connect()
    await jo.hang_up()
    detection = voice.connections[0].session["audio"]["input"]["turn_detection"]
    assert detection["type"] == "semantic_vad" and detection["interrupt_response"] is True


async def test_a_call_over_its_spend_cap_is_ended(business, voice, settings):
    settings.VOICE_SPEND_CAP_USD = Decimal("0.000001")
    voice.queue_reply("Hello, Maple Home Services, how can I help you today?", audio_ms=1500)
    kim = Caller()
    ready = await kim.connect()
    error = await kim.expect("error")
    assert error["code"] == "limit_reached"
    assert await kim.closed() == 4409
    await kim.leave()
    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "limit_reached" and conversation.cost_usd > 0


async def test_staff_follow_a_call_live(business, voice):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(live.MONITOR_GROUP, channel)
    voice.queue_reply("Hello, Maple Home Services.", audio_ms=200)
    lou = Caller()
    await lou.connect()
    await lou.expect("transcript", role="assistant", final=True)
    await lou.hang_up()

    seen = []
    with contextlib.suppress(TimeoutError):
        while True:
            message = await asyncio.wait_for(layer.receive(channel), 0.5)
            seen.append((message["event"]["kind"], message["event"]["role"], message["summary"]["channel"]))
    assert ("message", "assistant", "voice") in seen
    assert seen.count(("message", "event", "voice")) == 2  # the call started, the call ended


def test_realtime_usage_is_priced_by_modality_with_cached_tokens_as_a_subset():
    usage = {
        "total_tokens": 253,
        "input_tokens": 132,
        "output_tokens": 121,
        "input_token_details": {
            "text_tokens": 119,
            "audio_tokens": 13,
            "image_tokens": 0,
            "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
    }
    priced = realtime_usage("gpt-realtime-2.1-mini", usage)
    assert priced.breakdown == {
        "text_input": Decimal("0.000033"),  # (119 - 64) x $0.60 / 1M
        "text_cached_input": Decimal("0.000004"),  # 64 x $0.06 / 1M
        "audio_input": Decimal("0.000130"),  # 13 x $10 / 1M
        "text_output": Decimal("0.000072"),  # 30 x $2.40 / 1M
        "audio_output": Decimal("0.001820"),  # 91 x $20 / 1M
    }
    assert priced.cost == Decimal("0.002059")
    assert (priced.input_tokens, priced.cached_input_tokens, priced.output_tokens) == (132, 64, 121)
    assert (priced.audio_input_tokens, priced.audio_output_tokens) == (13, 91)
    assert realtime_usage("unknown-model", usage).cost == 0


def test_transcription_is_priced_by_its_model_and_an_unpriced_one_is_flagged(settings, caplog):
    usage = {"type": "tokens", "input_tokens": 50, "output_tokens": 10, "input_token_details": {"audio_tokens": 50}}
    priced = transcription_usage("gpt-4o-mini-transcribe", usage)  # the settings' default table
    assert priced.breakdown == {"transcription": Decimal("0.000200")}  # 50 x $3 + 10 x $5, per 1M
    assert not priced.price_missing
    minutes = transcription_usage("gpt-4o-mini-transcribe", {"type": "duration", "seconds": 90})
    assert minutes.cost == Decimal("0.004500")  # 1.5 min x $0.003
    with caplog.at_level("WARNING", logger="chatdesk.assistant.costs"):
        unpriced = transcription_usage("gpt-next-transcribe", usage)
    assert unpriced.cost == 0 and unpriced.price_missing
    assert "No audio_input/text_output price for model gpt-next-transcribe" in caplog.text
