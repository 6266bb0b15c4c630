"""The staff back office for conversations: the list, search, CSV, transcript page and dashboard.

The handoff queue is chatdesk.backoffice.handoffs; the pieces the pages render are
pii (masking), transcripts, provenance and charts, beside this module.

Conversations are the audit trail and the cost ledger, so the admin only reads them: no
add, change or delete, whoever asks. Two permissions on Conversation decide what else a
staff member sees (migration 0003 gives both to Owners, neither to Dispatchers):

- `chatdesk.view_costs`: token usage and USD cost, in the list, the totals, the CSV, the
  transcript and the dashboard;
- `chatdesk.view_customer_pii`: customers' phone numbers, emails and addresses. Without
  it they are masked, in structured fields and, as far as a pattern can tell, in what
  customers typed.

The list stays fast with a year of data (bench/admin_pages.py): it is counted and totalled
in one query, searched through a GIN index on the transcript text, and the filters are
EXISTS subqueries on partial indexes (migration 0004).
"""

from __future__ import annotations

import csv
import shlex
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from bookings.models import Customer
from bookings.phones import looks_like_phone, phone_display, phone_from_search
from bookings.selectors import business_tz, local_today
from chatdesk import replica
from chatdesk.backoffice import dashboard as stats
from chatdesk.backoffice import widget_snippet
from chatdesk.backoffice.charts import dashboard_charts, numbers_table, schedule_chart
from chatdesk.backoffice.common import (
    ReadOnlyMixin,
    ReplicaListMixin,
    WideListMixin,
    can_see_costs,
    can_see_pii,
    duration_text,
    local_time,
    short_time,
    staff_name,
    usd,
)
from chatdesk.backoffice.transcripts import conversation_transcript, cost_by_modality
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall

# --- Conversation list -------------------------------------------------------------------------


def transcript_matches(term: str) -> QuerySet[Message]:
    """Ids of conversations whose messages match `term` (web-search syntax: "quotes", or, -not).

    On PostgreSQL, full-text search: the SearchVector compiles to the expression of the GIN
    index message_text_search (migration 0004); change them together. SQLite (`make run`'s
    default) has no such search, so it gets a plain correct one: plain_text_matches.
    """
    if connection.vendor != "postgresql":
        return plain_text_matches(term)
    query = SearchQuery(term, config="english", search_type="websearch")
    return (
        Message.objects.annotate(document=SearchVector("text", config="english"))
        .filter(document=query)
        .values("conversation_id")
    )


def plain_text_matches(term: str) -> QuerySet[Message]:
    """The same search without full-text support: every word (or "quoted phrase") appears in
    one message, case-insensitively; a -word must not. No stemming ("repairs" does not find
    "repair"), and "or" is just a word."""
    try:
        parts = shlex.split(term)
    except ValueError:  # an unbalanced quote: take the words as typed, without it
        parts = [word.strip('"') for word in term.split()]
    messages = Message.objects.all()
    for part in parts:
        if part.startswith("-") and len(part) > 1:
            messages = messages.exclude(text__icontains=part[1:])
        elif part:
            messages = messages.filter(text__icontains=part)
    return messages.values("conversation_id")


def conversations_matching(term: str, *, contact_details: bool = True) -> QuerySet:
    """Ids of conversations matching a staff search: what was said, the customer's name or
    phone (typed any way), a callback phone, or (with a digit in it) the conversation number.
    Phones only with `contact_details` (view_customer_pii): otherwise a hit would confirm
    whose number it is.

    One UNION of small index-backed lookups, so the list's queries join a few ids instead of
    testing every conversation against every condition (an OR would scan them all).
    """
    customers = Customer.objects.filter(name__icontains=term).values("pk")
    sources = [
        transcript_matches(term),
        Conversation.objects.filter(customer__in=customers).values("pk"),
    ]
    if any(ch.isdigit() for ch in term):
        sources.append(Conversation.objects.filter(number__icontains=term).values("pk"))
    phone = phone_from_search(term) if contact_details else None
    if phone:
        # Phones are stored normalized (E.164) on the customer and on the callback request.
        sources.append(Conversation.objects.filter(customer__phone=phone).values("pk"))
        sources.append(HandoffRequest.objects.filter(contact_phone=phone).values("conversation_id"))
    first, *rest = (source.order_by() for source in sources)
    return first.union(*rest)


class StartedFilter(admin.SimpleListFilter):
    """Recent periods by the business's calendar (the date hierarchy drills into the past)."""

    title = "started"
    parameter_name = "started"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("today", "Today"), ("yesterday", "Yesterday"), ("7d", "Past 7 days"), ("30d", "Past 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation] | None:
        today = local_today()

        def midnight(days_ago: int) -> datetime:
            return datetime.combine(today - timedelta(days=days_ago), time.min, tzinfo=business_tz())

        ranges = {
            "today": (midnight(0), None),
            "yesterday": (midnight(1), midnight(0)),
            "7d": (midnight(6), None),
            "30d": (midnight(29), None),
        }
        if self.value() not in ranges:
            return None
        start, end = ranges[self.value()]
        queryset = queryset.filter(started_at__gte=start)
        return queryset.filter(started_at__lt=end) if end else queryset


class YesNoFilter(admin.SimpleListFilter):
    condition: Q

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "yes":
            return queryset.filter(self.condition)
        if self.value() == "no":
            return queryset.exclude(self.condition)
        return None


class BookedFilter(YesNoFilter):
    title = "made a booking"
    parameter_name = "booked"
    condition = Q(booking_count__gt=0)


class ToolErrorFilter(YesNoFilter):
    title = "had a tool error"
    parameter_name = "tool_error"
    # On the partial index toolcall_failed: only the failed calls are read.
    condition = Q(Exists(ToolCall.objects.filter(conversation=OuterRef("pk")).filter(~Q(error=""))))


class ModelFailureFilter(admin.SimpleListFilter):
    """Conversations in which the model failed, by kind (Message.failure_kind on failure events)."""

    title = "model failure"
    parameter_name = "failure"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("any", "Any (the customer saw it)"), *Message.FailureKind.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if not value:
            return None
        failures = Message.objects.filter(conversation=OuterRef("pk")).exclude(failure_kind="")
        if value == "any":
            failures = failures.exclude(failure_kind__in=Message.RECOVERED_KINDS)
        else:
            failures = failures.filter(failure_kind=value)
        return queryset.filter(Exists(failures))


class EscalatedFilter(YesNoFilter):
    title = "asked for a person"
    parameter_name = "escalated"
    condition = Q(Exists(HandoffRequest.objects.filter(conversation=OuterRef("pk")))) | Q(
        resolution=Conversation.Resolution.ESCALATED
    )


TOKEN_FIELDS = ("input_tokens", "output_tokens")


class TotalsPaginator(Paginator):
    """Counts the filtered conversations in the query that totals their tokens and cost.

    The admin needs the count anyway; with the sums in the same scan the totals line is
    free, and no second COUNT(*) runs (show_full_result_count is off too).
    """

    @cached_property
    def totals(self) -> dict:
        return self.object_list.order_by().aggregate(
            conversations=Count("pk"),
            tokens=Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
            cost=Coalesce(Sum("cost_usd"), Decimal("0")),
        )

    @cached_property
    def count(self) -> int:
        return self.totals["conversations"]


class FiltersOnly(ChangeList):
    """The list's filters, search and order without its page: what the CSV export needs."""

    def get_results(self, request: HttpRequest) -> None:
        self.result_list = self.queryset
        self.result_count = self.full_result_count = None
        self.paginator = None
        self.show_admin_actions = self.can_show_all = self.multi_page = False
        self.show_full_result_count = False


class Echo:
    """A file-like object for csv.writer that hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    # Spreadsheets run cells starting with = + - @ as formulas; a name can be "=HYPERLINK(...)".
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not looks_like_phone(value):
        return "'" + value
    return value


class ConversationCsv:
    """The CSV of a set of conversations, with the columns the user may see."""

    CHUNK = 1000

    def __init__(self, queryset: QuerySet[Conversation], *, pii: bool, costs: bool) -> None:
        self.queryset = queryset.select_related("customer")
        self.pii, self.costs = pii, costs
        self.writer = csv.writer(Echo())

    def header(self) -> str:
        columns = ["number", "channel", "status", "resolution", "started", "ended", "duration_s", "customer"]
        if self.pii:
            columns += ["customer_phone", "customer_email"]
        columns += ["messages", "bookings", "tool_failures", "last_error"]
        if self.costs:
            columns += ["input_tokens", "cached_input_tokens", "output_tokens", "audio_input_tokens"]
            columns += ["audio_output_tokens", "cost_usd"]
        return self.writer.writerow(columns)

    def row(self, i: Conversation) -> str:
        tz = business_tz()
        customer = i.customer
        values: list[object] = [
            i.number,
            i.channel,
            i.status,
            i.resolution,
            i.started_at.astimezone(tz).isoformat(),
            i.ended_at.astimezone(tz).isoformat() if i.ended_at else "",
            i.duration_seconds,
            customer.name if customer else "",
        ]
        if self.pii:
            values += [customer.phone if customer else "", customer.email if customer else ""]
        values += [i.message_count, i.booking_count, i.failure_count, i.last_error]
        if self.costs:
            values += [i.input_tokens, i.cached_input_tokens, i.output_tokens, i.audio_input_tokens]
            values += [i.audio_output_tokens, i.cost_usd]
        return self.writer.writerow([_cell(v) for v in values])

    def lines(self) -> Iterator[str]:
        yield self.header()
        for conversation in self.queryset.iterator(chunk_size=self.CHUNK):
            yield self.row(conversation)

    async def alines(self) -> AsyncIterator[str]:
        yield self.header()
        async for conversation in self.queryset.aiterator(chunk_size=self.CHUNK):
            yield self.row(conversation)


@admin.register(Conversation)
class ConversationAdmin(ReplicaListMixin, WideListMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Conversations: read-only, searchable through what was said, exportable."""

    list_display_links = ["number"]
    list_filter = [
        "channel",
        "has_call",
        "from_widget",
        "price_missing",
        "status",
        "resolution",
        StartedFilter,
        BookedFilter,
        ToolErrorFilter,
        ModelFailureFilter,
        EscalatedFilter,
    ]
    list_select_related = ["customer"]
    list_per_page = 50
    date_hierarchy = "started_at"
    # Searched by get_search_results; a non-empty list is what shows the search box.
    search_fields = ["number"]
    search_help_text = "Words said in the conversation, a customer's name or phone, or a conversation number."
    paginator = TotalsPaginator
    # The full count would be a second scan of a large table on every page view.
    show_full_result_count = False
    # Facet counts are one query per filter choice over the whole filtered set.
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = [
        "number",
        "channel",
        "came_from",
        "status",
        "resolution",
        "mode",
        "customer_name",
        "customer_contact",
        "started",
        "ended",
        "duration",
        "end_reason",
        "taken_over",
        "message_count",
        "booking_count",
        "failure_count",
        "model_failures",
        "last_error",
        "model",
        "tokens",
        "cost",
        "cost_breakdown_table",
        "user_agent",
    ]

    # -- the list --------------------------------------------------------------------------

    def get_list_display(self, request: HttpRequest) -> list[str]:
        columns = ["number", "channel", "status", "started_short", "duration"]
        # With PII the phone sits under the name: one column for both fits the list at 1280 px.
        columns.append("customer_with_phone" if can_see_pii(request.user) else "customer_name")
        columns += ["resolution", "bookings", "messages"]
        if can_see_costs(request.user):
            columns.append("cost")
        return columns

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        matching = conversations_matching(term, contact_details=can_see_pii(request.user))
        return queryset.filter(pk__in=matching), False

    @admin.display(description="started", ordering="started_at")
    def started(self, conversation: Conversation) -> str:
        return local_time(conversation.started_at)

    @admin.display(description="started", ordering="started_at")
    def started_short(self, conversation: Conversation) -> str:
        # The list's form: one line, so the list fits at 1280 px.
        return short_time(conversation.started_at)

    @admin.display(description="ended", ordering="ended_at")
    def ended(self, conversation: Conversation) -> str:
        return local_time(conversation.ended_at)

    @admin.display(description="duration")
    def duration(self, conversation: Conversation) -> str:
        return duration_text(conversation.duration_seconds)

    @admin.display(description="customer", ordering="customer__name")
    def customer_name(self, conversation: Conversation) -> str:
        return conversation.customer.name if conversation.customer else "-"

    @admin.display(description="customer", ordering="customer__name")
    def customer_with_phone(self, conversation: Conversation) -> str:
        if conversation.customer is None:
            return "-"
        customer = conversation.customer
        return format_html("{}<br><small>{}</small>", customer.name, phone_display(customer.phone))

    @admin.display(description="customer's contact")
    def customer_contact(self, conversation: Conversation) -> str:
        customer = conversation.customer
        if customer is None:
            return "-"
        return " · ".join(part for part in [phone_display(customer.phone), customer.email, customer.address] if part)

    @admin.display(description="bookings", ordering="booking_count")
    def bookings(self, conversation: Conversation) -> int:
        return conversation.booking_count

    @admin.display(description="messages", ordering="message_count")
    def messages(self, conversation: Conversation) -> int:
        return conversation.message_count

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, conversation: Conversation) -> str:
        if conversation.price_missing:
            # Loud on purpose: part of the usage was priced at $0 (chatdesk.assistant.costs._priced).
            return f"{usd(conversation.cost_usd)} (incomplete: price missing for a model it used)"
        return usd(conversation.cost_usd)

    @admin.display(description="tokens")
    def tokens(self, i: Conversation) -> str:
        text = f"{i.input_tokens:,} in ({i.cached_input_tokens:,} cached), {i.output_tokens:,} out"
        if i.reasoning_tokens:
            text += f" ({i.reasoning_tokens:,} reasoning)"
        if i.audio_input_tokens or i.audio_output_tokens:
            text += f"; audio {i.audio_input_tokens:,} in, {i.audio_output_tokens:,} out"
        return text

    @admin.display(description="cost by modality")
    def cost_breakdown_table(self, conversation: Conversation) -> str:
        rows = cost_by_modality(conversation)
        if not rows:
            return "-"
        return format_html(
            '<table class="cost-breakdown"><tbody>{}</tbody></table>',
            mark_safe(  # noqa: S308 (each row is built by format_html)
                "".join(format_html("<tr><th>{}</th><td>{}</td></tr>", kind, usd(value, 6)) for kind, value in rows)
            ),
        )

    @admin.display(description="model failures")
    def model_failures(self, conversation: Conversation) -> str:
        counts = dict(
            conversation.messages.exclude(failure_kind="")
            .values("failure_kind")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("failure_kind", "n")
        )
        labels = dict(Message.FailureKind.choices)
        return ", ".join(f"{labels[kind]} ×{counts[kind]}" for kind in labels if kind in counts) or "-"

    @admin.display(description="came from")
    def came_from(self, conversation: Conversation) -> str:
        if not conversation.from_widget:
            return "Our chat or voice page"
        return f"Website widget, on {conversation.widget_page}" if conversation.widget_page else "Website widget"

    @admin.display(description="taken over by")
    def taken_over(self, conversation: Conversation) -> str:
        if conversation.taken_over_by is None:
            return "-"
        return f"{staff_name(conversation.taken_over_by)} since {local_time(conversation.taken_over_at)}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # The model's item history (model_items) grows with every turn and is never shown.
        return (
            super()
            .get_queryset(request)
            .select_related("customer", "taken_over_by")
            .defer("model_items", "guided_state")
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        query = request.GET.copy()
        query.pop(PAGE_VAR, None)
        export = reverse("admin:chatdesk_conversation_export")
        context = {
            "title": "Conversations",
            "export_url": f"{export}?{query.urlencode()}" if query else export,
            "show_costs": can_see_costs(request.user),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    # -- the conversation page -------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Conversation | None = None) -> list:
        customer = ["customer_name", "customer_contact"] if can_see_pii(request.user) else ["customer_name"]
        fieldsets = [
            (
                None,
                {
                    "fields": [
                        ("number", "channel", "mode"),
                        "came_from",
                        ("status", "resolution", "end_reason"),
                        tuple(customer),
                        ("started", "ended", "duration"),
                        ("message_count", "booking_count", "failure_count"),
                        "model_failures",
                        "last_error",
                        "taken_over",
                    ]
                },
            )
        ]
        if can_see_costs(request.user):
            fieldsets.append(("Cost", {"fields": ["model", "tokens", "cost", "cost_breakdown_table"]}))
        fieldsets.append(("Client", {"fields": ["user_agent"], "classes": ["collapse"]}))
        return fieldsets

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Conversation | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["title"] = f"Conversation {obj.number}"
            context["transcript"] = conversation_transcript(
                obj, pii=can_see_pii(request.user), costs=can_see_costs(request.user)
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- extra pages: the dashboard and the CSV export -------------------------------------

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own URLs, whose "<object_id>/" would swallow these.
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="chatdesk_dashboard"),
            path("widget/", self.admin_site.admin_view(self.widget_view), name="chatdesk_widget"),
            path("export.csv", self.admin_site.admin_view(self.export_view), name="chatdesk_conversation_export"),
            *super().get_urls(),
        ]

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[ChangeList]:
        return FiltersOnly if getattr(request, "chatdesk_export", False) else super().get_changelist(request, **kwargs)

    @replica.replica_reads
    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The list's filtered, searched set as CSV, streamed row by row.

        Under ASGI the rows come from an async iterator (a sync one would be read into
        memory by Django before the first byte is sent); under WSGI from a sync one.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.chatdesk_export = True  # type: ignore[attr-defined]
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:chatdesk_conversation_changelist") + "?e=1")
        # The rows are read after this view returns, while the response streams: pinned to the
        # alias chosen now (the replica, if there is one), not to the reads mark, gone by then.
        queryset = changelist.queryset.using(replica.reads_alias())
        export = ConversationCsv(queryset, pii=can_see_pii(request.user), costs=can_see_costs(request.user))
        content = export.alines() if isinstance(request, ASGIRequest) else export.lines()
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime(timezone.now(), business_tz()).strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.csv"'
        return response

    def widget_view(self, request: HttpRequest) -> TemplateResponse:
        """The website widget: the snippet to paste, and the sites allowed to show it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Website widget",
            "opts": self.model._meta,
            **widget_snippet.snippet_context(request),
            "list_url": reverse("admin:chatdesk_conversation_changelist") + "?from_widget__exact=1",
        }
        return TemplateResponse(request, "admin/chatdesk/widget.html", context)

    @replica.replica_reads
    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        since, until = stats.default_range()
        form = DashboardForm(request.GET or None, initial={"since": since, "until": until})
        channel = None
        if form.is_valid():
            since = form.cleaned_data["since"] or since
            until = form.cleaned_data["until"] or until
            channel = form.cleaned_data["channel"] or None
        numbers = stats.dashboard(since=since, until=until, channel=channel)
        costs = can_see_costs(request.user)
        context = {
            **self.admin_site.each_context(request),
            "title": "Dashboard",
            "opts": self.model._meta,
            "form": form,
            "d": numbers,
            "show_costs": costs,
            "show_pii": can_see_pii(request.user),
            "charts": dashboard_charts(numbers, costs=costs),
            "numbers_table": numbers_table(numbers, costs=costs),
            "schedule_chart": schedule_chart(numbers.schedule, numbers.today),
            "handoff_url": reverse("admin:chatdesk_handoffrequest_changelist"),
            "list_url": reverse("admin:chatdesk_conversation_changelist"),
        }
        return TemplateResponse(request, "admin/chatdesk/dashboard.html", context)


class DashboardForm(forms.Form):
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    channel = forms.ChoiceField(
        required=False, choices=[("", "All channels"), *Conversation.ChannelKind.choices], label="Channel"
    )

    def clean(self) -> dict:
        data = super().clean()
        default_since, default_until = stats.default_range()
        since, until = data.get("since") or default_since, data.get("until") or default_until
        if since > until:
            raise forms.ValidationError("The start date is after the end date.")
        if (until - since).days + 1 > stats.MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Pick at most {stats.MAX_RANGE_DAYS} days.")
        return data
