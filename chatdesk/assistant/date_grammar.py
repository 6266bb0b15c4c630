"""The date grammar: every reading of what a customer says about a day, pure (no database).

`understand(text, today=...)` reads English words, `understand_parts(parts, today=...)` the
model's structured fallback; chatdesk/assistant/dates.py judges the readings for booking.

Conventions where English is loose (documented so everyone can predict the answer):
- A bare weekday is the next one after today; said on that weekday it is ambiguous (today,
  or a week from today). "this Friday" includes today; "this coming Friday" does not.
- "next Friday" is ambiguous when the coming Friday is still in this week (Mon-Sun): both
  readings are returned. "Friday next week" is always the one of next week.
- "the Friday after next" is the coming Friday plus a week; "a week from Friday" and
  "Friday week" count from this Friday (today included).
- A month-day without a year means the nearest occurrence: "December 3" said on December 4
  is yesterday (past, with a note about next year's), "January 5" said on December 4 is
  next year's. "the 3rd" alone always looks forward.
- Numbers like 12/3 (Canada writes both orders) give both readings; one that cannot be
  booked (past or beyond the horizon) is dropped.
- "a couple of days" is two days, "a few days" three, "a fortnight" fourteen.
- Spans ("this weekend", "next week", "early next week" = Mon-Tue, "late next week" = Thu-Fri)
  keep their open days; one open day left is the answer, several are readings to choose from.
"""

from __future__ import annotations

import calendar
import difflib
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cache

from bookings.holidays import holiday_region
from chatdesk.assistant.date_words import (
    ALIASES,
    DAY,
    EVES,
    FUZZY_TARGETS,
    HOLIDAY_ALIASES,
    MONTH,
    MONTH_NAMES,
    MONTHS,
    NOT_TYPOS,
    NUM,
    NUMBER_WORDS,
    ORDINAL_WORDS,
    ORDINAL_WORDS_PATTERN,
    ORDINALS,
    PARTS_OF_DAY,
    WD,
    WEEKDAY_NAMES,
    WEEKDAYS,
    YEAR,
)


class UnresolvedDate(ValueError):
    """The words name no day we can tell. The message is written for the customer."""


@dataclass(frozen=True)
class Reading:
    date: date
    label: str = ""


@dataclass
class Understanding:
    """Every reading of what the customer said, before the booking rules are applied.

    span: the words name a range of days ("next week"); closed and past days drop out.
    optional: alternative readings of which those that cannot be booked drop out (12/3).
    passed: a month-day whose nearest occurrence has passed; readings are [past, next year's].
    """

    readings: list[Reading]
    part_of_day: str | None = None
    note: str = ""
    span: bool = False
    optional: bool = False
    passed: bool = False
    mismatch: str = ""  # "December 18, 2026 is a Friday, not a Monday."


# --- calendar arithmetic --------------------------------------------------------------------


def _coming(today: date, weekday: int) -> date:
    """The next `weekday` after today (a week from today when today is that weekday)."""
    return today + timedelta(days=(weekday - today.weekday()) % 7 or 7)


def _this(today: date, weekday: int) -> date:
    """The next `weekday` from today on, today included."""
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def _monday(today: date, weeks: int = 0) -> date:
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)


def _last(today: date, weekday: int) -> date:
    return today - timedelta(days=(today.weekday() - weekday) % 7 or 7)


def _valid(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        if 1 <= month <= 12:
            raise UnresolvedDate(f"There is no {MONTH_NAMES[month - 1]} {day}. Which day did you mean?") from None
        raise UnresolvedDate("That is not a date I know. Which day did you mean?") from None


def spoken_short(day: date) -> str:
    return f"{day:%A}, {MONTH_NAMES[day.month - 1]} {day.day}"


def spoken(day: date) -> str:
    return f"{spoken_short(day)}, {day.year}"


def _month_day(today: date, month: int, day: int, year: int | None, label: str = "") -> Understanding:
    if year is not None:
        return Understanding([Reading(_valid(year, month, day), label)])
    if month == 2 and day == 29:
        # Only leap years have it: the next one that does.
        year = today.year
        while not calendar.isleap(year) or date(year, 2, 29) < today:
            year += 1
        return Understanding([Reading(date(year, 2, 29), label)])
    this_year = _valid(today.year, month, day)
    if this_year >= today:
        return Understanding([Reading(this_year, label)])
    next_year = date(today.year + 1, month, day)
    if (today - this_year) < (next_year - today):
        # The nearest one has passed: say so rather than silently booking next year.
        return Understanding([Reading(this_year, "this year's"), Reading(next_year, "next year's")], passed=True)
    return Understanding([Reading(next_year, label)])


def _day_of_month(today: date, day: int) -> date:
    if not 1 <= day <= 31:
        raise UnresolvedDate(f"There is no day {day} in a month. Which day did you mean?")
    year, month = today.year, today.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1] and date(year, month, day) >= today:
            return date(year, month, day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise UnresolvedDate("That is not a date I know. Which day did you mean?")  # pragma: no cover - 13 months


def _recent_day_of_month(today: date, day: int) -> date | None:
    """The last `day` of a month before today, within a year."""
    year, month = today.year, today.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1] and date(year, month, day) < today:
            return date(year, month, day)
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return None


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date | None:
    days = [d for d in calendar.Calendar().itermonthdates(year, month) if d.month == month and d.weekday() == weekday]
    if nth == -1:
        return days[-1]
    return days[nth - 1] if nth <= len(days) else None


def _check_weekday(found: Understanding, weekday: int) -> Understanding:
    """'Monday the 18th': if the 18th is not a Monday, both the 18th and the Monday nearest it."""
    if len(found.readings) != 1:
        # This year's (passed) or next year's, or month/day vs day/month: the weekday decides.
        matching = [r for r in found.readings if r.date.weekday() == weekday]
        if len(matching) == 1:
            return Understanding(matching)
        day = found.readings[0].date
        found.mismatch = f"{_month_and_day(day)}, {day.year} is a {day:%A}, not a {WEEKDAY_NAMES[weekday]}."
        return found
    day = found.readings[0].date
    if day.weekday() == weekday:
        return found
    offset = (weekday - day.weekday()) % 7
    nearest = day + timedelta(days=offset if offset <= 3 else offset - 7)
    found.mismatch = f"{_month_and_day(day)}, {day.year} is a {day:%A}, not a {WEEKDAY_NAMES[weekday]}."
    found.readings = [Reading(day, f"the {_ordinal(day.day)}"), Reading(nearest, f"the {WEEKDAY_NAMES[weekday]}")]
    return found


def _month_and_day(day: date) -> str:
    return f"{MONTH_NAMES[day.month - 1]} {day.day}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(word: str) -> int:
    return NUMBER_WORDS[word] if word in NUMBER_WORDS else int(word)


# --- holidays -------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("'", "").replace("’", "")).split())


@cache
def _holiday_dates(region: str, year: int) -> dict[str, date]:
    """Named days of `region` ("CA-ON": country CA, subdivision ON) in `year`, by cleaned name.

    Optional holidays count too (Easter Monday, Civic Holiday in Ontario): customers name them
    even when the business stays open; whether a day is closed comes from ClosedDay only.
    """
    import holidays
    from dateutil.easter import easter

    names: dict[str, date] = {}
    if region:
        country, _, subdivision = region.partition("-")
        calendar_ = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
        categories = tuple(c for c in ("public", "optional") if c in calendar_.supported_categories)
        named = holidays.country_holidays(country, subdiv=subdivision or None, years=year, categories=categories)
        for day, name in sorted(named.items()):
            for one in name.split(";"):
                if "observed" not in one.lower():
                    names.setdefault(_clean(one), day)
    for name, (month, day) in EVES.items():
        names[name] = date(year, month, day)
    names.setdefault("easter sunday", easter(year))
    names.setdefault("easter monday", easter(year) + timedelta(days=1))
    names.setdefault("easter", easter(year))
    for short, full in HOLIDAY_ALIASES.items():
        if full in names:
            names.setdefault(short, names[full])
    return names


def _find_holiday(text: str, today: date, region: str) -> Understanding | None:
    this_year, next_year = _holiday_dates(region, today.year), _holiday_dates(region, today.year + 1)
    for name in sorted(this_year.keys() | next_year.keys(), key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", text):
            if name in this_year and this_year[name] >= today:
                return Understanding([Reading(this_year[name], name.title())])
            if name in next_year:
                return Understanding([Reading(next_year[name], name.title())])
    return None


# --- the grammar ----------------------------------------------------------------------------


def _fix_token(token: str) -> str:
    if token in ALIASES:
        return ALIASES[token]
    if token in WEEKDAYS or token in MONTHS or token in NOT_TYPOS or not token.isalpha() or len(token) < 5:
        return token
    if token.endswith("s") and token[:-1] in WEEKDAYS:  # "tuesdays"
        return token[:-1]
    candidates = [t for t in FUZZY_TARGETS if t[0] == token[0]]
    match = difflib.get_close_matches(token, candidates, n=1, cutoff=0.8)
    return match[0] if match else token


def normalize(text: str) -> str:
    """Lower case, times of day and punctuation out, short forms and misspellings fixed."""
    s = (text or "").lower().replace("’", "'").replace("'", "")
    # Times of day are not dates ("9am", "the 8:30 one", "at 10").
    s = re.sub(r"\b\d{1,2}:\d{2}\s*(?:a\.?m\.?|p\.?m\.?)?", " ", s)
    s = re.sub(r"\b\d{1,2}\s*(?:a\.?m\.?|p\.?m\.?)(?![a-z])", " ", s)
    s = re.sub(r"\b(at|around|by|after|before) \d{1,2}\b(?!\s*(?:st|nd|rd|th|/|-))", r"\1 ", s)
    s = re.sub(r"(?<=\d)\.(?=\d)", "/", s)  # 18.12 -> 18/12 (read like a slash)
    s = re.sub(r"[^a-z0-9/\- ]", " ", s)
    s = re.sub(r"(?<![0-9])-|-(?![0-9])", " ", s)  # hyphens only between digits (ISO dates)
    # "the ninth", "twenty first of December", "December ninth": days of the month in words, as
    # digits, only next to "the" or a month ("just a second" is no date; "first Monday" stays).
    words, months = ORDINAL_WORDS_PATTERN, "|".join(MONTHS)
    not_weekday = rf"(?! (?:{'|'.join(WEEKDAYS)}|{'|'.join(ALIASES)}|thing|week|time))"
    s = re.sub(rf"\b(the) ({words})\b{not_weekday}", lambda m: f"the {_ordinal(ORDINAL_WORDS[m[2]])}", s)
    s = re.sub(rf"\b({words}) (?=(?:of )?(?:{months})\b)", lambda m: f"{_ordinal(ORDINAL_WORDS[m[1]])} ", s)
    s = re.sub(rf"\b({months}) (the )?({words})\b", lambda m: f"{m[1]} {_ordinal(ORDINAL_WORDS[m[3]])}", s)
    return " ".join(_fix_token(token) for token in s.split())


def _part_of_day(s: str) -> str | None:
    for word, part in PARTS_OF_DAY.items():
        if re.search(rf"\b{word}\b", s):
            return part
    return None


def understand(text: str, *, today: date, region: str | None = None) -> Understanding:
    """Every reading of `text` as a day, counted from `today` (the business's local date).

    Raises UnresolvedDate (with a message for the customer) when the words name no day.
    """
    s = normalize(text)
    if not s:
        raise UnresolvedDate("Which day would suit you? For example 'tomorrow', 'Friday' or 'December 18'.")
    region = holiday_region() if region is None else region
    found = _alternatives(s, today, region) or _next_to(s, today, region) or _understand(s, today, region)
    if found is None:
        raise UnresolvedDate(
            "Sorry, I couldn't tell which day you mean. Could you say a weekday or a date, like 'Friday' or "
            "'December 18'?"
        )
    found.part_of_day = found.part_of_day or _part_of_day(s)
    return found


def _alternatives(s: str, today: date, region: str) -> Understanding | None:
    """'Tuesday or Wednesday': every reading of each day named, for the customer to choose."""
    if " or " not in s:
        return None
    readings: list[Reading] = []
    for piece in s.split(" or "):
        try:
            found = _understand(piece, today, region)
        except UnresolvedDate:
            found = None
        if found is None:
            return None
        readings += [r for r in found.readings if r.date not in {seen.date for seen in readings}]
    return Understanding(readings) if len(readings) > 1 else None


def _next_to(s: str, today: date, region: str) -> Understanding | None:
    """'the day before Christmas', 'the day after Boxing Day': a day named by its neighbour."""
    m = re.search(r"\bday (before|after) (?!tomorrow|yesterday)(.+)$", s)
    if not m:
        return None
    try:
        found = _understand(m[2], today, region)
    except UnresolvedDate:
        return None
    if found is None:
        return None
    step = timedelta(days=-1 if m[1] == "before" else 1)
    return Understanding([Reading(r.date + step) for r in found.readings])


def _one(day: date, label: str = "") -> Understanding:
    return Understanding([Reading(day, label)])


def _understand(s: str, today: date, region: str) -> Understanding | None:
    """The grammar: the first rule that matches wins, most specific first."""

    # Full dates first: a year makes them unambiguous.
    if m := re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})", s):
        return _one(_valid(int(m[1]), int(m[2]), int(m[3])))

    for name, (month, day) in EVES.items():
        if re.search(rf"\b{name}\b", s):
            found = _month_day(today, month, day, None, name.title())
            return found if not found.passed else _one(found.readings[1].date, name.title())
    if region and (found := _find_holiday(s, today, region)):
        return found

    # "the first Monday of January", "the last Friday of the month".
    ordinal = "(" + "|".join(ORDINALS) + ")"
    if m := re.search(rf"\b{ordinal} {WD} (?:of|in) (?:the |this )?(month|next month|{MONTH}){YEAR}\b", s):
        nth, weekday = ORDINALS[m[1]], WEEKDAYS[m[2]]
        if m[3] == "month":
            candidates = [(today.year, today.month)]
        elif m[3] == "next month":
            candidates = [(today.year + today.month // 12, today.month % 12 + 1)]
        elif m[5]:
            candidates = [(int(m[5]), MONTHS[m[4]])]
        else:
            candidates = [(today.year, MONTHS[m[4]]), (today.year + 1, MONTHS[m[4]])]
        label = f"the {m[1]} {m[2].title()}"
        for year, month in candidates:
            day = _nth_weekday(year, month, weekday, nth)
            if day is None:
                raise UnresolvedDate(f"{MONTH_NAMES[month - 1]} {year} has no {m[1]} {m[2].title()}.")
            if day >= today or len(candidates) == 1:
                return _one(day, label)

    # A weekday with a date: "Friday the 18th", "Monday, January 5", "Fri 12/18".
    if m := re.search(rf"\b{WD} (?:the )?{DAY} (?:of )?{MONTH}{YEAR}\b", s):
        return _check_weekday(_month_day(today, MONTHS[m[3]], int(m[2]), int(m[4]) if m[4] else None), WEEKDAYS[m[1]])
    if m := re.search(rf"\b{WD} (?:the )?{MONTH} (?:the )?{DAY}{YEAR}\b", s):
        return _check_weekday(_month_day(today, MONTHS[m[2]], int(m[3]), int(m[4]) if m[4] else None), WEEKDAYS[m[1]])
    if m := re.search(rf"\b{WD} (?:the )?(\d{{1,2}})/(\d{{1,2}})(?:/(\d{{2}}|\d{{4}}))?\b", s):
        found = _numeric(today, int(m[2]), int(m[3]), m[4])
        return _check_weekday(found, WEEKDAYS[m[1]])
    if m := re.search(rf"\b{WD} (?:the )?(\d{{1,2}})(?:st|nd|rd|th)\b|\b{WD} the (\d{{1,2}})\b", s):
        weekday, day = WEEKDAYS[m[1] or m[3]], int(m[2] or m[4])
        upcoming = _day_of_month(today, day)
        recent = _recent_day_of_month(today, day)
        if upcoming.weekday() != weekday and recent and recent.weekday() == weekday and (today - recent).days <= 14:
            return _one(recent, f"the {_ordinal(day)}")  # "Thursday the 3rd" said on Friday the 4th: yesterday
        return _check_weekday(_one(upcoming, f"the {_ordinal(day)}"), weekday)

    # Month and day in their written forms.
    if m := re.search(rf"\b{MONTH} (?:the )?{DAY}{YEAR}\b", s):
        return _month_day(today, MONTHS[m[1]], int(m[2]), int(m[3]) if m[3] else None)
    if m := re.search(rf"\b{DAY} (?:of )?{MONTH}{YEAR}\b", s):
        return _month_day(today, MONTHS[m[2]], int(m[1]), int(m[3]) if m[3] else None)
    if m := re.search(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?\b", s):
        return _numeric(today, int(m[1]), int(m[2]), m[3])
    # 11-28 too, but not a range of days ("2-3 days").
    if m := re.search(r"\b(\d{1,2})-(\d{1,2})(?:-(\d{2}|\d{4}))?\b(?! ?(?:day|week|hour|am|pm))", s):
        return _numeric(today, int(m[1]), int(m[2]), m[3])

    # Offsets: "a week from Friday", "two weeks from now", "in 3 days", "Friday week".
    unit = r"(day|days|week|weeks|fortnight|fortnights|month|months)"
    if m := re.search(rf"\b(?:a )?{NUM} (?:of )?{unit} (?:from|after|on) (today|now|tomorrow|{WD})\b", s):
        base = {"today": today, "now": today, "tomorrow": today + timedelta(days=1)}.get(m[3])
        if base is None:
            base = _this(today, WEEKDAYS[m[3]])
        return _one(_add(base, _count(m[1]), m[2]))
    if m := re.search(rf"\b(?:in|within) (?:about |around |another )?(?:a )?{NUM} (?:of )?{unit}\b", s):
        return _one(_add(today, _count(m[1]), m[2]))
    if m := re.search(rf"\bin (\d{{1,2}})(?:-| to | or )(\d{{1,2}}) {unit}\b", s):  # "in 2-3 days": a span
        first, last = sorted((int(m[1]), int(m[2])))
        return _span_of([Reading(_add(today, n, m[3])) for n in range(first, min(last, first + 14) + 1)])
    if m := re.search(rf"\bin (?:a )?{unit}\b", s):  # "in a week", "in a fortnight"
        return _one(_add(today, 1, m[1]))
    if m := re.search(rf"\b(?:a )?{NUM} (?:of )?{unit} (?:from now|from today|later|time)\b", s):
        return _one(_add(today, _count(m[1]), m[2]))
    if m := re.search(rf"(?<!next )(?<!this )(?<!last )\b(?:a )?week (today|tomorrow|{WD})\b|\b{WD} week\b", s):
        word = m[1] or m[3]
        base = {"today": today, "tomorrow": today + timedelta(days=1)}.get(word) or _this(today, WEEKDAYS[word])
        return _one(base + timedelta(weeks=1))
    if m := re.search(rf"\b(?:the )?{WD} after next\b", s):
        return _one(_coming(today, WEEKDAYS[m[1]]) + timedelta(weeks=1))

    if re.search(r"\b(?:the )?day before yesterday\b", s):
        return _one(today - timedelta(days=2))
    if re.search(r"\byesterday\b", s):
        return _one(today - timedelta(days=1))
    if re.search(r"\b(?:the )?day after tomorrow\b", s):
        return _one(today + timedelta(days=2))
    if re.search(r"\btomorrow\b", s):
        return _one(today + timedelta(days=1))
    if re.search(
        r"\b(today|tonight|asap|right away|right now|as soon as possible|this (morning|afternoon|evening))\b", s
    ):
        return _one(today)

    # Weekdays with which week.
    if m := re.search(
        rf"\b(?:{WD} (?:of |on )?next week|next week(?: on)? {WD}|{WD} (?:of )?the (?:following|next) week)\b", s
    ):
        weekday = WEEKDAYS[m[1] or m[2] or m[3]]
        return _one(_monday(today, 1) + timedelta(days=weekday))
    if m := re.search(rf"\b(?:{WD} (?:of )?this week|this week(?: on)? {WD})\b", s):
        return _one(_monday(today) + timedelta(days=WEEKDAYS[m[1] or m[2]]))
    if m := re.search(rf"\blast {WD}\b|\b{WD} (?:of )?last week\b", s):
        return _one(_last(today, WEEKDAYS[m[1] or m[2]]))
    if m := re.search(rf"\b(?:this coming|the coming|coming|upcoming|the upcoming|this upcoming) {WD}\b", s):
        return _one(_coming(today, WEEKDAYS[m[1]]))
    if m := re.search(rf"\bnext {WD}\b", s):
        weekday = WEEKDAYS[m[1]]
        coming, next_week = _coming(today, weekday), _monday(today, 1) + timedelta(days=weekday)
        if coming == next_week:
            return _one(coming)
        name = WEEKDAY_NAMES[weekday]
        return Understanding([Reading(coming, f"this coming {name}"), Reading(next_week, f"{name} of next week")])
    if m := re.search(rf"\bthis {WD}\b", s):
        return _one(_this(today, WEEKDAYS[m[1]]))
    if m := re.search(rf"\b{WD}\b", s):
        weekday = WEEKDAYS[m[1]]
        if weekday == today.weekday():
            return Understanding([Reading(today, "today"), Reading(today + timedelta(weeks=1), "a week from today")])
        return _one(_coming(today, weekday))

    # Weekends and weeks: spans of days.
    if re.search(r"\bafter (?:the |this )?weekend\b", s):
        return _one(_coming(today, 0))
    if re.search(r"\blast weekend\b", s):
        return _span_of(_days(_monday(today, -1) + timedelta(days=5), 2))
    if re.search(r"\bweekend after next\b", s):
        # Like "the Friday after next": the coming weekend (one not yet begun), plus a week.
        saturday = _coming(today, 5) if today.weekday() < 5 else _monday(today, 1) + timedelta(days=5)
        return _span_of(_days(saturday + timedelta(weeks=1), 2))
    if re.search(r"\bnext weekend\b", s):
        if today.weekday() >= 5:
            return _span_of(_days(_monday(today, 1) + timedelta(days=5), 2))
        # Said before the weekend, "next weekend" is this coming one for some and the one after for others.
        saturday = _coming(today, 5)
        return _span_of(
            _days(saturday, 2, "this coming weekend"), _days(saturday + timedelta(weeks=1), 2, "the weekend after")
        )
    if re.search(r"\b(?:this |the |over the |on the )?weekend\b", s):
        return _span_of(_days(_monday(today) + timedelta(days=5), 2), today=today)
    if re.search(r"\b(?:early|beginning of|start of) next week\b", s):
        return _span_of(_days(_monday(today, 1), 2))
    if m := re.search(r"\b(?:last day|end) of (?:the |this )?(next )?month\b", s):
        month_index = today.month - 1 + (1 if m[1] else 0)
        year, month = today.year + month_index // 12, month_index % 12 + 1
        return _one(date(year, month, calendar.monthrange(year, month)[1]), "the last day of the month")
    if re.search(r"\bend of next week\b", s):
        return _one(_monday(today, 1) + timedelta(days=4))
    if re.search(r"\blate(?:r)? next week\b", s):
        return _span_of(_days(_monday(today, 1) + timedelta(days=3), 2))
    if re.search(r"\bend of (?:the |this )?week\b", s):
        return _one(_this(today, 4))
    if re.search(r"\blate(?:r)? this week\b", s):
        first = max(_monday(today) + timedelta(days=3), today + timedelta(days=1))
        return _span_of(_days(first, (_monday(today) + timedelta(days=6) - first).days + 1))
    if re.search(r"\bweek after next\b", s):
        return _span_of(_days(_monday(today, 2), 7))
    if re.search(r"\bnext week\b", s):
        return _span_of(_days(_monday(today, 1), 7))
    if re.search(r"\bthis week\b", s):
        return _span_of(_days(today, 7 - today.weekday()))
    if re.search(r"\blast week\b", s):
        return _span_of(_days(_monday(today, -1), 7))

    # A day of the month alone: "the 18th", "on the 3rd".
    if m := re.search(r"\b(?:the |on )?(\d{1,2})(?:st|nd|rd|th)\b|\bthe (\d{1,2})\b", s):
        day = int(m[1] or m[2])
        return _one(_day_of_month(today, day), f"the {_ordinal(day)}")
    if re.search(r"\bnext month\b", s):
        raise UnresolvedDate("Which day next month would suit you?")
    return None


def _add(base: date, count: int, unit: str) -> date:
    """`count` days, weeks, fortnights or calendar months after `base` (Jan 31 + 1 month = Feb 28)."""
    if unit.startswith("month"):
        month_index = base.month - 1 + count
        year, month = base.year + month_index // 12, month_index % 12 + 1
        return date(year, month, min(base.day, calendar.monthrange(year, month)[1]))
    if unit.startswith("fortnight"):
        return base + timedelta(weeks=2 * count)
    return base + timedelta(weeks=count) if unit.startswith("week") else base + timedelta(days=count)


def _days(first: date, count: int, label: str = "") -> list[Reading]:
    return [Reading(first + timedelta(days=i), label or f"{first + timedelta(days=i):%A}") for i in range(count)]


def _span_of(*groups: list[Reading], today: date | None = None) -> Understanding:
    """A span of days; with `today`, the days already gone drop out."""
    readings = [r for group in groups for r in group]
    if today is not None:
        readings = [r for r in readings if r.date >= today] or readings
    return Understanding(readings, span=True)


def _numeric(today: date, first: int, second: int, year: str | None) -> Understanding:
    """12/18 is month/day; 18/12 can only be day/month; 12/3 could be either (both written in Canada)."""
    full_year = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
    readings: list[Understanding] = []
    if first <= 12:
        try:
            readings.append(_month_day(today, first, second, full_year, "month/day"))
        except UnresolvedDate:
            pass
    if second <= 12 and first != second:
        try:
            readings.append(_month_day(today, second, first, full_year, "day/month"))
        except UnresolvedDate:
            pass
    if not readings:
        raise UnresolvedDate(f"{first}/{second} is not a date I know. Which day did you mean?")
    if len(readings) == 1:
        return readings[0]
    found = Understanding([u.readings[0] for u in readings], optional=True)
    found.readings = [
        replace(r, label=label) for r, label in zip(found.readings, ("month/day", "day/month"), strict=True)
    ]
    return found


# --- structured parts (the model's fallback) ------------------------------------------------

WEEK_CHOICES = ("this", "coming", "next", "next_week", "after_next", "last")


def understand_parts(parts: dict, *, today: date) -> Understanding:
    """The day from structured parts: a weekday and which week, a month and day (and year), an
    ordinal weekday of a month, and an offset in days or weeks from that day (or from today)."""
    weekday_name = parts.get("weekday")
    weekday = WEEKDAYS.get(str(weekday_name).lower()) if weekday_name else None
    week, month, day, year = parts.get("week"), parts.get("month"), parts.get("day"), parts.get("year")
    nth = parts.get("nth")
    offset = timedelta(days=parts.get("offset_days") or 0, weeks=parts.get("offset_weeks") or 0)
    if weekday_name and weekday is None:
        raise UnresolvedDate("That weekday is not one I know. Which day did you mean?")
    if week is not None and week not in WEEK_CHOICES:
        raise UnresolvedDate("Which week did you mean: this week or next week?")
    if week is not None and weekday is None:
        raise UnresolvedDate("Which day of that week would suit you?")

    if nth is not None and weekday is not None:
        month = month or today.month
        candidates = [year] if year else [today.year, today.year + 1]
        found = None
        for candidate in candidates:
            found = _nth_weekday(candidate, month, weekday, nth)
            if found is None:
                raise UnresolvedDate(f"{MONTH_NAMES[month - 1]} {candidate} has no such {WEEKDAY_NAMES[weekday]}.")
            if found >= today or parts.get("month") is None:
                break
        result = Understanding([Reading(found)])
    elif month is not None and day is not None:
        result = _month_day(today, month, day, year)
        if weekday is not None:
            result = _check_weekday(result, weekday)
    elif day is not None:
        result = Understanding([Reading(_day_of_month(today, day), f"the {_ordinal(day)}")])
        if weekday is not None:
            result = _check_weekday(result, weekday)
    elif weekday is not None:
        name = WEEKDAY_NAMES[weekday]
        text = {
            None: name if not offset else f"{offset.days} days from {name}",
            "this": f"this {name}",
            "coming": f"this coming {name}",
            "next": f"next {name}",
            "next_week": f"{name} next week",
            "after_next": f"the {name} after next",
            "last": f"last {name}",
        }[week]
        if week is None and offset:
            result = Understanding([Reading(_this(today, weekday))])
        else:
            result = _understand(text.lower(), today, "")  # type: ignore[assignment]
    elif month is not None or year is not None:
        raise UnresolvedDate("Which day of that month would suit you?")
    else:
        result = Understanding([Reading(today)])
    if offset:
        result.readings = [Reading(r.date + offset, r.label) for r in result.readings]
    return result
