"""The turn engine: start a conversation and run a customer's turn (model or guided flow).

A turn waits seconds on the model, so it is async end to end: the model call is awaited,
and database work runs in small sync functions on a thread pool
(chatdesk.conversations.services.db).
"""

from __future__ import annotations

import asyncio
import logging
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.errors import DomainError
from bookings.phones import business_phone
from chatdesk import lifecycle
from chatdesk.assistant import openai_client
from chatdesk.assistant.costs import TextUsage, has_text_price, text_cost
from chatdesk.assistant.guided import guided_greeting, guided_reply
from chatdesk.assistant.prompts import system_prompt
from chatdesk.assistant.rate_limits import message_wait, too_many_messages
from chatdesk.assistant.tool_rounds import bookings_touched, calls_run, run_tool_round
from chatdesk.assistant.tools import ToolOutcome, tool_definitions
from chatdesk.assistant.turn_lease import TurnLease
from chatdesk.conversations import live, model_items, record
from chatdesk.conversations.models import Conversation, Message, ToolCall
from chatdesk.conversations.services import ConversationClosed, SessionNotFound, conversation_create, db
from chatdesk.observability import context, metrics

logger = logging.getLogger(__name__)

# After this many model failures in one conversation, it continues in the guided flow.
MODEL_FAILURES_BEFORE_GUIDED = 2
# Said before the guided flow's answer when the fleet's OpenAI budget ran out (a 429 paused
# every worker, or the account's limits are used up): the customer still gets an answer now.
BUSY_LEAD_IN = "We're very busy right now, so let's go step by step."


class RateLimited(DomainError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, retry_after: int, message: str = "") -> None:
        super().__init__(message or too_many_messages(retry_after))
        self.retry_after = retry_after


class TurnInProgress(DomainError):
    """A retry of a message whose turn is still running, in this process or another: ask again shortly."""

    code = "turn_in_progress"
    http_status = 409
    retry_after = 2

    def __init__(self, lease: TurnLease) -> None:
        super().__init__("Still working on that message. Please retry in a moment.")
        self.lease = lease

    async def finished(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, for the running turn to end, wherever it runs."""
        await self.lease.released(timeout)


class ServerDraining(DomainError):
    """This worker is shutting down (SIGTERM, chatdesk/drain.py): it takes no new turn.

    Raised before anything is stored, so the same request sent again (to another worker: nginx
    does that itself for the message endpoint, and static/chat.js resends with the same id) is
    a first try there. A turn still running at the drain's deadline is stopped with it too:
    its message is stored then, and the retry is answered once, by another worker.
    """

    code = "server_draining"
    http_status = 503
    retry_after = 1

    def __init__(self) -> None:
        super().__init__("This server is restarting. Please send your message again.")


class MessageIdReused(DomainError):
    """A message id already used in this conversation for other words."""

    code = "message_id_reused"
    http_status = 409

    def __init__(self) -> None:
        super().__init__("This message id was already used for another message.", field="message_id")


# The turns answering in this process, with their loops: the drain stops those still running
# at its deadline (cut_turns_in_flight). Those it cut are in _cut until they have answered 503.
_answering: dict[asyncio.Task, asyncio.AbstractEventLoop] = {}
_cut: set[asyncio.Task] = set()


def greeting(mode: str) -> str:
    text = (
        f"Hi! I'm the {settings.BUSINESS_NAME} assistant. I can book a technician, or look up, move or cancel a visit."
    )
    if mode == Conversation.Mode.GUIDED:
        return f"{text}\n{guided_greeting()}"
    return f"{text} How can I help?"


def conversation_start(
    *, channel: str = Conversation.ChannelKind.CHAT, ip: str = "", user_agent: str = "", widget_page: str | None = None
) -> Conversation:
    mode = Conversation.Mode.MODEL if openai_client.is_configured() else Conversation.Mode.GUIDED
    with transaction.atomic():
        conversation = conversation_create(
            channel=channel,
            mode=mode,
            model=settings.OPENAI_MODEL if mode == Conversation.Mode.MODEL else "",
            ip=ip,
            user_agent=user_agent,
            widget_page=widget_page,
        )
        text = greeting(mode)
        Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text=text)
        conversation.model_items = [model_items.assistant_item(text)]
        conversation.message_count = 1
        record.append_model_items(conversation.pk, conversation.model_items, messages=1)
    return conversation


@dataclass
class TurnResult:
    conversation: Conversation
    reply: str
    outcomes: list[ToolOutcome] = field(default_factory=list)
    # The bookings the turn's tool calls made, found, moved or cancelled.
    booking_ids: list[int] = field(default_factory=list)
    latency_ms: int = 0
    failed: str = ""
    # True while staff have taken the conversation over: no assistant reply.
    paused: bool = False


@dataclass
class _Begun:
    conversation: Conversation
    # The reply to give instead when a limit stops the turn.
    stop_reply: str | None = None
    # The model's instructions.
    instructions: str = ""
    # A retry of a finished turn: its answer, to give again.
    earlier: TurnResult | None = None
    # A retry of a message stored by a turn that ended without answering: answered now.
    resumed: bool = False
    # Held from before the message is stored until its reply is (with the client's message id).
    lease: TurnLease | None = None


def _begin_turn(session_id: str, text: str, client_ip: str | None, message_id: str | None = None) -> _Begun:
    """Store the customer's message first, so nothing they typed is ever lost.

    With the client's `message_id`, the turn first takes the message's lease (turn_lease): held
    elsewhere, TurnInProgress is raised, wherever that turn runs. Then a message already stored
    under the id is not stored again: the earlier turn's answer is returned if it has one, and
    otherwise (its turn died) the stored message is answered now. The rate limit check and the
    lease (cache round trips) and the instructions come in the same trip to a worker thread as
    the writes.
    """
    wait = message_wait(ip=client_ip, session_id=session_id) if client_ip is not None else None
    if wait:
        raise RateLimited(wait)
    # The record's writer skips the ORM's per-query CPU on this path: it was half of a turn's
    # server time (bench/chat_turns.py).
    conversation = record.session_conversation(session_id)
    if conversation is None:
        raise SessionNotFound("No conversation with that session id.")
    if conversation.status != Conversation.Status.OPEN:
        raise ConversationClosed("This conversation is closed. Please start a new one.")
    now = timezone.now()
    message = Message(conversation=conversation, role=Message.Role.CUSTOMER, text=text, client_message_id=message_id)
    # The id rides on the message's INSERT: no extra statement on a first try.
    resumed = False
    lease = None
    if message_id is None:
        record.add_message(message)
    else:
        # Taken before the message is stored: a retry on another worker then either finds the
        # lease (409) or, once it is released, the reply, never a stored message nobody answers.
        lease = TurnLease(conversation.pk, message_id)
        if not lease.take():
            raise TurnInProgress(lease)
    try:
        if lease is not None and not record.claim_message(message):
            earlier = _earlier_turn(conversation, message_id, text)
            if earlier is not None:
                lease.release()
                return _Begun(conversation, earlier=earlier)
            resumed = True
        if not resumed:
            record.count_message(conversation.pk, last_activity_at=now)
            conversation.message_count += 1
        instructions = system_prompt(now) if conversation.mode == Conversation.Mode.MODEL else ""
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    if conversation.message_count > settings.CHAT_MAX_MESSAGES:
        return _Begun(
            conversation,
            (
                f"This conversation has reached its length limit. Please start a new chat or call us at "
                f"{business_phone()}."
            ),
            instructions,
            resumed=resumed,
            lease=lease,
        )
    if conversation.cost_usd >= settings.CHAT_SPEND_CAP_USD:
        return _Begun(
            conversation,
            f"I can't continue this conversation here. Please call us at {business_phone()}.",
            resumed=resumed,
            lease=lease,
        )
    return _Begun(conversation, None, instructions, resumed=resumed, lease=lease)


def _earlier_turn(conversation: Conversation, message_id: str, text: str) -> TurnResult | None:
    """The answer of the turn that stored the customer's message `message_id`, as it first
    answered; None when that turn ended without an answer, so the message is answered now.

    Called with the message's lease held, so the turn that stored it is over (it released the
    lease, or its process died and the lease lapsed). Retries are rare, so these reads are paid
    only by them. A turn's tool calls are stored between its message and its reply (as
    chatdesk.conversations.booking_cards reads them).
    """
    stored = list(Message.objects.filter(conversation=conversation, client_message_id=message_id).order_by("id"))
    asked = next(m for m in stored if m.role == Message.Role.CUSTOMER)
    if asked.text != text:
        raise MessageIdReused()
    reply = next((m for m in stored if m.role == Message.Role.ASSISTANT), None)
    if reply is None:
        # The turn that stored it failed before answering. (Taken over meanwhile, _answer
        # pauses it, as the first try was.)
        return None
    calls = ToolCall.objects.filter(
        conversation=conversation, created_at__gte=asked.created_at, created_at__lte=reply.created_at
    ).order_by("created_at", "id")
    outcomes = [
        ToolOutcome(call_id=c.call_id, name=c.name, result=c.result or {}, error=c.error, booking_id=c.booking_id)
        for c in calls
    ]
    return TurnResult(conversation, reply.text, outcomes, bookings_touched(outcomes), reply.latency_ms or 0)


def _finish_turn(
    *,
    conversation: Conversation,
    reply: str,
    latency_ms: int,
    usage: TextUsage | None = None,
    cost: Decimal = Decimal("0"),
    items: Sequence[dict] = (),
    failure: str = "",
    failure_kind: str = "",
    failure_partial: str = "",
    events: Sequence[tuple[str, str]] = (),
    switch_to_guided: bool = False,
    price_missing: bool = False,
    message_id: str | None = None,
) -> None:
    """Store the reply and move the counters. `items` are the model-history items this turn
    added (appended to the history as stored then, not as read at the turn's start: a staff
    reply or a spoken line may have come in meanwhile). `failure` (with its `failure_kind`) is
    a model failure the customer got the failure reply for (`failure_partial`: the words a broken
    stream had shown before it broke, kept on the failure's row); `events` are (kind, text) model
    problems that were recovered from in this turn (a reply cut off, answered on retry).
    The reply carries the customer's `message_id`, so a retry of that message finds it."""
    record.add_message(
        Message(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            text=reply,
            latency_ms=latency_ms,
            cost_usd=cost if usage else None,
            client_message_id=message_id,
        )
    )
    for kind, text in events:
        record.add_message(
            Message(conversation=conversation, role=Message.Role.EVENT, text=text[:500], failure_kind=kind)
        )
    if failure:
        record.add_message(
            Message(
                conversation=conversation,
                role=Message.Role.EVENT,
                text=f"Model failure: {failure[:250]}",
                failure_kind=failure_kind,
                generated_text=failure_partial,
            )
        )
    messages = 1 + len(events) + (1 if failure else 0)
    assign: dict = {"last_activity_at": timezone.now()}
    if switch_to_guided:
        assign["mode"] = Conversation.Mode.GUIDED
        # The guided flow's state when it already answered this turn (the budget fallback).
        assign["guided_state"] = conversation.guided_state or {"step": "menu"}
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
    record.write(conversation.pk, items=items, messages=messages, failure=failure, usage=spent, assign=assign)
    # Keep the in-memory copy close to the row for live summaries (no re-read needed).
    conversation.message_count += messages
    conversation.cost_usd += cost if usage else Decimal("0")


async def _model_turn(
    conversation: Conversation, text: str, instructions: str, started: float, message_id: str | None = None
) -> TurnResult:
    # The history as read at the turn's start, then what this turn adds (all that it stores).
    history = len(conversation.model_items)
    items = [*conversation.model_items, model_items.user_item(text)]
    tools = tool_definitions()
    usage = TextUsage()
    cost = Decimal("0")
    outcomes: list[ToolOutcome] = []
    events: list[tuple[str, str]] = []
    reply = ""
    spent = conversation.cost_usd
    price_missing = False
    # The whole turn waits at most this long for the fleet's OpenAI budget, over all its rounds.
    budget_deadline = clock.monotonic() + settings.OPENAI_BUDGET_WAIT_SECONDS
    # The reply goes to the customer's page and to staff watching as the model writes it.
    relay = live.ReplyStream(conversation, message_id)
    try:
        for _ in range(settings.CHAT_MAX_TOOL_ROUNDS):
            answer = await openai_client.respond(
                instructions=instructions, items=items, tools=tools, wait_until=budget_deadline, listener=relay
            )
            if answer.budget_waited:
                events.append(
                    (
                        Message.FailureKind.BUDGET_WAIT,
                        f"Waited {answer.budget_waited * 1000:.0f} ms for the fleet's OpenAI budget "
                        f"({answer.budget_wait_reason}).",
                    )
                )
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
                reply = f"I can't continue this conversation here. Please call us at {business_phone()}."
                break
            results = await run_tool_round(
                conversation,
                answer.function_calls,
                channel=Conversation.ChannelKind.CHAT,
                ran_this_turn=calls_run(outcomes),
            )
            outcomes.extend(results)
            items.extend(model_items.function_output_item(o.call_id, o.output) for o in results)
        else:
            reply = "Sorry, that took me too many steps. Could you say again what you need, more simply?"
    except openai_client.ModelUnavailable as error:
        logger.warning("Model unavailable for %s: %s", conversation.number, error)
        if relay.wrote:
            # Words of this reply are on screen: take them back before the failure reply comes.
            await relay.broken()
        if error.kind == Message.FailureKind.BUDGET_EXHAUSTED and not outcomes:
            # Nothing ran this turn: the guided flow answers the customer's words now.
            return await db(
                _budget_fallback_turn,
                conversation,
                text,
                started,
                usage=usage,
                cost=cost,
                items=items[history:],
                failure=f"{error.kind}: {error.detail}",
                events=events,
                price_missing=price_missing,
                message_id=message_id,
            )
        if error.usage is not None:
            # What came back before the failure (a cut-off reply) was billed all the same.
            failed_cost = text_cost(error.model or settings.OPENAI_MODEL, error.usage)
            price_missing = price_missing or not has_text_price(error.model or settings.OPENAI_MODEL)
            usage.add(error.usage)
            cost += failed_cost
        # Out of budget after a tool ran: the greeting, not the customer's words again (the
        # guided flow would act on them a second time).
        switch = (
            conversation.failure_count + 1 >= MODEL_FAILURES_BEFORE_GUIDED
            or error.kind == Message.FailureKind.BUDGET_EXHAUSTED
        )
        reply = "Sorry, I'm having trouble thinking right now."
        if switch:
            conversation.mode = Conversation.Mode.GUIDED
            reply += " Let's continue step by step instead.\n" + guided_greeting()
        else:
            reply += " Please send that again in a moment."
        latency = int((clock.perf_counter() - started) * 1000)
        # Keep the history consistent: the tool calls that ran stay, with their outputs.
        await db(
            _finish_turn,
            conversation=conversation,
            reply=reply,
            latency_ms=latency,
            usage=usage,
            cost=cost,
            items=[*items[history:], model_items.assistant_item(reply)],
            failure=f"{error.kind}: {error.detail}",
            failure_kind=error.kind,
            failure_partial=error.partial_text,
            events=events,
            switch_to_guided=switch,
            price_missing=price_missing,
            message_id=message_id,
        )
        return TurnResult(conversation, reply, outcomes, bookings_touched(outcomes), latency, failed=error.kind)
    if not reply:
        reply = "Sorry, could you rephrase that?"
        items.append(model_items.assistant_item(reply))
    # Every piece sent before the final reply is published (chat_turn's `message` event).
    await relay.flush()
    latency = int((clock.perf_counter() - started) * 1000)
    await db(
        _finish_turn,
        conversation=conversation,
        reply=reply,
        latency_ms=latency,
        usage=usage,
        cost=cost,
        items=items[history:],
        events=events,
        price_missing=price_missing,
        message_id=message_id,
    )
    return TurnResult(conversation, reply, outcomes, bookings_touched(outcomes), latency)


def _budget_fallback_turn(
    conversation: Conversation,
    text: str,
    started: float,
    *,
    usage: TextUsage,
    cost: Decimal,
    items: list[dict],
    failure: str,
    events: Sequence[tuple[str, str]],
    price_missing: bool,
    message_id: str | None,
) -> TurnResult:
    """The fleet has no OpenAI budget for this turn (nothing was sent): the conversation goes on
    in the guided flow, which answers this message now. `items` are what the turn added to the
    model history so far (the customer's message, and any earlier round of this turn)."""
    conversation.mode = Conversation.Mode.GUIDED
    conversation.guided_state = {"step": "menu"}
    answer = guided_reply(conversation, text)
    reply = f"{BUSY_LEAD_IN}\n{answer.text}"
    latency = int((clock.perf_counter() - started) * 1000)
    _finish_turn(
        conversation=conversation,
        reply=reply,
        latency_ms=latency,
        usage=usage if usage.input_tokens or usage.output_tokens else None,
        cost=cost,
        items=[*items, model_items.assistant_item(reply)],
        failure=failure,
        failure_kind=Message.FailureKind.BUDGET_EXHAUSTED,
        events=events,
        switch_to_guided=True,
        price_missing=price_missing,
        message_id=message_id,
    )
    return TurnResult(
        conversation,
        reply,
        answer.outcomes,
        bookings_touched(answer.outcomes),
        latency,
        failed=Message.FailureKind.BUDGET_EXHAUSTED,
    )


def _guided_turn(conversation: Conversation, text: str, started: float, message_id: str | None = None) -> TurnResult:
    answer = guided_reply(conversation, text)
    latency = int((clock.perf_counter() - started) * 1000)
    items = [model_items.user_item(text), model_items.assistant_item(answer.text)]
    _finish_turn(conversation=conversation, reply=answer.text, latency_ms=latency, items=items, message_id=message_id)
    return TurnResult(conversation, answer.text, answer.outcomes, bookings_touched(answer.outcomes), latency)


async def chat_turn(
    *, session_id: str, text: str, client_ip: str | None = None, message_id: str | None = None
) -> TurnResult:
    """Run one customer turn: store the message, answer it (model or guided flow), record it.

    With `client_ip`, the customer's message rate limits (per client IP and per session) are
    checked first, in the same worker thread trip: over one, RateLimited is raised and nothing
    is stored. With the client's `message_id`, a retry of a message already stored stores
    nothing again (see _begin_turn): it gets the first answer, TurnInProgress, or its answer now.

    A worker that is draining (chatdesk/drain.py) refuses new turns with ServerDraining before
    storing anything, and stops the turns still running at its deadline with it.
    """
    if lifecycle.draining():
        raise ServerDraining()
    started = clock.perf_counter()
    begun = await db(_begin_turn, session_id, text, client_ip, message_id)
    if begun.earlier is not None:
        return begun.earlier
    task = asyncio.current_task()
    assert task is not None
    _answering[task] = asyncio.get_running_loop()
    heartbeat = asyncio.ensure_future(begun.lease.keep_alive()) if begun.lease is not None else None
    try:
        with lifecycle.in_flight(), context.conversation(begun.conversation.number):
            result = await _answer(begun, text, started, message_id)
        _count(begun, result, clock.perf_counter() - started)
        return result
    except asyncio.CancelledError:
        # Cut by the drain's deadline (and not also cancelled by the server): the message is
        # stored, so a retry of its id is answered by another worker.
        if task in _cut and task.uncancel() == 0:
            raise ServerDraining() from None
        raise
    finally:
        _answering.pop(task, None)
        cut = task in _cut
        _cut.discard(task)
        if heartbeat is not None:
            heartbeat.cancel()
        # A cut turn's lease is left to lapse (TURN_LEASE_SECONDS) rather than released: its
        # last database write may still be running on a worker thread, and a retry must find
        # its reply, if it lands, instead of answering a second time.
        if begun.lease is not None and not cut:
            await begun.lease.arelease()


def cut_turns_in_flight() -> int:
    """Stop the turns still running in this process (the drain's deadline); how many there were.

    Each answers 503 server_draining. Whatever the turn stored stays (its message, the tool
    calls that ran); the retry of its message id is answered by another worker.
    """
    running = list(_answering.items())
    for task, loop in running:
        loop.call_soon_threadsafe(_cut_turn, task)
    return len(running)


def _cut_turn(task: asyncio.Task) -> None:
    # On the turn's own loop: one that has just finished answering is left alone.
    if task in _answering:
        _cut.add(task)
        task.cancel()


def _count(begun: _Begun, result: TurnResult, seconds: float) -> None:
    """The turn in the metrics: answered, model_failed (the failure reply), limited (a limit's
    reply), or paused (staff have taken over; no reply). A retry given its first answer again
    is not a turn."""
    if result.paused:
        outcome = "paused"
    elif begun.stop_reply:
        outcome = "limited"
    elif result.failed:
        outcome = "model_failed"
    else:
        outcome = "answered"
    # The mode the turn ran in (as _answer chose it): a model failure that switched the
    # conversation to the guided flow still counts as a model turn.
    ran_model = begun.conversation.mode == Conversation.Mode.MODEL and openai_client.is_configured()
    mode = Conversation.Mode.MODEL if result.failed or ran_model else Conversation.Mode.GUIDED
    metrics.count_turn(channel=Conversation.ChannelKind.CHAT, mode=mode, outcome=outcome, seconds=seconds)


async def _answer(begun: _Begun, text: str, started: float, message_id: str | None) -> TurnResult:
    conversation, stop_reply = begun.conversation, begun.stop_reply
    # A resumed message is in the transcript already: publishing it again would show it twice.
    if not begun.resumed:
        await live.apublish(
            conversation,
            {
                "kind": "message",
                "role": Message.Role.CUSTOMER,
                "text": text,
                "channel": Conversation.ChannelKind.CHAT.value,
            },
        )
    if conversation.taken_over_by_id:
        return TurnResult(conversation, "", paused=True)
    if stop_reply:
        await db(_finish_turn, conversation=conversation, reply=stop_reply, latency_ms=0, message_id=message_id)
        result = TurnResult(conversation, stop_reply)
    elif conversation.mode == Conversation.Mode.MODEL and openai_client.is_configured():
        result = await _model_turn(conversation, text, begun.instructions, started, message_id)
    else:
        result = await db(_guided_turn, conversation, text, started, message_id)
    for outcome in result.outcomes:
        await live.apublish(conversation, {"kind": "tool_call", **outcome.summary()})
    await live.apublish(
        conversation,
        {"kind": "message", "role": Message.Role.ASSISTANT, "text": result.reply, "latency_ms": result.latency_ms},
    )
    return result
