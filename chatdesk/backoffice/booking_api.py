"""Staff booking API (/api/v1/bookings/): thin views over bookings.services.

A staff door, so the staff permission policy (chatdesk.conversations.access) decides: reading
needs bookings.view_booking, booking a visit bookings.add_booking, and every change to a
booking (move, cancel, confirm, complete, no-show) bookings.change_booking, as in the admin.
Without chatdesk.view_customer_pii the customer's phone, email and address, and contact
details in notes and the audit trail, come back masked, as the admin masks them.

Every change goes through the same service functions as the admin, the assistant's tools
and the commands, with Actor.staff(request.user), so the audit trail names the staff
member. Domain errors (SlotUnavailable -> 409, InvalidTransition -> 409, ...) are mapped
to HTTP once, in chatdesk.api_errors.

Authentication is the admin's session; DRF's SessionAuthentication checks CSRF for
logged-in users, which is what protects these endpoints from other sites.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from bookings import identifiers
from bookings.api_base import MethodFirstAPIView
from bookings.errors import BookingNotFound
from bookings.models import Booking, BookingEvent, Channel
from bookings.selectors import business_tz
from bookings.serializers import (
    BookingCancelIn,
    BookingCreateIn,
    BookingDetailOut,
    BookingFilterIn,
    BookingOut,
    BookingRescheduleIn,
    ErrorOut,
)
from bookings.services import (
    Actor,
    booking_cancel,
    booking_complete,
    booking_confirm,
    booking_create,
    booking_mark_no_show,
    booking_reschedule,
)
from chatdesk.backoffice.permissions import StaffPolicy
from chatdesk.conversations import access

TAG = "bookings"
ERRORS = {
    400: OpenApiResponse(ErrorOut, description="Invalid input; `fields` names each field's problems."),
    403: OpenApiResponse(
        ErrorOut,
        description="Not logged in as staff, without the permission this needs, or the CSRF token is missing.",
    ),
}
NOT_FOUND = {404: OpenApiResponse(ErrorOut, description="No booking with that number.")}
# The `ident` path converter's shape (bookings.identifiers): anything else matches no route, a 404.
NUMBER = OpenApiParameter(
    "number",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern=f"^{identifiers.PATTERN}$",
    description="The booking number, e.g. BK-2026-000123.",
)
CONFLICT = {409: OpenApiResponse(ErrorOut, description="The slot is taken, or the booking's status forbids it.")}
# Rules a schema cannot state, answered 400 with `field`: the start in the past, inside the
# service's notice or beyond the booking horizon, a technician who does not do that trade...
BOOKING_RULES = {
    400: OpenApiResponse(
        ErrorOut,
        description="Invalid input (`fields` names each field's problems), or a booking rule the schema cannot "
        "state (`field` names it): a start in the past, inside the service's notice or beyond the booking horizon; "
        "an unknown or inactive service; a technician who is unknown or does not do that trade.",
    )
}


def booking_list(*, filters: dict) -> QuerySet[Booking]:
    """Bookings for the staff list, soonest first, with what the list shows in one query."""
    bookings = Booking.objects.select_related("service", "technician", "customer").order_by("start", "pk")
    tz = business_tz()
    if filters.get("date_from"):
        bookings = bookings.filter(start__gte=datetime.combine(filters["date_from"], time.min, tzinfo=tz))
    if filters.get("date_to"):
        day_after = filters["date_to"] + timedelta(days=1)
        bookings = bookings.filter(start__lt=datetime.combine(day_after, time.min, tzinfo=tz))
    if filters.get("status"):
        bookings = bookings.filter(status__in=filters["status"])
    if filters.get("technician"):
        bookings = bookings.filter(technician_id=filters["technician"])
    if filters.get("service"):
        bookings = bookings.filter(service__slug=filters["service"])
    return bookings


def booking_by_number(number: str) -> Booking:
    booking = (
        Booking.objects.select_related("service", "technician", "customer")
        .prefetch_related(Prefetch("events", queryset=BookingEvent.objects.select_related("actor_user")))
        .filter(number=number.strip().upper())
        .first()
    )
    if booking is None:
        raise BookingNotFound(f"No booking {number}.")
    return booking


class PageIn(serializers.Serializer):
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)


class BookingPagination(PageNumberPagination):
    """Pages of bookings; a page or page_size that is not a number in range is a 400.

    DRF answers ?page=0 with 404 and quietly replaces a bad page_size by the default: the
    schema gives both as integers with their ranges, so anything else is invalid input.
    A page past the last one is still a 404: the request is well formed, the page is not there.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[override]
        params = request.query_params
        values = {name: params[name] for name in ("page", "page_size") if name in params}
        page = PageIn(data=values)
        if not page.is_valid():
            raise ValidationError(page.errors)
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        described = {
            "count": "Bookings matching the filters, on all pages.",
            "next": "The next page's URL; null on the last page.",
            "previous": "The previous page's URL; null on the first page.",
            "results": "This page's bookings, soonest first.",
        }
        for name, text in described.items():
            paginated["properties"][name]["description"] = text
        return paginated

    def get_schema_operation_parameters(self, view):  # type: ignore[override]
        return [
            {
                "name": "page",
                "required": False,
                "in": "query",
                "description": "Page number, from 1. A page past the last one answers 404.",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": "page_size",
                "required": False,
                "in": "query",
                "description": f"Bookings per page, 1 to {self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]


class StaffBookingAPI(MethodFirstAPIView):
    permission_classes = [StaffPolicy]
    # Reading a booking needs view; every action on one is a change (cancel included).
    required_permissions = {"GET": access.VIEW_BOOKINGS, "POST": access.CHANGE_BOOKINGS}
    # JSON only, as the schema says: a form or multipart body is a 415, not a second format to support.
    parser_classes = [JSONParser]

    def shown(self, data: object) -> object:
        """`data` as the signed-in staff member may see it (contact details masked without PII)."""
        return access.Visibility.of(self.request.user).present(data)

    def detail(self, booking: Booking, status: int = 200) -> Response:
        # Re-read after a change: the services return the row, the response also shows the new audit event.
        return Response(self.shown(BookingDetailOut(booking_by_number(booking.number)).data), status=status)


class BookingListCreateAPI(StaffBookingAPI):
    pagination_class = BookingPagination
    required_permissions = {"GET": access.VIEW_BOOKINGS, "POST": access.ADD_BOOKINGS}

    @extend_schema(
        tags=[TAG],
        summary="List bookings",
        description="Soonest first, paginated (`page`, `page_size` up to 200). Days are in the business time zone.",
        parameters=[BookingFilterIn],
        responses={
            200: BookingOut(many=True),
            **ERRORS,
            400: OpenApiResponse(
                ErrorOut, description="Invalid filters (`fields` says which), or date_to before date_from."
            ),
            404: OpenApiResponse(ErrorOut, description="A page past the last one."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = BookingFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(booking_list(filters=filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.shown(BookingOut(page, many=True).data))

    @extend_schema(
        tags=[TAG],
        summary="Book a visit",
        description="The start must be a slot the availability engine offers for the service.",
        request=BookingCreateIn,
        responses={201: BookingDetailOut, **ERRORS, **BOOKING_RULES, **CONFLICT},
    )
    def post(self, request: Request) -> Response:
        data = BookingCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        booking = booking_create(
            service=values["service"],
            start=values["start"],
            technician=values.get("technician"),
            customer_name=values["customer_name"],
            customer_phone=values["customer_phone"],
            customer_email=values["customer_email"],
            address=values["address"],
            notes=values["notes"],
            status=values["status"],
            channel=Channel.STAFF,
            actor=Actor.staff(request.user),
        )
        return self.detail(booking, status=201)


class BookingDetailAPI(StaffBookingAPI):
    @extend_schema(
        tags=[TAG],
        summary="A booking with its audit trail",
        description="The booking whole, customer contact details included, and every change made to it.",
        parameters=[NUMBER],
        responses={200: BookingDetailOut, **ERRORS, **NOT_FOUND},
    )
    def get(self, request: Request, number: str) -> Response:
        return Response(self.shown(BookingDetailOut(booking_by_number(number)).data))


class BookingRescheduleAPI(StaffBookingAPI):
    @extend_schema(
        tags=[TAG],
        summary="Move a booking to another slot",
        description="Keeps the booking number; the customer is emailed the new time.",
        parameters=[NUMBER],
        request=BookingRescheduleIn,
        responses={200: BookingDetailOut, **ERRORS, **BOOKING_RULES, **NOT_FOUND, **CONFLICT},
    )
    def post(self, request: Request, number: str) -> Response:
        booking = booking_by_number(number)
        data = BookingRescheduleIn(data=request.data)
        data.is_valid(raise_exception=True)
        booking = booking_reschedule(
            booking=booking,
            new_start=data.validated_data["start"],
            technician=data.validated_data.get("technician"),
            reason=data.validated_data["reason"],
            actor=Actor.staff(request.user),
        )
        return self.detail(booking)


class BookingCancelAPI(StaffBookingAPI):
    @extend_schema(
        tags=[TAG],
        summary="Cancel a booking",
        description="Frees the technician's time; the customer is emailed.",
        parameters=[NUMBER],
        request=BookingCancelIn,
        responses={200: BookingDetailOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    )
    def post(self, request: Request, number: str) -> Response:
        booking = booking_by_number(number)
        data = BookingCancelIn(data=request.data)
        data.is_valid(raise_exception=True)
        booking = booking_cancel(booking=booking, reason=data.validated_data["reason"], actor=Actor.staff(request.user))
        return self.detail(booking)


class BookingTransitionAPI(StaffBookingAPI):
    """A status change without input: confirm, complete, no-show."""

    change: Callable[..., Booking]

    def post(self, request: Request, number: str) -> Response:
        booking = type(self).change(booking=booking_by_number(number), actor=Actor.staff(request.user))
        return self.detail(booking)


def _transition_schema(summary: str, description: str) -> Callable:
    return extend_schema_view(
        post=extend_schema(
            tags=[TAG],
            summary=summary,
            description=description,
            parameters=[NUMBER],
            request=None,
            responses={200: BookingDetailOut, **ERRORS, **NOT_FOUND, **CONFLICT},
        )
    )


@_transition_schema("Confirm a pending booking", "Pending -> confirmed.")
class BookingConfirmAPI(BookingTransitionAPI):
    change = staticmethod(booking_confirm)


@_transition_schema("Mark a visit completed", "Only once the visit has started.")
class BookingCompleteAPI(BookingTransitionAPI):
    change = staticmethod(booking_complete)


@_transition_schema("Mark a visit as a no-show", "Only once the visit has started.")
class BookingNoShowAPI(BookingTransitionAPI):
    change = staticmethod(booking_mark_no_show)
