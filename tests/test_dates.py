"""resolve_date: what customers say about a day, turned into the right calendar date."""

from datetime import date

import pytest

from chatdesk.dates import UnresolvedDate, resolve_date

WEDNESDAY = date(2026, 11, 25)
FRIDAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", WEDNESDAY),
        ("tomorrow", date(2026, 11, 26)),
        ("day after tomorrow", date(2026, 11, 27)),
        ("Friday", FRIDAY),
        ("can someone come friday?", FRIDAY),
        ("this Friday", FRIDAY),
        ("next Friday", date(2026, 12, 4)),
        ("Friday next week", date(2026, 12, 4)),
        ("monday", date(2026, 11, 30)),
        ("the 3rd", date(2026, 12, 3)),
        ("on the 30th", date(2026, 11, 30)),
        ("December 3", date(2026, 12, 3)),
        ("Dec 3rd", date(2026, 12, 3)),
        ("3 December", date(2026, 12, 3)),
        ("12/3", date(2026, 12, 3)),
        ("2026-12-09", date(2026, 12, 9)),
        ("in 3 days", date(2026, 11, 28)),
        ("in a week", date(2026, 12, 2)),
        ("next week", date(2026, 11, 30)),
        ("this weekend", date(2026, 11, 28)),
        ("Nov 20", date(2027, 11, 20)),
    ],
)
def test_it_resolves_what_people_say(text, expected):
    assert resolve_date(text, today=WEDNESDAY).date == expected


def test_it_never_turns_friday_into_a_saturday():
    # The predecessor resolved "Friday" to 2025-11-08, a Saturday.
    for offset in range(7):
        today = date(2025, 11, 2 + offset)
        resolved = resolve_date("Friday", today=today)
        assert resolved.date.weekday() == 4
        assert 0 < (resolved.date - today).days <= 7


def test_it_keeps_the_part_of_day():
    resolved = resolve_date("tomorrow morning", today=WEDNESDAY)
    assert resolved.date == date(2026, 11, 26)
    assert resolved.part_of_day == "morning"
    data = resolved.as_dict(WEDNESDAY)
    assert data["weekday"] == "Thursday"
    assert data["spoken"] == "Thursday, November 26, 2026"


def test_it_says_which_friday_when_next_is_ambiguous():
    data = resolve_date("next friday", today=WEDNESDAY).as_dict(WEDNESDAY)
    assert "November 27" in data["note"]


def test_the_same_weekday_as_today_means_next_week():
    resolved = resolve_date("Wednesday", today=WEDNESDAY)
    assert resolved.date == date(2026, 12, 2)
    assert resolved.note


@pytest.mark.parametrize("text", ["", "whenever", "February 30", "the 45th", "13/45"])
def test_it_refuses_what_it_cannot_tell(text):
    with pytest.raises(UnresolvedDate):
        resolve_date(text, today=WEDNESDAY)
