"""Selectors behind the staff dashboard and the analytics API: one computation, two views.

Everything is counted by the database in a fixed number of queries whatever the range
(see `dashboard`), per calendar day of the business (settings.TIME_ZONE), not UTC days.
Conversion is the share of conversations in which a booking was made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, Exists, Min, OuterRef, Q, Sum
from django.db.models.functions import TruncDate

from bookings.models import Booking, BookingStatus, Technician
from bookings.selectors import business_tz, local_today
from chatdesk import replica
from chatdesk.conversations.models import Conversation, HandoffRequest, Message

# A conversation's channel names the booking channel it books on (one vocabulary: chat, voice).
CHANNELS = tuple(Conversation.ChannelKind.values)
# A year and a day: enough for "this time last year", small enough to stay fast.
MAX_RANGE_DAYS = 367
DEFAULT_RANGE_DAYS = 30
ZERO = Decimal("0")


# Reply latency per business day and over the whole window in one scan: GROUPING SETS
# gives both (percentiles do not add up, so the window's own are computed, not derived from
# the days'), from an index-only scan of message_reply_latency (migration 0004). The row
# whose day is NULL is the window's: every message has a created_at, so no day is NULL.
LATENCY_SQL = """
    SELECT (created_at AT TIME ZONE %s)::date AS day,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
           count(latency_ms)
    FROM chatdesk_message
    WHERE role = 'assistant' AND latency_ms IS NOT NULL AND created_at >= %s AND created_at < %s
      AND (%s::text IS NULL OR channel = %s)
    GROUP BY GROUPING SETS ((1), ())
"""
# With a year of rows, the default work_mem (4 MB) spills percentile_cont's sorts and the
# per-day grouping to disk, which made the year view 1.5x slower (bench/admin_pages.py).
WORK_MEM = "32MB"


@dataclass(frozen=True)
class DayStats:
    day: date
    conversations: int = 0
    booked_conversations: int = 0
    bookings: int = 0
    cost_by_channel: dict[str, Decimal] = field(default_factory=dict)
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None

    @property
    def conversion(self) -> float | None:
        return self.booked_conversations / self.conversations if self.conversations else None

    @property
    def cost_usd(self) -> Decimal:
        return sum(self.cost_by_channel.values(), ZERO)


@dataclass(frozen=True)
class Totals:
    conversations: int
    booked_conversations: int
    bookings: int
    cost_by_channel: dict[str, Decimal]
    latency_p50_ms: int | None
    latency_p95_ms: int | None
    replies: int

    @property
    def conversion(self) -> float | None:
        return self.booked_conversations / self.conversations if self.conversations else None

    @property
    def cost_usd(self) -> Decimal:
        return sum(self.cost_by_channel.values(), ZERO)

    @property
    def cost_per_booking(self) -> Decimal | None:
        return (
            (self.cost_usd / self.booked_conversations).quantize(Decimal("0.0001"))
            if self.booked_conversations
            else None
        )


@dataclass(frozen=True)
class Handoffs:
    open: int
    urgent: int
    oldest_open_at: datetime | None


@dataclass(frozen=True)
class Visit:
    booking_id: int
    number: str
    start: datetime
    end: datetime
    service: str
    status: str
    status_label: str
    customer_name: str
    address: str


@dataclass(frozen=True)
class TechnicianDay:
    technician_id: int
    technician: str
    visits: list[Visit]

    @property
    def booked_minutes(self) -> int:
        return sum(int((v.end - v.start).total_seconds() // 60) for v in self.visits)


@dataclass(frozen=True)
class ModelFailures:
    """Times the model did not answer, by kind (Message.FailureKind), in the range."""

    by_kind: dict[str, int]

    @property
    def total(self) -> int:
        """Failures the customer saw (a reply cut off but answered on retry, or a wait for the
        OpenAI budget that the model then answered, is not one)."""
        return sum(n for kind, n in self.by_kind.items() if kind not in Message.RECOVERED_KINDS)

    def rows(self) -> list[tuple[str, str, int]]:
        """(kind, label, count) for every kind, in the order of Message.FailureKind."""
        return [(kind, label, self.by_kind.get(kind, 0)) for kind, label in Message.FailureKind.choices]


@dataclass(frozen=True)
class Dashboard:
    since: date
    until: date
    channel: str | None
    days: list[DayStats]
    totals: Totals
    handoffs: Handoffs
    today: date
    schedule: list[TechnicianDay]
    model_failures: ModelFailures = field(default_factory=lambda: ModelFailures({}))


def _midnight(day: date) -> datetime:
    # Midnight at the business, so a day is the dispatcher's day, DST included.
    return datetime.combine(day, time.min, tzinfo=business_tz())


def in_channel(channel: str) -> Q:
    """Conversations that used `channel`: a conversation counts in every channel it used.

    `channel` on a conversation is where it started; a call in a typed conversation sets
    has_call, and a voice conversation the customer later typed in has customer chat messages.
    """
    if channel == Conversation.ChannelKind.VOICE:
        return Q(channel=channel) | Q(has_call=True)
    typed = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.CUSTOMER, channel=channel)
    return Q(channel=channel) | Q(Exists(typed))


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last DEFAULT_RANGE_DAYS days, today included."""
    today = today or local_today()
    return today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today


def _ms(value: float | None) -> int | None:
    return round(value) if value is not None else None


@contextmanager
def _room_to_sort() -> Iterator[None]:
    """A transaction in which sorts and hashes of up to a year of rows stay in memory.

    On the database the reads go to (the replica inside use_replica(), else the primary):
    a read-only transaction and SET LOCAL are fine on a hot standby.
    """
    alias = replica.reads_alias()
    connection = connections[alias]
    with transaction.atomic(using=alias):
        # SQLite (make run) has no work_mem to set.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # LOCAL: until the end of this transaction only.
                cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        yield


def _percentile(ordered: list[int], fraction: float) -> float | None:
    """percentile_cont: linear interpolation between the closest ranks of sorted values."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _reply_latency_in_python(*, start: datetime, end: datetime, channel: str | None) -> tuple[dict[date, tuple], tuple]:
    # SQLite (make run) has neither percentile_cont nor AT TIME ZONE: the embedded default
    # holds a few replies, so they are read and ranked here, with the same results.
    replies = Message.objects.filter(
        role=Message.Role.ASSISTANT, latency_ms__isnull=False, created_at__gte=start, created_at__lt=end
    )
    if channel:
        replies = replies.filter(channel=channel)
    tz = business_tz()
    by_day: dict[date, list[int]] = defaultdict(list)
    for created_at, latency in replies.values_list("created_at", "latency_ms"):
        by_day[created_at.astimezone(tz).date()].append(latency)
    per_day = {}
    for day, values in by_day.items():
        values.sort()
        per_day[day] = (_percentile(values, 0.5), _percentile(values, 0.95), len(values))
    everything = sorted(value for values in by_day.values() for value in values)
    return per_day, (_percentile(everything, 0.5), _percentile(everything, 0.95), len(everything))


def reply_latency(*, start: datetime, end: datetime, channel: str | None) -> tuple[dict[date, tuple], tuple]:
    """(p50, p95, replies) of assistant replies per business day in [start, end), and overall."""
    connection = connections[replica.reads_alias()]  # hand-written SQL: the router is not asked
    if connection.vendor != "postgresql":
        return _reply_latency_in_python(start=start, end=end, channel=channel)
    per_day, overall = {}, (None, None, 0)
    with connection.cursor() as cursor:
        cursor.execute(LATENCY_SQL, [settings.TIME_ZONE, start, end, channel, channel])
        for day, p50, p95, replies in cursor.fetchall():
            if day is None:
                overall = (p50, p95, replies)
            else:
                per_day[day] = (p50, p95, replies)
    return per_day, overall


def model_failures(*, start: datetime, end: datetime, channel: str | None) -> ModelFailures:
    """Model failures recorded in [start, end), by kind: one GROUP BY on the partial index
    message_model_failure (migration 0006), plain SQL on PostgreSQL and SQLite alike."""
    events = Message.objects.filter(created_at__gte=start, created_at__lt=end).exclude(failure_kind="")
    if channel:
        # Where the failure happened: a chat turn's failure in a conversation with a call is chat.
        events = events.filter(channel=channel)
    return ModelFailures(
        dict(events.values("failure_kind").annotate(n=Count("id")).order_by().values_list("failure_kind", "n"))
    )


def dashboard(*, since: date, until: date, channel: str | None = None, today: date | None = None) -> Dashboard:
    """The numbers of the staff dashboard for [since, until] (business days, both included).

    Seven queries whatever the range or the volume (and a SET LOCAL for the first three):
    conversations and cost per day and channel, bookings per day, reply latency per day and
    over the range, open handoffs, today's schedule and free technicians, and model
    failures by kind.
    """
    if since > until:
        raise ValueError("since is after until")
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}")
    tz = business_tz()
    start, end = _midnight(since), _midnight(until + timedelta(days=1))

    conversations = Conversation.objects.filter(started_at__gte=start, started_at__lt=end)
    bookings = Booking.objects.filter(created_at__gte=start, created_at__lt=end)
    handoffs = HandoffRequest.objects.filter(handled_at__isnull=True)
    if channel:
        conversations = conversations.filter(in_channel(channel))
        bookings = bookings.filter(channel=channel)
        handoffs = handoffs.filter(conversation__in=Conversation.objects.filter(in_channel(channel)).values("pk"))

    with _room_to_sort():
        per_day: dict[date, dict] = defaultdict(lambda: {"conversations": 0, "booked": 0, "cost": {}})
        for row in (
            conversations.annotate(day=TruncDate("started_at", tzinfo=tz))
            .values("day", "channel")
            .annotate(n=Count("id"), booked=Count("id", filter=Q(booking_count__gt=0)), cost=Sum("cost_usd"))
            .order_by()
        ):
            entry = per_day[row["day"]]
            entry["conversations"] += row["n"]
            entry["booked"] += row["booked"]
            # Filtered to one channel, a conversation that used it counts whole in it (a call's
            # conversation may have started in chat); unfiltered, by where it started.
            kind = channel or row["channel"]
            entry["cost"][kind] = entry["cost"].get(kind, ZERO) + (row["cost"] or ZERO)

        booked_per_day = dict(
            bookings.annotate(day=TruncDate("created_at", tzinfo=tz))
            .values("day")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("day", "n")
        )
        # A message says how it came in: a voice reply in a conversation started in chat is voice.
        latency_per_day, overall_latency = reply_latency(start=start, end=end, channel=channel)

    channels = [channel] if channel else list(CHANNELS)
    days = []
    day = since
    while day <= until:
        entry = per_day.get(day, {"conversations": 0, "booked": 0, "cost": {}})
        p50, p95, _ = latency_per_day.get(day, (None, None, 0))
        days.append(
            DayStats(
                day=day,
                conversations=entry["conversations"],
                booked_conversations=entry["booked"],
                bookings=booked_per_day.get(day, 0),
                cost_by_channel={c: entry["cost"].get(c, ZERO) for c in channels},
                latency_p50_ms=_ms(p50),
                latency_p95_ms=_ms(p95),
            )
        )
        day += timedelta(days=1)

    totals = Totals(
        conversations=sum(d.conversations for d in days),
        booked_conversations=sum(d.booked_conversations for d in days),
        bookings=sum(d.bookings for d in days),
        cost_by_channel={c: sum((d.cost_by_channel[c] for d in days), ZERO) for c in channels},
        latency_p50_ms=_ms(overall_latency[0]),
        latency_p95_ms=_ms(overall_latency[1]),
        replies=overall_latency[2],
    )
    open_handoffs = handoffs.aggregate(
        open=Count("id"), urgent=Count("id", filter=Q(urgent=True)), oldest=Min("created_at")
    )
    today = today or local_today()
    return Dashboard(
        since=since,
        until=until,
        channel=channel,
        days=days,
        totals=totals,
        handoffs=Handoffs(
            open=open_handoffs["open"], urgent=open_handoffs["urgent"], oldest_open_at=open_handoffs["oldest"]
        ),
        today=today,
        schedule=schedule_for(today),
        model_failures=model_failures(start=start, end=end, channel=channel),
    )


def schedule_for(day: date) -> list[TechnicianDay]:
    """Each active technician's visits on `day` (business time), cancelled ones left out.

    Technicians with visits come first (by name), then those free all day; an inactive
    technician still shows when a visit is booked with them.
    """
    visits = (
        Booking.objects.filter(start__gte=_midnight(day), start__lt=_midnight(day + timedelta(days=1)))
        .exclude(status=BookingStatus.CANCELLED)
        .select_related("technician", "service", "customer")
        .order_by("start", "id")
    )
    by_technician: dict[int, list[Visit]] = defaultdict(list)
    names: dict[int, str] = {}
    for booking in visits:
        names[booking.technician_id] = str(booking.technician)
        by_technician[booking.technician_id].append(
            Visit(
                booking_id=booking.pk,
                number=booking.number,
                start=booking.start,
                end=booking.end,
                service=booking.service.name,
                status=booking.status,
                status_label=booking.get_status_display(),
                customer_name=booking.customer.name,
                address=booking.address,
            )
        )
    busy = sorted(
        (TechnicianDay(technician_id=pk, technician=names[pk], visits=v) for pk, v in by_technician.items()),
        key=lambda t: t.technician,
    )
    free = [
        TechnicianDay(technician_id=e.pk, technician=str(e), visits=[])
        for e in Technician.objects.filter(active=True)
        .exclude(pk__in=by_technician.keys())
        .only("first_name", "last_name")
    ]
    return busy + free
