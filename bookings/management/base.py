"""What every operator command shares: argument types, day windows, progress and SIGTERM.

Argument types raise argparse.ArgumentTypeError, which Django turns into a CommandError
naming the option ("argument --since: ..."), from the shell and from call_command alike.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from types import FrameType

from django.core.management.base import CommandError, OutputWrapper

from bookings.selectors import business_tz


def day(value: str) -> date:
    """A YYYY-MM-DD date (a calendar day in the business time zone)."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"use a date like 2026-11-01 (YYYY-MM-DD), not {value!r}") from None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"use a whole number, not {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {number}")
    return number


def day_window(since: date, until: date) -> tuple[datetime, datetime]:
    """[start of `since`, start of the day after `until`) in the business time zone.

    Both days are inclusive, the way an operator says "from the 1st to the 30th". The
    window is half-open so a conversation at midnight belongs to exactly one day.
    """
    if since > until:
        raise CommandError(f"--since ({since}) is after --until ({until}).")
    tz = business_tz()
    return datetime.combine(since, time.min, tzinfo=tz), datetime.combine(
        until + timedelta(days=1), time.min, tzinfo=tz
    )


class Progress:
    """ "120/500 closed" on one self-rewriting stderr line, only when a person is watching.

    Commands run from cron write to files, where a progress line is noise: it is shown
    only when stdout is a terminal.
    """

    def __init__(self, stdout: OutputWrapper, stderr: OutputWrapper, *, total: int | None, label: str) -> None:
        self.enabled = stdout.isatty()
        self.stderr = stderr
        self.total = total
        self.label = label
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.enabled:
            of = f"/{self.total}" if self.total is not None else ""
            self.stderr.write(f"\r{self.done}{of} {self.label}", ending="")
            self.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.done:
            self.stderr.write("")


class StopFlag:
    requested = False


@contextmanager
def stop_on_sigterm() -> Iterator[StopFlag]:
    """Turn SIGTERM into a flag the command's loop checks between items.

    A deploy or `systemctl stop` then ends the command after the item in hand, never
    halfway through one. Signal handlers can only be set in the main thread; elsewhere
    (tests running the command in threads) the flag just never trips.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        flag.requested = True

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
