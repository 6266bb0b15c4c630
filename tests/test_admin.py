"""The staff admin: it renders, finds bookings, and changes them only through the services."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.messages import ERROR, SUCCESS, WARNING, get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bookings.models import (
    ActorKind,
    Booking,
    BookingEvent,
    BookingStatus,
    BusinessHours,
    CalendarEvent,
    Channel,
    ClosedDay,
    Customer,
    Service,
    Technician,
    TextMessage,
    Trade,
    WorkingHours,
    YearlyCounter,
)
from bookings.selectors import available_slots, business_tz, local_today
from bookings.services import Actor, booking_cancel, booking_create
from chatdesk.backoffice.booking_lists import visit_span
from tests.conftest import MONDAY_NOON_UTC

pytestmark = pytest.mark.django_db

ALL_MODELS = [
    Trade,
    Service,
    Technician,
    WorkingHours,
    BusinessHours,
    ClosedDay,
    CalendarEvent,
    Customer,
    Booking,
    BookingEvent,
    YearlyCounter,
]
EDITABLE_MODELS = [Trade, Service, Technician, WorkingHours, BusinessHours, ClosedDay, CalendarEvent, Customer, Booking]


@pytest.fixture(autouse=True)
def monday_morning(time_machine):
    """Monday 2026-11-16 08:00 in Toronto, far from DST: the week ahead is bookable."""
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


def book(business, count: int, *, first_phone: int = 100, status: str = BookingStatus.CONFIRMED) -> list[Booking]:
    """`count` bookings through the service, alternating HVAC repair and drain cleaning."""
    made = []
    for i in range(count):
        service = business.repair if i % 2 == 0 else business.drain
        today = local_today()
        slot = available_slots(service=service, start_date=today, end_date=today + timedelta(days=30))[0]
        made.append(
            booking_create(
                service=service,
                start=slot.start,
                customer_name=f"Customer {first_phone + i}",
                customer_phone=f"416-555-{first_phone + i:04d}",
                address=f"{first_phone + i} Queen St W, Toronto",
                channel=Channel.CHAT,
                actor=Actor.customer(Channel.CHAT),
                status=status,
            )
        )
    return made


@pytest.fixture
def bookings(business) -> list[Booking]:
    return book(business, 4)


@pytest.fixture
def everything(business, bookings):
    """At least one row of every model, so every change page has something to show."""
    ClosedDay.objects.create(date=datetime(2026, 12, 25).date(), reason="Christmas Day")
    start = datetime.combine(local_today() + timedelta(days=20), time(8), tzinfo=business_tz())
    CalendarEvent.objects.create(
        technician=business.alice, title="Training", start=start, end=start + timedelta(hours=4)
    )
    return business


def changelist(model: type) -> str:
    return reverse(f"admin:bookings_{model._meta.model_name}_changelist")


def change_url(obj) -> str:
    return reverse(f"admin:bookings_{obj._meta.model_name}_change", args=[obj.pk])


def listed(response) -> list:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def message_texts(response, level: int) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request) if m.level == level]


def run_action(admin_client, action: str, *bookings: Booking):
    return admin_client.post(changelist(Booking), {"action": action, "_selected_action": [b.pk for b in bookings]})


# --- Every page renders --------------------------------------------------------------------


def test_every_bookings_model_is_registered():
    registered = {model for model in admin.site._registry if model._meta.app_label == "bookings"}
    assert registered == set(apps.get_app_config("bookings").get_models())


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_changelist_renders(admin_client, everything, model):
    assert admin_client.get(changelist(model)).status_code == 200


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_change_page_renders(admin_client, everything, model):
    obj = model.objects.first()
    assert obj is not None
    assert admin_client.get(change_url(obj)).status_code == 200


@pytest.mark.parametrize("model", EDITABLE_MODELS, ids=lambda m: m.__name__)
def test_add_page_renders(admin_client, everything, model):
    assert admin_client.get(reverse(f"admin:bookings_{model._meta.model_name}_add")).status_code == 200


def test_times_are_shown_in_the_business_time_zone(admin_client, bookings):
    response = admin_client.get(changelist(Booking))
    content = response.content.decode()
    for booking in bookings:
        assert visit_span(booking.start, booking.end) in content
    # Toronto in November is on standard time.
    assert visit_span(bookings[0].start, bookings[0].end).endswith("EST")


# --- Finding bookings ----------------------------------------------------------------------


def test_search_finds_a_booking_by_its_number(admin_client, bookings):
    target = bookings[2]
    assert listed(admin_client.get(changelist(Booking), {"q": target.number})) == [target]


def test_search_finds_a_booking_by_part_of_its_number_in_lower_case(admin_client, bookings):
    target = bookings[1]
    assert listed(admin_client.get(changelist(Booking), {"q": target.number.lower()[-6:]})) == [target]


def test_search_finds_a_booking_by_phone_typed_any_way(admin_client, bookings):
    target = bookings[3]  # customer phone 416-555-0103, stored as +14165550103
    for typed in ["(416) 555-0103", "416 555 0103", "+1 416-555-0103", "4165550103"]:
        assert listed(admin_client.get(changelist(Booking), {"q": typed})) == [target], typed


def test_search_finds_a_booking_by_customer_name(admin_client, bookings):
    assert listed(admin_client.get(changelist(Booking), {"q": "customer 101"})) == [bookings[1]]


def test_search_for_an_unknown_phone_finds_nothing(admin_client, bookings):
    assert listed(admin_client.get(changelist(Booking), {"q": "(416) 555-0999"})) == []


def test_status_filter(admin_client, business, bookings):
    booking_cancel(booking=bookings[0], actor=Actor.system())
    assert listed(admin_client.get(changelist(Booking), {"status__exact": "cancelled"})) == [bookings[0]]
    assert set(listed(admin_client.get(changelist(Booking), {"status__exact": "confirmed"}))) == set(bookings[1:])


def test_technician_filter(admin_client, business, bookings):
    carols = {b for b in bookings if b.technician_id == business.carol.pk}
    assert carols
    assert set(listed(admin_client.get(changelist(Booking), {"technician__id__exact": business.carol.pk}))) == carols


def test_trade_filter(admin_client, business, bookings):
    plumbing = set(listed(admin_client.get(changelist(Booking), {"service__trade__id__exact": business.plumbing.pk})))
    assert plumbing == {b for b in bookings if b.service_id == business.drain.pk}


def test_visit_day_filter_uses_the_business_calendar(admin_client, business, bookings):
    # Monday 08:00 with 2 h notice: the first slots are today, and nothing is in the past.
    today = {b for b in bookings if b.start.astimezone(business_tz()).date() == local_today()}
    assert today
    assert set(listed(admin_client.get(changelist(Booking), {"visit": "today"}))) == today
    assert set(listed(admin_client.get(changelist(Booking), {"visit": "upcoming"}))) == set(bookings)
    assert listed(admin_client.get(changelist(Booking), {"visit": "past"})) == []


def test_date_hierarchy_drills_down_by_business_day(admin_client, bookings):
    day = local_today()
    params = {"start__year": day.year, "start__month": day.month, "start__day": day.day}
    expected = {b for b in bookings if b.start.astimezone(business_tz()).date() == day}
    assert set(listed(admin_client.get(changelist(Booking), params))) == expected


def test_customer_link_lists_that_customers_bookings(admin_client, bookings):
    customer = bookings[0].customer
    url = changelist(Booking) + f"?customer__id__exact={customer.pk}"
    assert listed(admin_client.get(url)) == [bookings[0]]
    assert url in admin_client.get(change_url(customer)).content.decode()


@pytest.mark.parametrize("model", [Booking, BookingEvent, Customer], ids=lambda m: m.__name__)
def test_changelist_queries_do_not_grow_with_the_number_of_bookings(admin_client, business, model):
    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            response = admin_client.get(changelist(model))
        assert response.status_code == 200
        return len(context)

    book(business, 3)
    admin_client.get(changelist(model))  # warm process-wide caches (content types)
    with_3 = queries()
    book(business, 27, first_phone=200)
    with_30 = queries()
    assert Booking.objects.count() == 30
    assert with_30 == with_3


# --- Actions go through the services ----------------------------------------------------------


def test_cancel_action_cancels_through_the_service_as_the_staff_user(admin_client, admin_user, bookings):
    target = bookings[0]
    response = run_action(admin_client, "cancel", target)
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.status == BookingStatus.CANCELLED
    assert target.cancelled_at is not None
    event = target.events.last()
    assert (event.kind, event.actor_kind, event.actor_channel) == ("cancelled", ActorKind.STAFF, Channel.STAFF)
    assert event.actor_user == admin_user
    assert message_texts(response, SUCCESS) == ["Cancelled 1 booking(s)."]
    # The other bookings were not selected and are untouched.
    assert Booking.objects.filter(status=BookingStatus.CONFIRMED).count() == len(bookings) - 1


def test_confirming_a_cancelled_booking_shows_an_error_and_changes_nothing(admin_client, bookings):
    target = booking_cancel(booking=bookings[0], actor=Actor.system())
    events_before = target.events.count()
    response = run_action(admin_client, "confirm", target)
    assert response.status_code == 302
    assert message_texts(response, ERROR) == [f"Booking {target.number} is cancelled and cannot be confirmed."]
    assert message_texts(response, SUCCESS) == []
    target.refresh_from_db()
    assert target.status == BookingStatus.CANCELLED
    assert target.events.count() == events_before


def test_confirm_action_confirms_pending_bookings(admin_client, business):
    pending = book(business, 2, status=BookingStatus.PENDING)
    response = run_action(admin_client, "confirm", *pending)
    assert message_texts(response, SUCCESS) == ["Confirmed 2 booking(s)."]
    assert set(Booking.objects.values_list("status", flat=True)) == {BookingStatus.CONFIRMED}
    assert BookingEvent.objects.filter(kind="confirmed", actor_kind=ActorKind.STAFF).count() == 2


def test_an_action_reports_each_refusal_and_still_applies_to_the_rest(admin_client, bookings):
    cancelled = booking_cancel(booking=bookings[0], actor=Actor.system())
    response = run_action(admin_client, "cancel", cancelled, bookings[1])
    assert message_texts(response, ERROR) == [f"Booking {cancelled.number} is cancelled and cannot be cancelled."]
    assert message_texts(response, SUCCESS) == ["Cancelled 1 booking(s)."]
    bookings[1].refresh_from_db()
    assert bookings[1].status == BookingStatus.CANCELLED


def test_mark_completed_refuses_a_visit_that_has_not_started(admin_client, bookings):
    target = bookings[0]
    response = run_action(admin_client, "mark_completed", target)
    assert message_texts(response, ERROR) == [f"{target.number}: A visit cannot be completed before it starts."]
    target.refresh_from_db()
    assert target.status == BookingStatus.CONFIRMED


def test_mark_completed_after_the_visit(admin_client, admin_user, bookings, time_machine):
    target = bookings[0]
    time_machine.move_to(target.end + timedelta(hours=1), tick=False)
    response = run_action(admin_client, "mark_completed", target)
    assert message_texts(response, SUCCESS) == ["Marked completed: 1 booking(s)."]
    target.refresh_from_db()
    assert target.status == BookingStatus.COMPLETED
    assert target.events.last().actor_user == admin_user


def test_mark_no_show_after_the_visit_started(admin_client, bookings, time_machine):
    target = bookings[0]
    time_machine.move_to(target.start + timedelta(minutes=30), tick=False)
    run_action(admin_client, "mark_no_show", target)
    target.refresh_from_db()
    assert target.status == BookingStatus.NO_SHOW
    assert target.events.last().kind == "no_show"


def test_actions_run_from_a_bookings_own_page(admin_client, admin_user, bookings):
    target = bookings[0]
    response = admin_client.post(
        change_url(target), {"CHANGE_FORM-action": "cancel", "_selected_action": target.pk, "index": 0}
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.status == BookingStatus.CANCELLED
    assert target.events.last().actor_user == admin_user


def test_bookings_cannot_be_deleted_in_the_admin(admin_client, bookings):
    response = admin_client.get(changelist(Booking))
    assert "delete_selected" not in dict(response.context["action_form"].fields["action"].choices)
    assert admin_client.get(reverse("admin:bookings_booking_delete", args=[bookings[0].pk])).status_code == 403


# --- The change form --------------------------------------------------------------------------


def change_form_post(booking: Booking, **fields) -> dict:
    """What the browser posts for a booking's page: its editable fields and the inline's forms."""
    events = booking.events.count()
    texts = booking.text_messages.count()
    return {
        "address": booking.address,
        "notes": booking.notes,
        "events-TOTAL_FORMS": events,
        "events-INITIAL_FORMS": events,
        "events-MIN_NUM_FORMS": 0,
        "events-MAX_NUM_FORMS": 1000,
        "text_messages-TOTAL_FORMS": texts,
        "text_messages-INITIAL_FORMS": texts,
        "text_messages-MIN_NUM_FORMS": 0,
        "text_messages-MAX_NUM_FORMS": 1000,
        "_save": "Save",
        **fields,
    }


def test_change_form_saves_notes_and_address_but_not_what_the_services_own(admin_client, business, bookings):
    target = bookings[0]
    original = (target.status, target.technician_id, target.start, target.customer_id, target.estimated_price_min)
    data = change_form_post(
        target,
        notes="Gate code 4321",
        address="14 Queen St W, Toronto",
        status="cancelled",
        technician=business.carol.pk,
        start_0="2026-11-20",
        start_1="09:00",
        estimated_price_min="1",
    )
    response = admin_client.post(change_url(target), data)
    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.notes, target.address) == ("Gate code 4321", "14 Queen St W, Toronto")
    assert (
        target.status,
        target.technician_id,
        target.start,
        target.customer_id,
        target.estimated_price_min,
    ) == original


def test_change_form_shows_the_service_owned_fields_read_only(admin_client, bookings):
    response = admin_client.get(change_url(bookings[0]))
    form_fields = set(response.context["adminform"].form.fields)
    assert form_fields == {"address", "notes"}


def test_booking_event_inline_is_read_only(admin_client, bookings):
    target = bookings[0]
    response = admin_client.get(change_url(target))
    inline, texts = response.context["inline_admin_formsets"]
    assert inline.opts.model is BookingEvent
    assert texts.opts.model is TextMessage
    assert not (texts.has_add_permission or texts.has_change_permission or texts.has_delete_permission)
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission
    assert len(inline.formset.forms) == target.events.count() == 1


def test_booking_events_cannot_be_added_changed_or_deleted(admin_client, bookings):
    event = bookings[0].events.get()
    assert admin_client.get(reverse("admin:bookings_bookingevent_add")).status_code == 403
    assert admin_client.post(change_url(event), {"note": "edited"}).status_code == 403
    assert admin_client.post(reverse("admin:bookings_bookingevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.note == ""


# --- Booking from the admin ----------------------------------------------------------------------


def add_booking(admin_client, business, **fields):
    data = {
        "service": business.repair.pk,
        "start_0": "2026-11-17",  # Tuesday
        "start_1": "10:00",
        "technician": "",
        "status": "confirmed",
        "customer_name": "Dana Lee",
        "customer_phone": "(416) 555-0177",
        "customer_email": "dana@example.com",
        "address": "9 Bay St, Toronto",
        "notes": "Furnace makes a rattling noise",
        **fields,
    }
    return admin_client.post(reverse("admin:bookings_booking_add"), data)


def test_staff_booking_in_the_admin_goes_through_booking_create(
    admin_client, admin_user, business, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = add_booking(admin_client, business)
    assert response.status_code == 302
    booking = Booking.objects.get()
    assert booking.number.startswith("BK-2026-")
    assert booking.start == datetime(2026, 11, 17, 10, 0, tzinfo=business_tz())
    assert booking.occupied_start == booking.start - timedelta(minutes=30)
    assert (booking.channel, booking.status) == (Channel.STAFF, BookingStatus.CONFIRMED)
    assert booking.technician in (business.alice, business.bob)
    assert booking.customer.phone == "+14165550177"
    event = booking.events.get()
    assert (event.kind, event.actor_kind, event.actor_user) == ("created", ActorKind.STAFF, admin_user)
    assert [m.to for m in mailoutbox] == [["dana@example.com"]]


def test_staff_can_pick_the_technician(admin_client, business):
    add_booking(admin_client, business, technician=business.bob.pk)
    assert Booking.objects.get().technician == business.bob


def test_an_unavailable_time_is_a_form_error_and_books_nothing(
    admin_client, business, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = add_booking(admin_client, business, start_1="03:00")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["__all__"] == [
        "That time is not available. Please pick one of the offered slots."
    ]
    assert not Booking.objects.exists()
    assert not Customer.objects.exists()
    assert mailoutbox == []


def test_a_taken_slot_is_a_form_error(admin_client, business):
    add_booking(admin_client, business, technician=business.alice.pk)
    response = add_booking(admin_client, business, technician=business.alice.pk, customer_phone="416-555-0178")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Booking.objects.count() == 1


def test_service_errors_land_on_the_field_they_concern(admin_client, business):
    response = add_booking(admin_client, business, customer_phone="12")
    assert "customer_phone" in response.context["adminform"].form.errors
    response = add_booking(admin_client, business, technician=business.carol.pk)
    assert response.context["adminform"].form.errors["technician"] == ["That technician does not do HVAC work."]
    response = add_booking(admin_client, business, start_0="2026-11-16", start_1="08:30")
    assert "start" in response.context["adminform"].form.errors
    assert not Booking.objects.exists()


# --- Other admins ----------------------------------------------------------------------------------


def test_customer_phone_is_stored_normalized(admin_client):
    data = {"name": "Eve Stone", "phone": "(647) 555-0123", "email": "", "address": ""}
    assert admin_client.post(reverse("admin:bookings_customer_add"), data).status_code == 302
    assert Customer.objects.get().phone == "+16475550123"


def test_customer_with_an_invalid_phone_is_refused(admin_client):
    data = {"name": "Eve Stone", "phone": "555", "email": "", "address": ""}
    response = admin_client.post(reverse("admin:bookings_customer_add"), data)
    assert response.status_code == 200
    assert "phone" in response.context["adminform"].form.errors
    assert not Customer.objects.exists()


def test_customer_search_by_phone_typed_any_way(admin_client, bookings):
    assert listed(admin_client.get(changelist(Customer), {"q": "(416) 555-0102"})) == [bookings[2].customer]


def test_time_off_over_a_booking_warns_staff_to_move_it(admin_client, bookings):
    target = bookings[0]
    start = target.start.astimezone(business_tz())
    data = {
        "technician": target.technician_id,
        "kind": "time_off",
        "title": "Dentist",
        "start_0": start.date().isoformat(),
        "start_1": "00:00",
        "end_0": (start.date() + timedelta(days=1)).isoformat(),
        "end_1": "00:00",
    }
    response = admin_client.post(reverse("admin:bookings_calendarevent_add"), data)
    assert response.status_code == 302
    (warning,) = message_texts(response, WARNING)
    assert target.number in warning


def test_technician_page_edits_working_hours_inline(admin_client, business):
    response = admin_client.get(change_url(business.alice))
    (inline,) = response.context["inline_admin_formsets"]
    assert inline.opts.model is WorkingHours
    assert len(inline.formset.forms) == 5
    # Internal fields are for staff: they are on the page.
    assert "1 Secret Lane" in response.content.decode()


def test_technician_changelist_lists_trades(admin_client, business):
    Technician.objects.filter(pk=business.bob.pk).get().trades.add(business.plumbing)
    content = admin_client.get(changelist(Technician)).content.decode()
    assert "HVAC, Plumbing" in content


def test_service_changelist_shows_price_ranges(admin_client, business):
    content = admin_client.get(changelist(Service)).content.decode()
    assert Service.objects.get(slug="hvac-repair").price_display in content


# --- Contact details: searching and the history follow the one policy -------------------------


def _staff_client(*permissions: str, username: str = "desk"):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tests.staff import grant

    user = get_user_model().objects.create_user(username, password="pw-desk-123!", is_staff=True)
    client = Client()
    client.force_login(grant(user, *permissions))
    return client


def test_staff_without_contact_details_cannot_find_a_booking_or_customer_by_phone_or_email(bookings):
    # A hit would confirm whose number it is, which the masked columns hide.
    target = bookings[3]
    Customer.objects.filter(pk=target.customer_id).update(email="dana@example.com")
    staff = _staff_client("bookings.view_booking", "bookings.view_customer")
    for typed in ["(416) 555-0103", "+14165550103", "5550103"]:
        assert listed(staff.get(changelist(Booking), {"q": typed})) == [], typed
        assert listed(staff.get(changelist(Customer), {"q": typed})) == [], typed
    assert listed(staff.get(changelist(Customer), {"q": "dana@example"})) == []
    # Names and booking numbers still find them.
    assert listed(staff.get(changelist(Booking), {"q": "customer 103"})) == [target]
    assert listed(staff.get(changelist(Booking), {"q": target.number})) == [target]


def test_staff_with_contact_details_find_them_by_phone_and_email(bookings):
    target = bookings[3]
    Customer.objects.filter(pk=target.customer_id).update(email="dana@example.com")
    staff = _staff_client("bookings.view_booking", "bookings.view_customer", "chatdesk.view_customer_pii")
    assert listed(staff.get(changelist(Booking), {"q": "(416) 555-0103"})) == [target]
    assert [c.pk for c in listed(staff.get(changelist(Customer), {"q": "dana@example"}))] == [target.customer_id]


def test_a_bookings_history_masks_contact_details_typed_in_notes_for_staff_without_them(bookings):
    target = bookings[0]
    booking_cancel(booking=target, actor=Actor.customer(Channel.CHAT), reason="Call me back on 416 555 0177 instead")
    assert "0177" in BookingEvent.objects.filter(booking=target).latest("pk").note
    masked = _staff_client("bookings.view_booking").get(change_url(target)).content.decode()
    # Nowhere on the page: not the booking's cancellation reason, its history, its provenance.
    assert "0177" not in masked
    assert "Call me back on" in masked
    clear = _staff_client("bookings.view_booking", "chatdesk.view_customer_pii", username="owner")
    assert "416 555 0177" in clear.get(change_url(target)).content.decode()
