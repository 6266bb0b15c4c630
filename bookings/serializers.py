"""Input and output shapes of the staff booking API (chatdesk.backoffice.booking_api).

Staff see a booking whole: the customer's contact details and the technician's full
name, which customers and the model never get (bookings.selectors.booking_public_dict).
Technicians' phone, pay and home address stay out even here: dispatch does not need them.
"""

from __future__ import annotations

from rest_framework import serializers

from bookings import limits
from bookings.models import ACTIVE_STATUSES, BookingStatus, Service, Technician


# The error envelope every API answers with (DomainError.as_dict, chatdesk.api_errors). A
# comment, not a docstring: drf-spectacular would publish a docstring in the schema.
class ErrorOut(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code for programs, e.g. invalid_input, not_found, rate_limited.")
    message = serializers.CharField(help_text="What went wrong, in words a person can read.")
    field = serializers.CharField(required=False, help_text="The input field the error is about, when there is one.")
    fields = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="For invalid_input: each invalid field (or query parameter) with its list of problems.",
    )
    retry_after = serializers.FloatField(
        required=False, help_text="For rate_limited: seconds to wait before trying again (also in Retry-After)."
    )


class Text(serializers.CharField):
    """A string field that takes only JSON strings.

    DRF's CharField turns 12 or 1.5 into "12" and "1.5"; the schema says string, so a
    number is refused like any other wrong type instead of being silently converted.
    """

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIn(serializers.Serializer):
    """Query parameters: a parameter given empty (`?service=`) is an error, not left out.

    DRF reads an empty optional form value as "not given"; the schema promises a slug, a
    date or a number, so `?until=` is answered 400 like any other invalid value.
    """

    def to_internal_value(self, data: object) -> dict:
        getlist = getattr(data, "getlist", None)
        empty = {
            name: ["May not be empty; leave the parameter out instead."]
            for name in self.fields
            if getlist is not None and "" in getlist(name)
        }
        if empty:
            raise serializers.ValidationError(empty)
        return super().to_internal_value(data)


class ServiceRefOut(serializers.Serializer):
    slug = serializers.CharField(help_text="The service's slug, e.g. hvac-repair (the `service` filter and input).")
    name = serializers.CharField(help_text="The service's name, e.g. HVAC Repair.")


class TechnicianRefOut(serializers.Serializer):
    id = serializers.IntegerField(help_text="Technician id (the `technician` filter and input).")
    name = serializers.CharField(source="__str__", help_text="The technician's full name.")


class CustomerOut(serializers.Serializer):
    id = serializers.IntegerField(help_text="Customer id.")
    name = serializers.CharField(help_text="The customer's name.")
    phone = serializers.CharField(
        help_text="The customer's phone number, E.164 (+14165550123); masked without chatdesk.view_customer_pii."
    )
    email = serializers.CharField(
        help_text="The customer's email address, empty when not given; masked without chatdesk.view_customer_pii."
    )


class BookingEventOut(serializers.Serializer):
    kind = serializers.CharField(help_text="What happened: created, confirmed, rescheduled, cancelled, ...")
    actor_kind = serializers.CharField(help_text="Who did it: customer, staff or system.")
    actor_channel = serializers.CharField(help_text="Through which door: chat, voice, staff, api; may be empty.")
    actor_user = serializers.CharField(
        source="actor_user.get_username",
        default=None,
        allow_null=True,
        help_text="The staff member's username; null when a customer or the system acted.",
    )
    actor_reference = serializers.CharField(
        help_text="A reference to the actor, e.g. the conversation number (INT-...); may be empty."
    )
    changes = serializers.JSONField(
        help_text="What changed, as the event recorded it: e.g. the status as [before, after], or the old and new slot."
    )
    note = serializers.CharField(help_text="A free-text note, e.g. the cancellation reason; may be empty.")
    at = serializers.DateTimeField(source="created_at", help_text="When it happened.")


class BookingOut(serializers.Serializer):
    number = serializers.CharField(help_text="The booking number customers quote, e.g. BK-2026-000123.")
    status = serializers.ChoiceField(choices=BookingStatus.choices, help_text="Where the booking stands.")
    service = ServiceRefOut(help_text="The service booked.")
    technician = TechnicianRefOut(help_text="The technician sent.")
    customer = CustomerOut(help_text="Who booked, with their contact details.")
    start = serializers.DateTimeField(help_text="In the business time zone, with its offset.")
    end = serializers.DateTimeField(help_text="When the visit ends (start + the service's duration).")
    address = serializers.CharField(help_text="Where the visit is; masked without chatdesk.view_customer_pii.")
    notes = serializers.CharField(help_text="What the customer said about the problem; may be empty.")
    channel = serializers.CharField(help_text="How the booking came in: chat, voice, staff or api.")
    estimated_price_min = serializers.DecimalField(
        max_digits=10, decimal_places=2, help_text="Low end of the price estimate, in `currency`."
    )
    estimated_price_max = serializers.DecimalField(
        max_digits=10, decimal_places=2, allow_null=True, help_text="High end of the estimate; null for a fixed price."
    )
    currency = serializers.CharField(help_text="ISO 4217 currency of the prices, e.g. CAD.")
    cancellation_reason = serializers.CharField(help_text="Why it was cancelled; empty unless cancelled.")
    cancelled_at = serializers.DateTimeField(allow_null=True, help_text="When it was cancelled; null unless cancelled.")
    reminder_sent_at = serializers.DateTimeField(
        allow_null=True, help_text="When the reminder email went out; null before."
    )
    created_at = serializers.DateTimeField(help_text="When the booking was made.")
    updated_at = serializers.DateTimeField(help_text="When the booking last changed.")


class BookingDetailOut(BookingOut):
    events = BookingEventOut(many=True, help_text="The audit trail: every change and who made it.")


class BookingFilterIn(QueryIn):
    date_from = serializers.DateField(required=False, help_text="Visits starting on or after this day (YYYY-MM-DD).")
    date_to = serializers.DateField(required=False, help_text="Visits starting on or before this day (YYYY-MM-DD).")
    status = serializers.MultipleChoiceField(
        choices=BookingStatus.choices, required=False, help_text="Repeat for several: ?status=pending&status=confirmed"
    )
    technician = serializers.IntegerField(required=False, min_value=1, help_text="Technician id.")
    service = serializers.SlugField(required=False, help_text="Service slug, e.g. hvac-repair.")

    def validate(self, data: dict) -> dict:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": ["date_to is before date_from."]})
        return data


class BookingCreateIn(serializers.Serializer):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.select_related("trade"), help_text="Service slug, e.g. hvac-repair."
    )
    start = serializers.DateTimeField(help_text="A slot start, ISO 8601; without an offset, business local time.")
    technician = serializers.PrimaryKeyRelatedField(
        queryset=Technician.objects.all(),
        required=False,
        allow_null=True,
        help_text="Technician id; leave out to give the slot to the first qualified technician free for it.",
    )
    customer_name = Text(max_length=limits.MAX_NAME, help_text="The customer's name.")
    customer_phone = Text(
        max_length=limits.MAX_PHONE_TYPED,
        help_text="The customer's phone, as typed; without a country code, the region's.",
    )
    customer_email = serializers.EmailField(
        required=False, allow_blank=True, default="", help_text="Where the confirmation goes; optional."
    )
    address = Text(max_length=limits.MAX_ADDRESS, help_text="Where the visit is.")
    notes = Text(
        required=False,
        allow_blank=True,
        default="",
        max_length=limits.MAX_NOTES,
        help_text="The problem, for the technician.",
    )
    # Only what a new booking may be, so the schema's enum says so too.
    status = serializers.ChoiceField(
        choices=[(status.value, status.label) for status in ACTIVE_STATUSES],
        default=BookingStatus.CONFIRMED,
        error_messages={"invalid_choice": "A new booking is pending or confirmed."},
        help_text="pending or confirmed (the default).",
    )


class BookingRescheduleIn(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The new slot start, ISO 8601.")
    technician = serializers.PrimaryKeyRelatedField(
        queryset=Technician.objects.all(),
        required=False,
        allow_null=True,
        help_text="Leave out to keep the same technician when free, else the first free one.",
    )
    reason = Text(
        required=False,
        allow_blank=True,
        default="",
        max_length=limits.MAX_REASON,
        help_text="Why it moved; kept in the booking's audit trail.",
    )


class BookingCancelIn(serializers.Serializer):
    reason = Text(max_length=limits.MAX_REASON, help_text="Why; kept on the booking and in its audit trail.")
