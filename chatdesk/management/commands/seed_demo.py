"""manage.py seed_demo: the demo business, and about 60 days of its history, for `make run`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bookings.demo import seed_catalogue, seed_upcoming_bookings
from bookings.management.base import Progress, plural
from bookings.models import Booking, Service, Technician, Trade
from chatdesk.conversations.models import Conversation
from chatdesk.management.demo_history import DAYS, seed_history

# The public demo login the README prints; never a production account.
DEFAULT_STAFF_PASSWORD = "chatdesk-demo"  # noqa: S105


class Command(BaseCommand):
    help = (
        "Load realistic demo data (trades, services, technicians, hours, time off, bookings) and, on a database "
        "without conversations, about 60 days of history: text chats and voice calls with their priced model "
        "usage, tool calls, bookings, handoffs, cancellations and no-shows. Safe to re-run: existing rows are "
        "kept, missing ones are added."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-bookings", action="store_true", help="Do not create demo bookings (nor the history, which books)."
        )
        parser.add_argument(
            "--no-history",
            action="store_true",
            help="Do not load the past 60 days of conversations, calls and bookings.",
        )
        parser.add_argument(
            "--staff-user",
            metavar="USERNAME",
            help="Also create (or reset) a demo staff superuser with this username; the password is printed.",
        )
        parser.add_argument(
            "--staff-password",
            metavar="PASSWORD",
            help=(
                f"Password for --staff-user (default {DEFAULT_STAFF_PASSWORD}); checked against "
                "AUTH_PASSWORD_VALIDATORS like any other password."
            ),
        )

    def handle(self, *args, **options):
        username, password = self._staff_login(options["staff_user"], options["staff_password"])
        with transaction.atomic():
            seed_catalogue()
            made, skipped = (0, []) if options["no_bookings"] or Booking.objects.exists() else seed_upcoming_bookings()
            history = None
            # Once: on a record that already holds conversations (a re-run, or a tester's chats) it adds nothing.
            if not (options["no_bookings"] or options["no_history"] or Conversation.objects.exists()):
                progress = Progress(self.stdout, self.stderr, total=None, label="demo conversations")
                history = seed_history(on_conversation=progress.advance)
                progress.finish()
                made += history.bookings
            if username:
                user, _ = get_user_model().objects.get_or_create(username=username)
                user.is_staff = user.is_superuser = True
                user.set_password(password)
                user.save()
        for reason in skipped:
            self.stderr.write(f"Skipped a demo booking: {reason}")
        if history:
            self.stdout.write(
                f"Demo history: {plural(history.conversations, 'conversation')} over the last {DAYS} days, "
                f"{plural(history.bookings, 'booking')} made in them."
            )
        if username:
            self.stdout.write(f"Demo staff login: {username} / {password}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {plural(Trade.objects.count(), 'trade')}, "
                f"{plural(Service.objects.count(), 'service')}, "
                f"{plural(Technician.objects.count(), 'technician')}, "
                f"{plural(Booking.objects.count(), 'booking')} ({made} new)."
            )
        )

    def _staff_login(self, username: str | None, password: str | None) -> tuple[str | None, str]:
        """The staff login to create, refused before anything is written when it is not usable."""
        if password is not None and not username:
            raise CommandError("--staff-password needs --staff-user: whose password should it be?")
        if not username:
            return None, ""
        password = DEFAULT_STAFF_PASSWORD if password is None else password
        User = get_user_model()
        # The validators compare the password with the user's name, as Django's own forms do.
        candidate = User.objects.filter(username=username).first() or User(username=username)
        try:
            validate_password(password, user=candidate)
        except ValidationError as error:
            raise CommandError(f"--staff-password is too weak: {' '.join(error.messages)}") from None
        return username, password
