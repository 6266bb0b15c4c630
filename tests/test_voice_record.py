"""What a call leaves in the record: its channel, what the caller really heard, what it cost,
and how it ended. Browser side: WebsocketCommunicator on the real ASGI application; OpenAI side:
the loopback fake Realtime API through the unmodified openai SDK; real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chatdesk.backoffice.dashboard import dashboard
from chatdesk.conversations.models import Conversation, Message
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.fake_openai.audio import sine_pcm16
from tests.test_voice_call import Caller, conversation_of, messages_of
from voice.apps import unpriced_call_models
from voice.heard import heard_part
from voice.realtime import GREETING_NEW
from voice.records import realtime_failure_kind

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def voice(fake_openai, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.VOICE_GREET_FIRST = True
    settings.VOICE_MAX_FRAMES_PER_SECOND = 1000  # tests send audio faster than real time
    return fake_openai.realtime


async def wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- ending a call ----------------------------------------------------------------------------


async def test_hanging_up_mid_reply_frees_the_slot_for_the_next_call_at_once(voice, settings):
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 1
    # Like the real API, the reply is generated faster than real time: a long one is still pouring
    # in when the caller hangs up.
    voice.audio_pacing = 0.0
    voice.close_delay = 30.0
    voice.queue_reply("Thanks for calling, let me tell you about everything we do, at length.", audio_ms=300_000)
    first = Caller(ip="198.51.100.20")
    ready = await first.connect()
    item = (await first.expect("audio_item"))["item_id"]
    await first.audio_ms(item, 300)
    started = time.monotonic()
    # The browser closes the socket (a hang-up) while the reply is still coming in.
    await first.ws.send_input({"type": "websocket.disconnect", "code": 1000})

    async def ended() -> bool:
        return bool((await conversation_of(ready["session_id"])).end_reason)

    await wait_for(ended, "the call's end record")
    print("end recorded after", time.monotonic() - started)
    second = Caller(ip="198.51.100.20")
    await second.connect()  # not "too many calls at once"
    print("second ready after", time.monotonic() - started)
    await second.hang_up()
    await first.ws.wait(timeout=10)  # the upstream close gives up quickly too
    assert (await conversation_of(ready["session_id"])).end_reason == "customer_hung_up"


async def test_a_failed_reply_gets_an_apology_and_the_call_goes_on(voice, settings):
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    voice.queue_transcript("Do you fix furnaces?")
    voice.queue_failed_response("The server had an error.")
    voice.queue_turn("Do you fix furnaces?", "Yes, we repair furnaces.", audio_ms=200)
    caller = Caller()
    ready = await caller.connect()
    await caller.expect("transcript", role="assistant", final=True)
    await caller.say()
    notice = await caller.expect("notice")
    assert notice["code"] == "reply_failed" and "say it again" in notice["message"]
    await caller.expect("state", state="listening")  # not left "thinking" in silence
    await caller.say()
    await caller.expect("transcript", role="assistant", final=True, text="Yes, we repair furnaces.")
    await caller.hang_up()
    conversation = await conversation_of(ready["session_id"])
    assert conversation.end_reason == "customer_hung_up" and conversation.failure_count == 1
    events = [m.text for m in await messages_of(ready["session_id"]) if m.role == Message.Role.EVENT]
    assert any(text.startswith("A voice reply failed (server_error: The server had an error.)") for text in events)
    # Counted by kind with the text chat's failures (admin filter, dashboard).
    kinds = [m.failure_kind for m in await messages_of(ready["session_id"]) if m.role == Message.Role.EVENT]
    assert Message.FailureKind.SERVER_ERROR in kinds


async def test_an_upstream_server_error_gets_an_apology_and_the_call_goes_on(voice, settings):
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    voice.queue_transcript("Do you fix furnaces?")
    voice.queue_error_event("The server had an error while processing your request.")
    voice.queue_turn("Do you fix furnaces?", "Yes, we repair furnaces.", audio_ms=200)
    caller = Caller()
    ready = await caller.connect()
    await caller.expect("transcript", role="assistant", final=True)
    await caller.say()
    assert (await caller.expect("notice"))["code"] == "reply_failed"
    await caller.expect("state", state="listening")
    await caller.say()
    await caller.expect("transcript", role="assistant", final=True, text="Yes, we repair furnaces.")
    await caller.hang_up()
    assert (await conversation_of(ready["session_id"])).failure_count == 1
    kinds = [m.failure_kind for m in await messages_of(ready["session_id"]) if m.failure_kind]
    assert kinds == [Message.FailureKind.SERVER_ERROR]


async def test_two_failed_replies_in_a_row_end_the_call_and_offer_text(voice, settings):
    voice.queue_reply("Hi, how can I help?", audio_ms=200)
    voice.queue_transcript("Hello?")
    voice.queue_failed_response()
    voice.queue_transcript("Hello?")
    voice.queue_failed_response()
    caller = Caller()
    ready = await caller.connect()
    await caller.expect("transcript", role="assistant", final=True)
    await caller.say()
    await caller.expect("notice")
    await caller.say()
    error = await caller.expect("error")
    assert error["code"] == "upstream_error" and error["fallback"] == "chat"
    assert await caller.closed() == 4503
    await caller.leave()
    assert (await conversation_of(ready["session_id"])).end_reason == "upstream_error"
    # The first failure and the call's end are both model failures, each with its kind.
    kinds = [m.failure_kind for m in await messages_of(ready["session_id"]) if m.failure_kind]
    assert kinds == [Message.FailureKind.SERVER_ERROR, Message.FailureKind.SERVER_ERROR]


def test_a_realtime_failure_detail_gives_its_kind():
    assert realtime_failure_kind("rate_limit_exceeded: slow down") == Message.FailureKind.RATE_LIMITED
    assert realtime_failure_kind("invalid_request_error: bad") == Message.FailureKind.BAD_REQUEST
    assert realtime_failure_kind("server_error: oops") == Message.FailureKind.SERVER_ERROR
    assert realtime_failure_kind("None: None") == Message.FailureKind.SERVER_ERROR


# --- the channel a call is recorded in ------------------------------------------------------


def chat_session(*, type_first: str = "") -> tuple[str, str]:
    """A conversation started through the chat API (optionally typed in): (session id, cookie)."""
    client = Client()
    session = client.post("/api/v1/chat/session/new").json()
    if type_first:
        reply = client.post(
            "/api/v1/chat/message",
            json.dumps({"session_id": session["session_id"], "message": type_first}),
            content_type="application/json",
        )
        assert reply.status_code == 200, reply.content
    return session["session_id"], client.cookies["chatdesk_session"].value


def item_creates(voice) -> list[dict]:
    return [e["item"] for e in voice.events if e["type"] == "conversation.item.create"]


async def test_a_fresh_call_is_a_new_voice_conversation(business, voice, settings):
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    caller = Caller()
    ready = await caller.connect()
    await caller.expect("transcript", role="assistant", final=True)
    await caller.hang_up()
    conversation = await conversation_of(ready["session_id"])
    assert conversation.channel == Conversation.ChannelKind.VOICE and conversation.has_call
    assert conversation.model == settings.OPENAI_REALTIME_MODEL
    instructions = voice.connections[0].session["instructions"]
    assert instructions.endswith(GREETING_NEW) and "typing in the chat" not in instructions
    assert item_creates(voice) == []  # no history, and no greeting the caller never saw


async def test_a_call_from_a_chat_never_typed_in_is_a_new_voice_conversation(business, voice, settings):
    untouched, cookie = await sync_to_async(chat_session)()  # what the pages used to do before a call
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    caller = Caller(cookie=f"chatdesk_session={cookie}")
    ready = await caller.connect()
    await caller.expect("transcript", role="assistant", final=True)
    await caller.hang_up()
    assert ready["session_id"] != untouched
    call = await conversation_of(ready["session_id"])
    assert call.channel == Conversation.ChannelKind.VOICE and call.has_call
    assert not (await conversation_of(untouched)).has_call
    assert "typing in the chat" not in voice.connections[0].session["instructions"]
    assert item_creates(voice) == []


async def test_a_conversation_with_text_and_a_call_counts_in_both_channels(business, voice, fake_openai, settings):
    fake_openai.queue_text("Yes, we repair furnaces. When would suit you?")
    typed, cookie = await sync_to_async(chat_session)(type_first="Do you fix furnaces?")
    voice.queue_reply("Hi again! Shall we find a time for the furnace?", audio_ms=200)
    caller = Caller(cookie=f"chatdesk_session={cookie}")
    ready = await caller.connect()
    assert ready["session_id"] == typed  # really typed in: the call continues it
    await caller.expect("transcript", role="assistant", final=True)
    await caller.hang_up()
    assert "typing in the chat" in voice.connections[0].session["instructions"]
    assert [i["content"][0]["text"] for i in item_creates(voice) if i["type"] == "message"][-1] == (
        "Yes, we repair furnaces. When would suit you?"
    )
    both = await conversation_of(typed)
    assert both.channel == Conversation.ChannelKind.CHAT and both.has_call

    # A call-only conversation, and one started by a call and then typed in.
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    voice_only = Caller(ip="192.0.2.10")
    await voice_only.connect()
    await voice_only.expect("transcript", role="assistant", final=True)
    await voice_only.hang_up()
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    then_typed = Caller(ip="192.0.2.11")
    then_typed_id = (await then_typed.connect())["session_id"]
    await then_typed.expect("transcript", role="assistant", final=True)
    await then_typed.hang_up()
    fake_openai.queue_text("Sure, by text is fine.")

    def type_after_the_call() -> None:
        reply = Client().post(
            "/api/v1/chat/message",
            json.dumps({"session_id": then_typed_id, "message": "Can we continue by text?"}),
            content_type="application/json",
        )
        assert reply.status_code == 200, reply.content

    await sync_to_async(type_after_the_call)()

    def counts() -> dict[str | None, int]:
        today = timezone.localdate()
        return {
            channel: dashboard(since=today - timedelta(days=1), until=today, channel=channel).totals.conversations
            for channel in (None, "chat", "voice")
        }

    # Three conversations; two used chat, all three had a call.
    assert await sync_to_async(counts)() == {None: 3, "chat": 2, "voice": 3}


# --- what the caller heard ------------------------------------------------------------------

REPLY = "Our technicians repair furnaces, boilers, heat pumps and air conditioners every weekday."


def test_the_heard_part_is_cut_back_to_a_whole_word():
    assert heard_part(REPLY, 1.0) == REPLY
    assert heard_part(REPLY, 0.0) == ""
    assert heard_part("one two three four", 0.5) == "one two"  # 9 characters: "one two t" -> "one two"
    assert heard_part("one two three four", 0.45) == "one two"
    assert heard_part("one two three four", 0.1) == ""  # not even "one" was heard in full


async def test_after_a_barge_in_only_what_was_heard_is_kept_and_the_rest_is_audited(voice):
    # Generated faster than real time, like the real API: all of it is in the browser's queue
    # when the caller cuts in, and the browser says a quarter of it had played.
    voice.queue_reply(REPLY, audio_ms=4000)
    caller = Caller()
    ready = await caller.connect()
    item = (await caller.expect("audio_item"))["item_id"]
    await caller.expect("transcript", role="assistant", final=True, item_id=item)
    await caller.audio_ms(item, 4000)
    await caller.ws.send_to(bytes_data=sine_pcm16(100))  # the caller starts talking
    await caller.expect("flush")
    await caller.send({"type": "playback", "item_id": item, "played_ms": 1000})
    heard = heard_part(REPLY, 0.25)
    assert heard and heard != REPLY
    cut = await caller.expect("transcript", role="assistant", final=True, item_id=item, interrupted=True)
    assert cut["text"] == heard  # the page shows what was heard
    await caller.hang_up()
    assert voice.truncations == [{"item_id": item, "content_index": 0, "audio_end_ms": 1000}]
    (line,) = [m for m in await messages_of(ready["session_id"]) if m.item_id == item]
    assert (line.role, line.text, line.generated_text, line.interrupted) == ("assistant", heard, REPLY, True)
    # The text chat continues from what the caller heard, not from what the model generated.
    conversation = await conversation_of(ready["session_id"])
    assert {"role": "assistant", "content": heard} in conversation.model_items
    assert {"role": "assistant", "content": REPLY} not in conversation.model_items


async def test_a_browser_that_never_reports_playback_still_gets_the_reply_truncated(voice):
    voice.audio_pacing = 1.0
    voice.queue_reply(REPLY, audio_ms=4000)
    caller = Caller()
    ready = await caller.connect()
    item = (await caller.expect("audio_item"))["item_id"]
    await caller.audio_ms(item, 500)
    await caller.ws.send_to(bytes_data=sine_pcm16(100))  # barge-in; this browser never sends playback
    await caller.expect("flush")
    await caller.expect("transcript", role="assistant", final=True, item_id=item, interrupted=True, timeout=5)
    async with asyncio.timeout(5):
        while not voice.truncations:
            await asyncio.sleep(0.01)
    sent_ms = len(caller.audio[item]) // 48
    await caller.hang_up()
    (truncation,) = voice.truncations
    # The server's estimate (time since the item's first audio left), never past what was sent.
    assert truncation["item_id"] == item and 0 <= truncation["audio_end_ms"] <= sent_ms
    (line,) = [m for m in await messages_of(ready["session_id"]) if m.item_id == item]
    assert line.interrupted and line.generated_text
    assert line.generated_text.startswith(line.text if line.role == Message.Role.ASSISTANT else "")


# --- cost -------------------------------------------------------------------------------------


async def test_a_call_records_what_its_transcription_cost(voice, settings):
    voice.queue_reply("Hi, how can I help?", audio_ms=200)
    voice.queue_turn("Do you fix furnaces?", "Yes.", audio_ms=200)
    caller = Caller()
    ready = await caller.connect()
    await caller.expect("transcript", role="assistant", final=True)
    await caller.say()
    await caller.expect("transcript", role="assistant", final=True, text="Yes.")
    await caller.hang_up()
    conversation = await conversation_of(ready["session_id"])
    assert settings.OPENAI_REALTIME_TRANSCRIPTION_MODEL == "gpt-4o-mini-transcribe"
    assert float(conversation.cost_breakdown["transcription"]) > 0
    assert not conversation.price_missing


async def test_a_model_without_a_price_is_loud(voice, settings, caplog, admin_client):
    settings.OPENAI_REALTIME_TRANSCRIPTION_MODEL = "gpt-next-transcribe"
    assert [w.id for w in unpriced_call_models()] == ["voice.W001"]
    voice.queue_reply("Hi, how can I help?", audio_ms=200)
    voice.queue_turn("Do you fix furnaces?", "Yes.", audio_ms=200)
    caller = Caller()
    with caplog.at_level("WARNING", logger="chatdesk.assistant.costs"):
        ready = await caller.connect()
        await caller.expect("transcript", role="assistant", final=True)
        await caller.say()
        await caller.expect("transcript", role="assistant", final=True, text="Yes.")
        await caller.hang_up()
    assert "price for model gpt-next-transcribe" in caplog.text
    conversation = await conversation_of(ready["session_id"])
    assert conversation.price_missing and "transcription" not in conversation.cost_breakdown
    page = await sync_to_async(admin_client.get)(reverse("admin:chatdesk_conversation_change", args=[conversation.pk]))
    assert "price missing" in page.content.decode()


# --- the page keeps the call's conversation ---------------------------------------------------


def test_the_page_gets_the_cookie_of_the_conversation_its_call_started(business, client):
    call = Conversation.objects.create(number="INT-2026-000077", channel="voice", has_call=True)
    typed_only = Conversation.objects.create(number="INT-2026-000078", channel="chat")
    url = reverse("voice-session")

    def post(body: object):
        return client.post(url, body if isinstance(body, str) else json.dumps(body), content_type="application/json")

    response = post({"session_id": call.session_id})
    assert response.status_code == 200 and response.json() == {"session_id": call.session_id}
    cookie = response.cookies["chatdesk_session"]
    assert cookie["httponly"] and cookie.value != call.session_id  # signed, not the bare id
    assert client.get("/").context["conversation"] == call  # the chat page continues it

    for body, status, code in [
        ("not json", 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"session_id": 12}, 400, "bad_request"),
        ({"session_id": "x" * 65}, 400, "bad_request"),
        ({"session_id": "no-such-session"}, 404, "session_not_found"),
        ({"session_id": typed_only.session_id}, 404, "session_not_found"),  # no call in it
    ]:
        response = post(body)
        assert (response.status_code, response.json()["error"]) == (status, code), body
    assert client.get(url).status_code == 405


def test_the_call_session_endpoint_checks_csrf(business):
    call = Conversation.objects.create(number="INT-2026-000079", channel="voice", has_call=True)
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(
        reverse("voice-session"), json.dumps({"session_id": call.session_id}), content_type="application/json"
    )
    assert response.status_code == 403
    assert "chatdesk_session" not in response.cookies
