"""Text messages in the back office: each booking's messages with their status (an inline on the
booking's page), the opt-out list staff can add to, and the texts customers sent us.

Messages are written and sent by bookings.text_messages only, so they are read-only here.
Phone numbers follow the one policy: shown to staff with chatdesk.view_customer_pii, masked
for everyone else, as at every other door.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from bookings.errors import InvalidInput
from bookings.models import InboundTextMessage, TextMessage, TextOptOut
from bookings.phones import normalize_phone, phone_display
from chatdesk.backoffice.common import ReadOnlyMixin, can_see_pii, local_time
from chatdesk.backoffice.pii import MASK


class _PhoneShown:
    """Shows `phone` readable to staff who may see contact details, masked to the others."""

    def get_fields(self, request: HttpRequest, obj: object | None = None) -> list[str]:
        self.pii = can_see_pii(request.user)
        return super().get_fields(request, obj)

    def get_list_display(self, request: HttpRequest) -> list[str]:
        self.pii = can_see_pii(request.user)
        return super().get_list_display(request)

    def shown(self, phone: str) -> str:
        return phone_display(phone) if self.pii else MASK


class TextMessageInline(_PhoneShown, ReadOnlyMixin, admin.TabularInline):
    """A booking's text messages: what was said, to whom, and whether it went."""

    model = TextMessage
    extra = 0
    can_delete = False
    verbose_name_plural = "text messages to the customer"
    fields = ["queued", "kind", "shown_status", "to", "body", "attempts", "last_error", "sent"]
    readonly_fields = fields

    @admin.display(description="queued")
    def queued(self, message: TextMessage) -> str:
        return local_time(message.created_at)

    @admin.display(description="status")
    def shown_status(self, message: TextMessage) -> str:
        if message.status == TextMessage.Status.HELD:
            return f"Held for quiet hours until {local_time(message.send_after)}"
        if message.status == TextMessage.Status.FAILED:
            return f"Failed, retried from {local_time(message.send_after)}"
        return message.get_status_display()

    @admin.display(description="to")
    def to(self, message: TextMessage) -> str:
        return self.shown(message.to_phone)

    @admin.display(description="sent")
    def sent(self, message: TextMessage) -> str:
        return local_time(message.sent_at)


@admin.register(TextMessage)
class TextMessageAdmin(_PhoneShown, ReadOnlyMixin, admin.ModelAdmin):
    """Every text to customers, newest first: what is held, what failed and is retried, what went."""

    list_display = ["queued", "booking", "kind", "shown_status", "to", "attempts", "last_error", "sent"]
    list_filter = ["status", "kind"]
    list_select_related = ["booking"]
    search_fields = ["booking__number"]
    ordering = ["-created_at", "-id"]
    fields = ["queued", "booking", "kind", "shown_status", "to", "body", "attempts", "last_error", "sent"]
    readonly_fields = fields

    queued = TextMessageInline.queued
    shown_status = TextMessageInline.shown_status
    to = TextMessageInline.to
    sent = TextMessageInline.sent


class TextOptOutForm(forms.ModelForm):
    class Meta:
        model = TextOptOut
        fields = ["phone", "note"]

    def clean_phone(self) -> str:
        # Stored as E.164, the form every text is addressed to, so any typing matches.
        try:
            return normalize_phone(self.cleaned_data["phone"])
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None


@admin.register(TextOptOut)
class TextOptOutAdmin(_PhoneShown, admin.ModelAdmin):
    """Numbers that get no texts: STOP replies, and numbers staff add (a customer asked by phone)."""

    form = TextOptOutForm
    list_display = ["number", "source", "note", "added"]
    list_filter = ["source"]

    def has_change_permission(self, request: HttpRequest, obj: TextOptOut | None = None) -> bool:
        return False  # a number is added or removed, never edited into another one

    def save_model(self, request: HttpRequest, obj: TextOptOut, form: forms.ModelForm, change: bool) -> None:
        obj.source = TextOptOut.Source.STAFF
        super().save_model(request, obj, form, change)

    @admin.display(description="phone", ordering="phone")
    def number(self, opt_out: TextOptOut) -> str:
        return self.shown(opt_out.phone)

    @admin.display(description="added", ordering="created_at")
    def added(self, opt_out: TextOptOut) -> str:
        return local_time(opt_out.created_at)


@admin.register(InboundTextMessage)
class InboundTextMessageAdmin(_PhoneShown, ReadOnlyMixin, admin.ModelAdmin):
    """Texts customers sent: STOP, START and HELP as handled, anything else for staff to answer."""

    list_display = ["received", "sender", "customer", "keyword", "body"]
    list_filter = ["keyword"]
    list_select_related = ["customer"]
    fields = ["received", "sender", "customer", "keyword", "body"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundTextMessage]:
        return super().get_queryset(request).select_related("customer")

    @admin.display(description="from", ordering="from_phone")
    def sender(self, text: InboundTextMessage) -> str:
        return self.shown(text.from_phone)

    @admin.display(description="received", ordering="received_at")
    def received(self, text: InboundTextMessage) -> str:
        return local_time(text.received_at)
