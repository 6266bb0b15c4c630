"""What a customer says about a day, turned into a calendar date and what it means for booking.

Models are unreliable at calendar arithmetic (the predecessor turned "Friday" into a
Saturday; "a week from today" became today), so the model never computes a date: it passes
the customer's words (or, as a fallback, structured parts) to `resolve_date`, and reads the
answer's weekday, date and message back. The same `day_for_booking()` serves the tool, the
guided flow (through the tool) and voice (same tool registry).

Two layers:

1. `understand(text, today=...)` / `understand_parts(parts, today=...)`
   (chatdesk/assistant/date_grammar.py, its vocabulary in date_words.py): a deterministic
   English grammar, pure (no database), in the business's local calendar. It returns every
   reading of the words: one for "Friday", two for "next Friday" said on a Wednesday (the
   coming one, or the one of next week), a span for "next week".
2. `day_for_booking(...)` (this module): judges each reading against the booking rules (past,
   beyond the horizon, closed weekday or closed day) and writes the customer-facing message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from chatdesk.assistant.date_grammar import (
    Reading,
    Understanding,
    UnresolvedDate,
    spoken,
    spoken_short,
    understand,
    understand_parts,
)

# --- the booking answer ---------------------------------------------------------------------


@dataclass
class _Judged:
    day: date
    status: str
    message: str
    label: str = ""
    next_open: date | None = None
    extra: dict = field(default_factory=dict)


def day_for_booking(text: str | None = None, *, parts: dict | None = None, now: datetime) -> dict:
    """What the customer's words (or the model's structured parts) mean for booking.

    The answer of the `resolve_date` tool (see the contract in the module docstring of
    chatdesk.assistant.tools): status ok / past / beyond_horizon / closed / ambiguous / unresolved,
    with the date, its weekday, and a message written for the customer.
    """
    from django.conf import settings

    from bookings.selectors import local_today, opening_calendar

    today = local_today(now)
    found: Understanding | None = None
    problem = "Which day would suit you? For example 'tomorrow', 'Friday' or 'December 18'."
    if text and text.strip():
        try:
            found = understand(text, today=today)
        except UnresolvedDate as error:
            problem = str(error)
    if found is None and parts and any(v is not None for v in parts.values()):
        try:
            found = understand_parts(parts, today=today)
        except UnresolvedDate as error:
            problem = str(error)
    if found is None:
        return {"status": "unresolved", "message": problem}

    horizon = settings.BOOKING_HORIZON_DAYS
    last_bookable = today + timedelta(days=horizon)
    days = [r.date for r in found.readings]
    opening = opening_calendar(min([*days, today]), max([*days, last_bookable]) + timedelta(days=14))

    def judge(reading: Reading) -> _Judged:
        day = reading.date
        if day < today:
            first_open = opening.next_open_day(today, last=last_bookable, include=True)
            return _Judged(day, "past", f"{spoken(day)} has already passed.", reading.label, first_open)
        if day > last_bookable:
            return _Judged(
                day,
                "beyond_horizon",
                f"{spoken(day)} is more than {horizon} days ahead, so we can't book it yet. "
                f"We can book up to {spoken(last_bookable)}.",
                reading.label,
            )
        if not opening.is_open(day):
            nxt = opening.next_open_day(day, last=last_bookable)
            if day in opening.closed_days:
                reason = opening.closed_days[day]
                closed = f"We're closed on {spoken(day)}" + (f" ({reason})." if reason else ".")
            else:
                closed = f"We're closed on {day:%A}s."
            then = f" The next open day is {spoken(nxt)}." if nxt else ""
            return _Judged(day, "closed", closed + then, reading.label, nxt)
        return _Judged(day, "ok", f"That's {spoken(day)}.", reading.label)

    judged = [judge(r) for r in found.readings]
    if len(judged) > 1 and all(j.status == "past" for j in judged):
        return _single(judged[-1], found, today, message="Those days have already passed.")

    if found.passed:
        past, upcoming = judged
        if upcoming.status in ("ok", "closed"):
            return _ambiguous(judged, found, today, "That date has already passed this year. Did you mean ")
        message = (found.mismatch + " " if found.mismatch else "") + f"{spoken_short(past.day)} has already passed"
        message += (
            f", and next year's ({spoken(upcoming.day)}) is more than {horizon} days ahead."
            if upcoming.status == "beyond_horizon"
            else "."
        )
        return _single(past, found, today, message=message)

    if found.span or found.optional:
        kept = [j for j in judged if j.status not in ("past", "beyond_horizon")] or judged
        if found.span:
            kept = [j for j in kept if j.status == "ok"] or kept
        if len(kept) == 1 and len(judged) > 1 and found.span and kept[0].status == "ok":
            return _single(kept[0], found, today, message=f"Of those days, we're open only on {spoken(kept[0].day)}.")
        if len(kept) == 1 and found.optional and kept[0].status != "past":
            only = kept[0]
            note = f"I read that as {only.label}: {spoken(only.day)}."
            return _single(only, found, today, message=note + (" " + only.message if only.status != "ok" else ""))
        judged = kept if found.span else judged if len(kept) == len(judged) else kept
    if len(judged) == 1:
        return _single(judged[0], found, today)
    return _ambiguous(judged, found, today, (found.mismatch + " Did you mean ") if found.mismatch else "Did you mean ")


def _base(day: date, today: date) -> dict:
    return {
        "date": day.isoformat(),
        "weekday": f"{day:%A}",
        "spoken": spoken(day),
        "days_from_today": (day - today).days,
    }


def _single(judged: _Judged, found: Understanding, today: date, message: str | None = None) -> dict:
    data = {"status": judged.status, **_base(judged.day, today)}
    if found.part_of_day:
        data["part_of_day"] = found.part_of_day
    data["message"] = message or judged.message
    if judged.next_open is not None:
        data["next_open"] = {
            "date": judged.next_open.isoformat(),
            "weekday": f"{judged.next_open:%A}",
            "spoken": spoken(judged.next_open),
        }
    return data


def _ambiguous(judged: list[_Judged], found: Understanding, today: date, lead: str) -> dict:
    names = [
        spoken_short(j.day) + (f" ({j.label})" if j.label and j.label not in (f"{j.day:%A}",) else "") for j in judged
    ]
    choice = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    data: dict = {"status": "ambiguous", "message": f"{lead}{choice}?".strip()}
    if found.part_of_day:
        data["part_of_day"] = found.part_of_day
    data["readings"] = [
        {
            "date": j.day.isoformat(),
            "weekday": f"{j.day:%A}",
            "spoken": spoken(j.day),
            "status": j.status,
            "label": j.label,
            "message": j.message,
        }
        for j in judged
    ]
    return data
