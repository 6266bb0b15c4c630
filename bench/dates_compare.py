"""Our date grammar against dateparser on the hand-made table (tests/date_table.py).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/dates_compare.py

DATABASE_URL only says which PostgreSQL server to use: the script recreates its own database
(BENCH_DATABASE, default chatdesk_bench_dates), opens the tests' business there (Mon-Fri
08-18, Sat 09-14, closed on Sundays and on the table's Ontario holidays) and runs every case
of the table through:

- ours: chatdesk.assistant.dates.day_for_booking(phrase, now=moment), the resolve_date tool's answer;
- dateparser.parse(phrase) with PREFER_DATES_FROM='future' and RELATIVE_BASE = the moment on
  the business's wall clock (TIMEZONE America/Toronto);
- dateparser parse, then search_dates(phrase) when parse finds nothing (filler words).

A library date gets the same booking judgment as ours (day_for_booking on that exact date), so
"past", "closed" and "beyond" cases compare the date itself. A library cannot say "ambiguous",
so those cases count as wrong for it; the "a reading" column shows how often it at least picked
one of the readings. "unresolved" cases are right for a library that returns nothing.
"""

from __future__ import annotations

import os
import sys
import time as clock
from collections import defaultdict
from datetime import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "chatdesk_bench_dates")


def main() -> None:
    common.setup_django(
        BENCH_DATABASE, BUSINESS_TIMEZONE="America/Toronto", BOOKING_HORIZON_DAYS="60", BUSINESS_HOLIDAYS="CA-ON"
    )
    import dateparser
    from dateparser.search import search_dates

    from bookings.models import BusinessHours, ClosedDay
    from bookings.selectors import business_tz
    from chatdesk.assistant.dates import day_for_booking
    from tests.date_table import CASES, CLOSED_DAYS, MOMENTS, answer_matches, parse_expected

    for weekday in range(5):
        BusinessHours.objects.create(weekday=weekday, opens=time(8), closes=time(18))
    BusinessHours.objects.create(weekday=5, opens=time(9), closes=time(14))
    ClosedDay.objects.bulk_create(ClosedDay(date=day, reason=reason) for day, reason in CLOSED_DAYS.items())

    def judged(day, moment) -> dict:
        parts = dict.fromkeys(("weekday", "week", "nth", "offset_days", "offset_weeks"))
        return day_for_booking(None, parts={**parts, "year": day.year, "month": day.month, "day": day.day}, now=moment)

    def library(phrase: str, moment, search: bool) -> dict:
        settings = {
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": moment.astimezone(business_tz()).replace(tzinfo=None),
            "TIMEZONE": "America/Toronto",
            "RETURN_AS_TIMEZONE_AWARE": False,
        }
        found = dateparser.parse(phrase, languages=["en"], settings=settings)
        if found is None and search:
            hits = search_dates(phrase, languages=["en"], settings=settings)
            found = hits[0][1] if hits else None
        if found is None:
            return {"status": "unresolved", "message": ""}
        return judged(found.date(), moment)

    methods = {
        "ours (chatdesk.assistant.dates)": lambda case: day_for_booking(case.phrase, now=MOMENTS[case.moment]),
        "dateparser.parse": lambda case: library(case.phrase, MOMENTS[case.moment], search=False),
        "dateparser parse+search": lambda case: library(case.phrase, MOMENTS[case.moment], search=True),
    }
    kinds = sorted({c.kind for c in CASES})
    print(f"{len(CASES)} cases, {len(MOMENTS)} reference moments, dateparser {dateparser.__version__}\n")
    summary = {}
    for name, run in methods.items():
        right: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        a_reading = ambiguous = 0
        wrong = []
        started = clock.perf_counter()
        for case in CASES:
            answer = run(case)
            total[case.kind] += 1
            if answer_matches(answer, case.expected):
                right[case.kind] += 1
            else:
                wrong.append((case, answer))
            want = parse_expected(case.expected)
            if want["status"] == "ambiguous":
                ambiguous += 1
                got = {r["date"] for r in answer.get("readings", [])} or {answer.get("date")}
                a_reading += bool(got & set(want["readings"]))
        elapsed = clock.perf_counter() - started
        summary[name] = (right, total, a_reading, ambiguous, elapsed, wrong)

    header = f"{'kind':<14}{'cases':>6}" + "".join(f"{name:>26}" for name in methods)
    print(header)
    print("-" * len(header))
    for kind in kinds:
        row = f"{kind:<14}{summary[next(iter(methods))][1][kind]:>6}"
        for name in methods:
            right, total = summary[name][0], summary[name][1]
            row += f"{right[kind]:>12}/{total[kind]:<3} {100 * right[kind] / total[kind]:5.1f}%    "
        print(row)
    print("-" * len(header))
    row = f"{'overall':<14}{len(CASES):>6}"
    for name in methods:
        right = sum(summary[name][0].values())
        row += f"{right:>12}/{len(CASES):<3} {100 * right / len(CASES):5.1f}%    "
    print(row)
    print()
    for name in methods:
        right, total, a_reading, ambiguous, elapsed, wrong = summary[name]
        unambiguous = [c for c in CASES if parse_expected(c.expected)["status"] != "ambiguous"]
        wrong_unambiguous = [c for c, _ in wrong if parse_expected(c.expected)["status"] != "ambiguous"]
        print(
            f"{name}: unambiguous {len(unambiguous) - len(wrong_unambiguous)}/{len(unambiguous)}, "
            f"ambiguous cases answered with one of the readings or all of them {a_reading}/{ambiguous}, "
            f"{1000 * elapsed / len(CASES):.2f} ms per phrase"
        )
    if os.environ.get("BENCH_SHOW_WRONG"):
        for name in methods:
            print(f"\nWrong for {name}:")
            for case, answer in summary[name][5]:
                got = answer.get("date") or [r["date"] for r in answer.get("readings", [])]
                print(f"  {case.moment:<7}{case.phrase!r:<50} want {case.expected:<40} got {answer['status']} {got}")


if __name__ == "__main__":
    main()
