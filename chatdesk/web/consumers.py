"""Live WebSocket consumers: thin; the events come from chatdesk.conversations.live."""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from chatdesk.conversations import access, live, pii
from chatdesk.conversations.models import Conversation, Message
from chatdesk.conversations.selectors import open_conversation_for
from chatdesk.conversations.session_cookie import session_id_from_cookies

# Events a customer may see about their own conversation: what staff say, whether a person
# is with them, and the assistant's reply as it is written (live.ReplyStream). Their own
# messages and the assistant's final replies reach the page through the chat API response.
CUSTOMER_VISIBLE = {
    ("message", Message.Role.STAFF),
    ("takeover", None),
    ("reply_delta", Message.Role.ASSISTANT),
    ("reply_broken", Message.Role.ASSISTANT),
}
# What a reply's events carry to the customer's page (docs/websockets.md).
REPLY_FIELDS = ("message_id", "part", "offset", "delta")

logger = logging.getLogger(__name__)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """A live socket that closes with live.LIVE_UNAVAILABLE_CLOSE when the channel layer fails.

    Without Redis, joining a group (on connect) or waiting for the next event (at any time)
    raises; uncaught, that was an HTTP 500 on the handshake or a bare 1006. The pages know the
    code: they say live updates are unavailable, keep working, and try again later.
    """

    accepted = False

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        try:
            await super().__call__(scope, receive, send)
        except live.LAYER_ERRORS as error:
            live.layer_outage.failed(f"socket {scope.get('path')} closed with {live.LIVE_UNAVAILABLE_CLOSE}", error)
            try:
                if not self.accepted:
                    # Accept first: a close before accepting reaches the browser as a bare 1006.
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": live.LIVE_UNAVAILABLE_CLOSE})
            except Exception:  # the client went away meanwhile: nothing to tell
                logger.debug("The live socket was gone before it could be told", exc_info=True)

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler, through
        # sync_to_async on Django's one shared sync thread: for every piece of a streamed
        # reply, on every socket, all queued behind each other on that thread (bench/
        # streaming.py: first words 200-500 ms late with 100 conversations). Live events
        # touch no database (what does goes through database_sync_to_async, which closes
        # old connections itself), so they are handled right here on the event loop.
        if message.get("type") == "live.event":
            await self.live_event(message)
            return
        await super().dispatch(message)

    async def live_event(self, message: dict) -> None:
        raise NotImplementedError

    async def accept(self, subprotocol=None, headers=None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def join(self, group: str) -> None:
        """Join a group; raises (and the socket closes with 4503) when the layer is down."""
        await self.channel_layer.group_add(group, self.channel_name)
        live.layer_outage.worked()

    async def leave(self, group: str) -> None:
        """Leave a group on the way out; without Redis the membership just expires there."""
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except live.LAYER_ERRORS:
            pass


class CustomerLiveConsumer(LiveConsumer):
    """The customer's page listens here for staff replies (the session cookie says which chat)."""

    async def connect(self) -> None:
        session_id = session_id_from_cookies(self.scope.get("cookies", {}))
        self.conversation = await self._open_conversation(session_id)
        if self.conversation is None:
            # Accept first: a close before accepting reaches the browser as a bare 1006.
            await self.accept()
            await self.close(code=4404)
            return
        self.group = live.conversation_group(self.conversation.pk)
        await self.join(self.group)
        await self.accept()
        await self.send_json({"type": "takeover", "taken_over": bool(self.conversation.taken_over_by_id)})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.leave(self.group)

    async def receive_json(self, content: dict, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def live_event(self, message: dict) -> None:
        event = message["event"]
        if message.get("via") != "conversation" or (event.get("kind"), event.get("role")) not in CUSTOMER_VISIBLE:
            return
        if event["kind"] == "takeover":
            await self.send_json({"type": "takeover", "taken_over": event["taken_over"]})
        elif event["kind"] in ("reply_delta", "reply_broken"):
            await self.send_json({"type": event["kind"], **{k: event[k] for k in REPLY_FIELDS if k in event}})
        else:
            await self.send_json({"type": "staff_message", "text": event["text"], "at": event.get("at")})

    @database_sync_to_async
    def _open_conversation(self, session_id: str) -> Conversation | None:
        return open_conversation_for(session_id).first()


class StaffLiveConsumer(LiveConsumer):
    """Staff watch every open conversation's summary, and one conversation in full.

    The staff policy (chatdesk.conversations.access) decides, as at the staff API: connecting
    and watching need chatdesk.view_conversation (checked again at each watch, against the
    account as it is now, so a revoked permission stops the next watch), and every push goes
    through the member's Visibility (contact details masked, costs null, as they may see).
    """

    async def connect(self) -> None:
        self.seen = await self._visibility()
        if self.seen is None:
            await self.close(code=4403)
            return
        self.watching: str | None = None
        # The reply being written in the watched conversation, as far as it has come: staff get
        # its whole text each time, masked as a whole (a phone number can span two pieces).
        self.writing: tuple[str, int] | None = None
        self.written_from, self.written = 0, ""
        await self.join(live.MONITOR_GROUP)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.leave(live.MONITOR_GROUP)
        if getattr(self, "watching", None):
            await self.leave(self.watching)

    async def receive_json(self, content: dict, **kwargs) -> None:
        if content.get("type") != "watch":
            await self.send_json({"type": "error", "message": "Unknown message type."})
            return
        seen = await self._visibility(fresh=True)
        if seen is None:
            await self.send_json({"type": "error", "message": "You may not view conversations."})
            await self.close(code=4403)
            return
        self.seen = seen
        conversation_id = await self._conversation_id(str(content.get("conversation", ""))[:20])
        if conversation_id is None:
            await self.send_json({"type": "error", "message": "No such conversation."})
            return
        if self.watching:
            await self.channel_layer.group_discard(self.watching, self.channel_name)
        self.writing, self.written_from, self.written = None, 0, ""
        self.watching = live.conversation_group(conversation_id)
        await self.join(self.watching)
        await self.send_json({"type": "watching", "conversation": content.get("conversation")})

    async def live_event(self, message: dict) -> None:
        # The monitor group carries a summary of every change (with the conversation's
        # totals); the watched conversation's group carries the full event.
        if message.get("via") == "monitor":
            summary = self.seen.present(message["summary"])
            await self.send_json({"type": "summary", "conversation": message["conversation"], **summary})
        else:
            event = self.seen.present(self._whole_reply(message["event"]))
            await self.send_json({"type": "event", "conversation": message["conversation"], "event": event})

    def _whole_reply(self, event: dict) -> dict:
        """A `reply_delta` as the reply's text so far (`text`); other events as they are."""
        if event.get("kind") != "reply_delta":
            return event
        writing = (event.get("message_id", ""), event.get("part", 0))
        offset = event.get("offset", 0)
        if writing != self.writing or offset != self.written_from + len(self.written):
            # A new reply or part, or pieces missed (watching began mid-reply): from here on.
            self.writing, self.written_from, self.written = writing, offset, ""
        self.written += event.get("delta", "")
        text = self.written if self.seen.pii else pii.settled_part(self.written)
        rest = {k: v for k, v in event.items() if k not in ("offset", "delta")}
        return {**rest, "text": ("…" if self.written_from else "") + text}

    @database_sync_to_async
    def _visibility(self, fresh: bool = False) -> access.Visibility | None:
        """What this member may see, or None if they may not view conversations at all."""
        user = self.scope.get("user")
        if fresh and user is not None and user.is_authenticated:
            # The scope's user was loaded at connect, permissions cached with it.
            user = get_user_model()._default_manager.filter(pk=user.pk).first()
        if not access.may(user, access.VIEW_CONVERSATIONS):
            return None
        return access.Visibility.of(user)

    @database_sync_to_async
    def _conversation_id(self, number: str) -> int | None:
        return Conversation.objects.filter(number=number).values_list("pk", flat=True).first()
