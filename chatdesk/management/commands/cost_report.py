"""manage.py cost_report: what the assistant cost, per day, channel or model."""

from __future__ import annotations

import csv
import io

from django.core.management.base import BaseCommand

from bookings.management.base import day, day_window
from chatdesk.conversations.reports import GROUPINGS, CostRow, cost_report
from chatdesk.replica import use_replica

COLUMNS = (
    ("conversations", "Conversations"),
    ("input_tokens", "Input"),
    ("cached_input_tokens", "Cached"),
    ("output_tokens", "Output"),
    ("audio_input_tokens", "Audio in"),
    ("audio_output_tokens", "Audio out"),
    ("cost_usd", "Cost USD"),
)


class Command(BaseCommand):
    help = (
        "Report conversations, tokens (input, cached input, output, audio in/out) and cost in USD for "
        "conversations started between two days (both included, business time zone), grouped by day, "
        "channel or model, with a total. Example: manage.py cost_report --since 2026-11-01 --until 2026-11-30 "
        "--by model --format csv > november.csv"
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", type=day, required=True, metavar="YYYY-MM-DD", help="First day included.")
        parser.add_argument("--until", type=day, required=True, metavar="YYYY-MM-DD", help="Last day included.")
        parser.add_argument("--by", choices=GROUPINGS, default="day", help="Group rows by this (default: day).")
        parser.add_argument(
            "--format", choices=("table", "csv"), default="table", help="table for people, csv for spreadsheets."
        )

    def handle(self, *args, **options):
        start, end = day_window(options["since"], options["until"])
        # A report over up to a year of rows: the replica, if there is one.
        with use_replica():
            rows, total = cost_report(start=start, end=end, by=options["by"])
        if options["format"] == "csv":
            self._csv(options["by"], rows, total)
        else:
            self._table(options["by"], rows, total)

    def _csv(self, by: str, rows: list[CostRow], total: CostRow) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([by, *(name for name, _ in COLUMNS)])
        for row in [*rows, total]:
            writer.writerow([row.group, *(getattr(row, name) for name, _ in COLUMNS)])
        self.stdout.write(buffer.getvalue(), ending="")

    def _table(self, by: str, rows: list[CostRow], total: CostRow) -> None:
        header = [by.capitalize(), *(title for _, title in COLUMNS)]
        body = [[row.group, *(f"{getattr(row, name):,}" for name, _ in COLUMNS)] for row in [*rows, total]]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            first, *numbers = cells
            return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(numbers, widths[1:], strict=True))])

        self.stdout.write(line(header))
        self.stdout.write("  ".join("-" * w for w in widths))
        for cells in body[:-1]:
            self.stdout.write(line(cells))
        if not rows:
            self.stdout.write("(no conversations in this period)")
        self.stdout.write("  ".join("-" * w for w in widths))
        self.stdout.write(line(body[-1]))
