"""`manage.py cost_report`: conversations, tokens and cost per day, channel or model, summed by the database."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError

from tests.cmd_fixtures import help_text, run, stored_conversation

pytestmark = pytest.mark.django_db

TORONTO = ZoneInfo("America/Toronto")
NOVEMBER = ("--since", "2026-11-01", "--until", "2026-11-30")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TORONTO)


@pytest.fixture
def november():
    """Four conversations in November (Toronto) and two just outside it."""
    stored_conversation(
        started=local("2026-11-02 10:00"),
        input_tokens=1000,
        cached_input_tokens=400,
        output_tokens=50,
        cost_usd=Decimal("0.000150"),
    )
    # 23:30 in Toronto is already the 3rd in UTC: it still counts for the 2nd.
    stored_conversation(
        started=local("2026-11-02 23:30"), input_tokens=2000, output_tokens=100, cost_usd=Decimal("0.000250")
    )
    stored_conversation(
        started=local("2026-11-03 09:00"),
        channel="voice",
        model="gpt-realtime-2.1-mini",
        input_tokens=100,
        output_tokens=30,
        audio_input_tokens=500,
        audio_output_tokens=800,
        cost_usd=Decimal("0.021000"),
    )
    stored_conversation(started=local("2026-11-03 12:00"), model="", mode="guided")
    # Outside: Oct 31 local (Nov 1 in UTC), and Dec 1 local.
    stored_conversation(started=local("2026-10-31 23:30"), input_tokens=9, cost_usd=Decimal("9"))
    stored_conversation(started=local("2026-12-01 00:10"), input_tokens=9, cost_usd=Decimal("9"))


def report(*args: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(run("cost_report", *NOVEMBER, "--format", "csv", *args))))


def test_it_sums_per_business_day_with_a_total(november):
    rows = report("--by", "day")
    assert [r["day"] for r in rows] == ["2026-11-02", "2026-11-03", "total"]
    second, third, total = rows
    assert second == {
        "day": "2026-11-02",
        "conversations": "2",
        "input_tokens": "3000",
        "cached_input_tokens": "400",
        "output_tokens": "150",
        "audio_input_tokens": "0",
        "audio_output_tokens": "0",
        "cost_usd": "0.000400",
    }
    assert (third["conversations"], third["audio_input_tokens"], third["audio_output_tokens"]) == ("2", "500", "800")
    assert third["cost_usd"] == "0.021000"
    assert total["conversations"] == "4"
    assert total["input_tokens"] == "3100"
    assert total["cost_usd"] == "0.021400"


def test_it_groups_by_channel(november):
    rows = {r["channel"]: r for r in report("--by", "channel")}
    assert rows["chat"]["conversations"] == "3"
    assert rows["voice"]["conversations"] == "1"
    assert rows["voice"]["cost_usd"] == "0.021000"
    assert rows["total"]["conversations"] == "4"


def test_it_groups_by_model_with_guided_conversations_under_none(november):
    rows = {r["model"]: r["conversations"] for r in report("--by", "model")}
    assert rows == {"(none)": "1", "gpt-6-luna": "2", "gpt-realtime-2.1-mini": "1", "total": "4"}


def test_it_aggregates_in_the_database(november, django_assert_num_queries):
    # One GROUP BY for the rows and one aggregate for the total, however many conversations.
    with django_assert_num_queries(2):
        run("cost_report", *NOVEMBER, "--by", "model")


def test_the_table_is_aligned_and_ends_with_the_total(november):
    lines = run("cost_report", *NOVEMBER).splitlines()
    header = ["Day", "Conversations", "Input", "Cached", "Output", "Audio", "in", "Audio", "out", "Cost", "USD"]
    assert lines[0].split() == header
    assert lines[2].startswith("2026-11-02")
    assert lines[-1].split() == ["total", "4", "3,100", "400", "180", "500", "800", "0.021400"]
    assert len({len(line) for line in lines}) == 1


def test_an_empty_period_reports_zero():
    output = run("cost_report", "--since", "2026-01-01", "--until", "2026-01-31")
    assert "(no conversations in this period)" in output
    assert output.splitlines()[-1].split() == ["total", "0", "0", "0", "0", "0", "0", "0.000000"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-11-30", "--until", "2026-11-01"), "--since (2026-11-30) is after --until (2026-11-01)"),
        (("--since", "11/01/2026", "--until", "2026-11-30"), "YYYY-MM-DD"),
        (("--since", "2026-11-01", "--until", "2026-11-30", "--by", "week"), "invalid choice: 'week'"),
        (
            (
                "--until",
                "2026-11-30",
            ),
            "the following arguments are required: --since",
        ),
    ],
)
def test_it_explains_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("cost_report", *args)


def test_help_says_how_to_use_it():
    text = help_text("cost_report")
    assert "--since YYYY-MM-DD" in text
    assert "business time zone" in text
    assert "Example:" in text
