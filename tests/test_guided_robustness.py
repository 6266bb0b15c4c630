"""Whatever a customer types at whatever step, the guided chat answers in customer words and never fails.

Each step of the flow is reached once; then every message of the utterance corpus (and some
hostile input) is sent from that same state. A failure here would be an HTTP 500 at the
doors, or words meant for the model shown to a customer.
"""

from __future__ import annotations

import pytest
import time_machine

from chatdesk.assistant.guided import guided_reply
from chatdesk.assistant.turns import conversation_start
from chatdesk.conversations.models import Conversation
from tests.conftest import MONDAY_NOON_UTC
from tests.guided_corpus import ALL
from tests.guided_doors import MODEL_FACING
from tests.test_guided import a_booking, at, shop  # noqa: F401  (the shop fixture)

pytestmark = pytest.mark.django_db

# (NUL never gets here: PostgreSQL text cannot hold it, and the doors refuse it.)
HOSTILE = ["", " ", "0", "-1", "99999999999", "x" * 1000, "<script>alert(1)</script>", "'; drop table", "🙂"]
# The messages that lead to each step, from a fresh conversation.
STEPS = {
    "menu": [],
    "book_service": ["sink"],
    "book_date": ["furnace"],
    "day_choice": ["furnace next friday"],
    "book_slot": ["furnace wednesday"],
    "book_name": ["furnace wednesday", "1"],
    "book_phone": ["furnace wednesday", "1", "Dana Whitfield"],
    "book_texts": ["furnace wednesday", "1", "Dana Whitfield", "416-555-0123"],
    "book_address": ["furnace wednesday", "1", "Dana Whitfield", "416-555-0123", "yes"],
    "book_email": ["furnace wednesday", "1", "Dana Whitfield", "416-555-0123", "yes", "12 Queen St W"],
    "book_confirm": ["furnace wednesday", "1", "Dana Whitfield", "416-555-0123", "no", "12 Queen St W", "skip"],
    "booking_number": ["2"],
    "booking_phone": ["2", "{number}"],
    "cancel_confirm": ["3", "{number}", "416-555-0123"],
    "move_confirm": ["4", "{number}", "416-555-0123", "friday", "1"],
    "handoff_phone": ["5"],
    "gas": ["i smell gas"],
}


@pytest.mark.parametrize("step", list(STEPS))
def test_every_message_at_every_step_gets_a_customer_reply(shop, step):  # noqa: F811
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        booking = a_booking(shop, start=at("2026-11-18", "08:30"))
        conversation = conversation_start()
        for text in STEPS[step]:
            guided_reply(conversation, text.format(number=booking.number))
        assert conversation.guided_state.get("step", "menu") == step
        saved = dict(conversation.guided_state)
        for text in [entry["text"] for entry in ALL] + HOSTILE:
            conversation.guided_state = dict(saved)
            Conversation.objects.filter(pk=conversation.pk).update(guided_state=saved)
            reply = guided_reply(conversation, text).text
            assert reply.strip(), text
            assert not MODEL_FACING.search(reply), (text, reply)
