"""The operator's metrics in one process: who may scrape, what each event counts, the database's
facts at scrape time, and the dead-worker sweep of the multiprocess directory.

Counters are process-wide, so each test reads them before and after what it does. The
two-worker run (one scrape counting both) is tests/test_metrics_two_processes.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bookings.models import Channel
from chatdesk.assistant import openai_budget
from chatdesk.conversations.models import Conversation, HandoffRequest
from chatdesk.metrics_view import sweep_dead_workers
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.test_booking_services import TUESDAY, at, book

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "operator-token-0123456789abcdef"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def operator(settings) -> Client:
    settings.METRICS_TOKEN = TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


# --- who may scrape -------------------------------------------------------------------------------


def test_without_a_configured_token_metrics_is_not_found(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    assert Client(HTTP_AUTHORIZATION="Bearer ").get("/metrics").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x"],
    ids=["none", "wrong", "basic", "no-scheme", "prefix", "longer"],
)
def test_a_missing_or_wrong_token_is_not_found_like_any_unknown_path(settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    client = Client(HTTP_AUTHORIZATION=authorization) if authorization else Client()
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.content == Client().get("/no-such-page").content
    assert b"chatdesk_" not in response.content


def test_the_operator_scrapes_with_the_token(operator):
    samples = scrape(operator)
    # Zero before the first one, so alerts on rate() see them from the start.
    assert samples[("chatdesk_model_errors_total", (("api", "responses"), ("kind", "rate_limited")))] >= 0
    assert ("chatdesk_voice_calls_active", ()) in samples
    assert samples[("chatdesk_database_facts_up", ())] == 1
    assert operator.post("/metrics").status_code in (403, 404)  # CSRF or the view: never a scrape


def test_a_plain_http_scrape_is_not_redirected_to_https(operator, settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert client.get("/").status_code == 301
    assert client.get("/metrics").status_code == 200


# --- what each event counts -----------------------------------------------------------------------


def test_a_model_turn_counts_the_turn_its_model_requests_and_its_tool_call(business, model):
    turns = sample("chatdesk_turns_total", channel="chat", mode="model", outcome="answered")
    requests = sample("chatdesk_model_request_seconds_count", outcome="ok")
    tools = sample("chatdesk_tool_calls_total", tool="get_available_services", outcome="ok")
    timed = sample("chatdesk_turn_seconds_count", mode="model")
    model.queue_function_calls([("get_available_services", {"trade": "HVAC"})])
    model.queue_text("We repair furnaces and air conditioners.")
    assert Customer().send("What do you fix?")["reply"] == "We repair furnaces and air conditioners."
    assert sample("chatdesk_turns_total", channel="chat", mode="model", outcome="answered") == turns + 1
    assert sample("chatdesk_model_request_seconds_count", outcome="ok") == requests + 2
    assert sample("chatdesk_tool_calls_total", tool="get_available_services", outcome="ok") == tools + 1
    assert sample("chatdesk_turn_seconds_count", mode="model") == timed + 1


def test_a_model_failure_is_counted_by_kind_and_as_a_failed_turn(business, model):
    errors = sample("chatdesk_model_errors_total", api="responses", kind="rate_limited")
    failed = sample("chatdesk_turns_total", channel="chat", mode="model", outcome="model_failed")
    timed_out = sample("chatdesk_model_request_seconds_count", outcome="error")
    model.queue_error(429, "slow down")
    assert "trouble" in Customer().send("Can someone come Friday?")["reply"]
    assert sample("chatdesk_model_errors_total", api="responses", kind="rate_limited") == errors + 1
    assert sample("chatdesk_turns_total", channel="chat", mode="model", outcome="model_failed") == failed + 1
    assert sample("chatdesk_model_request_seconds_count", outcome="error") == timed_out + 1


def test_a_tool_the_model_made_up_counts_as_unknown(business, model):
    before = sample("chatdesk_tool_calls_total", tool="unknown", outcome="invalid_input")
    model.queue_function_call("drop_all_bookings", {})
    model.queue_text("I can't do that.")
    Customer().send("Delete everything")
    assert sample("chatdesk_tool_calls_total", tool="unknown", outcome="invalid_input") == before + 1
    made_up = {"tool": "drop_all_bookings", "outcome": "invalid_input"}
    assert REGISTRY.get_sample_value("chatdesk_tool_calls_total", made_up) is None


def test_a_guided_turn_is_counted_as_guided(business):
    before = sample("chatdesk_turns_total", channel="chat", mode="guided", outcome="answered")
    Customer().send("hi")
    assert sample("chatdesk_turns_total", channel="chat", mode="guided", outcome="answered") == before + 1


def test_a_booking_is_counted_when_committed_and_not_when_rolled_back(business):
    before = sample("chatdesk_bookings_made_total", channel="voice")
    with pytest.raises(RuntimeError), transaction.atomic():
        book(business, channel=Channel.VOICE)
        raise RuntimeError("rolled back, as replay_conversations does")
    assert sample("chatdesk_bookings_made_total", channel="voice") == before
    book(business, channel=Channel.VOICE, start=at(TUESDAY, "13:00"))
    assert sample("chatdesk_bookings_made_total", channel="voice") == before + 1


# --- facts read from the database at scrape time ----------------------------------------------------


def test_open_conversations_and_handoffs_waiting_are_read_at_scrape_time(business, operator):
    chats = [Customer() for _ in range(3)]
    Conversation.objects.filter(session_id=chats[0].session_id).update(status=Conversation.Status.CLOSED)
    Conversation.objects.filter(session_id=chats[1].session_id).update(channel=Conversation.ChannelKind.VOICE)
    waiting = HandoffRequest.objects.create(conversation=chats[1].conversation, reason="Wants a person")
    HandoffRequest.objects.filter(pk=waiting.pk).update(created_at=waiting.created_at.replace(year=2025))
    HandoffRequest.objects.create(conversation=chats[2].conversation, reason="Handled", handled_at=waiting.created_at)

    samples = scrape(operator)
    assert samples[("chatdesk_conversations_open", (("channel", "chat"),))] == 1
    assert samples[("chatdesk_conversations_open", (("channel", "voice"),))] == 1
    assert samples[("chatdesk_handoffs_waiting", ())] == 1
    assert samples[("chatdesk_handoff_oldest_wait_seconds", ())] > 300 * 24 * 3600


def test_the_fleets_openai_budget_is_reported_from_its_snapshot(operator, settings):
    headers = {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9000",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "1500000",
        "x-ratelimit-reset-tokens": "15s",
    }
    openai_budget.record(settings.OPENAI_MODEL, openai_budget.windows_from_headers(headers))
    openai_budget.pause(20, "a 429 said so")

    samples = scrape(operator)

    def budget(name: str, kind: str) -> float:
        return samples[(f"chatdesk_openai_budget_{name}", (("kind", kind), ("model", settings.OPENAI_MODEL)))]

    assert 9000 <= budget("remaining", "requests") <= 10000  # it refills as the window runs
    assert 1_500_000 <= budget("remaining", "tokens") <= 2_000_000
    assert (budget("limit", "requests"), budget("limit", "tokens")) == (10000, 2_000_000)
    assert 0 < budget("reset_seconds", "requests") <= 30
    assert 15 < samples[("chatdesk_openai_budget_paused_seconds", ())] <= 20
    assert samples[("chatdesk_openai_budget_shared", ())] == 1


# --- several workers: the multiprocess directory --------------------------------------------------

WORKER = """
import os, signal, sys
from chatdesk.observability import metrics
metrics.voice_call_admitted()
metrics.count_turn(channel="chat", mode="guided", outcome="answered")
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_sweep_forgets_the_live_gauges_of_killed_workers_and_keeps_their_counts(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    killed = subprocess.run([sys.executable, "-c", WORKER, "killed"], cwd=ROOT, env=env, check=False)
    assert killed.returncode == -9
    exited = subprocess.run([sys.executable, "-c", WORKER, "exited"], cwd=ROOT, env=env, check=True)
    assert exited.returncode == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    # The clean exit removed its own live gauge; the killed one could not.
    live = [name for name in files if name.startswith("gauge_livesum_")]
    assert len(live) == 1
    assert len([name for name in files if name.startswith("counter_")]) == 2

    forgotten = sweep_dead_workers(str(tmp_path))

    assert [f"gauge_livesum_{pid}.db" for pid in forgotten] == live
    assert not any(p.name.startswith("gauge_livesum_") for p in tmp_path.iterdir())
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("counter_")]) == 2
    assert sweep_dead_workers(str(tmp_path)) == []
