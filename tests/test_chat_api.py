"""The chat API end to end: HTTP in, the real openai SDK out to a loopback fake model, PostgreSQL underneath.

The turn runs its database work on worker threads, so these tests use transactional
databases (the rows must be committed for other threads to see them).
"""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import Client

from bookings.models import Booking
from chatdesk.assistant.openai_client import parse_response
from chatdesk.conversations.models import Message, ToolCall
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import RawReply, fake_openai_fixture, last_function_call_output  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        yield


def test_a_customer_books_a_visit_with_the_model(business, model, frozen):
    dana = Customer()
    assert dana.session["mode"] == "model"
    assert dana.session["conversation_number"].startswith("INT-2026-")

    model.queue_function_calls(
        [("resolve_date", {"text": "Wednesday"}), ("get_available_services", {"trade": "HVAC"})],
        usage={"input_tokens": 1000, "output_tokens": 50, "input_tokens_details": {"cached_tokens": 400}},
    )
    model.queue_function_call(
        "get_available_time_slots",
        {"service_id": "hvac-repair", "date": "2026-11-18", "end_date": None, "technician_id": None},
    )
    model.queue_text("Alice T. can come Wednesday, November 18 at 8:30 AM. Shall I book it?")
    first = dana.send("My furnace is making a banging noise, can someone come Wednesday?")
    assert first["reply"].startswith("Alice T. can come Wednesday")
    assert [c["name"] for c in first["tool_calls"]] == [
        "resolve_date",
        "get_available_services",
        "get_available_time_slots",
    ]
    assert all(c["ok"] for c in first["tool_calls"])

    # What the model was sent: our instructions, no storage at OpenAI, the tool results.
    requests = model.response_requests
    assert len(requests) == 3
    assert requests[0]["store"] is False
    assert "Monday 2026-11-16" in requests[0]["instructions"]
    assert "- Wednesday 2026-11-18" in requests[0]["instructions"]
    assert {t["name"] for t in requests[0]["tools"]} >= {"create_booking", "resolve_date", "request_human"}
    slots = last_function_call_output(requests[2])
    assert slots["slots"][0]["start"] == "2026-11-18T08:30:00-05:00"
    resolved = json.loads(next(i["output"] for i in requests[1]["input"] if i.get("type") == "function_call_output"))
    assert resolved["weekday"] == "Wednesday"

    model.queue_function_call(
        "create_booking",
        {
            "service_id": "hvac-repair",
            "start": "2026-11-18T08:30:00-05:00",
            "technician_id": None,
            "customer_name": "Dana Customer",
            "customer_phone": "416-555-0123",
            "customer_email": "dana@example.com",
            "address": "12 Queen St W, Toronto",
            "notes": "Banging furnace",
            "customer_confirmed": True,
        },
    )
    model.queue_text("You're booked!")
    second = dana.send("Yes, book it. Dana Customer, 416-555-0123, 12 Queen St W.")
    assert second["bookings"][0]["booking_number"].startswith("BK-2026-")
    assert second["bookings"][0]["when"] == "Wednesday November 18, 2026 at 8:30 AM"
    # The whole history is resent each turn (store=false), including earlier function calls.
    history_types = [i.get("type") for i in model.response_requests[3]["input"]]
    assert history_types.count("function_call_output") == 3

    booking = Booking.objects.get()
    assert booking.channel == "chat"
    assert ToolCall.objects.get(name="create_booking").booking == booking
    conversation = dana.conversation
    assert conversation.booking_count == 1
    assert conversation.resolution == "booked"
    assert conversation.input_tokens > 1000
    assert conversation.cached_input_tokens == 400
    assert conversation.cost_usd > Decimal("0")
    assert list(conversation.messages.values_list("role", flat=True)) == [
        "assistant",
        "customer",
        "assistant",
        "customer",
        "assistant",
    ]
    assert conversation.messages.filter(role="assistant", latency_ms__isnull=False).count() == 2

    history = dana.client.get(f"/api/v1/chat/session/{dana.session_id}/history").json()
    assert history["bookings"][0]["booking_number"] == booking.number
    assert [m["role"] for m in history["messages"]] == ["assistant", "customer", "assistant", "customer", "assistant"]


def test_cost_follows_the_price_table(business, model, frozen, settings):
    settings.OPENAI_PRICES = {
        "gpt-6-luna": {"input": Decimal("0.10"), "cached_input": Decimal("0.01"), "output": Decimal("0.50")}
    }
    dana = Customer()
    model.queue_text(
        "Hello!",
        usage={
            "input_tokens": 1_000_000,
            "input_tokens_details": {"cached_tokens": 200_000},
            "output_tokens": 100_000,
        },
    )
    dana.send("hi")
    # 800k uncached x 0.10 + 200k cached x 0.01 + 100k out x 0.50, per 1M tokens.
    assert dana.conversation.cost_usd == Decimal("0.080000") + Decimal("0.002000") + Decimal("0.050000")
    assert dana.conversation.price_missing is False


def test_a_text_model_without_a_price_is_flagged_on_the_conversation(business, model, frozen, settings, caplog):
    settings.OPENAI_PRICES = {}
    dana = Customer()
    model.queue_text("Hello!", usage={"input_tokens": 1000, "output_tokens": 100})
    dana.send("hi")
    # A cost of 0 would look free: the conversation says its cost is incomplete, and the log says why.
    assert dana.conversation.cost_usd == Decimal("0")
    assert dana.conversation.price_missing is True
    assert "No price for model gpt-6-luna" in caplog.text


def test_a_model_failure_mid_turn_keeps_the_message_and_the_conversation(business, model, frozen):
    dana = Customer()
    model.queue_function_call("resolve_date", {"text": "friday"})
    model.queue_error(500, "upstream exploded")
    reply = dana.send("Can someone come Friday?")
    assert "trouble" in reply["reply"]
    assert reply["tool_calls"] == [{"name": "resolve_date", "ok": True, "error": None}]
    conversation = dana.conversation
    assert conversation.failure_count == 1
    assert conversation.last_error.startswith("server_error: HTTP 500")
    assert conversation.messages.filter(role="customer", text="Can someone come Friday?").exists()
    assert list(conversation.messages.filter(role="event").values_list("failure_kind", flat=True)) == ["server_error"]

    model.queue_text("Sorry about that. Friday is November 20.")
    again = dana.send("Friday please")
    assert again["reply"] == "Sorry about that. Friday is November 20."
    # The history sent after the failure is consistent: every function call has its output.
    items = model.response_requests[-1]["input"]
    calls = {i["call_id"] for i in items if i.get("type") == "function_call"}
    outputs = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    assert calls == outputs


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("<html>502 Bad Gateway</html>", "bad_reply"),
        ({"id": "resp_1", "object": "response", "status": "completed", "output": "not a list"}, "bad_reply"),
        ({"id": "resp_1", "object": "response", "status": "completed", "output": ["not an item"]}, "bad_reply"),
        (
            {"id": "resp_1", "object": "response", "status": "failed", "error": {"message": "boom"}, "output": []},
            "server_error",  # the request was fine; the model failed on OpenAI's side
        ),
    ],
)
def test_a_reply_that_is_not_a_usable_response_gets_a_kind_reply(business, model, frozen, body, kind):
    erin = Customer()
    model.queue(RawReply(body))
    reply = erin.send("Is anyone free on Friday?")
    assert "trouble" in reply["reply"]
    assert erin.conversation.last_error.startswith(kind)
    assert erin.conversation.messages.filter(role="customer", text="Is anyone free on Friday?").exists()


def test_a_response_is_read_as_the_wire_protocol_defines_it():
    reply = parse_response(
        {
            "id": "resp_1",
            "object": "response",
            "status": "completed",
            "model": "gpt-test",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "abc", "status": None},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "Friday ", "annotations": []},
                        {"type": "refusal", "refusal": "no"},
                        {"type": "output_text", "text": "works.", "annotations": []},
                    ],
                },
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "resolve_date", "arguments": "{}"},
            ],
            "usage": {
                "input_tokens": 100,
                "input_tokens_details": {"cached_tokens": 40},
                "output_tokens": 20,
                "output_tokens_details": {"reasoning_tokens": 5},
            },
        }
    )
    assert reply.text == "Friday works."
    assert [(c.call_id, c.name, c.arguments) for c in reply.function_calls] == [("call_1", "resolve_date", "{}")]
    assert "status" not in reply.output_items[0]  # nulls are not sent back
    assert (reply.usage.input_tokens, reply.usage.cached_input_tokens) == (100, 40)
    assert (reply.usage.output_tokens, reply.usage.reasoning_tokens) == (20, 5)
    assert reply.model == "gpt-test"


def test_an_unreachable_model_is_recorded_as_unreachable_not_as_a_timeout(business, model, frozen, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fay = Customer()
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{closed_port}/v1"
    reply = fay.send("Hello?")
    assert "trouble" in reply["reply"]
    assert fay.conversation.last_error.startswith("unreachable")


def test_a_model_timeout_gets_a_kind_reply(business, model, frozen, settings):
    settings.OPENAI_TIMEOUT_SECONDS = 0.5
    dana = Customer()
    model.queue_delay(3)
    reply = dana.send("hello?")
    assert "trouble" in reply["reply"]
    assert "timeout" in dana.conversation.last_error


def test_repeated_model_failures_switch_to_the_guided_flow(business, model, frozen):
    dana = Customer()
    model.queue_error(429, "slow down")
    dana.send("hi")
    model.queue_error(503, "down")
    reply = dana.send("hello?")
    assert reply["mode"] == "guided"
    assert "1. Book a visit" in reply["reply"]
    requests_before = len(model.response_requests)
    follow_up = dana.send("1")
    assert "Which service do you need?" in follow_up["reply"]
    assert len(model.response_requests) == requests_before  # the model is no longer asked


def test_tool_rounds_per_turn_are_capped(business, model, frozen, settings):
    settings.CHAT_MAX_TOOL_ROUNDS = 3
    dana = Customer()
    model.respond_with(lambda body: [("resolve_date", {"text": "friday"})])
    reply = dana.send("friday?")
    assert "too many steps" in reply["reply"]
    assert len(model.response_requests) == 3


def test_the_spend_cap_stops_the_model(business, model, frozen, settings):
    settings.CHAT_SPEND_CAP_USD = Decimal("0.001")
    dana = Customer()
    model.queue_text("Hi!", usage={"input_tokens": 100_000, "output_tokens": 10_000})
    dana.send("hi")
    requests_before = len(model.response_requests)
    reply = dana.send("and again")
    assert "call us" in reply["reply"]
    assert len(model.response_requests) == requests_before


def test_a_booking_without_confirmation_goes_back_to_the_model_as_an_error(business, model, frozen):
    dana = Customer()
    model.queue_function_call(
        "create_booking",
        {
            "service_id": "hvac-repair",
            "start": "2026-11-18T08:30:00-05:00",
            "technician_id": None,
            "customer_name": "Dana",
            "customer_phone": "4165550123",
            "customer_email": None,
            "address": "1 Main St",
            "notes": None,
            "customer_confirmed": False,
        },
    )
    model.queue_text("Let me confirm the details first.")
    reply = dana.send("book whatever")
    assert reply["tool_calls"] == [{"name": "create_booking", "ok": False, "error": "confirmation_required"}]
    assert last_function_call_output(model.response_requests[-1])["error"] == "confirmation_required"
    assert not Booking.objects.exists()


def test_malformed_function_arguments_are_recoverable(business, model, frozen):
    dana = Customer()
    model.queue_malformed_arguments("resolve_date", '{"text": "fri')
    model.queue_text("Which day did you mean?")
    reply = dana.send("friday")
    assert reply["reply"] == "Which day did you mean?"
    assert last_function_call_output(model.response_requests[-1])["error"] == "invalid_input"


def test_without_a_key_the_guided_flow_books_a_visit(business, frozen):
    dana = Customer()
    assert dana.session["mode"] == "guided"
    assert "1. Book a visit" in dana.session["greeting"]
    assert "Which service" in dana.send("1")["reply"]
    services = dana.send("HVAC Repair")
    assert "Which day" in services["reply"]
    slots = dana.send("Wednesday")
    assert "Free times on Wednesday, November 18, 2026" in slots["reply"]
    assert "1. 8:30 AM with Alice T." in slots["reply"]
    dana.send("1")
    dana.send("Dana Customer")
    assert "May we text you" in dana.send("416 555 0123")["reply"]
    dana.send("no thanks")
    assert "What email" in dana.send("12 Queen St W, Toronto")["reply"]
    readback = dana.send("skip")
    assert "Wednesday, November 18, 2026 at 8:30 AM" in readback["reply"]
    done = dana.send("yes")
    assert done["bookings"][0]["booking_number"] in done["reply"]
    booking = Booking.objects.get()
    assert booking.customer.phone == "+14165550123"

    # Look it up and cancel it, with the number and the phone.
    dana.send("3")
    dana.send(booking.number)
    assert "Do you want to cancel it?" in dana.send("(416) 555-0123")["reply"]
    assert "is cancelled" in dana.send("yes")["reply"]
    booking.refresh_from_db()
    assert booking.status == "cancelled"
    assert ToolCall.objects.filter(name="cancel_booking", error="").count() == 1


def test_unknown_sessions_are_404_and_closed_ones_409(business):
    dana = Customer()
    response = Client().post(
        "/api/v1/chat/message", json.dumps({"session_id": "nope", "message": "hi"}), content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"
    close = f"/api/v1/chat/session/{dana.session_id}/close"
    closed = dana.client.post(close, {"resolution": "answered"}, content_type="application/json")
    assert closed.status_code == 200
    assert dana.send("hello again", expect=409)["error"] == "conversation_closed"
    assert dana.client.post(close, {}, content_type="application/json").status_code == 409
    assert dana.conversation.resolution == "answered"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("not json", 400, "invalid_json"),
        (json.dumps({"message": "hi"}), 400, "invalid_input"),
        (json.dumps({"session_id": "x", "message": ""}), 400, "invalid_input"),
        (json.dumps({"session_id": "x", "message": ["hi"]}), 400, "invalid_input"),
        (json.dumps([1, 2]), 400, "invalid_input"),
    ],
)
def test_bad_requests_get_clear_errors(body, status, error):
    response = Client().post("/api/v1/chat/message", body, content_type="application/json")
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]


def test_a_too_long_message_is_413_and_stores_nothing(business):
    dana = Customer()
    reply = dana.send("x" * 2001, expect=413)
    assert reply["error"] == "message_too_long"
    assert dana.conversation.messages.count() == 1  # the greeting only


def test_an_oversized_body_is_413():
    response = Client().post("/api/v1/chat/message", "{" + " " * 20_000 + "}", content_type="application/json")
    assert response.status_code == 413


def test_messages_are_rate_limited_per_session_with_retry_after(business, settings):
    settings.CHAT_RATE_MESSAGE_PER_SESSION = "3/m"
    dana = Customer()
    for _ in range(3):
        dana.send("menu")
    response = dana.client.post(
        "/api/v1/chat/message",
        json.dumps({"session_id": dana.session_id, "message": "menu"}),
        content_type="application/json",
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"] == "rate_limited"


def test_new_sessions_are_rate_limited_per_ip(settings):
    settings.CHAT_RATE_SESSION_PER_IP = "2/h"
    client = Client(REMOTE_ADDR="198.51.100.7")
    assert client.post("/api/v1/chat/session/new").status_code == 201
    assert client.post("/api/v1/chat/session/new").status_code == 201
    response = client.post("/api/v1/chat/session/new")
    assert response.status_code == 429
    assert response["Retry-After"]
    assert Client(REMOTE_ADDR="198.51.100.8").post("/api/v1/chat/session/new").status_code == 201


def test_csrf_is_enforced_for_anonymous_customers(business):
    browser = Client(enforce_csrf_checks=True)
    refused = browser.post("/api/v1/chat/session/new")
    assert refused.status_code == 403
    page = browser.get("/")
    token = page.cookies["csrftoken"].value
    started = browser.post("/api/v1/chat/session/new", HTTP_X_CSRFTOKEN=token)
    assert started.status_code == 201
    session_id = started.json()["session_id"]
    body = json.dumps({"session_id": session_id, "message": "1"})
    no_token = browser.post("/api/v1/chat/message", body, content_type="application/json")
    assert no_token.status_code == 403
    assert no_token.json()["error"] == "csrf_failed"
    ok = browser.post("/api/v1/chat/message", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200


def test_one_session_cannot_read_another(business):
    dana, eve = Customer(), Customer()
    dana.send("1")
    # Eve knows Dana's conversation number (it is on receipts), not her session token.
    response = eve.client.get(f"/api/v1/chat/session/{dana.conversation.number}/history")
    assert response.status_code == 404
    assert eve.client.get("/api/v1/chat/session/guess/history").status_code == 404
    own = eve.client.get(f"/api/v1/chat/session/{eve.session_id}/history").json()
    assert all(m["text"] != "1" for m in own["messages"])


def test_the_customers_message_is_stored_before_the_model_answers(business, model, frozen):
    dana = Customer()

    def stored() -> bool:
        try:
            return Message.objects.filter(text="is it stored?", role="customer").exists()
        finally:
            connection.close()

    def check_stored(body):
        # Runs inside the fake model (an event loop thread) while our server waits for it,
        # so the query goes through a plain worker thread.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(stored).result()
        return "Yes."

    model.respond_with(check_stored)
    assert dana.send("is it stored?")["reply"] == "Yes."
    assert not model.responder_errors


def test_the_openapi_schema_documents_the_chat_endpoints():
    schema = Client().get("/api/schema/?format=json").json()
    for path in [
        "/api/v1/chat/session/new",
        "/api/v1/chat/message",
        "/api/v1/chat/session/{session_id}/history",
        "/api/v1/chat/session/{session_id}/close",
    ]:
        assert path in schema["paths"]
    assert "429" in schema["paths"]["/api/v1/chat/message"]["post"]["responses"]
    assert Client().get("/api/docs/").status_code == 200
