"""The context every log line carries: the request (or WebSocket connection) and the conversation.

Context variables, so each request's task, the threads it hands database work to (asgiref
copies the context) and the tasks a call spawns see their own values, and concurrent
requests never see each other's. chatdesk.log_lines reads them into every line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Set per HTTP request and per WebSocket connection by chatdesk.request_ids.
request_id: ContextVar[str] = ContextVar("chatdesk_request_id", default="")
# The conversation's number (INT-...), never its session id: that is the customer's bearer token.
conversation_number: ContextVar[str] = ContextVar("chatdesk_conversation_number", default="")


@contextmanager
def conversation(number: str) -> Iterator[None]:
    """Log lines inside this block name conversation `number`."""
    token = conversation_number.set(number)
    try:
        yield
    finally:
        conversation_number.reset(token)
