"""manage.py send_reminders: email and text customers about tomorrow's visits."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from bookings.management.base import Progress, day, plural, stop_on_sigterm
from bookings.reminders import (
    ALREADY_SENT,
    FAILED,
    NO_EMAIL,
    SENT,
    booking_send_reminder,
    booking_text_reminder,
    bookings_to_remind,
)
from bookings.selectors import business_tz, local_today
from bookings.sms import get_backend
from bookings.text_messages import text_messages_send_due


class Command(BaseCommand):
    help = (
        "Email a reminder to every customer with a visit tomorrow (business time zone), once per booking, and "
        "text it to those who agreed to texts: running it twice, or twice at the same time, sends nothing more. "
        "Cancelled bookings, customers without an email address and numbers that opted out are skipped; a "
        "failed email or text is retried by the next run; texts wait for the end of quiet hours. It also sends "
        "any other text message that is due (see send_text_messages). Run it daily from cron, e.g. at 17:00."
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
                if booking.customer.sms_consent_at is not None:
                    who += ", and by text"
                self.stdout.write(f"{booking.number}  {booking.start.astimezone(business_tz()):%H:%M}  {who}")
            reachable = sum(1 for b in due if b.customer.email)
            self.stdout.write(f"Would remind {plural(reachable, 'customer')} for {visit_day}.")
            return
        outcomes: Counter[str] = Counter()
        texts: Counter[str] = Counter()
        tried: set[int | None] = set()
        backend = get_backend()
        progress = Progress(self.stdout, self.stderr, total=len(bookings), label="bookings")
        stopped = False
        with stop_on_sigterm() as stop:
            for booking in bookings:
                outcome = booking_send_reminder(booking=booking)
                outcomes[outcome] += 1
                if outcome == FAILED:
                    self.stderr.write(f"Could not email the reminder for {booking.number}; the next run retries.")
                text, message_id = booking_text_reminder(booking=booking, backend=backend)
                texts[text] += 1
                tried.add(message_id)
                if text == FAILED:
                    self.stderr.write(f"Could not text the reminder for {booking.number}; the next run retries.")
                progress.advance()
                if stop.requested:
                    stopped = True
                    break
        progress.finish()
        # Earlier texts whose time has come: failed ones again, held ones after quiet hours.
        others = text_messages_send_due(backend=backend, exclude=tried) if not stopped else Counter()
        message = (
            f"Reminders for {visit_day}: {outcomes[SENT]} sent, {outcomes[ALREADY_SENT]} already sent, "
            f"{outcomes[NO_EMAIL]} without email, {outcomes[FAILED]} failed. "
            f"Texts: {texts[SENT]} sent, {texts[ALREADY_SENT]} already sent, {texts['held']} held for quiet hours, "
            f"{texts['skipped']} to numbers that opted out, {texts[FAILED]} failed"
            f"{', ' + str(texts['undeliverable']) + ' undeliverable' if texts['undeliverable'] else ''}."
        )
        if sum(others.values()):
            message += f" Other texts due: {others['sent']} sent, {others['failed']} failed."
        if stopped:
            message += " Stopped by SIGTERM; run again to finish."
        failures = outcomes[FAILED] + texts[FAILED] + others["failed"]
        if failures:
            # Non-zero exit, so cron tells the operator; the claims were given back.
            self.stdout.write(self.style.WARNING(message))
            failed = plural(failures, "reminder")
            raise CommandError(f"{failed} could not be sent; the next run retries them.")
        self.stdout.write(self.style.SUCCESS(message))
