"""Consent to text messages, captured in the conversation: the guided flow's question with messy
answers, and the create_booking tool, whose evidence comes from the stored transcript only.

Through the JSON chat API on real PostgreSQL (the turn runs on worker threads, so rows are
committed: transaction=True). "Now" is Monday 2026-11-16 08:00 in Toronto.
"""

from __future__ import annotations

import json

import pytest
import time_machine
from django.core.cache import cache

from bookings.models import Booking, Customer, TextMessage
from bookings.text_messages import SMS_CONSENT_ASK
from chatdesk.assistant.tools import execute_tool_call
from chatdesk.conversations.models import Message
from tests.cmd_fixtures import stored_conversation
from tests.conftest import MONDAY_NOON_UTC
from tests.guided_doors import ApiDoor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        cache.clear()
        yield


def start(door: ApiDoor) -> None:
    assert "Which service do you need?" in door.send("1")
    assert "HVAC Repair." in door.send("1")
    assert "Free times on Tuesday" in door.send("tuesday")
    assert "What is your full name?" in door.send("1")
    assert "What phone number" in door.send("Dana Whitfield")


def book_through_the_guided_flow(answers: list[str]) -> tuple[ApiDoor, str]:
    door = ApiDoor()
    start(door)
    assert SMS_CONSENT_ASK in door.send("416 555 0123")
    for answer in answers:
        reply = door.send(answer)
    assert "What is the address of the visit?" in reply
    door.send("12 Queen St W, Toronto")
    readback = door.send("skip")
    assert "Shall I book it?" in readback
    return door, door.send("yes")


@pytest.mark.parametrize(
    "answer",
    ["yeah sure", "Yes please, text me!", "texts are fine", "ok 👍", "👍", "sure thing", "no problem", "Y"],
)
def test_a_yes_in_the_customer_s_words_is_recorded_with_the_question(business, answer):
    door, booked = book_through_the_guided_flow([answer])

    assert "You're booked!" in booked
    assert "We'll text you a reminder the day before." in booked
    customer = Customer.objects.get(phone="+14165550123")
    assert customer.sms_consent_at == MONDAY_NOON_UTC
    assert SMS_CONSENT_ASK in customer.sms_consent_wording
    assert customer.sms_consent_reply == answer
    assert customer.sms_consent_source == door.conversation.number
    # The question is recorded exactly as the customer saw it in the transcript.
    assert Message.objects.filter(conversation=door.conversation, text=customer.sms_consent_wording).exists()
    assert TextMessage.objects.get().kind == TextMessage.Kind.CONFIRMATION


@pytest.mark.parametrize(
    "answer", ["no thanks, email only", "nah", "I'd rather not", "sure, but no texts please", "Don't text me"]
)
def test_a_no_in_the_customer_s_words_sends_no_texts(business, answer):
    _, booked = book_through_the_guided_flow([answer])

    assert "You're booked!" in booked
    assert "text you" not in booked
    assert Customer.objects.get(phone="+14165550123").sms_consent_at is None
    assert not TextMessage.objects.exists()
    assert Booking.objects.get().events.get(kind="created").changes["sms_consent"] is False


def test_an_unclear_answer_is_asked_again_and_the_real_answer_counts(business):
    door = ApiDoor()
    start(door)
    door.send("416 555 0123")
    assert "Please reply yes or no." in door.send("what for?")
    assert "Please reply yes or no." in door.send("12 Queen St W")
    assert "What is the address of the visit?" in door.send("oh ok yes")
    door.send("12 Queen St W, Toronto")
    door.send("skip")
    door.send("yes")
    customer = Customer.objects.get()
    assert customer.sms_consent_reply == "oh ok yes"
    assert customer.sms_consent_wording.startswith("Sorry, I didn't catch that.")


# --- the model's create_booking tool ------------------------------------------------------------


def create_booking_args(business, sms_consent: bool | None) -> str:
    return json.dumps(
        {
            "service_id": "hvac-repair",
            "start": "2026-11-17T10:00:00-05:00",
            "technician_id": None,
            "customer_name": "Dana Whitfield",
            "customer_phone": "416-555-0123",
            "customer_email": None,
            "sms_consent": sms_consent,
            "address": "12 Queen St W, Toronto",
            "notes": None,
            "customer_confirmed": True,
        }
    )


def test_the_model_cannot_record_a_yes_that_was_never_asked(business):
    chat = stored_conversation(started=MONDAY_NOON_UTC, messages=[("customer", "book me tuesday 10am, and text me")])

    outcome = execute_tool_call(
        conversation=chat, call_id="call_1", name="create_booking", raw_arguments=create_booking_args(business, True)
    )

    assert outcome.error == "sms_consent_not_asked"
    assert SMS_CONSENT_ASK in outcome.result["message"]
    assert not Booking.objects.exists()


def test_the_model_s_yes_is_recorded_with_the_transcript_s_question_and_answer(business):
    asked = f"Great. {SMS_CONSENT_ASK} Reply STOP to any text to stop them."
    chat = stored_conversation(
        started=MONDAY_NOON_UTC,
        messages=[
            ("customer", "book me the tuesday 10am repair"),
            ("assistant", asked),
            ("customer", "yep go ahead, text is good"),
            ("assistant", "Please check: HVAC Repair ... Shall I book it?"),
            ("customer", "yes"),
        ],
    )

    outcome = execute_tool_call(
        conversation=chat, call_id="call_1", name="create_booking", raw_arguments=create_booking_args(business, True)
    )

    assert outcome.booked, outcome.result
    assert outcome.result["text_messages"] == "on"
    customer = Customer.objects.get()
    assert (customer.sms_consent_wording, customer.sms_consent_reply) == (asked, "yep go ahead, text is good")
    assert customer.sms_consent_source == chat.number
    assert customer.sms_consent_at == Message.objects.get(text="yep go ahead, text is good").created_at


def test_a_model_booking_without_the_question_sends_no_texts(business):
    chat = stored_conversation(started=MONDAY_NOON_UTC, messages=[("customer", "book me tuesday 10am")])

    outcome = execute_tool_call(
        conversation=chat, call_id="call_1", name="create_booking", raw_arguments=create_booking_args(business, None)
    )

    assert outcome.booked
    assert outcome.result["text_messages"] == "off"
    assert not TextMessage.objects.exists()
