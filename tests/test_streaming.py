"""Replies that stream (issue 14 part 2): the model is asked with `stream=True` through the SDK, the
text reaches the customer's live socket and staff watching as it is written, and a stream that
breaks mid-reply is recorded and never left standing as the reply.

Everything runs for real: the ASGI application and its consumers, the in-memory channel layer,
PostgreSQL, and the unmodified SDK against the loopback fake, which streams in the wire format.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from chatdesk.asgi import application
from chatdesk.conversations import access
from chatdesk.conversations.models import Conversation, Message, ToolCall
from chatdesk.conversations.session_cookie import SESSION_COOKIE
from tests.chat_customer import model_fixture  # noqa: F401 (registers `model`)
from tests.fake_openai import FunctionCall, Reply, fake_openai_fixture  # noqa: F401
from tests.staff import grant
from tests.test_live import ORIGIN, signed_session

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Alice can come on Friday at 9:00 AM. Shall I book it?"
PARTIAL = "We have a technician free on Friday, and the"
FAILURE_NOTE = "Sorry, I'm having trouble thinking right now."


class Chat:
    """A customer with the page's two connections: the chat API and the live socket."""

    def __init__(self) -> None:
        self.client = Client()
        self.session_id = self.client.post("/api/v1/chat/session/new").json()["session_id"]
        self.socket: WebsocketCommunicator | None = None

    async def listen(self) -> None:
        cookie = f"{SESSION_COOKIE}={await sync_to_async(signed_session)(self.session_id)}"
        self.socket = WebsocketCommunicator(
            application, "/api/v1/chat/live", headers=[*ORIGIN, (b"cookie", cookie.encode())]
        )
        connected, _ = await self.socket.connect()
        assert connected
        assert (await self.socket.receive_json_from())["type"] == "takeover"

    async def send(self, text: str, message_id: str = "m-1") -> dict:
        body = json.dumps({"session_id": self.session_id, "message": text, "message_id": message_id})
        response = await sync_to_async(self.client.post)("/api/v1/chat/message", body, content_type="application/json")
        assert response.status_code == 200, response.content
        return response.json()

    async def pushed(self) -> list[dict]:
        """Everything the live socket got so far (the turn is over: nothing more is coming)."""
        assert self.socket is not None
        received = []
        while not await self.socket.receive_nothing(timeout=0.2):
            received.append(await self.socket.receive_json_from())
        return received

    @property
    def number(self) -> str:
        return Conversation.objects.get(session_id=self.session_id).number


def shown(pushed: list[dict], message_id: str = "m-1") -> dict[int, str]:
    """What a page puts together from the reply's pieces, by part, checking that each piece
    goes exactly where the text so far ends."""
    parts: dict[int, str] = {}
    for push in pushed:
        if push["type"] == "reply_delta" and push["message_id"] == message_id:
            text = parts.setdefault(push["part"], "")
            assert push["offset"] == len(text), (push, text)
            parts[push["part"]] = text + push["delta"]
    return parts


def stored(session_id: str) -> list[tuple[str, str, str]]:
    return list(
        Message.objects.filter(conversation__session_id=session_id)
        .order_by("created_at", "id")
        .values_list("role", "text", "failure_kind")
    )


@pytest.fixture
async def chat(business, model) -> Chat:
    customer = await sync_to_async(Chat)()
    await customer.listen()
    yield customer
    await customer.socket.disconnect()


async def test_the_model_is_asked_to_stream_and_the_words_reach_the_customer_as_written(chat, model, settings):
    settings.REPLY_STREAM_INTERVAL_SECONDS = 0  # every piece as it comes
    model.stream_event_delay = 0.01  # a model that writes a word at a time
    model.queue_text(ANSWER)

    answer = await chat.send("Can someone fix my furnace Friday?")

    assert model.response_requests[-1]["stream"] is True
    pushed = await chat.pushed()
    pieces = [p for p in pushed if p["type"] == "reply_delta"]
    # One piece per word, in order: each went out as it came.
    assert [p["delta"] for p in pieces] == [word + " " for word in ANSWER.split()[:-1]] + ["it?"]
    assert shown(pushed) == {0: ANSWER}
    assert answer["reply"] == ANSWER
    assert (await sync_to_async(stored)(chat.session_id))[-1] == ("assistant", ANSWER, "")


async def test_the_first_word_goes_at_once_and_the_rest_at_most_every_interval(chat, model, settings):
    # The production setting: a piece at most every 0.1 s after the first. The model writes a
    # word every 30 ms (about 0.4 s in all), so later pieces carry several words each.
    assert settings.REPLY_STREAM_INTERVAL_SECONDS == 0.1
    model.stream_event_delay = 0.03
    model.queue_text(ANSWER)

    await chat.send("Can someone fix my furnace Friday?")

    pushed = await chat.pushed()
    pieces = [p["delta"] for p in pushed if p["type"] == "reply_delta"]
    assert pieces[0] == "Alice "  # alone: nothing waited for it
    assert 2 < len(pieces) <= 7, pieces  # 13 words in about 0.4 s, not one event per word
    assert all(len(piece.split()) > 1 for piece in pieces[1:-1]), pieces
    assert shown(pushed) == {0: ANSWER}


async def test_the_end_of_a_reply_is_sent_at_once_not_after_the_interval(chat, model, settings):
    settings.REPLY_STREAM_INTERVAL_SECONDS = 30
    model.stream_event_delay = 0.01
    model.queue_text(ANSWER)
    loop = asyncio.get_running_loop()
    started = loop.time()

    answer = await chat.send("Can someone fix my furnace Friday?")

    # The turn did not wait out the 30 s before its answer: the rest went when the reply ended.
    assert loop.time() - started < 15
    pushed = await chat.pushed()
    assert [p["delta"] for p in pushed if p["type"] == "reply_delta"] == ["Alice ", ANSWER.removeprefix("Alice ")]
    assert shown(pushed) == {0: ANSWER} and answer["reply"] == ANSWER


async def test_words_that_come_faster_than_they_can_be_sent_go_together(chat, model):
    # The fake writes the whole reply at once: the SDK reads every event without waiting, so
    # the pieces written meanwhile go in one event, not one queued event per word.
    model.queue_text(ANSWER)

    await chat.send("Can someone fix my furnace Friday?")

    pushed = await chat.pushed()
    assert len([p for p in pushed if p["type"] == "reply_delta"]) < len(ANSWER.split())
    assert shown(pushed) == {0: ANSWER}


async def test_tool_calls_are_put_together_from_the_stream(chat, model):
    model.queue(
        Reply(text="Let me check the calendar.", function_calls=[FunctionCall("resolve_date", {"text": "Friday"})])
    )
    model.queue_text(ANSWER)

    answer = await chat.send("Can someone come Friday?")

    # The arguments came in three pieces (the fake cuts them so); the tool got them whole.
    call = await sync_to_async(ToolCall.objects.get)(name="resolve_date")
    assert call.arguments["text"] == "Friday"
    assert call.error == ""
    assert answer["tool_calls"] == [{"name": "resolve_date", "ok": True, "error": None}]
    # The model got its call back with the result, under the call id from output_item.added.
    sent_back = model.response_requests[-1]["input"]
    assert [i["call_id"] for i in sent_back if i.get("type") == "function_call"] == ["call_1"]
    assert [i["call_id"] for i in sent_back if i.get("type") == "function_call_output"] == ["call_1"]
    # What the model said before calling is a part of its own; the answer replaces it.
    assert shown(await chat.pushed()) == {0: "Let me check the calendar.", 1: ANSWER}
    assert answer["reply"] == ANSWER


@pytest.mark.parametrize(
    ("how", "why"),
    [("error", "error event: server_error"), ("failed", "response failed: server_error"), ("cut", "connection lost")],
)
async def test_a_stream_that_breaks_mid_reply_is_taken_back_and_recorded(chat, model, how, why):
    model.queue_broken_stream(PARTIAL, how=how)

    answer = await chat.send("Is anyone free Friday?")

    pushed = await chat.pushed()
    assert shown(pushed) == {0: PARTIAL}
    # The page is told the words on screen are void, after the last of them.
    assert pushed[-1] == {"type": "reply_broken", "message_id": "m-1", "part": 0}
    assert answer["reply"].startswith(FAILURE_NOTE)
    messages = await sync_to_async(stored)(chat.session_id)
    # The reply stored is the kind note, never the half sentence; the failure has its row.
    assert messages[-2] == ("assistant", answer["reply"], "")
    role, text, kind = messages[-1]
    assert (role, kind) == ("event", "stream_broken")
    assert why in text and f"after {len(PARTIAL)} characters" in text
    event = await sync_to_async(Message.objects.get)(role="event", failure_kind="stream_broken")
    assert event.generated_text == PARTIAL
    conversation = await sync_to_async(Conversation.objects.get)(session_id=chat.session_id)
    assert conversation.failure_count == 1


async def test_a_broken_stream_follows_the_failure_policy_two_in_a_row_go_guided(chat, model):
    model.queue_broken_stream(PARTIAL, how="cut")
    model.queue_broken_stream(PARTIAL, how="error")

    first = await chat.send("Is anyone free Friday?", message_id="m-1")
    second = await chat.send("Is anyone free Friday?", message_id="m-2")

    assert "send that again" in first["reply"]
    assert "step by step" in second["reply"]
    assert second["mode"] == Conversation.Mode.GUIDED


async def test_an_error_before_any_words_is_the_failure_it_always_was(chat, model):
    model.queue_error(500, "overloaded", mid_stream=True)

    answer = await chat.send("Is anyone free Friday?")

    assert answer["reply"].startswith(FAILURE_NOTE)
    assert (await sync_to_async(stored)(chat.session_id))[-1][2] == "server_error"
    # Nothing was written, so there is nothing to take back.
    assert [p for p in await chat.pushed() if p["type"].startswith("reply_")] == []


async def test_a_cut_off_reply_streams_then_its_retry_replaces_it(chat, model):
    model.queue(Reply(text="Let me check that for y", status="incomplete", incomplete_reason="max_output_tokens"))
    model.queue_text(ANSWER)

    answer = await chat.send("Is anyone free Friday?")

    assert shown(await chat.pushed()) == {0: "Let me check that for y", 1: ANSWER}
    assert answer["reply"] == ANSWER


async def test_staff_watching_see_the_same_reply_as_it_is_written_masked_as_a_whole(chat, model, settings):
    settings.REPLY_STREAM_INTERVAL_SECONDS = 0  # every piece, so a number spans two of them
    staff = await sync_to_async(_dispatcher_without_contact_details)()
    watcher = WebsocketCommunicator(
        application,
        "/api/v1/staff/live",
        headers=[*ORIGIN, (b"cookie", f"sessionid={staff.cookies['sessionid'].value}".encode())],
    )
    assert (await watcher.connect())[0]
    await watcher.send_json_to({"type": "watch", "conversation": await sync_to_async(lambda: chat.number)()})
    assert (await watcher.receive_json_from())["type"] == "watching"
    # Each piece of the number alone has too few digits to look like one; so has "613 555".
    model.stream_event_delay = 0.01
    model.queue_text("Sure, call us at 613 555 0142 or dana@example.com any time.")

    await chat.send("What's your number?")

    seen = []
    while not await watcher.receive_nothing(timeout=0.2):
        push = await watcher.receive_json_from()
        if push["type"] == "event" and push["event"]["kind"] == "reply_delta":
            seen.append(push["event"]["text"])
    assert seen[0] == "Sure, "
    assert "Sure, call us at " in seen
    assert seen[-1] == "Sure, call us at ••• or ••• any time."
    assert not any("613" in text or "dana@" in text for text in seen), seen
    await watcher.disconnect()


def _dispatcher_without_contact_details() -> Client:
    user = get_user_model().objects.create_user("watcher", password="pw-123456!", is_staff=True)
    grant(user, access.VIEW_CONVERSATIONS)
    client = Client()
    client.force_login(user)
    return client


async def test_the_page_without_javascript_gets_the_whole_reply_as_before(business, model):
    model.queue_text(ANSWER)
    client = Client()

    def post_the_form() -> str:
        page = client.get("/")
        token = page.cookies["csrftoken"].value
        client.post("/send", {"message": "Can someone come Friday?", "csrfmiddlewaretoken": token})
        return client.get("/").content.decode()

    page = await sync_to_async(post_the_form)()

    assert ANSWER.replace("'", "&#x27;") in page
    assert model.response_requests[-1]["stream"] is True
