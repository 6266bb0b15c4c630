"""Limits that hold under parallel calls: bookings per conversation, tool calls per response
and per turn, failed booking lookups per conversation and per client IP.

Real concurrency on real PostgreSQL: the model's parallel calls run on worker threads, each
with its own connection, so the databases are transactional (committed rows, real locks).
The model is the loopback fake, driven through the unmodified openai SDK.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import date, timedelta

import pytest
import redis
import time_machine
from asgiref.sync import sync_to_async
from django.core.cache import cache, caches
from django.db import connection

from bookings.models import Booking, BookingStatus, Channel
from bookings.services import Actor, booking_create
from chatdesk.assistant.openai_client import FunctionCall
from chatdesk.assistant.tool_rounds import run_tool_round_here
from chatdesk.assistant.tools import TOO_MANY_TOOL_CALLS, ToolOutcome, execute_tool_call, tool_call_budget
from chatdesk.assistant.turns import conversation_start
from chatdesk.conversations.models import Conversation, ToolCall
from chatdesk.conversations.services import hash_ip
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import fake_openai_fixture, function_call_outputs  # noqa: F401
from tests.servers import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

VICTIM_PHONE = "416-555-0123"
# Weekdays after Monday 2026-11-16, each with a free 10:00 HVAC slot.
DAYS = [date(2026, 11, 17) + timedelta(days=n) for n in (0, 1, 2, 3, 6, 7, 8, 9)]


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False) as traveller:
        yield traveller


def booking_args(day: date, phone: str = VICTIM_PHONE) -> dict:
    return {
        "service_id": "hvac-repair",
        "start": f"{day.isoformat()}T10:00:00-05:00",
        "technician_id": None,
        "customer_name": "Dana Customer",
        "customer_phone": phone,
        "customer_email": None,
        "address": "12 Queen St W, Toronto",
        "notes": None,
        "customer_confirmed": True,
    }


def victims_booking(business) -> Booking:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return booking_create(
        service=business.repair,
        start=datetime(2026, 11, 25, 13, 0, tzinfo=ZoneInfo("America/Toronto")),
        customer_name="Victor Victim",
        customer_phone=VICTIM_PHONE,
        address="1 Private Rd, Toronto",
        channel=Channel.CHAT,
        actor=Actor.customer(Channel.CHAT),
        now=MONDAY_NOON_UTC,
    )


def lookup(number: str, phone: str) -> tuple[str, dict]:
    return ("get_booking_info", {"booking_number": number, "phone": phone})


def guesses(start: int, count: int) -> list[str]:
    return [f"416-555-{n:04d}" for n in range(start, start + count)]


# --- bookings per conversation ----------------------------------------------------------


def test_five_parallel_bookings_in_one_response_stop_at_the_cap(business, model, frozen, settings):
    assert settings.CHAT_MAX_BOOKINGS == 3
    dana = Customer()
    model.queue_function_calls([("create_booking", booking_args(day)) for day in DAYS[:5]])
    model.queue_text("All booked.")

    reply = dana.send("Book me in on all five days, yes I confirm.")

    assert Booking.objects.count() == 3
    assert sorted(c["error"] or "ok" for c in reply["tool_calls"]) == ["limit_reached"] * 2 + ["ok"] * 3
    assert len(reply["bookings"]) == 3
    conversation = dana.conversation
    assert conversation.booking_count == 3
    assert ToolCall.objects.filter(conversation=conversation, booking__isnull=False).count() == 3
    # The model was told, for each call, what happened.
    outputs = [json.loads(o["output"]) for o in function_call_outputs(model.response_requests[-1])]
    assert sum(1 for o in outputs if o.get("error") == "limit_reached") == 2


def test_racing_tabs_of_one_conversation_never_book_past_the_cap(business, frozen):
    chat = conversation_start(ip="203.0.113.20")
    racers = 8
    barrier = threading.Barrier(racers)
    results: list = [None] * racers

    def tab(index: int) -> None:
        try:
            # Each tab holds its own copy of the conversation, as separate requests would.
            conversation = Conversation.objects.get(pk=chat.pk)
            connection.ensure_connection()
            barrier.wait(timeout=30)
            results[index] = execute_tool_call(
                conversation=conversation,
                call_id=f"call_tab_{index}",
                name="create_booking",
                raw_arguments=json.dumps(booking_args(DAYS[index])),
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    assert Counter(outcome.error or "ok" for outcome in results) == {"ok": 3, "limit_reached": 5}
    assert Booking.objects.filter(status=BookingStatus.CONFIRMED).count() == 3
    assert Conversation.objects.get(pk=chat.pk).booking_count == 3


# --- tool calls per response and per turn -----------------------------------------------


def test_the_budget_counts_the_calls_already_run_this_turn(settings):
    settings.CHAT_MAX_TOOL_CALLS_PER_RESPONSE = 8
    settings.CHAT_MAX_TOOL_CALLS_PER_TURN = 12
    assert tool_call_budget(3, ran_this_turn=0) == 3
    assert tool_call_budget(61, ran_this_turn=0) == 8
    assert tool_call_budget(8, ran_this_turn=8) == 4
    assert tool_call_budget(5, ran_this_turn=12) == 0


def test_61_lookups_in_one_response_run_only_up_to_the_cap(business, model, frozen, settings):
    victim = victims_booking(business)
    mallory = Customer(ip="198.51.100.66")
    calls = [lookup(victim.number, phone) for phone in guesses(1000, 60)] + [lookup(victim.number, VICTIM_PHONE)]
    model.queue_function_calls(calls)
    model.queue_text("I could not find it.")

    reply = mallory.send("Look up booking " + victim.number)

    errors = Counter(c["error"] for c in reply["tool_calls"])
    cap = settings.CHAT_MAX_TOOL_CALLS_PER_RESPONSE
    limit = settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION
    assert errors == {"booking_not_found": limit, "lookup_locked": cap - limit, TOO_MANY_TOOL_CALLS: 61 - cap}
    # Every call is a row staff can see, the refused ones with their arguments and the error.
    rows = ToolCall.objects.filter(conversation=mallory.conversation)
    assert rows.count() == 61
    last = rows.get(call_id=reply_call_id(model, 60))
    assert last.error == TOO_MANY_TOOL_CALLS and VICTIM_PHONE in last.raw_arguments
    # The model got an output for each call, saying why; none carries the victim's booking.
    outputs = [json.loads(o["output"]) for o in function_call_outputs(model.response_requests[-1])]
    assert len(outputs) == 61
    assert "Not run" in outputs[-1]["message"]
    assert not any("booking" in o for o in outputs)
    assert "Victor" not in json.dumps(outputs)


def reply_call_id(model, index: int) -> str:
    """The call_id of the index-th function call of the first model response."""
    calls = [item for item in model.replies[0]["json"]["output"] if item["type"] == "function_call"]
    return calls[index]["call_id"]


def test_calls_per_turn_are_capped_across_the_turns_responses(business, model, frozen, settings):
    settings.CHAT_MAX_TOOL_CALLS_PER_RESPONSE = 4
    settings.CHAT_MAX_TOOL_CALLS_PER_TURN = 6
    dana = Customer()
    dates = [("resolve_date", {"text": day}) for day in ("monday", "tuesday", "wednesday", "thursday")]
    model.queue_function_calls(dates)
    model.queue_function_calls(dates)
    model.queue_text("Which day suits you?")

    reply = dana.send("Which days are free?")

    assert [c["error"] for c in reply["tool_calls"]] == [None] * 6 + [TOO_MANY_TOOL_CALLS] * 2
    assert reply["reply"] == "Which day suits you?"
    # The next customer message starts a new turn with a fresh budget.
    model.queue_function_calls(dates)
    model.queue_text("Monday then.")
    again = dana.send("Monday")
    assert [c["error"] for c in again["tool_calls"]] == [None] * 4


# --- failed lookups -----------------------------------------------------------------------


def test_guessing_phones_over_several_turns_locks_lookups_even_for_the_right_pair(business, model, frozen, settings):
    victim = victims_booking(business)
    mallory = Customer(ip="198.51.100.67")
    for turn in range(12):
        model.queue_function_calls([lookup(victim.number, phone) for phone in guesses(2000 + 5 * turn, 5)])
        model.queue_text("No match, try again?")
        mallory.send(f"try #{turn}")
    # The 61st lookup has the right phone: still refused, and the customer is sent to the phone.
    model.queue_function_calls([lookup(victim.number, VICTIM_PHONE)])
    model.queue_text("Please call us.")
    reply = mallory.send("ok it's 416-555-0123")

    assert reply["tool_calls"] == [{"name": "get_booking_info", "ok": False, "error": "lookup_locked"}]
    output = json.loads(function_call_outputs(model.response_requests[-1])[-1]["output"])
    assert output["error"] == "lookup_locked"
    assert "(416) 555-0100" in output["message"]
    rows = ToolCall.objects.filter(conversation=mallory.conversation)
    assert rows.count() == 61
    assert Counter(rows.values_list("error", flat=True)) == {"booking_not_found": 5, "lookup_locked": 56}
    assert not any("booking" in (row.result or {}) for row in rows)


def test_failed_lookups_are_counted_per_client_ip_across_conversations(business, frozen, settings):
    victim = victims_booking(business)
    per_ip = settings.CHAT_LOOKUP_FAILURES_PER_IP

    def guess(chat: Conversation, phone: str) -> dict:
        return execute_tool_call(
            conversation=chat,
            call_id=f"call_{phone}",
            name="get_booking_info",
            raw_arguments=json.dumps({"booking_number": victim.number, "phone": phone}),
        ).result

    # New conversations from one IP, each staying under the per-conversation limit.
    phones = iter(guesses(3000, 100))
    for _ in range(per_ip // 4):
        chat = conversation_start(ip="198.51.100.68")
        assert [guess(chat, next(phones))["error"] for _ in range(4)] == ["booking_not_found"] * 4
    chat = conversation_start(ip="198.51.100.68")
    for _ in range(per_ip - 4 * (per_ip // 4)):
        assert guess(chat, next(phones))["error"] == "booking_not_found"
    assert guess(chat, VICTIM_PHONE)["error"] == "lookup_locked"
    assert guess(conversation_start(ip="198.51.100.68"), VICTIM_PHONE)["error"] == "lookup_locked"

    # Another client is not locked out by them.
    other = conversation_start(ip="192.0.2.10")
    assert guess(other, VICTIM_PHONE)["booking"]["booking_number"] == victim.number


def test_right_pairs_do_not_count_and_the_lock_ends_after_a_while(business, frozen, settings):
    victim = victims_booking(business)
    chat = conversation_start(ip="198.51.100.69")
    calls = iter(range(1000))

    def guess(phone: str) -> dict:
        return execute_tool_call(
            conversation=chat,
            call_id=f"call_{next(calls)}",
            name="get_booking_info",
            raw_arguments=json.dumps({"booking_number": victim.number, "phone": phone}),
        ).result

    for _ in range(10):
        assert guess(VICTIM_PHONE)["booking"]["booking_number"] == victim.number
    for phone in guesses(4000, settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION):
        assert guess(phone)["error"] == "booking_not_found"
    assert guess(VICTIM_PHONE)["error"] == "lookup_locked"

    frozen.shift(timedelta(seconds=settings.CHAT_LOOKUP_LOCK_SECONDS - 60))
    assert guess(VICTIM_PHONE)["error"] == "lookup_locked"
    frozen.shift(timedelta(seconds=120))
    assert guess(VICTIM_PHONE)["booking"]["booking_number"] == victim.number


def test_cancel_and_reschedule_count_as_lookups(business, frozen, settings):
    settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION = 2
    victim = victims_booking(business)
    chat = conversation_start()
    cancel = {"booking_number": victim.number, "phone": "416-555-9999", "reason": None, "customer_confirmed": True}
    move = {
        "booking_number": victim.number,
        "phone": "416-555-9998",
        "new_start": "2026-11-26T10:00:00-05:00",
        "technician_id": None,
        "customer_confirmed": True,
    }
    wrong_cancel = execute_tool_call(
        conversation=chat, call_id="c1", name="cancel_booking", raw_arguments=json.dumps(cancel)
    )
    wrong_move = execute_tool_call(
        conversation=chat, call_id="c2", name="reschedule_booking", raw_arguments=json.dumps(move)
    )
    assert wrong_cancel.error == wrong_move.error == "booking_not_found"
    locked = execute_tool_call(
        conversation=chat,
        call_id="c3",
        name="cancel_booking",
        raw_arguments=json.dumps({**cancel, "phone": VICTIM_PHONE}),
    )
    assert locked.error == "lookup_locked"
    victim.refresh_from_db()
    assert victim.status == BookingStatus.CONFIRMED


def test_voice_calls_share_the_lookup_limits(business, frozen, settings):
    victim = victims_booking(business)
    # A voice conversation, through the voice relay's tool path (the shared round, voice channel).
    call = Conversation.objects.create(
        number="INT-2026-09999", channel=Conversation.ChannelKind.VOICE, client_ip_hash=hash_ip("198.51.100.70")
    )

    def spoken_lookup(call_id: str, phone: str) -> ToolOutcome:
        arguments = json.dumps({"booking_number": victim.number, "phone": phone})
        (outcome,) = run_tool_round_here(
            call,
            [FunctionCall(call_id, "get_booking_info", arguments)],
            channel=Conversation.ChannelKind.VOICE,
            ran_this_turn=0,
        )
        return outcome

    for n, phone in enumerate(guesses(5000, settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION)):
        assert spoken_lookup(f"call_{n}", phone).error == "booking_not_found"
    outcome = spoken_lookup("call_right", VICTIM_PHONE)
    assert outcome.error == "lookup_locked"
    assert "(416) 555-0100" in outcome.result["message"]


def test_counters_live_in_redis_when_it_is_configured(business, frozen, settings):
    url = redis_test_url()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    caches["default"].clear()
    try:
        victim = victims_booking(business)
        chat = conversation_start(ip="198.51.100.71")
        for n, phone in enumerate(guesses(6000, settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION)):
            args = json.dumps({"booking_number": victim.number, "phone": phone})
            outcome = execute_tool_call(conversation=chat, call_id=f"c{n}", name="get_booking_info", raw_arguments=args)
            assert outcome.error == "booking_not_found"
        # Another process sees what this one counted: read Redis directly, not through Django.
        keys = [key.decode() for key in redis.Redis.from_url(url).keys("*lookup-failures*")]
        assert any(key.endswith(f"conversation:{chat.pk}") for key in keys)
        assert any(key.endswith(f"ip:{chat.client_ip_hash}") for key in keys)
        locked = execute_tool_call(
            conversation=chat,
            call_id="c_right",
            name="get_booking_info",
            raw_arguments=json.dumps({"booking_number": victim.number, "phone": VICTIM_PHONE}),
        )
        assert locked.error == "lookup_locked"
    finally:
        caches["default"].clear()


def test_an_unreachable_cache_refuses_lookups_with_a_clear_message(business, frozen, settings):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    victim = victims_booking(business)
    chat = conversation_start(ip="198.51.100.72")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    outcome = execute_tool_call(
        conversation=chat,
        call_id="c1",
        name="get_booking_info",
        raw_arguments=json.dumps({"booking_number": victim.number, "phone": VICTIM_PHONE}),
    )
    assert outcome.error == "lookup_unavailable"
    assert "(416) 555-0100" in outcome.result["message"]
    assert ToolCall.objects.get(conversation=chat, call_id="c1").error == "lookup_unavailable"


def test_while_redis_is_down_lookups_go_on_under_the_same_limits_in_this_process(business, frozen, settings):
    # The production cache (chatdesk/fallback_cache.py) on a private Redis that is then stopped:
    # lookups are not refused, and the failed-lookup limit still locks, counted in this process.
    server = RedisServer().start()
    try:
        settings.CACHES = {"default": {"BACKEND": "chatdesk.fallback_cache.FallbackRedisCache", "LOCATION": server.url}}
        victim = victims_booking(business)
        chat = conversation_start(ip="198.51.100.73")
        server.stop()

        def attempt(call_id: str, phone: str) -> ToolOutcome:
            args = json.dumps({"booking_number": victim.number, "phone": phone})
            return execute_tool_call(conversation=chat, call_id=call_id, name="get_booking_info", raw_arguments=args)

        assert attempt("c_first", VICTIM_PHONE).touched_booking == victim.pk
        for n, phone in enumerate(guesses(7000, settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION)):
            assert attempt(f"c{n}", phone).error == "booking_not_found"
        assert attempt("c_right", VICTIM_PHONE).error == "lookup_locked"
    finally:
        server.stop()


def redis_test_url() -> str:
    import os

    return os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")


# --- voice: the same tool-call cap -----------------------------------------------------------


async def test_a_voice_response_with_too_many_calls_runs_only_the_cap(business, fake_openai, settings, frozen):
    from tests.test_voice_call import Caller, tool_calls_of

    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.VOICE_GREET_FIRST = True
    settings.VOICE_MAX_FRAMES_PER_SECOND = 1000
    voice = fake_openai.realtime
    voice.queue_reply("Hi!", audio_ms=200)
    voice.queue_turn(
        "Which days are free?", function_calls=[("resolve_date", {"text": f"in {n} days"}) for n in range(1, 11)]
    )
    voice.queue_reply("Here is what I found.", audio_ms=200)
    ida = Caller(ip="203.0.113.99")
    ready = await ida.connect()
    await ida.expect("transcript", role="assistant", final=True, text="Hi!")
    await ida.say()
    await ida.expect("transcript", role="assistant", final=True, text="Here is what I found.")
    await ida.hang_up()

    rows = await tool_calls_of(ready["session_id"])
    cap = settings.CHAT_MAX_TOOL_CALLS_PER_RESPONSE
    assert [row.error for row in rows].count(TOO_MANY_TOOL_CALLS) == 10 - cap
    # Every call got its output before the one response.create.
    outputs = [
        event["item"]
        for event in voice.connections[0].events
        if event.get("type") == "conversation.item.create" and event["item"].get("type") == "function_call_output"
    ]
    assert len(outputs) == 10
    assert sum(1 for item in outputs if TOO_MANY_TOOL_CALLS in item["output"]) == 10 - cap
    await sync_to_async(cache.clear)()
