"""Idempotent customer messages: a retry with the same message id stores nothing twice.

The client names each message (`message_id` in the body, or the Idempotency-Key header;
static/chat.js sends a UUID, the no-JavaScript form a server-made id). A retry of a finished
turn gets the first answer again, byte for byte; a retry while the first is still running
gets 409 turn_in_progress with Retry-After; a retry of a message whose turn ended without an
answer (the database or the process failed after storing it) is answered then, once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client

from bookings.models import Booking
from chatdesk.assistant import turns
from chatdesk.conversations import services
from chatdesk.conversations.models import Conversation, Message, ToolCall
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.test_round_trips import a_conversation, statements  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=True):
        yield


def send(customer: Customer, text: str, message_id: str | None = None, **headers: str):
    body = {"session_id": customer.session_id, "message": text}
    if message_id is not None:
        body["message_id"] = message_id
    return customer.client.post("/api/v1/chat/message", json.dumps(body), content_type="application/json", **headers)


def stored(conversation: Conversation, role: str) -> list[str]:
    return list(conversation.messages.filter(role=role).order_by("id").values_list("text", flat=True))


def test_a_retry_of_a_finished_turn_gets_the_same_answer_and_stores_nothing(business):
    dana = Customer()
    message_id = str(uuid.uuid4())
    first = send(dana, "1", message_id)
    assert first.status_code == 200, first.content
    again = send(dana, "1", message_id)
    assert again.status_code == 200
    assert again.json() == first.json()
    conversation = dana.conversation
    assert stored(conversation, "customer") == ["1"]
    assert len(stored(conversation, "assistant")) == 2  # the greeting and one reply
    assert conversation.message_count == 3
    # A new id is a new message.
    assert send(dana, "1", str(uuid.uuid4())).status_code == 200
    assert stored(dana.conversation, "customer") == ["1", "1"]


def test_the_idempotency_key_header_works_the_same(business):
    dana = Customer()
    first = send(dana, "1", HTTP_IDEMPOTENCY_KEY="key-1")
    again = send(dana, "1", HTTP_IDEMPOTENCY_KEY="key-1")
    assert again.json() == first.json()
    assert stored(dana.conversation, "customer") == ["1"]
    # Both, agreeing, are fine; disagreeing is a 400.
    assert send(dana, "1", "key-1", HTTP_IDEMPOTENCY_KEY="key-1").json() == first.json()
    differs = send(dana, "1", "key-2", HTTP_IDEMPOTENCY_KEY="key-1")
    assert differs.status_code == 400
    assert "message_id" in differs.json()["fields"]


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "a\x00b", ["a"]])
def test_a_message_id_of_another_shape_is_a_400_and_stores_nothing(business, bad):
    dana = Customer()
    response = send(dana, "1", bad)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert stored(dana.conversation, "customer") == []


def test_an_id_used_for_other_words_is_a_409_and_stores_nothing(business):
    dana = Customer()
    send(dana, "1", "msg-1")
    response = send(dana, "2", "msg-1")
    assert response.status_code == 409
    assert response.json()["error"] == "message_id_reused"
    assert stored(dana.conversation, "customer") == ["1"]


def test_ids_are_per_conversation(business):
    dana, eve = Customer(), Customer()
    send(dana, "1", "same-id")
    assert send(eve, "1", "same-id").status_code == 200
    assert stored(eve.conversation, "customer") == ["1"]


def test_a_retry_of_a_model_turn_gets_its_tool_calls_and_booking_cards(business, model, frozen):
    dana = Customer()
    model.queue_function_call(
        "create_booking",
        {
            "service_id": "hvac-repair",
            "start": "2026-11-18T08:30:00-05:00",
            "technician_id": None,
            "customer_name": "Dana Customer",
            "customer_phone": "416-555-0123",
            "customer_email": "dana@example.com",
            "address": "12 Queen St W, Toronto",
            "notes": "Banging furnace",
            "customer_confirmed": True,
        },
    )
    model.queue_text("Booked!")
    first = send(dana, "yes, book it", "book-1")
    assert first.status_code == 200, first.content
    assert first.json()["bookings"], first.json()
    calls = len(model.requests)
    again = send(dana, "yes, book it", "book-1")
    assert again.json() == first.json()
    assert len(model.requests) == calls  # the model was not asked again
    assert Booking.objects.count() == 1
    assert ToolCall.objects.count() == 1
    assert stored(dana.conversation, "customer") == ["yes, book it"]


def test_a_retry_while_the_first_is_running_is_409_with_retry_after(business, model):
    dana = Customer()
    retry: dict = {}

    def retry_meanwhile(body):
        # Runs inside the fake model while the first request waits for it.
        with ThreadPoolExecutor(1) as pool:
            response = pool.submit(lambda: (send(dana, "hello", "slow-1"), connection.close())[0]).result()
        retry.update(status=response.status_code, body=response.json(), retry_after=response.get("Retry-After"))
        return "Hi there."

    model.respond_with(retry_meanwhile)
    first = send(dana, "hello", "slow-1")
    assert first.status_code == 200
    assert not model.responder_errors
    assert retry["status"] == 409
    assert retry["body"]["error"] == "turn_in_progress"
    assert int(retry["retry_after"]) >= 1
    assert stored(dana.conversation, "customer") == ["hello"]
    # Once it has finished, the retry gets its answer.
    assert send(dana, "hello", "slow-1").json() == first.json()


def test_a_stored_message_whose_turn_died_is_answered_once_on_retry(business):
    dana = Customer()
    # The turn that stored it failed before answering (its database connection was cut).
    Message.objects.create(conversation=dana.conversation, role="customer", text="1", client_message_id="lost-1")
    response = send(dana, "1", "lost-1")
    assert response.status_code == 200
    assert response.json()["reply"]
    assert stored(dana.conversation, "customer") == ["1"]
    assert len(stored(dana.conversation, "assistant")) == 2
    assert send(dana, "1", "lost-1").json() == response.json()
    assert len(stored(dana.conversation, "assistant")) == 2


def test_a_retry_of_a_paused_turn_is_paused_again(business, django_user_model):
    dana = Customer()
    services.conversation_take_over(conversation=dana.conversation, user=django_user_model.objects.create(username="s"))
    first = send(dana, "anyone there?", "p-1")
    assert first.json()["paused"] is True
    assert send(dana, "anyone there?", "p-1").json() == first.json()
    assert stored(dana.conversation, "customer") == ["anyone there?"]


def test_a_turn_with_a_message_id_sends_no_more_statements(business, model, statements):  # noqa: F811
    chat = a_conversation()
    model.queue_text("Hello.")
    statements.clear()
    async_to_sync(turns.chat_turn)(session_id=chat.session_id, text="Hi", message_id="m-1")
    # As tests/test_round_trips.py's plain turn: the id rides on the two INSERTs.
    assert len(statements) == 5, statements


# --- the no-JavaScript form -------------------------------------------------------------------


def form_id(page) -> str:
    match = re.search(rb'name="message_id" value="([^"]+)"', page.content)
    assert match, "the form has no message id"
    return match.group(1).decode()


def test_the_form_sent_twice_stores_the_message_once(business):
    browser = Client()
    message_id = form_id(browser.get("/"))
    assert browser.post("/send", {"message": "hello", "message_id": message_id}).status_code == 302
    assert browser.post("/send", {"message": "hello", "message_id": message_id}).status_code == 302
    conversation = Conversation.objects.get()
    assert stored(conversation, "customer") == ["hello"]
    assert len(stored(conversation, "assistant")) == 2
    # Each page has a new id for the next message.
    next_id = form_id(browser.get("/"))
    assert next_id != message_id
    browser.post("/send", {"message": "hello", "message_id": next_id})
    assert stored(conversation, "customer") == ["hello", "hello"]


def test_a_form_edited_after_going_back_is_a_new_message(business):
    browser = Client()
    message_id = form_id(browser.get("/"))
    browser.post("/send", {"message": "hello", "message_id": message_id})
    assert browser.post("/send", {"message": "hello again", "message_id": message_id}).status_code == 302
    assert stored(Conversation.objects.get(), "customer") == ["hello", "hello again"]


def test_a_double_submit_waits_for_the_first_then_shows_the_transcript(business, model):
    browser = Client()
    # A conversation already open, as on a second message.
    model.queue_text("Ok.")
    browser.post("/send", {"message": "first", "message_id": form_id(browser.get("/"))})
    message_id = form_id(browser.get("/"))
    other_tab = Client()
    other_tab.cookies = browser.cookies
    second: dict = {}
    released = threading.Event()

    def double_click(body):
        def post_again():
            try:
                second["response"] = other_tab.post("/send", {"message": "hello", "message_id": message_id})
            finally:
                connection.close()
                released.set()

        threading.Thread(target=post_again).start()
        # Give the second submit time to find the first still running.
        released.wait(1.0)
        second["returned_before_reply"] = released.is_set()
        return "Hi there."

    model.respond_with(double_click)
    assert browser.post("/send", {"message": "hello", "message_id": message_id}).status_code == 302
    assert released.wait(10)
    assert second["returned_before_reply"] is False  # it waited for the first turn
    assert second["response"].status_code == 302
    conversation = Conversation.objects.get()
    assert stored(conversation, "customer") == ["first", "hello"]
    assert stored(conversation, "assistant")[-1] == "Hi there."


def test_retries_nul_paths_and_form_bodies_on_sqlite(tmp_path):
    """`make run`'s database: the same answers (the partial unique index, the path converter)."""
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "1",
        "OPENAI_API_KEY": "",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    script = textwrap.dedent(
        """
        import json
        from django.test import Client
        from chatdesk.conversations.models import Message
        c = Client()
        session = c.post("/api/v1/chat/session/new").json()["session_id"]
        body = json.dumps({"session_id": session, "message": "1", "message_id": "m-1"})
        first = c.post("/api/v1/chat/message", body, content_type="application/json")
        again = c.post("/api/v1/chat/message", body, content_type="application/json")
        assert first.status_code == 200 and again.json() == first.json(), (first.content, again.content)
        assert Message.objects.filter(role="customer").count() == 1
        nul = c.get("/api/v1/chat/session/a%00b/history")
        assert nul.status_code == 404 and nul.json()["error"] == "not_found", nul.content
        form = c.post("/api/v1/chat/message", {"session_id": session, "message": "2"})
        assert form.status_code == 415 and form.json()["error"] == "unsupported_media_type", form.content
        print("sqlite ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "sqlite ok" in done.stdout
