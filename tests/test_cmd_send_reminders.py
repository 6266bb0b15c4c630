"""`manage.py send_reminders`: one email per booking tomorrow, however often and however concurrently it runs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bookings import reminders
from bookings.models import ActorKind, Booking, BookingEvent
from bookings.selectors import available_slots
from bookings.services import Actor, booking_cancel, booking_reschedule
from tests.cmd_fixtures import help_text, run
from tests.conftest import MONDAY_NOON_UTC
from tests.test_booking_services import TUESDAY, WEDNESDAY, at, book

pytestmark = pytest.mark.django_db

NOW = MONDAY_NOON_UTC  # Monday 2026-11-16 08:00 in Toronto: "tomorrow" is Tuesday the 17th


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def visits(business):
    """Tuesday: Dana at 10:00 and Erin at 14:00 (both with email), Ray at 13:00 (no email). Wednesday: Wes."""
    return {
        "dana": book(business, customer_email="dana@example.com"),
        "erin": book(
            business,
            start=at(TUESDAY, "14:00"),
            customer_name="Erin Lee",
            customer_phone="416-555-0150",
            customer_email="erin@example.com",
        ),
        "ray": book(business, service=business.drain, start=at(TUESDAY, "13:00"), customer_phone="416-555-0170"),
        "wes": book(
            business, start=at(WEDNESDAY, "10:00"), customer_phone="416-555-0180", customer_email="wes@example.com"
        ),
    }


def reminder_events() -> Counter:
    return Counter(BookingEvent.objects.filter(kind="reminder_sent").values_list("booking__number", flat=True))


def test_it_emails_each_customer_with_a_visit_tomorrow(visits, mailoutbox):
    output = run("send_reminders")
    assert "Reminders for 2026-11-17: 2 sent, 0 already sent, 1 without email, 0 failed." in output
    assert sorted(m.to[0] for m in mailoutbox) == ["dana@example.com", "erin@example.com"]
    dana = next(m for m in mailoutbox if m.to == ["dana@example.com"])
    assert visits["dana"].number in dana.subject
    assert "Tuesday November 17, 2026 at 10:00 AM" in dana.body
    assert "Alice T." in dana.body


def test_it_records_the_reminder_on_the_booking_and_in_its_audit_trail(visits):
    run("send_reminders")
    dana = Booking.objects.get(pk=visits["dana"].pk)
    assert dana.reminder_sent_at == NOW
    event = dana.events.get(kind="reminder_sent")
    assert (event.actor_kind, event.actor_user, event.actor_reference) == (ActorKind.SYSTEM, None, "send_reminders")
    assert Booking.objects.get(pk=visits["wes"].pk).reminder_sent_at is None


def test_running_it_twice_sends_each_reminder_once(visits, mailoutbox):
    run("send_reminders")
    output = run("send_reminders")
    assert "0 sent, 2 already sent" in output
    assert len(mailoutbox) == 2
    assert reminder_events() == {visits["dana"].number: 1, visits["erin"].number: 1}


def test_customers_without_email_are_skipped_without_a_claim(visits, mailoutbox):
    run("send_reminders")
    assert Booking.objects.get(pk=visits["ray"].pk).reminder_sent_at is None
    assert not BookingEvent.objects.filter(booking=visits["ray"], kind="reminder_sent").exists()


def test_cancelled_bookings_get_no_reminder(visits, mailoutbox):
    booking_cancel(booking=visits["erin"], actor=Actor.system("test"), reason="Changed plans")
    assert "1 sent" in run("send_reminders")
    assert [m.to for m in mailoutbox] == [["dana@example.com"]]


def test_a_visit_moved_to_tomorrow_is_reminded_of_again(visits, mailoutbox):
    run("send_reminders")
    booking_reschedule(booking=visits["dana"], new_start=at(TUESDAY, "11:00"), actor=Actor.system("test"))
    assert "1 sent, 1 already sent" in run("send_reminders")
    assert [m.to[0] for m in mailoutbox].count("dana@example.com") == 2


def test_date_picks_another_day(visits, mailoutbox):
    assert "Reminders for 2026-11-18: 1 sent" in run("send_reminders", "--date", "2026-11-18")
    assert [m.to for m in mailoutbox] == [["wes@example.com"]]


def test_tomorrow_is_the_business_s_tomorrow(business, mailoutbox, time_machine):
    # 23:30 on Monday in Toronto is already Tuesday in UTC: tomorrow is still Tuesday.
    time_machine.move_to(datetime(2026, 11, 17, 4, 30, tzinfo=UTC), tick=False)
    book(business, customer_email="dana@example.com", now=datetime(2026, 11, 17, 4, 30, tzinfo=UTC))
    assert "Reminders for 2026-11-17: 1 sent" in run("send_reminders")


def test_a_failed_email_gives_the_claim_back_and_the_next_run_retries(visits, mailoutbox, monkeypatch):
    real_send = reminders.send_mail

    def refuse_erin(subject, body, sender, recipients):
        if recipients == ["erin@example.com"]:
            raise ConnectionRefusedError("SMTP server down")
        return real_send(subject, body, sender, recipients)

    monkeypatch.setattr(reminders, "send_mail", refuse_erin)
    with pytest.raises(CommandError, match="1 reminder could not be sent; the next run retries them"):
        run("send_reminders")
    assert Booking.objects.get(pk=visits["erin"].pk).reminder_sent_at is None
    assert reminder_events() == {visits["dana"].number: 1}

    monkeypatch.setattr(reminders, "send_mail", real_send)
    assert "1 sent, 1 already sent" in run("send_reminders")
    assert sorted(m.to[0] for m in mailoutbox) == ["dana@example.com", "erin@example.com"]


def test_a_dry_run_lists_and_sends_nothing(visits, mailoutbox):
    output = run("send_reminders", "--dry-run")
    assert f"{visits['dana'].number}  10:00  dana@example.com" in output
    assert "no email: skipped" in output
    assert "Would remind 2 customers for 2026-11-17." in output
    assert mailoutbox == []
    assert not Booking.objects.filter(reminder_sent_at__isnull=False).exists()


def test_it_explains_a_bad_date():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("send_reminders", "--date", "tomorrow")


def test_help_promises_once_per_booking():
    text = help_text("send_reminders")
    assert "once per booking" in text
    assert "--date YYYY-MM-DD" in text


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_still_send_one_reminder_per_booking(business, mailoutbox, monkeypatch):
    numbers = []
    for index in range(6):
        service = business.repair if index % 2 else business.drain
        start = available_slots(service=service, start_date=TUESDAY, now=NOW)[0].start
        booking = book(
            business,
            service=service,
            start=start,
            customer_phone=f"416-555-01{index:02d}",
            customer_email=f"customer{index}@example.com",
        )
        numbers.append(booking.number)

    # Committed for real here, so the bookings' confirmation emails went out: not what is counted.
    mailoutbox.clear()
    real_send = reminders.send_mail

    def slow_send(*args, **kwargs):
        # Sending takes a while, so the other run reaches the same bookings meanwhile.
        time.sleep(0.02)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(reminders, "send_mail", slow_send)
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

    assert sorted(m.to[0] for m in mailoutbox) == [f"customer{i}@example.com" for i in range(6)]
    assert reminder_events() == dict.fromkeys(numbers, 1)
    assert all(m.subject.startswith("Reminder:") for m in mailoutbox)
    sent = [int(o.split(": ")[1].split(" sent")[0]) for o in outputs]
    assert sum(sent) == 6
