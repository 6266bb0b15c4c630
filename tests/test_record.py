"""The conversation record's writer: nothing stored during a turn is overwritten by the turn.

A text turn reads the model history when it starts and stores its reply seconds later, after
the model answered. A staff reply (or a spoken line) stored meanwhile must survive it. Real
threads, a real turn against the loopback fake model, PostgreSQL underneath.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model

from chatdesk.assistant import turns
from chatdesk.conversations import model_items, record, services
from chatdesk.conversations.models import Conversation, Message
from tests.chat_customer import model_fixture  # noqa: F401 (registers `model`)
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from voice.records import save_utterance

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_staff_reply_stored_while_a_turn_waits_on_the_model_is_kept(business, model):
    chat = turns.conversation_start(ip="203.0.113.5", user_agent="pytest")
    greeting = chat.model_items[0]
    asked, release = threading.Event(), threading.Event()

    def slow_model(request: dict) -> str:
        asked.set()
        release.wait(10)  # the model "thinks" until the staff reply is stored
        return "Friday at 9 works."

    model.respond_with(slow_model)
    turn: list[turns.TurnResult] = []
    customer = threading.Thread(
        target=lambda: turn.append(async_to_sync(turns.chat_turn)(session_id=chat.session_id, text="Friday?"))
    )
    customer.start()
    try:
        assert asked.wait(10), "the turn never asked the model"
        sam = get_user_model().objects.create_user("sam", password="x", is_staff=True)
        services.conversation_take_over(conversation=chat, user=sam)
        services.staff_message_send(conversation=chat, user=sam, text="Sam here, I can help too.")
    finally:
        release.set()
        customer.join(15)
    assert turn and turn[0].reply == "Friday at 9 works."

    stored = Conversation.objects.get(pk=chat.pk)
    # The staff reply stays; the turn's own items (the customer's words, the reply) follow it.
    assert stored.model_items[:3] == [
        greeting,
        model_items.assistant_item("Sam here, I can help too."),
        model_items.user_item("Friday?"),
    ]
    reply = stored.model_items[3:]  # the model's own output item, as it sent it
    assert [(i["role"], i["content"][0]["text"]) for i in reply] == [("assistant", "Friday at 9 works.")]
    # Greeting, customer, takeover event, staff reply, assistant reply.
    assert stored.message_count == 5


def test_a_spoken_line_stored_while_a_turn_waits_on_the_model_is_kept(business, model):
    chat = turns.conversation_start(ip="203.0.113.5", user_agent="pytest")
    asked, release = threading.Event(), threading.Event()

    def slow_model(request: dict) -> str:
        asked.set()
        release.wait(10)
        return "Noted."

    model.respond_with(slow_model)
    customer = threading.Thread(
        target=lambda: async_to_sync(turns.chat_turn)(session_id=chat.session_id, text="I'll call you too.")
    )
    customer.start()
    try:
        assert asked.wait(10), "the turn never asked the model"
        save_utterance(
            conversation_id=chat.pk,
            role=Message.Role.CUSTOMER,
            text="Hello, it's me on the phone.",
            item_id="item_1",
            latency_ms=None,
            cost=None,
            interrupted=False,
        )
    finally:
        release.set()
        customer.join(15)
    history = Conversation.objects.get(pk=chat.pk).model_items
    assert model_items.user_item("Hello, it's me on the phone.") in history
    assert model_items.user_item("I'll call you too.") in history
    assert len(history) == 4  # greeting, the spoken line, the typed line, the reply


def test_usage_with_a_breakdown_adds_up_across_writers(business):
    chat = turns.conversation_start(ip="203.0.113.5", user_agent="pytest")
    spoken = record.Usage(input_tokens=100, audio_input_tokens=40, cost=Decimal("0.25"))
    record.add_usage(chat.pk, spoken, breakdown={"audio_input": Decimal("0.2")})
    record.add_usage(chat.pk, spoken, breakdown={"audio_input": Decimal("0.2")})
    record.add_usage(chat.pk, record.Usage(output_tokens=7, price_missing=True))
    stored = Conversation.objects.get(pk=chat.pk)
    assert (stored.input_tokens, stored.audio_input_tokens, stored.output_tokens) == (200, 80, 7)
    assert str(stored.cost_usd) == "0.500000"
    assert stored.cost_breakdown == {"audio_input": "0.400000"}
    assert stored.price_missing is True
