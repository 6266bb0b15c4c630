"""Log lines: JSON (one object a line, production) or text (DEBUG, make run), both scrubbed.

settings.LOGGING puts every handler's output through one of the two formatters below
(LOG_FORMAT). Each line carries the request id (chatdesk.request_ids) and the conversation
number (INT-..., set by the turn engine and voice calls) from chatdesk.observability.context.

What never reaches a log line, whoever logs it (our code, Django, uvicorn's access log,
a traceback): a phone number (chatdesk.conversations.pii's definition: 7-15 digits as people
type them; IPv4 addresses, dates, booking and conversation numbers are left alone) and a
secret: the customer's session id (the bearer token of a conversation, in API paths, JSON
and cookies), calendar feed tokens (the credential in the feed URL), CSRF tokens, cookies and
Authorization headers. The scrub runs on the finished text, so arguments and exception
messages are covered too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from datetime import UTC, datetime

from chatdesk.conversations.pii import PHONE_RUN, is_phone_number
from chatdesk.observability import context

MASK = "•••"

# A dotted IPv4 address reads as a 7-12 digit run to the phone rule: an access log's client
# address is not a phone number.
IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?")

# (pattern, replacement) for secrets; group 1 is what stays (the name or the path before it).
SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    # The chat API's session paths: /api/v1/chat/session/<session_id>/history, /close.
    (re.compile(r"(/session/)(?!new\b)[A-Za-z0-9_-]+"), r"\1" + MASK),
    # A calendar feed's secret URL: /calendar/<token>.ics.
    (re.compile(r"(/calendar/)[^/\s\"'?]+(?=\.ics)"), r"\1" + MASK),
    # name=value, name: value, "name": "value" for the names that hold secrets.
    (
        re.compile(
            r"""((?:session_id|sessionid|chatdesk_session|csrftoken|csrfmiddlewaretoken|token|api_key|password|secret)"""
            r"""["']?\s*[:=]\s*["']?)[^"'\s,;&}]+""",
            re.IGNORECASE,
        ),
        r"\1" + MASK,
    ),
    # Headers: Authorization (Bearer or Basic) and whole Cookie headers.
    (re.compile(r"(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic)?\s*)[^\s\"',]+", re.IGNORECASE), r"\1" + MASK),
    (re.compile(r"(cookie[\"']?\s*[:=]\s*[\"']?)[^\"'\n]+", re.IGNORECASE), r"\1" + MASK),
)


def _phone(match: re.Match[str]) -> str:
    run = match.group()
    if IPV4.fullmatch(run.strip()) or not is_phone_number(run):
        return run
    return MASK


def scrub(text: str) -> str:
    """`text` with phone numbers and secrets masked."""
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return PHONE_RUN.sub(_phone, text)


class ContextFilter(logging.Filter):
    """Adds the request id and the conversation number to every record (as attributes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id.get()
        record.conversation = context.conversation_number.get()
        return True


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad %-format in someone's log call must not lose the line
        return f"{record.msg!r} {record.args!r}"


def _exception(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, conversation,
    pid, and the scrubbed traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(_message(record)),
            "request_id": getattr(record, "request_id", "") or context.request_id.get(),
            "conversation": getattr(record, "conversation", "") or context.conversation_number.get(),
            "pid": os.getpid(),
        }
        exception = _exception(record)
        if exception:
            line["exception"] = scrub(exception)
        if record.stack_info:
            line["stack"] = scrub(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines for a person at a terminal, scrubbed like the JSON ones:
    `LEVEL logger [request conversation] message`."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "") or context.request_id.get()
        conversation = getattr(record, "conversation", "") or context.conversation_number.get()
        where = " ".join(part for part in (request_id[:8], conversation) if part)
        text = f"{record.levelname} {record.name} {'[' + where + '] ' if where else ''}{_message(record)}"
        exception = _exception(record)
        if exception:
            text += "\n" + exception
        if record.stack_info:
            text += "\n" + record.stack_info
        return scrub(text)
