"""What a customer's message says, without a model: the guided chat's ears.

`understand(text, catalogue, today=...)` is pure (text in, `Understanding` out, no database),
so it is measured against a corpus of real-sounding messages (tests/guided_corpus.py,
bench/guided_corpus.py) and could serve another door (voice) as is. It finds:

- the intent: book, look up, move (reschedule), cancel, or talk to a person;
- the service (bookings.service_matching, on the business's own keywords), or the trade
  when only a trade was named, or the services to choose between;
- urgency, with the rule that urgent words lead to the trade's emergency service, and a
  gas smell, which must get safety advice before anything else;
- the words about the day ("tomorrow", "friday the 18th"), passed on unchanged to the
  date resolver (chatdesk.assistant.dates through the resolve_date tool): this module never works
  out a date; plus the part of day and a wanted time ("9am", "the earliest");
- a booking number, a phone number, an email address, or a bare menu number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from bookings.service_matching import ServiceTerms, match_services, normalize, similar

BOOK, LOOKUP, RESCHEDULE, CANCEL, HUMAN = "book", "lookup", "reschedule", "cancel", "human"

# Months when "no heat" is an emergency in the business's climate (Ontario by default).
HEATING_SEASON = frozenset({10, 11, 12, 1, 2, 3, 4})


@dataclass(frozen=True)
class Understanding:
    intent: str | None = None
    services: tuple[str, ...] = ()
    trade: str | None = None
    urgent: bool = False
    gas: bool = False
    date_phrase: str | None = None
    part_of_day: str | None = None
    time: str | None = None  # "HH:MM", "earliest" or "latest"
    booking_number: str | None = None
    phone: str | None = None
    email: str | None = None
    number: int | None = None  # the whole message was a number ("3", "option 3")

    @property
    def service(self) -> str | None:
        return self.services[0] if len(self.services) == 1 else None


def _any(patterns: Sequence[str], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


# --- intent -------------------------------------------------------------------------------

PERSON = (
    r"(person|human|someone|somebody|agent|rep|representative|manager|supervisor|staff|people|dispatcher|owner|"
    r"operator|receptionist)"
)
HUMAN_PATTERNS = [
    rf"\b(talk|speak|chat|talking|speaking)( directly)? (to|with) (a |an |some |the |your )?"
    rf"(real |live |actual )?{PERSON}\b",
    r"\b(real|live|actual) (person|human|agent|people|body)\b",
    r"^(a )?(human|agent|operator|representative|rep|person|manager)( please| pls| plz| now)?$",
    r"\bhuman (please|pls|plz)\b",
    r"\b(call|phone|ring) me( back)?\b",
    r"\bcall ?back\b",
    r"\b(get|give|put) me (through )?(to )?(a |an |the )?(manager|human|person|supervisor|someone)\b",
    r"\b(manager|supervisor)\b",
    r"\b(complaint|complain|billing|invoice|refund|warranty|overcharged)\b",
    r"\b(my|the|a|our|your) bill\b",
    r"\b(got|been|was|were|being) (double |over)?charged\b",
    r"\bcustomer (service|care|support)\b",
]
CANCEL_PATTERNS = [
    r"\bcall (it )?off\b",
    r"\b(dont|do not|no longer|wont) need (the |my |our |that |this |a |an )?"
    r"(appointment|appt|visit|booking|plumber|electrician|tech|technician|service|anymore)",
    r"\bno longer need\b",
    r"\bnever ?mind (the |my |our )?(appointment|appt|booking|visit)\b",
]
RESCHEDULE_PATTERNS = [
    r"\bmove (my|our|the|this|that|it)\b",
    r"\bpostpon\w*\b",
    r"\bpush (it|my|the|our|that)\b",
    r"\b(bring|move) (it|my|the) (forward|earlier)\b",
    r"\bchange (the |my |our )?(time|date|day|appointment|appt|booking|visit)\b",
    r"\b(different|another|other|new) (day|time|date)\b",
    r"\b(cant|cannot|can not|wont be able to|unable to) make (it|my|the|our)\b",
    r"\binstead\b",
]
LOOKUP_PATTERNS = [
    r"\blook ?up\b",
    r"\b(check|checking) (on )?(my|the|our) (booking|appointment|appt|visit|reservation|repair|service)\b",
    r"\bcheck my booking\b",
    r"\bstatus\b",
    r"\bwhen (is|s|will|does|do) (my|the|our|your)\b",
    r"\bwhens (my|the|our)\b",
    r"\bwhat (time|day|date) (is|s|are) (my|the|our)\b",
    r"\bwhat (time|day|date) (did )?(i|we) (book|booked|have)\b",
    r"\bwhat day i booked\b",
    r"\bconfirm (my|the|our) (appointment|appt|booking|visit)\b",
    r"\b(did|has|is) (my|the|our) (booking|appointment|appt|visit) (go|gone|get|been|still|confirmed|on)\b",
    r"\bwhere (is|s) (my|the|our) (tech|technician|plumber|electrician|guy|appointment|booking)\b",
    r"\bfind (my|our) (booking|appointment|visit)\b",
    r"\b(have|got) (a|my) booking number\b",
    r"\bbooking number\b",
    r"\b(i|we) (already )?booked\b",
]
BOOK_PATTERNS = [
    r"\bbook\w*\b",
    r"\bschedul\w*\b",
    r"\b(appointment|appt|visit)\b",
    r"\b(come|coming) (out|over|by|in|round|around|today|tomorrow|tonight|look|fix|check|and)\b",
    r"\bcan (someone|somebody|you|u|anyone|a tech) come\b",
    r"\bsend (someone|somebody|sum1|some1|a tech|a technician|a plumber|an electrician|over|out|a guy)\b",
    r"\b(need|want|get) (a|an|someone|somebody|sum1|some1) (tech|technician|plumber|electrician|out|to)\b",
    r"\b(get|have) (someone|somebody) (out|over|to)\b",
    r"\bneed (a|an) (plumber|electrician|hvac|tech|technician|repair|visit|appointment)\b",
    r"\b(fix|fixed|repair|repaired|install|installed|replace|replaced|look at|looked at|take a look)\b",
    r"\bis (anyone|anybody|someone) (free|available)\b",
    r"\b(free|available) (today|tomorrow|tonight)\b",
]
# Words alone that are not a request: "ok", "thanks", "hi".
SMALL_TALK = re.compile(
    r"^(hi|hey|hello|yo|hiya|howdy|good (morning|afternoon|evening)|ok|okay|k|cool|great|thanks|thank you|thx|ty|"
    r"bye|goodbye|yes|no|yep|nope|sure|test|testing|\?+)( there)?[ !.?]*$"
)


def _fuzzy_word(text: str, word: str) -> bool:
    return any(similar(w, word) for w in text.split())


def intent_of(text: str) -> str | None:
    """The intent in normalized text, strongest first: a person, cancel, move, look up, book."""
    if _any(HUMAN_PATTERNS, text):
        return HUMAN
    if _fuzzy_word(text, "cancel") or _fuzzy_word(text, "cancelled") or re.search(r"\bcancel", text):
        return CANCEL
    if _any(CANCEL_PATTERNS, text):
        return CANCEL
    if re.search(r"\bre ?sch\w*\b", text) or _fuzzy_word(text, "reschedule") or _any(RESCHEDULE_PATTERNS, text):
        return RESCHEDULE
    if _any(LOOKUP_PATTERNS, text):
        return LOOKUP
    if _any(BOOK_PATTERNS, text):
        return BOOK
    return None


# --- urgency ------------------------------------------------------------------------------

NOT_URGENT = re.compile(r"\b(not (an? )?(emergency|urgent)|no rush|no hurry|not in a (rush|hurry))\b")
GAS = [
    r"\bsmel\w* (of |like )?(natural )?gas\b",
    r"\bgas (smell|leak|odou?r)\w*\b",
    r"\bleak\w* gas\b",
    r"\brotten egg",
    r"\bsmells? like (rotten )?eggs?\b",
]
# (trade, patterns, only in the heating season)
URGENT = [
    (
        "hvac",
        [
            r"\bno (heat|heating)\b",
            r"\bwithout (heat|heating)\b",
            r"\b(heat|heating)( is| s)? (not|isnt|wont|doesnt|dont|aint|not) ?(working|work|come on|coming on|"
            r"turn on|turning on)\b",
            r"\b(heat|heating)( is| s)? (out|off|gone|dead)\b",
            r"\bfreezing\b",
        ],
        True,
    ),
    (
        "plumbing",
        [
            r"\bflood\w*\b",
            r"\bburst\w*\b",
            r"\bwater everywhere\b",
            r"\bwater (is )?(pouring|gushing|spraying|pooling|pouring out|coming in)\b",
            r"\bgushing\b",
            r"\bsewage\b",
            r"\bsewer( line)? (is )?back\w* up\b",
            r"\bback\w* up into\b",
            r"\b(coming|leaking|dripping|pouring) (through|from) (the )?ceiling\b",
            r"\bfrozen pipe",
            r"\bpipes? (are |is |have |has )?(frozen|froze)\b",
        ],
        False,
    ),
    (
        "electrical",
        [
            r"\bspark\w*\b",
            r"\bburning\b",
            r"\bsmoke\b(?! (detector|alarm))",
            r"\bsmoking\b",
            r"\bmelt\w*\b",
            r"\b(got|getting|gave me) (a )?shock\w*\b",
        ],
        False,
    ),
]


def urgency_of(text: str, today: date) -> tuple[bool, bool, str | None]:
    """(urgent, gas smell, the trade the urgent words belong to)."""
    if _any(GAS, text):
        return True, True, "hvac"
    if NOT_URGENT.search(text):
        return False, False, None
    for trade, patterns, seasonal in URGENT:
        if (not seasonal or today.month in HEATING_SEASON) and _any(patterns, text):
            return True, False, trade
    if re.search(r"\b(emergency|urgent\w*)\b", text):
        return True, False, None
    return False, False, None


# --- the day, the part of day and the time --------------------------------------------------

WEEKDAY_FORMS = {
    "monday": ("monday", "mon", "mondy", "monady"),
    "tuesday": ("tuesday", "tues", "tue", "tuesdy", "teusday", "tusday"),
    "wednesday": ("wednesday", "weds", "wed", "wensday", "wendsday", "wednsday", "wedensday", "wednesay"),
    "thursday": ("thursday", "thurs", "thur", "thu", "thrusday", "thursdy", "thurday"),
    "friday": ("friday", "fri", "firday", "fryday", "fridy"),
    "saturday": ("saturday", "sat", "saturdy", "saterday"),
    "sunday": ("sunday", "sun", "sundy"),
}
DAY_FORMS = {
    "tomorrow": ("tomorrow", "tmrw", "tmr", "tmrow", "tomorow", "tommorow", "tommorrow", "2morrow", "2moro", "tomoz"),
    "today": ("today", "2day", "tdy"),
    "tonight": ("tonight", "tonite", "2nite"),
}
# Abbreviations that are also words ("sat", "sun", "wed"): only after "on", "this", "next"...
RISKY = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
_CANON = {form: name for name, forms in {**WEEKDAY_FORMS, **DAY_FORMS}.items() for form in forms}


def _canonical_words(text: str) -> str:
    """Weekday and tomorrow spellings as the resolver reads them ("next thurs" -> "next thursday")."""
    return " ".join(_CANON.get(w) or _CANON.get(w.removesuffix("s"), w) for w in text.split())


_WD_SAFE = "|".join(sorted({f for forms in WEEKDAY_FORMS.values() for f in forms} - RISKY, key=len, reverse=True))
_WD_ALL = "|".join(sorted({f for forms in WEEKDAY_FORMS.values() for f in forms}, key=len, reverse=True))
_DAYWORDS = "|".join(sorted({f for forms in DAY_FORMS.values() for f in forms}, key=len, reverse=True))
_MONTH = (
    r"(?:january|jan|february|feb|march|mar|april|apr|may|june|jun|july|jul|august|aug|september|sept|sep|"
    r"october|oct|november|nov|december|dec)"
)
_ORD = r"\d{1,2}(?:st|nd|rd|th)"
_NUM = (
    r"(?:\d{1,2}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a couple|couple of|couple|a few|few)"
)
_UNIT = r"(?:days?|weeks?)"
_HOLIDAY = (
    r"(?:christmas eve|christmas day|christmas|xmas eve|xmas|boxing day|new years eve|new years day|new years|"
    r"new year|thanksgiving|canada day|victoria day|labou?r day|family day|good friday|easter monday|easter|"
    r"civic holiday|remembrance day|halloween)"
)
_WD = (
    rf"(?:{_WD_SAFE}|(?<=on )(?:{_WD_ALL})|(?<=this )(?:{_WD_ALL})|(?<=next )(?:{_WD_ALL})"
    rf"|(?:{_WD_ALL})(?= {_ORD}| the {_ORD}| {_MONTH}))"
)
# Ordered: the longer forms first, so "the friday after next" is not read as "friday".
DATE_PATTERNS = [
    rf"(?:the )?(?:first|second|third|fourth|last|1st|2nd|3rd|4th) (?:{_WD_ALL}) (?:of|in) "
    rf"(?:{_MONTH}|the month|this month|next month)",
    rf"(?:the )?(?:{_WD}) after next",
    rf"(?:a|one|two|2) weeks? from (?:{_WD}|today|now|tomorrow)",
    rf"{_NUM} {_UNIT} from (?:today|now|tomorrow|(?:{_WD}))",
    rf"in {_NUM} {_UNIT}",
    rf"(?:(?:this|next|coming|this coming|the coming|on) )?(?:{_WD})"
    rf"(?: (?:the )?{_ORD}| {_MONTH} \d{{1,2}}(?:st|nd|rd|th)?| next week| this week| week)?",
    rf"(?:the )?day after (?:{_DAYWORDS})",
    rf"(?:{_DAYWORDS})s?",
    r"this (?:morning|afternoon|evening)",
    r"(?:this|next|the) weekend|after the weekend|over the weekend|on the weekend|weekend",
    r"(?:(?:early|late|later|end of|the end of|beginning of|start of|middle of|mid|sometime|some time) )?"
    r"(?:this|next|the) week",
    r"end of (?:the )?week",
    rf"{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?(?: \d{{4}})?",
    rf"\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH}(?: \d{{4}})?",
    r"\d{4}-\d{1,2}-\d{1,2}",
    r"\d{1,2}/\d{1,2}(?:/\d{2,4})?",
    rf"(?:the )?{_ORD}(?! (?:time|floor|one|bathroom|outlet|unit|level|story|storey|house|call|visit|try|attempt))",
    _HOLIDAY,
]
DATE_RE = re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p in DATE_PATTERNS) + r")\b")
# Words about the past are context ("since yesterday", "came last week"), not the day wanted.
PAST = re.compile(rf"\b(yesterday|last (night|week|month|year|time|(?:{_WD_ALL}))|(?:\w+ )?(days?|weeks?) ago)\b")


def date_phrase_of(text: str) -> str | None:
    """The first words naming a day, as the resolver should read them, or None."""
    text = PAST.sub(" ", text)
    for match in DATE_RE.finditer(text):
        before = text[: match.start()].split()[-1:]
        if before and before[0] in ("since", "from", "until", "til", "till"):
            continue
        phrase = match.group(0)
        if phrase.startswith("on "):
            phrase = phrase[3:]
        return _canonical_words(phrase)
    return None


PART_OF_DAY = [
    ("morning", r"\b(morning|mornings|mornin|first thing|before noon|before lunch|in the am)\b"),
    ("afternoon", r"\b(afternoon|afternoons|arvo|after lunch|in the pm)\b"),
    ("evening", r"\b(evening|evenings|tonight|tonite|after work|after 5|after five)\b"),
    ("midday", r"\b(noon|midday|lunch ?time|around lunch)\b"),
]


def part_of_day_of(text: str) -> str | None:
    text = re.sub(r"\bgood (morning|afternoon|evening)\b|\bsince (this )?\w+\b", " ", text)
    for part, pattern in PART_OF_DAY:
        if re.search(pattern, text):
            return part
    return None


EARLIEST = re.compile(
    r"\b(earliest|soonest|asap|as soon as possible|right away|right now|first (one|available|slot|time|opening)|"
    r"the first one|quickest|next available|first available)\b"
)
LATEST = re.compile(r"\b(latest|last (one|slot|time|available|opening)|the last one)\b")
CLOCK = [
    # "9am", "2 pm", "9:30am", "10.30 pm"
    re.compile(r"\b(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))? ?(?P<ampm>am|pm|a m|p m)\b"),
    # "the 8:30 one", "14:00"
    re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})\b"),
    # "at 10", "around 2", "10 o'clock"
    re.compile(r"\b(?:at|around|about|by|after) (?P<h>\d{1,2})(?: ?o ?clock)?\b(?! ?(?:days?|weeks?|[/:.]?\d))"),
    re.compile(r"\b(?P<h>\d{1,2}) ?o ?clock\b"),
]


def time_of(text: str) -> str | None:
    """A wanted time: "HH:MM" ("9am", "2 pm", "the 8:30 one", "at 10"), "earliest" or "latest"."""
    for pattern in CLOCK:
        if match := pattern.search(text):
            hour, minute = int(match["h"]), int(match.groupdict().get("m") or 0)
            ampm = (match.groupdict().get("ampm") or "").replace(" ", "")
            if hour > 23 or minute > 59 or (ampm and not 1 <= hour <= 12):
                return None
            if ampm == "pm" and hour < 12:
                hour += 12
            elif ampm == "am" and hour == 12:
                hour = 0
            elif not ampm and 1 <= hour <= 6:
                hour += 12  # nobody books a 3 a.m. visit: "at 3" is the afternoon
            return f"{hour:02d}:{minute:02d}"
    if re.search(r"\bnoon\b", text):
        return "12:00"
    if EARLIEST.search(text):
        return "earliest"
    if LATEST.search(text):
        return "latest"
    return None


# --- numbers, references and contacts -------------------------------------------------------

BOOKING_NUMBER = re.compile(r"\bbk[\s-]?(\d{4})[\s-]?(\d{1,6})\b", re.I)
PHONE = re.compile(r"(?<![\w-])(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?![\w-])")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
MENU_NUMBER = re.compile(r"^\s*(?:option|number|no\.?|num|#)?\s*(\d{1,4})\s*[.)]?\s*$", re.I)


def booking_number_of(text: str) -> str | None:
    match = BOOKING_NUMBER.search(text)
    return f"BK-{match[1]}-{int(match[2]):06d}" if match else None


def number_of(text: str) -> int | None:
    match = MENU_NUMBER.match(text)
    return int(match[1]) if match else None


def understand(text: str, catalogue: Sequence[ServiceTerms], *, today: date) -> Understanding:
    """Everything the guided chat can take from one message; see the module docstring."""
    raw = text or ""
    number = number_of(raw)
    booking_number = booking_number_of(raw)
    phone_match = PHONE.search(BOOKING_NUMBER.sub(" ", raw))
    email_match = EMAIL.search(raw)
    if number is not None:
        return Understanding(number=number)
    # References and contacts out first, so their digits are not read as days or times.
    rest = EMAIL.sub(" ", PHONE.sub(" ", BOOKING_NUMBER.sub(" ", raw)))
    said = normalize(rest)
    # Apostrophes go, slashes and colons stay for "12/18" and "8:30".
    with_marks = " ".join(re.sub(r"[^a-z0-9/:]+", " ", rest.lower().replace("'", "").replace("’", "")).split())

    urgent, gas, urgent_trade = urgency_of(said, today)
    match = match_services(rest, catalogue)
    services, trade = match.services, match.trade
    if urgent:
        # Gas means a gas appliance (HVAC here), whatever else was said ("a gas leak").
        trade = urgent_trade if gas else (trade or urgent_trade)
        emergency = [s.service_id for s in catalogue if s.emergency and s.trade == trade]
        if emergency:
            services = (emergency[0],)
        elif not services and trade is None:
            # "it's an emergency": any trade's emergency service, to choose from.
            services = tuple(s.service_id for s in catalogue if s.emergency)

    date_phrase = date_phrase_of(with_marks)
    part = part_of_day_of(said)
    wanted = time_of(with_marks)
    intent = intent_of(said)
    if booking_number and intent in (None, BOOK):
        intent = LOOKUP
    if intent is None and not SMALL_TALK.match(said) and (services or trade or urgent or date_phrase or wanted):
        intent = BOOK
    return Understanding(
        intent=intent,
        services=services,
        trade=trade,
        urgent=urgent,
        gas=gas,
        date_phrase=date_phrase,
        part_of_day=part,
        time=wanted,
        booking_number=booking_number,
        phone=phone_match.group(0) if phone_match else None,
        email=email_match.group(0) if email_match else None,
    )
