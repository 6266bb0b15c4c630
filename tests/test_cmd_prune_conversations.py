"""`manage.py prune_conversations`: old conversations deleted, or kept without a trace of the customer.

Bookings are the business's record and stay whole either way.
"""

from __future__ import annotations

import builtins
import json
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError
from django.db import connection

from bookings.models import Booking, Customer
from bookings.selectors import booking_public_dict
from bookings.services import Actor, booking_create
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall
from chatdesk.conversations.retention import REDACTED, scrub_text
from tests.cmd_fixtures import help_text, run, stored_conversation
from tests.conftest import MONDAY_NOON_UTC
from tests.test_booking_services import TUESDAY, at

pytestmark = pytest.mark.django_db

NOW = MONDAY_NOON_UTC
# What Dana told the assistant, in the forms it was stored in.
PII = ["Dana", "Whitfield", "416-555-0123", "4165550123", "dana.w@example.com", "12 Elm St", "Mozilla", "ab12cd34"]
CHATDESK_TABLES = ["chatdesk_interaction", "chatdesk_message", "chatdesk_toolcall", "chatdesk_handoffrequest"]


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def dana(business):
    """A 100-day-old conversation in which Dana booked a visit and asked for a callback."""
    booking = booking_create(
        service=business.repair,
        start=at(TUESDAY, "10:00"),
        customer_name="Dana Whitfield",
        customer_phone="416-555-0123",
        customer_email="dana.w@example.com",
        address="12 Elm St, Toronto",
        notes="Dana's furnace bangs",
        channel="chat",
        actor=Actor.customer("chat", reference="INT-2026-00001 call_1"),
    )
    booking_args = {
        "service_id": "hvac-repair",
        "start": "2026-11-17T10:00:00-05:00",
        "technician_id": None,
        "customer_name": "Dana Whitfield",
        "customer_phone": "416-555-0123",
        "customer_email": "dana.w@example.com",
        "address": "12 Elm St, Toronto",
        "notes": "Dana's furnace bangs",
        "customer_confirmed": True,
    }
    callback_args = {"reason": "Dana wants a price", "name": "Dana Whitfield", "phone": "416-555-0123", "urgent": False}
    conversation = stored_conversation(
        started=NOW - timedelta(days=100),
        status="closed",
        resolution="booked",
        booking_count=1,
        customer=booking.customer,
        input_tokens=1200,
        output_tokens=80,
        cost_usd=Decimal("0.000160"),
        client_ip_hash="ab12cd34",
        user_agent="Mozilla/5.0 (iPhone; Dana's phone)",
        last_error="http_500: upstream said: call 416-555-0123",
        model_items=[{"role": "user", "content": "I'm Dana Whitfield, 416-555-0123, 12 Elm St"}],
        guided_state={"step": "confirm", "name": "Dana Whitfield", "phone": "+14165550123"},
        messages=[
            ("assistant", "Hi! How can I help?"),
            ("customer", "I'm Dana Whitfield, call me at 416-555-0123 or dana.w@example.com. I'm at 12 Elm St."),
            ("assistant", "Thanks Dana! You're booked for 12 Elm St, Toronto."),
        ],
        tool_calls=[
            {
                "name": "create_booking",
                "arguments": booking_args,
                "raw_arguments": json.dumps(booking_args),
                "result": {"booked": True, "booking": booking_public_dict(booking)},
                "booking": booking,
            },
            {
                "name": "request_human",
                "arguments": callback_args,
                "raw_arguments": json.dumps(callback_args),
                "result": {"handoff_requested": True, "reference": "INT-2026-00001-H1", "message": "We call back."},
            },
            {
                "name": "get_booking_info",
                "arguments": {"booking_number": booking.number, "phone": "(416) 555 0123"},
                "result": {"error": "booking_not_found", "message": "No booking matches that number and phone."},
                "error": "booking_not_found",
            },
        ],
    )
    HandoffRequest.objects.create(
        conversation=conversation,
        reason="Dana wants a price",
        contact_name="Dana Whitfield",
        contact_phone="+14165550123",
    )
    return conversation


@pytest.fixture
def recent(business):
    return stored_conversation(
        started=NOW - timedelta(days=2), status="closed", messages=[("customer", "Is Dana Whitfield booked?")]
    )


@pytest.fixture
def old_but_open(business):
    return stored_conversation(started=NOW - timedelta(days=200), messages=[("customer", "still typing, Dana")])


def rows_mentioning(text: str, exclude: tuple[int, ...] = ()) -> list[str]:
    """Every row of the conversation tables whose JSON contains `text` (case-insensitive)."""
    found = []
    with connection.cursor() as cursor:
        for table in CHATDESK_TABLES:
            key = "id" if table == "chatdesk_interaction" else "interaction_id"
            # Table and column names are the constants above; the values are parameters.
            sql = f"SELECT row_to_json(t)::text FROM {table} t WHERE row_to_json(t)::text ILIKE %s AND NOT ({key} = ANY(%s))"  # noqa: S608, E501
            cursor.execute(sql, [f"%{text}%", list(exclude)])
            found += [f"{table}: {row[0]}" for row in cursor.fetchall()]
    return found


# --- deleting ------------------------------------------------------------------------------------


def test_it_deletes_old_conversations_with_their_messages_and_tool_calls(dana, recent, old_but_open):
    output = run("prune_conversations", "--older-than-days", "90", "--yes")
    assert "Deleted 1 conversation older than 90 days." in output
    assert not Conversation.objects.filter(pk=dana.pk).exists()
    assert not Message.objects.filter(conversation_id=dana.pk).exists()
    assert not ToolCall.objects.filter(conversation_id=dana.pk).exists()
    assert not HandoffRequest.objects.exists()
    # What is not old, or still open, stays.
    assert set(Conversation.objects.values_list("pk", flat=True)) == {recent.pk, old_but_open.pk}


def test_deleting_keeps_the_booking_and_its_customer(dana):
    booking = Booking.objects.get()
    run("prune_conversations", "--older-than-days", "90", "--yes")
    kept = Booking.objects.select_related("customer").get(pk=booking.pk)
    assert kept.customer.phone == "+14165550123"
    assert kept.address == "12 Elm St, Toronto"
    assert kept.events.filter(kind="created").exists()


# --- anonymizing ---------------------------------------------------------------------------------


def test_anonymizing_leaves_no_trace_of_the_customer_in_the_conversation(dana, recent, old_but_open):
    before = [rows_mentioning(value, exclude=(recent.pk, old_but_open.pk)) for value in PII]
    assert all(before)  # the search does find them while they are there
    output = run("prune_conversations", "--older-than-days", "90", "--anonymize", "--yes")
    assert "Anonymized 1 conversation older than 90 days." in output
    for value in PII:
        assert rows_mentioning(value, exclude=(recent.pk, old_but_open.pk)) == [], value


def test_anonymizing_keeps_the_rows_metrics_and_outcomes(dana):
    booking = Booking.objects.get()
    run("prune_conversations", "--older-than-days", "90", "--anonymize", "--yes")
    conversation = Conversation.objects.get(pk=dana.pk)
    assert (conversation.status, conversation.resolution, conversation.booking_count) == ("closed", "booked", 1)
    assert (conversation.input_tokens, conversation.output_tokens, conversation.cost_usd) == (
        1200,
        80,
        Decimal("0.000160"),
    )
    assert (conversation.message_count, conversation.started_at) == (dana.message_count, dana.started_at)
    assert conversation.customer is None
    assert (conversation.client_ip_hash, conversation.user_agent) == ("", "")
    assert (conversation.model_items, conversation.guided_state) == ([], {})
    assert list(conversation.messages.values_list("role", "text")) == [
        ("assistant", REDACTED),
        ("customer", REDACTED),
        ("assistant", REDACTED),
    ]
    calls = list(conversation.tool_calls.order_by("id"))
    assert [c.name for c in calls] == ["create_booking", "request_human", "get_booking_info"]
    assert [c.error for c in calls] == ["", "", "booking_not_found"]
    assert calls[0].booking_id == booking.pk
    # The shape of each call stays: which arguments, what came back.
    assert calls[0].arguments["customer_name"] == REDACTED
    assert calls[0].arguments["service_id"] == "hvac-repair"
    assert calls[0].arguments["start"] == "2026-11-17T10:00:00-05:00"
    assert calls[0].result["booking"]["booking_number"] == booking.number
    assert calls[0].result["booking"]["service"] == "HVAC Repair"
    assert calls[0].result["booking"]["technician"] == "Alice T."
    assert calls[0].result["booking"]["address"] == REDACTED
    assert calls[1].arguments == {"reason": REDACTED, "name": REDACTED, "phone": REDACTED, "urgent": False}
    assert calls[2].arguments["booking_number"] == booking.number
    assert all(c.raw_arguments == "" for c in calls)
    handoff = HandoffRequest.objects.get()
    assert (handoff.contact_name, handoff.contact_phone, handoff.reason) == ("", "", REDACTED)


def test_anonymizing_keeps_the_booking_whole(dana):
    booking = Booking.objects.get()
    run("prune_conversations", "--older-than-days", "90", "--anonymize", "--yes")
    assert Customer.objects.get(pk=booking.customer_id).name == "Dana Whitfield"
    assert Booking.objects.get(pk=booking.pk).notes == "Dana's furnace bangs"


def test_anonymizing_again_finds_nothing_to_do(dana):
    run("prune_conversations", "--older-than-days", "90", "--anonymize", "--yes")
    assert "Nothing to anonymize" in run("prune_conversations", "--older-than-days", "90", "--anonymize", "--yes")
    assert "Would anonymize 0 conversations" in run(
        "prune_conversations", "--older-than-days", "90", "--anonymize", "--dry-run"
    )


def test_free_text_loses_emails_and_phone_numbers_but_not_dates_or_booking_numbers():
    text = "Call +1 (416) 555-0123 or mail a.b@example.co.uk about BK-2026-000123 on 2026-11-17 at 10:00."
    assert scrub_text(text) == f"Call {REDACTED} or mail {REDACTED} about BK-2026-000123 on 2026-11-17 at 10:00."
    assert scrub_text("Ask for Dana Whitfield", ["Dana Whitfield"]) == f"Ask for {REDACTED}"


@pytest.mark.parametrize("anonymize", [False, True])
def test_it_works_through_many_conversations_in_batches(business, monkeypatch, anonymize):
    from chatdesk.conversations import retention

    monkeypatch.setattr(retention, "BATCH_SIZE", 2)
    for index in range(5):
        stored_conversation(
            started=NOW - timedelta(days=100 + index),
            status="closed",
            messages=[("customer", f"call 416-555-010{index}")],
        )
    args = ["--older-than-days", "90", "--yes", *(["--anonymize"] if anonymize else [])]
    assert "d 5 conversations" in run("prune_conversations", *args)
    if anonymize:
        assert set(Message.objects.values_list("text", flat=True)) == {REDACTED}
    else:
        assert not Conversation.objects.exists()


# --- safety --------------------------------------------------------------------------------------


def test_a_dry_run_counts_and_changes_nothing(dana, recent):
    output = run("prune_conversations", "--older-than-days", "90", "--dry-run")
    assert (
        "Would delete 1 conversation older than 90 days, with 3 messages, 3 tool calls and 1 callback request" in output
    )
    assert Conversation.objects.count() == 2
    assert Message.objects.filter(text=REDACTED).count() == 0


def test_without_yes_and_without_a_terminal_it_refuses(dana, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(CommandError, match="Pass --yes"):
        run("prune_conversations", "--older-than-days", "90")
    assert Conversation.objects.filter(pk=dana.pk).exists()


@pytest.mark.parametrize(("answer", "deleted"), [("yes", True), ("no", False), ("", False)])
def test_on_a_terminal_it_asks_first(dana, monkeypatch, answer, deleted):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    questions = []
    monkeypatch.setattr(builtins, "input", lambda prompt: questions.append(prompt) or answer)
    if deleted:
        run("prune_conversations", "--older-than-days", "90")
    else:
        with pytest.raises(CommandError, match="Cancelled; nothing was changed"):
            run("prune_conversations", "--older-than-days", "90")
    assert "delete 1 conversation older than 90 days" in questions[0]
    assert Conversation.objects.filter(pk=dana.pk).exists() is not deleted


def test_nothing_to_do_needs_no_confirmation(recent):
    assert "Nothing to delete" in run("prune_conversations", "--older-than-days", "90")


@pytest.mark.parametrize("value", ["0", "-3", "ninety"])
def test_it_explains_a_bad_retention_period(value):
    with pytest.raises(CommandError, match="--older-than-days"):
        run("prune_conversations", "--older-than-days", value, "--yes")


def test_help_explains_the_policy():
    text = help_text("prune_conversations")
    assert "--anonymize" in text
    assert "Bookings are never touched" in text
    assert "--yes" in text
