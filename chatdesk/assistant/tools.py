"""The assistant's function tools: one registry for text chat, voice and the guided flow.

Contract of every tool (see `Tool`):
- `parameters` is a strict JSON schema (every property required, optional ones nullable,
  no additional properties), sent to the model as is.
- Arguments are validated in Python (the schema again with jsonschema, then the business
  rules in bookings.services); a bad call becomes a structured result
  `{"error": code, "message": ...}` the model can recover from, never an exception.
- The body only calls bookings.services / bookings.selectors.
- The result carries only what the customer may see: technicians' public names, never
  their phone, pay or home address; a booking only to whoever gives its number and phone.

`execute_tool_call` runs one call and records it as a ToolCall row. A call_id already
recorded for the conversation returns the first result instead of acting twice.

This module holds the schemas the model sees, the registry and the execution; the tool bodies
are chatdesk/assistant/tool_bodies.py, the failed-lookup limit chatdesk/assistant/lookup_guard.py.

Limits every door shares (text chat, voice, guided flow), each defined once:
- bookings per conversation: checked under a row lock on the conversation, in the
  transaction that books (`create_booking`);
- tool calls per model response and per customer turn: `tool_call_budget` says how many
  run, `refuse_tool_calls` records the rest with a structured error for the model;
- failed booking number + phone lookups per conversation and per client IP, counted in the
  shared cache (`LookupGuard`): past the limit, lookups are refused for a while.
"""

from __future__ import annotations

import json
import logging
import time as clock
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache, partial

import jsonschema
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings import limits
from bookings.errors import DomainError, InvalidInput
from bookings.text_messages import SMS_CONSENT_QUESTION
from chatdesk.assistant.date_grammar import WEEK_CHOICES
from chatdesk.assistant.date_words import WEEKDAY_NAMES
from chatdesk.assistant.tool_bodies import (
    ToolContext,
    cancel_booking,
    create_booking,
    get_available_services,
    get_available_time_slots,
    get_booking_info,
    get_service_details,
    get_technician_availability,
    request_human,
    reschedule_booking,
    resolve_date_tool,
)
from chatdesk.conversations import record
from chatdesk.conversations.models import Conversation, ToolCall
from chatdesk.observability import metrics

logger = logging.getLogger(__name__)

MAX_ARGUMENTS_CHARS = 8000
TOO_MANY_TOOL_CALLS = "too_many_tool_calls"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict
    run: Callable[[ToolContext, dict, str], dict]
    # Tools that change rows run in a transaction; read-only ones skip its two round trips.
    writes: bool = False

    def definition(self) -> dict:
        """The Responses API function tool."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": True,
        }

    def realtime_definition(self) -> dict:
        """The Realtime API function tool (flat, no `strict`)."""
        return {"type": "function", "name": self.name, "description": self.description, "parameters": self.parameters}


def _schema(properties: dict) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _str(description: str, max_length: int = 200, nullable: bool = False) -> dict:
    return {"type": ["string", "null"] if nullable else "string", "description": description, "maxLength": max_length}


DATE = _str("A calendar date YYYY-MM-DD. Get it from resolve_date; never compute dates yourself.", 10)
START = _str("The slot start exactly as returned by get_available_time_slots (ISO 8601 with offset).", 40)
SERVICE_ID = _str("The service_id from get_available_services.", 120)
BOOKING_NUMBER = _str("The booking number, like BK-2026-000123.", 20)
PHONE = _str("The customer's phone number as they gave it.", limits.MAX_PHONE_TYPED)
CONFIRMED = {
    "type": "boolean",
    "description": "True only after you read the details back and the customer said yes.",
}


def _nullable(kind: str, description: str, **rules) -> dict:
    return {"type": [kind, "null"], "description": description, **rules}


RESOLVE_DATE_PARAMETERS = _schema(
    {
        "text": _str("The customer's own words about the day, e.g. 'a week from Friday'.", 100, nullable=True),
        "weekday": _nullable("string", "Structured fallback: a weekday.", enum=[*WEEKDAY_NAMES, None]),
        "week": _nullable(
            "string",
            "With weekday: this (today included), coming (after today), next (as the customer said 'next'), "
            "next_week (the one in next week), after_next, last.",
            enum=[*WEEK_CHOICES, None],
        ),
        "month": _nullable(
            "integer", "Structured fallback: month 1-12 (with day, or with nth + weekday).", minimum=1, maximum=12
        ),
        "day": _nullable("integer", "Structured fallback: day of the month.", minimum=1, maximum=31),
        "year": _nullable("integer", "Only if the customer said the year.", minimum=2000, maximum=2100),
        "nth": _nullable(
            "integer",
            "With weekday (+ month): 1-5 for 'first'...'fifth', -1 for 'last'.",
            enum=[1, 2, 3, 4, 5, -1, None],
        ),
        "offset_days": _nullable("integer", "Days after the day named (or after today).", minimum=-366, maximum=366),
        "offset_weeks": _nullable("integer", "Weeks after the day named (or after today).", minimum=-52, maximum=52),
    }
)


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        Tool(
            "get_available_services",
            "List the services we offer with prices and durations, optionally for one trade.",
            _schema({"trade": _str("HVAC, Plumbing or Electrical; null for all.", 40, nullable=True)}),
            get_available_services,
        ),
        Tool(
            "get_service_details",
            "Details of one service: description, duration, price, minimum notice.",
            _schema({"service_id": SERVICE_ID}),
            get_service_details,
        ),
        Tool(
            "get_technician_availability",
            "Which technicians of a trade (or qualified for a service) are free on a date, with their free times.",
            _schema(
                {
                    "trade": _str("HVAC, Plumbing or Electrical.", 40),
                    "date": DATE,
                    "service_id": _str("Optional service_id to size the slots.", 120, nullable=True),
                }
            ),
            get_technician_availability,
        ),
        Tool(
            "get_available_time_slots",
            "Real free start times for a service on a date (or a range of up to 14 days), with who can come.",
            _schema(
                {
                    "service_id": SERVICE_ID,
                    "date": DATE,
                    "end_date": {**DATE, "type": ["string", "null"], "description": "Optional last date of a range."},
                    "technician_id": {"type": ["integer", "null"], "description": "Only this technician."},
                }
            ),
            get_available_time_slots,
        ),
        Tool(
            "create_booking",
            "Book a visit. Only after reading back service, technician, weekday + date + time, address and phone "
            "and getting a yes.",
            _schema(
                {
                    "service_id": SERVICE_ID,
                    "start": START,
                    "technician_id": {"type": ["integer", "null"], "description": "Technician the customer chose."},
                    "customer_name": _str("Full name.", limits.MAX_NAME),
                    "customer_phone": PHONE,
                    "customer_email": _str("Email for the confirmation, if given.", limits.MAX_EMAIL, nullable=True),
                    "sms_consent": {
                        "type": ["boolean", "null"],
                        "description": "The customer's answer to the text-message question, asked in exactly these "
                        f'words: "{SMS_CONSENT_QUESTION}" true for yes, false for no, null if not asked.',
                    },
                    "address": _str("Service address.", limits.MAX_ADDRESS),
                    "notes": _str("What the problem is, access notes.", limits.MAX_NOTES, nullable=True),
                    "customer_confirmed": CONFIRMED,
                }
            ),
            create_booking,
            writes=True,
        ),
        Tool(
            "get_booking_info",
            "Look up a booking. Needs the booking number AND the phone number on it.",
            _schema({"booking_number": BOOKING_NUMBER, "phone": PHONE}),
            get_booking_info,
        ),
        Tool(
            "cancel_booking",
            "Cancel a booking after the customer confirmed. Needs the booking number AND the phone on it.",
            _schema(
                {
                    "booking_number": BOOKING_NUMBER,
                    "phone": PHONE,
                    "reason": _str("Why, if they said.", limits.MAX_REASON, nullable=True),
                    "customer_confirmed": CONFIRMED,
                }
            ),
            cancel_booking,
            writes=True,
        ),
        Tool(
            "reschedule_booking",
            "Move a booking to another free slot after the customer confirmed. Needs number AND phone.",
            _schema(
                {
                    "booking_number": BOOKING_NUMBER,
                    "phone": PHONE,
                    "new_start": START,
                    "technician_id": {"type": ["integer", "null"], "description": "Optional technician."},
                    "customer_confirmed": CONFIRMED,
                }
            ),
            reschedule_booking,
            writes=True,
        ),
        Tool(
            "resolve_date",
            "The day the customer means, worked out by our server in our time zone: pass their words in text "
            "('next Friday', 'the 18th', 'a week from Friday', 'Boxing Day'); only if that comes back unresolved, "
            "pass structured parts instead. Never work out a date yourself. The answer's status says what to do: "
            "ok (use date), ambiguous (ask which of readings), past / beyond_horizon / closed (tell the customer "
            "the message, offer next_open). Read weekday + date back to the customer.",
            RESOLVE_DATE_PARAMETERS,
            resolve_date_tool,
        ),
        Tool(
            "request_human",
            "Ask staff to call the customer back (complaints, questions you cannot answer, or on request).",
            _schema(
                {
                    "reason": _str("Short reason.", 500),
                    "name": _str("Customer name, if known.", limits.MAX_NAME, nullable=True),
                    "phone": _str("Callback phone, if given.", limits.MAX_PHONE_TYPED, nullable=True),
                    "urgent": {"type": "boolean", "description": "True for safety issues or no heat in winter."},
                }
            ),
            request_human,
            writes=True,
        ),
    ]
}


def tool_definitions() -> list[dict]:
    return [tool.definition() for tool in TOOLS.values()]


def realtime_tool_definitions() -> list[dict]:
    return [tool.realtime_definition() for tool in TOOLS.values()]


@dataclass(frozen=True)
class ToolOutcome:
    call_id: str
    name: str
    result: dict
    error: str = ""
    booking_id: int | None = None

    @property
    def touched_booking(self) -> int | None:
        """The booking this call made, found, moved or cancelled, if it succeeded."""
        return self.booking_id if self.booking_id and not self.error else None

    @property
    def booked(self) -> bool:
        """True when this call made a booking."""
        return self.name == "create_booking" and self.touched_booking is not None

    @property
    def output(self) -> str:
        """The function_call_output string sent back to the model."""
        return json.dumps(self.result, default=str)

    def summary(self) -> dict:
        return {"name": self.name, "ok": not self.error, "error": self.error or None}


# Old tool names still answered: conversations stored before a rename hold the old name, and
# replay_conversations (or a model primed by such a transcript) may call it again.
TOOL_ALIASES: dict[str, str] = {"get_employee_availability": "get_technician_availability"}


def tool_named(name: str) -> Tool | None:
    """The tool a call names, by its current name or an old one (TOOL_ALIASES)."""
    return TOOLS.get(TOOL_ALIASES.get(name, name))


def _parse_arguments(tool: Tool | None, raw: str) -> dict:
    if tool is None:
        raise InvalidInput(f"Unknown tool. Available tools: {', '.join(TOOLS)}.")
    if len(raw) > MAX_ARGUMENTS_CHARS:
        raise InvalidInput("The arguments are too long.")
    try:
        args = json.loads(raw or "{}")
    except json.JSONDecodeError:
        raise InvalidInput("The arguments are not valid JSON.") from None
    if not isinstance(args, dict):
        raise InvalidInput("The arguments must be a JSON object.")
    # Optional arguments may be omitted by a non-strict caller (voice); treat as null.
    for name in tool.parameters["properties"]:
        args.setdefault(name, None)
    error = jsonschema.exceptions.best_match(_validator(tool.name).iter_errors(args))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        raise InvalidInput(f"Invalid {where}: {error.message[:200]}", field=where)
    return args


@cache
def _validator(tool_name: str) -> jsonschema.protocols.Validator:
    # Built once per tool: jsonschema.validate() re-checks the schema itself on every call,
    # which was a tenth of a two-tool turn's server CPU (bench/chat_turns.py).
    schema = TOOLS[tool_name].parameters
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _replayed(conversation_id: int, call_id: str) -> ToolOutcome:
    first = ToolCall.objects.get(conversation_id=conversation_id, call_id=call_id)
    if first.result is None:
        result = {"error": "in_progress", "message": "That call is still running."}
        return ToolOutcome(call_id, first.name, result, "in_progress")
    return ToolOutcome(call_id, first.name, first.result, first.error, first.booking_id)


def _new_row(conversation_id: int, call_id: str, name: str, raw_arguments: str) -> ToolCall:
    return ToolCall(
        conversation_id=conversation_id,
        call_id=call_id,
        name=(name or "")[:60],
        raw_arguments=raw_arguments[:MAX_ARGUMENTS_CHARS],
    )


def tool_call_budget(requested: int, *, ran_this_turn: int) -> int:
    """How many of the `requested` calls of one model response may run.

    At most CHAT_MAX_TOOL_CALLS_PER_RESPONSE of one response, and CHAT_MAX_TOOL_CALLS_PER_TURN
    over the customer's turn (every response answering one message, or one caller turn in
    voice); `ran_this_turn` is how many already ran. The first calls run, the rest are
    refused with `refuse_tool_calls`. Text chat and voice both ask here.
    """
    room = min(settings.CHAT_MAX_TOOL_CALLS_PER_RESPONSE, settings.CHAT_MAX_TOOL_CALLS_PER_TURN - ran_this_turn)
    return max(0, min(requested, room))


def refuse_tool_calls(*, conversation_id: int, calls: list[tuple[str, str, str]]) -> list[ToolOutcome]:
    """Record (call_id, name, raw_arguments) calls over the cap without running them.

    Each gets a ToolCall row with the error, so staff see what the model tried, and a
    structured result telling the model that the call was not run and what to do instead.
    """
    result = {
        "error": TOO_MANY_TOOL_CALLS,
        "message": (
            f"Not run: at most {settings.CHAT_MAX_TOOL_CALLS_PER_RESPONSE} tool calls per response and "
            f"{settings.CHAT_MAX_TOOL_CALLS_PER_TURN} per customer message. Answer with what you have, or ask the "
            "customer one clear question."
        ),
    }
    outcomes = []
    for call_id, name, raw_arguments in calls:
        call_id = (call_id or "")[:100]
        row = _new_row(conversation_id, call_id, name, raw_arguments or "")
        row.result, row.error = result, TOO_MANY_TOOL_CALLS
        if record.claim_tool_call(row):
            outcomes.append(ToolOutcome(call_id, name, result, TOO_MANY_TOOL_CALLS))
            _count_on_commit(name, TOO_MANY_TOOL_CALLS)
        else:
            outcomes.append(_replayed(conversation_id, call_id))
    return outcomes


def execute_tool_call(
    *,
    conversation: Conversation,
    call_id: str,
    name: str,
    raw_arguments: str,
    channel: str = Conversation.ChannelKind.CHAT,
) -> ToolOutcome:
    """Run one tool call for `conversation`, which came through `channel`, and record it.
    Never raises for bad input.

    The row is written before the tool runs: a replayed call_id (a retried request, a
    duplicated realtime event) finds it and gets the first result instead of acting twice.
    """
    call_id = (call_id or "")[:100]
    raw_arguments = raw_arguments or ""
    row = _new_row(conversation.pk, call_id, name, raw_arguments)
    if not record.claim_tool_call(row):
        return _replayed(conversation.pk, call_id)

    started = clock.perf_counter()
    tool = tool_named(name)
    args: dict = {}
    error = ""
    try:
        args = _parse_arguments(tool, raw_arguments)
        with transaction.atomic() if tool.writes else nullcontext():
            result = tool.run(
                ToolContext(conversation=conversation, now=timezone.now(), channel=channel), args, call_id
            )
    except DomainError as domain_error:
        result, error = domain_error.as_dict(), domain_error.code
    except Exception:
        # A bug in a tool must not end the conversation; the model gets a generic error.
        logger.exception("Tool %s failed for %s", name, conversation.number)
        result = {"error": "internal_error", "message": "That did not work. Apologise and offer a callback."}
        error = "internal_error"
    booking_id = result.pop("_booking_id", None)
    row.arguments, row.result, row.error, row.booking_id = args, result, error, booking_id
    row.duration_ms = int((clock.perf_counter() - started) * 1000)
    record.tool_call_done(row)
    _count_on_commit(name, error)
    return ToolOutcome(call_id, name, result, error, booking_id)


def _count_on_commit(name: str, error: str) -> None:
    """Count the call in the metrics once its row is committed (at once outside a transaction):
    replay_conversations runs calls in a transaction it rolls back, and those never happened.
    A name the model made up counts as "unknown", so the label stays a short fixed list."""
    tool = tool_named(name)
    transaction.on_commit(
        partial(metrics.count_tool_call, tool=tool.name if tool else "unknown", outcome=error or "ok")
    )
