"""The browser's end of a voice call: a thin Channels consumer over voice.calls.VoiceCall."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from chatdesk.conversations.client_ip import scope_client_ip
from chatdesk.conversations.widget_pages import NotAWidgetPage, host_page
from voice.calls import VoiceCall
from voice.wire import SERVICE_RESTART


class VoiceCallConsumer(AsyncWebsocketConsumer):
    """One WebSocket per call (voice/PROTOCOL.md); all behaviour lives in VoiceCall."""

    call: VoiceCall | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # Replaces AsyncConsumer.__call__: a call needs no channel layer (it talks only to its
        # browser and to OpenAI), and a plain receive loop avoids scheduling a task per frame.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            # The server is shutting down (daphne cancels every application, then waits for
            # them): end the call properly so its end is recorded, then stop.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if self.call is not None:
                await self.call.finish("server_shutdown", SERVICE_RESTART)
            raise

    async def dispatch(self, message: dict) -> None:
        # AsyncConsumer.dispatch also runs close_old_connections() in Django's one shared sync
        # thread before *every* message: at 25 audio frames a second per call that thread would
        # serialize every call in the process. This consumer touches no database connection;
        # VoiceCall does its database work through chatdesk.conversations.services.db.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        # Accepted first, so that refusals (no key, limits) reach the browser with a reason and a
        # close code; the Origin check happened before this, during the handshake.
        await self.accept()
        headers = dict(self.scope.get("headers") or [])
        self.call = VoiceCall(
            self,
            ip=scope_client_ip(self.scope),
            user_agent=headers.get(b"user-agent", b"").decode("latin-1"),
            cookies=self.scope.get("cookies") or {},
            widget_page=_widget_page(self.scope, headers),
        )
        self.call.start()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.call is not None:
            await self.call.receive(text_data, bytes_data)

    async def disconnect(self, code: int) -> None:
        if self.call is not None:
            await self.call.browser_gone(code)

    # voice.wire.Browser
    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def send_audio(self, pcm: bytes) -> None:
        await self.send(bytes_data=pcm)


def _widget_page(scope: dict, headers: dict[bytes, bytes]) -> str | None:
    """A call placed from the website widget: its host page (checked; "" when unusable), else None.

    The widget's chat page puts `?widget_page=` on the call's URL (templates/voice_call.html), so
    a call that starts the conversation records it as a widget one, as chat.js does for text.
    """
    values = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True).get("widget_page")
    if values is None:
        return None
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    own = f"{scheme}://{headers.get(b'host', b'').decode('latin-1')}"
    try:
        return host_page(values[0], own_origin=own) if values[0] else ""
    except NotAWidgetPage:
        return ""
