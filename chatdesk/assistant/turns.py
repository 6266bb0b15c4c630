"""The turn engine: start a conversation and run a customer's turn (model or guided flow).

A turn waits seconds on the model, so it is async end to end: the model call is awaited,
and database work runs in small sync functions on a thread pool
(chatdesk.conversations.services.db).
"""

from __future__ import annotations

import asyncio
import logging
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.errors import DomainError
from bookings.numbering import next_number
from chatdesk.assistant import openai_client
from chatdesk.assistant.costs import TextUsage, has_text_price, text_cost
from chatdesk.assistant.guided import guided_greeting, guided_reply
from chatdesk.assistant.prompts import system_prompt
from chatdesk.assistant.tools import (
    TOO_MANY_TOOL_CALLS,
    ToolOutcome,
    execute_tool_call,
    refuse_tool_calls,
    tool_call_budget,
    tool_definitions,
)
from chatdesk.conversations import live, model_items, rows
from chatdesk.conversations.models import Interaction, Message
from chatdesk.conversations.services import ConversationClosed, SessionNotFound, db, hash_ip

logger = logging.getLogger(__name__)

# After this many model failures in one conversation, it continues in the guided flow.
MODEL_FAILURES_BEFORE_GUIDED = 2


class RateLimited(DomainError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many messages. Please wait a moment.")
        self.retry_after = retry_after


def greeting(mode: str) -> str:
    text = (
        f"Hi! I'm the {settings.BUSINESS_NAME} assistant. I can book a technician, or look up, move or cancel a visit."
    )
    if mode == Interaction.Mode.GUIDED:
        return f"{text}\n{guided_greeting()}"
    return f"{text} How can I help?"


def interaction_start(
    *, channel: str = Interaction.ChannelKind.TEXT, ip: str = "", user_agent: str = ""
) -> Interaction:
    mode = Interaction.Mode.MODEL if openai_client.is_configured() else Interaction.Mode.GUIDED
    with transaction.atomic():
        interaction = Interaction.objects.create(
            number=next_number("INT", timezone.localdate().year, 5),
            channel=channel,
            mode=mode,
            model=settings.OPENAI_MODEL if mode == Interaction.Mode.MODEL else "",
            client_ip_hash=hash_ip(ip),
            user_agent=user_agent[:300],
        )
        text = greeting(mode)
        Message.objects.create(interaction=interaction, role=Message.Role.ASSISTANT, text=text)
        interaction.model_items = [model_items.assistant_item(text)]
        interaction.message_count = 1
        interaction.save(update_fields=["model_items", "message_count"])
    return interaction


@dataclass
class TurnResult:
    interaction: Interaction
    reply: str
    outcomes: list[ToolOutcome] = field(default_factory=list)
    bookings: list[dict] = field(default_factory=list)
    latency_ms: int = 0
    failed: str = ""
    # True while staff have taken the conversation over: no assistant reply.
    paused: bool = False


def _begin_turn(
    session_id: str, text: str, rate_limit: Callable[[], int | None] | None = None
) -> tuple[Interaction, str | None, str]:
    """Store the customer's message first, so nothing they typed is ever lost.

    Returns the interaction, the reply to give instead when a limit stops the turn, and
    the model's instructions. The rate limit check (a cache round trip) and the
    instructions come in the same trip to a worker thread as the writes.
    """
    wait = rate_limit() if rate_limit else None
    if wait:
        raise RateLimited(wait)
    # The turn's statements go through chatdesk.conversations.rows: the ORM's per-query CPU was half of
    # a turn's server time (bench/chat_turns.py).
    interaction = rows.fetch_one(Interaction, field="session_id", value=session_id) if session_id else None
    if interaction is None:
        raise SessionNotFound("No conversation with that session id.")
    if interaction.status != Interaction.Status.OPEN:
        raise ConversationClosed("This conversation is closed. Please start a new one.")
    now = timezone.now()
    rows.insert(Message(interaction=interaction, role=Message.Role.CUSTOMER, text=text))
    # Counters move in SQL (col = col + n) so two turns of one session cannot lose an increment.
    rows.update(Interaction, interaction.pk, add={"message_count": 1}, assign={"last_activity_at": now})
    interaction.message_count += 1
    instructions = system_prompt(now) if interaction.mode == Interaction.Mode.MODEL else ""
    if interaction.message_count > settings.CHAT_MAX_MESSAGES:
        return (
            interaction,
            (
                f"This conversation has reached its length limit. Please start a new chat or call us at "
                f"{settings.BUSINESS_PHONE}."
            ),
            instructions,
        )
    if interaction.cost_usd >= settings.CHAT_SPEND_CAP_USD:
        return interaction, f"I can't continue this conversation here. Please call us at {settings.BUSINESS_PHONE}.", ""
    return interaction, None, instructions


def _finish_turn(
    *,
    interaction: Interaction,
    reply: str,
    latency_ms: int,
    usage: TextUsage | None = None,
    cost: Decimal = Decimal("0"),
    items: list[dict] | None = None,
    failure: str = "",
    failure_kind: str = "",
    events: Sequence[tuple[str, str]] = (),
    switch_to_guided: bool = False,
    price_missing: bool = False,
) -> None:
    """Store the reply and move the counters. `failure` (with its `failure_kind`) is a model
    failure the customer got the failure reply for; `events` are (kind, text) model problems
    that were recovered from in this turn (a reply cut off, answered on retry)."""
    rows.insert(
        Message(
            interaction=interaction,
            role=Message.Role.ASSISTANT,
            text=reply,
            latency_ms=latency_ms,
            cost_usd=cost if usage else None,
        )
    )
    add: dict = {"message_count": 1}
    assign: dict = {"last_activity_at": timezone.now()}
    if usage:
        add.update(
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
        )
    if items is not None:
        assign["model_items"] = items
    if price_missing:
        assign["price_missing"] = True
    for kind, text in events:
        rows.insert(Message(interaction=interaction, role=Message.Role.EVENT, text=text[:500], failure_kind=kind))
    add["message_count"] += len(events)
    if failure:
        add["failure_count"] = 1
        assign["last_error"] = failure[:300]
        rows.insert(
            Message(
                interaction=interaction,
                role=Message.Role.EVENT,
                text=f"Model failure: {failure[:250]}",
                failure_kind=failure_kind,
            )
        )
        add["message_count"] += 1
    if switch_to_guided:
        assign["mode"] = Interaction.Mode.GUIDED
        assign["guided_state"] = {"step": "menu"}
    rows.update(Interaction, interaction.pk, add=add, assign=assign)
    # Keep the in-memory copy close to the row for live summaries (no re-read needed).
    interaction.message_count += add["message_count"]
    interaction.cost_usd += cost if usage else Decimal("0")


def _bookings_of(outcomes: list[ToolOutcome]) -> list[dict]:
    return [o.result["booking"] for o in outcomes if o.booking_id and not o.error and "booking" in o.result]


async def _run_calls(interaction: Interaction, calls: list[openai_client.FunctionCall], ran: int) -> list[ToolOutcome]:
    """Run one response's calls within the caps, in the order the model made them."""
    allowed = tool_call_budget(len(calls), ran_this_turn=ran)
    # Parallel tool calls run concurrently, each on its own connection; the refused ones
    # are recorded together in one trip.
    jobs = [
        db(execute_tool_call, interaction=interaction, call_id=c.call_id, name=c.name, raw_arguments=c.arguments)
        for c in calls[:allowed]
    ]
    refused = [(c.call_id, c.name, c.arguments) for c in calls[allowed:]]
    if refused:
        jobs.append(db(refuse_tool_calls, interaction_id=interaction.pk, calls=refused))
    results = await asyncio.gather(*jobs)
    ran_now = list(results[:allowed])
    return ran_now + (list(results[allowed]) if refused else [])


async def _model_turn(interaction: Interaction, text: str, instructions: str, started: float) -> TurnResult:
    items = [*interaction.model_items, model_items.user_item(text)]
    tools = tool_definitions()
    usage = TextUsage()
    cost = Decimal("0")
    outcomes: list[ToolOutcome] = []
    events: list[tuple[str, str]] = []
    reply = ""
    spent = interaction.cost_usd
    price_missing = False
    try:
        for _ in range(settings.CHAT_MAX_TOOL_ROUNDS):
            answer = await openai_client.respond(instructions=instructions, items=items, tools=tools)
            turn_cost = text_cost(answer.model, answer.usage)
            price_missing = price_missing or not has_text_price(answer.model)
            usage.add(answer.usage)
            cost += turn_cost
            spent += turn_cost
            if answer.retried_after_budget:
                events.append(
                    (
                        Message.FailureKind.INCOMPLETE_RETRIED,
                        f"Model reply cut off at max_output_tokens={answer.retried_after_budget}; "
                        "asked again with a larger budget, which answered.",
                    )
                )
            items.extend(answer.output_items)
            if not answer.function_calls:
                reply = answer.text.strip()
                break
            if spent >= settings.CHAT_SPEND_CAP_USD:
                reply = f"I can't continue this conversation here. Please call us at {settings.BUSINESS_PHONE}."
                break
            ran = sum(1 for o in outcomes if o.error != TOO_MANY_TOOL_CALLS)
            results = await _run_calls(interaction, answer.function_calls, ran)
            outcomes.extend(results)
            items.extend(model_items.function_output_item(o.call_id, o.output) for o in results)
        else:
            reply = "Sorry, that took me too many steps. Could you say again what you need, more simply?"
    except openai_client.ModelUnavailable as error:
        logger.warning("Model unavailable for %s: %s", interaction.number, error)
        if error.usage is not None:
            # What came back before the failure (a cut-off reply) was billed all the same.
            failed_cost = text_cost(error.model or settings.OPENAI_MODEL, error.usage)
            price_missing = price_missing or not has_text_price(error.model or settings.OPENAI_MODEL)
            usage.add(error.usage)
            cost += failed_cost
        switch = interaction.failure_count + 1 >= MODEL_FAILURES_BEFORE_GUIDED
        reply = "Sorry, I'm having trouble thinking right now."
        if switch:
            interaction.mode = Interaction.Mode.GUIDED
            reply += " Let's continue step by step instead.\n" + guided_greeting()
        else:
            reply += " Please send that again in a moment."
        latency = int((clock.perf_counter() - started) * 1000)
        # Keep the history consistent: the tool calls that ran stay, with their outputs.
        await db(
            _finish_turn,
            interaction=interaction,
            reply=reply,
            latency_ms=latency,
            usage=usage,
            cost=cost,
            items=[*items, model_items.assistant_item(reply)],
            failure=f"{error.kind}: {error.detail}",
            failure_kind=error.kind,
            events=events,
            switch_to_guided=switch,
            price_missing=price_missing,
        )
        return TurnResult(interaction, reply, outcomes, _bookings_of(outcomes), latency, failed=error.kind)
    if not reply:
        reply = "Sorry, could you rephrase that?"
        items.append(model_items.assistant_item(reply))
    latency = int((clock.perf_counter() - started) * 1000)
    await db(
        _finish_turn,
        interaction=interaction,
        reply=reply,
        latency_ms=latency,
        usage=usage,
        cost=cost,
        items=items,
        events=events,
        price_missing=price_missing,
    )
    return TurnResult(interaction, reply, outcomes, _bookings_of(outcomes), latency)


def _guided_turn(interaction: Interaction, text: str, started: float) -> TurnResult:
    answer = guided_reply(interaction, text)
    latency = int((clock.perf_counter() - started) * 1000)
    items = [*interaction.model_items, model_items.user_item(text), model_items.assistant_item(answer.text)]
    _finish_turn(interaction=interaction, reply=answer.text, latency_ms=latency, items=items)
    return TurnResult(interaction, answer.text, answer.outcomes, _bookings_of(answer.outcomes), latency)


async def chat_turn(*, session_id: str, text: str, rate_limit: Callable[[], int | None] | None = None) -> TurnResult:
    """Run one customer turn: store the message, answer it (model or guided flow), record it.

    `rate_limit`, if given, runs first (in the same worker thread trip) and returns the
    seconds to wait when the customer is over a limit: RateLimited is raised, nothing stored.
    """
    started = clock.perf_counter()
    interaction, stop_reply, instructions = await db(_begin_turn, session_id, text, rate_limit)
    await live.apublish(
        interaction, {"kind": "message", "role": Message.Role.CUSTOMER, "text": text, "channel": "text"}
    )
    if interaction.taken_over_by_id:
        return TurnResult(interaction, "", paused=True)
    if stop_reply:
        await db(_finish_turn, interaction=interaction, reply=stop_reply, latency_ms=0)
        result = TurnResult(interaction, stop_reply)
    elif interaction.mode == Interaction.Mode.MODEL and openai_client.is_configured():
        result = await _model_turn(interaction, text, instructions, started)
    else:
        result = await db(_guided_turn, interaction, text, started)
    for outcome in result.outcomes:
        await live.apublish(interaction, {"kind": "tool_call", **outcome.summary()})
    await live.apublish(
        interaction,
        {"kind": "message", "role": Message.Role.ASSISTANT, "text": result.reply, "latency_ms": result.latency_ms},
    )
    return result
