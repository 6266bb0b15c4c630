"""manage.py export_transcripts: conversations with their messages and tool calls as JSON Lines."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bookings.management.base import (
    Progress,
    day,
    day_window,
    output_file_check,
    plural,
    positive_int,
    stdout_reader_may_leave,
    stop_on_sigterm,
    temporary_output,
)
from chatdesk.conversations.access import Visibility
from chatdesk.conversations.reports import transcript_lines, transcripts
from chatdesk.replica import use_replica


class Command(BaseCommand):
    help = (
        "Export conversations started between two days (both included, business time zone) as JSON Lines: "
        "one conversation per line with its messages and tool calls. Customer PII (phone numbers, emails, "
        "addresses) is masked, as for staff without chatdesk.view_customer_pii, unless --with-pii is given; "
        "the file is created readable by its owner only. FILE is written in full or not at all (a temporary file is "
        "renamed over it at the end), so an interrupted run never leaves half an export. "
        "Example: manage.py export_transcripts --since 2026-11-01 --until 2026-11-30 --out november.jsonl"
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", type=day, required=True, metavar="YYYY-MM-DD", help="First day included.")
        parser.add_argument("--until", type=day, required=True, metavar="YYYY-MM-DD", help="Last day included.")
        parser.add_argument("--out", required=True, metavar="FILE", help="Where to write; - for standard output.")
        parser.add_argument(
            "--with-pii",
            action="store_true",
            help="Keep customers' contact details in clear text (default: masked, as the staff doors mask them).",
        )
        parser.add_argument(
            "--chunk-size",
            type=positive_int,
            default=200,
            help="Conversations fetched per database round trip (default 200); memory use follows it.",
        )

    def handle(self, *args, **options):
        # A bulk read that may be a little stale: the replica, if there is one.
        with use_replica():
            self._export(options)

    def _export(self, options: dict) -> None:
        start, end = day_window(options["since"], options["until"])
        target = None if options["out"] == "-" else Path(options["out"])
        if target is not None:
            output_file_check(target)
        queryset = transcripts(start=start, end=end)
        # Masked unless asked: an export leaves the system (a file handed on, a laptop), so
        # clear contact details take a deliberate flag. Costs stay: whoever runs commands
        # on the server already reads them (cost_report).
        seen = Visibility(pii=options["with_pii"], costs=True)
        lines = transcript_lines(queryset, chunk_size=options["chunk_size"], seen=seen)
        if target is None:
            self._write_to_stdout(lines)
            return
        progress = Progress(self.stdout, self.stderr, total=queryset.count(), label="conversations exported")
        count = self._write_atomically(target, lines, progress)
        progress.finish()
        self.stdout.write(self.style.SUCCESS(f"Exported {plural(count, 'conversation')} to {target}."))

    def _write_to_stdout(self, lines) -> None:
        # No progress line: with the data on a terminal it would land in the middle of it.
        # A reader that leaves early (`| head -1`) ends the export quietly.
        # closing(): a reader that left stops the stream here, and its database cursor is closed
        # now, while the connection is open, not by the garbage collector at exit.
        with closing(lines), stdout_reader_may_leave(self.stdout):
            for line in lines:
                self.stdout.write(line)

    def _write_atomically(self, target: Path, lines, progress: Progress) -> int:
        count = 0
        with closing(lines), temporary_output(target) as (out, temp_name):
            try:
                with stop_on_sigterm() as stop:
                    for line in lines:
                        out.write(line)
                        out.write("\n")
                        count += 1
                        progress.advance()
                        if stop.requested:
                            raise CommandError(
                                f"Stopped by SIGTERM after {plural(count, 'conversation')}; {target} was not written."
                            )
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp_name, target)
            except OSError as error:
                Path(temp_name).unlink(missing_ok=True)
                raise CommandError(f"--out: could not write {target} ({error.strerror or error}).") from None
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
        return count
