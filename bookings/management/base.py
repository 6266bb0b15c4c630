"""What every operator command shares: argument types, day windows, plurals, output files,
closed pipes, progress and SIGTERM.

Argument types raise argparse.ArgumentTypeError, which Django turns into a CommandError
naming the option ("argument --since: ..."), from the shell and from call_command alike.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import FrameType
from typing import IO

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


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """ "1 customer", "2 customers", "0 customers"; pass `plural_form` for irregular words
    ("1 reply", "3 replies"). Every count a command prints goes through here."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count:,} {word}"


class Progress:
    """ "120/500 closed" on one self-rewriting stderr line, only when a person is watching.

    The line goes to stderr, so it is shown when stderr is a terminal: never in cron's mail
    or a log file, and never mixed into data a command writes to stdout (`--out -`).
    `enabled=False` silences it whatever stderr is.
    """

    def __init__(
        self, stdout: OutputWrapper, stderr: OutputWrapper, *, total: int | None, label: str, enabled: bool = True
    ) -> None:
        self.enabled = enabled and stderr.isatty()
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


def output_file_check(target: Path, *, option: str = "--out") -> None:
    """Refuse, with a CommandError naming the option, a directory or a path in a missing
    directory, before any work starts. A directory we may not write in is found by
    `temporary_output`, by trying: permission checks ahead of time are wrong for root, ACLs
    and read-only mounts alike."""
    if target.is_dir():
        raise CommandError(f"{option}: {target} is a directory; give a file name inside it.")
    if not target.parent.is_dir():
        raise CommandError(f"{option}: the directory {target.parent} does not exist.")


@contextmanager
def temporary_output(target: Path, *, option: str = "--out") -> Iterator[tuple[IO[str], str]]:
    """A private (0600) temporary file next to `target`, as (file, its name), open for writing.

    Next to the target so the final os.replace stays on one filesystem, where it is atomic.
    An OSError while creating it (a race with the checks above, a read-only filesystem, a
    full disk) becomes a CommandError instead of a traceback.
    """
    try:
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise CommandError(f"{option}: cannot write in {target.parent} ({error.strerror or error}).") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yield out, temp_name


@contextmanager
def stdout_reader_may_leave(stdout: OutputWrapper) -> Iterator[None]:
    """End the block quietly when whoever reads our stdout stops reading.

    `manage.py export_transcripts --out - | head -1` closes the pipe after one line: the
    next write raises BrokenPipeError. That is the reader's choice, not a failure, so the
    block stops there and the command ends normally, without a traceback. Python would
    still flush what is buffered at exit and complain, so stdout is first pointed at
    /dev/null (what the Python documentation advises for SIGPIPE).
    """
    try:
        yield
        stdout.flush()
    except BrokenPipeError:
        try:
            fileno = stdout.fileno()
        except (AttributeError, OSError, ValueError):
            return  # not a real file (a StringIO in tests): nothing is flushed at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fileno)
        os.close(devnull)


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
