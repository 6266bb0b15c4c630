"""The handoff queue: customers waiting for a call back, and marking them handled."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from bookings.phones import phone_display
from chatdesk.backoffice.common import (
    BOTH_LOCATIONS,
    ReplicaListMixin,
    can_see_pii,
    duration_text,
    local_time,
    staff_name,
)
from chatdesk.conversations import services
from chatdesk.conversations.models import Conversation, HandoffRequest


def handoff_mark_handled(*, handoffs: QuerySet[HandoffRequest], user: AbstractBaseUser) -> int:
    """Mark the still-waiting ones of `handoffs` handled by `user`; returns how many.

    Each one gets its audit row: handled_at/handled_by on the request (the queue's columns)
    and an event in its conversation's transcript naming who marked it, so whoever reads the
    conversation later sees the callback was dealt with, and by whom.

    The waiting rows are locked first (SELECT ... FOR UPDATE re-checks handled_at IS NULL
    after a concurrent commit): when two dispatchers click at once, the first one is recorded,
    once, and the second changes nothing.
    """
    with transaction.atomic():
        waiting = list(
            HandoffRequest.objects.select_for_update()
            .filter(pk__in=handoffs.values("pk"), handled_at__isnull=True)
            .order_by("pk")
            .values_list("pk", "conversation_id")
        )
        if not waiting:
            return 0
        HandoffRequest.objects.filter(pk__in=[pk for pk, _ in waiting]).update(
            handled_at=timezone.now(), handled_by=user
        )
        who = staff_name(user)
        conversations = Conversation.objects.in_bulk({conversation_id for _, conversation_id in waiting})
        for _, conversation_id in waiting:
            services.staff_event_record(conversations[conversation_id], f"{who} marked the callback request handled.")
    return len(waiting)


class HandoffStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("waiting", "Waiting"), ("handled", "Handled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[HandoffRequest]) -> QuerySet | None:
        if self.value() == "waiting":
            return queryset.filter(handled_at__isnull=True)
        if self.value() == "handled":
            return queryset.filter(handled_at__isnull=False)
        return None


@admin.register(HandoffRequest)
class HandoffRequestAdmin(ReplicaListMixin, admin.ModelAdmin):
    """Customers who asked for a person: a queue, waiting before handled, urgent first, oldest first.

    The contact phone is what staff call back on, so whoever may handle handoffs sees it.
    """

    list_filter = [HandoffStateFilter, "urgent", "conversation__channel"]
    list_select_related = ["conversation", "handled_by"]
    ordering = [F("handled_at").desc(nulls_first=True), "-urgent", "created_at"]
    search_fields = ["reason", "contact_name", "conversation__number"]
    actions = ["mark_handled"]
    list_per_page = 50
    fields = [
        "state",
        "urgent",
        "reason",
        "contact_name",
        "callback_phone",
        "conversation_link",
        "requested",
        "handled",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: HandoffRequest | None = None) -> bool:
        return False

    def can_see_contact(self, request: HttpRequest) -> bool:
        return can_see_pii(request.user) or self.has_change_permission(request)

    def get_list_display(self, request: HttpRequest) -> list[str]:
        columns = ["state", "urgency", "waiting", "reason_short", "contact_name"]
        if self.can_see_contact(request):
            columns.append("callback_phone")
        return [*columns, "conversation_link", "handled"]

    def get_fields(self, request: HttpRequest, obj: HandoffRequest | None = None) -> list[str]:
        return [f for f in self.fields if f != "callback_phone" or self.can_see_contact(request)]

    def get_queryset(self, request: HttpRequest) -> QuerySet[HandoffRequest]:
        return super().get_queryset(request).select_related("conversation", "handled_by")

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        # Every field is read-only; the only change is the "Mark handled" action.
        context = {"show_save": False, "show_save_and_continue": False, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)

    @admin.display(description="state", ordering="handled_at")
    def state(self, handoff: HandoffRequest) -> str:
        return "Handled" if handoff.handled_at else "Waiting"

    @admin.display(description="urgent", ordering="urgent")
    def urgency(self, handoff: HandoffRequest) -> str:
        return mark_safe('<strong class="urgent">Urgent</strong>') if handoff.urgent else ""

    @admin.display(description="waiting", ordering="created_at")
    def waiting(self, handoff: HandoffRequest) -> str:
        end = handoff.handled_at or timezone.now()
        return duration_text(int((end - handoff.created_at).total_seconds()))

    @admin.display(description="reason")
    def reason_short(self, handoff: HandoffRequest) -> str:
        return handoff.reason if len(handoff.reason) <= 120 else handoff.reason[:119] + "…"

    @admin.display(description="callback phone")
    def callback_phone(self, handoff: HandoffRequest) -> str:
        return phone_display(handoff.contact_phone) or "-"

    @admin.display(description="conversation", ordering="conversation__number")
    def conversation_link(self, handoff: HandoffRequest) -> str:
        url = reverse("admin:chatdesk_conversation_change", args=[handoff.conversation_id])
        return format_html('<a href="{}">{}</a>', url, handoff.conversation.number)

    @admin.display(description="requested", ordering="created_at")
    def requested(self, handoff: HandoffRequest) -> str:
        return local_time(handoff.created_at)

    @admin.display(description="handled", ordering="handled_at")
    def handled(self, handoff: HandoffRequest) -> str:
        if not handoff.handled_at:
            return "-"
        return f"{local_time(handoff.handled_at)} by {staff_name(handoff.handled_by)}"

    @admin.action(description="Mark handled", permissions=["change"], location=BOTH_LOCATIONS)
    def mark_handled(self, request: HttpRequest, queryset: QuerySet[HandoffRequest]) -> None:
        selected = queryset.count()
        changed = handoff_mark_handled(handoffs=queryset, user=request.user)
        if changed:
            self.message_user(request, f"Marked {changed} handoff(s) handled.", messages.SUCCESS)
        if selected - changed:
            self.message_user(request, f"{selected - changed} were already handled.", messages.WARNING)
