"""Booking cards through the chat API: the real openai SDK against the loopback fake model,
PostgreSQL underneath. A card shows its booking as it stands now and stays with the reply
of the turn that first produced it (chatdesk/conversations/booking_cards.py).

The turn runs its database work on worker threads, so these tests use committed data.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from bookings.models import Booking
from bookings.services import Actor, booking_cancel, booking_complete, booking_create, booking_mark_no_show
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import fake_openai_fixture  # noqa: F401  (registers `fake_openai`)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "416-555-0123"
WEDNESDAY_0830 = "2026-11-18T08:30:00-05:00"
THURSDAY_1300 = "2026-11-19T13:00:00-05:00"


@pytest.fixture
def frozen():
    # The clock runs (tick): cards are placed by when tool calls and replies were stored.
    with time_machine.travel(MONDAY_NOON_UTC, tick=True):
        yield


def book_call(start: str = WEDNESDAY_0830) -> dict:
    return {
        "service_id": "hvac-repair",
        "start": start,
        "technician_id": None,
        "customer_name": "Dana Customer",
        "customer_phone": PHONE,
        "customer_email": None,
        "address": "12 Queen St W, Toronto",
        "notes": None,
        "customer_confirmed": True,
    }


def cancel_call(number: str, phone: str = PHONE) -> dict:
    return {"booking_number": number, "phone": phone, "reason": None, "customer_confirmed": True}


def reschedule_call(number: str, new_start: str = THURSDAY_1300) -> dict:
    return {
        "booking_number": number,
        "phone": PHONE,
        "new_start": new_start,
        "technician_id": None,
        "customer_confirmed": True,
    }


def books_a_visit(dana: Customer, model) -> str:
    model.queue_function_call("create_booking", book_call())
    model.queue_text("You're booked!")
    card = dana.send("Book it please.")["bookings"][0]
    assert card["state"] == "confirmed"
    return card["booking_number"]


def cards_by_message(history: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(m["text"], [(b["booking_number"], b["state"]) for b in m["bookings"]]) for m in history["messages"]]


def test_a_card_follows_its_booking_through_a_move_and_a_cancellation_and_stays_with_the_booking_reply(
    business, model, frozen
):
    dana = Customer()
    model.queue_function_call("create_booking", book_call())
    model.queue_text("You're booked!")
    booked = dana.send("Book Wednesday 8:30 please.")
    card = booked["bookings"][0]
    number = card["booking_number"]
    assert (card["state"], card["headline"]) == ("confirmed", "Booking confirmed")
    assert card["when"] == "Wednesday November 18, 2026 at 8:30 AM"
    assert card["previous_when"] is None
    assert "Keep this number" in card["note"]

    model.queue_function_call("reschedule_booking", reschedule_call(number))
    model.queue_text("Moved to Thursday at 1.")
    moved = dana.send("Can we make it Thursday at 1 instead?")["bookings"]
    assert [(c["booking_number"], c["state"], c["headline"]) for c in moved] == [(number, "moved", "Booking moved")]
    assert moved[0]["when"] == "Thursday November 19, 2026 at 1:00 PM"
    assert moved[0]["previous_when"] == "Wednesday November 18, 2026 at 8:30 AM"

    model.queue_function_call("cancel_booking", cancel_call(number))
    model.queue_text("It's cancelled.")
    cancelled = dana.send("Actually, cancel it.")["bookings"]
    assert [(c["booking_number"], c["state"], c["headline"]) for c in cancelled] == [
        (number, "cancelled", "Booking cancelled")
    ]
    assert cancelled[0]["previous_when"] is None  # no longer "moved": it is cancelled
    assert "no technician will come" in cancelled[0]["note"]

    # One card, in its current state, with the reply of the turn that booked it.
    history = dana.history()
    assert cards_by_message(history)[1:] == [
        ("Book Wednesday 8:30 please.", []),
        ("You're booked!", [(number, "cancelled")]),
        ("Can we make it Thursday at 1 instead?", []),
        ("Moved to Thursday at 1.", []),
        ("Actually, cancel it.", []),
        ("It's cancelled.", []),
    ]
    assert [(b["booking_number"], b["state"]) for b in history["bookings"]] == [(number, "cancelled")]


def test_a_booking_created_and_cancelled_in_one_turn_is_shown_cancelled(business, model, frozen):
    dana = Customer()
    model.queue_function_call("create_booking", book_call())
    model.queue_function_call("cancel_booking", cancel_call("BK-2026-000001"))
    model.queue_text("Booked and cancelled, as you asked.")
    cards = dana.send("Book it, then cancel it.")["bookings"]
    number = Booking.objects.get().number
    assert number == "BK-2026-000001"
    assert [(c["booking_number"], c["state"]) for c in cards] == [(number, "cancelled")]


def test_a_looked_up_booking_made_elsewhere_gets_its_card_with_the_lookup_reply(business, model, frozen):
    from datetime import datetime

    staff_booking = booking_create(
        service=business.repair,
        start=datetime.fromisoformat(THURSDAY_1300),
        customer_name="Dana Customer",
        customer_phone=PHONE,
        address="12 Queen St W, Toronto",
        channel="staff",
        actor=Actor.system(),
    )
    dana = Customer()
    model.queue_text("Sure, what's the booking number and phone?")
    dana.send("Can you check my visit?")
    model.queue_function_call("get_booking_info", {"booking_number": staff_booking.number, "phone": PHONE})
    model.queue_text("It's on Thursday at 1 PM.")
    looked_up = dana.send(f"{staff_booking.number}, {PHONE}")["bookings"]
    assert [(c["booking_number"], c["state"]) for c in looked_up] == [(staff_booking.number, "confirmed")]

    assert cards_by_message(dana.history())[1:] == [
        ("Can you check my visit?", []),
        ("Sure, what's the booking number and phone?", []),
        (f"{staff_booking.number}, {PHONE}", []),
        ("It's on Thursday at 1 PM.", [(staff_booking.number, "confirmed")]),
    ]


def test_a_failed_lookup_shows_no_card(business, model, frozen):
    dana = Customer()
    number = books_a_visit(dana, model)
    model.queue_function_call("cancel_booking", cancel_call(number, phone="416-555-9999"))
    model.queue_text("That phone number doesn't match.")
    assert dana.send(f"Cancel {number}, my phone is 416-555-9999")["bookings"] == []
    assert Booking.objects.get().status == "confirmed"
    assert [(b["booking_number"], b["state"]) for b in dana.history()["bookings"]] == [(number, "confirmed")]


def test_two_bookings_keep_their_own_turns_and_states(business, model, frozen):
    dana = Customer()
    first = books_a_visit(dana, model)
    model.queue_function_call("create_booking", book_call(THURSDAY_1300))
    model.queue_text("Your second visit is booked too.")
    second = dana.send("And one on Thursday.")["bookings"][0]["booking_number"]
    model.queue_function_call("cancel_booking", cancel_call(first))
    model.queue_text("The Wednesday one is cancelled.")
    assert [(c["booking_number"], c["state"]) for c in dana.send("Cancel the first one.")["bookings"]] == [
        (first, "cancelled")
    ]

    with_cards = [(text, cards) for text, cards in cards_by_message(dana.history()) if cards]
    assert with_cards == [
        ("You're booked!", [(first, "cancelled")]),
        ("Your second visit is booked too.", [(second, "confirmed")]),
    ]


def test_completed_and_missed_visits_say_so(business, model, frozen):
    dana = Customer()
    model.queue_function_call("create_booking", book_call())
    model.queue_function_call("create_booking", book_call(THURSDAY_1300))
    model.queue_text("Both booked.")
    numbers = [c["booking_number"] for c in dana.send("Book both.")["bookings"]]
    first, second = (Booking.objects.get(number=n) for n in numbers)
    booking_complete(booking=first, actor=Actor.system(), now=first.start + timedelta(hours=3))
    booking_mark_no_show(booking=second, actor=Actor.system(), now=second.start + timedelta(hours=3))

    cards = dana.history()["bookings"]
    assert [(c["booking_number"], c["state"], c["headline"]) for c in cards] == [
        (first.number, "completed", "Visit completed"),
        (second.number, "no_show", "Visit missed"),
    ]


def test_a_booking_cancelled_by_staff_shows_cancelled_on_the_page_next_to_its_reply(business, model, frozen):
    dana = Customer()
    number = books_a_visit(dana, model)
    model.queue_text("Anything else?")
    dana.send("Thanks!")
    booking_cancel(booking=Booking.objects.get(number=number), actor=Actor.system(), reason="Technician ill")

    page = dana.client.get("/").content.decode()
    reply = page.index("You&#x27;re booked!")
    card = page.index(f'data-booking="{number}"')
    assert reply < card < page.index("Anything else?")
    assert page.count('class="booking"') == 1
    assert 'data-state="cancelled"' in page
    assert "Booking cancelled" in page
    assert "Booking confirmed" not in page


def test_the_openapi_schema_documents_the_booking_cards():
    schema = Client().get("/api/schema/?format=json").json()
    card = schema["components"]["schemas"]["BookingCardOut"]
    assert {"booking_number", "state", "headline", "note", "when", "previous_when"} <= set(card["properties"])
    state_enum = card["properties"]["state"]["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][state_enum]["enum"]) == {
        "confirmed",
        "pending",
        "moved",
        "cancelled",
        "completed",
        "no_show",
    }
    history_message = schema["components"]["schemas"]["HistoryMessageOut"]
    assert history_message["properties"]["bookings"]["items"]["$ref"].endswith("/BookingCardOut")
