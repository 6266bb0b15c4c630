"""manage.py send_reminders: email customers about tomorrow's visits."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from bookings.management.base import Progress, day, plural, stop_on_sigterm
from bookings.reminders import ALREADY_SENT, FAILED, NO_EMAIL, SENT, booking_send_reminder, bookings_to_remind
from bookings.selectors import business_tz, local_today


class Command(BaseCommand):
    help = (
        "Email a reminder to every customer with a visit tomorrow (business time zone), once per booking: "
        "running it twice, or twice at the same time, sends nothing more. Cancelled bookings and customers "
        "without an email address are skipped; a failed email is retried by the next run. Run it daily from "
        "cron, e.g. at 17:00."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date", type=day, metavar="YYYY-MM-DD", help="Remind about visits on this day instead of tomorrow."
        )
        parser.add_argument("--dry-run", action="store_true", help="List the bookings without sending anything.")

    def handle(self, *args, **options):
        visit_day = options["date"] or local_today() + timedelta(days=1)
        # One day's visits: bounded by technicians x slots, fine to hold in memory.
        bookings = list(bookings_to_remind(day=visit_day))
        if options["dry_run"]:
            due = [b for b in bookings if b.reminder_sent_at is None]
            for booking in due:
                who = booking.customer.email or "no email: skipped"
                self.stdout.write(f"{booking.number}  {booking.start.astimezone(business_tz()):%H:%M}  {who}")
            reachable = sum(1 for b in due if b.customer.email)
            self.stdout.write(f"Would remind {plural(reachable, 'customer')} for {visit_day}.")
            return
        outcomes: Counter[str] = Counter()
        progress = Progress(self.stdout, self.stderr, total=len(bookings), label="bookings")
        stopped = False
        with stop_on_sigterm() as stop:
            for booking in bookings:
                outcome = booking_send_reminder(booking=booking)
                outcomes[outcome] += 1
                if outcome == FAILED:
                    self.stderr.write(f"Could not email the reminder for {booking.number}; the next run retries.")
                progress.advance()
                if stop.requested:
                    stopped = True
                    break
        progress.finish()
        message = (
            f"Reminders for {visit_day}: {outcomes[SENT]} sent, {outcomes[ALREADY_SENT]} already sent, "
            f"{outcomes[NO_EMAIL]} without email, {outcomes[FAILED]} failed."
        )
        if stopped:
            message += " Stopped by SIGTERM; run again to finish."
        if outcomes[FAILED]:
            # Non-zero exit, so cron tells the operator; the claims were given back.
            self.stdout.write(self.style.WARNING(message))
            failed = plural(outcomes[FAILED], "reminder")
            raise CommandError(f"{failed} could not be sent; the next run retries them.")
        self.stdout.write(self.style.SUCCESS(message))
