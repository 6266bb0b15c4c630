"""manage.py close_stale_sessions: end conversations the customer walked away from."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bookings.management.base import Progress, plural, positive_int, stop_on_sigterm
from chatdesk.conversations.retention import conversations_close_stale, stale_conversations


class Command(BaseCommand):
    help = (
        "Close open conversations with no activity for more than N minutes, as abandoned: they end at their "
        "last activity (end reason 'idle'), resolved as booked if the customer booked, escalated if they asked "
        "for a person, abandoned otherwise. Safe to re-run and to run from cron, e.g. every 5 minutes with "
        "--idle-minutes 30."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--idle-minutes",
            type=positive_int,
            required=True,
            metavar="N",
            help="Close conversations whose last message is more than N minutes old.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only say how many would be closed.")

    def handle(self, *args, **options):
        minutes = options["idle_minutes"]
        idle = f"idle for more than {plural(minutes, 'minute')}"
        if options["dry_run"]:
            count = stale_conversations(idle_minutes=minutes).count()
            self.stdout.write(f"Would close {plural(count, 'conversation')} {idle} (dry run).")
            return
        progress = Progress(self.stdout, self.stderr, total=None, label="closed")
        with stop_on_sigterm() as stop:
            result = conversations_close_stale(
                idle_minutes=minutes, on_batch=progress.advance, should_stop=lambda: stop.requested
            )
        progress.finish()
        message = f"Closed {plural(result.done, 'conversation')} {idle}."
        if result.stopped:
            message += " Stopped by SIGTERM; run again to close the rest."
        self.stdout.write(self.style.SUCCESS(message))
