"""Dates: what customers say about a day, turned into the right calendar date and what it
means for booking, in the business's time zone.

The big table (tests/date_table.py, expectations worked out by hand) runs through
day_for_booking on PostgreSQL with the `business` fixture's opening hours and the Ontario
holidays as closed days; the tool tests go through execute_tool_call as the model's calls do.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
import time_machine

from bookings.models import ClosedDay
from chatdesk.assistant.date_grammar import UnresolvedDate, normalize, understand
from chatdesk.assistant.dates import day_for_booking
from chatdesk.assistant.tools import TOOLS, execute_tool_call
from chatdesk.assistant.turns import conversation_start
from chatdesk.conversations.models import ToolCall
from tests.date_table import CASES, CLOSED_DAYS, MOMENTS, answer_matches, parse_expected

WEDNESDAY = date(2026, 11, 25)


@pytest.fixture
def open_business(business):
    """The tests' business (open Mon-Sat, closed on Sundays) closed on Ontario's holidays."""
    ClosedDay.objects.bulk_create(ClosedDay(date=day, reason=reason) for day, reason in CLOSED_DAYS.items())
    return business


def test_the_table_is_big_enough_and_covers_the_hard_moments():
    assert len(CASES) >= 300
    assert {c.moment for c in CASES} == set(MOMENTS)
    assert all(c.kind != "ambiguous" or parse_expected(c.expected)["readings"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_table(open_business, case):
    answer = day_for_booking(case.phrase, now=MOMENTS[case.moment])
    assert answer_matches(answer, case.expected), answer
    assert answer["message"]
    if answer["status"] not in ("ambiguous", "unresolved"):
        day = date.fromisoformat(answer["date"])
        assert answer["weekday"] == day.strftime("%A")
        assert answer["spoken"].startswith(day.strftime("%A, %B"))
        today = MOMENTS[case.moment].astimezone(_toronto()).date()
        assert answer["days_from_today"] == (day - today).days


def _toronto():
    from bookings.selectors import business_tz

    return business_tz()


# --- the answer's wording, for the customer ----------------------------------------------------


def test_a_closed_sunday_says_so_with_the_next_open_day(open_business):
    answer = day_for_booking("sunday", now=MOMENTS["late"])
    assert answer["status"] == "closed"
    assert answer["message"] == "We're closed on Sundays. The next open day is Monday, December 7, 2026."
    assert answer["next_open"] == {"date": "2026-12-07", "weekday": "Monday", "spoken": "Monday, December 7, 2026"}


def test_a_closed_day_names_its_reason(open_business):
    answer = day_for_booking("boxing day", now=MOMENTS["late"])
    assert answer["message"] == (
        "We're closed on Saturday, December 26, 2026 (Boxing Day). The next open day is Tuesday, December 29, 2026."
    )


def test_a_month_day_that_just_passed_is_explained_not_moved_to_next_year(open_business):
    answer = day_for_booking("December 3", now=MOMENTS["late"])
    assert answer["status"] == "past"
    assert answer["date"] == "2026-12-03"
    assert "already passed" in answer["message"]
    assert "Friday, December 3, 2027" in answer["message"]
    assert "60 days" in answer["message"]


def test_a_passed_month_day_is_ambiguous_when_next_years_can_be_booked(open_business, settings):
    settings.BOOKING_HORIZON_DAYS = 400
    answer = day_for_booking("December 3", now=MOMENTS["late"])
    assert answer["status"] == "ambiguous"
    assert [(r["date"], r["status"]) for r in answer["readings"]] == [("2026-12-03", "past"), ("2027-12-03", "ok")]


def test_beyond_the_horizon_says_how_far_we_book(open_business):
    answer = day_for_booking("March 3", now=MOMENTS["late"])
    assert answer["status"] == "beyond_horizon"
    assert answer["message"] == (
        "Wednesday, March 3, 2027 is more than 60 days ahead, so we can't book it yet. "
        "We can book up to Tuesday, February 2, 2027."
    )


def test_next_friday_on_a_wednesday_gives_both_readings_to_ask(open_business):
    answer = day_for_booking("next friday", now=MOMENTS["wed"])
    assert answer["status"] == "ambiguous"
    assert answer["message"] == (
        "Did you mean Friday, November 27 (this coming Friday) or Friday, December 4 (Friday of next week)?"
    )
    assert [r["label"] for r in answer["readings"]] == ["this coming Friday", "Friday of next week"]
    assert "date" not in answer


def test_a_weekday_that_does_not_match_the_date_is_pointed_out(open_business):
    answer = day_for_booking("Monday the 18th", now=MOMENTS["late"])
    assert answer["status"] == "ambiguous"
    assert answer["message"].startswith("December 18, 2026 is a Friday, not a Monday. Did you mean ")
    assert [r["weekday"] for r in answer["readings"]] == ["Friday", "Monday"]


def test_a_span_with_one_open_day_answers_with_it(open_business):
    answer = day_for_booking("this weekend", now=MOMENTS["late"])
    assert answer["status"] == "ok"
    assert answer["date"] == "2026-12-05"
    assert answer["message"] == "Of those days, we're open only on Saturday, December 5, 2026."


def test_the_part_of_day_is_kept(open_business):
    answer = day_for_booking("tomorrow morning", now=MOMENTS["wed"])
    assert (answer["date"], answer["part_of_day"]) == ("2026-11-26", "morning")
    assert answer["spoken"] == "Thursday, November 26, 2026"
    assert day_for_booking("tonight", now=MOMENTS["wed"])["part_of_day"] == "evening"
    # Texting shorthand: "tmrw aft" is tomorrow afternoon.
    answer = day_for_booking("tmrw aft", now=MOMENTS["wed"])
    assert (answer["date"], answer["part_of_day"]) == ("2026-11-26", "afternoon")


def test_yesterday_is_refused_with_a_clear_note(open_business):
    answer = day_for_booking("yesterday", now=MOMENTS["wed"])
    assert answer["status"] == "past"
    assert answer["message"] == "Tuesday, November 24, 2026 has already passed."
    assert answer["next_open"]["date"] == "2026-11-25"


def test_a_closed_weekday_follows_the_business_hours_not_a_fixed_sunday(open_business):
    from bookings.models import BusinessHours

    BusinessHours.objects.filter(weekday=5).delete()  # no longer open on Saturdays
    answer = day_for_booking("saturday", now=MOMENTS["late"])
    assert answer["status"] == "closed"
    assert answer["message"] == "We're closed on Saturdays. The next open day is Monday, December 7, 2026."


# --- the grammar on its own ---------------------------------------------------------------


def test_it_never_turns_friday_into_a_saturday():
    # The predecessor resolved "Friday" to 2025-11-08, a Saturday.
    for offset in range(7):
        today = date(2025, 11, 2 + offset)
        readings = understand("Friday", today=today, region="").readings
        assert all(r.date.weekday() == 4 for r in readings)
        assert all(0 <= (r.date - today).days <= 7 for r in readings)


def test_times_of_day_are_not_taken_for_dates():
    assert normalize("the 8:30 one") == "the one"
    assert normalize("9am please") == "please"
    with pytest.raises(UnresolvedDate):
        understand("the 8:30 one", today=WEDNESDAY, region="")
    with pytest.raises(UnresolvedDate):
        understand("2 pm", today=WEDNESDAY, region="")


def test_may_and_march_are_months_only_next_to_a_day():
    with pytest.raises(UnresolvedDate):
        understand("may someone come", today=WEDNESDAY, region="")
    assert understand("May 4", today=WEDNESDAY, region="").readings[0].date == date(2027, 5, 4)


def test_without_a_region_holiday_names_are_not_understood_but_eves_are():
    with pytest.raises(UnresolvedDate):
        understand("Boxing Day", today=WEDNESDAY, region="")
    assert understand("Christmas Eve", today=WEDNESDAY, region="").readings[0].date == date(2026, 12, 24)


def test_another_region_brings_its_own_holidays():
    # US Thanksgiving: the fourth Thursday of November.
    assert understand("thanksgiving", today=date(2026, 11, 1), region="US").readings[0].date == date(2026, 11, 26)


@pytest.mark.parametrize(
    "text", ["", "   ", "whenever", "February 30", "the 45th", "13/45", "fifth Monday of February", "next month"]
)
def test_it_refuses_what_it_cannot_tell(text):
    with pytest.raises(UnresolvedDate) as error:
        understand(text, today=WEDNESDAY, region="CA-ON")
    assert str(error.value)[-1] in "?."


def test_unresolved_answers_carry_a_message_for_the_customer(open_business):
    answer = day_for_booking("whenever", now=MOMENTS["wed"])
    assert answer == {
        "status": "unresolved",
        "message": "Sorry, I couldn't tell which day you mean. Could you say a weekday or a date, like 'Friday' or "
        "'December 18'?",
    }


# --- structured parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"weekday": "Friday", "week": "next_week"}, "2026-12-04"),
        ({"weekday": "Friday", "week": "this"}, "2026-11-27"),
        ({"weekday": "Friday", "week": "after_next"}, "2026-12-04"),
        ({"weekday": "Friday", "week": "next"}, "ambiguous 2026-11-27 2026-12-04"),
        ({"weekday": "Friday", "week": "last"}, "past 2026-11-20"),
        ({"weekday": "Friday", "offset_weeks": 1}, "2026-12-04"),
        ({"month": 12, "day": 18}, "2026-12-18"),
        ({"month": 12, "day": 18, "weekday": "Monday"}, "ambiguous 2026-12-18 2026-12-21"),
        ({"month": 3, "day": 3, "year": 2027}, "beyond 2027-03-03"),
        ({"day": 30}, "2026-11-30"),
        ({"offset_days": 3}, "2026-11-28"),
        ({"offset_weeks": 2}, "2026-12-09"),
        ({"weekday": "Monday", "nth": 1, "month": 1}, "2027-01-04"),
        ({"weekday": "Friday", "nth": -1}, "2026-11-27"),
        ({"weekday": "Sunday"}, "closed 2026-11-29 next 2026-11-30"),
        ({"month": 12, "day": 25}, "closed 2026-12-25 next 2026-12-29"),
        ({"month": 2, "day": 30}, "unresolved"),
        ({"month": 12}, "unresolved"),
        ({"week": "next"}, "unresolved"),
    ],
)
def test_structured_parts_are_computed_by_the_server(open_business, parts, expected):
    full = dict.fromkeys(("weekday", "week", "month", "day", "year", "nth", "offset_days", "offset_weeks"))
    full.update(parts)
    answer = day_for_booking(None, parts=full, now=MOMENTS["wed"])
    assert answer_matches(answer, expected), answer


def test_words_win_over_parts_and_parts_catch_what_words_miss(open_business):
    parts = {"weekday": None, "week": None, "month": 12, "day": 18}
    assert day_for_booking("tomorrow", parts=parts, now=MOMENTS["wed"])["date"] == "2026-11-26"
    assert day_for_booking("the one before the holidays", parts=parts, now=MOMENTS["wed"])["date"] == "2026-12-18"


# --- the resolve_date tool, as the model calls it -------------------------------------------


def call(conversation, **args) -> dict:
    call.count += 1
    return execute_tool_call(
        conversation=conversation,
        call_id=f"date_{call.count}",
        name="resolve_date",
        raw_arguments=json.dumps(args),
    ).result


call.count = 0


@pytest.fixture
def friday_night(open_business):
    with time_machine.travel(MOMENTS["late"], tick=False):
        yield conversation_start(ip="203.0.113.9", user_agent="pytest")


def test_the_tool_understands_words_in_the_business_time_zone(friday_night):
    # 03:30 UTC on Saturday is still Friday evening in Toronto.
    answer = call(friday_night, text="a week from today")
    assert (answer["status"], answer["date"], answer["weekday"]) == ("ok", "2026-12-11", "Friday")
    row = ToolCall.objects.get(conversation=friday_night, call_id=f"date_{call.count}")
    assert row.result["date"] == "2026-12-11"
    assert row.arguments["text"] == "a week from today"


def test_the_tool_takes_structured_parts(friday_night):
    answer = call(friday_night, weekday="Friday", week="after_next")
    assert (answer["status"], answer["date"]) == ("ok", "2026-12-18")
    answer = call(friday_night, month=1, day=5, offset_days=1)
    assert (answer["status"], answer["date"]) == ("ok", "2027-01-06")


def test_the_tool_says_we_are_closed_on_sundays(friday_night):
    answer = call(friday_night, text="sunday")
    assert answer["status"] == "closed"
    assert answer["message"].startswith("We're closed on Sundays.")
    assert answer["next_open"]["date"] == "2026-12-07"


def test_the_tool_says_we_are_closed_on_a_holiday(friday_night):
    answer = call(friday_night, text=None, month=12, day=25)
    assert answer["status"] == "closed"
    assert "(Christmas Day)" in answer["message"]
    assert answer["next_open"]["date"] == "2026-12-29"


def test_the_tool_refuses_the_past_and_beyond_the_horizon(friday_night):
    assert call(friday_night, text="yesterday")["status"] == "past"
    assert call(friday_night, text="last friday")["date"] == "2026-11-27"
    far = call(friday_night, text="in 70 days")
    assert (far["status"], far["date"]) == ("beyond_horizon", "2027-02-12")


def test_the_tool_answers_what_it_cannot_tell_with_a_structured_error(friday_night):
    answer = call(friday_night, text="someday")
    assert answer["error"] == "invalid_input"
    assert answer["message"].startswith("Sorry, I couldn't tell which day you mean.")
    assert call(friday_night)["error"] == "invalid_input"  # nothing at all


@pytest.mark.parametrize(
    "args",
    [{"weekday": "Caturday"}, {"week": "someday"}, {"month": 13, "day": 1}, {"day": 0}, {"offset_days": 10_000}],
)
def test_the_tool_rejects_parts_outside_the_schema(friday_night, args):
    answer = call(friday_night, **args)
    assert answer["error"] == "invalid_input"


def test_the_tool_schema_is_strict_with_nullable_parts():
    parameters = TOOLS["resolve_date"].parameters
    assert sorted(parameters["required"]) == sorted(parameters["properties"])
    assert parameters["additionalProperties"] is False
    assert all("null" in spec["type"] for spec in parameters["properties"].values())


def test_the_late_evening_is_still_today_across_the_year_end(open_business):
    # 04:30 UTC on January 1, 2027 is 23:30 on December 31 in Toronto.
    with time_machine.travel(MOMENTS["dec31"], tick=False):
        chat = conversation_start()
        assert call(chat, text="today")["date"] == "2026-12-31"
        assert call(chat, text="tomorrow")["status"] == "closed"  # New Year's Day


def test_the_answer_moves_with_the_clock_not_the_utc_date(open_business):
    # Just before and just after local midnight on the spring DST day.
    before = datetime.fromisoformat("2026-03-08T04:59:00+00:00")  # Saturday 23:59 EST
    after = before + timedelta(minutes=2)  # Sunday 00:01 EST
    assert day_for_booking("today", now=before)["date"] == "2026-03-07"
    assert day_for_booking("today", now=after)["date"] == "2026-03-08"


# --- seed_demo closes the region's holidays -------------------------------------------------


def _seed() -> None:
    from io import StringIO

    from django.core.management import call_command

    call_command("seed_demo", "--no-bookings", stdout=StringIO(), stderr=StringIO())


def test_seed_demo_closes_the_regions_holidays_for_the_coming_year(db, time_machine):
    time_machine.move_to(datetime.fromisoformat("2026-11-16T13:00:00+00:00"), tick=False)  # Monday
    _seed()
    # Ontario's statutory holidays from 2026-11-16 to 2027-11-17, worked out by hand.
    assert dict(ClosedDay.objects.values_list("date", "reason")) == {
        date(2026, 12, 25): "Christmas Day",
        date(2026, 12, 26): "Boxing Day",
        date(2026, 12, 28): "Boxing Day (observed)",
        date(2027, 1, 1): "New Year's Day",
        date(2027, 2, 15): "Family Day",
        date(2027, 3, 26): "Good Friday",
        date(2027, 5, 24): "Victoria Day",
        date(2027, 7, 1): "Canada Day",
        date(2027, 9, 6): "Labour Day",
        date(2027, 10, 11): "Thanksgiving Day",
    }


def test_seeding_holidays_again_keeps_what_staff_changed(db, time_machine):
    time_machine.move_to(datetime.fromisoformat("2026-11-16T13:00:00+00:00"), tick=False)
    _seed()
    ClosedDay.objects.filter(date=date(2026, 12, 26)).update(reason="Closed for the holidays")
    count = ClosedDay.objects.count()
    _seed()
    assert ClosedDay.objects.count() == count
    assert ClosedDay.objects.get(date=date(2026, 12, 26)).reason == "Closed for the holidays"


def test_seed_demo_follows_the_holiday_setting(db, time_machine, settings):
    time_machine.move_to(datetime.fromisoformat("2026-11-16T13:00:00+00:00"), tick=False)
    settings.BUSINESS_HOLIDAYS = "US"
    _seed()
    days = set(ClosedDay.objects.values_list("date", flat=True))
    assert date(2026, 11, 26) in days  # US Thanksgiving
    assert date(2026, 12, 26) not in days  # no Boxing Day in the US
    ClosedDay.objects.all().delete()
    settings.BUSINESS_HOLIDAYS = ""
    _seed()
    assert not ClosedDay.objects.exists()


def test_a_bad_holiday_setting_fails_at_startup():
    import os
    import subprocess
    import sys

    env = {**os.environ, "BUSINESS_HOLIDAYS": "Ontario please", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "BUSINESS_HOLIDAYS must look like CA-ON" in result.stderr


def test_a_passed_date_with_the_wrong_weekday_says_both(open_business):
    answer = day_for_booking("Monday, December 3", now=MOMENTS["late"])
    assert answer["status"] == "past"
    assert answer["message"].startswith(
        "December 3, 2026 is a Thursday, not a Monday. Thursday, December 3 has already passed"
    )
