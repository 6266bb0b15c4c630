"""`manage.py seed_demo`'s history: 60 days of chats and calls a newcomer can look at after `make run`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from bookings.models import ActorKind, Booking, BookingEvent, BookingStatus, Customer, Service
from bookings.selectors import available_slots, local_today
from chatdesk.assistant.costs import TextUsage, text_cost
from chatdesk.backoffice.dashboard import dashboard
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall
from tests.cmd_fixtures import run
from tests.conftest import MONDAY_NOON_UTC

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def monday(time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


@pytest.fixture(scope="module")
def seeded_once(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The history, loaded once for the tests that only read it (a few seconds of work).

    Loaded inside a transaction that is rolled back after the module; each test runs in a
    savepoint within it, as usual, so nothing leaks into other tests.
    """
    with django_db_blocker.unblock(), time_machine.travel(MONDAY_NOON_UTC, tick=False):
        with transaction.atomic():
            out = StringIO()
            call_command("seed_demo", stdout=out, stderr=StringIO())
            yield out.getvalue()
            transaction.set_rollback(True)


@pytest.fixture
def seeded(seeded_once) -> str:
    return seeded_once


def test_the_history_covers_60_days_of_text_chats_and_voice_calls(seeded):
    now = timezone.now()
    conversations = Conversation.objects.all()
    assert "Demo history: " in seeded
    assert 150 < conversations.count() < 300
    started = sorted(conversations.values_list("started_at", flat=True))
    assert now - timedelta(days=61) < started[0] < now - timedelta(days=58)
    assert now - timedelta(days=1) < started[-1] < now
    days = {moment.astimezone(timezone.get_current_timezone()).date() for moment in started}
    assert len(days) > 55
    assert conversations.filter(channel="voice", has_call=True).count() > 20
    assert conversations.filter(channel="chat").count() > 80
    assert set(conversations.values_list("resolution", flat=True)) == {"booked", "answered", "escalated", "abandoned"}
    # Each transcript reads in order, inside its conversation's time, and its counters match.
    for conversation in conversations.prefetch_related("messages"):
        times = [m.created_at for m in conversation.messages.all()]
        assert times == sorted(times)
        assert conversation.started_at == times[0] <= times[-1] == conversation.last_activity_at
        assert conversation.message_count == len(times)


def test_model_usage_is_priced_by_the_price_table(seeded, settings):
    text = Conversation.objects.filter(channel="chat", mode="model")
    assert text.exists()
    for conversation in text:
        replies = conversation.messages.filter(role="assistant", cost_usd__isnull=False)
        if not replies:  # the customer left before the model answered
            assert conversation.cost_usd == 0
            continue
        assert conversation.cost_usd == replies.aggregate(total=Sum("cost_usd"))["total"] > 0
        # Priced reply by reply, so within a micro-dollar per reply of pricing the totals at once.
        usage = TextUsage(
            input_tokens=conversation.input_tokens,
            cached_input_tokens=conversation.cached_input_tokens,
            output_tokens=conversation.output_tokens,
        )
        assert (
            abs(conversation.cost_usd - text_cost(conversation.model, usage)) <= Decimal("0.000001") * replies.count()
        )
    for call in Conversation.objects.filter(channel="voice"):
        assert call.model == settings.OPENAI_REALTIME_MODEL
        # What the caller said is transcribed (billed apart); what the model answered is audio.
        answered = call.messages.filter(role="assistant", cost_usd__isnull=False).exists()
        expected = {"audio_input", "audio_output", "transcription"} if answered else {"transcription"}
        assert expected <= set(call.cost_breakdown)
        assert call.cost_usd == sum(Decimal(v) for v in call.cost_breakdown.values())
        assert (call.audio_output_tokens > 0) == answered
    # When the model was down the guided flow answered: no model, nothing spent.
    guided = Conversation.objects.filter(mode="guided")
    assert guided.exists()
    assert set(guided.values_list("model", "cost_usd")) == {("", Decimal("0"))}
    assert not Conversation.objects.filter(price_missing=True).exists()


def test_tool_calls_ran_the_real_tools_and_a_few_failed(seeded):
    calls = ToolCall.objects.all()
    failed = calls.exclude(error="")
    assert calls.count() > 300
    assert 0 < failed.count() < calls.count() * 0.1
    # Refused by the tool itself: booking before the customer confirmed.
    refused = failed.filter(error="confirmation_required").first()
    assert refused.result["error"] == "confirmation_required"
    assert not refused.booking_id
    assert set(calls.values_list("name", flat=True)) >= {
        "resolve_date",
        "get_available_time_slots",
        "create_booking",
        "get_booking_info",
        "cancel_booking",
        "request_human",
        "get_service_details",
    }


def test_bookings_carry_their_provenance_and_their_time(seeded):
    made = ToolCall.objects.filter(name="create_booking", error="").select_related("conversation", "booking")
    assert made.count() > 60
    for call in made:
        booking = call.booking
        created = booking.events.get(kind="created")
        channel = "voice" if call.conversation.channel == "voice" else "chat"
        assert (booking.channel, created.actor_kind, created.actor_channel) == (channel, ActorKind.CUSTOMER, channel)
        assert created.actor_reference == f"{call.conversation.number} {call.call_id}"
        assert booking.created_at == created.created_at == call.created_at < booking.start
        assert call.conversation.customer_id == booking.customer_id
        assert call.conversation.resolution == "booked"
    # The customers left no email address: loading the history sent no confirmations.
    assert not Customer.objects.filter(bookings__in=[c.booking_id for c in made]).exclude(email="").exists()


def test_past_visits_were_done_missed_or_cancelled_and_upcoming_ones_wait(seeded):
    now = timezone.now()
    assert not Booking.objects.filter(status__in=["pending", "confirmed"], end__lt=now).exists()
    past = Booking.objects.filter(end__lt=now)
    assert past.filter(status=BookingStatus.COMPLETED).count() > 40
    assert past.filter(status=BookingStatus.NO_SHOW).exists()
    assert Booking.objects.filter(status=BookingStatus.CONFIRMED, start__gt=now).count() > 3
    # Customers cancelled and moved visits in later conversations, through the chat tools.
    cancelled = BookingEvent.objects.filter(kind="cancelled", actor_kind=ActorKind.CUSTOMER)
    assert cancelled.exists()
    assert BookingEvent.objects.filter(kind="rescheduled", actor_kind=ActorKind.CUSTOMER).exists()
    for event in BookingEvent.objects.filter(kind__in=["completed", "no_show"]).select_related("booking"):
        assert event.created_at > event.booking.end  # marked after the visit, not at seeding time


def test_handoffs_were_called_back_except_the_latest(seeded):
    handoffs = HandoffRequest.objects.order_by("-created_at")
    assert [h.handled_at for h in handoffs[:2]] == [None, None]
    assert all(h.handled_at > h.created_at for h in handoffs[2:])
    assert handoffs.count() > 5
    assert handoffs.filter(urgent=True).exists()


def test_dashboard_cost_report_and_transcripts_show_real_numbers(seeded, tmp_path):
    today = local_today()
    board = dashboard(since=today - timedelta(days=29), until=today)
    assert board.totals.conversations > 60
    assert board.totals.bookings > 20
    assert board.totals.cost_usd > Decimal("0.10")
    assert board.totals.latency_p50_ms and board.totals.latency_p95_ms > board.totals.latency_p50_ms
    assert sum(day.conversations for day in board.days if day.conversations) == board.totals.conversations
    assert board.model_failures.total > 0

    since, until = (today - timedelta(days=60)).isoformat(), today.isoformat()
    report = run("cost_report", "--since", since, "--until", until, "--by", "channel", "--format", "csv")
    total = report.strip().splitlines()[-1].split(",")
    assert total[0] == "total" and int(total[1]) == Conversation.objects.count() and Decimal(total[-1]) > 1

    out = tmp_path / "all.jsonl"
    run("export_transcripts", "--since", since, "--until", until, "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == Conversation.objects.count()
    assert any(line["tool_calls"] for line in lines)


def test_seeding_again_adds_nothing(seeded):
    before = {model: model.objects.count() for model in (Conversation, Message, ToolCall, Booking, BookingEvent)}
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    assert {model: model.objects.count() for model in before} == before
    assert "(0 new)" in out.getvalue()
    assert "Demo history" not in out.getvalue()


def test_every_demo_service_can_still_be_booked_within_two_weeks(seeded):
    today = local_today()
    for service in Service.objects.all():
        assert available_slots(service=service, start_date=today, end_date=today + timedelta(days=14)), service
