"""The staff back office for conversations: transcripts, the dashboard and the handoff queue.

Conversations are the audit trail and the cost ledger, so the admin only reads them: no
add, change or delete, whoever asks. Two permissions on Interaction decide what else a
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
import html
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from bookings.admin import BOTH_LOCATIONS, PHONE_LIKE, local_time
from bookings.errors import InvalidInput
from bookings.models import ActorKind, Booking, Customer
from bookings.phones import normalize_phone
from bookings.selectors import business_tz, local_today
from chatdesk import dashboard as stats
from chatdesk.models import HandoffRequest, Interaction, Message, ToolCall

Users = AbstractBaseUser | AnonymousUser
MASK = "•••"


def can_see_costs(user: Users) -> bool:
    return user.has_perm("chatdesk.view_costs")


def can_see_pii(user: Users) -> bool:
    return user.has_perm("chatdesk.view_customer_pii")


def usd(value: Decimal | None, places: int = 4) -> str:
    return "-" if value is None else f"${value:,.{places}f}"


def duration_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- Customer details: masked for staff without chatdesk.view_customer_pii ------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits and the separators people type in phone numbers. Not right after a word
# character or a hyphen, so booking and conversation numbers (BK-2026-000042) survive.
PHONE_RUN = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{5,}\d(?![\w])")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Keys of tool arguments and results that hold a customer's contact details.
PII_KEYS = frozenset({"phone", "customer_phone", "contact_phone", "email", "customer_email", "address"})


def _mask_phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    # Dates and short numbers (prices, times, counts) are not phone numbers.
    if ISO_DATE.match(text) or not 7 <= digits <= 15:
        return text
    return MASK


def mask_text(text: str) -> str:
    """Mask emails and phone numbers in free text (what a customer typed, or was read back).

    Free-text street addresses cannot be told apart reliably and are left as typed; the
    structured ones (tool arguments, bookings) are masked by key.
    """
    return PHONE_RUN.sub(_mask_phone, EMAIL.sub(MASK, text))


def mask_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: (MASK if k in PII_KEYS and v else mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


# --- The transcript -----------------------------------------------------------------------

# JSON longer than this is folded into <details> so the conversation stays readable.
FOLD_CHARS = 160
ROLE_LABELS = {
    Message.Role.CUSTOMER: "Customer",
    Message.Role.ASSISTANT: "Assistant",
    Message.Role.STAFF: "Staff",
    Message.Role.EVENT: "System",
}


@dataclass(frozen=True)
class JsonBlock:
    text: str
    folded: bool
    summary: str


def _json_block(value: object, *, pii: bool) -> JsonBlock | None:
    if value in (None, {}, []):
        return None
    if not pii:
        value = mask_json(value)
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    compact = json.dumps(value, ensure_ascii=False, default=str)
    if len(compact) <= FOLD_CHARS:
        return JsonBlock(text=compact, folded=False, summary="")
    size = f"{len(value)} keys" if isinstance(value, dict) else f"{len(value)} items" if isinstance(value, list) else ""
    return JsonBlock(text=text, folded=True, summary=size)


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(business_tz()):%H:%M:%S}"


def _seconds(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _staff_name(user: object | None) -> str:
    if user is None:
        return "Staff"
    return user.get_full_name() or user.get_username()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Transcript:
    entries: list[dict]
    bookings: list[dict]
    handoffs: list[dict]
    tool_errors: int


def conversation_transcript(interaction: Interaction, *, pii: bool, costs: bool) -> Transcript:
    """Messages and tool calls in time order, ready to render, in three queries.

    Tool calls are recorded when they start, so each sits between the customer's
    message that led to it and the reply that used its result.
    """
    tz = business_tz()
    rows: list[tuple[datetime, int, int, object]] = []
    for message in interaction.messages.select_related("staff_user").order_by("created_at", "id"):
        rows.append((message.created_at, 0, message.pk, message))
    calls = list(interaction.tool_calls.select_related("booking").order_by("created_at", "id"))
    rows += [(call.created_at, 1, call.pk, call) for call in calls]
    rows.sort(key=lambda row: row[:3])

    entries: list[dict] = []
    day = None
    for at, _, _, row in rows:
        if at.astimezone(tz).date() != day:
            day = at.astimezone(tz).date()
            entries.append({"kind": "day", "label": f"{at.astimezone(tz):%A %-d %B %Y}"})
        if isinstance(row, Message):
            entries.append(
                {
                    "kind": "message",
                    "id": row.pk,
                    "role": row.role,
                    "who": _staff_name(row.staff_user) if row.role == Message.Role.STAFF else ROLE_LABELS[row.role],
                    "time": _clock(at),
                    "iso": at.isoformat(),
                    "text": row.text if pii else mask_text(row.text),
                    "latency": _seconds(row.latency_ms),
                    "cost": usd(row.cost_usd, 6) if costs and row.cost_usd is not None else "",
                    "voice": row.channel == Interaction.ChannelKind.VOICE,
                    "interrupted": row.interrupted,
                }
            )
        else:
            call: ToolCall = row  # type: ignore[assignment]
            arguments = call.arguments
            if not arguments and call.raw_arguments:
                # Arguments that did not parse: show what the model sent.
                arguments = {"raw": call.raw_arguments}
            entries.append(
                {
                    "kind": "tool",
                    "id": call.pk,
                    "name": call.name,
                    "call_id": call.call_id,
                    "time": _clock(at),
                    "iso": at.isoformat(),
                    "ok": call.ok,
                    "error": call.error,
                    "duration": _seconds(call.duration_ms),
                    "arguments": _json_block(arguments, pii=pii),
                    "result": _json_block(call.result, pii=pii),
                    "booking": _booking_link(call.booking) if call.booking else None,
                }
            )

    bookings: dict[int, dict] = {}
    for call in calls:
        if call.booking and call.ok and call.name in BOOKING_TOOLS:
            link = bookings.setdefault(call.booking_id, {**_booking_link(call.booking), "actions": []})
            link["actions"].append(BOOKING_TOOLS[call.name])
    handoffs = [
        {
            "reason": h.reason if pii else mask_text(h.reason),
            "urgent": h.urgent,
            "contact": _handoff_contact(h, pii),
            "requested": local_time(h.created_at),
            "handled": f"{local_time(h.handled_at)} by {_staff_name(h.handled_by)}" if h.handled_at else "",
            "url": reverse("admin:chatdesk_handoffrequest_change", args=[h.pk]),
        }
        for h in interaction.handoffs.select_related("handled_by").order_by("created_at")
    ]
    return Transcript(
        entries=entries,
        bookings=list(bookings.values()),
        handoffs=handoffs,
        tool_errors=sum(1 for call in calls if not call.ok),
    )


# What each booking tool did to the booking it names (lookups are not listed).
BOOKING_TOOLS = {"create_booking": "booked", "reschedule_booking": "rescheduled", "cancel_booking": "cancelled"}


def _booking_link(booking: Booking) -> dict:
    return {"number": booking.number, "url": reverse("admin:bookings_booking_change", args=[booking.pk])}


def _handoff_contact(handoff: HandoffRequest, pii: bool) -> str:
    phone = handoff.contact_phone if pii else (MASK if handoff.contact_phone else "")
    return " · ".join(part for part in [handoff.contact_name, phone] if part)


def cost_by_modality(interaction: Interaction) -> list[tuple[str, Decimal]]:
    """USD per modality and kind, e.g. [("Audio output", 0.04), ("Text (chat model)", 0.0012)].

    Voice responses record their cost by modality in cost_breakdown; text chat turns only
    add to cost_usd, so whatever the breakdown does not explain is the text chat model's.
    """
    rows = []
    explained = Decimal("0")
    for kind, amount in sorted((interaction.cost_breakdown or {}).items()):
        value = Decimal(str(amount))
        explained += value
        rows.append((kind.replace("_", " ").capitalize(), value))
    rest = interaction.cost_usd - explained
    if rest > 0:
        rows.append(("Text (chat model)", rest))
    return rows


# --- "Why does this booking exist" (shown by bookings.admin.BookingAdmin) ------------------

REFERENCE = re.compile(r"^(?P<number>INT-\d{4}-\d+) (?P<call_id>\S+)$")
QUOTE_CHARS = 200


def booking_provenance(booking: Booking) -> list[dict]:
    """Who or what is behind every change of `booking`, oldest first, in two queries.

    Chat and voice changes carry "INT-2026-00012 call_abc" in BookingEvent.actor_reference:
    that finds the tool call, its conversation, and the customer's words just before it.
    Tool calls that only looked the booking up are listed after the changes.
    """
    events = list(booking.events.select_related("actor_user").order_by("created_at", "id"))
    references = {}
    for event in events:
        match = REFERENCE.match(event.actor_reference or "")
        if match:
            references[event.pk] = (match["number"], match["call_id"])
    wanted = Q(booking=booking)
    for number, call_id in references.values():
        wanted |= Q(interaction__number=number, call_id=call_id)
    said = Message.objects.filter(
        interaction=OuterRef("interaction"), role=Message.Role.CUSTOMER, created_at__lte=OuterRef("created_at")
    ).order_by("-created_at", "-id")
    calls = {
        (call.interaction.number, call.call_id): call
        for call in ToolCall.objects.filter(wanted)
        .select_related("interaction")
        .annotate(customer_said=Subquery(said.values("text")[:1]))
    }

    def call_row(call: ToolCall) -> dict:
        url = reverse("admin:chatdesk_interaction_change", args=[call.interaction_id])
        said_text = mask_text(call.customer_said or "")  # type: ignore[attr-defined]
        return {
            "conversation": call.interaction.number,
            "url": f"{url}#call-{call.pk}",
            "tool": call.name,
            "call_id": call.call_id,
            "said": said_text[:QUOTE_CHARS] + ("…" if len(said_text) > QUOTE_CHARS else ""),
        }

    rows = []
    used = set()
    for event in events:
        row = {
            "when": local_time(event.created_at),
            "kind": event.get_kind_display(),
            "channel": event.get_actor_channel_display() if event.actor_channel else "",
            "note": event.note,
            "call": None,
            "staff": "",
            "actor": event.get_actor_kind_display(),
            "reference": event.actor_reference,
        }
        if event.actor_kind == ActorKind.STAFF:
            row["staff"] = _staff_name(event.actor_user) if event.actor_user else "a staff user since removed"
        key = references.get(event.pk)
        if key and key in calls:
            row["call"] = call_row(calls[key])
            used.add(key)
        rows.append(row)
    lookups = [call_row(call) for key, call in calls.items() if key not in used]
    return [*rows, *({"kind": "Looked up", "call": c, "actor": "Customer", "lookup": True} for c in lookups)]


def booking_provenance_html(booking: Booking) -> SafeString:
    if booking.pk is None:
        return mark_safe("-")
    return render_to_string("admin/chatdesk/provenance.html", {"rows": booking_provenance(booking)})


# --- Conversation list -------------------------------------------------------------------------


def transcript_matches(term: str) -> QuerySet[Message]:
    """Ids of conversations whose messages match `term` (web-search syntax: "quotes", or, -not).

    The SearchVector compiles to the expression of the GIN index message_text_search
    (migration 0004); change them together.
    """
    query = SearchQuery(term, config="english", search_type="websearch")
    return (
        Message.objects.annotate(document=SearchVector("text", config="english"))
        .filter(document=query)
        .values("interaction_id")
    )


def conversations_matching(term: str) -> QuerySet:
    """Ids of conversations matching a staff search: what was said, the customer's name or
    phone (typed any way), a callback phone, or (with a digit in it) the conversation number.

    One UNION of small index-backed lookups, so the list's queries join a few ids instead of
    testing every conversation against every condition (an OR would scan them all).
    """
    customers = Customer.objects.filter(name__icontains=term).values("pk")
    sources = [
        transcript_matches(term),
        Interaction.objects.filter(customer__in=customers).values("pk"),
    ]
    if any(ch.isdigit() for ch in term):
        sources.append(Interaction.objects.filter(number__icontains=term).values("pk"))
    if PHONE_LIKE.match(term):
        # Phones are stored normalized (E.164) on the customer and on the callback request.
        try:
            phone = normalize_phone(term)
        except InvalidInput:
            pass
        else:
            sources.append(Interaction.objects.filter(customer__phone=phone).values("pk"))
            sources.append(HandoffRequest.objects.filter(contact_phone=phone).values("interaction_id"))
    first, *rest = (source.order_by() for source in sources)
    return first.union(*rest)


class StartedFilter(admin.SimpleListFilter):
    """Recent periods by the business's calendar (the date hierarchy drills into the past)."""

    title = "started"
    parameter_name = "started"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("today", "Today"), ("yesterday", "Yesterday"), ("7d", "Past 7 days"), ("30d", "Past 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Interaction]) -> QuerySet[Interaction] | None:
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
    condition = Q(Exists(ToolCall.objects.filter(interaction=OuterRef("pk")).filter(~Q(error=""))))


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
        failures = Message.objects.filter(interaction=OuterRef("pk")).exclude(failure_kind="")
        if value == "any":
            failures = failures.exclude(failure_kind=Message.FailureKind.INCOMPLETE_RETRIED)
        else:
            failures = failures.filter(failure_kind=value)
        return queryset.filter(Exists(failures))


class EscalatedFilter(YesNoFilter):
    title = "asked for a person"
    parameter_name = "escalated"
    condition = Q(Exists(HandoffRequest.objects.filter(interaction=OuterRef("pk")))) | Q(
        resolution=Interaction.Resolution.ESCALATED
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
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not PHONE_LIKE.match(value):
        return "'" + value
    return value


class ConversationCsv:
    """The CSV of a set of conversations, with the columns the user may see."""

    CHUNK = 1000

    def __init__(self, queryset: QuerySet[Interaction], *, pii: bool, costs: bool) -> None:
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

    def row(self, i: Interaction) -> str:
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
        for interaction in self.queryset.iterator(chunk_size=self.CHUNK):
            yield self.row(interaction)

    async def alines(self) -> AsyncIterator[str]:
        yield self.header()
        async for interaction in self.queryset.aiterator(chunk_size=self.CHUNK):
            yield self.row(interaction)


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """Conversations: read-only, searchable through what was said, exportable."""

    list_display_links = ["number"]
    list_filter = [
        "channel",
        "has_call",
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

    # -- permissions: viewable, never editable --------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Interaction | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Interaction | None = None) -> bool:
        return False

    # -- the list --------------------------------------------------------------------------

    def get_list_display(self, request: HttpRequest) -> list[str]:
        columns = ["number", "channel", "status", "started", "duration", "customer_name"]
        if can_see_pii(request.user):
            columns.append("customer_phone")
        columns += ["resolution", "bookings", "messages"]
        if can_see_costs(request.user):
            columns.append("cost")
        return columns

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Interaction], search_term: str
    ) -> tuple[QuerySet[Interaction], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(pk__in=conversations_matching(term)), False

    @admin.display(description="started", ordering="started_at")
    def started(self, interaction: Interaction) -> str:
        return local_time(interaction.started_at)

    @admin.display(description="ended", ordering="ended_at")
    def ended(self, interaction: Interaction) -> str:
        return local_time(interaction.ended_at)

    @admin.display(description="duration")
    def duration(self, interaction: Interaction) -> str:
        return duration_text(interaction.duration_seconds)

    @admin.display(description="customer", ordering="customer__name")
    def customer_name(self, interaction: Interaction) -> str:
        return interaction.customer.name if interaction.customer else "-"

    @admin.display(description="phone")
    def customer_phone(self, interaction: Interaction) -> str:
        return interaction.customer.phone if interaction.customer else "-"

    @admin.display(description="customer's contact")
    def customer_contact(self, interaction: Interaction) -> str:
        customer = interaction.customer
        if customer is None:
            return "-"
        return " · ".join(part for part in [customer.phone, customer.email, customer.address] if part)

    @admin.display(description="bookings", ordering="booking_count")
    def bookings(self, interaction: Interaction) -> int:
        return interaction.booking_count

    @admin.display(description="messages", ordering="message_count")
    def messages(self, interaction: Interaction) -> int:
        return interaction.message_count

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, interaction: Interaction) -> str:
        if interaction.price_missing:
            # Loud on purpose: part of the usage was priced at $0 (voice.calls._priced).
            return f"{usd(interaction.cost_usd)} (incomplete: price missing for a model it used)"
        return usd(interaction.cost_usd)

    @admin.display(description="tokens")
    def tokens(self, i: Interaction) -> str:
        text = f"{i.input_tokens:,} in ({i.cached_input_tokens:,} cached), {i.output_tokens:,} out"
        if i.reasoning_tokens:
            text += f" ({i.reasoning_tokens:,} reasoning)"
        if i.audio_input_tokens or i.audio_output_tokens:
            text += f"; audio {i.audio_input_tokens:,} in, {i.audio_output_tokens:,} out"
        return text

    @admin.display(description="cost by modality")
    def cost_breakdown_table(self, interaction: Interaction) -> str:
        rows = cost_by_modality(interaction)
        if not rows:
            return "-"
        return format_html(
            '<table class="cost-breakdown"><tbody>{}</tbody></table>',
            mark_safe(  # noqa: S308 (each row is built by format_html)
                "".join(format_html("<tr><th>{}</th><td>{}</td></tr>", kind, usd(value, 6)) for kind, value in rows)
            ),
        )

    @admin.display(description="model failures")
    def model_failures(self, interaction: Interaction) -> str:
        counts = dict(
            interaction.messages.exclude(failure_kind="")
            .values("failure_kind")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("failure_kind", "n")
        )
        labels = dict(Message.FailureKind.choices)
        return ", ".join(f"{labels[kind]} ×{counts[kind]}" for kind in labels if kind in counts) or "-"

    @admin.display(description="taken over by")
    def taken_over(self, interaction: Interaction) -> str:
        if interaction.taken_over_by is None:
            return "-"
        return f"{_staff_name(interaction.taken_over_by)} since {local_time(interaction.taken_over_at)}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Interaction]:
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
        export = reverse("admin:chatdesk_interaction_export")
        context = {
            "title": "Conversations",
            "export_url": f"{export}?{query.urlencode()}" if query else export,
            "show_costs": can_see_costs(request.user),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    # -- the conversation page -------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Interaction | None = None) -> list:
        customer = ["customer_name", "customer_contact"] if can_see_pii(request.user) else ["customer_name"]
        fieldsets = [
            (
                None,
                {
                    "fields": [
                        ("number", "channel", "mode"),
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
        obj: Interaction | None = None,
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
            path("export.csv", self.admin_site.admin_view(self.export_view), name="chatdesk_interaction_export"),
            *super().get_urls(),
        ]

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[ChangeList]:
        return FiltersOnly if getattr(request, "chatdesk_export", False) else super().get_changelist(request, **kwargs)

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
            return HttpResponseRedirect(reverse("admin:chatdesk_interaction_changelist") + "?e=1")
        export = ConversationCsv(changelist.queryset, pii=can_see_pii(request.user), costs=can_see_costs(request.user))
        content = export.alines() if isinstance(request, ASGIRequest) else export.lines()
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime(timezone.now(), business_tz()).strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.csv"'
        return response

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
            "list_url": reverse("admin:chatdesk_interaction_changelist"),
        }
        return TemplateResponse(request, "admin/chatdesk/dashboard.html", context)


class DashboardForm(forms.Form):
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    channel = forms.ChoiceField(
        required=False, choices=[("", "All channels"), *Interaction.ChannelKind.choices], label="Channel"
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


# --- The handoff queue ---------------------------------------------------------------------


def handoff_mark_handled(*, handoffs: QuerySet[HandoffRequest], user: AbstractBaseUser) -> int:
    """Mark the still-waiting ones of `handoffs` handled by `user`; returns how many.

    One UPDATE guarded by handled_at IS NULL: when two dispatchers click at once, the
    first one is recorded and the second changes nothing.
    """
    return HandoffRequest.objects.filter(pk__in=handoffs.values("pk"), handled_at__isnull=True).update(
        handled_at=timezone.now(), handled_by=user
    )


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
class HandoffRequestAdmin(admin.ModelAdmin):
    """Customers who asked for a person: a queue, waiting before handled, urgent first, oldest first.

    The contact phone is what staff call back on, so whoever may handle handoffs sees it.
    """

    list_filter = [HandoffStateFilter, "urgent", "interaction__channel"]
    list_select_related = ["interaction", "handled_by"]
    ordering = [F("handled_at").desc(nulls_first=True), "-urgent", "created_at"]
    search_fields = ["reason", "contact_name", "interaction__number"]
    actions = ["mark_handled"]
    list_per_page = 50
    fields = [
        "state",
        "urgent",
        "reason",
        "contact_name",
        "callback_phone",
        "conversation",
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
        return [*columns, "conversation", "handled"]

    def get_fields(self, request: HttpRequest, obj: HandoffRequest | None = None) -> list[str]:
        return [f for f in self.fields if f != "callback_phone" or self.can_see_contact(request)]

    def get_queryset(self, request: HttpRequest) -> QuerySet[HandoffRequest]:
        return super().get_queryset(request).select_related("interaction", "handled_by")

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
        return handoff.contact_phone or "-"

    @admin.display(description="conversation", ordering="interaction__number")
    def conversation(self, handoff: HandoffRequest) -> str:
        url = reverse("admin:chatdesk_interaction_change", args=[handoff.interaction_id])
        return format_html('<a href="{}">{}</a>', url, handoff.interaction.number)

    @admin.display(description="requested", ordering="created_at")
    def requested(self, handoff: HandoffRequest) -> str:
        return local_time(handoff.created_at)

    @admin.display(description="handled", ordering="handled_at")
    def handled(self, handoff: HandoffRequest) -> str:
        if not handoff.handled_at:
            return "-"
        return f"{local_time(handoff.handled_at)} by {_staff_name(handoff.handled_by)}"

    @admin.action(description="Mark handled", permissions=["change"], location=BOTH_LOCATIONS)
    def mark_handled(self, request: HttpRequest, queryset: QuerySet[HandoffRequest]) -> None:
        selected = queryset.count()
        changed = handoff_mark_handled(handoffs=queryset, user=request.user)
        if changed:
            self.message_user(request, f"Marked {changed} handoff(s) handled.", messages.SUCCESS)
        if selected - changed:
            self.message_user(request, f"{selected - changed} were already handled.", messages.WARNING)


# --- Charts: server-side SVG, no scripts, styled by static/admin-dashboard.css ------------------
#
# Built with f-strings: the numbers are formatted by Python, and every piece of text
# (titles, names, labels) goes through esc() first. A year of days is a few thousand
# elements, where format_html's per-argument escaping was a third of the page's time.

CHART_WIDTH, CHART_HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 14, 30
PLOT_W, PLOT_H = CHART_WIDTH - PAD_LEFT - PAD_RIGHT, CHART_HEIGHT - PAD_TOP - PAD_BOTTOM


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above `value`, so axis ticks read well."""
    if value <= 0:
        return 1
    scale = 10 ** math.floor(math.log10(value))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if value <= m * scale * (1 + 1e-9))


def _axis(largest: float, min_step: float = 0) -> tuple[float, int]:
    """The top of a y axis and its number of gridline steps: 0, 5, 10 ... 25 for 22, not 0 ... 40.

    Counts take min_step=1, so an axis never reads 0, 0, 1, 1.
    """
    step = max(_nice_ceiling(largest / 5), min_step)
    steps = max(math.ceil(largest / step - 1e-9), 1)
    return step * steps, steps


def _day(day: date) -> str:
    return f"{day:%a %b} {day.day}"


def _frame(
    title: str,
    labels: list[date],
    top: float,
    steps: int,
    fmt: Callable[[float], str],
    body: list[str],
    legend: list[tuple[str, str]],
) -> SafeString:
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{esc(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>'
    ]
    for i in range(steps + 1):
        y = PAD_TOP + PLOT_H - PLOT_H * i / steps
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{CHART_WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text class="tick" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{esc(fmt(top * i / steps))}</text>'
        )
    band = PLOT_W / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 10))
    for i, day in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{PAD_LEFT + band * (i + 0.5):.1f}" y="{CHART_HEIGHT - 10}" '
                f'text-anchor="middle" font-size="11">{day:%b} {day.day}</text>'
            )
    parts += body
    parts.append("</svg>")
    keys = "".join(f'<li><span class="swatch {esc(css)}"></span>{esc(name)}</li>' for css, name in legend)
    return mark_safe(  # noqa: S308 (numbers, and text through esc())
        f'<figure class="chart-box"><figcaption>{esc(title)}</figcaption>{"".join(parts)}'
        f'<ul class="legend">{keys}</ul></figure>'
    )


def bar_chart(
    title: str,
    labels: list[date],
    series: list[tuple[str, str, list[float]]],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    min_step: float = 1,
) -> SafeString:
    """Stacked bars, one per day; `series` is [(name, css class, values)], bottom first."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    top, steps = _axis(max(totals, default=0), min_step)
    band = PLOT_W / max(len(labels), 1)
    width = max(band * 0.72, 1)
    named = [(esc(name), esc(css), values) for name, css, values in series]
    body = []
    for i, day in enumerate(labels):
        x = PAD_LEFT + band * i + (band - width) / 2
        base = PAD_TOP + PLOT_H
        rects = []
        for _, css, values in named:
            height = PLOT_H * values[i] / top
            if height > 0:
                base -= height
                rects.append(
                    f'<rect class="bar {css}" x="{x:.1f}" y="{base:.1f}" width="{width:.1f}" height="{height:.1f}"/>'
                )
        tip = ", ".join(f"{name} {esc(fmt(values[i]))}" for name, _, values in named)
        body.append(f"<g><title>{_day(day)}: {tip}</title>{''.join(rects)}</g>")
    return _frame(title, labels, top, steps, fmt, body, [(css, name) for name, css, _ in series])


def line_chart(
    title: str,
    labels: list[date],
    series: list[tuple[str, str, list[float | None]]],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    top: float | None = None,
) -> SafeString:
    """Lines over days; a day without a value breaks the line rather than dropping to zero."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    if top is None:
        top, steps = _axis(max(values, default=0))
    else:
        steps = 4
    band = PLOT_W / max(len(labels), 1)
    body = []
    for name, css, points in series:
        name, css = esc(name), esc(css)
        segments: list[list[str]] = [[]]
        dots = []
        for i, value in enumerate(points):
            if value is None:
                segments.append([])
                continue
            x, y = PAD_LEFT + band * (i + 0.5), PAD_TOP + PLOT_H - PLOT_H * min(value, top) / top
            segments[-1].append(f"{x:.1f},{y:.1f}")
            dots.append(
                f'<circle class="dot {css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{_day(labels[i])}: {name} {esc(fmt(value))}</title></circle>"
            )
        body += [
            f'<polyline class="line {css}" points="{" ".join(points_)}" fill="none" stroke-width="2"/>'
            for points_ in segments
            if len(points_) > 1
        ]
        body += dots
    return _frame(title, labels, top, steps, fmt, body, [(css, name) for name, css, _ in series])


def dashboard_charts(d: stats.Dashboard, *, costs: bool) -> list[SafeString]:
    labels = [day.day for day in d.days]
    charts = [
        bar_chart(
            "Conversations per day",
            labels,
            [
                ("with a booking", "s-booked", [day.booked_conversations for day in d.days]),
                ("without", "s-other", [day.conversations - day.booked_conversations for day in d.days]),
            ],
        ),
        line_chart(
            "Conversion: conversations with a booking",
            labels,
            [("conversion", "s-booked", [None if day.conversion is None else day.conversion * 100 for day in d.days])],
            fmt=lambda v: f"{v:.0f}%",
            top=100,
        ),
        bar_chart(
            "Bookings made per day" if d.channel else "Bookings made per day (all channels)",
            labels,
            [("bookings", "s-bookings", [day.bookings for day in d.days])],
        ),
    ]
    if costs:
        channels = [d.channel] if d.channel else list(stats.CHANNELS)
        charts.append(
            bar_chart(
                "Cost per day by channel (USD)",
                labels,
                [
                    (
                        Interaction.ChannelKind(c).label,
                        f"s-{c}",
                        [float(day.cost_by_channel.get(c, 0)) for day in d.days],
                    )
                    for c in channels
                ],
                fmt=lambda v: f"${v:,.2f}",
                min_step=0,
            )
        )
    charts.append(
        line_chart(
            "Reply latency (seconds)",
            labels,
            [
                ("p50", "s-p50", [None if day.latency_p50_ms is None else day.latency_p50_ms / 1000 for day in d.days]),
                ("p95", "s-p95", [None if day.latency_p95_ms is None else day.latency_p95_ms / 1000 for day in d.days]),
            ],
            fmt=lambda v: f"{v:.1f} s",
        )
    )
    return charts


def numbers_table(d: stats.Dashboard, *, costs: bool) -> SafeString:
    """The charts' numbers, newest day first (a year is 365 rows: built here, not in a template loop)."""
    head = ["Day", "Conversations", "With a booking", "Conversion", "Bookings made"]
    head += ["Cost"] if costs else []
    head += ["p50 ms", "p95 ms"]
    rows = []
    for day in reversed(d.days):
        cells = [
            _day(day.day),
            day.conversations,
            day.booked_conversations,
            "–" if day.conversion is None else f"{day.conversion:.0%}",
            day.bookings,
        ]
        cells += [f"${day.cost_usd:,.2f}"] if costs else []
        cells += ["–" if v is None else v for v in (day.latency_p50_ms, day.latency_p95_ms)]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f'<th scope="col">{esc(h)}</th>' for h in head)
    return mark_safe(f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>")  # noqa: S308


def schedule_chart(schedule: Iterable[stats.TechnicianDay], day: date) -> SafeString | None:
    """Today's visits as a timeline, one row per technician, in business time."""
    rows = list(schedule)
    if not rows:
        return None
    tz = business_tz()
    visits = [v for row in rows for v in row.visits]
    first = min([v.start.astimezone(tz).hour for v in visits] + [8])
    last = max([math.ceil(v.end.astimezone(tz).hour + v.end.astimezone(tz).minute / 60) for v in visits] + [18])
    label_w, row_h, top_pad, right_pad = 130, 30, 22, 24
    height = top_pad + row_h * len(rows) + 6
    plot_w = CHART_WIDTH - label_w - right_pad
    hours = max(last - first, 1)

    def x_of(moment: datetime) -> float:
        local = moment.astimezone(tz)
        offset = (local.hour - first) + local.minute / 60
        if local.date() != day:
            offset = 0 if local.date() < day else hours
        return label_w + plot_w * min(max(offset, 0), hours) / hours

    title = esc(f"Visits on {day:%A %b} {day.day}")
    parts = [
        f'<svg class="chart schedule" viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{title}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
    ]
    for h in range(first, last + 1):
        x = label_w + plot_w * (h - first) / hours
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad - 4}" y2="{height}" stroke="#ddd"/>'
            f'<text class="tick" x="{x:.1f}" y="14" text-anchor="middle" font-size="11">{h}:00</text>'
        )
    for i, row in enumerate(rows):
        y = top_pad + row_h * i
        parts.append(
            f'<text class="row-label" x="0" y="{y + row_h / 2 + 4}" font-size="12">{esc(row.technician)}</text>'
        )
        for visit in row.visits:
            x1, x2 = x_of(visit.start), x_of(visit.end)
            label = visit.service if x2 - x1 > 6.5 * len(visit.service) else ""
            tip = (
                f"{visit.start.astimezone(tz):%H:%M}–{visit.end.astimezone(tz):%H:%M} {visit.service} "
                f"({visit.number}, {visit.status_label})"
            )
            parts.append(
                f"<g><title>{esc(tip)}</title>"
                f'<rect class="visit status-{esc(visit.status)}" x="{x1:.1f}" y="{y + 4}" '
                f'width="{max(x2 - x1, 2):.1f}" height="{row_h - 8}" rx="3"/>'
                f'<text class="visit-label" x="{x1 + 4:.1f}" y="{y + row_h / 2 + 4}" font-size="11">'
                f"{esc(label)}</text></g>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers, and text through esc())
