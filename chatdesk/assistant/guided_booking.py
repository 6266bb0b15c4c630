"""The guided chat's steps for a new booking: which service, the day, the time, who and where,
the read-back and the booking itself. Moving a visit (guided_lookup.py) reuses the day and time.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from bookings import limits
from bookings.errors import InvalidInput
from bookings.phones import business_phone, normalize_phone, phone_display
from bookings.selectors import local_today
from bookings.service_matching import normalize
from bookings.services import email_clean
from bookings.text_messages import SMS_CONSENT_QUESTION
from chatdesk.assistant.guided_base import (
    DAY_EXAMPLES,
    MENU,
    NO,
    SKIP,
    YES,
    FlowBase,
)
from chatdesk.assistant.understanding import BOOK, RESCHEDULE, Understanding

MAX_SLOTS_OFFERED = 8
PARTS = {"morning": (0, 12), "midday": (11, 14), "afternoon": (12, 17), "evening": (17, 24)}
# Answers to the text-message question beyond a plain yes or no, on normalize()d text. A "no"
# phrase wins over a "yes" in the same answer ("sure, but no texts please").
TEXTS_NO = re.compile(
    r"\b(no texts?|no sms|no messages|dont text|do not text|not text|rather not|prefer not|email only|"
    r"only email|just email|by email|just call|only call|no thanks?|no thank you|not needed|dont need|"
    r"no need|skip|pass)\b"
)
YES_WORDS = {"y", "yes", "yeah", "yea", "ya", "yep", "yup", "sure", "ok", "okay", "k", "fine", "please", "alright"}
NO_WORDS = {"n", "no", "nah", "nope", "never", "dont", "not"}
TEXTS_YES = re.compile(
    r"\b(text me|texts? (are|is|would be) (fine|ok|okay|good|great)|texting is fine|fine|that works|"
    r"works for me|go for it|why not|sounds good|please do|yes please|sure thing|of course|definitely|"
    r"go ahead|thats fine|alright|all right|no problem|no worries|texts? (ok|okay|fine|good))\b"
)


def _spoken(day: date) -> str:
    return f"{day:%A, %B} {day.day}, {day.year}"


def _clock(hhmm: str) -> str:
    hour, minute = (int(p) for p in hhmm.split(":"))
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


class BookingSteps(FlowBase):
    """A new booking, from the service to the booked visit (and a moved visit's new time)."""

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
        if all(key in self.state for key in ("name", "phone", "texts", "address", "email")):
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
        self.go("book_texts", phone=phone)
        return f"Thanks. {SMS_CONSENT_QUESTION} (yes / no)"

    def step_book_texts(self, text: str, heard: Understanding) -> str:
        answer = _texts_answer(text)
        if answer is None:
            return f"Sorry, I didn't catch that. {SMS_CONSENT_QUESTION} Please reply yes or no."
        # The answer itself (and the question it answers) stays in the transcript; the
        # create_booking tool records both from there.
        self.go("book_address", texts=answer)
        lead = "Great, we'll text you." if answer else "No problem, no texts."
        return f"{lead} What is the address of the visit?"

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
        texts = " We will text you the confirmation and a reminder." if s.get("texts") else ""
        return (
            f"Please check: {s['service_name']} with {s['technician']} on {s['day']} at {s['time']}, at "
            f"{s['address']}. We will call {phone_display(s['phone'])} if needed{email}.{texts} "
            "Shall I book it? (yes / no)"
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
            sms_consent=s.get("texts"),
            address=s["address"],
            notes=s.get("notes") or None,
            customer_confirmed=True,
        )
        if result.get("booked"):
            booking = result["booking"]
            email = f" A confirmation email is on its way to {s['email']}." if s.get("email") else ""
            texts = " We'll text you a reminder the day before." if result.get("text_messages") == "on" else ""
            self.reset()
            return (
                f"You're booked! Your booking number is {booking['booking_number']}: {booking['service']} with "
                f"{booking['technician']} on {booking['when']}.{email}{texts} Keep the number and your phone number "
                "to change or cancel the visit."
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
            f"Sorry, I couldn't do that here. Please call us at {business_phone()}, or reply 5 and our "
            "team will call you back."
        )


def _texts_answer(text: str) -> bool | None:
    """Yes (True), no (False) or unclear (None) to the text-message question, in the customer's
    words: "yeah sure", "oh ok yes", "no thanks, email only", "sure, but no texts", a thumbs up."""
    said = normalize(text)
    if TEXTS_NO.search(said):
        return False
    if TEXTS_YES.search(said) or any(mark in text for mark in ("👍", "👌")):
        return True
    words = set(said.split())
    # A short answer with only yes-words or only no-words ("oh ok yes", "nope sorry") is clear;
    # both ("not sure") or neither ("what for?", an address typed early) is not.
    if len(words) <= 6:
        yes, no = bool(words & YES_WORDS), bool(words & NO_WORDS)
        if yes != no:
            return yes
    return None


def _slot_row(slot: dict) -> list:
    first = slot["technicians"][0]
    return [slot["start"], slot["time"], first["technician_id"], first["name"]]


def _in_part(hhmm: str, part: str) -> bool:
    first, last = PARTS[part]
    return first <= int(hhmm[:2]) < last
