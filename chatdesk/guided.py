"""The built-in guided flow: booking without a model (no API key, or OpenAI is down).

A small state machine over the same tool registry as the model, so every step is
validated by the same Python rules and recorded as a ToolCall row. Its state lives in
Interaction.guided_state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from chatdesk.models import Interaction
from chatdesk.tools import ToolOutcome, execute_tool_call

MENU = (
    "What would you like to do? Reply with a number:\n"
    "1. Book a visit\n2. Look up a booking\n3. Cancel a booking\n4. Talk to a person"
)
YES = re.compile(r"^\s*(y|yes|yeah|yep|sure|ok|okay|confirm|correct|please do)\b", re.I)
NO = re.compile(r"^\s*(n|no|nope|cancel|stop|wrong)\b", re.I)
MAX_SLOTS_OFFERED = 8


@dataclass
class GuidedReply:
    text: str
    outcomes: list[ToolOutcome] = field(default_factory=list)


class _Flow:
    def __init__(self, interaction: Interaction) -> None:
        self.interaction = interaction
        self.state = dict(interaction.guided_state or {})
        self.outcomes: list[ToolOutcome] = []

    def call(self, name: str, **args: object) -> dict:
        n = self.state.get("calls", 0) + 1
        self.state["calls"] = n
        outcome = execute_tool_call(
            interaction=self.interaction, call_id=f"guided-{n}", name=name, raw_arguments=json.dumps(args)
        )
        self.outcomes.append(outcome)
        return outcome.result

    def go(self, step: str, **data: object) -> None:
        self.state["step"] = step
        self.state.update(data)

    def reset(self) -> None:
        calls = self.state.get("calls", 0)
        self.state = {"step": "menu", "calls": calls}

    # --- steps ----------------------------------------------------------------------

    def handle(self, text: str) -> str:
        text = text.strip()
        if re.fullmatch(r"(menu|start over|restart|main menu|help)", text, re.I):
            self.reset()
            return MENU
        step = self.state.get("step", "menu")
        return getattr(self, f"step_{step}", self.step_menu)(text)

    def step_menu(self, text: str) -> str:
        lowered = text.lower()
        if lowered.startswith("1") or "book" in lowered or "appointment" in lowered:
            return self.offer_services()
        if lowered.startswith("2") or "look" in lowered or "check" in lowered or "status" in lowered:
            self.go("lookup_number", intent="lookup")
            return "What is your booking number? It looks like BK-2026-000123."
        if lowered.startswith("3") or "cancel" in lowered:
            self.go("lookup_number", intent="cancel")
            return "Which booking would you like to cancel? Please give the booking number."
        if lowered.startswith("4") or "person" in lowered or "human" in lowered or "staff" in lowered:
            self.go("handoff_phone")
            return "Sure. What phone number should we call you back on?"
        return "Sorry, I did not catch that. " + MENU

    def offer_services(self) -> str:
        services = self.call("get_available_services", trade=None).get("services", [])
        self.go("book_service", services=[[s["service_id"], s["name"]] for s in services])
        lines = [f"{i}. {s['name']} ({s['trade']}, {s['price']})" for i, s in enumerate(services, 1)]
        return "Which service do you need? Reply with a number:\n" + "\n".join(lines)

    def step_book_service(self, text: str) -> str:
        services = self.state.get("services", [])
        choice = _pick(text, [name for _, name in services])
        if choice is None:
            return "Please reply with the number of the service, or 'menu' to start over."
        service_id, name = services[choice]
        self.go("book_date", service_id=service_id, service_name=name)
        return f"{name}. Which day would suit you? (for example 'tomorrow', 'Friday' or 'December 3')"

    def step_book_date(self, text: str) -> str:
        resolved = self.call("resolve_date", text=text)
        if "error" in resolved:
            return resolved["message"]
        slots = self.call(
            "get_available_time_slots",
            service_id=self.state["service_id"],
            date=resolved["date"],
            end_date=None,
            technician_id=None,
        )
        if "error" in slots:
            return slots["message"]
        offered = slots.get("slots", [])[:MAX_SLOTS_OFFERED]
        spoken = resolved["spoken"]
        if not offered:
            return f"Sorry, there are no free times on {spoken}. Which other day would suit you?"
        self.go(
            "book_slot",
            slots=[
                [s["start"], s["time"], s["technicians"][0]["technician_id"], s["technicians"][0]["name"]]
                for s in offered
            ],
            day=spoken,
        )
        lines = [f"{i}. {s['time']} with {s['technicians'][0]['name']}" for i, s in enumerate(offered, 1)]
        return f"Free times on {spoken}:\n" + "\n".join(lines) + "\nReply with a number, or another day."

    def step_book_slot(self, text: str) -> str:
        slots = self.state.get("slots", [])
        choice = _pick(text, [s[1] for s in slots])
        if choice is None:
            return self.step_book_date(text)  # they named another day instead
        start, time_label, technician_id, technician = slots[choice]
        self.go("book_name", start=start, time=time_label, technician_id=technician_id, technician=technician)
        return "Great. What is your full name?"

    def step_book_name(self, text: str) -> str:
        name = " ".join(text.split())
        if not name or len(name) > 120:
            return "Please give your full name (at most 120 characters)."
        self.go("book_phone", name=name)
        return f"Thanks, {name.split()[0]}. What phone number can the technician reach you on?"

    def step_book_phone(self, text: str) -> str:
        from bookings.errors import InvalidInput
        from bookings.phones import normalize_phone

        try:
            phone = normalize_phone(text)
        except InvalidInput as error:
            return f"{error.message} Please type it again, e.g. 416-555-0123."
        self.go("book_address", phone=phone)
        return "What is the address of the visit?"

    def step_book_address(self, text: str) -> str:
        address = " ".join(text.split())
        if len(address) < 5 or len(address) > 300:
            return "Please give the full street address of the visit."
        self.go("book_confirm", address=address)
        s = self.state
        return (
            f"Please check: {s['service_name']} with {s['technician']} on {s['day']} at {s['time']}, "
            f"at {address}. We will call {s['phone']} if needed. Shall I book it? (yes / no)"
        )

    def step_book_confirm(self, text: str) -> str:
        if NO.match(text):
            self.reset()
            return "No problem, nothing was booked. " + MENU
        if not YES.match(text):
            return "Please reply yes to book, or no to start over."
        s = self.state
        result = self.call(
            "create_booking",
            service_id=s["service_id"],
            start=s["start"],
            technician_id=s["technician_id"],
            customer_name=s["name"],
            customer_phone=s["phone"],
            customer_email=None,
            address=s["address"],
            notes=None,
            customer_confirmed=True,
        )
        if result.get("booked"):
            booking = result["booking"]
            self.reset()
            return (
                f"You're booked! Your booking number is {booking['booking_number']}: {booking['service']} with "
                f"{booking['technician']} on {booking['when']}. Keep the number and your phone to change or cancel."
            )
        if result.get("error") == "slot_unavailable":
            self.go("book_date")
            return "Sorry, that time was just taken. Which day should I check instead?"
        self.reset()
        return f"Sorry, I could not book that: {result.get('message', 'unknown error')}. " + MENU

    def step_lookup_number(self, text: str) -> str:
        match = re.search(r"BK-?\s?(\d{4})-?\s?(\d{1,6})", text.upper())
        if not match:
            return "Please give the booking number, like BK-2026-000123."
        self.go("lookup_phone", number=f"BK-{match[1]}-{int(match[2]):06d}")
        return "And the phone number on the booking?"

    def step_lookup_phone(self, text: str) -> str:
        result = self.call("get_booking_info", booking_number=self.state["number"], phone=text)
        if "error" in result:
            self.reset()
            return f"{result['message']} " + MENU
        b = result["booking"]
        summary = f"{b['booking_number']}: {b['service']} with {b['technician']} on {b['when']} ({b['status']})."
        if self.state.get("intent") == "cancel" and b["status"] in ("pending", "confirmed"):
            self.go("cancel_confirm", phone=text)
            return f"{summary} Do you want to cancel it? (yes / no)"
        self.reset()
        return summary + " Anything else? " + MENU

    def step_cancel_confirm(self, text: str) -> str:
        if not YES.match(text):
            self.reset()
            return "Okay, the booking stays as it is. " + MENU
        result = self.call(
            "cancel_booking",
            booking_number=self.state["number"],
            phone=self.state["phone"],
            reason="Cancelled by the customer in chat",
            customer_confirmed=True,
        )
        self.reset()
        if result.get("cancelled"):
            return f"Booking {result['booking']['booking_number']} is cancelled. " + MENU
        return f"Sorry, I could not cancel it: {result.get('message')}. " + MENU

    def step_handoff_phone(self, text: str) -> str:
        result = self.call(
            "request_human", reason="Customer asked for a person (guided chat)", name=None, phone=text, urgent=False
        )
        if "error" in result:
            return f"{result['message']} Please type the phone number again."
        self.reset()
        return f"Thanks, a staff member will call you back. Reference {result['reference']}."


def _pick(text: str, labels: list[str]) -> int | None:
    text = text.strip().lower().rstrip(".")
    if text.isdigit() and 1 <= int(text) <= len(labels):
        return int(text) - 1
    for i, label in enumerate(labels):
        if text and (text == label.lower() or text in label.lower()):
            return i
    return None


def guided_greeting() -> str:
    return MENU


def guided_reply(interaction: Interaction, text: str) -> GuidedReply:
    """Advance the guided flow with the customer's message; persists the new state."""
    flow = _Flow(interaction)
    reply = flow.handle(text)
    interaction.guided_state = flow.state
    Interaction.objects.filter(pk=interaction.pk).update(guided_state=flow.state)
    return GuidedReply(text=reply, outcomes=flow.outcomes)
