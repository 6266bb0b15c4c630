"""Input and output shapes of the staff booking API (chatdesk.backoffice.booking_api).

Staff see a booking whole: the customer's contact details and the technician's full
name, which customers and the model never get (bookings.selectors.booking_public_dict).
Technicians' phone, pay and home address stay out even here: dispatch does not need them.
"""

from __future__ import annotations

from rest_framework import serializers

from bookings import limits
from bookings.models import ACTIVE_STATUSES, BookingStatus, Service, Technician


class ServiceRefOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class TechnicianRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="__str__")


class CustomerOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()


class BookingEventOut(serializers.Serializer):
    kind = serializers.CharField()
    actor_kind = serializers.CharField()
    actor_channel = serializers.CharField()
    actor_user = serializers.CharField(source="actor_user.get_username", default=None, allow_null=True)
    actor_reference = serializers.CharField()
    changes = serializers.JSONField()
    note = serializers.CharField()
    at = serializers.DateTimeField(source="created_at")


class BookingOut(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=BookingStatus.choices)
    service = ServiceRefOut()
    technician = TechnicianRefOut()
    customer = CustomerOut()
    start = serializers.DateTimeField(help_text="In the business time zone, with its offset.")
    end = serializers.DateTimeField()
    address = serializers.CharField()
    notes = serializers.CharField()
    channel = serializers.CharField(help_text="How the booking came in: chat, voice, staff or api.")
    estimated_price_min = serializers.DecimalField(max_digits=10, decimal_places=2)
    estimated_price_max = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    cancellation_reason = serializers.CharField()
    cancelled_at = serializers.DateTimeField(allow_null=True)
    reminder_sent_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class BookingDetailOut(BookingOut):
    events = BookingEventOut(many=True, help_text="The audit trail: every change and who made it.")


class BookingFilterIn(serializers.Serializer):
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
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.select_related("trade"))
    start = serializers.DateTimeField(help_text="A slot start, ISO 8601; without an offset, business local time.")
    technician = serializers.PrimaryKeyRelatedField(
        queryset=Technician.objects.all(),
        required=False,
        allow_null=True,
        help_text="Technician id; leave out to give the slot to the first qualified technician free for it.",
    )
    customer_name = serializers.CharField(max_length=limits.MAX_NAME)
    customer_phone = serializers.CharField(max_length=limits.MAX_PHONE_TYPED)
    customer_email = serializers.EmailField(required=False, allow_blank=True, default="")
    address = serializers.CharField(max_length=limits.MAX_ADDRESS)
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=limits.MAX_NOTES)
    # All statuses as choices (one enum in the schema, shared with the output), then narrowed.
    status = serializers.ChoiceField(
        choices=BookingStatus.choices, default=BookingStatus.CONFIRMED, help_text="pending or confirmed."
    )

    def validate_status(self, value: str) -> str:
        if value not in ACTIVE_STATUSES:
            raise serializers.ValidationError("A new booking is pending or confirmed.")
        return value


class BookingRescheduleIn(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The new slot start, ISO 8601.")
    technician = serializers.PrimaryKeyRelatedField(
        queryset=Technician.objects.all(),
        required=False,
        allow_null=True,
        help_text="Leave out to keep the same technician when free, else the first free one.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=limits.MAX_REASON)


class BookingCancelIn(serializers.Serializer):
    reason = serializers.CharField(
        max_length=limits.MAX_REASON, help_text="Why; kept on the booking and in its audit trail."
    )


# The error envelope every API answers with (DomainError.as_dict, chatdesk.api_errors). A
# comment, not a docstring: drf-spectacular would publish a docstring in the schema.
class ErrorOut(serializers.Serializer):
    error = serializers.CharField()
    message = serializers.CharField()
