"""About 60 days of believable history for the demo business, for `manage.py seed_demo`.

Text chats and voice calls, in the order they happened, each stored as the live code stores
one: tool calls run the assistant's real tool bodies (chatdesk.assistant.tools.TOOLS) at the
moment of the conversation, so bookings come from slots the availability engine offered then
and carry their provenance (channel, "INT-... call_..." in the booking events); model usage is
priced by the price table (chatdesk.assistant.costs) and added through the conversation
record's writer. Afterwards the past visits are completed or marked no-show through the
booking services. Only the clock is the seed's: rows get the time they would have had
(`created_at` fields are auto_now_add, so they are set after the fact).

Deterministic: one random.Random(SEED) drives every choice, so the same day gives the same
history. Customers get no email address, so loading the history sends no confirmation emails.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.errors import DomainError
from bookings.models import ACTIVE_STATUSES, Booking, BookingEvent, Service
from bookings.numbering import next_number
from bookings.selectors import business_tz
from bookings.services import Actor, booking_cancel, booking_complete, booking_mark_no_show
from chatdesk.assistant.costs import TextUsage, realtime_usage, text_cost, transcription_usage
from chatdesk.assistant.tool_bodies import ToolContext
from chatdesk.assistant.tools import TOOLS
from chatdesk.conversations import record
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall
from chatdesk.conversations.services import conversation_create

SEED = 20261204
# The tools whose booking events get the conversation's time.
BOOKING_TOOLS = {"create_booking", "cancel_booking", "reschedule_booking"}
DAYS = 60

FIRST_NAMES = (
    "Olivia Liam Emma Noah Ava Ethan Sophia Lucas Mia Benjamin Amelia Mason Harper Logan Evelyn Jacob Abigail "
    "Daniel Emily Henry Ella Owen Chloe Samuel Grace Ryan Zoe Nathan Leah Arjun Mei Tariq Fatima Diego Ines Kofi"
).split()
LAST_NAMES = (
    "Smith Brown Tremblay Martin Roy Wilson Macdonald Gagnon Taylor Campbell Anderson Lee Chen Wong Singh Nguyen "
    "Patel Kowalski Rossi Silva Murphy Okafor Haddad Novak Fraser"
).split()
STREETS = (
    "Bloor St W, Toronto; Dundas St E, Toronto; Yonge St, Toronto; Danforth Ave, Toronto; Lakeshore Blvd W, Etobicoke; "
    "Eglinton Ave E, Scarborough; Main St, Markham; Hurontario St, Mississauga; Kennedy Rd, Brampton; "
    "Bathurst St, North York"
).split("; ")
AREA_CODES = ("416", "647", "905")
# 555-0100 is the business, 0123/0142/0199 the upcoming demo bookings' customers.
TAKEN_LINES = {100, 123, 142, 199}

# What customers say about each service, as the first message of a booking conversation.
ASKS = {
    "hvac-maintenance": ["Can I get my furnace tuned up before it gets colder?", "Annual AC maintenance please."],
    "hvac-repair": ["My furnace is making a banging noise.", "The AC runs but blows warm air.", "No heat upstairs."],
    "hvac-installation": ["I'd like a quote to replace our 20 year old furnace."],
    "emergency-hvac": ["Our furnace died and it's freezing in here, can someone come today?"],
    "drain-cleaning": ["Kitchen sink is clogged and won't drain.", "Basement floor drain is backing up."],
    "leak-repair": ["There's a leak under the bathroom sink.", "Water dripping from a pipe in the basement."],
    "water-heater-install": ["No hot water, I think the tank is done. Can you replace it?"],
    "outlet-repair": ["Two outlets in the kitchen stopped working.", "The breaker keeps tripping."],
    "panel-upgrade": ["We need a 200 amp panel upgrade for a renovation."],
    "ev-charger-install": ["I want a level 2 charger installed in the garage for my new EV."],
    "emergency-plumbing": ["A pipe burst in the laundry room, water everywhere!"],
    "emergency-electrical": ["Sparks came out of an outlet and there's a burning smell."],
}
# How often each service is asked for (emergencies and installations are rarer).
WEIGHTS = {"hvac-repair": 6, "drain-cleaning": 5, "hvac-maintenance": 5, "leak-repair": 4, "outlet-repair": 4}
QUESTIONS = [
    ("How much is a furnace tune-up?", "hvac-maintenance"),
    ("Do you install EV chargers, and what does it cost?", "ev-charger-install"),
    ("What do you charge to clear a drain?", "drain-cleaning"),
    ("How long does a panel upgrade take?", "panel-upgrade"),
]
HANDOFF_REASONS = [
    ("I'd like to talk to someone about a warranty claim on last month's repair.", False),
    ("Can a person call me about a commercial quote for our restaurant?", False),
    ("I smell gas near the furnace, please have someone call right away.", True),
    ("The technician left a mess, I want to speak to a manager.", False),
]


@dataclass
class HistoryResult:
    conversations: int = 0
    bookings: int = 0


@dataclass
class Talk:
    """One conversation being written: its row, its timeline and what it used."""

    conversation: Conversation
    at: datetime
    voice: bool
    messages: list[Message] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    cost: Decimal = Decimal("0")
    breakdown: dict[str, Decimal] = field(default_factory=dict)
    usage: record.Usage = field(default_factory=record.Usage)
    calls: int = 0


class History:
    def __init__(self, *, now: datetime, on_conversation: Callable[[], None]) -> None:
        self.rng = random.Random(SEED)
        self.now = now
        self.started = timezone.now()  # rows stamped from here on were written by this run
        self.tz = business_tz()
        self.on_conversation = on_conversation
        self.services = {s.slug: s for s in Service.objects.filter(active=True, slug__in=ASKS)}
        self.slugs = sorted(self.services)
        self.phones = iter(
            self.rng.sample([(a, n) for a in AREA_CODES for n in range(101, 199) if n not in TAKEN_LINES], 250)
        )
        self.customers: list[tuple[str, str, str]] = []  # (name, phone, address) of past customers
        self.pending: list[tuple[datetime, int, str, dict]] = []  # follow-ups: (when, order, kind, data)
        self.order = itertools.count()
        self.result = HistoryResult()
        self.timestamps: list[Message | ToolCall] = []

    # --- the timeline -------------------------------------------------------------------

    def build(self) -> HistoryResult:
        today = timezone.localdate(self.now, self.tz)
        for offset in range(DAYS, -1, -1):
            day = today - timedelta(days=offset)
            count = self.rng.randint(1, 2) if day.weekday() >= 5 else self.rng.randint(3, 5)
            for _ in range(count):
                minute = self.rng.randint(7 * 60, 21 * 60)
                at = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.tz)
                self._later(at, "new", {})
        while self.pending:
            at, _, kind, data = heapq.heappop(self.pending)
            if at > self.now - timedelta(minutes=30):
                continue  # not happened yet
            self._conversation(at, kind, data)
            self.result.conversations += 1
            self.on_conversation()
        Message.objects.bulk_update([r for r in self.timestamps if isinstance(r, Message)], ["created_at"], 500)
        ToolCall.objects.bulk_update([r for r in self.timestamps if isinstance(r, ToolCall)], ["created_at"], 500)
        self._close_past_visits()
        # The queue is not empty on the demo's first morning: the two latest requests wait.
        latest = HandoffRequest.objects.order_by("-created_at", "-pk").values_list("pk", flat=True)[:2]
        HandoffRequest.objects.filter(pk__in=list(latest)).update(handled_at=None)
        return self.result

    def _later(self, at: datetime, kind: str, data: dict) -> None:
        heapq.heappush(self.pending, (at, next(self.order), kind, data))

    def _conversation(self, at: datetime, kind: str, data: dict) -> None:
        voice = self.rng.random() < 0.3
        guided = not voice and self.rng.random() < 0.06  # the model was down: the guided flow answered
        model = "" if guided else settings.OPENAI_REALTIME_MODEL if voice else settings.OPENAI_MODEL
        conversation = conversation_create(
            number=next_number("INT", at.year, 5),
            channel=Conversation.ChannelKind.VOICE if voice else Conversation.ChannelKind.CHAT,
            has_call=voice,
            mode=Conversation.Mode.GUIDED if guided else Conversation.Mode.MODEL,
            model=model,
        )
        talk = Talk(conversation=conversation, at=at, voice=voice)
        greeting = f"Hi, thanks for contacting {settings.BUSINESS_NAME}! How can I help?"
        self._say(talk, Message.Role.ASSISTANT, greeting, first=True)
        roll = self.rng.random()
        if kind in ("cancel", "move"):
            resolution = self._change(talk, kind, data)
        elif roll < 0.55:
            resolution = self._book(talk)
        elif roll < 0.72:
            resolution = self._question(talk)
        elif roll < 0.82:
            resolution = self._handoff(talk)
        else:
            self._say(talk, Message.Role.CUSTOMER, self.rng.choice(["hi", "Hello?", "do you do roofs?"]))
            if self.rng.random() < 0.5:
                self._say(talk, Message.Role.ASSISTANT, "We do heating, plumbing and electrical. What do you need?")
            resolution = Conversation.Resolution.ABANDONED
        if not guided and self.rng.random() < 0.04:
            self._model_failure(talk)
        self._store(talk, resolution)

    # --- what customers do ----------------------------------------------------------------

    def _book(self, talk: Talk) -> str:
        slug = self.rng.choices(self.slugs, weights=[WEIGHTS.get(s, 1) for s in self.slugs])[0]
        service = self.services[slug]
        self._say(talk, Message.Role.CUSTOMER, self.rng.choice(ASKS[slug]))
        urgent = service.is_emergency
        words = "today" if urgent else self.rng.choice(["tomorrow", "Thursday", "next Monday", "Friday", "next week"])
        self._say(talk, Message.Role.ASSISTANT, f"I can help with that: {service.name}. What day suits you?")
        self._say(talk, Message.Role.CUSTOMER, f"{words.capitalize()} if possible.")
        first = _first_day(self._tool(talk, "resolve_date", {"text": words})) or talk.at.astimezone(self.tz).date()
        first = first.isoformat() if not isinstance(first, str) else first
        slots = self._tool(
            talk, "get_available_time_slots", {"service_id": slug, "date": first, "end_date": _plus(first, 2)}
        )
        offered = (slots or {}).get("slots") or []
        if not offered:
            self._say(talk, Message.Role.ASSISTANT, "I have nothing free that week. Shall I have someone call you?")
            self._say(talk, Message.Role.CUSTOMER, "No thanks, I'll try someone else.")
            return Conversation.Resolution.ANSWERED
        choices = offered[: min(4, len(offered))]
        listed = ", ".join(f"{s['weekday']} {s['time']}" for s in choices)
        self._say(talk, Message.Role.ASSISTANT, f"I can offer {listed}. Which works?")
        slot = self.rng.choice(choices)
        name, phone, address = self._customer()
        self._say(talk, Message.Role.CUSTOMER, f"{slot['weekday']} {slot['time']}. I'm {name}, {phone}, at {address}.")
        args = {
            "service_id": slug,
            "start": slot["start"],
            "customer_name": name,
            "customer_phone": phone,
            "address": address,
            "customer_confirmed": True,
        }
        if self.rng.random() < 0.08:
            # The model booked before reading the details back: the tool refuses, it asks, then books.
            self._tool(talk, "create_booking", {**args, "customer_confirmed": False})
            self._say(
                talk, Message.Role.ASSISTANT, f"Just to confirm: {service.name}, {slot['weekday']} {slot['time']}?"
            )
            self._say(talk, Message.Role.CUSTOMER, "Yes, that's right.")
        booked = self._tool(talk, "create_booking", args)
        if not booked or not booked.get("booked"):
            self._say(talk, Message.Role.ASSISTANT, "That time was just taken, sorry. Can I offer another?")
            self._say(talk, Message.Role.CUSTOMER, "Never mind, I'll call back.")
            return Conversation.Resolution.ANSWERED
        booking = booked["booking"]
        self.result.bookings += 1
        self._say(
            talk,
            Message.Role.ASSISTANT,
            f"You're booked: {booking['booking_number']}, {booking['when']} with {booking['technician']}",
        )
        self._say(talk, Message.Role.CUSTOMER, "Great, thanks!")
        self._follow_up(talk, booking, phone)
        return Conversation.Resolution.BOOKED

    def _follow_up(self, talk: Talk, booking: dict, phone: str) -> None:
        """Some customers come back before the visit, to cancel or to move it."""
        roll = self.rng.random()
        if roll > 0.16:
            return
        start = datetime.fromisoformat(booking["start"])
        gap = (start - talk.at).total_seconds()
        if gap < 6 * 3600:
            return
        when = talk.at + timedelta(seconds=gap * self.rng.uniform(0.2, 0.6))
        self._later(when, "cancel" if roll < 0.1 else "move", {"number": booking["booking_number"], "phone": phone})

    def _change(self, talk: Talk, kind: str, data: dict) -> str:
        verb = "cancel" if kind == "cancel" else "move"
        self._say(talk, Message.Role.CUSTOMER, f"I need to {verb} my booking {data['number']}, phone {data['phone']}.")
        found = self._tool(talk, "get_booking_info", {"booking_number": data["number"], "phone": data["phone"]})
        if not found or found["booking"]["status"] not in ACTIVE_STATUSES:
            self._say(talk, Message.Role.ASSISTANT, "That booking cannot be changed any more.")
            return Conversation.Resolution.ANSWERED
        if kind == "cancel":
            reason = self.rng.choice(["Fixed it myself.", "Found someone sooner.", "Plans changed."])
            self._say(talk, Message.Role.CUSTOMER, f"Yes, please cancel it. {reason}")
            args = {"booking_number": data["number"], "phone": data["phone"], "customer_confirmed": True}
            done = self._tool(talk, "cancel_booking", {**args, "reason": reason})
            self._say(talk, Message.Role.ASSISTANT, "It's cancelled." if done else "I could not cancel it.")
            return Conversation.Resolution.ANSWERED
        start = datetime.fromisoformat(found["booking"]["start"])
        later = (start + timedelta(days=self.rng.randint(1, 4))).date().isoformat()
        slots = self._tool(
            talk,
            "get_available_time_slots",
            {"service_id": self._slug_of(found["booking"]["service"]), "date": later, "end_date": _plus(later, 3)},
        )
        offered = (slots or {}).get("slots") or []
        if not offered:
            self._say(talk, Message.Role.ASSISTANT, "Nothing is free a bit later, so I kept your booking.")
            return Conversation.Resolution.ANSWERED
        slot = offered[0]
        args = {"booking_number": data["number"], "phone": data["phone"], "customer_confirmed": True}
        moved = self._tool(talk, "reschedule_booking", {**args, "new_start": slot["start"]})
        self._say(talk, Message.Role.ASSISTANT, f"Moved to {slot['weekday']} {slot['time']}." if moved else "Sorry.")
        return Conversation.Resolution.ANSWERED

    def _question(self, talk: Talk) -> str:
        text, slug = self.rng.choice(QUESTIONS)
        self._say(talk, Message.Role.CUSTOMER, text)
        details = self._tool(talk, "get_service_details", {"service_id": slug})
        price = details["service"]["price"] if details else "on quote"
        self._say(talk, Message.Role.ASSISTANT, f"{self.services[slug].name} is {price}. Would you like to book?")
        self._say(talk, Message.Role.CUSTOMER, "Not yet, thanks.")
        return Conversation.Resolution.ANSWERED

    def _handoff(self, talk: Talk) -> str:
        reason, urgent = self.rng.choice(HANDOFF_REASONS)
        name, phone, _ = self._customer()
        self._say(talk, Message.Role.CUSTOMER, f"{reason} I'm {name}, {phone}.")
        asked = {"reason": reason, "name": name, "phone": phone, "urgent": urgent}
        done = self._tool(talk, "request_human", asked)
        self._say(talk, Message.Role.ASSISTANT, done["message"] if done else "Please call us.")
        if done:
            handoff = HandoffRequest.objects.filter(conversation=talk.conversation).get()
            created = talk.at + timedelta(seconds=40)
            # Staff call back within hours (the latest requests wait: see build).
            handled = created + timedelta(minutes=self.rng.randint(10, 240))
            handoff.created_at, handoff.handled_at = created, handled
            handoff.save(update_fields=["created_at", "handled_at"])
        return Conversation.Resolution.ESCALATED

    def _model_failure(self, talk: Talk) -> None:
        event = Message(
            conversation=talk.conversation,
            role=Message.Role.EVENT,
            text="Model failure: Request timed out.",
            failure_kind=Message.FailureKind.TIMEOUT,
        )
        self._add(talk, event, seconds=5)

    # --- writing it the way the live code does ------------------------------------------

    def _say(self, talk: Talk, role: str, text: str, *, first: bool = False) -> None:
        message = Message(conversation=talk.conversation, role=role, text=text)
        if role == Message.Role.ASSISTANT and not first:
            message.latency_ms = int(self.rng.lognormvariate(7.0 if talk.voice else 7.6, 0.35))
            message.cost_usd = self._model_response(talk)
        self._add(talk, message, seconds=0 if first else self.rng.randint(8, 45))
        if role == Message.Role.CUSTOMER and talk.voice:
            heard = transcription_usage(
                settings.OPENAI_REALTIME_TRANSCRIPTION_MODEL, {"type": "duration", "seconds": len(text) / 14}
            )
            self._spend(talk, heard.cost, heard.breakdown)

    def _add(self, talk: Talk, message: Message, *, seconds: int) -> None:
        talk.at += timedelta(seconds=seconds)
        message.channel = Conversation.ChannelKind.VOICE if talk.voice else Conversation.ChannelKind.CHAT
        message.created_at = talk.at
        talk.messages.append(message)

    def _model_response(self, talk: Talk) -> Decimal | None:
        """Tokens for one model response, priced by the table; None in the guided flow (no model)."""
        model = talk.conversation.model
        if not model:
            return None
        context = 2600 + 450 * len(talk.messages)
        if talk.voice:
            audio_in, audio_out = self.rng.randint(150, 700), self.rng.randint(250, 900)
            cached = int(context * 0.8)
            priced = realtime_usage(
                model,
                {
                    "input_tokens": context + audio_in,
                    "output_tokens": audio_out + 60,
                    "input_token_details": {
                        "text_tokens": context,
                        "audio_tokens": audio_in,
                        "cached_tokens": cached,
                        "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0},
                    },
                    "output_token_details": {"text_tokens": 60, "audio_tokens": audio_out},
                },
            )
            usage = record.Usage(
                input_tokens=priced.input_tokens,
                cached_input_tokens=priced.cached_input_tokens,
                output_tokens=priced.output_tokens,
                audio_input_tokens=priced.audio_input_tokens,
                audio_output_tokens=priced.audio_output_tokens,
            )
            talk.usage = _sum(talk.usage, usage)
            self._spend(talk, priced.cost, priced.breakdown)
            return priced.cost
        used = TextUsage(
            input_tokens=context,
            cached_input_tokens=int(context * 0.7) if len(talk.messages) > 2 else 0,
            output_tokens=self.rng.randint(40, 220),
            reasoning_tokens=self.rng.randint(0, 120),
        )
        cost = text_cost(model, used)
        talk.usage = _sum(
            talk.usage,
            record.Usage(
                input_tokens=used.input_tokens,
                cached_input_tokens=used.cached_input_tokens,
                output_tokens=used.output_tokens,
                reasoning_tokens=used.reasoning_tokens,
            ),
        )
        self._spend(talk, cost, {})
        return cost

    def _spend(self, talk: Talk, cost: Decimal, breakdown: dict[str, Decimal]) -> None:
        talk.cost += cost
        for kind, amount in breakdown.items():
            talk.breakdown[kind] = talk.breakdown.get(kind, Decimal("0")) + amount

    def _tool(self, talk: Talk, name: str, args: dict) -> dict | None:
        """Run the assistant's tool body at the conversation's moment and record the call, as
        chatdesk.assistant.tools.execute_tool_call does. None when the tool refused."""
        talk.calls += 1
        talk.at += timedelta(seconds=self.rng.randint(1, 3))
        call_id = f"call_{talk.calls}"
        tool = TOOLS[name]
        context = ToolContext(conversation=talk.conversation, now=talk.at, channel=talk.conversation.channel)
        try:
            with transaction.atomic() if tool.writes else nullcontext():
                result = tool.run(context, args, call_id)
            error = ""
        except DomainError as refused:
            result, error = refused.as_dict(), refused.code
        booking_id = result.pop("_booking_id", None)
        # Stored with the transcript, finished: nothing can replay a call of the past (the live
        # path claims the row before running the tool for that, then stores the outcome).
        row = ToolCall(
            conversation_id=talk.conversation.pk,
            call_id=call_id,
            name=name,
            arguments=args,
            raw_arguments=json.dumps(args),
            result=result,
            error=error,
            booking_id=booking_id,
            duration_ms=self.rng.randint(4, 60),
        )
        row.created_at = talk.at
        talk.tool_calls.append(row)
        if booking_id and name in BOOKING_TOOLS:
            self._backdate_events(booking_id, talk.at)
        if name == "create_booking" and booking_id:
            Booking.objects.filter(pk=booking_id).update(created_at=talk.at, updated_at=talk.at)
        return None if error else result

    def _store(self, talk: Talk, resolution: str) -> None:
        conversation = talk.conversation
        # One INSERT for the transcript (the live path stores each message as it comes); the
        # record's writer counts them below. created_at is auto_now_add: set again at the end.
        rows = [*talk.messages, *talk.tool_calls]
        times = [row.created_at for row in rows]
        Message.objects.bulk_create(talk.messages)
        ToolCall.objects.bulk_create(talk.tool_calls)
        for row, moment in zip(rows, times, strict=True):
            row.created_at = moment
        self.timestamps.extend(rows)
        if talk.usage != record.Usage() or talk.cost:
            usage = record.Usage(**{**talk.usage.__dict__, "cost": talk.cost})
            record.add_usage(conversation.pk, usage, breakdown=talk.breakdown or None)
        started = times[0]
        record.write(
            conversation.pk,
            messages=len(talk.messages),
            failure="Request timed out." if any(m.failure_kind for m in talk.messages) else "",
            assign={
                "started_at": started,
                "last_activity_at": talk.at,
                "ended_at": talk.at + timedelta(seconds=20),
                "status": Conversation.Status.ABANDONED
                if resolution == Conversation.Resolution.ABANDONED
                else Conversation.Status.CLOSED,
                "end_reason": "idle" if resolution == Conversation.Resolution.ABANDONED else "customer_closed",
                "resolution": resolution,
            },
        )

    # --- after the conversations ----------------------------------------------------------

    def _close_past_visits(self) -> None:
        """Visits that have happened were done, or the customer was not there; staff say which."""
        actor = Actor.system("seed_demo")
        past = Booking.objects.filter(status__in=ACTIVE_STATUSES, end__lt=self.now).order_by("start", "number")
        for booking in past:
            roll = self.rng.random()
            if roll < 0.06:
                booking_mark_no_show(booking=booking, actor=actor, now=self.now)
            elif roll < 0.09:
                booking_cancel(booking=booking, actor=actor, reason="Customer called: not home.", now=self.now)
            else:
                booking_complete(booking=booking, actor=actor, now=self.now)
            self._backdate_events(booking.pk, booking.end + timedelta(minutes=30))

    # --- small helpers --------------------------------------------------------------------

    def _backdate_events(self, booking_id: int, at: datetime) -> None:
        """The booking's events just written (stamped with the real clock) get the history's time."""
        BookingEvent.objects.filter(booking_id=booking_id, created_at__gte=self.started).update(created_at=at)

    def _customer(self) -> tuple[str, str, str]:
        fresh = next(self.phones, None) if not self.customers or self.rng.random() >= 0.15 else None
        if fresh is None:
            return self.rng.choice(self.customers)  # a returning customer (or the demo numbers ran out)
        area, line = fresh
        name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
        address = f"{self.rng.randint(2, 980)} {self.rng.choice(STREETS)}"
        customer = (name, f"{area}-555-{line:04d}", address)
        self.customers.append(customer)
        return customer

    def _slug_of(self, service_name: str) -> str:
        return next(slug for slug, service in self.services.items() if service.name == service_name)


def _first_day(answer: dict | None) -> str | None:
    """The day resolve_date's answer leads to: the day itself, the next open one, or the first reading."""
    if not answer:
        return None
    if answer.get("status") == "closed" and answer.get("next_open"):
        return answer["next_open"]["date"]
    if answer.get("readings"):
        return answer["readings"][0]["date"]
    return answer.get("date")


def _plus(day: str, days: int) -> str:
    return (datetime.fromisoformat(day) + timedelta(days=days)).date().isoformat()


def _sum(a: record.Usage, b: record.Usage) -> record.Usage:
    return record.Usage(**{name: getattr(a, name) + getattr(b, name) for name in a.__dataclass_fields__})


def seed_history(*, now: datetime | None = None, on_conversation: Callable[[], None] = lambda: None) -> HistoryResult:
    """About DAYS days of conversations up to `now`, with their bookings; call it on an empty record."""
    return History(now=now or timezone.now(), on_conversation=on_conversation).build()
