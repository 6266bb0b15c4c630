"""Live updates over the Channels layer: staff watch conversations, customers see staff replies.

Two kinds of groups:
- `monitor`: every staff member on the live monitor; gets a summary of every change.
- `conversation-<id>`: one conversation; its customer page and the staff watching it.

With REDIS_URL set the layer is Redis, so a customer served by one server process and
a staff member served by another see each other's messages. Publishing never raises:
a live view is a convenience, the database rows are the record.

A reply is relayed as the model writes it (ReplyStream): `reply_delta` events carry each new
piece of text, `reply_broken` says a reply broke off and its words so far are void. They go
to the conversation's group only (the monitor's summary does not change while a reply is
written); the stored message, and the turn's answer, are the final text.

When Redis is unreachable the live parts say so instead of failing: the live sockets close
with LIVE_UNAVAILABLE_CLOSE (chatdesk/web/consumers.py; the pages retry and fetch what they
missed), and taking a conversation over or replying as staff is refused with LiveUnavailable
(503, Retry-After), since the customer would not see the reply. Chat turns go on: publishing
only logs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from decimal import Decimal

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import RedisError

from bookings.errors import DomainError
from chatdesk.conversations.models import Conversation, Message

logger = logging.getLogger(__name__)

MONITOR_GROUP = "monitor"

# How a channel layer that cannot reach Redis fails (refused, reset, timed out).
LAYER_ERRORS = (RedisError, OSError, TimeoutError)
# The close code of a live socket when live updates are unavailable; static/chat.js and
# static/staff-live.js know it (4000-4999 are the application's own codes).
LIVE_UNAVAILABLE_CLOSE = 4503
# How long a client is told to wait before trying again.
LIVE_RETRY_AFTER_SECONDS = 10
# A layer check never waits longer than this.
_REACHABLE_TIMEOUT_SECONDS = 3


class _LayerOutage:
    """Whether this process has seen the layer fail since it last worked: an outage is logged
    at WARNING once, not once per message, socket and retry (those go to DEBUG)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down = False

    def failed(self, what: str, error: BaseException) -> None:
        with self.lock:
            first, self.down = not self.down, True
        level = logging.WARNING if first else logging.DEBUG
        logger.log(level, "Live updates unavailable (%s): %s: %s", what, type(error).__name__, error)

    def worked(self) -> None:
        if not self.down:
            return
        with self.lock:
            was, self.down = self.down, False
        if was:
            logger.warning("Live updates are back")


layer_outage = _LayerOutage()


class LiveUnavailable(DomainError):
    code = "live_unavailable"
    http_status = 503
    retry_after = LIVE_RETRY_AFTER_SECONDS

    def __init__(self, message: str = "Live updates are unavailable right now. Please try again shortly.") -> None:
        super().__init__(message)


async def alayer_reachable() -> bool:
    """Whether the channel layer can deliver now: a PING to Redis; the in-memory layer always can."""
    layer = get_channel_layer()
    if layer is None:
        return False
    connection = getattr(layer, "connection", None)  # channels_redis: one Redis client per shard
    if connection is None:
        return True
    try:
        async with asyncio.timeout(_REACHABLE_TIMEOUT_SECONDS):
            for index in range(getattr(layer, "ring_size", 1)):
                await connection(index).ping()
    except LAYER_ERRORS as error:
        layer_outage.failed("layer check", error)
        return False
    layer_outage.worked()
    return True


def require_live() -> None:
    """Raise LiveUnavailable unless live updates can reach the customer now (sync callers)."""
    if not async_to_sync(alayer_reachable)():
        raise LiveUnavailable()


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def message_event(message: Message) -> dict:
    return {
        "kind": "message",
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "channel": message.channel,
        "at": message.created_at.isoformat() if message.created_at else None,
        "interrupted": message.interrupted,
    }


def summary(conversation: Conversation) -> dict:
    return {
        "number": conversation.number,
        "channel": conversation.channel,
        "status": conversation.status,
        "mode": conversation.mode,
        "message_count": conversation.message_count,
        "booking_count": conversation.booking_count,
        "cost_usd": str(conversation.cost_usd.quantize(Decimal("0.0001"))),
        "taken_over": bool(conversation.taken_over_by_id),
    }


async def apublish(conversation: Conversation, event: dict, *, monitor: bool = True) -> None:
    """Send `event` to the conversation's group and (with `monitor`) a summary to the monitor."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            conversation_group(conversation.pk),
            {"type": "live.event", "via": "conversation", "conversation": conversation.number, "event": event},
        )
        if not monitor:
            return
        await layer.group_send(
            MONITOR_GROUP,
            {
                "type": "live.event",
                "via": "monitor",
                "conversation": conversation.number,
                "event": {"kind": event.get("kind"), "role": event.get("role")},
                "summary": summary(conversation),
            },
        )
    except LAYER_ERRORS as error:  # Redis is down: one line per outage, not a traceback per message
        layer_outage.failed(f"update for {conversation.number} not sent", error)
        return
    except Exception:  # a broken layer must not break a customer's turn
        logger.exception("Live update for %s failed", conversation.number)
        return
    layer_outage.worked()


def publish(conversation: Conversation, event: dict) -> None:
    """Sync flavour, for services running in worker threads and the admin."""
    async_to_sync(apublish)(conversation, event)


class ReplyStream:
    """Relays one turn's reply to the conversation's group as the model writes it.

    The model's stream calls `response_started` and `text_delta` (chatdesk.assistant.openai_client.
    ReplyListener) between two reads, so neither waits: the text is sent by one task per turn,
    in order. The first piece goes out at once; after that, at most one event per
    REPLY_STREAM_INTERVAL_SECONDS, carrying every piece written meanwhile. A model writes an event
    every 10-30 ms; one layer message each was 2,500 a second for a worker relaying 100 replies,
    more than channels_redis delivers (bench/streaming.py), and 0.1 s is still smooth reading.

    Events (to the conversation's group only): `reply_delta` with the customer's `message_id`
    (the page shows only its own turn's reply), `part` (one per model response in the turn:
    a new part's text replaces the previous one's, e.g. "Let me check..." before a tool call,
    then the answer), `offset` (where `delta` goes in the part's text) and `delta`;
    `reply_broken` when the stream broke off, so that its words are not left on screen as if
    they were the reply. The final text then comes as the turn's answer (and `message` event).
    """

    def __init__(self, conversation: Conversation, message_id: str | None) -> None:
        self.conversation = conversation
        self.message_id = message_id or ""
        # Each part's text so far: a part's last words still go out after the next part began.
        self.parts: list[str] = []
        # How far the sender has come: which part, and how much of its text.
        self._sent_part = 0
        self._sent = 0
        self._sender: asyncio.Task | None = None
        # When the next event may go (event-loop time); flush() sends at once.
        self._next_at = 0.0
        self._hurry = asyncio.Event()
        # Whether any words of this turn went out (then a failure must take them back).
        self.wrote = False

    @property
    def part(self) -> int:
        return len(self.parts) - 1

    def response_started(self) -> None:
        self.parts.append("")

    def text_delta(self, delta: str) -> None:
        if not delta:
            return
        if not self.parts:
            self.parts.append("")
        self.wrote = True
        self.parts[-1] += delta
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    def _unsent(self) -> bool:
        return self._sent_part < self.part or (
            self._sent_part == self.part and self._sent < len(self.parts[self._sent_part])
        )

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while self._unsent():
            if self._sent >= len(self.parts[self._sent_part]):
                self._sent_part, self._sent = self._sent_part + 1, 0  # on to the next part
                continue
            wait = self._next_at - loop.time()
            if wait > 0 and not self._hurry.is_set():
                # Pieces written meanwhile go together in the next event.
                try:
                    async with asyncio.timeout(wait):
                        await self._hurry.wait()
                except TimeoutError:
                    pass
            part, offset = self._sent_part, self._sent
            delta = self.parts[part][offset:]
            self._sent = offset + len(delta)
            self._next_at = loop.time() + settings.REPLY_STREAM_INTERVAL_SECONDS
            await apublish(
                self.conversation, self._event("reply_delta", part=part, offset=offset, delta=delta), monitor=False
            )

    async def broken(self) -> None:
        """Say that the reply broke off (after what was already written went out)."""
        await self.flush()
        await apublish(self.conversation, self._event("reply_broken"), monitor=False)

    async def flush(self) -> None:
        """Send what is written so far now, and wait until it has gone (before the turn's final
        events)."""
        self._hurry.set()
        if self._sender is not None:
            await self._sender
        self._hurry.clear()

    def _event(self, kind: str, **fields: object) -> dict:
        return {
            "kind": kind,
            "role": Message.Role.ASSISTANT,
            "message_id": self.message_id,
            "part": self.part,
            **fields,
        }
