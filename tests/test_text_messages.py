"""Text messages to customers (bookings.text_messages): what is sent, by which backend, once.

Real PostgreSQL; the console backend as `make run` has it; the Twilio backend is the real
`twilio` SDK against tests/fake_twilio.py (a loopback server speaking the Messages API).
"Now" is Monday 2026-11-16 08:00 in Toronto; the usual visit is Tuesday 10:00.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bookings.models import TextMessage, TextOptOut
from bookings.selectors import available_slots
from bookings.services import Actor, booking_cancel, booking_reschedule
from bookings.text_messages import (
    SMS_CONSENT_QUESTION,
    TextConsent,
    phone_opt_out,
    quiet_until,
    text_messages_send_due,
)
from tests.cmd_fixtures import run
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_twilio import FakeTwilio
from tests.test_booking_services import TORONTO, TUESDAY, WEDNESDAY, at, book

pytestmark = pytest.mark.django_db

NOW = MONDAY_NOON_UTC
SID = "AC" + "5" * 32
TOKEN = "fake-auth-token-0123456789"
DANA = "+14165550123"
Status = TextMessage.Status


def consent(reply: str = "yes") -> TextConsent:
    return TextConsent(given=True, wording=f"Thanks. {SMS_CONSENT_QUESTION} (yes / no)", reply=reply, at=NOW,
                       source="INT-2026-00042")  # fmt: skip


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs what bookings do on commit (send the text) at the end of each `with` block."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def twilio(settings):
    with FakeTwilio(account_sid=SID, auth_token=TOKEN) as fake:
        settings.SMS_BACKEND = "bookings.sms_twilio.TwilioBackend"
        settings.TWILIO_ACCOUNT_SID = SID
        settings.TWILIO_AUTH_TOKEN = TOKEN
        settings.TWILIO_FROM = "+14165550100"
        settings.TWILIO_API_BASE_URL = fake.base_url
        yield fake


def messages() -> list[tuple[str, str]]:
    return list(TextMessage.objects.order_by("pk").values_list("kind", "status"))


# --- the console backend, and what is sent ---------------------------------------------------


def test_a_confirmation_is_texted_through_the_console_backend(business, committed, capsys):
    with committed():
        booking = book(business, sms_consent=consent("yeah sure"))

    printed = capsys.readouterr().out
    assert f"to {DANA}\n" in printed
    assert "Maple Home Services: your HVAC Repair visit is booked for Tuesday November 17, 2026 at 10:00 AM" in printed
    assert f"Booking {booking.number}. Reply STOP to opt out." in printed
    message = TextMessage.objects.get()
    assert (message.kind, message.status, message.attempts) == ("confirmation", "sent", 1)
    assert message.provider_id.startswith("console-") and message.provider_id in printed


def test_the_consent_is_recorded_with_its_time_wording_and_answer(business, committed):
    with committed():
        booking = book(business, sms_consent=consent("yeah sure"))

    customer = booking.customer
    customer.refresh_from_db()
    assert customer.sms_consent_at == NOW
    assert customer.sms_consent_wording == f"Thanks. {SMS_CONSENT_QUESTION} (yes / no)"
    assert customer.sms_consent_reply == "yeah sure"
    assert customer.sms_consent_source == "INT-2026-00042"
    assert booking.events.get(kind="created").changes["sms_consent"] is True


def test_no_text_without_consent_and_a_no_withdraws_an_earlier_yes(business, committed, capsys):
    with committed():
        book(business)
    assert messages() == []

    with committed():
        book(business, start=at(TUESDAY, "14:00"), sms_consent=consent())
    with committed():
        later = book(
            business,
            start=at(WEDNESDAY, "10:00"),
            sms_consent=TextConsent(given=False, wording="...", reply="no", at=NOW, source="INT-2026-00043"),
        )
    assert later.customer.sms_consent_at is None
    assert messages() == [("confirmation", "sent")]  # the first booking's only


def test_a_move_and_a_cancellation_are_each_texted_once(business, committed, capsys):
    with committed():
        booking = book(business, sms_consent=consent())
    with committed():
        booking_reschedule(booking=booking, new_start=at(WEDNESDAY, "10:00"), actor=Actor.system("test"), now=NOW)
    with committed():
        booking_cancel(booking=booking, actor=Actor.system("test"), now=NOW)

    printed = capsys.readouterr().out
    assert messages() == [("confirmation", "sent"), ("reschedule", "sent"), ("cancellation", "sent")]
    assert "has moved to Wednesday November 18, 2026 at 10:00 AM" in printed
    assert f"visit {booking.number} on Wednesday November 18, 2026 at 10:00 AM is cancelled" in printed
    assert printed.count("--- Text message") == 3
    # Each keyed by its audit event: one message per change, whatever runs again.
    keys = set(TextMessage.objects.values_list("key", flat=True))
    assert keys == {f"event:{e}" for e in booking.events.values_list("pk", flat=True)}


# --- the Twilio backend, against the fake Messages API -----------------------------------------


def test_the_twilio_backend_sends_through_the_messages_api(business, committed, twilio):
    with committed():
        booking = book(business, sms_consent=consent())

    [request] = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["auth"] == (SID, TOKEN)
    assert request["form"]["To"] == DANA
    assert request["form"]["From"] == "+14165550100"
    assert booking.number in request["form"]["Body"]
    message = TextMessage.objects.get()
    assert message.status == Status.SENT
    assert message.provider_id == twilio.sent[0]["sid"]


def test_a_messaging_service_is_used_as_the_sender(business, committed, twilio, settings):
    settings.TWILIO_FROM = "MG" + "a" * 32
    with committed():
        book(business, sms_consent=consent())

    form = twilio.requests[0]["form"]
    assert form["MessagingServiceSid"] == "MG" + "a" * 32
    assert "From" not in form


def test_a_provider_error_is_retried_by_the_next_run(business, committed, twilio):
    twilio.fail_next(2, status=503)
    with committed():
        book(business, sms_consent=consent())  # the booking stands although the text failed
    message = TextMessage.objects.get()
    assert (message.status, message.attempts) == (Status.FAILED, 1)
    assert "503" in message.last_error

    with pytest.raises(CommandError, match="1 text message could not be sent; the next run retries"):
        run("send_text_messages")
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.FAILED, 2)

    assert "Text messages: 1 sent" in run("send_text_messages")
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.SENT, 3)
    # One request per attempt (the SDK retried nothing by itself), one message delivered.
    assert len(twilio.requests) == 3
    assert len(twilio.sent) == 1
    assert "0 sent" in run("send_text_messages")
    assert len(twilio.sent) == 1


def test_a_text_that_keeps_failing_is_given_up(business, committed, twilio, settings):
    settings.SMS_MAX_ATTEMPTS = 2
    twilio.fail_next(5, status=500)
    with committed():
        book(business, sms_consent=consent())
    assert "0 failed (retried next run), 1 undeliverable." in run("send_text_messages")

    message = TextMessage.objects.get()
    assert message.status == Status.UNDELIVERABLE
    assert "gave up after 2 attempts" in message.last_error
    assert "0 sent" in run("send_text_messages")
    assert len(twilio.requests) == 2


def test_a_number_unsubscribed_at_twilio_goes_on_the_opt_out_list(business, committed, twilio):
    twilio.unsubscribed.add(DANA)
    with committed():
        booking = book(business, sms_consent=consent())
    message = TextMessage.objects.get()
    assert message.status == Status.UNDELIVERABLE
    assert "21610" in message.last_error
    assert TextOptOut.objects.get(phone=DANA).source == TextOptOut.Source.PROVIDER

    with committed():
        booking_cancel(booking=booking, actor=Actor.system("test"), now=NOW)
    assert messages()[-1] == ("cancellation", "skipped")
    assert len(twilio.requests) == 1


# --- rules: opt-outs, quiet hours ---------------------------------------------------------------


def test_no_text_to_a_number_on_the_opt_out_list(business, committed, capsys):
    phone_opt_out(phone=DANA, source=TextOptOut.Source.STAFF)
    with committed():
        book(business, sms_consent=consent())

    message = TextMessage.objects.get()
    assert message.status == Status.SKIPPED
    assert message.last_error == "The number opted out of texts."
    assert "--- Text message" not in capsys.readouterr().out


def test_quiet_hours_hold_a_text_until_the_morning(business, committed, capsys, time_machine):
    late = datetime(2026, 11, 16, 22, 30, tzinfo=TORONTO)
    time_machine.move_to(late, tick=False)
    with committed():
        book(business, sms_consent=consent(), now=late)

    message = TextMessage.objects.get()
    assert message.status == Status.HELD
    assert message.send_after == datetime(2026, 11, 17, 8, 0, tzinfo=TORONTO)
    time_machine.move_to(datetime(2026, 11, 17, 7, 59, tzinfo=TORONTO), tick=False)
    assert "0 sent" in run("send_text_messages")
    assert "--- Text message" not in capsys.readouterr().out

    time_machine.move_to(datetime(2026, 11, 17, 8, 0, tzinfo=TORONTO), tick=False)
    assert "1 sent" in run("send_text_messages")
    assert "--- Text message" in capsys.readouterr().out
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_a_retry_that_falls_in_quiet_hours_waits_for_the_morning(business, committed, twilio, time_machine):
    twilio.fail_next(1)
    with committed():
        book(business, sms_consent=consent())
    time_machine.move_to(datetime(2026, 11, 16, 23, 0, tzinfo=TORONTO), tick=False)

    assert "1 held for quiet hours" in run("send_text_messages")
    message = TextMessage.objects.get()
    assert (message.status, message.send_after) == (Status.HELD, datetime(2026, 11, 17, 8, 0, tzinfo=TORONTO))
    assert len(twilio.requests) == 1


def test_quiet_hours_end_at_local_morning_across_a_dst_change(settings):
    # Toronto leaves DST on Sunday 2026-11-01 at 02:00: 08:00 that morning is 13:00 UTC, not 12:00.
    assert quiet_until(datetime(2026, 10, 31, 23, 0, tzinfo=TORONTO)) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 1, 3, 0, tzinfo=TORONTO)) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 1, 8, 0, tzinfo=TORONTO)) is None
    assert quiet_until(datetime(2026, 11, 1, 20, 59, tzinfo=TORONTO)) is None
    settings.SMS_QUIET_HOURS = ""
    assert quiet_until(datetime(2026, 11, 1, 3, 0, tzinfo=TORONTO)) is None


def test_a_held_text_replaced_by_a_later_one_is_not_sent(business, committed, capsys, time_machine):
    late = datetime(2026, 11, 16, 22, 0, tzinfo=TORONTO)
    time_machine.move_to(late, tick=False)
    with committed():
        booking = book(business, sms_consent=consent(), now=late)
    with committed():
        booking_cancel(booking=booking, actor=Actor.system("test"), now=late)

    time_machine.move_to(datetime(2026, 11, 17, 8, 5, tzinfo=TORONTO), tick=False)
    run("send_text_messages")
    assert messages() == [("confirmation", "skipped"), ("cancellation", "sent")]
    assert capsys.readouterr().out.count("--- Text message") == 1


# --- the day-before reminder --------------------------------------------------------------------


def test_the_reminder_is_texted_once(business, committed, twilio):
    with committed():
        booking = book(business, sms_consent=consent(), customer_email="dana@example.com")
    twilio.sent.clear()

    output = run("send_reminders")
    assert "Reminders for 2026-11-17: 1 sent" in output
    assert "Texts: 1 sent, 0 already sent, 0 held for quiet hours, 0 to numbers that opted out, 0 failed." in output
    [reminder] = twilio.sent
    assert reminder["body"].startswith("Maple Home Services reminder: your HVAC Repair visit is tomorrow")
    assert booking.number in reminder["body"]

    assert "Texts: 0 sent, 1 already sent" in run("send_reminders")
    assert len(twilio.sent) == 1


def test_a_failed_reminder_text_is_retried_by_the_next_run(business, committed, twilio):
    with committed():
        book(business, sms_consent=consent())
    twilio.fail_next(1, status=429, code=20429)

    with pytest.raises(CommandError):
        run("send_reminders")
    assert "Texts: 1 sent" in run("send_reminders")
    assert [m["body"][:31] for m in twilio.sent] == [
        "Maple Home Services: your HVAC ",
        "Maple Home Services reminder: y",
    ]


def test_a_cancelled_visit_s_waiting_reminder_is_not_sent(business, committed, twilio, time_machine):
    with committed():
        booking = book(business, sms_consent=consent())
    time_machine.move_to(datetime(2026, 11, 16, 22, 0, tzinfo=TORONTO), tick=False)
    assert "1 held for quiet hours" in run("send_reminders")
    booking_cancel(booking=booking, actor=Actor.system("test"), now=NOW)

    time_machine.move_to(datetime(2026, 11, 17, 8, 0, tzinfo=TORONTO), tick=False)
    run("send_text_messages")
    reminder = TextMessage.objects.get(kind="reminder")
    assert (reminder.status, reminder.last_error) == (Status.SKIPPED, "The visit was cancelled or moved.")
    assert not any("reminder" in m["body"] for m in twilio.sent)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_send_reminders_runs_text_each_customer_once(business, settings):
    numbers = []
    for index in range(6):
        service = business.repair if index % 2 else business.drain
        start = available_slots(service=service, start_date=TUESDAY, now=NOW)[0].start
        phone = f"416-555-01{index:02d}"
        numbers.append(book(business, service=service, start=start, customer_phone=phone, sms_consent=consent()).number)

    with FakeTwilio(account_sid=SID, auth_token=TOKEN, latency=0.05) as fake:
        # Sending takes a while, so the other run reaches the same bookings meanwhile.
        settings.SMS_BACKEND = "bookings.sms_twilio.TwilioBackend"
        settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = SID, TOKEN
        settings.TWILIO_FROM, settings.TWILIO_API_BASE_URL = "+14165550100", fake.base_url
        start_line = threading.Barrier(2)

        def one_run() -> str:
            out = StringIO()
            try:
                start_line.wait(timeout=10)
                call_command("send_reminders", stdout=out, stderr=StringIO())
            finally:
                connection.close()
            return out.getvalue()

        with ThreadPoolExecutor(max_workers=2) as pool:
            outputs = [f.result(timeout=60) for f in [pool.submit(one_run), pool.submit(one_run)]]

    reminders = sorted(m["to"] for m in fake.sent if "reminder" in m["body"])
    assert reminders == sorted(f"+1416555{index + 100:04d}" for index in range(6))
    assert TextMessage.objects.filter(kind="reminder", status=Status.SENT).count() == 6
    texted = [int(o.split("Texts: ")[1].split(" sent")[0]) for o in outputs]
    assert sum(texted) == 6, outputs


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_retry_each_failed_text_once(business, settings):
    with FakeTwilio(account_sid=SID, auth_token=TOKEN, latency=0.05) as fake:
        settings.SMS_BACKEND = "bookings.sms_twilio.TwilioBackend"
        settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = SID, TOKEN
        settings.TWILIO_FROM, settings.TWILIO_API_BASE_URL = "+14165550100", fake.base_url
        fake.fail_next(4)
        for index in range(4):
            start = available_slots(service=business.drain, start_date=TUESDAY, now=NOW)[0].start
            book(business, service=business.drain, start=start, customer_phone=f"416-555-02{index:02d}",
                 sms_consent=consent())  # fmt: skip
        assert TextMessage.objects.filter(status=Status.FAILED).count() == 4
        start_line = threading.Barrier(2)

        def one_run() -> None:
            try:
                start_line.wait(timeout=10)
                text_messages_send_due(now=NOW + timedelta(minutes=5))
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(one_run), pool.submit(one_run)]:
                future.result(timeout=60)

    assert len(fake.sent) == 4
    assert len({m["to"] for m in fake.sent}) == 4
    assert TextMessage.objects.filter(status=Status.SENT, attempts=2).count() == 4
