"""The staff policy's parts (chatdesk.conversations.access, backoffice.permissions) and the one masking.

Who gets through each door is tests/test_permission_matrix.py; here are the rules it is
built from, case by case.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from bookings.models import Customer
from chatdesk.backoffice.permissions import StaffPolicy
from chatdesk.conversations.access import VIEW_BOOKINGS, Visibility
from chatdesk.conversations.pii import MASK, redact
from tests.staff import grant, staff_groups

pytestmark = pytest.mark.django_db

RECORD = {
    "customer": {"name": "Dana Whitfield", "phone": "+14165550142", "email": "dana@example.com"},
    "address": "12 Elm Street",
    "notes": "Gate code 1234; call 416-555-0142 first",
    "estimated_price_min": "12000.00",
    "start": "2026-11-17T10:00:00-05:00",
    "cost_usd": "0.001234",
    "tokens": {"input_tokens": 1000},
    "events": [{"note": "", "changes": {"status": ["pending", "confirmed"], "address": "12 Elm Street"}}],
    "result": None,
}


def test_with_both_permissions_nothing_is_hidden():
    assert redact(RECORD, pii=True, costs=True) == RECORD


def test_without_either_contact_details_are_masked_and_costs_null():
    shown = redact(RECORD, pii=False, costs=False)
    assert shown["customer"] == {"name": "Dana Whitfield", "phone": MASK, "email": MASK}
    assert shown["address"] == MASK
    assert shown["notes"] == f"Gate code 1234; call {MASK} first"
    assert shown["events"] == [{"note": "", "changes": {"status": ["pending", "confirmed"], "address": MASK}}]
    assert (shown["cost_usd"], shown["tokens"]) == (None, None)
    # Prices, dates and empty values are not contact details.
    assert shown["estimated_price_min"] == "12000.00"
    assert shown["start"] == RECORD["start"]
    assert shown["result"] is None


def test_costs_without_pii_and_pii_without_costs():
    costs_only = redact(RECORD, pii=False, costs=True)
    assert costs_only["cost_usd"] == "0.001234" and costs_only["customer"]["phone"] == MASK
    pii_only = redact(RECORD, pii=True, costs=False)
    assert pii_only["cost_usd"] is None and pii_only["customer"]["phone"] == "+14165550142"
    assert pii_only["notes"] == RECORD["notes"]


def test_visibility_follows_the_permissions(db):
    users = get_user_model().objects
    staff = users.create_user("viewer", is_staff=True)
    assert Visibility.of(staff) == Visibility(pii=False, costs=False)
    assert Visibility.of(grant(staff, "chatdesk.view_costs")) == Visibility(pii=False, costs=True)
    # A permission held by an account that is no longer staff opens no door.
    former = grant(users.create_user("former", is_staff=False), "chatdesk.view_customer_pii")
    assert Visibility.of(former) == Visibility(pii=False, costs=False)
    assert Visibility.of(users.create_superuser("root")) == Visibility(pii=True, costs=True)


class Undeclared(APIView):
    """A view that serves PUT but forgot to say what it needs."""

    permission_classes = [StaffPolicy]
    required_permissions = {"GET": VIEW_BOOKINGS}

    def get(self, request):
        return Response({})

    def put(self, request):
        return Response({"changed": True})


def test_a_method_served_without_a_declared_permission_is_refused_even_to_a_superuser():
    root = get_user_model().objects.create_superuser("root")
    factory = APIRequestFactory()
    request = factory.put("/x")
    force_authenticate(request, user=root)
    assert Undeclared.as_view()(request).status_code == 403
    request = factory.get("/x")
    force_authenticate(request, user=root)
    assert Undeclared.as_view()(request).status_code == 200


def test_a_method_no_view_serves_is_a_405_for_everyone_and_reveals_nothing(business):
    # The route's methods are public in the OpenAPI schema, so the 405 comes before the
    # permission check (bookings.api_base.MethodFirstAPIView), for staff and anyone else.
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root"))
    for client in (staff, Client()):
        answer = client.put("/api/v1/bookings/")
        assert answer.status_code == 405
        assert answer.json()["error"] == "method_not_allowed"
        assert "results" not in answer.json()


def test_the_customer_form_leaves_contact_details_out_without_pii(business):
    customer = Customer.objects.create(name="Dana Whitfield", phone="+14165550142", email="dana@example.com")
    dispatcher = get_user_model().objects.create_user("dispatch", is_staff=True)
    dispatcher.groups.add(staff_groups()["Dispatcher"])
    client = Client()
    client.force_login(dispatcher)
    page = client.get(reverse("admin:bookings_customer_change", args=[customer.pk]))
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields) == {"name"}
    # Saving the form leaves the details it did not show alone.
    assert client.post(page.request["PATH_INFO"], {"name": "Dana W."}).status_code == 302
    customer.refresh_from_db()
    assert (customer.name, customer.phone, customer.email) == ("Dana W.", "+14165550142", "dana@example.com")
