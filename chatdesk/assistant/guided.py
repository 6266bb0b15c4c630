"""The built-in guided chat: a receptionist without a model (no API key, or OpenAI is down).

It understands free text first (chatdesk.assistant.understanding: intent, service, urgency, the day
and time), carries forward what the customer already said and skips the questions it
answers; exact menu numbers still work. Every step that reads or changes bookings goes
through the same tool registry as the model (`execute_tool_call`), so the same Python rules
validate it and it is recorded as a ToolCall row. Its state lives in
Interaction.guided_state (JSON).

Every reply is written for the customer. Tool messages are shown only where they are
written for customers (resolve_date's `message`, the booking rules' messages about a phone
or email); anything meant for the model is replaced by our own words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings

from bookings import limits
from bookings.errors import InvalidInput
from bookings.models import Booking
from bookings.phones import normalize_phone, phone_display
from bookings.selectors import local_today
from bookings.service_matching import ServiceTerms, normalize, service_catalogue
from bookings.services import email_clean
from chatdesk.assistant.tools import ToolOutcome, execute_tool_call
from chatdesk.assistant.understanding import BOOK, CANCEL, HUMAN, LOOKUP, RESCHEDULE, Understanding, understand
from chatdesk.conversations.models import Interaction

MENU_CHOICES = [
    (BOOK, "Book a visit"),
    (LOOKUP, "Look up a booking"),
    (CANCEL, "Cancel a visit"),
    (RESCHEDULE, "Move a visit"),
    (HUMAN, "Talk to a person"),
]
MENU_LIST = "\n".join(f"{i}. {label}" for i, (_, label) in enumerate(MENU_CHOICES, 1))
MENU = (
    'What would you like to do? Tell me in your own words (for example: "my AC stopped working, can someone '
    f'come tomorrow morning?"), or reply with a number:\n{MENU_LIST}'
)
SHORT_MENU = f"Anything else? Tell me, or reply with a number:\n{MENU_LIST}"
YES = re.compile(
    r"^\s*(y|ya|yes|yeah|yea|yep|yup|sure|ok|okay|k|confirm|confirmed|correct|right|thats right|please do|"
    r"go ahead|do it|book it|sounds good|perfect|great|absolutely|of course|please)\b",
    re.I,
)
NO = re.compile(r"^\s*(n|no|nah|nope|not really|dont|do not|wrong|thats wrong|not right)\b", re.I)
RESTART = re.compile(r"^(menu|main menu|start over|start again|restart|help|back|go back)$")
STOP = re.compile(r"^(stop|quit|exit|never ?mind|forget it|forget about it)$")
SKIP = re.compile(
    r"^(skip|no|nope|none|n a|na|no thanks|no thank you|no email|dont have one|i dont have one|i dont have email|"
    r"pass|not now|rather not|id rather not)$"
)
MAX_SLOTS_OFFERED = 8
DAY_EXAMPLES = "(for example 'tomorrow', 'Friday' or 'December 18')"
GAS_ADVICE = (
    "Safety first: if you smell gas, leave the house now and take everyone with you. Don't switch lights or "
    "appliances on or off, and don't use your phone until you're outside. From outside, call your gas "
    "company's emergency line or 911. Once they say it's safe, we can send a technician: reply 'book' for an "
    "emergency visit, or 'call me' and our team will call you back."
)
PARTS = {"morning": (0, 12), "midday": (11, 14), "afternoon": (12, 17), "evening": (17, 24)}
# Steps where the customer types free text that must not be read as a new request.
FREE_TEXT_STEPS = {"book_name", "book_phone", "book_address", "book_email", "handoff_phone"}


@dataclass
class GuidedReply:
    text: str
    outcomes: list[ToolOutcome] = field(default_factory=list)


def _spoken(day: date) -> str:
    return f"{day:%A, %B} {day.day}, {day.year}"


def _clock(hhmm: str) -> str:
    hour, minute = (int(p) for p in hhmm.split(":"))
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


class _Flow:
    def __init__(self, interaction: Interaction) -> None:
        self.interaction = interaction
        self.state = {"step": "menu", **(interaction.guided_state or {})}
        self.outcomes: list[ToolOutcome] = []
        self._catalogue: list[ServiceTerms] | None = None

    # --- plumbing -----------------------------------------------------------------------

    def call(self, tool: str, **args: object) -> dict:
        """Run a tool as the model would, recorded as a ToolCall row."""
        n = self.state.get("calls", 0) + 1
        self.state["calls"] = n
        outcome = execute_tool_call(
            interaction=self.interaction, call_id=f"guided-{n}", name=tool, raw_arguments=json.dumps(args)
        )
        self.outcomes.append(outcome)
        return outcome.result

    @property
    def catalogue(self) -> list[ServiceTerms]:
        if self._catalogue is None:
            self._catalogue = service_catalogue()
        return self._catalogue

    def service(self, service_id: str) -> ServiceTerms | None:
        return next((s for s in self.catalogue if s.service_id == service_id), None)

    def go(self, step: str, **data: object) -> None:
        self.state["step"] = step
        self.state.update(data)

    def reset(self) -> None:
        self.state = {"step": "menu", "calls": self.state.get("calls", 0)}

    def understand(self, text: str) -> Understanding:
        return understand(text, self.catalogue, today=local_today())

    # --- every message --------------------------------------------------------------------

    def handle(self, text: str) -> str:
        text = " ".join(text.split())
        said = normalize(text)
        step = self.state.get("step", "menu")
        if RESTART.match(said):
            self.reset()
            return MENU
        # "cancel" while booking or moving means stop this, not cancel a booking.
        stopping = STOP.match(said) or (
            re.fullmatch(r"cancel( (it|that|this))?", said) and step.startswith(("book", "day"))
        )
        if stopping and step != "menu":
            self.reset()
            return "No problem, I've stopped there and nothing was changed. " + MENU
        heard = self.understand(text)
        if heard.gas:
            return self.gas_advice(heard)
        if heard.intent == HUMAN and step not in ("menu", "gas") and step not in FREE_TEXT_STEPS:
            return self.start_handoff(heard, text)
        if step in ("book_date", "day_choice", "book_slot") and self.state.get("intent") == BOOK:
            # A new problem in the middle of booking ("water everywhere under my sink!!") starts
            # over with it, as a receptionist would; the same service goes on.
            other = heard.service and heard.service != self.state.get("service_id")
            if (heard.urgent and not self.state.get("urgent")) or (other and heard.intent == BOOK):
                return self.start_booking(heard, text)
        handler = getattr(self, f"step_{step}", None)
        if handler is None:
            self.reset()
            handler = self.step_menu
        return handler(text, heard)

    def step_menu(self, text: str, heard: Understanding) -> str:
        if heard.number is not None:
            if not 1 <= heard.number <= len(MENU_CHOICES):
                return (
                    f"Please reply with a number from 1 to {len(MENU_CHOICES)}, or tell me what you need.\n{MENU_LIST}"
                )
            heard = Understanding(intent=MENU_CHOICES[heard.number - 1][0])
            text = ""
        if heard.intent is None:
            said = normalize(text)
            if re.match(r"^(thanks|thank you|thx|ty|cheers|great|perfect|ok|okay|cool)\b", said):
                return "You're welcome! " + SHORT_MENU
            if re.match(r"^(hi|hey|hello|yo|hiya|good (morning|afternoon|evening))\b", said):
                return "Hi! " + MENU
            return "Sorry, I didn't quite catch that. " + MENU
        if heard.intent == BOOK:
            return self.start_booking(heard, text)
        if heard.intent == HUMAN:
            return self.start_handoff(heard, text)
        return self.start_booking_lookup(heard)

    # --- safety -----------------------------------------------------------------------------

    def gas_advice(self, heard: Understanding) -> str:
        self.reset()
        self.go("gas", pending_service=heard.service)
        return GAS_ADVICE

    def step_gas(self, text: str, heard: Understanding) -> str:
        pending = self.state.get("pending_service")
        if heard.intent == HUMAN or re.search(r"\bcall\b", normalize(text)):
            return self.start_handoff(Understanding(intent=HUMAN, urgent=True, phone=heard.phone), text)
        if (YES.match(text) or heard.intent == BOOK) and pending:
            wanted = Understanding(
                intent=BOOK,
                services=heard.services if heard.service and heard.service != pending else (pending,),
                urgent=True,
                date_phrase=heard.date_phrase,
                part_of_day=heard.part_of_day,
                time=heard.time,
            )
            return self.start_booking(wanted, "Smelled gas")
        if NO.match(text):
            self.reset()
            return "Okay. Please stay safe. " + SHORT_MENU
        self.reset()
        return self.step_menu(text, heard)

    # --- booking: which service ---------------------------------------------------------------

    def start_booking(self, heard: Understanding, text: str) -> str:
        calls = self.state.get("calls", 0)
        described = heard.services or heard.trade or heard.urgent or len(text.split()) >= 4
        self.state = {
            "step": "menu",
            "calls": calls,
            "intent": BOOK,
            "urgent": heard.urgent,
            "notes": text[:500] if described and heard.number is None else "",
            "want": {"date": heard.date_phrase, "part": heard.part_of_day, "time": heard.time},
        }
        if heard.service:
            return self.service_chosen(heard.service)
        if heard.services:
            return self.offer_choices(list(heard.services), "Which of these do you need?")
        if heard.trade:
            ids = [s.service_id for s in self.catalogue if s.trade == heard.trade]
            trade_name = next((s.trade_name for s in self.catalogue if s.trade == heard.trade), heard.trade)
            if ids:
                return self.offer_choices(ids, f"Which {trade_name} service do you need?")
        return self.offer_services()

    def offer_services(self) -> str:
        services = self.call("get_available_services", trade=None).get("services", [])
        # Emergency services last: "1" should not be the most expensive visit by accident.
        services.sort(key=lambda s: (s["trade"], s["emergency"], s["name"]))
        self.go("book_service", choices=[[s["service_id"], s["name"]] for s in services])
        lines = [f"{i}. {s['name']} ({s['trade']}, {s['price']})" for i, s in enumerate(services, 1)]
        return "Which service do you need? Reply with a number, or describe the problem:\n" + "\n".join(lines)

    def offer_choices(self, service_ids: list[str], question: str) -> str:
        known = [s for s in (self.service(i) for i in service_ids) if s]
        known.sort(key=lambda s: (s.trade_name, s.emergency, s.name))
        self.go("book_service", choices=[[s.service_id, s.name] for s in known])
        lines = [f"{i}. {s.name} ({s.price})" for i, s in enumerate(known, 1)]
        return f"{question} Reply with a number:\n" + "\n".join(lines)

    def step_book_service(self, text: str, heard: Understanding) -> str:
        choices = self.state.get("choices", [])
        self.remember_wishes(heard)
        if heard.number is not None:
            if 1 <= heard.number <= len(choices):
                return self.service_chosen(choices[heard.number - 1][0])
            return f"Please reply with a number from 1 to {len(choices)}, or describe the problem."
        offered = [service_id for service_id, _ in choices]
        if heard.services:
            among = [s for s in heard.services if s in offered]
            if len(among) == 1:
                return self.service_chosen(among[0])
            if heard.service:  # they described a service that was not listed: take it
                return self.service_chosen(heard.service)
        said = normalize(text)
        named = [sid for sid, name in choices if said and said in normalize(name)]
        if len(named) == 1:
            return self.service_chosen(named[0])
        if heard.urgent:
            self.state["urgent"] = True
        return "Sorry, which one? Please reply with the number from the list, or describe the problem."

    def service_chosen(self, service_id: str) -> str:
        service = self.service(service_id)
        if service is None:
            return self.offer_services()
        self.state.update(service_id=service.service_id, service_name=service.name)
        want = self.state.get("want") or {}
        intro = f"{service.name}."
        if self.state.get("urgent"):
            intro = f"That sounds urgent, so let's find you the earliest visit: {service.name} ({service.price})."
        if want.get("date"):
            return self.day_answer(self.call("resolve_date", text=want["date"]), prefix=intro + " ")
        if want.get("time") == "earliest" or self.state.get("urgent"):
            return self.offer_earliest(prefix=intro + " ")
        self.go("book_date")
        return f"{intro} Which day would suit you? {DAY_EXAMPLES}"

    def remember_wishes(self, heard: Understanding) -> None:
        want = self.state.setdefault("want", {})
        for key, value in (("date", heard.date_phrase), ("part", heard.part_of_day), ("time", heard.time)):
            if value:
                want[key] = value

    # --- the day ------------------------------------------------------------------------------

    def step_book_date(self, text: str, heard: Understanding) -> str:
        self.remember_wishes(heard)
        if heard.number is not None and not heard.date_phrase:
            return f"Which day would suit you? {DAY_EXAMPLES}"
        if not heard.date_phrase and heard.time == "earliest":
            return self.offer_earliest()
        answer = self.call("resolve_date", text=heard.date_phrase or text[:100])
        return self.day_answer(answer)

    def day_answer(self, answer: dict, prefix: str = "") -> str:
        """Act on resolve_date's answer: its status says what the day means for booking."""
        self.state.setdefault("want", {})["date"] = None
        if "error" in answer:
            self.go("book_date")
            return f"{prefix}Sorry, I couldn't tell which day you mean. Which day would suit you? {DAY_EXAMPLES}"
        status = answer.get("status") or ("past" if answer.get("days_from_today", 0) < 0 else "ok")
        message = answer.get("message") or ""
        if status == "ok":
            spoken = answer.get("spoken") or _spoken(date.fromisoformat(answer["date"]))
            # The resolver's note is worth reading ("Friday the 19th is a Thursday", "read as month/day");
            # its plain "That's <day>." is not.
            note = f"{message} " if message and not message.startswith("That's ") else ""
            return self.offer_day(answer["date"], spoken, prefix + note)
        if status == "ambiguous":
            readings = answer.get("readings", [])
            self.go("day_choice", readings=[[r["date"], r["spoken"]] for r in readings])
            lines = "\n".join(
                f"{i}. {r['spoken']}"
                + (f" ({r['label']})" if r.get("label") and r["label"] != r.get("weekday") else "")
                for i, r in enumerate(readings, 1)
            )
            lead = message.split("Did you mean")[0].strip()
            return f"{prefix}{lead + ' ' if lead else ''}Which day do you mean? Reply with a number:\n{lines}"
        message = message or "We can't book that day."
        next_open = answer.get("next_open")
        if next_open:
            self.go("day_choice", readings=[[next_open["date"], next_open["spoken"]]])
            return f"{prefix}{message} Shall I check {next_open['spoken']}? (yes, or name another day)"
        self.go("book_date")
        return f"{prefix}{message} Which other day would suit you?"

    def step_day_choice(self, text: str, heard: Understanding) -> str:
        readings = self.state.get("readings", [])
        choice = None
        if heard.number is not None and 1 <= heard.number <= len(readings):
            choice = readings[heard.number - 1]
        elif len(readings) == 1 and YES.match(text):
            choice = readings[0]
        if choice is not None:
            # Judge the chosen reading on its own (it may be closed or past).
            return self.day_answer(self.call("resolve_date", text=choice[0]))
        if heard.number is not None:
            return f"Please reply with a number from 1 to {len(readings)}, or name another day."
        if NO.match(text) and not heard.date_phrase:
            self.go("book_date")
            return f"Which day would suit you instead? {DAY_EXAMPLES}"
        return self.step_book_date(text, heard)

    def offer_earliest(self, prefix: str = "") -> str:
        today = local_today()
        found = self.call(
            "get_available_time_slots",
            service_id=self.state["service_id"],
            date=today.isoformat(),
            end_date=(today + timedelta(days=6)).isoformat(),
            technician_id=None,
        )
        slots = found.get("slots", []) if "error" not in found else []
        if not slots:
            self.go("book_date")
            return f"{prefix}Sorry, nothing is free in the next week. Which day would suit you? {DAY_EXAMPLES}"
        first_day = slots[0]["date"]
        same_day = [s for s in slots if s["date"] == first_day]
        return self.present_slots(first_day, _spoken(date.fromisoformat(first_day)), same_day, prefix)

    def offer_day(self, day_iso: str, spoken: str, prefix: str = "") -> str:
        found = self.call(
            "get_available_time_slots",
            service_id=self.state["service_id"],
            date=day_iso,
            end_date=None,
            technician_id=None,
        )
        if "error" in found:
            self.go("book_date")
            return f"{prefix}Sorry, I can't offer times on {spoken}. Which other day would suit you? {DAY_EXAMPLES}"
        slots = found.get("slots", [])
        if slots:
            return self.present_slots(day_iso, spoken, slots, prefix)
        # Nothing that day: look at the week after, as a receptionist would.
        start = date.fromisoformat(day_iso) + timedelta(days=1)
        later = self.call(
            "get_available_time_slots",
            service_id=self.state["service_id"],
            date=start.isoformat(),
            end_date=(start + timedelta(days=6)).isoformat(),
            technician_id=None,
        )
        later_slots = later.get("slots", []) if "error" not in later else []
        if not later_slots:
            self.go("book_date")
            return f"{prefix}Sorry, there are no free times on {spoken}. Which other day would suit you?"
        next_day = later_slots[0]["date"]
        return self.present_slots(
            next_day,
            _spoken(date.fromisoformat(next_day)),
            [s for s in later_slots if s["date"] == next_day],
            f"{prefix}Sorry, there are no free times on {spoken}. The next free day is "
            f"{_spoken(date.fromisoformat(next_day))}. ",
        )

    # --- the time -----------------------------------------------------------------------------

    def present_slots(self, day_iso: str, spoken: str, slots: list[dict], prefix: str = "") -> str:
        want = self.state.setdefault("want", {})
        self.state.update(day=spoken, day_iso=day_iso)
        wanted_time = want.pop("time", None)
        if wanted_time and wanted_time not in ("earliest", "latest"):
            exact = [s for s in slots if s["start"][11:16] == wanted_time]
            if exact:
                return self.slot_chosen(_slot_row(exact[0]), f"{prefix}{_clock(wanted_time)} on {spoken} is free. ")
            prefix += f"{_clock(wanted_time)} isn't free on {spoken}. "
        part = want.get("part")
        shown = slots
        if part in PARTS:
            in_part = [s for s in slots if _in_part(s["start"][11:16], part)]
            if in_part:
                shown = in_part
            else:
                prefix += f"Nothing is free in the {part} on {spoken}. "
        offered = [_slot_row(s) for s in shown[:MAX_SLOTS_OFFERED]]
        # All the day's free times are kept: "2 pm" may be free although only eight are listed.
        self.go("book_slot", slots=offered, day_slots=[_slot_row(s) for s in slots])
        lines = "\n".join(f"{i}. {row[1]} with {row[3]}" for i, row in enumerate(offered, 1))
        return f"{prefix}Free times on {spoken}:\n{lines}\nReply with a number, a time like 9am, or another day."

    def step_book_slot(self, text: str, heard: Understanding) -> str:
        slots = self.state.get("slots", [])
        ask_again = f"Please reply with a number from 1 to {len(slots)}, a time like 9am, or another day."
        if heard.number is not None:
            if 1 <= heard.number <= len(slots):
                return self.slot_chosen(slots[heard.number - 1])
            return ask_again
        said = normalize(text)
        if heard.date_phrase:
            return self.step_book_date(text, heard)
        day_slots = self.state.get("day_slots") or slots
        if heard.time == "earliest" or re.fullmatch(r"(the )?(first|1st|earliest)( one| time| slot)?", said):
            return self.slot_chosen(slots[0])
        if heard.time == "latest" or re.fullmatch(r"(the )?(last|latest)( one| time| slot)?", said):
            return self.slot_chosen(slots[-1])
        if heard.time:
            exact = [row for row in day_slots if row[0][11:16] == heard.time]
            if exact:
                return self.slot_chosen(exact[0])
            return (
                f"Sorry, {_clock(heard.time)} isn't one of the free times on {self.state.get('day')}. " + self.relist()
            )
        if heard.part_of_day in PARTS:
            in_part = [row for row in day_slots if _in_part(row[0][11:16], heard.part_of_day)]
            if len(in_part) == 1:
                return self.slot_chosen(in_part[0])
            if in_part:
                self.state["slots"] = in_part[:MAX_SLOTS_OFFERED]
                return f"In the {heard.part_of_day}: " + self.relist()
            return f"Nothing is free in the {heard.part_of_day} on {self.state.get('day')}. " + self.relist()
        return "Sorry, I didn't catch that. " + ask_again

    def relist(self) -> str:
        slots = self.state.get("slots", [])
        lines = "\n".join(f"{i}. {row[1]} with {row[3]}" for i, row in enumerate(slots, 1))
        return f"Free times on {self.state.get('day')}:\n{lines}\nReply with a number, a time like 9am, or another day."

    def slot_chosen(self, row: list, prefix: str = "") -> str:
        start, time_label, technician_id, technician = row
        self.state.update(start=start, time=time_label, technician_id=technician_id, technician=technician)
        if self.state.get("intent") == RESCHEDULE:
            self.go("move_confirm")
            booking = self.state["booking"]
            return (
                f"{prefix}Move booking {booking['number']} from {booking['when']} to {self.state['day']} at "
                f"{time_label} with {technician}? (yes / no)"
            )
        if all(key in self.state for key in ("name", "phone", "address", "email")):
            return prefix + self.read_back()  # a new time after a clash: the details are known
        self.go("book_name")
        return f"{prefix}Great. What is your full name?"

    # --- who and where ------------------------------------------------------------------------

    def step_book_name(self, text: str, heard: Understanding) -> str:
        name = re.sub(
            r"^(hi |hey )?(my name is|my names|name is|names|its|it is|im|i am|this is)\s+", "", text, flags=re.I
        )
        name = name.strip(" .,!")
        if not re.search(r"[^\W\d_]", name) or "@" in name or sum(c.isdigit() for c in name) >= 3:
            return "Sorry, what is your name? Please type your first and last name."
        if len(name) > limits.MAX_NAME:
            return f"Please give your name in at most {limits.MAX_NAME} characters."
        self.go("book_phone", name=name)
        return f"Thanks, {name.split()[0]}. What phone number can the technician reach you on?"

    def step_book_phone(self, text: str, heard: Understanding) -> str:
        try:
            phone = normalize_phone(heard.phone or text)
        except InvalidInput as error:
            return f"{error.message} Please type it with the area code, e.g. 416-555-0123."
        self.go("book_address", phone=phone)
        return "What is the address of the visit?"

    def step_book_address(self, text: str, heard: Understanding) -> str:
        address = text.strip()
        if (
            not (5 <= len(address) <= limits.MAX_ADDRESS)
            or not re.search(r"\d", address)
            or not re.search(r"[A-Za-z]", address)
        ):
            return "Please give the street address with the house number, e.g. 12 Queen St W, Toronto."
        self.go("book_email", address=address)
        return "Thanks. What email should we send the confirmation to? (or reply 'skip')"

    def step_book_email(self, text: str, heard: Understanding) -> str:
        if SKIP.match(normalize(text)):
            self.state["email"] = ""
            return self.read_back()
        candidate = heard.email or text.strip()
        try:
            if "@" not in candidate:
                raise InvalidInput("That doesn't look like an email address.", field="email")
            email = email_clean(candidate)
        except InvalidInput as error:
            return f"{error.message} Please type it again, or reply 'skip'."
        self.state["email"] = email
        return self.read_back()

    def read_back(self) -> str:
        s = self.state
        self.go("book_confirm")
        email = f" and email the confirmation to {s['email']}" if s.get("email") else ""
        return (
            f"Please check: {s['service_name']} with {s['technician']} on {s['day']} at {s['time']}, at "
            f"{s['address']}. We will call {phone_display(s['phone'])} if needed{email}. Shall I book it? (yes / no)"
        )

    def step_book_confirm(self, text: str, heard: Understanding) -> str:
        if NO.match(text):
            self.reset()
            return "No problem, nothing was booked. " + MENU
        if not YES.match(text):
            return "Please reply yes to book it, or no to start over."
        s = self.state
        result = self.call(
            "create_booking",
            service_id=s["service_id"],
            start=s["start"],
            technician_id=s["technician_id"],
            customer_name=s["name"],
            customer_phone=s["phone"],
            customer_email=s.get("email") or None,
            address=s["address"],
            notes=s.get("notes") or None,
            customer_confirmed=True,
        )
        if result.get("booked"):
            booking = result["booking"]
            email = f" A confirmation email is on its way to {s['email']}." if s.get("email") else ""
            self.reset()
            return (
                f"You're booked! Your booking number is {booking['booking_number']}: {booking['service']} with "
                f"{booking['technician']} on {booking['when']}.{email} Keep the number and your phone number to "
                "change or cancel the visit."
            )
        return self.write_failed(result, s.get("day_iso"), s.get("day"))

    def write_failed(self, result: dict, day_iso: str | None, spoken: str | None) -> str:
        if result.get("error") == "slot_unavailable" and day_iso and spoken:
            return self.offer_day(day_iso, spoken, "Sorry, that time was just taken. ")
        field_name = result.get("field") or ""
        if result.get("error") == "invalid_input" and field_name in ("customer_email", "email"):
            self.go("book_email")
            return f"{result['message']} Please type the email again, or reply 'skip'."
        if result.get("error") == "invalid_input" and field_name in ("customer_phone", "phone"):
            self.go("book_phone")
            return f"{result['message']} Please type the phone number again, e.g. 416-555-0123."
        self.reset()
        return (
            f"Sorry, I couldn't do that here. Please call us at {settings.BUSINESS_PHONE}, or reply 5 and our "
            "team will call you back."
        )

    # --- look up, cancel, move ------------------------------------------------------------------

    def start_booking_lookup(self, heard: Understanding) -> str:
        calls = self.state.get("calls", 0)
        self.state = {
            "step": "booking_number",
            "calls": calls,
            "intent": heard.intent,
            "want": {"date": heard.date_phrase, "part": heard.part_of_day, "time": heard.time},
        }
        if heard.booking_number:
            self.state["number"] = heard.booking_number
            if heard.phone:
                return self.look_up(heard.phone)
            self.go("booking_phone")
            return "And the phone number on the booking?"
        question = {
            LOOKUP: "Sure. What is your booking number? It looks like BK-2026-000123.",
            CANCEL: "Which booking would you like to cancel? Please give the booking number (like BK-2026-000123).",
            RESCHEDULE: "Sure, let's move your visit. What is your booking number? It looks like BK-2026-000123.",
        }
        return question[heard.intent]

    def step_booking_number(self, text: str, heard: Understanding) -> str:
        if not heard.booking_number:
            return "Please give the booking number, like BK-2026-000123. It is in your confirmation."
        self.state["number"] = heard.booking_number
        if heard.phone:
            return self.look_up(heard.phone)
        self.go("booking_phone")
        return "And the phone number on the booking?"

    def step_booking_phone(self, text: str, heard: Understanding) -> str:
        return self.look_up(heard.phone or text)

    def look_up(self, phone: str) -> str:
        result = self.call("get_booking_info", booking_number=self.state["number"], phone=phone[:40])
        if result.get("error") == "booking_not_found":
            self.go("booking_number")
            return (
                "Sorry, no booking matches that number and phone number. Please check the booking number and "
                "type it again, or reply 'menu'."
            )
        if result.get("error") in ("lookup_locked", "lookup_unavailable"):
            # The failed-lookup limit's own words are written for the customer.
            self.reset()
            return result["message"]
        if "error" in result:
            self.reset()
            return f"Sorry, I can't look up bookings here right now. Please call us at {settings.BUSINESS_PHONE}."
        b = result["booking"]
        active = b["status"] in ("pending", "confirmed")
        summary = f"{b['booking_number']}: {b['service']} with {b['technician']} on {b['when']}"
        intent = self.state.get("intent")
        if intent == LOOKUP or not active:
            status = {"pending": "waiting for confirmation", "no_show": "missed"}.get(b["status"], b["status"])
            self.reset()
            if intent != LOOKUP:
                return f"{summary}. That visit is {status}, so it can't be changed here. " + SHORT_MENU
            return f"{summary} ({status}). " + SHORT_MENU
        if intent == CANCEL:
            self.go("cancel_confirm", phone=phone)
            return f"{summary}. Do you want to cancel it? (yes / no)"
        service_id = (
            Booking.objects.filter(pk=self.outcomes[-1].booking_id).values_list("service__slug", flat=True).first()
        )
        self.state.update(
            service_id=service_id,
            service_name=b["service"],
            booking={"number": b["booking_number"], "phone": phone, "when": b["when"]},
        )
        want = self.state.get("want") or {}
        if want.get("date"):
            return self.day_answer(self.call("resolve_date", text=want["date"]), prefix=f"{summary}. ")
        self.go("book_date")
        return f"{summary}. Which day would you like instead? {DAY_EXAMPLES}"

    def step_cancel_confirm(self, text: str, heard: Understanding) -> str:
        if NO.match(text):
            self.reset()
            return "Okay, the booking stays as it is. " + SHORT_MENU
        if not YES.match(text):
            return "Please reply yes to cancel the visit, or no to keep it."
        result = self.call(
            "cancel_booking",
            booking_number=self.state["number"],
            phone=self.state["phone"],
            reason="Cancelled by the customer in the guided chat",
            customer_confirmed=True,
        )
        self.reset()
        if result.get("cancelled"):
            return f"Booking {result['booking']['booking_number']} is cancelled. " + SHORT_MENU
        return f"Sorry, I couldn't cancel it here. Please call us at {settings.BUSINESS_PHONE}. " + SHORT_MENU

    def step_move_confirm(self, text: str, heard: Understanding) -> str:
        booking = self.state["booking"]
        if NO.match(text):
            self.reset()
            return f"Okay, your visit stays on {booking['when']}. " + SHORT_MENU
        if not YES.match(text):
            return "Please reply yes to move the visit, or no to keep it as it is."
        result = self.call(
            "reschedule_booking",
            booking_number=booking["number"],
            phone=booking["phone"],
            new_start=self.state["start"],
            technician_id=self.state["technician_id"],
            customer_confirmed=True,
        )
        if result.get("rescheduled"):
            moved = result["booking"]
            self.reset()
            return (
                f"Done! Booking {moved['booking_number']} is moved to {moved['when']} with {moved['technician']}. "
                + SHORT_MENU
            )
        return self.write_failed(result, self.state.get("day_iso"), self.state.get("day"))

    # --- a person -------------------------------------------------------------------------------

    def start_handoff(self, heard: Understanding, text: str) -> str:
        calls = self.state.get("calls", 0)
        name = self.state.get("name")
        reason = "Asked for a person in the guided chat"
        if text and heard.number is None and normalize(text) not in ("talk to a person", "human", "agent"):
            reason += f": {text[:300]}"
        self.state = {"step": "handoff_phone", "calls": calls, "reason": reason, "urgent": heard.urgent}
        if name:
            self.state["name"] = name
        if heard.phone:
            return self.step_handoff_phone(heard.phone, heard)
        return "Of course. What phone number should our team call you back on?"

    def step_handoff_phone(self, text: str, heard: Understanding) -> str:
        if SKIP.match(normalize(text)):
            self.reset()
            return f"No problem. You can also call us at {settings.BUSINESS_PHONE}. " + SHORT_MENU
        result = self.call(
            "request_human",
            reason=self.state.get("reason") or "Asked for a person in the guided chat",
            name=self.state.get("name"),
            phone=(heard.phone or text)[:40],
            urgent=bool(self.state.get("urgent")),
        )
        if result.get("error") == "invalid_input":
            return "That doesn't look like a phone number. Please type it with the area code, e.g. 416-555-0123."
        if "error" in result:
            self.reset()
            return f"Sorry, I couldn't pass that on. Please call us at {settings.BUSINESS_PHONE}."
        phone = phone_display(normalize_phone(heard.phone or text))
        self.reset()
        return (
            f"Thanks! I've asked our team to call you back at {phone} during business hours. Your reference is "
            f"{result['reference']}. If it can't wait, call us at {settings.BUSINESS_PHONE}."
        )


def _slot_row(slot: dict) -> list:
    first = slot["technicians"][0]
    return [slot["start"], slot["time"], first["technician_id"], first["name"]]


def _in_part(hhmm: str, part: str) -> bool:
    first, last = PARTS[part]
    return first <= int(hhmm[:2]) < last


def guided_greeting() -> str:
    return MENU


def guided_reply(interaction: Interaction, text: str) -> GuidedReply:
    """Advance the guided flow with the customer's message; persists the new state."""
    flow = _Flow(interaction)
    reply = flow.handle(text)
    interaction.guided_state = flow.state
    Interaction.objects.filter(pk=interaction.pk).update(guided_state=flow.state)
    return GuidedReply(text=reply, outcomes=flow.outcomes)
