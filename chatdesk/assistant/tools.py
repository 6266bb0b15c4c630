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
recorded for the interaction returns the first result instead of acting twice.

Limits every door shares (text chat, voice, guided flow), each defined here once:
- bookings per conversation: checked under a row lock on the interaction, in the
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
from datetime import date, datetime
from functools import cache

import jsonschema
from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import transaction
from django.utils import timezone

from bookings import limits
from bookings.errors import BookingNotFound, DomainError, InvalidInput, NotFound
from bookings.models import Booking, Employee, Service, Trade
from bookings.phones import normalize_phone
from bookings.selectors import (
    available_slots,
    booking_for_customer,
    booking_public_dict,
    business_tz,
    services_list,
    technicians_available,
)
from bookings.services import Actor, booking_cancel, booking_create, booking_reschedule
from chatdesk.assistant.dates import WEEK_CHOICES, WEEKDAY_NAMES, day_for_booking
from chatdesk.conversations import record
from chatdesk.conversations.models import HandoffRequest, Interaction, ToolCall

logger = logging.getLogger(__name__)

MAX_SLOTS_LISTED = 16
MAX_ARGUMENTS_CHARS = 8000


class LimitReached(DomainError):
    code = "limit_reached"
    http_status = 409


class ConfirmationMissing(DomainError):
    code = "confirmation_required"


class LookupLocked(DomainError):
    code = "lookup_locked"
    http_status = 429


class LookupUnavailable(DomainError):
    code = "lookup_unavailable"
    http_status = 503


TOO_MANY_TOOL_CALLS = "too_many_tool_calls"


@dataclass(frozen=True)
class ToolContext:
    interaction: Interaction
    now: datetime
    # The door the call came through (Interaction.ChannelKind), set by the caller: a voice call
    # continuing a text conversation books for the voice channel.
    channel: str = Interaction.ChannelKind.TEXT

    @property
    def booking_channel(self) -> str:
        return "voice" if self.channel == Interaction.ChannelKind.VOICE else "chat"

    def actor(self, call_id: str) -> Actor:
        return Actor.customer(self.booking_channel, reference=f"{self.interaction.number} {call_id}")


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


# --- argument helpers -----------------------------------------------------------------


def _service(service_id: str) -> Service:
    service = Service.objects.select_related("trade").filter(slug=service_id.strip().lower(), active=True).first()
    if service is None:
        raise NotFound("No such service. Call get_available_services for valid service_id values.", field="service_id")
    return service


def _trade(name: str) -> Trade:
    key = name.strip().lower()
    for trade in Trade.objects.all():
        if key in (trade.slug, trade.name.lower()):
            return trade
    raise NotFound("Unknown trade. Use HVAC, Plumbing or Electrical.", field="trade")


def _day(value: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("Use a date like 2026-12-04 (call resolve_date first).", field=field) from None


def _start(value: str) -> datetime:
    try:
        start = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("Use the slot start exactly as listed by get_available_time_slots.", field="start") from None
    if timezone.is_naive(start):
        start = start.replace(tzinfo=business_tz())
    return start


def _technician(technician_id: int | None) -> Employee | None:
    if technician_id is None:
        return None
    employee = Employee.objects.filter(pk=technician_id, active=True).first()
    if employee is None:
        raise NotFound("No such technician.", field="technician_id")
    return employee


def _local(moment: datetime) -> datetime:
    return moment.astimezone(business_tz())


def _slot_dict(start: datetime, end: datetime) -> dict:
    local = _local(start)
    return {
        "start": local.isoformat(),
        "end": _local(end).isoformat(),
        "weekday": local.strftime("%A"),
        "date": local.date().isoformat(),
        "time": local.strftime("%-I:%M %p"),
    }


def _service_dict(service: Service, detailed: bool = False) -> dict:
    data = {
        "service_id": service.slug,
        "name": service.name,
        "trade": service.trade.name,
        "duration_minutes": service.duration_minutes,
        "price": service.price_display,
        "emergency": service.is_emergency,
    }
    if detailed:
        data["description"] = service.description
        data["minimum_notice_hours"] = round(service.min_notice_minutes / 60, 1)
    return data


def _require_confirmation(args: dict) -> None:
    if args.get("customer_confirmed") is not True:
        raise ConfirmationMissing(
            "Read the details back to the customer and get a clear yes, then call again with customer_confirmed=true."
        )


# --- failed lookups -------------------------------------------------------------------


class LookupGuard:
    """Counts failed booking number + phone lookups per conversation and per client IP.

    Booking numbers are sequential, so the phone is the only secret: without a limit a
    model (or a script) can try phone after phone. The counters live in the shared cache
    (Redis in production, so every process and the voice relay see the same counts; LocMem
    in the one-process embedded default) and move with atomic increments.

    An attempt is counted before the lookup runs and given back when it matches, so
    parallel lookups cannot all slip under the limit before any of them fails. Each failure
    restarts the window, so the lock lasts CHAT_LOOKUP_LOCK_SECONDS after the last failure.
    When the cache cannot be reached, lookups are refused (fail closed) with a message that
    sends the customer to the phone, never a 500.
    """

    def __init__(self, interaction: Interaction) -> None:
        self.limits = [
            (f"chatdesk:lookup-failures:conversation:{interaction.pk}", settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION)
        ]
        if interaction.client_ip_hash:
            self.limits.append(
                (f"chatdesk:lookup-failures:ip:{interaction.client_ip_hash}", settings.CHAT_LOOKUP_FAILURES_PER_IP)
            )

    def attempt(self) -> None:
        """Count one attempt; raises LookupLocked past a limit, LookupUnavailable without a cache."""
        counted: list[str] = []
        try:
            for key, limit in self.limits:
                value = self._incr(key)
                counted.append(key)
                if value > limit:
                    # The refused attempt is not a guess: give it back, the lock stays.
                    self._give_back(counted)
                    raise LookupLocked(
                        "For your security, booking lookups are paused after several booking numbers or phone "
                        f"numbers that did not match. Please call us at {settings.BUSINESS_PHONE} and we will help."
                    )
        except DomainError:
            raise
        except Exception:
            logger.exception("The lookup counters are unreachable; refusing booking lookups")
            raise LookupUnavailable(
                f"We cannot look up bookings here right now. Please call us at {settings.BUSINESS_PHONE}."
            ) from None

    def matched(self) -> None:
        """The pair matched: the attempt was not a failure."""
        self._give_back([key for key, _ in self.limits])

    def failed(self) -> None:
        """The pair did not match: the attempt stays counted, and the window restarts."""
        try:
            for key, _ in self.limits:
                shared_cache.touch(key, settings.CHAT_LOOKUP_LOCK_SECONDS)
        except Exception:
            logger.exception("Could not extend the lookup lock window")

    @staticmethod
    def _incr(key: str) -> int:
        # add() creates the counter with its window only if it is missing; incr() is atomic
        # (Redis INCRBY; LocMem under its lock). A counter that expires in between is re-added.
        for _ in range(2):
            shared_cache.add(key, 0, settings.CHAT_LOOKUP_LOCK_SECONDS)
            try:
                return shared_cache.incr(key)
            except ValueError:
                continue
        raise RuntimeError(f"Cache key {key} keeps expiring")

    @staticmethod
    def _give_back(keys: list[str]) -> None:
        for key in keys:
            try:
                shared_cache.decr(key)
            except Exception:  # expired meanwhile, or the cache went away: nothing to give back
                logger.warning("Could not give back a lookup attempt on %s", key)


def _customers_booking(ctx: ToolContext, args: dict) -> Booking:
    """The booking for this number + phone pair, under the failed-lookup limits."""
    guard = LookupGuard(ctx.interaction)
    guard.attempt()
    try:
        booking = booking_for_customer(number=args["booking_number"], phone=args["phone"])
    except BookingNotFound:
        guard.failed()
        raise
    except Exception:
        guard.matched()  # not a wrong guess (a database error): do not count it
        raise
    guard.matched()
    return booking


# --- tool bodies ----------------------------------------------------------------------


def get_available_services(ctx: ToolContext, args: dict, call_id: str) -> dict:
    services = services_list(trade=args.get("trade"))
    return {"services": [_service_dict(s) for s in services]}


def get_service_details(ctx: ToolContext, args: dict, call_id: str) -> dict:
    return {"service": _service_dict(_service(args["service_id"]), detailed=True)}


def get_employee_availability(ctx: ToolContext, args: dict, call_id: str) -> dict:
    day = _day(args["date"])
    service = _service(args["service_id"]) if args.get("service_id") else None
    trade = service.trade if service else _trade(args["trade"])
    days = technicians_available(trade=trade, on_date=day, service=service, now=ctx.now)
    return {
        "date": day.isoformat(),
        "weekday": day.strftime("%A"),
        "technicians": [
            {
                "technician_id": d.technician.id,
                "name": d.technician.name,
                "title": d.technician.title,
                "free_slots": [_slot_dict(s, e)["time"] for s, e in d.slots[:MAX_SLOTS_LISTED]],
            }
            for d in days
        ],
    }


def get_available_time_slots(ctx: ToolContext, args: dict, call_id: str) -> dict:
    service = _service(args["service_id"])
    first = _day(args["date"])
    last = _day(args["end_date"], "end_date") if args.get("end_date") else first
    if (last - first).days > 13:
        raise InvalidInput("Ask for at most 14 days at a time.", field="end_date")
    slots = available_slots(
        service=service,
        start_date=first,
        end_date=last,
        employee_id=args.get("technician_id"),
        now=ctx.now,
    )
    listed = [
        {
            **_slot_dict(slot.start, slot.end),
            "technicians": [{"technician_id": t.id, "name": t.name} for t in slot.technicians],
        }
        for slot in slots[:MAX_SLOTS_LISTED]
    ]
    result = {"service": service.name, "slots": listed, "more_available": len(slots) > MAX_SLOTS_LISTED}
    if not slots:
        result["message"] = "No free slots then. Offer another day."
    return result


def create_booking(ctx: ToolContext, args: dict, call_id: str) -> dict:
    _require_confirmation(args)
    # Counted under a lock on the conversation's row, in the transaction that books.
    booked = record.bookings_made_locked(ctx.interaction.pk)
    if booked >= settings.CHAT_MAX_BOOKINGS:
        raise LimitReached("This conversation has made as many bookings as we allow. Offer a callback from staff.")
    booking = booking_create(
        service=_service(args["service_id"]),
        start=_start(args["start"]),
        employee=_technician(args.get("technician_id")),
        customer_name=args["customer_name"],
        customer_phone=args["customer_phone"],
        customer_email=args.get("customer_email") or "",
        address=args["address"],
        notes=args.get("notes") or "",
        channel=ctx.booking_channel,
        actor=ctx.actor(call_id),
        now=ctx.now,
    )
    record.count_booking(ctx.interaction.pk, customer_id=booking.customer_id)
    ctx.interaction.booking_count = booked + 1
    return {"booked": True, "booking": booking_public_dict(booking), "_booking_id": booking.pk}


def get_booking_info(ctx: ToolContext, args: dict, call_id: str) -> dict:
    booking = _customers_booking(ctx, args)
    return {"booking": booking_public_dict(booking), "_booking_id": booking.pk}


def cancel_booking(ctx: ToolContext, args: dict, call_id: str) -> dict:
    booking = _customers_booking(ctx, args)
    _require_confirmation(args)
    booking = booking_cancel(booking=booking, actor=ctx.actor(call_id), reason=args.get("reason") or "", now=ctx.now)
    return {"cancelled": True, "booking": booking_public_dict(booking), "_booking_id": booking.pk}


def reschedule_booking(ctx: ToolContext, args: dict, call_id: str) -> dict:
    booking = _customers_booking(ctx, args)
    _require_confirmation(args)
    booking = booking_reschedule(
        booking=booking,
        new_start=_start(args["new_start"]),
        employee=_technician(args.get("technician_id")),
        actor=ctx.actor(call_id),
        now=ctx.now,
    )
    return {"rescheduled": True, "booking": booking_public_dict(booking), "_booking_id": booking.pk}


DATE_PARTS = ("weekday", "week", "month", "day", "year", "nth", "offset_days", "offset_weeks")


def resolve_date_tool(ctx: ToolContext, args: dict, call_id: str) -> dict:
    """The customer's words (or structured parts, when the words were not understood) as a day,
    with what it means for booking. The date arithmetic is chatdesk.assistant.dates', never the model's."""
    parts = {name: args.get(name) for name in DATE_PARTS}
    answer = day_for_booking(args.get("text"), parts=parts, now=ctx.now)
    if answer["status"] == "unresolved":
        raise InvalidInput(answer["message"], field="text")
    return answer


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


def request_human(ctx: ToolContext, args: dict, call_id: str) -> dict:
    phone = normalize_phone(args["phone"]) if args.get("phone") else ""
    reason = " ".join((args.get("reason") or "").split())
    if not reason:
        raise InvalidInput("Say briefly why the customer wants a person.", field="reason")
    handoff = HandoffRequest.objects.create(
        interaction=ctx.interaction,
        reason=reason[:500],
        contact_name=(args.get("name") or "")[: limits.MAX_NAME],
        contact_phone=phone,
        urgent=bool(args.get("urgent")),
    )
    Interaction.objects.filter(pk=ctx.interaction.pk).exclude(resolution=Interaction.Resolution.BOOKED).update(
        resolution=Interaction.Resolution.ESCALATED
    )
    return {
        "handoff_requested": True,
        "reference": f"{ctx.interaction.number}-H{handoff.pk}",
        "message": f"A staff member will call back during business hours. Our phone: {settings.BUSINESS_PHONE}.",
    }


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
            "get_employee_availability",
            "Which technicians of a trade (or qualified for a service) are free on a date, with their free times.",
            _schema(
                {
                    "trade": _str("HVAC, Plumbing or Electrical.", 40),
                    "date": DATE,
                    "service_id": _str("Optional service_id to size the slots.", 120, nullable=True),
                }
            ),
            get_employee_availability,
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


def _replayed(interaction_id: int, call_id: str) -> ToolOutcome:
    first = ToolCall.objects.get(interaction_id=interaction_id, call_id=call_id)
    if first.result is None:
        result = {"error": "in_progress", "message": "That call is still running."}
        return ToolOutcome(call_id, first.name, result, "in_progress")
    return ToolOutcome(call_id, first.name, first.result, first.error, first.booking_id)


def _new_row(interaction_id: int, call_id: str, name: str, raw_arguments: str) -> ToolCall:
    return ToolCall(
        interaction_id=interaction_id,
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


def refuse_tool_calls(*, interaction_id: int, calls: list[tuple[str, str, str]]) -> list[ToolOutcome]:
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
        row = _new_row(interaction_id, call_id, name, raw_arguments or "")
        row.result, row.error = result, TOO_MANY_TOOL_CALLS
        if record.claim_tool_call(row):
            outcomes.append(ToolOutcome(call_id, name, result, TOO_MANY_TOOL_CALLS))
        else:
            outcomes.append(_replayed(interaction_id, call_id))
    return outcomes


def execute_tool_call(
    *,
    interaction: Interaction,
    call_id: str,
    name: str,
    raw_arguments: str,
    channel: str = Interaction.ChannelKind.TEXT,
) -> ToolOutcome:
    """Run one tool call for `interaction`, which came through `channel`, and record it.
    Never raises for bad input.

    The row is written before the tool runs: a replayed call_id (a retried request, a
    duplicated realtime event) finds it and gets the first result instead of acting twice.
    """
    call_id = (call_id or "")[:100]
    raw_arguments = raw_arguments or ""
    row = _new_row(interaction.pk, call_id, name, raw_arguments)
    if not record.claim_tool_call(row):
        return _replayed(interaction.pk, call_id)

    started = clock.perf_counter()
    tool = TOOLS.get(name)
    args: dict = {}
    error = ""
    try:
        args = _parse_arguments(tool, raw_arguments)
        with transaction.atomic() if tool.writes else nullcontext():
            result = tool.run(ToolContext(interaction=interaction, now=timezone.now(), channel=channel), args, call_id)
    except DomainError as domain_error:
        result, error = domain_error.as_dict(), domain_error.code
    except Exception:
        # A bug in a tool must not end the conversation; the model gets a generic error.
        logger.exception("Tool %s failed for %s", name, interaction.number)
        result = {"error": "internal_error", "message": "That did not work. Apologise and offer a callback."}
        error = "internal_error"
    booking_id = result.pop("_booking_id", None)
    row.arguments, row.result, row.error, row.booking_id = args, result, error, booking_id
    row.duration_ms = int((clock.perf_counter() - started) * 1000)
    record.tool_call_done(row)
    return ToolOutcome(call_id, name, result, error, booking_id)
