"""manage.py send_text_messages: send the text messages whose time has come."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from bookings.management.base import plural
from bookings.text_messages import stuck_text_messages, text_messages_send_due


class Command(BaseCommand):
    help = (
        "Send every text message to customers that is due: those held for quiet hours once they end, and those "
        "a provider error stopped, again (up to SMS_MAX_ATTEMPTS). Each goes once, even when two runs overlap. "
        "Run it from cron every few minutes (e.g. */5 * * * *)."
    )

    def handle(self, *args, **options):
        now = timezone.now()
        outcomes = text_messages_send_due(now=now)
        message = (
            f"Text messages: {outcomes['sent']} sent, {outcomes['held']} held for quiet hours, "
            f"{outcomes['skipped']} not sent (opted out, or no longer needed), {outcomes['failed']} failed "
            f"(retried next run), {outcomes['undeliverable']} undeliverable."
        )
        stuck = stuck_text_messages(now)
        if stuck:
            # Never retried: the provider may have sent them before the run that claimed them died.
            message += f" {plural(stuck, 'message')} stuck at 'sending' since a run stopped: check with the provider."
        if outcomes["failed"]:
            self.stdout.write(self.style.WARNING(message))
            raise CommandError(f"{plural(outcomes['failed'], 'text message')} could not be sent; the next run retries.")
        self.stdout.write(self.style.SUCCESS(message))
