"""Relative dates resolved on the server, in the business time zone.

Models are unreliable at calendar arithmetic (the predecessor turned "Friday" into a
Saturday), so the assistant asks `resolve_date` and reads the weekday and date back to
the customer before booking.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
WEEKDAYS.update({name.lower(): i for i, name in enumerate(calendar.day_abbr)})
WEEKDAYS.update({"tues": 1, "thur": 3, "thurs": 3, "weds": 2})
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
PARTS_OF_DAY = ("morning", "afternoon", "evening", "tonight", "noon", "lunch")


@dataclass(frozen=True)
class ResolvedDate:
    date: date
    part_of_day: str | None = None
    note: str = ""

    def as_dict(self, today: date) -> dict:
        data = {
            "date": self.date.isoformat(),
            "weekday": self.date.strftime("%A"),
            "spoken": f"{self.date:%A, %B} {self.date.day}, {self.date.year}",
            "days_from_today": (self.date - today).days,
        }
        if self.part_of_day:
            data["part_of_day"] = self.part_of_day
        if self.note:
            data["note"] = self.note
        return data


class UnresolvedDate(ValueError):
    pass


def _next_weekday(today: date, weekday: int, *, include_today: bool) -> date:
    days = (weekday - today.weekday()) % 7
    if days == 0 and not include_today:
        days = 7
    return today + timedelta(days=days)


def _day_of_month(today: date, day: int) -> date:
    year, month = today.year, today.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1]:
            candidate = date(year, month, day)
            if candidate >= today:
                return candidate
        month += 1
        if month > 12:
            year, month = year + 1, 1
    raise UnresolvedDate(f"There is no day {day} in the coming months.")


def _month_day(today: date, month: int, day: int, year: int | None) -> date:
    try:
        if year is not None:
            return date(year, month, day)
        candidate = date(today.year, month, day)
        return candidate if candidate >= today else date(today.year + 1, month, day)
    except ValueError:
        raise UnresolvedDate("That date does not exist.") from None


def resolve_date(text: str, *, today: date) -> ResolvedDate:
    """Turn what a customer said ("next Friday", "tomorrow morning", "the 3rd", "Dec 3")
    into a calendar date. Raises UnresolvedDate when it cannot tell."""
    raw = " ".join((text or "").lower().replace(",", " ").split())
    if not raw:
        raise UnresolvedDate("No date was given.")
    part = next((p for p in PARTS_OF_DAY if re.search(rf"\b{p}\b", raw)), None)
    if part in ("noon", "lunch"):
        part = "midday"
    elif part == "tonight":
        part = "evening"

    if match := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:t.*)?", raw):
        return ResolvedDate(_month_day(today, int(match[2]), int(match[3]), int(match[1])), part)
    if re.search(r"\b(today|tonight|this (morning|afternoon|evening)|asap|right away|now)\b", raw):
        return ResolvedDate(today, part)
    if re.search(r"\bday after tomorrow\b", raw):
        return ResolvedDate(today + timedelta(days=2), part)
    if re.search(r"\b(tomorrow|tmrw|tmr)\b", raw):
        return ResolvedDate(today + timedelta(days=1), part)
    if match := re.search(r"\bin (\d{1,2}|a|one|two|three) (day|days|week|weeks)\b", raw):
        count = {"a": 1, "one": 1, "two": 2, "three": 3}.get(match[1]) or int(match[1])
        days = count * (7 if match[2].startswith("week") else 1)
        return ResolvedDate(today + timedelta(days=days), part)
    if re.search(r"\bnext week\b", raw) and not any(re.search(rf"\b{w}\b", raw) for w in WEEKDAYS):
        monday = today + timedelta(days=7 - today.weekday())
        return ResolvedDate(monday, part, note="Next week starts on this Monday; ask which day suits them.")
    if re.search(r"\b(this )?weekend\b", raw):
        return ResolvedDate(_next_weekday(today, 5, include_today=True), part, note="Saturday; we are closed Sundays.")

    for word, weekday in WEEKDAYS.items():
        if re.search(rf"\b{word}\b", raw):
            upcoming = _next_weekday(today, weekday, include_today=False)
            if re.search(rf"\bnext (week )?{word}\b", raw) or re.search(rf"\b{word} next week\b", raw):
                # "Next Friday": the Friday of next week. People differ, so say which.
                next_monday = today + timedelta(days=7 - today.weekday())
                resolved = next_monday + timedelta(days=weekday)
                note = ""
                if upcoming != resolved:
                    note = (
                        f"Taken as the {word.title()} of next week; the coming one is {upcoming:%A, %B} {upcoming.day}."
                    )
                return ResolvedDate(resolved, part, note=note)
            if weekday == today.weekday() and not re.search(rf"\bthis {word}\b", raw):
                return ResolvedDate(upcoming, part, note=f"Today is {word.title()}; this is the one a week from today.")
            if re.search(rf"\bthis {word}\b", raw) and weekday == today.weekday():
                return ResolvedDate(today, part)
            return ResolvedDate(upcoming, part)

    month_names = "|".join(sorted(MONTHS, key=len, reverse=True))
    if match := re.search(rf"\b({month_names})\.? (\d{{1,2}})(?:st|nd|rd|th)?(?: (\d{{4}}))?\b", raw):
        year = int(match[3]) if match[3] else None
        return ResolvedDate(_month_day(today, MONTHS[match[1]], int(match[2]), year), part)
    if match := re.search(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?({month_names})\b(?: (\d{{4}}))?", raw):
        year = int(match[3]) if match[3] else None
        return ResolvedDate(_month_day(today, MONTHS[match[2]], int(match[1]), year), part)
    if match := re.search(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b", raw):
        # North American order: month/day.
        year = int(match[3]) if match[3] else None
        if year is not None and year < 100:
            year += 2000
        return ResolvedDate(_month_day(today, int(match[1]), int(match[2]), year), part, note="Read as month/day.")
    if match := re.search(r"\b(?:the )?(\d{1,2})(st|nd|rd|th)\b", raw):
        return ResolvedDate(_day_of_month(today, int(match[1])), part)
    raise UnresolvedDate("I could not tell which date that is. Ask for a weekday or a date like 'December 3'.")
