"""The staff's booking forms: "Add booking" and "Move booking" offer the real free slots.

Two steps, working without JavaScript: staff pick a service, a day and optionally a
technician, press "Show free slots", then choose one of the availability engine's slots
(bookings.selectors.available_slots). A typed time with an override reason squeezes a visit
in; the services (booking_create, booking_reschedule) still refuse a technician's other
visits and time off, and record the override in the booking's history.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.http import HttpRequest, QueryDict
from django.utils.html import format_html

from bookings import limits
from bookings.errors import DomainError
from bookings.models import ACTIVE_STATUSES, Booking, BookingStatus, Channel, Service, Technician
from bookings.selectors import Slot, available_slots, business_tz
from bookings.services import Actor, booking_create


class DayWithSlotsButton(forms.DateInput):
    """A date input followed by the "Show free slots" button: step one of the two-step forms.

    The button posts the form under the name `_slots`; the admin views answer it by drawing
    the form again with the free slots for the chosen service, day and technician, booking
    nothing (so it works without JavaScript).
    """

    input_type = "date"

    def render(self, name: str, value: object, attrs: dict | None = None, renderer: object = None) -> str:
        field = super().render(name, value, attrs, renderer)
        return format_html(
            '{} <button type="submit" name="_slots" value="1" class="button slots-button">Show free slots</button>',
            field,
        )


def slot_value(start: datetime) -> str:
    """A slot as a form value: its start, an ISO instant in UTC."""
    return start.astimezone(UTC).isoformat()


def slot_label(slot: Slot) -> str:
    start = slot.start.astimezone(business_tz())
    end = slot.end.astimezone(business_tz())
    names = ", ".join(t.name for t in slot.technicians)
    return f"{start:%H:%M}–{end:%H:%M} ({names})"


class OfferedSlotsMixin:
    """Fills the `slot` field with the availability engine's free slots for the service, day
    and technician the form holds (posted or initial), so staff choose among real slots."""

    # Set by the subclass: the service is fixed for a move, chosen for a new booking.
    def _slot_service(self, source: object) -> Service | None:
        raise NotImplementedError

    exclude_booking_id: int | None = None

    def _raw_clean(self, name: str, source: object) -> object:
        field = self.fields[name]
        raw = field.widget.value_from_datadict(source, {}, self.add_prefix(name)) if self.is_bound else source.get(name)
        try:
            return field.clean(raw)
        except forms.ValidationError:
            return None

    def offer_slots(self) -> None:
        source = self.data if self.is_bound else self.initial
        service = self._slot_service(source)
        day = self._raw_clean("day", source)
        technician = self._raw_clean("technician", source)
        self.offered: list[Slot] = []
        if service is not None and day is not None:
            self.offered = available_slots(
                service=service,
                start_date=day,
                technician_id=technician.pk if technician else None,
                exclude_booking_id=self.exclude_booking_id,
            )
        field = self.fields["slot"]
        field.choices = [(slot_value(slot.start), slot_label(slot)) for slot in self.offered]
        if service is None or day is None:
            field.help_text = "Pick the service and the day, then Show free slots."
        elif not self.offered:
            field.help_text = "No free slot that day. Try another day or technician, or override below."
        else:
            field.help_text = f"Free slots on {day:%A %-d %B} ({business_tz().key})."

    def resolve_start(self, data: dict) -> datetime | None:
        """The chosen slot's start, else the typed time (for an override, or checked by the
        service like any other); a form error when there is neither."""
        value = data.get("slot")
        if value:
            data["override_reason"] = ""  # an offered slot needs no override
            return datetime.fromisoformat(value)
        start = data.get("start")
        if start is None and not self.has_error("slot") and not self.has_error("start"):
            raise forms.ValidationError("Choose one of the free slots (Show free slots), or type a time.")
        return start


SLOT_FIELD_KWARGS = {
    "required": False,
    "label": "Free slots",
    "widget": forms.RadioSelect(),
}
OVERRIDE_HELP = (
    "For an urgent squeeze-in outside the free slots: pick the technician and type the time above. "
    "The technician's other visits and time off still apply. Recorded in the booking's history."
)


class BookingAddForm(OfferedSlotsMixin, forms.ModelForm):
    """Books through booking_create, so a staff booking obeys the rules chat and voice obey.

    The service runs as the very last step of validation (after Django's own field and
    model checks), so no later check can reject a form that has already booked, and a
    domain error ("that time is not available") becomes a form error. The admin wraps the
    POST in a transaction, so anything failing afterwards rolls the booking back, and the
    confirmation email (sent on commit) never goes out.
    """

    service = forms.ModelChoiceField(queryset=Service.objects.filter(active=True).select_related("trade"))
    technician = forms.ModelChoiceField(
        queryset=Technician.objects.filter(active=True),
        required=False,
        label="Technician",
        help_text="Leave empty to give the visit to the first qualified technician who is free.",
    )
    day = forms.DateField(required=False, widget=DayWithSlotsButton(), help_text="The day of the visit.")
    slot = forms.ChoiceField(**SLOT_FIELD_KWARGS)
    override_reason = forms.CharField(
        required=False, max_length=limits.MAX_REASON, label="Override reason", help_text=OVERRIDE_HELP
    )
    customer_name = forms.CharField(max_length=limits.MAX_NAME)
    customer_phone = forms.CharField(
        max_length=limits.MAX_PHONE_TYPED, help_text="Any format; the customer is matched on it."
    )
    customer_email = forms.EmailField(required=False, help_text="Gets the confirmation email.")
    status = forms.ChoiceField(
        choices=[(status.value, status.label) for status in ACTIVE_STATUSES], initial=BookingStatus.CONFIRMED
    )

    # Set per request by BookingAdmin.get_form: the staff user is recorded on the audit row.
    actor: Actor | None = None

    # booking_create names the field it rejects; these are the form's names for them.
    ERROR_FIELDS = {
        "service": "service",
        "start": "start",
        "technician": "technician",
        "name": "customer_name",
        "phone": "customer_phone",
        "email": "customer_email",
        "address": "address",
        "notes": "notes",
        "status": "status",
        "override_reason": "override_reason",
    }

    class Meta:
        model = Booking
        fields = ["service", "start", "technician", "address", "notes", "status"]
        labels = {"start": "Other time"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A chosen slot is the usual way; a typed time is checked against the same rules
        # (or, with an override reason, squeezed in).
        self.fields["start"].required = False
        self.offer_slots()

    def _slot_service(self, source: object) -> Service | None:
        return self._raw_clean("service", source)

    def clean(self) -> dict:
        data = super().clean()
        start = self.resolve_start(data)
        data["start"] = start
        return data

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        if self.actor is None:
            raise RuntimeError("BookingAddForm needs an actor; BookingAdmin.get_form sets it.")
        data = self.cleaned_data
        try:
            self.instance = booking_create(
                service=data["service"],
                start=data["start"],
                override_reason=data["override_reason"],
                technician=data["technician"],
                customer_name=data["customer_name"],
                customer_phone=data["customer_phone"],
                customer_email=data["customer_email"],
                address=data["address"],
                notes=data["notes"],
                status=data["status"],
                channel=Channel.STAFF,
                actor=self.actor,
            )
        except DomainError as error:
            self.add_error(self.ERROR_FIELDS.get(error.field or ""), error.message)


class BookingMoveForm(OfferedSlotsMixin, forms.Form):
    """Move a booking: pick a day (and a technician), then one of the free slots for its service.

    The move itself is booking_reschedule, as for a customer moving by chat, so the same
    rules hold; a typed time with an override reason squeezes the visit in.
    """

    technician = forms.ModelChoiceField(
        queryset=Technician.objects.none(),
        required=False,
        label="Technician",
        help_text="Leave empty for any qualified technician (the current one first).",
    )
    day = forms.DateField(widget=DayWithSlotsButton(), help_text="The new day of the visit.")
    slot = forms.ChoiceField(**SLOT_FIELD_KWARGS)
    start = forms.SplitDateTimeField(required=False, label="Other time", widget=AdminSplitDateTime())
    override_reason = forms.CharField(
        required=False, max_length=limits.MAX_REASON, label="Override reason", help_text=OVERRIDE_HELP
    )
    reason = forms.CharField(
        required=False, max_length=limits.MAX_REASON, label="Why it moves", help_text="Kept in the booking's history."
    )

    ERROR_FIELDS = {
        "start": "start",
        "technician": "technician",
        "reason": "reason",
        "override_reason": "override_reason",
    }

    def __init__(self, *args, booking: Booking, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.booking = booking
        self.exclude_booking_id = booking.pk
        self.fields["technician"].queryset = Technician.objects.filter(active=True, trades=booking.service.trade_id)
        self.offer_slots()

    def _slot_service(self, source: object) -> Service | None:
        return self.booking.service

    def clean(self) -> dict:
        data = super().clean()
        start = self.resolve_start(data)
        data["new_start"] = start
        return data


def two_step_source(request: HttpRequest) -> QueryDict | None:
    """The data of a "Show free slots" press (step one), to draw the form again unbound with it
    as the initial values: nothing is booked, and nothing is shown as an error yet."""
    if request.method != "POST" or "_slots" not in request.POST:
        return None
    data = request.POST.copy()
    for name in ("csrfmiddlewaretoken", "_slots", "slot"):
        data.pop(name, None)
    return data
