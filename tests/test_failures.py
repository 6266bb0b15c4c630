"""Honest failure handling: every way the model can fail, against the loopback fake through the
unmodified SDK, gets the kind reply, is recorded with its kind, and shows in the admin and the
analytics. A reply cut off mid-sentence is never shown.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from bookings.models import Booking
from chatdesk.backoffice.dashboard import dashboard
from chatdesk.conversations.models import Conversation, ToolCall
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import Reply, fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

CUT_OFF = "Let me check that for y"


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        yield


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def resetting_server() -> Iterator[int]:
    """A port whose server reads the request, then resets the connection (RST, no reply)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            # Linger 0: close() sends a RST instead of a FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()


# --- each kind, recorded as itself --------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        (lambda fake: fake.queue_error(429, "slow down"), "rate_limited"),
        (lambda fake: fake.queue_error(500, "upstream exploded"), "server_error"),
        (lambda fake: fake.queue_error(503, "overloaded"), "server_error"),
        (lambda fake: fake.queue_error(400, "Invalid 'input[3]'"), "bad_request"),
        (lambda fake: fake.queue_error(401, "bad key"), "bad_request"),
        # Streamed (as every chat turn is), a failed response is its last event, response.failed.
        (lambda fake: fake.queue(Reply(status="failed")), "server_error"),
        (
            lambda fake: fake.queue(Reply(text="!", status="incomplete", incomplete_reason="content_filter")),
            "incomplete",
        ),
    ],
    ids=["429", "500", "503", "400", "401", "failed-response", "content-filter"],
)
def test_each_failure_is_recorded_with_its_kind(business, model, frozen, script, kind):
    dana = Customer()
    script(model)
    reply = dana.send("Can someone come Friday?")
    assert "trouble" in reply["reply"]
    assert dana.failure_kinds() == [kind]
    conversation = dana.conversation
    assert conversation.failure_count == 1
    assert conversation.last_error.startswith(kind)
    assert conversation.messages.filter(role="customer", text="Can someone come Friday?").exists()


def test_a_refused_connection_is_unreachable(business, model, frozen, settings):
    dana = Customer()
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{closed_port()}/v1"
    assert "trouble" in dana.send("hello?")["reply"]
    assert dana.failure_kinds() == ["unreachable"]


def test_a_reset_connection_is_unreachable_not_a_timeout(business, model, frozen, settings, resetting_server):
    dana = Customer()
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{resetting_server}/v1"
    assert "trouble" in dana.send("hello?")["reply"]
    assert dana.failure_kinds() == ["unreachable"]


def test_a_model_that_hangs_is_a_timeout(business, model, frozen, settings):
    settings.OPENAI_TIMEOUT_SECONDS = 0.5
    dana = Customer()
    model.queue_delay(3)
    assert "trouble" in dana.send("hello?")["reply"]
    assert dana.failure_kinds() == ["timeout"]


# --- incomplete responses ----------------------------------------------------------------------


def test_a_reply_cut_off_is_asked_again_with_a_larger_budget_and_never_shown(business, model, frozen):
    dana = Customer()
    model.queue(
        Reply(text=CUT_OFF, status="incomplete", incomplete_reason="max_output_tokens", usage={"output_tokens": 800})
    )
    model.queue_text("Friday at 9 works for us.", usage={"output_tokens": 40})

    reply = dana.send("Is Friday free?")

    assert reply["reply"] == "Friday at 9 works for us."
    budgets = [request["max_output_tokens"] for request in model.response_requests]
    assert budgets == [800, 1600]
    conversation = dana.conversation
    assert conversation.failure_count == 0
    assert dana.failure_kinds() == ["incomplete_retried"]
    # Both responses were billed, the cut-off one too.
    assert conversation.output_tokens == 840
    assert not conversation.messages.filter(text__contains=CUT_OFF).exists()
    # The cut-off reply is not in the history the model gets next time.
    model.queue_text("Anything else?")
    dana.send("thanks")
    assert CUT_OFF not in json.dumps(model.response_requests[-1]["input"])


def test_a_reply_cut_off_twice_gets_the_kind_failure_reply(business, model, frozen):
    dana = Customer()
    for _ in range(2):
        model.queue(Reply(text=CUT_OFF, status="incomplete", incomplete_reason="max_output_tokens"))

    reply = dana.send("Is Friday free?")

    assert CUT_OFF not in reply["reply"]
    assert "trouble" in reply["reply"]
    assert [r["max_output_tokens"] for r in model.response_requests] == [800, 1600]
    assert dana.failure_kinds() == ["incomplete"]
    assert "max_output_tokens=1600" in dana.conversation.last_error


def test_the_retry_budget_is_capped(business, model, frozen, settings):
    settings.OPENAI_MAX_OUTPUT_TOKENS = 1500
    dana = Customer()
    model.queue(Reply(text=CUT_OFF, status="incomplete", incomplete_reason="max_output_tokens"))
    model.queue_text("Friday works.")
    assert dana.send("Is Friday free?")["reply"] == "Friday works."
    assert [r["max_output_tokens"] for r in model.response_requests] == [1500, 2000]


def test_function_calls_of_a_cut_off_response_are_not_run(business, model, frozen):
    dana = Customer()
    args = {
        "service_id": "hvac-repair",
        "start": "2026-11-18T08:30:00-05:00",
        "technician_id": None,
        "customer_name": "Dana",
        "customer_phone": "4165550123",
        "customer_email": None,
        "address": "1 Main St",
        "notes": None,
        "customer_confirmed": True,
    }
    for _ in range(2):
        model.queue(
            Reply(
                function_calls=[("create_booking", args)],  # type: ignore[list-item]
                status="incomplete",
                incomplete_reason="max_output_tokens",
            )
        )
    reply = dana.send("book it")
    assert reply["tool_calls"] == []
    assert not ToolCall.objects.exists()
    assert not Booking.objects.exists()


# --- where staff see them ------------------------------------------------------------------------


@pytest.fixture
def failures(business, model, frozen) -> dict[str, Conversation]:
    """Three conversations: a 500, a 429, and a reply cut off then answered on retry."""
    made = {}
    dana = Customer()
    model.queue_error(500, "down")
    dana.send("hi")
    made["server_error"] = dana.conversation
    erin = Customer()
    model.queue_error(429, "slow down")
    erin.send("hi")
    made["rate_limited"] = erin.conversation
    fay = Customer()
    model.queue(Reply(text=CUT_OFF, status="incomplete", incomplete_reason="max_output_tokens"))
    model.queue_text("Hello!")
    fay.send("hi")
    made["incomplete_retried"] = fay.conversation
    return made


def test_the_dashboard_counts_failures_by_kind(failures):
    numbers = dashboard(since=MONDAY_NOON_UTC.date(), until=MONDAY_NOON_UTC.date())
    assert numbers.model_failures.by_kind == {"server_error": 1, "rate_limited": 1, "incomplete_retried": 1}
    assert numbers.model_failures.total == 2  # the retried cut-off was answered
    rows = {kind: n for kind, _, n in numbers.model_failures.rows()}
    assert rows["timeout"] == 0 and rows["server_error"] == 1
    assert (
        dashboard(since=MONDAY_NOON_UTC.date(), until=MONDAY_NOON_UTC.date(), channel="voice").model_failures.total == 0
    )


def test_the_dashboard_page_and_the_analytics_show_them(failures, admin_client):
    page = admin_client.get(reverse("admin:chatdesk_dashboard"), {"since": "2026-11-16", "until": "2026-11-16"})
    assert page.status_code == 200
    content = page.content.decode()
    assert "Model failures: 2" in content
    assert "?failure=rate_limited" in content
    analytics = admin_client.get("/api/v1/chat/analytics", {"since": "2026-11-16", "until": "2026-11-16"}).json()
    assert analytics["model_failures"]["total"] == 2
    assert analytics["model_failures"]["by_kind"]["server_error"] == 1
    assert analytics["model_failures"]["by_kind"]["timeout"] == 0


def test_the_conversation_list_filters_by_failure_kind(failures, admin_client):
    url = reverse("admin:chatdesk_conversation_changelist")

    def listed(kind: str) -> set[int]:
        response = admin_client.get(url, {"failure": kind})
        assert response.status_code == 200
        return {i.pk for i in response.context["cl"].result_list}

    assert listed("rate_limited") == {failures["rate_limited"].pk}
    assert listed("incomplete_retried") == {failures["incomplete_retried"].pk}
    assert listed("any") == {failures["server_error"].pk, failures["rate_limited"].pk}
    assert listed("timeout") == set()


def test_the_conversation_page_shows_its_failures_by_kind(failures, admin_client):
    conversation = failures["server_error"]
    page = admin_client.get(reverse("admin:chatdesk_conversation_change", args=[conversation.pk]))
    assert page.status_code == 200
    assert "Server error (5xx) ×1" in page.content.decode()


def test_cost_of_a_failed_cut_off_turn_is_recorded(business, model, frozen, settings):
    settings.OPENAI_PRICES = {
        "gpt-6-luna": {"input": Decimal("0.10"), "cached_input": Decimal("0.01"), "output": Decimal("0.50")}
    }
    dana = Customer()
    for _ in range(2):
        model.queue(
            Reply(
                text=CUT_OFF,
                status="incomplete",
                incomplete_reason="max_output_tokens",
                usage={"input_tokens": 1_000_000, "output_tokens": 0},
            )
        )
    dana.send("hi")
    # Two responses of 1M uncached input tokens at $0.10 per 1M.
    assert dana.conversation.cost_usd == Decimal("0.200000")
