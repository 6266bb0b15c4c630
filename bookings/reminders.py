"""Reminder emails for the next day's visits, each sent once however often the job runs.

Each booking is claimed before its email goes out, by one conditional UPDATE
(`reminder_sent_at IS NULL` -> now) committed on its own. Whoever updates the row (one
run, or one of two concurrent runs: the second waits on the row lock, then sees the
column set and updates nothing) sends the email; everyone else skips it. A failed send
gives the claim back so the next run retries. A crash between claim and send loses that
one reminder rather than risking two: a missed reminder is a nuisance, a duplicate one
looks broken.

Rescheduling clears reminder_sent_at (bookings.services), so a moved visit is reminded
again for its new day.

Customers who agreed to texts also get the reminder by text (`booking_text_reminder`): one
per visit time, with the same claim-then-send guarantee (bookings.text_messages).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import QuerySet
from django.utils import timezone

from bookings.models import ACTIVE_STATUSES, ActorKind, Booking, BookingEvent
from bookings.selectors import business_tz
from bookings.services import email_details
from bookings.sms import SmsBackend
from bookings.text_messages import NOT_MINE, reminder_text_queue, text_message_send

logger = logging.getLogger(__name__)

SENT = "sent"
ALREADY_SENT = "already_sent"
NO_EMAIL = "no_email"
FAILED = "failed"
NO_TEXTS = "no_texts"

REMINDER = """Hello {customer_name},

This is a reminder of your {service} visit with {business}.

Booking number: {booking_number}
When: {when}
Technician: {technician}
Address: {address}
Estimated price: {estimated_price}

We will call you at {customer_phone} if we need to.
To change or cancel, chat with us and give your booking number and phone number, or call us
at {business_phone}.
"""


def bookings_to_remind(*, day: date) -> QuerySet[Booking]:
    """Active bookings starting on `day` (a calendar day in the business time zone)."""
    tz = business_tz()
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return (
        Booking.objects.filter(status__in=ACTIVE_STATUSES, start__gte=start, start__lt=end)
        .select_related("service", "technician", "customer")
        .order_by("start", "pk")
    )


def booking_send_reminder(*, booking: Booking, now: datetime | None = None) -> str:
    """Email the customer about `booking` unless someone already did. Returns what happened.

    Must not run inside a transaction: the claim has to be visible to other runs at once.
    """
    email = booking.customer.email
    if not email:
        return NO_EMAIL
    claimed_at = now or timezone.now()
    claimed = Booking.objects.filter(pk=booking.pk, reminder_sent_at__isnull=True, status__in=ACTIVE_STATUSES).update(
        reminder_sent_at=claimed_at
    )
    if claimed != 1:
        return ALREADY_SENT
    details = email_details(booking)
    try:
        send_mail(
            f"Reminder: your visit on {details['when']} ({booking.number})",
            REMINDER.format(business=settings.BUSINESS_NAME, **details),
            settings.DEFAULT_FROM_EMAIL,
            [email],
        )
    except Exception:  # any mail failure: give the claim back so the next run retries
        logger.exception("Could not send the reminder for %s", booking.number)
        Booking.objects.filter(pk=booking.pk, reminder_sent_at=claimed_at).update(reminder_sent_at=None)
        return FAILED
    BookingEvent.objects.create(
        booking=booking,
        kind=BookingEvent.Kind.REMINDER_SENT,
        actor_kind=ActorKind.SYSTEM,
        actor_reference="send_reminders",
        changes={"reminder_sent_at": claimed_at.isoformat()},
    )
    return SENT


def booking_text_reminder(
    *, booking: Booking, now: datetime | None = None, backend: SmsBackend | None = None
) -> tuple[str, int | None]:
    """Text the reminder about `booking` to a customer who agreed to texts, once per visit time.

    Returns what happened and the message's id: NO_TEXTS (never agreed), ALREADY_SENT (another
    run has it, or had it), or what bookings.text_messages.text_message_send did: sent, held
    (quiet hours), failed (retried by the next run), undeliverable or skipped (opted out).
    Must not run inside a transaction.
    """
    message = reminder_text_queue(booking=booking, now=now)
    if message is None:
        return NO_TEXTS, None
    outcome = text_message_send(message.pk, now=now, backend=backend)
    if outcome == NOT_MINE:
        # Sent, being sent, or given up by an earlier run; or held, and quiet hours go on.
        outcome = message.status if message.status in ("held", "skipped") else ALREADY_SENT
    return outcome, message.pk
