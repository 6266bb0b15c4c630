"""Staff booking API (/api/v1/bookings/): staff only, every change through bookings.services.

"Now" is Monday 2026-11-16 08:00 in Toronto; the usual visit is an HVAC Repair on Tuesday
at 10:00, which alice and bob are both free for (alice first).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from bookings.models import ActorKind, Booking, BookingEvent
from chatdesk.conversations.access import VIEW_PII
from tests.conftest import MONDAY_NOON_UTC
from tests.staff import grant
from tests.test_booking_services import TUESDAY, WEDNESDAY, at, book

pytestmark = pytest.mark.django_db

URL = "/api/v1/bookings/"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


@pytest.fixture
def sam(db):
    """Sam works the dispatch desk (staff, not a superuser), allowed to book and see customers' details.

    Who may do what at each route is tests/test_permission_matrix.py.
    """
    user = get_user_model().objects.create_user("sam", is_staff=True)
    return grant(user, "bookings.view_booking", "bookings.add_booking", "bookings.change_booking", VIEW_PII)


@pytest.fixture
def staff(sam) -> APIClient:
    client = APIClient()
    client.force_login(sam)
    return client


def new_booking(**overrides) -> dict:
    data = {
        "service": "hvac-repair",
        "start": "2026-11-17T10:00:00-05:00",
        "customer_name": "Dana Smith",
        "customer_phone": "(416) 555-0123",
        "customer_email": "dana@example.com",
        "address": "12 Elm St, Toronto",
        "notes": "Furnace bangs at night.",
    }
    data.update(overrides)
    return data


# --- who may use it ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", URL),
        ("post", URL),
        ("get", f"{URL}BK-2026-000001"),
        ("post", f"{URL}BK-2026-000001/cancel"),
        ("post", f"{URL}BK-2026-000001/reschedule"),
        ("post", f"{URL}BK-2026-000001/confirm"),
    ],
)
def test_anonymous_visitors_are_refused(business, method, path):
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "not_authenticated"


def test_logged_in_customers_who_are_not_staff_are_refused(business):
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("carl"))
    assert client.get(URL).status_code == 403
    assert client.post(URL, new_booking(), format="json").status_code == 403
    assert Booking.objects.count() == 0


def test_browser_requests_need_the_csrf_token(business, sam):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(sam)
    refused = browser.post(URL, new_booking(), format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["message"]
    assert browser.get(URL).status_code == 200  # reading needs no token

    browser.get("/admin/password_change/")  # a staff page with a form sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    assert browser.post(URL, new_booking(), format="json", HTTP_X_CSRFTOKEN=token).status_code == 201


# --- creating ------------------------------------------------------------------------------------


def test_staff_book_a_visit_through_the_service(business, staff, sam):
    response = staff.post(URL, new_booking(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"].startswith("BK-2026-")
    assert body["status"] == "confirmed"
    assert body["start"] == "2026-11-17T10:00:00-05:00"
    assert body["end"] == "2026-11-17T12:00:00-05:00"
    assert body["technician"] == {"id": business.alice.id, "name": "Alice Tech"}
    assert body["customer"]["phone"] == "+14165550123"
    assert body["service"] == {"slug": "hvac-repair", "name": "HVAC Repair"}
    assert body["channel"] == "staff"
    (event,) = body["events"]
    assert (event["kind"], event["actor_kind"], event["actor_user"]) == ("created", "staff", "sam")
    booking = Booking.objects.get(number=body["number"])
    assert booking.events.get().actor_user == sam


def test_staff_can_pick_the_technician_and_book_as_pending(business, staff):
    body = staff.post(URL, new_booking(technician=business.bob.id, status="pending"), format="json").json()
    assert body["technician"]["id"] == business.bob.id
    assert body["status"] == "pending"


def test_staff_never_see_a_technician_s_private_details(business, staff):
    body = staff.post(URL, new_booking(), format="json").json()
    text = str(body)
    assert "1 Secret Lane" not in text
    assert "41.00" not in text


def test_a_taken_slot_is_a_conflict(business, staff):
    book(business, technician=business.alice)
    response = staff.post(URL, new_booking(technician=business.alice.id), format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "slot_unavailable"


def test_a_new_booking_cannot_start_cancelled(business, staff):
    response = staff.post(URL, new_booking(status="cancelled"), format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"status": ["A new booking is pending or confirmed."]}


def test_invalid_input_names_each_field(business, staff):
    response = staff.post(
        URL,
        new_booking(service="roof-repair", start="tuesday at ten", customer_name="", customer_email="dana@"),
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_input"
    assert set(body["fields"]) == {"service", "start", "customer_name", "customer_email"}


def test_business_rules_come_back_as_a_400_on_the_field(business, staff):
    response = staff.post(URL, new_booking(start="2026-11-16T07:00:00-05:00"), format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_input", "message": "That time is in the past.", "field": "start"}


# --- reading -------------------------------------------------------------------------------------


def test_a_booking_by_number_with_its_audit_trail(business, staff):
    booking = book(business)
    body = staff.get(f"{URL}{booking.number}").json()
    assert body["number"] == booking.number
    assert body["customer"]["name"] == "Dana Smith"
    assert [e["kind"] for e in body["events"]] == ["created"]
    assert body["events"][0]["actor_kind"] == "customer"
    assert staff.get(f"{URL}{booking.number.lower()}").status_code == 200


def test_an_unknown_number_is_a_404(business, staff):
    response = staff.get(f"{URL}BK-2026-999999")
    assert response.status_code == 404
    assert response.json()["error"] == "booking_not_found"


@pytest.fixture
def week(business):
    """Tuesday: repair 10:00 (alice), drain 13:00 (carol, pending). Wednesday: repair 10:00 (bob), cancelled one."""
    made = {
        "tue_repair": book(business),
        "tue_drain": book(business, service=business.drain, start=at(TUESDAY, "13:00"), status="pending"),
        "wed_repair": book(business, start=at(WEDNESDAY, "10:00"), technician=business.bob),
        "wed_cancelled": book(business, start=at(WEDNESDAY, "13:00"), technician=business.alice),
    }
    from bookings.services import Actor, booking_cancel

    booking_cancel(booking=made["wed_cancelled"], actor=Actor.system("test"), reason="No longer needed")
    return made


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["number"] for row in response.json()["results"]]


def test_the_list_is_soonest_first_and_paginated(week, staff):
    body = staff.get(URL).json()
    assert body["count"] == 4
    assert [r["number"] for r in body["results"]] == [
        week[k].number for k in ("tue_repair", "tue_drain", "wed_repair", "wed_cancelled")
    ]
    page = staff.get(URL, {"page_size": 3, "page": 2}).json()
    assert [r["number"] for r in page["results"]] == [week["wed_cancelled"].number]
    assert page["previous"] is not None


def test_the_list_filters_by_day_status_technician_and_service(week, staff):
    assert numbers(staff.get(URL, {"date_from": "2026-11-18"})) == [
        week["wed_repair"].number,
        week["wed_cancelled"].number,
    ]
    assert numbers(staff.get(URL, {"date_to": "2026-11-17"})) == [week["tue_repair"].number, week["tue_drain"].number]
    assert numbers(staff.get(URL, {"status": "pending"})) == [week["tue_drain"].number]
    assert numbers(staff.get(URL, {"status": ["pending", "cancelled"]})) == [
        week["tue_drain"].number,
        week["wed_cancelled"].number,
    ]
    assert numbers(staff.get(URL, {"technician": week["wed_repair"].technician_id})) == [week["wed_repair"].number]
    assert numbers(staff.get(URL, {"service": "drain-cleaning"})) == [week["tue_drain"].number]
    assert numbers(staff.get(URL, {"date_from": "2026-11-18", "status": "confirmed"})) == [week["wed_repair"].number]


def test_bad_filters_are_a_400(business, staff):
    response = staff.get(URL, {"date_from": "2026-11-18", "date_to": "2026-11-17", "status": "lost"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"status"}
    response = staff.get(URL, {"date_from": "2026-11-18", "date_to": "2026-11-17"})
    assert set(response.json()["fields"]) == {"date_to"}


def test_the_list_takes_the_same_queries_for_one_or_many_bookings(business, staff, django_assert_num_queries):
    from bookings.selectors import available_slots

    book(business)
    # Session, user, the user's and their groups' permissions (the staff policy), count, page
    # (with service, technician and customer joined in).
    with django_assert_num_queries(6):
        assert staff.get(URL).status_code == 200
    for day in (WEDNESDAY, TUESDAY.replace(day=19), TUESDAY.replace(day=20)):
        for service in (business.drain, business.repair):
            for _ in range(2):
                slot = available_slots(service=service, start_date=day, now=MONDAY_NOON_UTC)[0]
                book(business, service=service, start=slot.start, customer_phone="416-555-0199")
    assert Booking.objects.count() > 10
    with django_assert_num_queries(6):
        assert staff.get(URL).status_code == 200


# --- changing ------------------------------------------------------------------------------------


def test_staff_reschedule_through_the_service(business, staff, sam):
    booking = book(business)
    response = staff.post(
        f"{URL}{booking.number}/reschedule",
        {"start": "2026-11-18T10:00:00-05:00", "reason": "Customer asked"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["start"] == "2026-11-18T10:00:00-05:00"
    assert body["number"] == booking.number
    event = BookingEvent.objects.get(booking=booking, kind="rescheduled")
    assert (event.actor_kind, event.actor_user, event.note) == (ActorKind.STAFF, sam, "Customer asked")
    assert body["events"][-1]["actor_user"] == "sam"


def test_rescheduling_onto_a_taken_slot_is_a_conflict(business, staff):
    booking = book(business, technician=business.alice)
    book(business, start=at(WEDNESDAY, "10:00"), technician=business.bob)
    book(business, start=at(WEDNESDAY, "10:00"), technician=business.alice)
    response = staff.post(f"{URL}{booking.number}/reschedule", {"start": "2026-11-18T10:00:00-05:00"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "slot_unavailable"


def test_staff_cancel_with_a_reason(business, staff, sam):
    booking = book(business)
    assert staff.post(f"{URL}{booking.number}/cancel", {}, format="json").json()["fields"] == {
        "reason": ["This field is required."]
    }
    response = staff.post(f"{URL}{booking.number}/cancel", {"reason": "Customer found another company"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancellation_reason"] == "Customer found another company"
    event = BookingEvent.objects.get(booking=booking, kind="cancelled")
    assert (event.actor_kind, event.actor_user) == (ActorKind.STAFF, sam)
    again = staff.post(f"{URL}{booking.number}/cancel", {"reason": "again"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"] == "invalid_transition"


def test_staff_confirm_a_pending_booking(business, staff, sam):
    booking = book(business, status="pending")
    response = staff.post(f"{URL}{booking.number}/confirm")
    assert response.status_code == 200
    assert response.json()["status"] == "confirmed"
    assert BookingEvent.objects.get(booking=booking, kind="confirmed").actor_user == sam
    assert staff.post(f"{URL}{booking.number}/confirm").status_code == 409


def test_complete_and_no_show_only_once_the_visit_started(business, staff, time_machine):
    done = book(business)
    missed = book(business, start=at(TUESDAY, "10:00"), technician=business.bob)
    assert staff.post(f"{URL}{done.number}/complete").status_code == 409
    time_machine.move_to(at(TUESDAY, "12:30"), tick=False)
    assert staff.post(f"{URL}{done.number}/complete").json()["status"] == "completed"
    assert staff.post(f"{URL}{missed.number}/no-show").json()["status"] == "no_show"
    assert BookingEvent.objects.get(booking=missed, kind="no_show").actor_kind == ActorKind.STAFF


def test_actions_on_an_unknown_booking_are_a_404(business, staff):
    for action in ("reschedule", "cancel", "confirm", "complete", "no-show"):
        response = staff.post(f"{URL}BK-2026-999999/{action}", {"reason": "x"}, format="json")
        assert response.status_code == 404, action


# --- documentation -------------------------------------------------------------------------------


def test_the_schema_documents_every_endpoint(staff):
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert set(paths["/api/v1/bookings/"]) >= {"get", "post"}
    assert "get" in paths["/api/v1/bookings/{number}"]
    for action in ("reschedule", "cancel", "confirm", "complete", "no-show"):
        assert "post" in paths[f"/api/v1/bookings/{{number}}/{action}"], action
    listing = paths["/api/v1/bookings/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "date_from",
        "date_to",
        "status",
        "technician",
        "service",
        "page",
    }
    assert "409" in paths["/api/v1/bookings/"]["post"]["responses"]
    assert "409" in paths["/api/v1/bookings/{number}/reschedule"]["post"]["responses"]
