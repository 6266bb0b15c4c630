"""Text messages to customers about their bookings: consent, opt-outs, quiet hours, and
sending each message exactly once.

**The outbox.** A booking change (bookings.services) writes its TextMessage row in the same
transaction as the change, keyed by the change's audit event, so the change and its message
commit together or not at all, and a change has at most one message. The day-before reminder
is keyed by booking and visit time (`reminder_key`): two send_reminders runs at once insert
one row, and a moved visit gets a reminder for its new time.

**Exactly once.** A row is sent only by whoever claims it, with one conditional UPDATE
(waiting -> sending) committed on its own: one claimer per row, whoever else tries updates
nothing. After a provider error the row goes back to waiting (`failed`), and the next run
(send_text_messages, send_reminders) tries again, up to SMS_MAX_ATTEMPTS. A crash between
claim and send leaves the row at `sending` and loses that one text rather than risking two,
the same guarantee as the reminder emails (bookings.reminders).

**Rules, checked again at the moment of sending** (a message may have waited): the customer
agreed to texts in a conversation (Customer.sms_consent_*), the number is not on the opt-out
list (TextOptOut: STOP, or staff), it is not quiet hours in the business's time zone
(SMS_QUIET_HOURS: the message is held until they end), a reminder's visit is still on at
that time, and no later message about the booking replaces a waiting one.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bookings.errors import InvalidInput
from bookings.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingEvent,
    Customer,
    InboundTextMessage,
    TextMessage,
    TextOptOut,
)
from bookings.phones import business_phone, normalize_phone
from bookings.selectors import booking_public_dict, business_tz
from bookings.sms import SmsBackend, SmsRejected, get_backend

logger = logging.getLogger(__name__)

# The question a customer answers to agree to texts, word for word: the guided flow asks it,
# the model is told to ask it so, and the answer is recorded against the message that asked.
SMS_CONSENT_ASK = "May we text you the booking confirmation and a reminder the day before at this number?"
SMS_CONSENT_QUESTION = f"{SMS_CONSENT_ASK} Reply STOP to any text to stop them."

Status = TextMessage.Status
Kind = TextMessage.Kind
WAITING = (Status.QUEUED, Status.HELD, Status.FAILED)
CHANGE_KINDS = (Kind.CONFIRMATION, Kind.RESCHEDULE, Kind.CANCELLATION)

# What text_message_send did.
SENT = "sent"
HELD = "held"
FAILED = "failed"
UNDELIVERABLE = "undeliverable"
SKIPPED = "skipped"
NOT_MINE = "not_mine"  # someone else claimed it, or it is not due

BODIES = {
    Kind.CONFIRMATION: "{business}: your {service} visit is booked for {when} with {technician}. "
    "Booking {booking_number}.",
    Kind.RESCHEDULE: "{business}: your {service} visit {booking_number} has moved to {when} with {technician}.",
    Kind.CANCELLATION: "{business}: your {service} visit {booking_number} on {when} is cancelled. "
    "To book again, call {business_phone}.",
    Kind.REMINDER: "{business} reminder: your {service} visit is tomorrow, {when}, with {technician}. "
    "Booking {booking_number}. To change it, call {business_phone}.",
}
OPT_OUT_FOOTER = " Reply STOP to opt out."


@dataclass(frozen=True)
class TextConsent:
    """A customer's answer to SMS_CONSENT_QUESTION, as a conversation recorded it."""

    given: bool
    wording: str  # the assistant's message that asked, exactly as the customer saw it
    reply: str  # the customer's answer, as typed or heard
    at: datetime  # when they answered
    source: str  # where: the conversation's number


def consent_record(customer: Customer, consent: TextConsent) -> None:
    """Store the customer's answer: a yes records its evidence, a no withdraws an earlier yes."""
    if consent.given:
        customer.sms_consent_at = consent.at
        customer.sms_consent_wording = consent.wording[:2000]
        customer.sms_consent_reply = consent.reply[:2000]
        customer.sms_consent_source = consent.source[:120]
    else:
        customer.sms_consent_at = None
        customer.sms_consent_wording = ""
        customer.sms_consent_reply = ""
        customer.sms_consent_source = consent.source[:120]
    customer.save(update_fields=["sms_consent_at", "sms_consent_wording", "sms_consent_reply", "sms_consent_source"])


# --- opt-outs ---------------------------------------------------------------------------


def phone_opted_out(phone: str) -> bool:
    return TextOptOut.objects.filter(phone=phone).exists()


def phone_opt_out(*, phone: str, source: str, note: str = "") -> TextOptOut:
    opt_out, _ = TextOptOut.objects.get_or_create(phone=phone, defaults={"source": source, "note": note[:300]})
    return opt_out


def phone_opt_in(*, phone: str) -> bool:
    """Take the number off the opt-out list (START). True when it was on it."""
    deleted, _ = TextOptOut.objects.filter(phone=phone).delete()
    return bool(deleted)


# --- quiet hours ------------------------------------------------------------------------


def _quiet_hours() -> tuple[time, time] | None:
    if not settings.SMS_QUIET_HOURS:
        return None
    start, end = (time.fromisoformat(part) for part in settings.SMS_QUIET_HOURS.split("-"))
    return start, end


def quiet_until(moment: datetime) -> datetime | None:
    """When quiet hours end, if `moment` is inside them (business time zone); else None.

    The end is a wall-clock time on the right local day, so a DST change in the night moves
    nothing: 08:00 is 08:00 local either way.
    """
    hours = _quiet_hours()
    if hours is None:
        return None
    start, end = hours
    tz = business_tz()
    local = moment.astimezone(tz)
    now_time = local.time()
    if start <= end:  # within one day, e.g. 12:00-13:00
        inside = start <= now_time < end
        end_day = local.date()
    else:  # across midnight, e.g. 21:00-08:00
        inside = now_time >= start or now_time < end
        end_day = local.date() + timedelta(days=1) if now_time >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz)


# --- queueing ---------------------------------------------------------------------------


def _body(booking: Booking, kind: str) -> str:
    details = {**booking_public_dict(booking), "business": settings.BUSINESS_NAME, "business_phone": business_phone()}
    return BODIES[kind].format(**details) + OPT_OUT_FOOTER


def _new_message(*, booking: Booking, kind: str, key: str, now: datetime) -> TextMessage:
    """The row for a message to the booking's customer: held for quiet hours, skipped for an
    opted-out number (so staff see why nothing went), else queued."""
    phone = booking.customer.phone
    status, send_after, note = Status.QUEUED, now, ""
    if phone_opted_out(phone):
        status, note = Status.SKIPPED, "The number opted out of texts."
    elif (until := quiet_until(now)) is not None:
        status, send_after = Status.HELD, until
    return TextMessage(
        booking=booking,
        kind=kind,
        key=key,
        to_phone=phone,
        body=_body(booking, kind),
        status=status,
        send_after=send_after,
        last_error=note,
    )


def booking_change_text_queue(*, booking: Booking, kind: str, event: BookingEvent) -> TextMessage | None:
    """Queue the text about a booking change, inside the transaction that made the change.

    Nothing when the customer never agreed to texts. Sent once that transaction commits,
    unless quiet hours hold it. Timed by the clock, not by the service's `now` (which a
    caller may set to judge the booking rules at another moment).
    """
    if booking.customer.sms_consent_at is None:
        return None
    message = _new_message(booking=booking, kind=kind, key=f"event:{event.pk}", now=timezone.now())
    message.save()
    if message.status == Status.QUEUED:
        transaction.on_commit(partial(_send_after_commit, message.pk))
    return message


def _send_after_commit(message_id: int) -> None:
    # The booking is committed: a provider error must never reach the customer's request;
    # it is recorded on the row and retried by the next send_text_messages run.
    try:
        text_message_send(message_id)
    except Exception:
        logger.exception("Could not send text message %s", message_id)


def reminder_key(booking: Booking) -> str:
    return f"reminder:{booking.pk}:{booking.start.astimezone(business_tz()).isoformat()}"


def reminder_text_queue(*, booking: Booking, now: datetime | None = None) -> TextMessage | None:
    """The day-before reminder's row for `booking`, queued once per visit time, or None when
    the customer never agreed to texts. Runs in autocommit (send_reminders)."""
    if booking.customer.sms_consent_at is None:
        return None
    now = now or timezone.now()
    draft = _new_message(booking=booking, kind=Kind.REMINDER, key=reminder_key(booking), now=now)
    fields = {f.name: getattr(draft, f.name) for f in TextMessage._meta.concrete_fields if f.name not in ("id", "key")}
    # get_or_create retries the read when a concurrent run inserted the same key first.
    message, _ = TextMessage.objects.get_or_create(key=draft.key, defaults=fields)
    return message


# --- sending ----------------------------------------------------------------------------


def _why_not_now(message: TextMessage, now: datetime) -> str:
    """Why a claimed message must not go after all ("" when it may)."""
    booking = message.booking
    customer = booking.customer
    if phone_opted_out(message.to_phone):
        return "The number opted out of texts."
    if customer.sms_consent_at is None or customer.phone != message.to_phone:
        return "The customer no longer agrees to texts at this number."
    if message.kind == Kind.REMINDER:
        if booking.status not in ACTIVE_STATUSES or message.key != reminder_key(booking):
            return "The visit was cancelled or moved."
        if booking.start <= now:
            return "The visit has already started."
    elif (
        TextMessage.objects.filter(booking=booking, kind__in=CHANGE_KINDS, pk__gt=message.pk)
        .exclude(status=Status.SKIPPED)
        .exists()
    ):
        return "A later message about this booking replaces it."
    return ""


def text_message_send(message_id: int, *, now: datetime | None = None, backend: SmsBackend | None = None) -> str:
    """Send one waiting message if it is due and nobody else is sending it. Returns what happened.

    Must not run inside a transaction: the claim has to be visible to other runs at once.
    """
    now = now or timezone.now()
    waiting = TextMessage.objects.filter(pk=message_id, status__in=WAITING, send_after__lte=now)
    if (until := quiet_until(now)) is not None:
        held = waiting.update(status=Status.HELD, send_after=until)
        return HELD if held else NOT_MINE
    # The claim: a concurrent run waits on the row lock, then finds it no longer waiting.
    if waiting.update(status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1) != 1:
        return NOT_MINE
    message = TextMessage.objects.select_related("booking__customer").get(pk=message_id)
    mine = TextMessage.objects.filter(pk=message_id, status=Status.SENDING)
    reason = _why_not_now(message, now)
    if reason:
        mine.update(status=Status.SKIPPED, last_error=reason)
        return SKIPPED
    try:
        provider_id = (backend or get_backend()).send(to=message.to_phone, body=message.body)
    except SmsRejected as rejected:
        if rejected.unsubscribed:
            phone_opt_out(phone=message.to_phone, source=TextOptOut.Source.PROVIDER, note=str(rejected)[:300])
        mine.update(status=Status.UNDELIVERABLE, last_error=str(rejected)[:300])
        return UNDELIVERABLE
    except Exception as error:  # any provider failure: give the claim back for the next run
        logger.warning("Text message %s to booking %s not sent: %r", message.pk, message.booking.number, error)
        final = message.attempts >= settings.SMS_MAX_ATTEMPTS
        mine.update(
            status=Status.UNDELIVERABLE if final else Status.FAILED,
            last_error=_error_text(error, final=final),
        )
        return UNDELIVERABLE if final else FAILED
    mine.update(status=Status.SENT, sent_at=timezone.now(), provider_id=str(provider_id)[:64], last_error="")
    return SENT


def _error_text(error: Exception, *, final: bool) -> str:
    text = re.sub(r"\s+", " ", f"{type(error).__name__}: {error}")[:250]
    return f"{text} (gave up after {settings.SMS_MAX_ATTEMPTS} attempts)" if final else text


def due_text_messages(now: datetime) -> list[int]:
    return list(
        TextMessage.objects.filter(status__in=WAITING, send_after__lte=now)
        .order_by("send_after", "pk")
        .values_list("pk", flat=True)
    )


def text_messages_send_due(
    *, now: datetime | None = None, backend: SmsBackend | None = None, exclude: Collection[int] = ()
) -> Counter[str]:
    """Send every message whose time has come (held ones after quiet hours, failed ones again),
    except `exclude`: what the caller already tried in this run waits for the next one."""
    now = now or timezone.now()
    outcomes: Counter[str] = Counter()
    backend = backend or get_backend()
    for message_id in due_text_messages(now):
        if message_id in exclude:
            continue
        outcomes[text_message_send(message_id, now=now, backend=backend)] += 1
    return outcomes


def stuck_text_messages(now: datetime, *, after: timedelta = timedelta(minutes=10)) -> int:
    """Messages claimed long ago and never finished: a run died while sending them. They are
    not retried (the provider may have sent them); staff should check with the provider."""
    return TextMessage.objects.filter(status=Status.SENDING, claimed_at__lt=now - after).count()


# --- texts from customers ---------------------------------------------------------------

# Twilio's standard opt-out, opt-in and help keywords (a message that is only the word):
# Twilio itself blocks texts to a number after these, so our list must agree with it.
STOP_WORDS = {"stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "optout", "opt out", "revoke"}
START_WORDS = {"start", "yes", "unstop", "optin", "opt in"}
HELP_WORDS = {"help", "info"}


def inbound_keyword(body: str) -> str:
    word = " ".join(re.findall(r"[a-z]+", body.lower()))
    Keyword = InboundTextMessage.Keyword
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS:
        return Keyword.START
    if word in HELP_WORDS:
        return Keyword.HELP
    return Keyword.OTHER


def inbound_text_receive(*, provider_id: str, from_phone: str, body: str) -> tuple[InboundTextMessage, bool]:
    """Record a customer's text once (a webhook delivered twice finds the first row) and act on
    STOP (the number goes on the opt-out list) and START (it comes off). Returns (row, new)."""
    try:
        phone = normalize_phone(from_phone)
    except InvalidInput:
        phone = from_phone.strip()[:20]  # a short code or an alphanumeric sender: kept as sent
    keyword = inbound_keyword(body)
    with transaction.atomic():
        row, created = InboundTextMessage.objects.get_or_create(
            provider_id=provider_id[:64],
            defaults={
                "from_phone": phone,
                "body": body[:1600],
                "keyword": keyword,
                "customer": Customer.objects.filter(phone=phone).first(),
            },
        )
        if created and keyword == InboundTextMessage.Keyword.STOP:
            phone_opt_out(phone=phone, source=TextOptOut.Source.CUSTOMER, note=f"Replied {body.strip()[:40]!r}")
        elif created and keyword == InboundTextMessage.Keyword.START:
            phone_opt_in(phone=phone)
    return row, created


def help_reply() -> str:
    """The answer to HELP: who we are and how to reach a person."""
    return (
        f"{settings.BUSINESS_NAME}: texts about your bookings. To change a visit or talk to us, call "
        f"{business_phone()}. Reply STOP to stop texts, START to get them again."
    )
