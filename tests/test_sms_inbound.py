"""Texts from customers: Twilio's inbound webhook (chatdesk/web/sms.py), signed and unsigned.

Requests are signed the way Twilio signs them, with the package's own RequestValidator
(HMAC-SHA1 of the URL and the sorted form fields, keyed with the auth token). Also the
back office's view of text messages (the booking's page, the opt-out list) on PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from twilio.request_validator import RequestValidator

from bookings.models import InboundTextMessage, TextMessage, TextOptOut
from bookings.phones import business_phone
from bookings.services import Actor, booking_cancel
from bookings.text_messages import phone_opt_out
from chatdesk.conversations.models import HandoffRequest
from tests.cmd_fixtures import stored_conversation
from tests.conftest import MONDAY_NOON_UTC
from tests.staff import staff_groups
from tests.test_booking_services import NOW, book
from tests.test_text_messages import consent

pytestmark = pytest.mark.django_db

TOKEN = "inbound-auth-token-0123456789"
URL = "http://testserver/sms/twilio/inbound"
DANA = "+14165550123"


@pytest.fixture(autouse=True)
def twilio_settings(settings, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_INBOUND_URL = ""


def inbound(client: Client, body: str, *, sid: str = "SM" + "1" * 32, sender: str = DANA, signature: str | None = None):
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "5" * 32, "From": sender, "To": "+14165550100",
            "Body": body, "NumMedia": "0"}  # fmt: skip
    if signature is None:
        signature = RequestValidator(TOKEN).compute_signature(URL, form)
    return client.post("/sms/twilio/inbound", form, HTTP_X_TWILIO_SIGNATURE=signature)


def test_an_unsigned_or_badly_signed_text_is_refused(client):
    assert inbound(client, "STOP", signature="").status_code == 403
    forged = RequestValidator("someone-else-s-token").compute_signature(URL, {"Body": "STOP"})
    response = inbound(client, "STOP", signature=forged)
    assert response.status_code == 403
    assert b"Twilio signature" in response.content
    assert not InboundTextMessage.objects.exists()
    assert not TextOptOut.objects.exists()


def test_a_signature_over_other_fields_is_refused(client):
    signed_for_help = RequestValidator(TOKEN).compute_signature(URL, {"Body": "HELP"})
    assert inbound(client, "STOP", signature=signed_for_help).status_code == 403


def test_stop_puts_the_number_on_the_opt_out_list_once(client, business, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        booking = book(business, sms_consent=consent())

    first = inbound(client, "Stop")
    again = inbound(client, "Stop")  # Twilio delivering the same webhook twice

    assert first.status_code == again.status_code == 200
    assert first["Content-Type"].startswith("text/xml")
    assert b"<Message>" not in first.content  # Twilio answers STOP itself
    assert InboundTextMessage.objects.get().keyword == "stop"
    assert TextOptOut.objects.get(phone=DANA).source == TextOptOut.Source.CUSTOMER
    with django_capture_on_commit_callbacks(execute=True):
        booking_cancel(booking=booking, actor=Actor.system("test"), now=NOW)
    assert TextMessage.objects.get(kind="cancellation").status == TextMessage.Status.SKIPPED


def test_start_takes_the_number_off_the_list(client):
    inbound(client, "STOP", sid="SM" + "a" * 32)
    assert inbound(client, "start", sid="SM" + "b" * 32).status_code == 200
    assert not TextOptOut.objects.exists()
    assert list(InboundTextMessage.objects.order_by("received_at", "pk").values_list("keyword", flat=True)) == [
        "stop",
        "start",
    ]


def test_help_is_answered_with_our_details_once(client):
    first = inbound(client, "help")
    again = inbound(client, "help")

    assert b"<Response><Message>Maple Home Services: texts about your bookings." in first.content
    assert f"call {business_phone()}.".encode() in first.content
    assert b"<Message>" not in again.content  # the replayed webhook sends nothing more
    assert InboundTextMessage.objects.get().keyword == "help"


def test_any_other_text_goes_to_the_handoff_queue_once(client, business):
    booking = book(business)
    chat = stored_conversation(started=MONDAY_NOON_UTC, customer=booking.customer)

    inbound(client, "Can the tech come after 2pm instead?")
    inbound(client, "Can the tech come after 2pm instead?")

    handoff = HandoffRequest.objects.get()
    assert handoff.conversation == chat
    assert handoff.reason == "Text message: Can the tech come after 2pm instead?"
    assert (handoff.contact_phone, handoff.contact_name) == (DANA, "Dana Smith")
    text = InboundTextMessage.objects.get()
    assert (text.keyword, text.customer) == ("other", booking.customer)


def test_a_text_from_a_stranger_stays_in_the_texts_list(client):
    assert inbound(client, "who is this?", sender="+16475550199").status_code == 200
    assert InboundTextMessage.objects.get().customer is None
    assert not HandoffRequest.objects.exists()


def test_the_public_url_behind_a_proxy_is_the_one_signed(client, settings):
    settings.TWILIO_INBOUND_URL = "https://chatdesk.example.com/sms/twilio/inbound"
    form_sig = RequestValidator(TOKEN).compute_signature(
        settings.TWILIO_INBOUND_URL,
        {"MessageSid": "SM" + "1" * 32, "SmsSid": "SM" + "1" * 32, "AccountSid": "AC" + "5" * 32, "From": DANA,
         "To": "+14165550100", "Body": "STOP", "NumMedia": "0"},
    )  # fmt: skip
    assert inbound(client, "STOP", signature=form_sig).status_code == 200
    assert inbound(client, "STOP", sid="SM" + "2" * 32).status_code == 403  # signed for the internal URL


def test_get_is_not_allowed(client):
    assert client.get("/sms/twilio/inbound").status_code == 405


# --- the back office ------------------------------------------------------------------------------


def test_the_booking_page_lists_its_texts_with_their_status(business, time_machine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        booking = book(business, sms_consent=consent())
    time_machine.move_to("2026-11-16T22:30:00-05:00", tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        booking_cancel(booking=booking, actor=Actor.system("test"), now=NOW)

    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", password="pw-root-123456"))
    page = root.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "text messages to the customer" in page.lower()
    assert "Sent" in page
    assert "Held for quiet hours until Tue 2026-11-17 08:00 EST" in page
    assert "(416) 555-0123" in page

    dispatcher = get_user_model().objects.create_user("disp", password="pw-disp-123456", is_staff=True)
    dispatcher.groups.add(staff_groups()["Dispatcher"])
    staff = Client()
    staff.force_login(dispatcher)
    page = staff.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "Held for quiet hours until" in page
    assert "(416) 555-0123" not in page


def test_an_owner_adds_a_number_to_the_opt_out_list_in_any_format(business):
    owner = get_user_model().objects.create_user("owner", password="pw-owner-123456", is_staff=True)
    owner.groups.add(staff_groups()["Owner"])
    staff = Client()
    staff.force_login(owner)

    response = staff.post("/admin/bookings/textoptout/add/", {"phone": "(416) 555-0123", "note": "asked by phone"})

    assert response.status_code == 302
    opt_out = TextOptOut.objects.get()
    assert (opt_out.phone, opt_out.source) == (DANA, TextOptOut.Source.STAFF)
    bad = staff.post("/admin/bookings/textoptout/add/", {"phone": "12345"})
    assert bad.status_code == 200 and "That phone number is not valid." in bad.content.decode()


def test_a_dispatcher_sees_the_opt_out_list_masked_and_adds_nothing(business):
    phone_opt_out(phone=DANA, source=TextOptOut.Source.CUSTOMER, note="Replied 'STOP'")
    dispatcher = get_user_model().objects.create_user("disp", password="pw-disp-123456", is_staff=True)
    dispatcher.groups.add(staff_groups()["Dispatcher"])
    staff = Client()
    staff.force_login(dispatcher)

    listing = staff.get("/admin/bookings/textoptout/").content.decode()
    assert "Customer replied STOP" in listing and "(416) 555-0123" not in listing
    page = staff.get(f"/admin/bookings/textoptout/{TextOptOut.objects.get().pk}/change/")
    assert page.status_code == 200 and "555" not in page.content.decode()
    assert staff.post("/admin/bookings/textoptout/add/", {"phone": "416-555-0199"}).status_code == 403


def test_a_dispatcher_reads_texts_from_customers_without_their_numbers(client, business):
    book(business)
    inbound(client, "call me back on 647-555-0142 please")
    dispatcher = get_user_model().objects.create_user("disp", password="pw-disp-123456", is_staff=True)
    dispatcher.groups.add(staff_groups()["Dispatcher"])
    staff = Client()
    staff.force_login(dispatcher)

    listing = staff.get("/admin/bookings/inboundtextmessage/").content.decode()
    page = staff.get(f"/admin/bookings/inboundtextmessage/{InboundTextMessage.objects.get().pk}/change/")
    for html in (listing, page.content.decode()):
        assert "Dana Smith" in html and "call me back on" in html
        assert "555-0142" not in html and "555-0123" not in html and "+1416" not in html
