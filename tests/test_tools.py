"""The assistant's tools, called as a hostile or confused model would call them.

Every call goes through execute_tool_call, exactly as the model's function calls do; the
business rules underneath are the real booking services on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import time_machine

from bookings.models import Booking, BookingEvent
from chatdesk.assistant.tools import TOOLS, execute_tool_call, tool_definitions
from chatdesk.assistant.turns import conversation_start
from chatdesk.conversations.models import Conversation, HandoffRequest, ToolCall
from tests.conftest import MONDAY_NOON_UTC

INTERNAL_VALUES = ["+14165550000", "1 Secret Lane", "41.00", "staff.example.com"]


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        yield


@pytest.fixture
def chat(business, frozen) -> Conversation:
    return conversation_start(ip="203.0.113.5", user_agent="pytest")


counter = iter(range(1, 10_000))


def call(conversation: Conversation, tool: str, call_id: str | None = None, **args) -> dict:
    outcome = execute_tool_call(
        conversation=conversation,
        call_id=call_id or f"call_{next(counter)}",
        name=tool,
        raw_arguments=json.dumps(args),
    )
    return outcome.result


def first_slot(conversation: Conversation, day: str = "2026-11-18") -> dict:
    result = call(
        conversation, "get_available_time_slots", service_id="hvac-repair", date=day, end_date=None, technician_id=None
    )
    return result["slots"][0]


def book(conversation: Conversation, start: str, **overrides) -> dict:
    args = {
        "service_id": "hvac-repair",
        "start": start,
        "technician_id": None,
        "customer_name": "Dana Customer",
        "customer_phone": "(416) 555-0123",
        "customer_email": None,
        "address": "12 Queen St W, Toronto",
        "notes": "Furnace banging",
        "customer_confirmed": True,
    }
    args.update(overrides)
    return call(conversation, "create_booking", **args)


def test_every_tool_has_a_strict_schema():
    for definition in tool_definitions():
        params = definition["parameters"]
        assert definition["strict"] is True
        assert params["additionalProperties"] is False
        assert sorted(params["required"]) == sorted(params["properties"])
    assert len(TOOLS) == 10


def test_it_lists_services_with_prices(chat):
    result = call(chat, "get_available_services", trade="hvac")
    assert [s["service_id"] for s in result["services"]] == ["hvac-repair"]
    assert result["services"][0]["price"] == "200.00–600.00 CAD"


def test_it_offers_real_slots_with_weekday_and_technicians(chat):
    slot = first_slot(chat)
    assert slot["weekday"] == "Wednesday"
    assert slot["start"] == "2026-11-18T08:30:00-05:00"
    assert {t["name"] for t in slot["technicians"]} == {"Alice T."}


def test_a_confirmed_booking_is_made_and_linked_to_the_conversation(chat):
    slot = first_slot(chat)
    result = book(chat, slot["start"])
    assert result["booked"] is True
    booking = Booking.objects.get(number=result["booking"]["booking_number"])
    assert booking.channel == "chat"
    assert booking.customer.phone == "+14165550123"
    row = ToolCall.objects.get(conversation=chat, name="create_booking")
    assert row.booking == booking
    event = BookingEvent.objects.get(booking=booking, kind="created")
    assert event.actor_kind == "customer"
    assert event.actor_reference == f"{chat.number} {row.call_id}"
    chat.refresh_from_db()
    assert chat.booking_count == 1
    assert chat.resolution == "booked"
    assert chat.customer == booking.customer


def test_it_refuses_to_book_without_the_customers_yes(chat):
    result = book(chat, first_slot(chat)["start"], customer_confirmed=False)
    assert result["error"] == "confirmation_required"
    assert not Booking.objects.exists()


def test_a_replayed_call_id_returns_the_first_result_and_books_once(chat):
    start = first_slot(chat)["start"]
    args = dict(
        service_id="hvac-repair",
        start=start,
        technician_id=None,
        customer_name="Dana",
        customer_phone="416-555-0123",
        customer_email=None,
        address="1 Main St",
        notes=None,
        customer_confirmed=True,
    )
    one = call(chat, "create_booking", call_id="call_same", **args)
    two = call(chat, "create_booking", call_id="call_same", **args)
    assert one == two
    assert Booking.objects.count() == 1
    assert ToolCall.objects.filter(call_id="call_same").count() == 1


def test_another_customers_booking_stays_hidden(chat, business):
    booking_number = book(chat, first_slot(chat)["start"])["booking"]["booking_number"]
    other = conversation_start()
    wrong_phone = call(other, "get_booking_info", booking_number=booking_number, phone="416 555 9999")
    wrong_number = call(other, "get_booking_info", booking_number="BK-2026-999999", phone="416 555 0123")
    assert (
        wrong_phone
        == wrong_number
        == {
            "error": "booking_not_found",
            "message": "No booking matches that number and phone number.",
        }
    )
    cancel = call(
        other, "cancel_booking", booking_number=booking_number, phone="4165559999", reason=None, customer_confirmed=True
    )
    assert cancel["error"] == "booking_not_found"
    assert Booking.objects.get(number=booking_number).status == "confirmed"


def test_the_owner_can_look_up_reschedule_and_cancel(chat):
    slots = call(
        chat, "get_available_time_slots", service_id="hvac-repair", date="2026-11-18", end_date=None, technician_id=None
    )["slots"]
    number = book(chat, slots[0]["start"])["booking"]["booking_number"]
    info = call(chat, "get_booking_info", booking_number=number.lower(), phone="+1 416 555 0123")
    assert info["booking"]["when"] == "Wednesday November 18, 2026 at 8:30 AM"
    moved = call(
        chat,
        "reschedule_booking",
        booking_number=number,
        phone="4165550123",
        new_start=slots[-1]["start"],
        technician_id=None,
        customer_confirmed=True,
    )
    assert moved["rescheduled"] is True
    assert moved["booking"]["start"] == slots[-1]["start"]
    cancelled = call(
        chat,
        "cancel_booking",
        booking_number=number,
        phone="4165550123",
        reason="found someone",
        customer_confirmed=True,
    )
    assert cancelled["booking"]["status"] == "cancelled"
    kinds = list(Booking.objects.get(number=number).events.values_list("kind", flat=True))
    assert kinds == ["created", "rescheduled", "cancelled"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"start": "2026-11-09T09:00:00-05:00"}, "invalid_input"),  # in the past
        ({"start": "2026-11-18T03:00:00-05:00"}, "slot_unavailable"),  # the middle of the night
        ({"start": "next tuesday"}, "invalid_input"),
        ({"customer_name": "x" * 10_000}, "invalid_input"),
        ({"customer_phone": "call me maybe"}, "invalid_input"),
        ({"service_id": "free-money"}, "not_found"),
        ({"address": ""}, "invalid_input"),
    ],
)
def test_hostile_booking_arguments_get_a_structured_error(chat, overrides, error):
    start = first_slot(chat)["start"]
    result = book(chat, overrides.pop("start", start), **overrides)
    assert result["error"] == error
    assert result["message"]
    assert not Booking.objects.exists()


def test_an_unqualified_technician_cannot_be_booked(chat, business):
    result = book(chat, first_slot(chat)["start"], technician_id=business.carol.pk)
    assert result == {
        "error": "invalid_input",
        "message": "That technician does not do HVAC work.",
        "field": "technician",
    }


def test_unknown_tools_and_malformed_arguments_are_recorded_not_raised(chat):
    unknown = execute_tool_call(conversation=chat, call_id="c1", name="drop_tables", raw_arguments="{}")
    malformed = execute_tool_call(conversation=chat, call_id="c2", name="resolve_date", raw_arguments="{not json")
    wrong_type = execute_tool_call(conversation=chat, call_id="c3", name="resolve_date", raw_arguments='{"text": 42}')
    extra = execute_tool_call(
        conversation=chat, call_id="c4", name="resolve_date", raw_arguments='{"text": "friday", "sql": "drop"}'
    )
    assert [o.error for o in (unknown, malformed, wrong_type, extra)] == ["invalid_input"] * 4
    assert "Unknown tool" in unknown.result["message"]
    rows = ToolCall.objects.filter(conversation=chat).order_by("call_id")
    assert [r.error for r in rows] == ["invalid_input"] * 4
    assert rows[0].raw_arguments == "{}"


def test_it_caps_bookings_per_conversation(chat, settings):
    settings.CHAT_MAX_BOOKINGS = 1
    slots = call(
        chat, "get_available_time_slots", service_id="hvac-repair", date="2026-11-18", end_date=None, technician_id=None
    )["slots"]
    assert book(chat, slots[0]["start"])["booked"]
    second = book(chat, slots[-1]["start"])
    assert second["error"] == "limit_reached"
    assert Booking.objects.count() == 1


def test_no_tool_result_carries_internal_technician_data(chat, business):
    results = [
        call(chat, "get_technician_availability", trade="HVAC", date="2026-11-18", service_id=None),
        call(
            chat,
            "get_available_time_slots",
            service_id="hvac-repair",
            date="2026-11-18",
            end_date=None,
            technician_id=None,
        ),
        book(chat, first_slot(chat)["start"]),
    ]
    number = results[-1]["booking"]["booking_number"]
    results.append(call(chat, "get_booking_info", booking_number=number, phone="4165550123"))
    text = json.dumps(results)
    for value in INTERNAL_VALUES:
        assert value not in text
    assert "Tech" not in text.replace("Technician", "")  # last names are reduced to an initial


def test_the_old_availability_tool_name_still_answers_for_stored_conversations(chat):
    # Conversations from before the Employee -> Technician rename hold get_employee_availability;
    # replaying them (or a model primed by them) must get the same answer, not "unknown tool".
    assert "get_employee_availability" not in TOOLS
    assert "get_employee_availability" not in json.dumps(tool_definitions())
    new = call(chat, "get_technician_availability", trade="HVAC", date="2026-11-18", service_id=None)
    old = call(chat, "get_employee_availability", "call_old", trade="HVAC", date="2026-11-18", service_id=None)
    assert "error" not in old
    assert old == new
    row = ToolCall.objects.get(call_id="call_old")
    assert row.name == "get_employee_availability"
    assert row.error == ""


def test_resolve_date_answers_in_the_business_time_zone(chat):
    # 2026-11-16 13:00 UTC is Monday 08:00 in Toronto.
    assert call(chat, "resolve_date", text="Friday")["date"] == "2026-11-20"
    assert call(chat, "resolve_date", text="tomorrow")["weekday"] == "Tuesday"
    assert call(chat, "resolve_date", text="someday")["error"] == "invalid_input"


def test_late_evening_utc_is_still_today_in_toronto(business):
    # 03:00 UTC on Tuesday is still Monday evening in Toronto.
    with time_machine.travel(datetime.fromisoformat("2026-11-17T03:00:00+00:00"), tick=False):
        chat = conversation_start()
        assert call(chat, "resolve_date", text="today")["weekday"] == "Monday"


def test_request_human_queues_a_callback(chat):
    result = call(
        chat, "request_human", reason="Wants to talk about a quote", name="Dana", phone="416 555 0123", urgent=False
    )
    assert result["handoff_requested"] is True
    handoff = HandoffRequest.objects.get(conversation=chat)
    assert handoff.contact_phone == "+14165550123"
    chat.refresh_from_db()
    assert chat.resolution == "escalated"
