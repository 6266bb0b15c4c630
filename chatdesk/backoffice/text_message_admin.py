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
from chatdesk.backoffice.pii import MASK, mask_text


class _PhoneShown:
    """Phone columns readable to staff who may see contact details, masked for the others.

    The column is swapped per request (`PHONE_COLUMNS`: the readable one and its masked twin),
    as the bookings admin does, rather than remembered on the admin object, which every
    request shares.
    """

    PHONE_COLUMNS: dict[str, str] = {}

    def _shown(self, request: HttpRequest, names: list[str] | tuple[str, ...]) -> list[str]:
        if can_see_pii(request.user):
            return list(names)
        return [self.PHONE_COLUMNS.get(name, name) for name in names]

    def get_fields(self, request: HttpRequest, obj: object | None = None) -> list[str]:
        return self._shown(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: object | None = None) -> list[str]:
        names = self._shown(request, super().get_readonly_fields(request, obj))
        if can_see_pii(request.user):
            return names
        # A masked twin is never a form field, wherever it stands in.
        return names + [twin for twin in set(self.PHONE_COLUMNS.values()) if twin not in names]

    def get_list_display(self, request: HttpRequest) -> list[str]:
        return self._shown(request, super().get_list_display(request))

    @admin.display(description="phone")
    def masked(self, row: object) -> str:
        return MASK

    @admin.display(description="text")
    def body_masked(self, row: object) -> str:
        return mask_text(row.body)


class TextMessageInline(_PhoneShown, ReadOnlyMixin, admin.TabularInline):
    """A booking's text messages: what was said, to whom, and whether it went."""

    model = TextMessage
    extra = 0
    can_delete = False
    verbose_name_plural = "text messages to the customer"
    fields = ["queued", "kind", "shown_status", "to", "body", "attempts", "last_error", "sent"]
    readonly_fields = fields
    PHONE_COLUMNS = {"to": "masked"}

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
        return phone_display(message.to_phone)

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
    PHONE_COLUMNS = {"to": "masked"}

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
    PHONE_COLUMNS = {"number": "masked", "phone": "masked"}

    def has_change_permission(self, request: HttpRequest, obj: TextOptOut | None = None) -> bool:
        return False  # a number is added or removed, never edited into another one

    def save_model(self, request: HttpRequest, obj: TextOptOut, form: forms.ModelForm, change: bool) -> None:
        obj.source = TextOptOut.Source.STAFF
        super().save_model(request, obj, form, change)

    @admin.display(description="phone", ordering="phone")
    def number(self, opt_out: TextOptOut) -> str:
        return phone_display(opt_out.phone)

    @admin.display(description="added", ordering="created_at")
    def added(self, opt_out: TextOptOut) -> str:
        return local_time(opt_out.created_at)


@admin.register(InboundTextMessage)
class InboundTextMessageAdmin(_PhoneShown, ReadOnlyMixin, admin.ModelAdmin):
    """Texts customers sent: STOP, START and HELP as handled, anything else for staff to answer."""

    list_display = ["received", "sender", "customer_name", "keyword", "body"]
    list_filter = ["keyword"]
    list_select_related = ["customer"]
    fields = ["received", "sender", "customer_name", "keyword", "body"]
    readonly_fields = fields
    # What a customer typed may hold a number or an address too.
    PHONE_COLUMNS = {"sender": "masked", "body": "body_masked"}

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundTextMessage]:
        return super().get_queryset(request).select_related("customer")

    @admin.display(description="from", ordering="from_phone")
    def sender(self, text: InboundTextMessage) -> str:
        return phone_display(text.from_phone)

    @admin.display(description="customer", ordering="customer__name")
    def customer_name(self, text: InboundTextMessage) -> str:
        # The name only: Customer's own string carries the phone.
        return text.customer.name if text.customer else "-"

    @admin.display(description="received", ordering="received_at")
    def received(self, text: InboundTextMessage) -> str:
        return local_time(text.received_at)
