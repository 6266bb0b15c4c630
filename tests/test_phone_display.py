"""Phone numbers as a person reads them: the business region's national format everywhere shown,
E.164 in storage and the API (bookings.phones.phone_display, the one definition)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.template import Context, Template
from django.urls import reverse

from bookings.models import Booking, Customer
from bookings.phones import business_phone, phone_display, phone_e164
from bookings.reminders import booking_send_reminder
from bookings.services import Actor, booking_cancel, booking_create
from chatdesk.conversations.models import Conversation, HandoffRequest
from tests.conftest import MONDAY_NOON_UTC

TUESDAY_10 = datetime.fromisoformat("2026-11-17T10:00:00-05:00")


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+14165550123", "(416) 555-0123"),
        ("+12125550123", "(212) 555-0123"),  # +1 is one country for dialling: national format too
        ("+442079460958", "+44 20 7946 0958"),  # another country keeps its code
        ("+1 416 555 0100", "(416) 555-0100"),  # as typed in BUSINESS_PHONE
        ("not a number", "not a number"),
        ("", ""),
    ],
)
def test_phone_display_in_canada(number, shown):
    assert phone_display(number) == shown


def test_phone_display_follows_the_business_region(settings):
    settings.DEFAULT_PHONE_REGION = "GB"
    assert phone_display("+442079460958") == "020 7946 0958"
    assert phone_display("+14165550123") == "+1 416-555-0123"


def test_tel_links_get_e164():
    assert phone_e164("+1 416 555 0100") == "+14165550100"
    assert phone_e164("ext. 12") == "12"  # not a number: its digits, never a broken link


def test_template_filters():
    rendered = Template("{% load phones %}<a href='tel:{{ n|tel }}'>{{ n|phone }}</a>").render(
        Context({"n": "+1 416 555 0100"})
    )
    assert rendered == "<a href='tel:+14165550100'>(416) 555-0100</a>"


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["chat", "voice"])
def test_customer_pages_show_the_business_phone_nationally(client, page):
    content = client.get(reverse(page)).content.decode()
    assert 'href="tel:+14165550100">(416) 555-0100</a>' in content
    assert "+1 416 555 0100" not in content


def book(business) -> Booking:
    return booking_create(
        service=business.repair,
        start=TUESDAY_10,
        customer_name="Dana Whitfield",
        customer_phone="416-555-0142",
        customer_email="dana@example.com",
        address="12 Elm St, Toronto",
        channel="chat",
        actor=Actor.customer("chat"),
    )


@pytest.fixture
def booked(business, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    return book(business)


def test_storage_keeps_e164(booked):
    assert Customer.objects.get().phone == "+14165550142"


def test_confirmation_and_reminder_emails(business, mailoutbox, django_capture_on_commit_callbacks, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        booking = book(business)
    time_machine.move_to(TUESDAY_10 - timedelta(hours=20), tick=False)
    booking_send_reminder(
        booking=Booking.objects.select_related("service", "technician", "customer").get(pk=booking.pk)
    )
    assert [email.subject.split()[0] for email in mailoutbox] == ["Booking", "Reminder:"]
    for email in mailoutbox:
        assert "We will call you at (416) 555-0142 if we need to." in email.body
        assert "or call us\nat (416) 555-0100." in email.body
        assert "+1416" not in email.body


def test_cancellation_email_gives_the_business_phone(booked, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        booking_cancel(booking=booked, actor=Actor.system("test"))
    assert "call us at (416) 555-0100" in mailoutbox[-1].body


@pytest.mark.django_db
def test_admin_lists_and_pages_show_national_numbers(admin_client, booked, business):
    customer = Customer.objects.get()
    conversation = Conversation.objects.create(number="INT-2026-00001", customer=customer)
    HandoffRequest.objects.create(conversation=conversation, reason="Call me", contact_phone="+14165550188")
    pages = {
        "bookings": reverse("admin:bookings_booking_changelist"),
        "booking": reverse("admin:bookings_booking_change", args=[booked.pk]),
        "customers": reverse("admin:bookings_customer_changelist"),
        "technicians": reverse("admin:bookings_technician_changelist"),
        "conversation": reverse("admin:chatdesk_conversation_change", args=[conversation.pk]),
        "handoffs": reverse("admin:chatdesk_handoffrequest_changelist"),
    }
    shown = {name: admin_client.get(url).content.decode() for name, url in pages.items()}
    for name in ("bookings", "booking", "customers", "conversation"):
        assert "(416) 555-0142" in shown[name], name
        assert "+14165550142" not in shown[name], name
    assert "(416) 555-0000" in shown["technicians"]
    assert "(416) 555-0188" in shown["handoffs"]
    # The customer's edit form shows it as staff type it, and saving stores E.164 again.
    change = reverse("admin:bookings_customer_change", args=[customer.pk])
    assert 'value="(416) 555-0142"' in admin_client.get(change).content.decode()
    admin_client.post(change, {"name": "Dana Whitfield", "phone": "(416) 555-0142", "email": "", "address": ""})
    assert Customer.objects.get().phone == "+14165550142"


def test_business_phone_is_what_customers_are_told(settings):
    settings.BUSINESS_PHONE = "+1 647 555 0199"
    assert business_phone() == "(647) 555-0199"
