"""One request id per HTTP request and per WebSocket connection, for the log lines.

An ASGI middleware around the whole application (chatdesk.asgi), so every door gets one:
Django's views, the chat and staff live sockets and voice calls. The id is put in the context
(chatdesk.observability.context.request_id) for the request's task, the threads it hands
database work to and the tasks a call spawns, and sent back in the `X-Request-ID` response
header of HTTP requests.

A proxy in front (nginx's `$request_id`) may send its own id in `X-Request-ID`, so its
access log and ours name the same request: it is used only when the peer is one of
TRUSTED_PROXIES (as X-Forwarded-For is) and looks like an id (1-64 of A-Z a-z 0-9 . _ -).
Anyone else's header is ignored and a fresh id is made: a client must not be able to write
into our logs, or make two requests look like one.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from chatdesk.conversations.client_ip import is_trusted_proxy
from chatdesk.observability import context

HEADER = b"x-request-id"
VALID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def request_id_for(scope: dict[str, Any]) -> str:
    """The id of this request: the trusted proxy's, or a new one (32 hex digits)."""
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            client = scope.get("client") or ("", 0)
            if VALID.fullmatch(value) and is_trusted_proxy(client[0] or ""):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each HTTP request and WebSocket connection its id, and echoes it on HTTP responses."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)  # lifespan
            return
        request_id = request_id_for(scope)
        token = context.request_id.set(request_id)
        try:
            if kind == "websocket":
                # Frames go straight through: a call sends 25 audio frames a second.
                await self.app(scope, receive, send)
                return
            header = (HEADER, request_id.encode("ascii"))

            async def send_with_id(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), header]
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            context.request_id.reset(token)
