"""The turn engine: start a conversation and run a customer's turn (model or guided flow).

A turn waits seconds on the model, so it is async end to end: the model call is awaited,
and database work runs in small sync functions on a thread pool
(chatdesk.conversations.services.db).
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.errors import DomainError
from chatdesk.assistant import openai_client
from chatdesk.assistant.costs import TextUsage, has_text_price, text_cost
from chatdesk.assistant.guided import guided_greeting, guided_reply
from chatdesk.assistant.prompts import system_prompt
from chatdesk.assistant.rate_limits import message_wait
from chatdesk.assistant.tool_rounds import bookings_touched, calls_run, run_tool_round
from chatdesk.assistant.tools import ToolOutcome, tool_definitions
from chatdesk.conversations import live, model_items, record
from chatdesk.conversations.models import Interaction, Message
from chatdesk.conversations.services import ConversationClosed, SessionNotFound, db, interaction_create

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
    *, channel: str = Interaction.ChannelKind.CHAT, ip: str = "", user_agent: str = ""
) -> Interaction:
    mode = Interaction.Mode.MODEL if openai_client.is_configured() else Interaction.Mode.GUIDED
    with transaction.atomic():
        interaction = interaction_create(
            channel=channel,
            mode=mode,
            model=settings.OPENAI_MODEL if mode == Interaction.Mode.MODEL else "",
            ip=ip,
            user_agent=user_agent,
        )
        text = greeting(mode)
        Message.objects.create(interaction=interaction, role=Message.Role.ASSISTANT, text=text)
        interaction.model_items = [model_items.assistant_item(text)]
        interaction.message_count = 1
        record.append_model_items(interaction.pk, interaction.model_items, messages=1)
    return interaction


@dataclass
class TurnResult:
    interaction: Interaction
    reply: str
    outcomes: list[ToolOutcome] = field(default_factory=list)
    # The bookings the turn's tool calls made, found, moved or cancelled.
    booking_ids: list[int] = field(default_factory=list)
    latency_ms: int = 0
    failed: str = ""
    # True while staff have taken the conversation over: no assistant reply.
    paused: bool = False


def _begin_turn(session_id: str, text: str, client_ip: str | None) -> tuple[Interaction, str | None, str]:
    """Store the customer's message first, so nothing they typed is ever lost.

    Returns the interaction, the reply to give instead when a limit stops the turn, and
    the model's instructions. The rate limit check (a cache round trip) and the
    instructions come in the same trip to a worker thread as the writes.
    """
    wait = message_wait(ip=client_ip, session_id=session_id) if client_ip is not None else None
    if wait:
        raise RateLimited(wait)
    # The record's writer skips the ORM's per-query CPU on this path: it was half of a turn's
    # server time (bench/chat_turns.py).
    interaction = record.session_interaction(session_id)
    if interaction is None:
        raise SessionNotFound("No conversation with that session id.")
    if interaction.status != Interaction.Status.OPEN:
        raise ConversationClosed("This conversation is closed. Please start a new one.")
    now = timezone.now()
    record.add_message(Message(interaction=interaction, role=Message.Role.CUSTOMER, text=text))
    record.count_message(interaction.pk, last_activity_at=now)
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
    items: Sequence[dict] = (),
    failure: str = "",
    failure_kind: str = "",
    events: Sequence[tuple[str, str]] = (),
    switch_to_guided: bool = False,
    price_missing: bool = False,
) -> None:
    """Store the reply and move the counters. `items` are the model-history items this turn
    added (appended to the history as stored then, not as read at the turn's start: a staff
    reply or a spoken line may have come in meanwhile). `failure` (with its `failure_kind`) is
    a model failure the customer got the failure reply for; `events` are (kind, text) model
    problems that were recovered from in this turn (a reply cut off, answered on retry)."""
    record.add_message(
        Message(
            interaction=interaction,
            role=Message.Role.ASSISTANT,
            text=reply,
            latency_ms=latency_ms,
            cost_usd=cost if usage else None,
        )
    )
    for kind, text in events:
        record.add_message(
            Message(interaction=interaction, role=Message.Role.EVENT, text=text[:500], failure_kind=kind)
        )
    if failure:
        record.add_message(
            Message(
                interaction=interaction,
                role=Message.Role.EVENT,
                text=f"Model failure: {failure[:250]}",
                failure_kind=failure_kind,
            )
        )
    messages = 1 + len(events) + (1 if failure else 0)
    assign: dict = {"last_activity_at": timezone.now()}
    if switch_to_guided:
        assign["mode"] = Interaction.Mode.GUIDED
        assign["guided_state"] = {"step": "menu"}
    spent = (
        record.Usage(
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=cost,
            price_missing=price_missing,
        )
        if usage
        else None
    )
    record.write(interaction.pk, items=items, messages=messages, failure=failure, usage=spent, assign=assign)
    # Keep the in-memory copy close to the row for live summaries (no re-read needed).
    interaction.message_count += messages
    interaction.cost_usd += cost if usage else Decimal("0")


async def _model_turn(interaction: Interaction, text: str, instructions: str, started: float) -> TurnResult:
    # The history as read at the turn's start, then what this turn adds (all that it stores).
    history = len(interaction.model_items)
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
            results = await run_tool_round(
                interaction,
                answer.function_calls,
                channel=Interaction.ChannelKind.CHAT,
                ran_this_turn=calls_run(outcomes),
            )
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
            items=[*items[history:], model_items.assistant_item(reply)],
            failure=f"{error.kind}: {error.detail}",
            failure_kind=error.kind,
            events=events,
            switch_to_guided=switch,
            price_missing=price_missing,
        )
        return TurnResult(interaction, reply, outcomes, bookings_touched(outcomes), latency, failed=error.kind)
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
        items=items[history:],
        events=events,
        price_missing=price_missing,
    )
    return TurnResult(interaction, reply, outcomes, bookings_touched(outcomes), latency)


def _guided_turn(interaction: Interaction, text: str, started: float) -> TurnResult:
    answer = guided_reply(interaction, text)
    latency = int((clock.perf_counter() - started) * 1000)
    items = [model_items.user_item(text), model_items.assistant_item(answer.text)]
    _finish_turn(interaction=interaction, reply=answer.text, latency_ms=latency, items=items)
    return TurnResult(interaction, answer.text, answer.outcomes, bookings_touched(answer.outcomes), latency)


async def chat_turn(*, session_id: str, text: str, client_ip: str | None = None) -> TurnResult:
    """Run one customer turn: store the message, answer it (model or guided flow), record it.

    With `client_ip`, the customer's message rate limits (per client IP and per session) are
    checked first, in the same worker thread trip: over one, RateLimited is raised and nothing
    is stored.
    """
    started = clock.perf_counter()
    interaction, stop_reply, instructions = await db(_begin_turn, session_id, text, client_ip)
    await live.apublish(
        interaction,
        {"kind": "message", "role": Message.Role.CUSTOMER, "text": text, "channel": Interaction.ChannelKind.CHAT.value},
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
