"""`manage.py close_stale_sessions`: idle conversations end as abandoned, at their last activity."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management import CommandError

from chatdesk.conversations.live import MONITOR_GROUP
from chatdesk.conversations.models import Conversation
from tests.cmd_fixtures import help_text, run, stored_conversation
from tests.conftest import MONDAY_NOON_UTC

pytestmark = pytest.mark.django_db

NOW = MONDAY_NOON_UTC


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def idle_for(minutes: int, *, length: int = 4, **fields) -> Conversation:
    """A conversation whose last activity was `minutes` ago, after `length` minutes of chat."""
    return stored_conversation(started=NOW - timedelta(minutes=minutes + length), minutes=length, **fields)


def test_it_closes_idle_conversations_as_abandoned_at_their_last_activity():
    gone = idle_for(45)
    assert "Closed 1 conversation idle for more than 30 minutes." in run("close_stale_sessions", "--idle-minutes", "30")
    gone.refresh_from_db()
    assert gone.status == "abandoned"
    assert gone.resolution == "abandoned"
    assert gone.end_reason == "idle"
    assert gone.ended_at == gone.last_activity_at == NOW - timedelta(minutes=45)
    # The duration is the time the customer spent, not the time until the job noticed.
    assert gone.duration_seconds == 4 * 60


def test_a_conversation_that_booked_is_resolved_as_booked():
    booked = idle_for(45, booking_count=1, resolution="booked")
    counted_only = idle_for(45, booking_count=1)
    run("close_stale_sessions", "--idle-minutes", "30")
    for conversation in (booked, counted_only):
        conversation.refresh_from_db()
        assert (conversation.status, conversation.resolution) == ("abandoned", "booked")


def test_a_customer_who_asked_for_a_person_stays_escalated():
    escalated = idle_for(45, resolution="escalated")
    run("close_stale_sessions", "--idle-minutes", "30")
    escalated.refresh_from_db()
    assert (escalated.status, escalated.resolution) == ("abandoned", "escalated")


def test_active_and_already_closed_conversations_are_left_alone():
    active = idle_for(10)
    closed = idle_for(600, status="closed", resolution="answered", end_reason="customer_closed")
    run("close_stale_sessions", "--idle-minutes", "30")
    active.refresh_from_db()
    closed.refresh_from_db()
    assert active.status == "open"
    assert (closed.status, closed.resolution, closed.end_reason, closed.ended_at) == (
        "closed",
        "answered",
        "customer_closed",
        None,
    )


def test_running_it_again_changes_nothing():
    gone = idle_for(45)
    run("close_stale_sessions", "--idle-minutes", "30")
    gone.refresh_from_db()
    assert "Closed 0 conversations" in run("close_stale_sessions", "--idle-minutes", "30")
    again = Conversation.objects.get(pk=gone.pk)
    assert (again.status, again.ended_at, again.resolution) == (gone.status, gone.ended_at, gone.resolution)


def test_a_dry_run_only_counts():
    idle_for(45)
    idle_for(90)
    assert "Would close 2 conversations" in run("close_stale_sessions", "--idle-minutes", "30", "--dry-run")
    assert Conversation.objects.filter(status="open").count() == 2


def test_it_works_through_many_conversations_in_batches(monkeypatch):
    from chatdesk.conversations import retention

    monkeypatch.setattr(retention, "BATCH_SIZE", 3)
    for _ in range(8):
        idle_for(45)
    assert "Closed 8 conversations" in run("close_stale_sessions", "--idle-minutes", "30")
    assert not Conversation.objects.filter(status="open").exists()


def test_sigterm_stops_it_between_batches_and_a_rerun_finishes(monkeypatch):
    from chatdesk.conversations import retention

    monkeypatch.setattr(retention, "BATCH_SIZE", 2)
    for _ in range(5):
        idle_for(45)
    sent = []

    def terminate_once(conversation, event):
        # As if `systemctl stop` arrived while the first batch was being announced.
        if not sent:
            sent.append(conversation.number)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(retention.live, "publish", terminate_once)
    output = run("close_stale_sessions", "--idle-minutes", "30")
    assert "Closed 2 conversations" in output
    assert "Stopped by SIGTERM; run again to close the rest." in output
    assert Conversation.objects.filter(status="open").count() == 3
    # The handler is gone again, and the next run closes the rest.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert "Closed 3 conversations" in run("close_stale_sessions", "--idle-minutes", "30")


def test_the_live_monitor_hears_that_they_closed():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(MONITOR_GROUP, channel)
    gone = idle_for(45)
    run("close_stale_sessions", "--idle-minutes", "30")

    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(channel), timeout=2)

    message = async_to_sync(receive)()
    assert message["conversation"] == gone.number
    assert message["summary"]["status"] == "abandoned"


@pytest.mark.parametrize(("value", "message"), [("0", "must be a positive number"), ("soon", "whole number")])
def test_it_explains_bad_minutes(value, message):
    with pytest.raises(CommandError, match=message):
        run("close_stale_sessions", "--idle-minutes", value)


def test_it_needs_the_idle_minutes():
    with pytest.raises(CommandError, match="--idle-minutes"):
        run("close_stale_sessions")


def test_help_says_what_closing_means():
    text = help_text("close_stale_sessions")
    assert "--idle-minutes N" in text
    assert "abandoned" in text
    assert "re-run" in text
