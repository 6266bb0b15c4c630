"""Chat turns and voice calls against the fleet's OpenAI budget, in one process: the fake model
sends OpenAI's x-ratelimit-* headers, 429s with retry-after and rate_limits.updated events, and
the turns wait a bounded time, or take the guided flow, or refuse the call, recorded as events.

Two worker processes sharing the budget through Redis: tests/test_openai_budget_fleet.py.
"""

from __future__ import annotations

import time

import pytest

from chatdesk.assistant.turns import BUSY_LEAD_IN
from chatdesk.conversations.models import Conversation, Message
from tests.chat_customer import Customer, model_fixture  # noqa: F401 (registers `model`)
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.test_voice_call import Caller

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budget(model, settings):
    settings.OPENAI_BUDGET_WAIT_SECONDS = 2
    return model


def events(customer: Customer) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(conversation__session_id=customer.session_id, role=Message.Role.EVENT)
        .exclude(failure_kind="")
        .order_by("id")
        .values_list("failure_kind", "text")
    )


def test_a_429_pauses_every_conversation_not_only_the_one_that_saw_it(business, budget):
    dana, eve = Customer(), Customer()
    budget.queue_rate_limited(retry_after=30)
    assert "trouble" in dana.send("Can someone look at my furnace?")["reply"]
    assert dana.failure_kinds() == ["rate_limited"]
    sent = len(budget.response_requests)

    started = time.monotonic()
    reply = eve.send("My furnace is banging, can someone come tomorrow morning?")["reply"]
    # The pause outlasts the wait: the guided flow answers at once, and nothing reached OpenAI.
    assert time.monotonic() - started < 1.5
    assert len(budget.response_requests) == sent
    assert reply.startswith(BUSY_LEAD_IN)
    assert "HVAC Repair" in reply  # the guided flow understood her
    assert eve.failure_kinds() == ["budget_exhausted"]
    assert events(eve)[0][1].startswith("Model failure: budget_exhausted: the fleet is paused")
    conversation = eve.conversation
    assert conversation.mode == Conversation.Mode.GUIDED
    assert conversation.failure_count == 1
    # She goes on in the guided flow; still nothing is sent to OpenAI.
    assert eve.send("1")["reply"]
    assert len(budget.response_requests) == sent


def test_a_short_retry_after_is_waited_out_by_the_turn_that_saw_it(business, budget):
    dana = Customer()
    budget.queue_rate_limited(retry_after=0.6)
    budget.queue_text("Sure, which day suits you?")
    started = time.monotonic()
    assert dana.send("Can someone look at my furnace?")["reply"] == "Sure, which day suits you?"
    assert time.monotonic() - started >= 0.5
    assert len(budget.response_requests) == 2
    [(kind, text)] = events(dana)
    assert kind == Message.FailureKind.BUDGET_WAIT
    assert "(paused)" in text
    assert dana.conversation.failure_count == 0


def test_near_the_limit_a_turn_waits_for_the_window_to_refill(business, budget):
    # 60 requests a minute and one left: Dana's request takes it, her reply's headers say none
    # is left and the window refills one a second.
    budget.rate_limits.set(requests_limit=60, requests_remaining=1)
    dana, eve = Customer(), Customer()
    budget.queue_text("Hello Dana.")
    budget.queue_text("Hello Eve.")
    assert dana.send("Hi")["reply"] == "Hello Dana."
    started = time.monotonic()
    assert eve.send("Hi")["reply"] == "Hello Eve."
    assert 0.5 <= time.monotonic() - started < 2
    assert budget.rate_limits.refused == 0  # OpenAI never had to refuse: we waited instead
    [(kind, text)] = events(eve)
    assert kind == Message.FailureKind.BUDGET_WAIT
    assert "(requests)" in text


def test_budget_that_returns_only_after_the_wait_goes_to_the_guided_flow(business, budget):
    # Two requests a minute: after Dana's, the next one fits in 30 s, past the 2 s wait.
    budget.rate_limits.set(requests_limit=2, requests_remaining=1)
    dana, eve = Customer(), Customer()
    budget.queue_text("Hello Dana.")
    assert dana.send("Hi")["reply"] == "Hello Dana."
    sent = len(budget.response_requests)
    reply = eve.send("I need my drain cleaned")["reply"]
    assert reply.startswith(BUSY_LEAD_IN)
    assert "Drain Cleaning" in reply
    assert len(budget.response_requests) == sent
    assert eve.failure_kinds() == ["budget_exhausted"]


def test_a_tokens_window_used_up_holds_turns_back_too(business, budget):
    budget.rate_limits.set(tokens_limit=6000, tokens_remaining=5000)
    dana, eve = Customer(), Customer()
    budget.queue_text("Hello Dana.")
    assert dana.send("Hi")["reply"] == "Hello Dana."
    sent = len(budget.response_requests)
    assert eve.send("Hi")["reply"].startswith(BUSY_LEAD_IN)
    assert len(budget.response_requests) == sent
    assert "tokens budget" in events(eve)[0][1]


# --- voice ----------------------------------------------------------------------------------------


@pytest.fixture
def voice(budget, settings):
    settings.VOICE_GREET_FIRST = True
    settings.VOICE_MAX_FRAMES_PER_SECOND = 1000
    return budget.realtime


async def test_a_call_is_refused_politely_while_the_fleet_is_paused(business, voice):
    from asgiref.sync import sync_to_async

    from chatdesk.assistant import openai_budget

    await sync_to_async(openai_budget.pause)(30)
    caller = Caller()
    connected, _ = await caller.ws.connect()
    assert connected
    error = await caller.expect("error")
    assert error["code"] == "busy"
    assert "very busy" in error["message"]
    assert error["fallback"] == "chat"
    assert await caller.closed() == 4503
    assert voice.connections == []  # OpenAI was never called
    await caller.leave()


async def test_a_call_is_admitted_against_what_the_last_call_was_told(business, voice):
    # The voice model's window: two responses a minute, one left. The first call's greeting
    # takes it; its rate_limits.updated says none is left for 30 s.
    voice.rate_limits.set(requests_limit=2, requests_remaining=1)
    voice.queue_reply("Maple Home Services, how can I help?", audio_ms=200)
    first = Caller()
    await first.connect()
    await first.expect("transcript", role="assistant", final=True)
    await first.hang_up()

    second = Caller(ip="203.0.113.8")
    connected, _ = await second.ws.connect()
    assert connected
    error = await second.expect("error")
    assert error["code"] == "busy"
    assert await second.closed() == 4503
    assert len(voice.connections) == 1
    await second.leave()
