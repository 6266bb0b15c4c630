"""The lease on a message being answered (chatdesk/assistant/turn_lease.py), and a draining
worker's refusal of new turns, in one process. tests/test_drain.py runs the same rules across
real worker processes (SIGTERM, SIGKILL).

A turn "running on another worker" is what that worker leaves in the shared places: its
customer's message stored, and the lease held.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from chatdesk import lifecycle
from chatdesk.assistant import turns
from chatdesk.assistant.turn_lease import TurnLease
from chatdesk.conversations.models import Message
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.fake_openai import fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def not_draining():
    lifecycle.stop_draining()
    yield
    lifecycle.stop_draining()


def send(customer: Customer, text: str, message_id: str | None = None):
    body = {"session_id": customer.session_id, "message": text}
    if message_id is not None:
        body["message_id"] = message_id
    return customer.client.post("/api/v1/chat/message", json.dumps(body), content_type="application/json")


def stored(customer: Customer, role: str) -> list[str]:
    messages = Message.objects.filter(conversation=customer.conversation, role=role).order_by("id")
    return list(messages.values_list("text", flat=True))


def another_worker_is_answering(customer: Customer, text: str, message_id: str) -> TurnLease:
    Message.objects.create(conversation=customer.conversation, role="customer", text=text, client_message_id=message_id)
    lease = TurnLease(customer.conversation.pk, message_id)
    assert lease.take()
    return lease


def test_a_retry_while_another_worker_answers_is_409_and_is_answered_once_that_one_is_done(business):
    dana = Customer()
    lease = another_worker_is_answering(dana, "1", "m-1")
    busy = send(dana, "1", "m-1")
    assert busy.status_code == 409
    assert busy.json()["error"] == "turn_in_progress"
    assert int(busy["Retry-After"]) >= 1
    # That worker stored its reply and let go: the retry gets that reply, nothing new.
    Message.objects.create(
        conversation=dana.conversation, role="assistant", text="From the other.", client_message_id="m-1"
    )
    lease.release()
    done = send(dana, "1", "m-1")
    assert done.status_code == 200
    assert done.json()["reply"] == "From the other."
    assert stored(dana, "customer") == ["1"]
    assert stored(dana, "assistant")[1:] == ["From the other."]


def test_a_lease_nobody_refreshes_lapses_and_the_retry_is_answered_once(business, settings):
    settings.TURN_LEASE_SECONDS = 0.5
    dana = Customer()
    another_worker_is_answering(dana, "1", "m-1")  # ... and that worker was SIGKILLed
    assert send(dana, "1", "m-1").status_code == 409
    time.sleep(0.6)
    answered = send(dana, "1", "m-1")
    assert answered.status_code == 200, answered.content
    assert send(dana, "1", "m-1").json() == answered.json()
    assert stored(dana, "customer") == ["1"]
    assert len(stored(dana, "assistant")) == 2  # the greeting and one reply


def test_a_running_turn_keeps_its_lease_past_the_lease_time(business, settings, model):
    settings.TURN_LEASE_SECONDS = 0.6  # refreshed every 0.2 s
    dana = Customer()
    lease = TurnLease(dana.conversation.pk, "slow-1")
    seen: dict = {}

    def slow(body):
        # Runs in the fake model while the turn waits for it: well past one lease time.
        time.sleep(1.5)
        seen["held"] = lease.held()
        return "Done."

    model.respond_with(slow)
    assert send(dana, "hello", "slow-1").json()["reply"] == "Done."
    assert seen["held"] is True
    # Released with the reply, not left to lapse.
    assert lease.held() is False


def test_a_draining_worker_refuses_new_turns_with_503_and_stores_nothing(business):
    dana = Customer()
    lifecycle.start_draining()
    refused = send(dana, "hello", "m-1")
    assert refused.status_code == 503
    assert refused.json()["error"] == "server_draining"
    assert int(refused["Retry-After"]) >= 1
    assert stored(dana, "customer") == []
    # The same message, once a worker takes it, is a first try.
    lifecycle.stop_draining()
    assert send(dana, "hello", "m-1").status_code == 200
    assert stored(dana, "customer") == ["hello"]


def test_the_drain_deadline_cuts_a_running_turn_with_503_and_keeps_its_message(business, model):
    dana = Customer()
    entered = threading.Event()
    release = threading.Event()

    def stuck(body):
        entered.set()
        release.wait(10)
        return "Too late."

    model.respond_with(stuck)
    result: dict = {}

    def first_try():
        try:
            result["response"] = send(dana, "hello", "m-1")
        finally:
            connection.close()

    sender = threading.Thread(target=first_try)
    sender.start()
    assert entered.wait(10)
    assert turns.cut_turns_in_flight() == 1
    sender.join(10)
    release.set()
    response = result["response"]
    assert response.status_code == 503
    assert response.json()["error"] == "server_draining"
    assert stored(dana, "customer") == ["hello"]
    # Left to lapse, not released: its last write might still have been on its way.
    assert TurnLease(dana.conversation.pk, "m-1").held() is True
    assert async_to_sync(TurnLease(dana.conversation.pk, "m-1").released)(0.1) is False
