"""The staff back office: the Django admin for customers, bookings and their audit trail.

Bookings are created and changed only through bookings.services, as everywhere else, so
the validation, the audit trail (BookingEvent with the staff user) and the emails are the
same whether a customer chatted or staff clicked. Reference data (trades, services,
technicians, hours, time off) has no service layer and is edited directly: its admins live
in chatdesk.backoffice.reference_admin; text messages in chatdesk.backoffice.text_message_admin.

Customers' phone numbers, emails and addresses are shown only to staff with
chatdesk.view_customer_pii (the staff policy, chatdesk.conversations.access), as at the
staff API: without it the columns are left out and the fields read as masked.

Times are shown in the business time zone (settings.TIME_ZONE), with its abbreviation, so
staff in another zone are never misled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.db.models.expressions import OrderBy
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from bookings.errors import DomainError, InvalidInput
from bookings.models import Booking, BookingEvent, Customer, YearlyCounter
from bookings.phones import normalize_phone, phone_display, phone_from_search
from bookings.selectors import business_tz, local_today
from bookings.services import (
    Actor,
    booking_cancel,
    booking_complete,
    booking_confirm,
    booking_mark_no_show,
    booking_reschedule,
)
from chatdesk.backoffice.booking_forms import BookingAddForm, BookingMoveForm, two_step_source
from chatdesk.backoffice.booking_lists import LIST_CSS, ShowFilter, upcoming_first, visit_span
from chatdesk.backoffice.common import (
    BOTH_LOCATIONS,
    InternalMixin,
    ReadOnlyMixin,
    ReplicaListMixin,
    WideListMixin,
    can_see_pii,
    local_time,
)
from chatdesk.backoffice.dispatch_board import dispatch_board_view
from chatdesk.backoffice.pii import MASK, mask_text
from chatdesk.backoffice.provenance import booking_provenance_html
from chatdesk.backoffice.text_message_admin import TextMessageInline
from chatdesk.conversations.access import Visibility


class PhoneSearchMixin:
    """Search also finds a customer by phone typed in any format ("(416) 555-0142").

    Phones are stored in E.164, so the default icontains search misses most ways people
    type them; the term is normalized and matched exactly, on the unique phone index.

    Searching by contact details is for staff who may see them (view_customer_pii):
    otherwise a search would confirm whose a phone number or email is, which the masked
    columns hide. `contact_search_fields` join `search_fields` only for them.
    """

    phone_search_field: str
    contact_search_fields: tuple[str, ...] = ()

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        fields = list(super().get_search_fields(request))
        return fields + list(self.contact_search_fields) if can_see_pii(request.user) else fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        phone = phone_from_search(search_term) if can_see_pii(request.user) else None
        if phone:
            results |= queryset.filter(**{self.phone_search_field: phone})
        return results, may_have_duplicates


# --- Customers and bookings -----------------------------------------------------------------


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["name", "phone", "email", "address"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Shown as staff write it; clean_phone stores E.164 again.
            self.initial["phone"] = phone_display(self.instance.phone)

    def clean_phone(self) -> str:
        # The phone is the identity chat and voice match on, so it is stored as E.164 only.
        try:
            return normalize_phone(self.cleaned_data["phone"])
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None


@admin.register(Customer)
class CustomerAdmin(PhoneSearchMixin, admin.ModelAdmin):
    form = CustomerForm
    list_display = ["name", "phone_number", "email", "booking_count", "created_at"]
    search_fields = ["name"]
    contact_search_fields = ("phone", "email")
    phone_search_field = "phone"
    readonly_fields = ["created_at", "bookings_link", "text_consent"]

    CONTACT = ("phone", "phone_number", "email", "address", "text_consent")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).annotate(booking_total=Count("bookings"))

    def get_list_display(self, request: HttpRequest) -> list[str]:
        columns = super().get_list_display(request)
        return columns if can_see_pii(request.user) else [c for c in columns if c not in self.CONTACT]

    def get_fields(self, request: HttpRequest, obj: Customer | None = None) -> list[str]:
        # Without PII the contact details are not on the form at all: neither shown nor editable.
        fields = super().get_fields(request, obj)
        return fields if can_see_pii(request.user) else [f for f in fields if f not in self.CONTACT]

    @admin.display(description="phone", ordering="phone")
    def phone_number(self, customer: Customer) -> str:
        return phone_display(customer.phone)

    @admin.display(description="bookings", ordering="booking_total")
    def booking_count(self, customer: Customer) -> int:
        return customer.booking_total

    @admin.display(description="text messages")
    def text_consent(self, customer: Customer) -> str:
        # The evidence of consent: when, where, the question word for word and the answer.
        if customer.sms_consent_at is None:
            return "Not agreed" + (
                f" (said no in {customer.sms_consent_source})" if customer.sms_consent_source else ""
            )
        return format_html(
            "Agreed {} in {}<br>Asked: “{}”<br>Answer: “{}”",
            local_time(customer.sms_consent_at),
            customer.sms_consent_source or "-",
            customer.sms_consent_wording,
            customer.sms_consent_reply,
        )

    @admin.display(description="bookings")
    def bookings_link(self, customer: Customer) -> str:
        if customer.pk is None:
            return "-"
        url = reverse("admin:bookings_booking_changelist") + f"?customer__id__exact={customer.pk}"
        return format_html('<a href="{}">{} booking(s)</a>', url, customer.bookings.count())


class VisitDayFilter(admin.SimpleListFilter):
    """Upcoming work by the business's calendar days, which is how dispatchers think."""

    title = "visit day"
    parameter_name = "visit"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("today", "Today"),
            ("tomorrow", "Tomorrow"),
            ("next7", "Next 7 days"),
            ("upcoming", "Upcoming"),
            ("past", "Past"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Booking]) -> QuerySet[Booking] | None:
        today = local_today()

        def midnight(days: int) -> datetime:
            # Midnight in the business zone, so "today" is the dispatcher's today, not UTC's.
            return datetime.combine(today + timedelta(days=days), time.min, tzinfo=business_tz())

        ranges = {
            "today": (midnight(0), midnight(1)),
            "tomorrow": (midnight(1), midnight(2)),
            "next7": (midnight(0), midnight(7)),
        }
        if self.value() in ranges:
            start, end = ranges[self.value()]
            return queryset.filter(start__gte=start, start__lt=end)
        if self.value() == "upcoming":
            return queryset.filter(start__gte=midnight(0))
        if self.value() == "past":
            return queryset.filter(start__lt=midnight(0))
        return None


class TechnicianFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "technician"


class BookingEventInline(ReadOnlyMixin, admin.TabularInline):
    """The audit trail of a booking: written by the services only, never edited."""

    model = BookingEvent
    extra = 0
    can_delete = False
    fields = [
        "at",
        "kind",
        "actor_kind",
        "actor_channel",
        "actor_user",
        "actor_reference",
        "shown_changes",
        "shown_note",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BookingEvent]:
        return super().get_queryset(request).select_related("actor_user")

    def get_fields(self, request: HttpRequest, obj: Booking | None = None) -> list[str]:
        # What staff may see of the notes and changes (a phone typed in a note, a changed
        # address) is decided per request by the one policy, as at every other door.
        self.seen = Visibility.of(request.user)
        return super().get_fields(request, obj)

    @admin.display(description="changes")
    def shown_changes(self, event: BookingEvent) -> object:
        return self.seen.present({"changes": event.changes})["changes"]

    @admin.display(description="note")
    def shown_note(self, event: BookingEvent) -> str:
        return self.seen.present({"note": event.note})["note"]

    @admin.display(description="when")
    def at(self, event: BookingEvent) -> str:
        return local_time(event.created_at)


@admin.register(Booking)
class BookingAdmin(ReplicaListMixin, WideListMixin, PhoneSearchMixin, admin.ModelAdmin):
    """Bookings: read, filter, and act on them through the services.

    Status changes are the actions (in the list and on each booking's page). On an
    existing booking only the address and the notes are editable; times, technician,
    customer, status and price belong to the services. Bookings are never deleted here:
    cancel them, so the audit trail stays.
    """

    add_form = BookingAddForm
    list_display = [
        "number",
        "visit",
        "service_name",
        "technician",
        "customer_column",
        "status",
        "channel",
        "estimate",
    ]
    list_filter = [
        ShowFilter,
        "status",
        VisitDayFilter,
        ("technician", TechnicianFilter),
        "service__trade",
        "service",
        "channel",
    ]
    list_select_related = ["service", "technician", "customer"]
    search_fields = ["number", "customer__name"]
    contact_search_fields = ("customer__phone",)
    phone_search_field = "customer__phone"
    date_hierarchy = "start"
    actions = ["confirm", "cancel", "mark_completed", "mark_no_show"]
    inlines = [BookingEventInline, TextMessageInline]

    STAFF_EDITABLE = ("address", "notes")
    add_fieldsets = [
        (None, {"fields": ["service", "technician", "day", "slot", "status"]}),
        ("Outside the free slots", {"fields": ["start", "override_reason"]}),
        ("Customer", {"fields": ["customer_name", "customer_phone", "customer_email", "address", "notes"]}),
    ]
    fieldsets = [
        (None, {"fields": ["number", "status", "service", "visit", "technician", "customer", "price"]}),
        ("Editable by staff", {"fields": list(STAFF_EDITABLE)}),
        # Added with the conversations admin (chatdesk/backoffice/conversation_admin.py): the conversation turn and
        # tool call, or the staff user, behind every change of this booking.
        ("Why this booking exists", {"fields": ["provenance"]}),
        (
            "History",
            {
                "fields": [
                    "channel",
                    "occupied",
                    "created_at",
                    "updated_at",
                    "cancelled_at",
                    "cancellation_reason",
                    "reminder_sent_at",
                ],
                "classes": ["collapse"],
            },
        ),
    ]
    readonly_fields = [
        "number",
        "status",
        "service",
        "visit",
        "technician",
        "customer",
        "price",
        "channel",
        "occupied",
        "created_at",
        "updated_at",
        "cancelled_at",
        "cancellation_reason",
        "reminder_sent_at",
        "provenance",
    ]

    change_form_template = "admin/bookings/booking/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own URLs, whose "<object_id>/" would swallow "board/".
        return [
            path("board/", self.admin_site.admin_view(self.board_view), name="bookings_dispatch_board"),
            path("<path:object_id>/move/", self.admin_site.admin_view(self.move_view), name="bookings_booking_move"),
            *super().get_urls(),
        ]

    def board_view(self, request: HttpRequest) -> HttpResponse:
        return dispatch_board_view(self, request)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        data = two_step_source(request)
        if data is not None:
            # Step one: draw the add form again with the free slots for what was picked.
            request.method = "GET"
            request.GET = data
        return super().add_view(request, form_url, extra_context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        # The "Other time" field arrives as its two halves (start_0, start_1).
        if request.GET.get("start_0"):
            try:
                day = date.fromisoformat(request.GET["start_0"])
                at = time.fromisoformat(request.GET.get("start_1") or "00:00")
                initial["start"] = datetime.combine(day, at)
            except ValueError:
                pass  # a bad value just leaves the field empty
        return initial

    def move_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        booking = self.get_object(request, unquote(object_id))
        if booking is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, booking):
            raise PermissionDenied
        step_one = two_step_source(request)
        if request.method == "POST" and step_one is None:
            form = BookingMoveForm(request.POST, booking=booking)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    booking_reschedule(
                        booking=booking,
                        new_start=data["new_start"],
                        technician=data["technician"],
                        reason=data["reason"],
                        override_reason=data["override_reason"],
                        actor=Actor.staff(request.user),
                    )
                except DomainError as error:
                    form.add_error(form.ERROR_FIELDS.get(error.field or ""), error.message)
                else:
                    self.message_user(
                        request,
                        f"Moved {booking.number} to {local_time(booking.start)} with {booking.technician}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:bookings_booking_change", args=[booking.pk]))
        else:
            source = step_one if step_one is not None else request.GET
            initial: dict[str, object] = {
                name: source[name] for name in BookingMoveForm.base_fields if source.get(name)
            }
            if "day" not in initial:
                initial["day"] = max(booking.start.astimezone(business_tz()).date(), local_today())
            form = BookingMoveForm(initial=initial, booking=booking)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Move booking {booking.number}",
            "subtitle": None,
            "opts": self.opts,
            "original": booking,
            "booking": booking,
            "visit": self.visit(booking),
            "form": form,
            "media": self.media + form.media,
            "board_url": reverse("admin:bookings_dispatch_board")
            + f"?day={booking.start.astimezone(business_tz()).date():%Y-%m-%d}",
        }
        return TemplateResponse(request, "admin/bookings/booking/move.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Booking]:
        # The change page shows the service, technician and customer too.
        return super().get_queryset(request).select_related("service__trade", "technician", "customer")

    def get_ordering(self, request: HttpRequest) -> list[OrderBy]:
        # Upcoming first (soonest at the top), then the past, latest first.
        return upcoming_first()

    # Without PII, what the change page shows instead of a field with contact details.
    # Notes and the cancellation reason are free text a customer or staff typed, so a phone
    # number in them is masked by pattern, as in transcripts (read-only then, as the address).
    MASKED_FIELDS = {
        "customer": "customer_name",
        "address": "address_masked",
        "notes": "notes_masked",
        "cancellation_reason": "cancellation_reason_masked",
    }

    def get_list_display(self, request: HttpRequest) -> list[str]:
        columns = super().get_list_display(request)
        # Without PII the name alone (the ModelAdmin is shared by every request: the choice
        # is made here, per request, never stored on it).
        return columns if can_see_pii(request.user) else [self.NAME_ONLY.get(c, c) for c in columns]

    NAME_ONLY = {"customer_column": "customer_name"}

    @admin.display(description="customer", ordering="customer__name")
    def customer_column(self, booking: Booking) -> str:
        # The phone under the name: one column for both, so the list fits at 1280 px.
        return format_html("{}<br><small>{}</small>", booking.customer.name, phone_display(booking.customer.phone))

    def get_fieldsets(self, request: HttpRequest, obj: Booking | None = None) -> list:
        if obj is None:
            return self.add_fieldsets
        fieldsets = super().get_fieldsets(request, obj)
        if can_see_pii(request.user):
            return fieldsets
        return [
            (name, {**options, "fields": [self.MASKED_FIELDS.get(f, f) for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Booking | None = None) -> list[str]:
        if obj is None:
            return []
        fields = list(super().get_readonly_fields(request, obj))
        return fields if can_see_pii(request.user) else [*fields, *self.MASKED_FIELDS.values()]

    @admin.display(description="customer", ordering="customer__name")
    def customer_name(self, booking: Booking) -> str:
        # Customer.__str__ carries the phone; the name alone is what staff without PII see.
        return booking.customer.name

    @admin.display(description="address")
    def address_masked(self, booking: Booking) -> str:
        return MASK if booking.address else "-"

    @admin.display(description="notes")
    def notes_masked(self, booking: Booking) -> str:
        return mask_text(booking.notes) or "-"

    @admin.display(description="cancellation reason")
    def cancellation_reason_masked(self, booking: Booking) -> str:
        return mask_text(booking.cancellation_reason) or "-"

    def get_inlines(self, request: HttpRequest, obj: Booking | None) -> list:
        return [] if obj is None else super().get_inlines(request, obj)

    def get_form(
        self, request: HttpRequest, obj: Booking | None = None, change: bool = False, **kwargs
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["help_texts"] = {"start": f"Business time ({business_tz().key}); one of the offered slots."}
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            # modelform_factory made a fresh class for this request, so this cannot leak
            # one user's identity into another's request.
            form_class.actor = Actor.staff(request.user)
        return form_class

    def save_model(self, request: HttpRequest, obj: Booking, form: forms.ModelForm, change: bool) -> None:
        if not change:
            return  # BookingAddForm already booked through booking_create.
        # Save only what staff may edit: a full save would write back the status and times
        # read at the start of this request, silently undoing a cancel made meanwhile.
        fields = [name for name in form.changed_data if name in self.STAFF_EDITABLE]
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])

    def has_delete_permission(self, request: HttpRequest, obj: Booking | None = None) -> bool:
        return False

    @admin.display(description="technician", ordering="technician__first_name")
    def technician(self, booking: Booking) -> str:
        return str(booking.technician)

    @admin.display(description="visit", ordering="start")
    def visit(self, booking: Booking) -> str:
        return visit_span(booking.start, booking.end)

    @admin.display(description="service", ordering="service__name")
    def service_name(self, booking: Booking) -> str:
        # The name alone: Service.__str__ adds the trade, a second line in a busy list.
        return booking.service.name

    class Media:
        css = {"all": [LIST_CSS]}

    @admin.display(description="technician busy")
    def occupied(self, booking: Booking) -> str:
        return f"{local_time(booking.occupied_start)} to {local_time(booking.occupied_end)} (visit plus buffers)"

    @admin.display(description="estimated price", ordering="estimated_price_min")
    def price(self, booking: Booking) -> str:
        return booking.price_display

    @admin.display(description="estimate", ordering="estimated_price_min")
    def estimate(self, booking: Booking) -> str:
        # The list's name for the price: "estimated price" made the column too wide at 1280 px.
        return booking.price_display

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Booking | None:
        booking = super().get_object(request, object_id, from_field)
        if booking is not None:
            # The display methods see only the booking; what this staff member may see
            # travels with it (this admin instance is shared by every request).
            booking.shown_to_pii = can_see_pii(request.user)  # type: ignore[attr-defined]
        return booking

    @admin.display(description="provenance")
    def provenance(self, booking: Booking) -> str:
        return booking_provenance_html(booking, pii=getattr(booking, "shown_to_pii", False))

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[Booking],
        service: Callable[..., Booking],
        done: str,
    ) -> None:
        """Run a booking service on each selected booking, reporting each refusal by name."""
        actor = Actor.staff(request.user)
        changed = 0
        for booking in queryset.order_by("start"):
            try:
                service(booking=booking, actor=actor)
            except DomainError as error:
                text = error.message if booking.number in error.message else f"{booking.number}: {error.message}"
                self.message_user(request, text, messages.ERROR)
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{done} {changed} booking(s).", messages.SUCCESS)

    @admin.action(description="Confirm", permissions=["change"], location=BOTH_LOCATIONS)
    def confirm(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._apply(request, queryset, booking_confirm, "Confirmed")

    @admin.action(description="Cancel", permissions=["change"], location=BOTH_LOCATIONS)
    def cancel(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._apply(request, queryset, booking_cancel, "Cancelled")

    @admin.action(description="Mark completed", permissions=["change"], location=BOTH_LOCATIONS)
    def mark_completed(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._apply(request, queryset, booking_complete, "Marked completed:")

    @admin.action(description="Mark no-show", permissions=["change"], location=BOTH_LOCATIONS)
    def mark_no_show(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._apply(request, queryset, booking_mark_no_show, "Marked no-show:")


@admin.register(BookingEvent)
class BookingEventAdmin(InternalMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["booking", "kind", "actor_kind", "actor_channel", "actor_user", "actor_reference", "at"]
    list_filter = ["kind", "actor_kind", "actor_channel"]
    list_select_related = ["booking", "actor_user"]
    search_fields = ["booking__number", "actor_reference", "note"]
    date_hierarchy = "created_at"

    @admin.display(description="when", ordering="created_at")
    def at(self, event: BookingEvent) -> str:
        return local_time(event.created_at)


@admin.register(YearlyCounter)
class YearlyCounterAdmin(InternalMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "year", "last_value"]
    list_filter = ["name", "year"]
