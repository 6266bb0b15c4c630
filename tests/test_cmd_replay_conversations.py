"""`manage.py replay_conversations`: stored customer turns against today's model, compared, then rolled back.

The model is the loopback fake (tests/fake_openai), scripted to decide like the stored
conversation or differently.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError

from bookings.models import Booking, BookingEvent, YearlyCounter
from chatdesk.conversations.models import Conversation, ToolCall
from chatdesk.conversations.retention import REDACTED
from tests.cmd_fixtures import help_text, run, stored_conversation
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.django_db

TORONTO = ZoneInfo("America/Toronto")
# The stored conversation is from the Monday before "now" (Monday 2026-11-16 08:00).
LAST_MONDAY = datetime(2026, 11, 9, 9, 0, tzinfo=TORONTO)
SLOT = "2026-11-17T10:00:00-05:00"
BOOKING_ARGS = {
    "service_id": "hvac-repair",
    "start": SLOT,
    "technician_id": None,
    "customer_name": "Dana Smith",
    "customer_phone": "416-555-0123",
    "customer_email": "dana@example.com",
    "address": "12 Elm St, Toronto",
    "notes": None,
    "customer_confirmed": True,
}
STORED_TOOLS = ["resolve_date", "get_available_time_slots", "create_booking"]


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


@pytest.fixture
def model(fake_openai, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_TIMEOUT_SECONDS = 5
    return fake_openai


def stored_booking_conversation(started: datetime = LAST_MONDAY, **fields) -> Conversation:
    """Dana asked for a visit tomorrow at 10 and booked it: three tool calls, one booking."""
    return stored_conversation(
        started=started,
        status="closed",
        resolution="booked",
        booking_count=1,
        messages=[
            ("assistant", "Hi! I'm the Maple Home Services assistant. How can I help?"),
            ("customer", "My furnace bangs. Can someone come tomorrow at 10?"),
            ("assistant", "Alice T. can come tomorrow at 10:00 AM. Shall I book it?"),
            ("customer", "Yes please. Dana Smith, 416-555-0123, dana@example.com, 12 Elm St, Toronto."),
            ("assistant", "You're booked!"),
        ],
        tool_calls=[{"name": name, "arguments": {}, "result": {}} for name in STORED_TOOLS],
        **fields,
    )


def script_the_same_decisions(model) -> None:
    model.queue_function_call("resolve_date", {"text": "tomorrow"})
    model.queue_function_call(
        "get_available_time_slots",
        {"service_id": "hvac-repair", "date": "2026-11-17", "end_date": None, "technician_id": None},
    )
    model.queue_text("Alice T. can come tomorrow at 10:00 AM. Shall I book it?")
    model.queue_function_call("create_booking", BOOKING_ARGS)
    model.queue_text("You're booked!")


def script_other_decisions(model) -> None:
    model.queue_text("Before I look: what is your address?")
    model.queue_text("Thanks! A colleague will call you to arrange it.")


def test_it_reports_no_difference_when_the_model_decides_the_same(business, model):
    stored = stored_booking_conversation()
    script_the_same_decisions(model)
    output = run("replay_conversations", "--since", "2026-11-09")
    assert f"{stored.number}  2026-11-09 09:00  same      booked, 3 tool calls" in output
    assert "Replayed 1 conversation with gpt-6-luna: 0 differ, 1 the same." in output
    assert model.pending_replies == 0


def test_it_reports_a_difference_when_the_model_decides_otherwise(business, model):
    stored = stored_booking_conversation()
    script_other_decisions(model)
    output = run("replay_conversations", "--since", "2026-11-09")
    assert f"{stored.number}  2026-11-09 09:00  DIFFERS   booking: booked -> no booking; tool calls differ" in output
    assert "    original: resolve_date > get_available_time_slots > create_booking" in output
    assert "    replay:   (no tool calls)" in output
    assert "1 differ, 0 the same" in output


def test_the_replay_leaves_nothing_behind(business, model, mailoutbox):
    stored_booking_conversation()
    script_the_same_decisions(model)
    counters = list(YearlyCounter.objects.values_list("name", "last_value"))
    run("replay_conversations", "--since", "2026-11-09")
    # The booking was really made during the replay (the tool said so to the model) ...
    booked = json.loads(model.response_requests[4]["input"][-1]["output"])
    assert booked["booked"] is True
    # ... and rolled back with everything else.
    assert Booking.objects.count() == 0
    assert BookingEvent.objects.count() == 0
    assert Conversation.objects.count() == 1
    assert list(ToolCall.objects.values_list("name", flat=True)) == STORED_TOOLS
    assert list(YearlyCounter.objects.values_list("name", "last_value")) == counters
    assert mailoutbox == []


def test_the_model_gets_the_prompt_of_the_original_time_and_the_customer_s_words(business, model):
    stored_booking_conversation()
    script_other_decisions(model)
    run("replay_conversations", "--since", "2026-11-09")
    first, second = model.response_requests
    assert "Now: Monday 2026-11-09 09:00" in first["instructions"]
    assert "- Tuesday 2026-11-10 tomorrow" in first["instructions"]
    assert first["store"] is False
    assert first["input"][0] == {
        "role": "assistant",
        "content": "Hi! I'm the Maple Home Services assistant. How can I help?",
    }
    assert first["input"][-1] == {"role": "user", "content": "My furnace bangs. Can someone come tomorrow at 10?"}
    # The second turn carries the replay's own first answer, not the stored one.
    contents = [item.get("content") for item in second["input"]]
    assert "Alice T. can come tomorrow at 10:00 AM. Shall I book it?" not in contents
    assert second["input"][-1]["content"].startswith("Yes please. Dana Smith")


def test_json_output_for_scripts(business, model):
    stored = stored_booking_conversation()
    script_other_decisions(model)
    report = json.loads(run("replay_conversations", "--since", "2026-11-09", "--format", "json"))
    assert report["summary"]["replayed"] == 1
    assert report["summary"]["differ"] == 1
    (row,) = report["conversations"]
    assert row["number"] == stored.number
    assert row["original"] == {"booked": True, "tools": STORED_TOOLS}
    assert row["replay"] == {"booked": False, "tools": []}
    assert row["differences"] == ["booking: booked -> no booking", "tool calls differ"]
    assert row["turns"] == 2


def test_a_model_failure_is_reported_for_that_conversation(business, model):
    stored_booking_conversation()
    model.queue_function_call("resolve_date", {"text": "tomorrow"})
    model.queue_error(500, "upstream exploded")
    output = run("replay_conversations", "--since", "2026-11-09")
    assert "replay failed: server_error" in output
    assert ToolCall.objects.count() == 3


def test_it_only_replays_text_conversations_the_model_answered(business, model):
    stored_booking_conversation()
    stored_conversation(started=LAST_MONDAY, channel="voice", messages=[("customer", "hello by voice")])
    stored_conversation(started=LAST_MONDAY, model="", mode="guided", messages=[("customer", "1")])
    stored_conversation(started=LAST_MONDAY, messages=[("customer", REDACTED)])
    stored_conversation(started=LAST_MONDAY - timedelta(days=3), messages=[("customer", "too early")])
    script_other_decisions(model)
    output = run("replay_conversations", "--since", "2026-11-09")
    assert "Replayed 1 conversation" in output


def test_limit_and_until_bound_the_run(business, model):
    first = stored_booking_conversation()
    stored_booking_conversation(started=LAST_MONDAY + timedelta(days=1))
    stored_booking_conversation(started=LAST_MONDAY + timedelta(days=3))
    model.default_text = "Sure."
    limited = run("replay_conversations", "--since", "2026-11-09", "--limit", "1")
    assert "Replayed 1 conversation" in limited
    assert first.number in limited
    assert "Replayed 2 conversations" in run("replay_conversations", "--since", "2026-11-09", "--until", "2026-11-10")


def test_without_an_api_key_it_says_what_to_set(business, settings):
    settings.OPENAI_API_KEY = ""
    with pytest.raises(CommandError, match="set OPENAI_API_KEY"):
        run("replay_conversations", "--since", "2026-11-09")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-11-10", "--until", "2026-11-09"), "is after --until"),
        (("--since", "last week"), "YYYY-MM-DD"),
        (("--since", "2026-11-09", "--limit", "0"), "positive"),
    ],
)
def test_it_explains_bad_arguments(model, args, message):
    with pytest.raises(CommandError, match=message):
        run("replay_conversations", *args)


def test_help_warns_that_it_costs_tokens():
    text = help_text("replay_conversations")
    assert "costs tokens" in text
    assert "rolled back" in text
