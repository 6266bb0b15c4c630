"""What customers say about a day, at fixed moments, and the answer worked out by hand.

Every expected date below was worked out with a paper calendar (2026-2027), not by running
chatdesk.assistant.dates. The business is the tests' `business` fixture: open Monday to Saturday,
closed on Sundays (no business hours), plus the Ontario statutory holidays in CLOSED_DAYS.
The booking horizon is 60 days.

An expectation reads:
    "2026-12-18"                        status ok, that date
    "past 2026-12-03"                   status past, that date
    "beyond 2027-03-03"                 status beyond_horizon, that date
    "closed 2026-12-06 next 2026-12-07" status closed, that date, next_open (no "next": none in the window)
    "ambiguous 2026-12-04 2026-12-11"   status ambiguous, exactly these readings, in this order
    "unresolved"                        the words name no day

Used by tests/test_dates.py and bench/dates_compare.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

# Reference moments, as UTC instants; the comment says what the clock on the wall shows in Toronto.
MOMENTS = {
    # Wednesday 12:00 EST; an ordinary weekday (the old tests' reference).
    "wed": datetime.fromisoformat("2026-11-25T17:00:00+00:00"),
    # Friday 22:30 EST: the UTC date is already Saturday December 5.
    "late": datetime.fromisoformat("2026-12-05T03:30:00+00:00"),
    # Saturday 10:00 EST.
    "sat": datetime.fromisoformat("2026-12-05T15:00:00+00:00"),
    # Sunday 10:00 EST.
    "sun": datetime.fromisoformat("2026-12-06T15:00:00+00:00"),
    # Sunday March 8, 03:30 EDT: half an hour after the clocks went forward (02:00 EST -> 03:00 EDT).
    "spring": datetime.fromisoformat("2026-03-08T07:30:00+00:00"),
    # Saturday March 7, 23:30 EST: the UTC date is already the DST Sunday.
    "spring_eve": datetime.fromisoformat("2026-03-08T04:30:00+00:00"),
    # Saturday October 31, 23:30 EDT: the UTC date is already the DST Sunday.
    "fall_eve": datetime.fromisoformat("2026-11-01T03:30:00+00:00"),
    # Sunday November 1, 01:30 EST: the second 01:30 of the night, after the clocks went back.
    "fall": datetime.fromisoformat("2026-11-01T06:30:00+00:00"),
    # Wednesday December 30, 15:00 EST.
    "dec30": datetime.fromisoformat("2026-12-30T20:00:00+00:00"),
    # Thursday December 31, 23:30 EST: in UTC it is already 2027.
    "dec31": datetime.fromisoformat("2027-01-01T04:30:00+00:00"),
}

# Ontario statutory holidays (and observed days) the business closes on.
CLOSED_DAYS = {
    date(2026, 4, 3): "Good Friday",
    date(2026, 5, 18): "Victoria Day",
    date(2026, 12, 25): "Christmas Day",
    date(2026, 12, 26): "Boxing Day",
    date(2026, 12, 28): "Boxing Day (observed)",
    date(2027, 1, 1): "New Year's Day",
    date(2027, 2, 15): "Family Day",
    date(2027, 3, 26): "Good Friday",
}


class Case(NamedTuple):
    kind: str
    moment: str
    phrase: str
    expected: str

    @property
    def id(self) -> str:
        return f"{self.moment}:{self.phrase}"


def _cases(moment: str, rows: str) -> list[Case]:
    """Rows "kind | phrase | expected", one a line."""
    cases = []
    for line in rows.strip().splitlines():
        kind, phrase, expected = (part.strip() for part in line.split("|"))
        cases.append(Case(kind, moment, phrase, expected))
    return cases


CASES: list[Case] = [
    # Wednesday November 25, 2026. This week: Mon 23 - Sun 29; next week: Mon 30 - Sun Dec 6.
    # Horizon: January 24, 2027.
    *_cases(
        "wed",
        """
        relative | today | 2026-11-25
        relative | tonight | 2026-11-25
        relative | tomorrow | 2026-11-26
        relative | day after tomorrow | 2026-11-27
        relative | yesterday | past 2026-11-24
        weekday | friday | 2026-11-27
        weekday | monday | 2026-11-30
        weekday | can someone come friday? | 2026-11-27
        weekday | wednesday | ambiguous 2026-11-25 2026-12-02
        weekday | sunday | closed 2026-11-29 next 2026-11-30
        which_week | this friday | 2026-11-27
        which_week | next friday | ambiguous 2026-11-27 2026-12-04
        which_week | Friday next week | 2026-12-04
        which_week | next week monday | 2026-11-30
        which_week | next monday | 2026-11-30
        which_week | next wednesday | 2026-12-02
        which_week | next thursday | ambiguous 2026-11-26 2026-12-03
        which_week | last friday | past 2026-11-20
        which_week | last wednesday | past 2026-11-18
        which_week | the friday after next | 2026-12-04
        offset | a week from friday | 2026-12-04
        offset | a week from today | 2026-12-02
        offset | two weeks from now | 2026-12-09
        offset | 10 days from today | 2026-12-05
        offset | in 3 days | 2026-11-28
        offset | in a week | 2026-12-02
        offset | in two weeks | 2026-12-09
        offset | in a couple of days | 2026-11-27
        offset | in a few days | 2026-11-28
        span | this weekend | 2026-11-28
        span | next weekend | ambiguous 2026-11-28 2026-12-05
        span | after the weekend | 2026-11-30
        span | the weekend after next | 2026-12-05
        span | end of the week | 2026-11-27
        span | early next week | ambiguous 2026-11-30 2026-12-01
        span | late next week | ambiguous 2026-12-03 2026-12-04
        span | next week | ambiguous 2026-11-30 2026-12-01 2026-12-02 2026-12-03 2026-12-04 2026-12-05
        month_day | Dec 3 | 2026-12-03
        month_day | December 3rd | 2026-12-03
        month_day | 3 December | 2026-12-03
        month_day | the 3rd | 2026-12-03
        month_day | on the 30th | 2026-11-30
        month_day | Nov 20 | past 2026-11-20
        month_day | January 5 | 2027-01-05
        month_day | March 15 | beyond 2027-03-15
        month_day | 2026-12-09 | 2026-12-09
        numeric | 12/3 | 2026-12-03
        weekday_date | Friday the 27th | 2026-11-27
        weekday_date | Friday the 4th | 2026-12-04
        weekday_date | Thursday the 4th | ambiguous 2026-12-04 2026-12-03
        ordinal | first Monday of December | 2026-12-07
        ordinal | the last Friday of the month | 2026-11-27
        holiday | Christmas | closed 2026-12-25 next 2026-12-29
        holiday | Christmas Eve | 2026-12-24
        holiday | Boxing Day | closed 2026-12-26 next 2026-12-29
        holiday | New Year's Day | closed 2027-01-01 next 2027-01-02
        messy | can someone come next tuesday morning please | 2026-12-01
        messy | nxt fri | ambiguous 2026-11-27 2026-12-04
        messy | wednsday | ambiguous 2026-11-25 2026-12-02
        messy | tmrw | 2026-11-26
        invalid | whenever | unresolved
        invalid | February 30 | unresolved
        invalid | 13/45 | unresolved
        invalid | the 45th | unresolved
        """,
    ),
    # The same Wednesday: phrases written down with their answers before the grammar had seen
    # them (first run: 41 of 46 right; "after this weekend", "the day before Christmas", "11-28",
    # "last day of the month" and "end of the month" were then added to the grammar).
    *_cases(
        "wed",
        """
        messy | Could you come out on Thursday? | 2026-11-26
        weekday | thursday works | 2026-11-26
        messy | any time tmrw afternoon | 2026-11-26
        which_week | this thurs | 2026-11-26
        weekday | Mon | 2026-11-30
        which_week | mon next week | 2026-11-30
        which_week | next Tuesday please | 2026-12-01
        weekday_date | Tuesday the 1st | 2026-12-01
        month_day | 1st of Dec | 2026-12-01
        month_day | December first | 2026-12-01
        month_day | Dec 1st | 2026-12-01
        numeric | 12/01 | ambiguous 2026-12-01 2027-01-12
        month_day | the 26th | 2026-11-26
        offset | in 2 weeks time | 2026-12-09
        offset | in two weeks' time | 2026-12-09
        offset | three days from now | 2026-11-28
        offset | a couple days from now | 2026-11-27
        span | after this weekend | 2026-11-30
        span | sometime after the weekend | 2026-11-30
        holiday | around christmas | closed 2026-12-25 next 2026-12-29
        holiday | the day before christmas | 2026-12-24
        holiday | Xmas Eve | 2026-12-24
        holiday | new year's eve | 2026-12-31
        weekday | friday morning | 2026-11-27
        messy | Friday afternoon at 2 | 2026-11-27
        messy | FRIDAY | 2026-11-27
        weekday_date | fri the 27th | 2026-11-27
        weekday_date | Sat 28th | 2026-11-28
        weekday_date | sat. nov 28 | 2026-11-28
        numeric | 11-28 | 2026-11-28
        which_week | next thurs | ambiguous 2026-11-26 2026-12-03
        which_week | this coming thursday | 2026-11-26
        which_week | the thursday after next | 2026-12-03
        offset | a week tomorrow | 2026-12-03
        offset | tuesday week | 2026-12-08
        month_day | the 30th of november | 2026-11-30
        month_day | nov 30th | 2026-11-30
        month_day | 30 nov | 2026-11-30
        ordinal | last day of the month | 2026-11-30
        ordinal | end of the month | 2026-11-30
        span | next wk | ambiguous 2026-11-30 2026-12-01 2026-12-02 2026-12-03 2026-12-04 2026-12-05
        relative | today or tomorrow | ambiguous 2026-11-25 2026-11-26
        invalid | whenever is soonest | unresolved
        invalid | no rush | unresolved
        relative | as soon as possible | 2026-11-25
        relative | tomorrow evening | 2026-11-26
        """,
    ),
    # Friday December 4, 2026, 22:30 (UTC: Saturday 03:30). This week: Mon Nov 30 - Sun Dec 6;
    # next week: Mon 7 - Sun 13. Horizon: February 2, 2027.
    *_cases(
        "late",
        """
        relative | today | 2026-12-04
        relative | tonight | 2026-12-04
        relative | tomorrow | 2026-12-05
        relative | day after tomorrow | closed 2026-12-06 next 2026-12-07
        relative | yesterday | past 2026-12-03
        weekday | friday | ambiguous 2026-12-04 2026-12-11
        weekday | monday | 2026-12-07
        weekday | saturday | 2026-12-05
        weekday | sunday | closed 2026-12-06 next 2026-12-07
        which_week | this friday | 2026-12-04
        which_week | next friday | 2026-12-11
        which_week | this coming friday | 2026-12-11
        which_week | last friday | past 2026-11-27
        which_week | next monday | 2026-12-07
        which_week | next saturday | ambiguous 2026-12-05 2026-12-12
        which_week | the friday after next | 2026-12-18
        offset | a week from friday | 2026-12-11
        offset | a week from today | 2026-12-11
        offset | two weeks from now | 2026-12-18
        offset | 3 days from now | 2026-12-07
        offset | in 10 days | 2026-12-14
        offset | 2 weeks from friday | 2026-12-18
        offset | in a couple of days | closed 2026-12-06 next 2026-12-07
        offset | in 2-3 days | 2026-12-07
        span | this weekend | 2026-12-05
        span | next weekend | ambiguous 2026-12-05 2026-12-12
        span | after the weekend | 2026-12-07
        span | the weekend after next | 2026-12-12
        span | end of the week | 2026-12-04
        span | early next week | ambiguous 2026-12-07 2026-12-08
        span | late next week | ambiguous 2026-12-10 2026-12-11
        span | end of next week | 2026-12-11
        span | sometime next week | ambiguous 2026-12-07 2026-12-08 2026-12-09 2026-12-10 2026-12-11 2026-12-12
        month_day | Dec 18 | 2026-12-18
        month_day | December 18th 2026 | 2026-12-18
        month_day | 18 December | 2026-12-18
        month_day | the 18th | 2026-12-18
        month_day | December 3 | past 2026-12-03
        month_day | January 5 | 2027-01-05
        month_day | March 3 | beyond 2027-03-03
        month_day | Dec 18, 2026 | 2026-12-18
        month_day | dec. 18th | 2026-12-18
        numeric | 12/18 | 2026-12-18
        numeric | 12/3 | ambiguous 2026-12-03 2027-03-12
        weekday_date | Friday the 18th | 2026-12-18
        weekday_date | Monday the 18th | ambiguous 2026-12-18 2026-12-21
        weekday_date | Friday, Dec. 18 | 2026-12-18
        weekday_date | Thursday, December 3 | past 2026-12-03
        weekday_date | thursday the 3rd | past 2026-12-03
        weekday_date | Thursday 12/3 | past 2026-12-03
        which_week | last weekend | past 2026-11-29
        span | last week | past 2026-11-29
        which_week | next week monday | 2026-12-07
        ordinal | first Monday of January | 2027-01-04
        ordinal | the last Friday of the month | closed 2026-12-25 next 2026-12-29
        holiday | Christmas Eve | 2026-12-24
        holiday | Boxing Day | closed 2026-12-26 next 2026-12-29
        holiday | Good Friday | beyond 2027-03-26
        holiday | Family Day | beyond 2027-02-15
        messy | can someone come nxt friday please | 2026-12-11
        messy | TOMORROW | 2026-12-05
        messy | Tmrw pls | 2026-12-05
        messy | wednsday | 2026-12-09
        messy | thurs | 2026-12-10
        messy | tues morning | 2026-12-08
        messy | hi my furnace is banging can someone come tomorrow morning | 2026-12-05
        messy | monday at 9am | 2026-12-07
        messy | the 18th at 10 | 2026-12-18
        month_day | the ninth | 2026-12-09
        month_day | on the tenth | 2026-12-10
        month_day | twenty-first of December | 2026-12-21
        month_day | December ninth | 2026-12-09
        offset | a month from now | 2027-01-04
        offset | in 2 months | beyond 2027-02-04
        span | the week after next | ambiguous 2026-12-14 2026-12-15 2026-12-16 2026-12-17 2026-12-18 2026-12-19
        messy | next tues or wed | ambiguous 2026-12-08 2026-12-09
        messy | friday or saturday | ambiguous 2026-12-04 2026-12-11 2026-12-05
        invalid | just a second | unresolved
        """,
    ),
    # Saturday December 5, 2026. Next week: Mon 7 - Sun 13. Horizon: February 3, 2027.
    *_cases(
        "sat",
        """
        relative | today | 2026-12-05
        relative | tomorrow | closed 2026-12-06 next 2026-12-07
        relative | day after tomorrow | 2026-12-07
        relative | yesterday | past 2026-12-04
        weekday | saturday | ambiguous 2026-12-05 2026-12-12
        weekday | sunday | closed 2026-12-06 next 2026-12-07
        weekday | monday | 2026-12-07
        weekday | friday | 2026-12-11
        which_week | next friday | 2026-12-11
        which_week | next monday | 2026-12-07
        which_week | this friday | 2026-12-11
        which_week | last friday | past 2026-12-04
        which_week | the friday after next | 2026-12-18
        offset | a week from friday | 2026-12-18
        offset | a week from today | 2026-12-12
        offset | in 2 weeks | 2026-12-19
        offset | two weeks from friday | closed 2026-12-25 next 2026-12-29
        offset | in a couple of days | 2026-12-07
        offset | in a few days | 2026-12-08
        span | this weekend | 2026-12-05
        span | next weekend | 2026-12-12
        span | after the weekend | 2026-12-07
        span | weekend after next | 2026-12-19
        span | end of the week | 2026-12-11
        span | next week | ambiguous 2026-12-07 2026-12-08 2026-12-09 2026-12-10 2026-12-11 2026-12-12
        span | early next week | ambiguous 2026-12-07 2026-12-08
        month_day | Dec 24 | 2026-12-24
        month_day | the 28th | closed 2026-12-28 next 2026-12-29
        month_day | the 5th | 2026-12-05
        month_day | the 4th | 2027-01-04
        numeric | 1/4 | 2027-01-04
        numeric | 4/1 | 2027-01-04
        numeric | 12/12 | 2026-12-12
        weekday_date | Monday the 7th | 2026-12-07
        weekday_date | Friday, December 11 | 2026-12-11
        weekday_date | Tuesday December 11 | ambiguous 2026-12-11 2026-12-08
        ordinal | first Saturday of January | 2027-01-02
        ordinal | last Monday of the month | closed 2026-12-28 next 2026-12-29
        holiday | Christmas | closed 2026-12-25 next 2026-12-29
        holiday | New Year's Eve | 2026-12-31
        messy | tmrw morning | closed 2026-12-06 next 2026-12-07
        messy | nxt tues | 2026-12-08
        messy | thrusday | 2026-12-10
        messy | saturday or sunday | ambiguous 2026-12-05 2026-12-12 2026-12-06
        """,
    ),
    # Sunday December 6, 2026 (a closed day). This week ends today; next week: Mon 7 - Sun 13.
    # Horizon: February 4, 2027.
    *_cases(
        "sun",
        """
        relative | today | closed 2026-12-06 next 2026-12-07
        relative | tomorrow | 2026-12-07
        relative | yesterday | past 2026-12-05
        weekday | monday | 2026-12-07
        weekday | friday | 2026-12-11
        weekday | sunday | ambiguous 2026-12-06 2026-12-13
        weekday | sat | 2026-12-12
        which_week | next monday | 2026-12-07
        which_week | next sunday | closed 2026-12-13 next 2026-12-14
        which_week | this friday | 2026-12-11
        which_week | last friday | past 2026-12-04
        which_week | last sunday | past 2026-11-29
        which_week | the friday after next | 2026-12-18
        which_week | tuesday next week | 2026-12-08
        offset | a week from monday | 2026-12-14
        offset | in 3 days | 2026-12-09
        offset | a week from today | closed 2026-12-13 next 2026-12-14
        span | this weekend | closed 2026-12-06 next 2026-12-07
        span | next weekend | 2026-12-12
        span | after the weekend | 2026-12-07
        span | weekend after next | 2026-12-19
        span | end of the week | 2026-12-11
        span | this week | closed 2026-12-06 next 2026-12-07
        span | next week | ambiguous 2026-12-07 2026-12-08 2026-12-09 2026-12-10 2026-12-11 2026-12-12
        span | late next week | ambiguous 2026-12-10 2026-12-11
        span | early next week | ambiguous 2026-12-07 2026-12-08
        month_day | the 18th | 2026-12-18
        month_day | December 18 | 2026-12-18
        month_day | Dec 6 | closed 2026-12-06 next 2026-12-07
        month_day | Dec 5 | past 2026-12-05
        numeric | 12/5 | ambiguous 2026-12-05 2027-05-12
        ordinal | first Monday of January | 2027-01-04
        ordinal | the last friday of the month | closed 2026-12-25 next 2026-12-29
        holiday | Boxing Day | closed 2026-12-26 next 2026-12-29
        holiday | New Year's Day | closed 2027-01-01 next 2027-01-02
        messy | can you come tomorrow afternoon | 2026-12-07
        messy | wensday | 2026-12-09
        """,
    ),
    # Sunday March 8, 2026, the day the clocks went forward. This week ends today; next week:
    # Mon 9 - Sun 15. Horizon: May 7, 2026.
    *_cases(
        "spring",
        """
        relative | today | closed 2026-03-08 next 2026-03-09
        relative | tomorrow | 2026-03-09
        relative | yesterday | past 2026-03-07
        relative | day after tomorrow | 2026-03-10
        weekday | monday | 2026-03-09
        weekday | friday | 2026-03-13
        which_week | next friday | 2026-03-13
        which_week | this saturday | 2026-03-14
        which_week | last saturday | past 2026-03-07
        which_week | the friday after next | 2026-03-20
        which_week | next tuesday | 2026-03-10
        offset | a week from today | closed 2026-03-15 next 2026-03-16
        offset | in 2 weeks | closed 2026-03-22 next 2026-03-23
        offset | 10 days from now | 2026-03-18
        offset | in a fortnight | closed 2026-03-22 next 2026-03-23
        offset | a week from friday | 2026-03-20
        span | this weekend | closed 2026-03-08 next 2026-03-09
        span | next weekend | 2026-03-14
        span | next week | ambiguous 2026-03-09 2026-03-10 2026-03-11 2026-03-12 2026-03-13 2026-03-14
        month_day | March 17 | 2026-03-17
        month_day | 17 March | 2026-03-17
        month_day | April 3 | closed 2026-04-03 next 2026-04-04
        month_day | the 1st | 2026-04-01
        month_day | May 15 | beyond 2026-05-15
        month_day | march 3 | past 2026-03-03
        numeric | 3/15 | closed 2026-03-15 next 2026-03-16
        numeric | 4/3 | closed 2026-04-03 next 2026-04-04
        ordinal | first Monday of April | 2026-04-06
        ordinal | last Friday of March | 2026-03-27
        holiday | Good Friday | closed 2026-04-03 next 2026-04-04
        holiday | Easter Monday | 2026-04-06
        holiday | Victoria Day | beyond 2026-05-18
        messy | tmrw | 2026-03-09
        """,
    ),
    # Saturday March 7, 2026, 23:30 (UTC: the DST Sunday, 04:30). This week: Mon 2 - Sun 8; next
    # week: Mon 9 - Sun 15. Horizon: May 6, 2026.
    *_cases(
        "spring_eve",
        """
        relative | today | 2026-03-07
        relative | tonight | 2026-03-07
        relative | tomorrow | closed 2026-03-08 next 2026-03-09
        relative | day after tomorrow | 2026-03-09
        weekday | saturday | ambiguous 2026-03-07 2026-03-14
        which_week | next saturday | 2026-03-14
        span | this weekend | 2026-03-07
        span | next week | ambiguous 2026-03-09 2026-03-10 2026-03-11 2026-03-12 2026-03-13 2026-03-14
        offset | a week from today | 2026-03-14
        offset | in 2 days | 2026-03-09
        month_day | March 7 | 2026-03-07
        month_day | the 8th | closed 2026-03-08 next 2026-03-09
        """,
    ),
    # Saturday October 31, 2026, 23:30 EDT (UTC: the DST Sunday, 03:30). This week: Mon Oct 26 -
    # Sun Nov 1; next week: Mon 2 - Sun 8. Horizon: December 30, 2026.
    *_cases(
        "fall_eve",
        """
        relative | today | 2026-10-31
        relative | tomorrow | closed 2026-11-01 next 2026-11-02
        relative | yesterday | past 2026-10-30
        weekday | monday | 2026-11-02
        which_week | last friday | past 2026-10-30
        span | this weekend | 2026-10-31
        span | next weekend | 2026-11-07
        month_day | the 1st | closed 2026-11-01 next 2026-11-02
        month_day | October 31 | 2026-10-31
        month_day | November 2 | 2026-11-02
        offset | a week from today | 2026-11-07
        offset | 3 days from now | 2026-11-03
        holiday | New Year's Eve | beyond 2026-12-31
        holiday | Christmas | closed 2026-12-25 next 2026-12-29
        """,
    ),
    # Sunday November 1, 2026, the night the clocks went back. This week ends today; next week:
    # Mon 2 - Sun 8. Horizon: December 31, 2026.
    *_cases(
        "fall",
        """
        relative | today | closed 2026-11-01 next 2026-11-02
        relative | tonight | closed 2026-11-01 next 2026-11-02
        relative | tomorrow | 2026-11-02
        relative | yesterday | past 2026-10-31
        relative | the day after tomorrow | 2026-11-03
        weekday | saturday | 2026-11-07
        weekday | wed | 2026-11-04
        which_week | next saturday | 2026-11-07
        which_week | last saturday | past 2026-10-31
        which_week | this friday | 2026-11-06
        which_week | friday after next | 2026-11-13
        which_week | next wed | 2026-11-04
        offset | a week from tomorrow | 2026-11-09
        offset | in 3 weeks | closed 2026-11-22 next 2026-11-23
        offset | two weeks from today | closed 2026-11-15 next 2026-11-16
        span | this weekend | closed 2026-11-01 next 2026-11-02
        span | after the weekend | 2026-11-02
        span | end of the week | 2026-11-06
        span | next week | ambiguous 2026-11-02 2026-11-03 2026-11-04 2026-11-05 2026-11-06 2026-11-07
        month_day | the 15th | closed 2026-11-15 next 2026-11-16
        month_day | the 31st | 2026-12-31
        month_day | October 30 | past 2026-10-30
        numeric | 11/11 | 2026-11-11
        numeric | 11/12 | ambiguous 2026-11-12 2026-12-11
        weekday_date | Friday the 13th | 2026-11-13
        weekday_date | Wednesday, November 11 | 2026-11-11
        ordinal | first Monday of the month | 2026-11-02
        ordinal | the last Friday of the month | 2026-11-27
        ordinal | first Tuesday of next month | 2026-12-01
        holiday | Christmas | closed 2026-12-25 next 2026-12-29
        holiday | Boxing Day | closed 2026-12-26 next 2026-12-29
        holiday | New Year's Day | beyond 2027-01-01
        holiday | New Year's Eve | 2026-12-31
        holiday | Thanksgiving | beyond 2027-10-11
        holiday | Remembrance Day | 2026-11-11
        """,
    ),
    # Wednesday December 30, 2026. This week: Mon Dec 28 - Sun Jan 3; next week: Mon Jan 4 -
    # Sun Jan 10. Horizon: February 28, 2027.
    *_cases(
        "dec30",
        """
        relative | today | 2026-12-30
        relative | tomorrow | 2026-12-31
        relative | day after tomorrow | closed 2027-01-01 next 2027-01-02
        relative | yesterday | past 2026-12-29
        weekday | friday | closed 2027-01-01 next 2027-01-02
        weekday | monday | 2027-01-04
        which_week | next friday | ambiguous 2027-01-01 2027-01-08
        which_week | this friday | closed 2027-01-01 next 2027-01-02
        which_week | next monday | 2027-01-04
        which_week | last monday | past 2026-12-28
        which_week | the friday after next | 2027-01-08
        offset | a week from today | 2027-01-06
        offset | in 2 weeks | 2027-01-13
        offset | in a few days | 2027-01-02
        span | this weekend | 2027-01-02
        span | next weekend | ambiguous 2027-01-02 2027-01-09
        span | after the weekend | 2027-01-04
        span | next week | ambiguous 2027-01-04 2027-01-05 2027-01-06 2027-01-07 2027-01-08 2027-01-09
        span | end of the week | closed 2027-01-01 next 2027-01-02
        month_day | Jan 5 | 2027-01-05
        month_day | January 5th 2027 | 2027-01-05
        month_day | the 5th | 2027-01-05
        month_day | December 31 | 2026-12-31
        month_day | December 29 | past 2026-12-29
        month_day | march 1 | beyond 2027-03-01
        month_day | Feb 28 | closed 2027-02-28
        numeric | 1/5 | 2027-01-05
        numeric | 1/5/2027 | 2027-01-05
        numeric | 12/31 | 2026-12-31
        weekday_date | Friday the 8th | 2027-01-08
        weekday_date | Monday the 4th | 2027-01-04
        weekday_date | Tuesday the 4th | ambiguous 2027-01-04 2027-01-05
        ordinal | first Monday of January | 2027-01-04
        ordinal | the last Friday of the month | past 2026-12-25
        ordinal | last friday of january | 2027-01-29
        holiday | New Year's Day | closed 2027-01-01 next 2027-01-02
        holiday | New Year's Eve | 2026-12-31
        holiday | Family Day | closed 2027-02-15 next 2027-02-16
        offset | in two months | closed 2027-02-28
        invalid | next year | unresolved
        """,
    ),
    # Thursday December 31, 2026, 23:30 (UTC: already January 1, 2027). This week: Mon Dec 28 -
    # Sun Jan 3; next week: Mon Jan 4 - Sun Jan 10. Horizon: March 1, 2027.
    *_cases(
        "dec31",
        """
        relative | today | 2026-12-31
        relative | tonight | 2026-12-31
        relative | tomorrow | closed 2027-01-01 next 2027-01-02
        relative | day after tomorrow | 2027-01-02
        relative | yesterday | past 2026-12-30
        weekday | thursday | ambiguous 2026-12-31 2027-01-07
        weekday | saturday | 2027-01-02
        which_week | next thursday | 2027-01-07
        which_week | next saturday | ambiguous 2027-01-02 2027-01-09
        offset | a week from friday | 2027-01-08
        offset | a week from today | 2027-01-07
        offset | in 60 days | 2027-03-01
        offset | in 61 days | beyond 2027-03-02
        offset | in a couple of weeks | 2027-01-14
        offset | two weeks from tomorrow | 2027-01-15
        span | this weekend | 2027-01-02
        span | next week | ambiguous 2027-01-04 2027-01-05 2027-01-06 2027-01-07 2027-01-08 2027-01-09
        month_day | Jan 1 | closed 2027-01-01 next 2027-01-02
        month_day | January 2 | 2027-01-02
        month_day | the 2nd | 2027-01-02
        month_day | December 31st | 2026-12-31
        month_day | Dec 30 | past 2026-12-30
        numeric | 1/2 | ambiguous 2027-01-02 2027-02-01
        numeric | 2/1 | ambiguous 2027-02-01 2027-01-02
        ordinal | first Monday of January | 2027-01-04
        ordinal | first Monday of next month | 2027-01-04
        ordinal | the last Friday of the month | past 2026-12-25
        holiday | New Year's Day | closed 2027-01-01 next 2027-01-02
        holiday | new years eve | 2026-12-31
        holiday | Christmas | beyond 2027-12-25
        holiday | Family Day | closed 2027-02-15 next 2027-02-16
        holiday | Good Friday | beyond 2027-03-26
        messy | fri | closed 2027-01-01 next 2027-01-02
        messy | tmrw morning | closed 2027-01-01 next 2027-01-02
        offset | in a month | closed 2027-01-31 next 2027-02-01
        """,
    ),
]


def parse_expected(expected: str) -> dict:
    """An expectation as {"status", "date", "next_open", "readings"} (absent parts are None)."""
    words = expected.split()
    if words[0] == "unresolved":
        return {"status": "unresolved", "date": None, "next_open": None, "readings": None}
    if words[0] == "ambiguous":
        return {"status": "ambiguous", "date": None, "next_open": None, "readings": words[1:]}
    if words[0] in ("past", "beyond", "closed"):
        status = {"beyond": "beyond_horizon"}.get(words[0], words[0])
        next_open = words[3] if len(words) > 3 and words[2] == "next" else None
        return {"status": status, "date": words[1], "next_open": next_open, "readings": None}
    return {"status": "ok", "date": words[0], "next_open": None, "readings": None}


def answer_matches(answer: dict, expected: str) -> bool:
    """Whether a day_for_booking answer is the expected one."""
    want = parse_expected(expected)
    if answer.get("status") != want["status"]:
        return False
    if want["readings"] is not None:
        return [r["date"] for r in answer.get("readings", [])] == want["readings"]
    if want["date"] is not None and answer.get("date") != want["date"]:
        return False
    if want["status"] == "closed" and want["next_open"] is None:
        return "next_open" not in answer
    return want["next_open"] is None or (answer.get("next_open") or {}).get("date") == want["next_open"]
