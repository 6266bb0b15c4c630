"""Call records: what a call writes to the conversation record, and the per-call writer that runs it.

The functions here are sync and run through `db()`, off the event loop: `VoiceCall` queues them
on its `CallWriter` (transcripts, usage, the call's end), so the audio path never waits on the
database, and everything is stored as it happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatdesk.assistant.costs import RealtimeUsage
from chatdesk.assistant.prompts import system_prompt
from chatdesk.conversations import live, model_items, record
from chatdesk.conversations.models import Conversation, Message
from chatdesk.conversations.selectors import open_conversation_for
from chatdesk.conversations.services import conversation_create, db
from voice import realtime

logger = logging.getLogger(__name__)


class CallRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# A live-monitor update to send once a write is done: (the conversation, the event).
LiveEvent = tuple[Conversation, dict[str, Any]]


@dataclass(frozen=True)
class CallStart:
    conversation_id: int
    number: str
    session_id: str
    instructions: str
    prior_items: list[dict]
    continued: bool
    live: LiveEvent


def _what_came_before(conversation: Conversation) -> str:
    """NEW when the customer has said nothing in it yet, else AFTER_CHAT (typed) or AFTER_CALL."""
    spoke = set(
        Message.objects.filter(conversation=conversation, role=Message.Role.CUSTOMER)
        .values_list("channel", flat=True)
        .distinct()
    )
    if Conversation.ChannelKind.CHAT in spoke:
        return realtime.AFTER_CHAT
    return realtime.AFTER_CALL if spoke else realtime.NEW


def call_begin(*, session_id: str, ip: str, user_agent: str, widget_page: str | None = None) -> CallStart:
    """Continue the customer's conversation, or start a voice one; note the call in it.

    Only a conversation in which the customer has already said something is continued: an
    untouched one (a chat page opened but never typed in) holds nothing but a greeting the
    caller may never have seen, so the call is a new voice conversation, recorded as one.
    """
    now = timezone.now()
    conversation = open_conversation_for(session_id).first()
    if conversation is not None and conversation.taken_over_by_id:
        raise CallRefused("taken_over", "A team member is answering you in the chat. Please continue by typing.")
    before = _what_came_before(conversation) if conversation is not None else realtime.NEW
    if before == realtime.NEW:
        conversation = None
    with transaction.atomic():
        if conversation is None:
            conversation = conversation_create(
                channel=Conversation.ChannelKind.VOICE,
                mode=Conversation.Mode.MODEL,
                model=settings.OPENAI_REALTIME_MODEL,
                ip=ip,
                user_agent=user_agent,
                has_call=True,
                widget_page=widget_page,
            )
        started = Message.objects.create(
            conversation=conversation, role=Message.Role.EVENT, text="Voice call started.", channel="voice"
        )
        record.count_message(conversation.pk, last_activity_at=now, has_call=True)
    continued = before != realtime.NEW
    return CallStart(
        conversation_id=conversation.pk,
        number=conversation.number,
        session_id=conversation.session_id,
        instructions=realtime.instructions(system_prompt(now), before=before),
        prior_items=realtime.conversation_items(conversation.model_items) if continued else [],
        continued=continued,
        live=(conversation, live.message_event(started)),
    )


def save_utterance(
    *,
    conversation_id: int,
    role: str,
    text: str,
    item_id: str,
    latency_ms: int | None,
    cost: Decimal | None,
    interrupted: bool,
    generated: str = "",
) -> LiveEvent:
    """Store one spoken utterance and add it to the model history the text chat continues from.

    `text` is what the caller heard; `generated`, when the caller cut in, all the model said.
    """
    item = model_items.user_item(text) if role == Message.Role.CUSTOMER else model_items.assistant_item(text)
    if not text and generated:
        # Nothing of it was heard: not a line of the transcript, but kept (as an event) for audit.
        role, text = Message.Role.EVENT, unheard_note(generated)
    with transaction.atomic():
        message = Message.objects.create(
            conversation_id=conversation_id,
            role=role,
            text=text,
            generated_text=generated,
            item_id=item_id[:100],
            latency_ms=latency_ms,
            cost_usd=cost,
            interrupted=interrupted,
            channel="voice",
        )
        # Appended to the history as stored now: a text turn in another tab may be appending too.
        record.append_model_items(
            conversation_id,
            [item] if role != Message.Role.EVENT else [],
            messages=1,
            last_activity_at=timezone.now(),
        )
    return Conversation.objects.get(pk=conversation_id), live.message_event(message)


def unheard_note(generated: str) -> str:
    return f"The caller cut in before hearing any of this reply: {generated}"


def trim_utterance(*, conversation_id: int, item_id: str, heard: str, generated: str) -> None:
    """A stored assistant line turned out to be cut off: keep what was heard, the rest for audit.

    The model history the text chat continues from gets the heard part too, so a text turn after
    the call does not build on words the caller never heard.
    """
    stored = {"text": heard} if heard else {"role": Message.Role.EVENT, "text": unheard_note(generated)}
    with transaction.atomic():
        Message.objects.filter(conversation_id=conversation_id, item_id=item_id[:100], channel="voice").update(
            generated_text=generated, interrupted=True, **stored
        )
        record.replace_model_item(
            conversation_id,
            model_items.assistant_item(generated),
            model_items.assistant_item(heard) if heard else None,
        )


def update_utterance(*, conversation_id: int, item_id: str, **fields: object) -> None:
    Message.objects.filter(conversation_id=conversation_id, item_id=item_id[:100], channel="voice").update(**fields)


def add_usage(*, conversation_id: int, usage: RealtimeUsage) -> None:
    spent = record.Usage(
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        audio_input_tokens=usage.audio_input_tokens,
        audio_output_tokens=usage.audio_output_tokens,
        cost=usage.cost,
        price_missing=usage.price_missing,
    )
    record.add_usage(conversation_id, spent, breakdown=usage.breakdown)


def call_end(
    *, conversation_id: int, reason: str, seconds: int, failure: str = "", failure_kind: str = ""
) -> LiveEvent:
    """Record why the call ended. The conversation stays open: the customer may keep typing.

    `failure_kind` (Message.FailureKind) puts a model failure in the same by-kind counts as text.
    """
    text = f"Voice call ended ({reason}) after {seconds} s."
    if failure:
        text += f" {failure[:200]}"
    message = Message.objects.create(
        conversation_id=conversation_id, role=Message.Role.EVENT, text=text, channel="voice", failure_kind=failure_kind
    )
    record.count_message(conversation_id, failure=failure, end_reason=reason, last_activity_at=timezone.now())
    return Conversation.objects.get(pk=conversation_id), live.message_event(message)


def realtime_failure_kind(detail: str) -> str:
    """The Message.FailureKind of a failed Realtime reply, from its "code: message" detail."""
    code = detail.split(":", 1)[0].strip().lower()
    if "rate_limit" in code:
        return Message.FailureKind.RATE_LIMITED
    if code in ("invalid_request_error", "invalid_value", "bad_request"):
        return Message.FailureKind.BAD_REQUEST
    return Message.FailureKind.SERVER_ERROR


def reply_failed(*, conversation_id: int, detail: str) -> LiveEvent:
    """Record a reply the model failed to give (the caller was asked to say it again)."""
    message = Message.objects.create(
        conversation_id=conversation_id,
        role=Message.Role.EVENT,
        text=f"A voice reply failed ({detail[:200]}); the caller was asked to say it again.",
        channel="voice",
        failure_kind=realtime_failure_kind(detail),
    )
    record.count_message(conversation_id, failure=f"Realtime reply failed: {detail}", last_activity_at=timezone.now())
    return Conversation.objects.get(pk=conversation_id), live.message_event(message)


def _run_batch(batch: list[tuple[Callable[..., Any], dict[str, Any]]]) -> list[LiveEvent]:
    updates = []
    for fn, kwargs in batch:
        try:
            update = fn(**kwargs)
        except Exception:
            # One failed write must not lose the others (or the call).
            logger.exception("Voice call write %s failed", fn.__name__)
            continue
        if update is not None:
            updates.append(update)
    return updates


async def publish(updates: list[LiveEvent]) -> None:
    """Tell staff on the live monitor, from the event loop.

    Never from the database threads (live.publish there): at shutdown the loop stops
    before the threads are joined, and a thread waiting on the loop would hang the exit.
    """
    for conversation, event in updates:
        await live.apublish(conversation, event)


class CallWriter:
    """Runs a call's database writes in order, in the background, batched per thread trip."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[Callable[..., Any], dict[str, Any]] | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        self._queue.put_nowait((fn, kwargs))

    async def close(self, timeout: float) -> None:
        """Write what is queued, then stop (give up after `timeout` seconds)."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            logger.error("Voice call writes still pending after %s s; abandoning them", timeout)
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            ops = [op for op in batch if op is not None]
            if ops:
                try:
                    await publish(await db(_run_batch, ops))
                except Exception:
                    logger.exception("Voice call writes failed")
            if stop:
                return
