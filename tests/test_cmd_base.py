"""What every operator command shares (bookings/management/base.py): plurals and the progress line."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management.base import OutputWrapper

from bookings.management.base import Progress, plural


@pytest.mark.parametrize(
    "count, words, expected",
    [
        (0, ("customer",), "0 customers"),
        (1, ("customer",), "1 customer"),
        (2, ("customer",), "2 customers"),
        (1, ("reply", "replies"), "1 reply"),
        (3, ("reply", "replies"), "3 replies"),
        (1200, ("conversation",), "1,200 conversations"),
    ],
)
def test_plural(count, words, expected):
    assert plural(count, *words) == expected


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def progress_on(stderr: StringIO, **kwargs: object) -> str:
    progress = Progress(OutputWrapper(StringIO()), OutputWrapper(stderr), total=3, label="closed", **kwargs)
    for _ in range(3):
        progress.advance()
    progress.finish()
    return stderr.getvalue()


def test_progress_rewrites_one_line_on_a_terminal():
    assert progress_on(Terminal()) == "\r1/3 closed\r2/3 closed\r3/3 closed\n"


def test_progress_is_silent_when_stderr_is_not_a_terminal():
    assert progress_on(StringIO()) == ""


def test_progress_can_be_turned_off_on_a_terminal():
    assert progress_on(Terminal(), enabled=False) == ""


def test_progress_without_a_total_counts_up():
    progress = Progress(OutputWrapper(StringIO()), OutputWrapper(err := Terminal()), total=None, label="closed")
    progress.advance(50)
    assert err.getvalue() == "\r50 closed"
