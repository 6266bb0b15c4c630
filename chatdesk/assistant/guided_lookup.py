"""The guided chat's steps for an existing booking: look it up (number and phone), cancel it,
or move it (the new day and time are chosen with the booking steps, guided_booking.py).
"""

from __future__ import annotations

from bookings.models import Booking
from bookings.phones import business_phone
from chatdesk.assistant.guided_base import (
    DAY_EXAMPLES,
    NO,
    SHORT_MENU,
    YES,
    FlowBase,
)
from chatdesk.assistant.understanding import CANCEL, LOOKUP, RESCHEDULE, Understanding


class LookupSteps(FlowBase):
    """A booking the customer already has: find it with its number and phone, then act on it."""

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
            return f"Sorry, I can't look up bookings here right now. Please call us at {business_phone()}."
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
        return f"Sorry, I couldn't cancel it here. Please call us at {business_phone()}. " + SHORT_MENU

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
