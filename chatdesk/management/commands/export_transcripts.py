"""manage.py export_transcripts: conversations with their messages and tool calls as JSON Lines."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bookings.management.base import Progress, day, day_window, positive_int, stop_on_sigterm
from chatdesk.conversations.access import Visibility
from chatdesk.conversations.reports import transcript_lines, transcripts


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
        start, end = day_window(options["since"], options["until"])
        queryset = transcripts(start=start, end=end)
        # Masked unless asked: an export leaves the system (a file handed on, a laptop), so
        # clear contact details take a deliberate flag. Costs stay: whoever runs commands
        # on the server already reads them (cost_report).
        seen = Visibility(pii=options["with_pii"], costs=True)
        lines = transcript_lines(queryset, chunk_size=options["chunk_size"], seen=seen)
        if options["out"] == "-":
            # The data is on stdout: no progress line to mix into it.
            for line in lines:
                self.stdout.write(line)
            return
        target = Path(options["out"])
        if not target.parent.is_dir():
            raise CommandError(f"--out: the directory {target.parent} does not exist.")
        progress = Progress(self.stdout, self.stderr, total=queryset.count(), label="conversations exported")
        count = self._write_atomically(target, lines, progress)
        progress.finish()
        self.stdout.write(self.style.SUCCESS(f"Exported {count} conversations to {target}."))

    def _write_atomically(self, target: Path, lines, progress: Progress) -> int:
        # The temporary file sits next to the target so the final rename stays on one
        # filesystem, where os.replace is atomic. mkstemp creates it mode 0600.
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        count = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out, stop_on_sigterm() as stop:
                for line in lines:
                    out.write(line)
                    out.write("\n")
                    count += 1
                    progress.advance()
                    if stop.requested:
                        raise CommandError(f"Stopped by SIGTERM after {count} conversations; {target} was not written.")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return count
