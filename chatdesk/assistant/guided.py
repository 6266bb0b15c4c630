"""The built-in guided chat: a receptionist without a model (no API key, or OpenAI is down).

It understands free text first (chatdesk.assistant.understanding: intent, service, urgency, the day
and time), carries forward what the customer already said and skips the questions it
answers; exact menu numbers still work. Every step that reads or changes bookings goes
through the same tool registry as the model (`execute_tool_call`), so the same Python rules
validate it and it is recorded as a ToolCall row. Its state lives in
Conversation.guided_state (JSON).

Every reply is written for the customer. Tool messages are shown only where they are
written for customers (resolve_date's `message`, the booking rules' messages about a phone
or email); anything meant for the model is replaced by our own words.

This module is the flow's entry point and its menu, safety and hand-off steps; the steps of
a new booking are in guided_booking.py, those of an existing one in guided_lookup.py, and
the words and plumbing they share in guided_base.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bookings.phones import business_phone, normalize_phone, phone_display
from bookings.service_matching import normalize
from chatdesk.assistant.guided_base import (
    MENU,
    MENU_CHOICES,
    MENU_LIST,
    NO,
    SHORT_MENU,
    SKIP,
    YES,
)
from chatdesk.assistant.guided_booking import BookingSteps
from chatdesk.assistant.guided_lookup import LookupSteps
from chatdesk.assistant.tools import ToolOutcome
from chatdesk.assistant.understanding import BOOK, HUMAN, Understanding
from chatdesk.conversations.models import Conversation

RESTART = re.compile(r"^(menu|main menu|start over|start again|restart|help|back|go back)$")
STOP = re.compile(r"^(stop|quit|exit|never ?mind|forget it|forget about it)$")
GAS_ADVICE = (
    "Safety first: if you smell gas, leave the house now and take everyone with you. Don't switch lights or "
    "appliances on or off, and don't use your phone until you're outside. From outside, call your gas "
    "company's emergency line or 911. Once they say it's safe, we can send a technician: reply 'book' for an "
    "emergency visit, or 'call me' and our team will call you back."
)
# Steps where the customer types free text that must not be read as a new request.
FREE_TEXT_STEPS = {"book_name", "book_phone", "book_texts", "book_address", "book_email", "handoff_phone"}


@dataclass
class GuidedReply:
    text: str
    outcomes: list[ToolOutcome] = field(default_factory=list)


class _Flow(BookingSteps, LookupSteps):
    """The whole flow: every message comes in through `handle`, which picks the step."""

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
            return f"No problem. You can also call us at {business_phone()}. " + SHORT_MENU
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
            return f"Sorry, I couldn't pass that on. Please call us at {business_phone()}."
        phone = phone_display(normalize_phone(heard.phone or text))
        self.reset()
        return (
            f"Thanks! I've asked our team to call you back at {phone} during business hours. Your reference is "
            f"{result['reference']}. If it can't wait, call us at {business_phone()}."
        )


def guided_greeting() -> str:
    return MENU


def guided_reply(conversation: Conversation, text: str) -> GuidedReply:
    """Advance the guided flow with the customer's message; persists the new state."""
    flow = _Flow(conversation)
    reply = flow.handle(text)
    conversation.guided_state = flow.state
    Conversation.objects.filter(pk=conversation.pk).update(guided_state=flow.state)
    return GuidedReply(text=reply, outcomes=flow.outcomes)
