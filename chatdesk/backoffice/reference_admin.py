"""Reference data in the back office: trades, services, technicians and their working hours,
the business's opening hours, closed days and technicians' calendar events (time off).

Unlike bookings, reference data has no service layer: staff edit it directly, and the
booking rules read it as it stands. Changing it never moves existing bookings; saving time
off that overlaps active bookings warns staff which visits they still have to reschedule.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from bookings.models import BusinessHours, CalendarEvent, ClosedDay, Service, Technician, Trade, WorkingHours
from bookings.phones import phone_display
from bookings.selectors import active_bookings_in
from chatdesk.backoffice.common import local_time


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "service_count", "technician_count"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Trade]:
        # distinct: the two joins would otherwise multiply each other's counts.
        return (
            super()
            .get_queryset(request)
            .annotate(
                service_total=Count("services", distinct=True),
                technician_total=Count("technicians", distinct=True),
            )
        )

    @admin.display(description="services", ordering="service_total")
    def service_count(self, trade: Trade) -> int:
        return trade.service_total

    @admin.display(description="technicians", ordering="technician_total")
    def technician_count(self, trade: Trade) -> int:
        return trade.technician_total


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "trade", "duration_minutes", "price_display", "is_emergency", "active"]
    list_filter = ["trade", "active", "is_emergency"]
    list_select_related = ["trade"]
    search_fields = ["name", "slug", "description", "keywords"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["trade", "name", "slug", "description", "active", "is_emergency"]}),
        (
            "What customers call it",
            {
                "fields": ["keywords"],
                "description": (
                    "The guided chat (used when the AI assistant is off) matches what customers type "
                    "against these. When two services share a word, the customer is asked which one."
                ),
            },
        ),
        (
            "Price",
            {
                "fields": ["price_min", "price_max", "currency"],
                "description": "Applies to new bookings; existing bookings keep the estimate they were given.",
            },
        ),
        (
            "Scheduling",
            {
                "fields": ["duration_minutes", "buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes"],
                "description": "Buffers are travel and prep time: the technician is busy, the customer is not visited.",
            },
        ),
    ]

    @admin.display(description="price", ordering="price_min")
    def price_display(self, service: Service) -> str:
        return service.price_display


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    extra = 0


@admin.register(Technician)
class TechnicianAdmin(admin.ModelAdmin):
    list_display = ["__str__", "title", "trade_names", "active", "phone_number", "email"]
    list_filter = ["active", "trades"]
    search_fields = ["first_name", "last_name", "title", "phone", "email"]
    filter_horizontal = ["trades"]
    inlines = [WorkingHoursInline]
    fieldsets = [
        (None, {"fields": ["first_name", "last_name", "title", "trades", "active"]}),
        (
            "Internal",
            {
                "fields": ["phone", "email", "pay_rate", "home_address"],
                "description": "Staff only: never shown to customers or to the assistant.",
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Technician]:
        return super().get_queryset(request).prefetch_related("trades")

    @admin.display(description="trades")
    def trade_names(self, technician: Technician) -> str:
        return ", ".join(trade.name for trade in technician.trades.all())

    @admin.display(description="phone", ordering="phone")
    def phone_number(self, technician: Technician) -> str:
        return phone_display(technician.phone)


@admin.register(WorkingHours)
class WorkingHoursAdmin(admin.ModelAdmin):
    list_display = ["technician", "weekday", "start_time", "end_time"]
    list_filter = ["weekday", "technician"]
    list_select_related = ["technician"]
    search_fields = ["technician__first_name", "technician__last_name"]


@admin.register(BusinessHours)
class BusinessHoursAdmin(admin.ModelAdmin):
    list_display = ["weekday", "opens", "closes"]
    list_filter = ["weekday"]


@admin.register(ClosedDay)
class ClosedDayAdmin(admin.ModelAdmin):
    list_display = ["date", "reason"]
    date_hierarchy = "date"
    search_fields = ["reason"]


@admin.register(CalendarEvent)
class CalendarEventAdmin(admin.ModelAdmin):
    list_display = ["technician", "kind", "title", "starts", "ends"]
    list_filter = ["kind", "technician"]
    list_select_related = ["technician"]
    search_fields = ["title", "technician__first_name", "technician__last_name"]
    date_hierarchy = "start"

    @admin.display(description="start", ordering="start")
    def starts(self, event: CalendarEvent) -> str:
        return local_time(event.start)

    @admin.display(description="end", ordering="end")
    def ends(self, event: CalendarEvent) -> str:
        return local_time(event.end)

    def save_model(self, request: HttpRequest, obj: CalendarEvent, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Time off blocks new bookings but cannot move existing ones: tell staff which
        # visits they still have to reschedule or cancel.
        clashes = list(
            active_bookings_in([obj.technician_id], obj.start, obj.end)
            .order_by("start")
            .values_list("number", flat=True)
        )
        if clashes:
            self.message_user(
                request,
                f"{obj.technician} still has {len(clashes)} active booking(s) in this period: {', '.join(clashes)}. "
                "Reschedule or cancel them.",
                messages.WARNING,
            )
