"""The date grammar's vocabulary: the words for days, months, numbers and parts of the day, the
short forms and misspellings it corrects, and the regular-expression pieces built from them.

Tables only, no logic: chatdesk/assistant/date_grammar.py reads them.
"""

WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = {name.lower(): i for i, name in enumerate(WEEKDAY_NAMES)}
MONTHS = {name.lower(): i for i, name in enumerate(MONTH_NAMES, 1)}
MONTHS.update({name.lower()[:3]: i for i, name in enumerate(MONTH_NAMES, 1)})
MONTHS["sept"] = 9

# Short forms and common misspellings, token by token. Month abbreviations are not here:
# "may", "mar" and "march" are also ordinary words, so months only count next to a day.
ALIASES = {
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tmrow": "tomorrow",
    "tmw": "tomorrow",
    "tmro": "tomorrow",
    "tomoz": "tomorrow",
    "2moro": "tomorrow",
    "2morrow": "tomorrow",
    "2day": "today",
    "tdy": "today",
    "tonite": "tonight",
    "2nite": "tonight",
    "nxt": "next",
    "nex": "next",
    "wk": "week",
    "wks": "weeks",
    "wkend": "weekend",
    "wknd": "weekend",
    "weekends": "weekend",
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "wed": "wednesday",
    "weds": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
    "xmas": "christmas",
    "yday": "yesterday",
    "coupla": "couple",
    "mornin": "morning",
    "arvo": "afternoon",
    "aft": "afternoon",
}
# Long words worth correcting when misspelt ("wednsday", "tommorow", "decmber").
FUZZY_TARGETS = [
    *WEEKDAYS,
    *(m for m in MONTHS if len(m) >= 5),
    "tomorrow",
    "today",
    "tonight",
    "yesterday",
    "weekend",
    "morning",
    "afternoon",
    "evening",
    "christmas",
    "thanksgiving",
]
# Real words that look like a target but are not one.
NOT_TYPOS = {"someday", "sunny", "tuesday", "thursday", "weekday", "weekdays", "sometime", "sunset", "months"}

NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "couple": 2,
    "few": 3,
}
ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "last": -1,
}
_UNITS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
_TEENS = ["tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth"]
ORDINAL_WORDS = {word: n for n, word in enumerate(_UNITS + _TEENS + ["eighteenth", "nineteenth", "twentieth"], 1)}
ORDINAL_WORDS.update({f"twenty {word}": 20 + n for n, word in enumerate(_UNITS, 1)})
ORDINAL_WORDS.update({"thirtieth": 30, "thirty first": 31})
ORDINAL_WORDS_PATTERN = "|".join(sorted(ORDINAL_WORDS, key=len, reverse=True))
PARTS_OF_DAY = {
    "morning": "morning",
    "afternoon": "afternoon",
    "evening": "evening",
    "night": "evening",
    "tonight": "evening",
    "noon": "midday",
    "midday": "midday",
    "lunch": "midday",
    "lunchtime": "midday",
}
# Days that are not public holidays in the `holidays` package but that customers name.
EVES = {"christmas eve": (12, 24), "new years eve": (12, 31)}
# Shorter names people use for a holiday; the full names come from the package.
HOLIDAY_ALIASES = {
    "christmas": "christmas day",
    "new years": "new years day",
    "thanksgiving": "thanksgiving day",
    "labor day": "labour day",
    "remembrance": "remembrance day",
    "family day weekend": "family day",
}

WD = "(" + "|".join(WEEKDAYS) + ")"
MONTH = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + ")"
DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
NUM = r"(\d{1,3}|" + "|".join(NUMBER_WORDS) + ")"
YEAR = r"(?: (\d{4}))?"
