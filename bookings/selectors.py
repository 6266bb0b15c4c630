"""Reads of the booking domain, shared by the assistant's tools, the API, the admin and commands.

The availability engine lives here. It runs a fixed number of queries whatever the number
of technicians and bookings (tests/test_availability.py asserts it), then works in memory:

1. Candidate visit starts are laid on the slot grid in the business's *wall-clock* time
   (08:00, 08:30, ...) and converted to UTC one by one, so a DST change shifts nothing and
   a wall time that does not exist that day is skipped.
2. All arithmetic after that happens in UTC, where an hour is an hour.
3. A candidate is offered for a technician when the visit lies within business hours, the
   visit plus the service's buffers lies within the technician's working hours, and that
   occupied period overlaps none of the technician's calendar events or active bookings
   (periods are half-open, so 09:00-10:00 and 10:00-11:00 do not clash).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import BigIntegerField, Q, QuerySet, Value
from django.utils import timezone

from bookings.errors import BookingNotFound, InvalidInput
from bookings.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingStatus,
    BusinessHours,
    CalendarEvent,
    ClosedDay,
    Service,
    Technician,
    Trade,
    WorkingHours,
)
from bookings.phones import phones_match


def business_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(business_tz()).date()


@dataclass(frozen=True)
class PublicTechnician:
    """What a customer may know about a technician."""

    id: int
    name: str
    title: str


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    technicians: tuple[PublicTechnician, ...]


@dataclass
class TechnicianDay:
    technician: PublicTechnician
    slots: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class SlotRules:
    duration: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    min_notice: timedelta

    @classmethod
    def for_service(cls, service: Service) -> SlotRules:
        return cls(service.duration, service.buffer_before, service.buffer_after, service.min_notice)


def _localize(day: date, wall: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time, or None if it does not exist that day (DST gap)."""
    local = datetime.combine(day, wall, tzinfo=tz)
    as_utc = local.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return as_utc


def _edge(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a span edge; one inside a DST gap moves to the first real instant after it."""
    instant = _localize(day, wall, tz)
    if instant is not None:
        return instant
    # A wall time in a gap converts (fold=0) to an instant *past* the jump by as much as it lies
    # inside the gap (02:30 -> 03:30 EDT), and (fold=1) to one before the jump. The jump itself
    # is the first instant whose wall clock is at or after `wall`: bisect down to the second.
    local = datetime.combine(day, wall)
    before = datetime.combine(day, wall, tzinfo=tz).replace(fold=1).astimezone(UTC)
    after = datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= local:
            after = middle
        else:
            before = middle
    return after.replace(microsecond=0)


def _wall_span(day: date, start: time, end: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _edge(day, start, tz), _edge(day, end, tz)


def _merge(intervals: list[tuple[datetime, datetime]]) -> tuple[list[datetime], list[datetime]]:
    """Union of intervals as two sorted lists (starts, ends) of disjoint periods."""
    intervals.sort()
    starts: list[datetime] = []
    ends: list[datetime] = []
    for start, end in intervals:
        if ends and start <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _is_free(starts: list[datetime], ends: list[datetime], period_start: datetime, period_end: datetime) -> bool:
    # The last busy period starting before period_end is the only one that can overlap,
    # because the periods are disjoint and sorted.
    i = bisect.bisect_left(starts, period_end) - 1
    return i < 0 or ends[i] <= period_start


def _free_starts_by_technician(
    *,
    rules: SlotRules,
    technician_ids: list[int],
    first_day: date,
    last_day: date,
    now: datetime,
    exclude_booking_id: int | None = None,
) -> dict[int, list[datetime]]:
    """For each technician, the UTC visit starts that are free under `rules` in [first_day, last_day]."""
    tz = business_tz()
    today = local_today(now)
    first_day = max(first_day, today)
    last_day = min(last_day, today + timedelta(days=settings.BOOKING_HORIZON_DAYS))
    if not technician_ids or first_day > last_day:
        return {}

    window_start = datetime.combine(first_day, time.min, tzinfo=tz)
    window_end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=tz)

    # Round trips dominate the cost (each query takes ~0.5 ms, the slot arithmetic ~0.2 ms in
    # all; bench/availability.py), so rows of the same shape share one UNION ALL query, and
    # .order_by() drops the models' default ordering (a join to technicians for WorkingHours):
    # nothing below depends on the order of rows.
    working: dict[tuple[int, int], list[tuple[time, time]]] = defaultdict(list)
    opening: dict[int, list[tuple[time, time]]] = defaultdict(list)
    hours = (
        WorkingHours.objects.filter(technician_id__in=technician_ids)
        .order_by()
        .values_list("technician_id", "weekday", "start_time", "end_time")
        .union(
            # Business hours come back with no technician.
            BusinessHours.objects.order_by()
            .annotate(no_technician=Value(None, output_field=BigIntegerField()))
            .values_list("no_technician", "weekday", "opens", "closes"),
            all=True,
        )
        .order_by()
    )
    for technician_id, weekday, start, end in hours:
        if technician_id is None:
            opening[weekday].append((start, end))
        else:
            working[(technician_id, weekday)].append((start, end))

    closed = set(ClosedDay.objects.filter(date__range=(first_day, last_day)).order_by().values_list("date", flat=True))

    # Calendar events and active bookings both make a technician busy: one query for both.
    bookings = Booking.objects.filter(
        technician_id__in=technician_ids,
        status__in=ACTIVE_STATUSES,
        occupied_start__lt=window_end,
        occupied_end__gt=window_start,
    )
    if exclude_booking_id is not None:
        bookings = bookings.exclude(pk=exclude_booking_id)
    busy_periods = (
        CalendarEvent.objects.filter(technician_id__in=technician_ids, start__lt=window_end, end__gt=window_start)
        .order_by()
        .values_list("technician_id", "start", "end")
        .union(bookings.order_by().values_list("technician_id", "occupied_start", "occupied_end"), all=True)
        .order_by()
    )
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for technician_id, start, end in busy_periods:
        busy[technician_id].append((start, end))
    merged = {technician_id: _merge(periods) for technician_id, periods in busy.items()}
    no_busy: tuple[list[datetime], list[datetime]] = ([], [])

    grid = timedelta(minutes=settings.SLOT_GRID_MINUTES)
    earliest = now + rules.min_notice
    result: dict[int, list[datetime]] = defaultdict(list)

    day = first_day
    while day <= last_day:
        weekday = day.weekday()
        if day in closed or not opening.get(weekday):
            day += timedelta(days=1)
            continue
        # Candidates shared by every technician this day: visits inside business hours.
        candidates: list[datetime] = []
        for opens, closes in opening[weekday]:
            open_utc, close_utc = _wall_span(day, opens, closes, tz)
            wall = datetime.combine(day, opens)
            # Align the first candidate to the grid counted from local midnight.
            minutes = wall.hour * 60 + wall.minute
            step = settings.SLOT_GRID_MINUTES
            wall = datetime.combine(day, time.min) + timedelta(minutes=-(-minutes // step) * step)
            while wall.date() == day:
                start = _localize(day, wall.time(), tz)
                wall += grid
                if start is None:
                    continue
                if start + rules.duration > close_utc:
                    break
                if start >= open_utc and start >= earliest:
                    candidates.append(start)
        if candidates:
            candidates = sorted(set(candidates))
            for technician_id in technician_ids:
                spans = working.get((technician_id, weekday))
                if not spans:
                    continue
                utc_spans = [_wall_span(day, s, e, tz) for s, e in spans]
                starts, ends = merged.get(technician_id, no_busy)
                for start in candidates:
                    occupied_start = start - rules.buffer_before
                    occupied_end = start + rules.duration + rules.buffer_after
                    if not any(s <= occupied_start and occupied_end <= e for s, e in utc_spans):
                        continue
                    if _is_free(starts, ends, occupied_start, occupied_end):
                        result[technician_id].append(start)
        day += timedelta(days=1)
    return result


def _technicians(queryset: QuerySet[Technician]) -> list[PublicTechnician]:
    return [
        PublicTechnician(id=pk, name=f"{first} {last[:1]}.", title=title)
        for pk, first, last, title in queryset.values_list("id", "first_name", "last_name", "title")
    ]


def qualified_technicians(*, trade_id: int, technician_id: int | None = None) -> list[PublicTechnician]:
    technicians = Technician.objects.filter(active=True, trades=trade_id).order_by("first_name", "last_name", "id")
    if technician_id is not None:
        technicians = technicians.filter(pk=technician_id)
    return _technicians(technicians)


def available_slots(
    *,
    service: Service,
    start_date: date,
    end_date: date | None = None,
    technician_id: int | None = None,
    now: datetime | None = None,
    exclude_booking_id: int | None = None,
) -> list[Slot]:
    """Free visit slots for `service` from start_date to end_date (inclusive), across all
    qualified, active technicians (or one), each slot listing who is free for it."""
    end_date = end_date or start_date
    if end_date < start_date:
        raise InvalidInput("The end date is before the start date.", field="end_date")
    if not service.active:
        return []
    technicians = qualified_technicians(trade_id=service.trade_id, technician_id=technician_id)
    by_id = {t.id: t for t in technicians}
    free = _free_starts_by_technician(
        rules=SlotRules.for_service(service),
        technician_ids=list(by_id),
        first_day=start_date,
        last_day=end_date,
        now=now or timezone.now(),
        exclude_booking_id=exclude_booking_id,
    )
    at: dict[datetime, list[PublicTechnician]] = defaultdict(list)
    for technician in technicians:  # keeps the technicians' order inside each slot
        for start in free.get(technician.id, ()):
            at[start].append(technician)
    return [Slot(start=s, end=s + service.duration, technicians=tuple(at[s])) for s in sorted(at)]


def technicians_available(
    *, trade: Trade, on_date: date, service: Service | None = None, now: datetime | None = None
) -> list[TechnicianDay]:
    """Which technicians of `trade` are free on `on_date`, with their free slots.

    Without a service, slots are sized for the trade's shortest active service, so a
    technician listed here can take at least that job.
    """
    if service is None:
        service = Service.objects.filter(trade=trade, active=True).order_by("duration_minutes", "id").first()
        if service is None:
            return []
    elif service.trade_id != trade.pk:
        raise InvalidInput("That service belongs to another trade.", field="service")
    elif not service.active:
        # As in available_slots: a service that cannot be booked has nobody free for it.
        return []
    technicians = qualified_technicians(trade_id=trade.pk)
    free = _free_starts_by_technician(
        rules=SlotRules.for_service(service),
        technician_ids=[t.id for t in technicians],
        first_day=on_date,
        last_day=on_date,
        now=now or timezone.now(),
    )
    return [
        TechnicianDay(technician=t, slots=[(s, s + service.duration) for s in free[t.id]])
        for t in technicians
        if free.get(t.id)
    ]


def booking_for_customer(*, number: str, phone: str) -> Booking:
    """The booking with this number, only if `phone` is the phone on it.

    A wrong number and a wrong phone give the same error, so the lookup cannot be used to
    find out which booking numbers exist.
    """
    number = (number or "").strip().upper()
    booking = (
        Booking.objects.select_related("service", "service__trade", "technician", "customer")
        .filter(number=number)
        .first()
    )
    if booking is None or not phones_match(phone, booking.customer.phone):
        raise BookingNotFound("No booking matches that number and phone number.")
    return booking


def visit_when(start: datetime) -> str:
    """A visit's start as customers read it, in the business's time zone."""
    start = start.astimezone(business_tz())
    return f"{start:%A %B} {start.day}, {start:%Y} at {start:%-I:%M %p}"


def booking_public_dict(booking: Booking) -> dict:
    """A booking as the customer who owns it may see it (and the model, on their behalf)."""
    tz = business_tz()
    start = booking.start.astimezone(tz)
    end = booking.end.astimezone(tz)
    return {
        "booking_number": booking.number,
        "status": booking.status,
        "service": booking.service.name,
        "technician": booking.technician.public_name,
        "date": start.date().isoformat(),
        "weekday": start.strftime("%A"),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "when": visit_when(start),
        "address": booking.address,
        "estimated_price": booking.price_display,
        "customer_name": booking.customer.name,
    }


def services_list(*, trade: str | None = None, active_only: bool = True) -> list[Service]:
    services = Service.objects.select_related("trade")
    if active_only:
        services = services.filter(active=True)
    if trade:
        services = services.filter(Q(trade__name__iexact=trade) | Q(trade__slug__iexact=trade))
    return list(services.order_by("trade__name", "name"))


def opening_hours() -> dict[int, list[tuple[time, time]]]:
    hours: dict[int, list[tuple[time, time]]] = defaultdict(list)
    for weekday, opens, closes in BusinessHours.objects.values_list("weekday", "opens", "closes"):
        hours[weekday].append((opens, closes))
    return dict(hours)


def active_bookings_in(technician_ids: Iterable[int], start: datetime, end: datetime) -> QuerySet[Booking]:
    return Booking.objects.filter(
        technician_id__in=list(technician_ids),
        status__in=ACTIVE_STATUSES,
        occupied_start__lt=end,
        occupied_end__gt=start,
    )


@dataclass(frozen=True)
class OpeningCalendar:
    """Which days the business opens: a weekday with business hours that is not a closed day."""

    open_weekdays: frozenset[int]
    closed_days: dict[date, str]  # ClosedDay date -> reason (may be "")

    def is_open(self, day: date) -> bool:
        return day.weekday() in self.open_weekdays and day not in self.closed_days

    def next_open_day(self, day: date, *, last: date, include: bool = False) -> date | None:
        """The first open day after `day` (or from it, with include) up to `last`; None if none."""
        candidate = day if include else day + timedelta(days=1)
        while candidate <= last:
            if self.is_open(candidate):
                return candidate
            candidate += timedelta(days=1)
        return None


def opening_calendar(first: date, last: date) -> OpeningCalendar:
    """Opening days from `first` to `last`, in two queries; the same rule the availability
    engine applies (no BusinessHours that weekday, or a ClosedDay, means closed)."""
    weekdays = frozenset(BusinessHours.objects.order_by().values_list("weekday", flat=True).distinct())
    closed = dict(ClosedDay.objects.filter(date__range=(first, last)).order_by().values_list("date", "reason"))
    return OpeningCalendar(open_weekdays=weekdays, closed_days=closed)


# --- The dispatch board: who is where, per technician, over a day or a week ----------------------


@dataclass(frozen=True)
class BoardTechnician:
    """A technician as staff see them on the board (full name: this is never shown to customers)."""

    id: int
    name: str
    title: str
    trades: tuple[str, ...]


@dataclass(frozen=True)
class BoardBooking:
    id: int
    number: str
    status: str
    technician_id: int
    service: str
    customer: str
    start: datetime
    end: datetime
    occupied_start: datetime
    occupied_end: datetime


@dataclass(frozen=True)
class BoardEvent:
    technician_id: int
    kind: str
    title: str
    start: datetime
    end: datetime


@dataclass
class BoardData:
    """Everything the dispatch board draws for [first_day, last_day], read in a fixed number of
    queries (one per kind of row) whatever the number of technicians and bookings."""

    first_day: date
    last_day: date
    technicians: list[BoardTechnician]
    working: dict[tuple[int, int], list[tuple[time, time]]]  # (technician, weekday) -> spans
    opening: dict[int, list[tuple[time, time]]]  # weekday -> business hours
    closed: dict[date, str]  # closed day -> reason
    bookings: dict[int, list[BoardBooking]]  # technician -> bookings, by start
    events: dict[int, list[BoardEvent]]  # technician -> time off etc., by start
    # technician -> free visit starts for the chosen service (empty without a service)
    free: dict[int, list[datetime]] = field(default_factory=dict)


def board_data(
    *,
    first_day: date,
    last_day: date,
    trade_id: int | None = None,
    service: Service | None = None,
    now: datetime | None = None,
) -> BoardData:
    """The dispatch board's rows for active technicians (of one trade, if given).

    Cancelled bookings are left out: they hold no time. With a service, each technician's free
    starts come from the availability engine itself, so a slot the board offers is one
    booking_create accepts.
    """
    tz = business_tz()
    window_start = datetime.combine(first_day, time.min, tzinfo=tz)
    window_end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=tz)

    technicians = Technician.objects.filter(active=True)
    if trade_id is not None:
        technicians = technicians.filter(trades=trade_id)
    rows = list(
        technicians.order_by("first_name", "last_name", "id").values_list("id", "first_name", "last_name", "title")
    )
    ids = [row[0] for row in rows]
    trades: dict[int, list[str]] = defaultdict(list)
    through = Technician.trades.through
    for technician_id, name in (
        through.objects.filter(technician_id__in=ids)
        .order_by("trade__name")
        .values_list("technician_id", "trade__name")
    ):
        trades[technician_id].append(name)
    technicians = [
        BoardTechnician(id=pk, name=f"{first} {last}".strip(), title=title, trades=tuple(trades[pk]))
        for pk, first, last, title in rows
    ]

    working: dict[tuple[int, int], list[tuple[time, time]]] = defaultdict(list)
    for technician_id, weekday, start, end in (
        WorkingHours.objects.filter(technician_id__in=ids)
        .order_by("start_time")
        .values_list("technician_id", "weekday", "start_time", "end_time")
    ):
        working[(technician_id, weekday)].append((start, end))
    opening: dict[int, list[tuple[time, time]]] = defaultdict(list)
    for weekday, opens, closes in BusinessHours.objects.order_by("opens").values_list("weekday", "opens", "closes"):
        opening[weekday].append((opens, closes))
    closed = dict(ClosedDay.objects.filter(date__range=(first_day, last_day)).values_list("date", "reason"))

    bookings: dict[int, list[BoardBooking]] = defaultdict(list)
    booking_rows = (
        Booking.objects.filter(technician_id__in=ids, occupied_start__lt=window_end, occupied_end__gt=window_start)
        .exclude(status=BookingStatus.CANCELLED)
        .order_by("start", "id")
        .values_list(
            "id",
            "number",
            "status",
            "technician_id",
            "service__name",
            "customer__name",
            "start",
            "end",
            "occupied_start",
            "occupied_end",
        )
    )
    for row in booking_rows:
        booking = BoardBooking(*row)
        bookings[booking.technician_id].append(booking)
    events: dict[int, list[BoardEvent]] = defaultdict(list)
    for technician_id, kind, title, start, end in (
        CalendarEvent.objects.filter(technician_id__in=ids, start__lt=window_end, end__gt=window_start)
        .order_by("start", "id")
        .values_list("technician_id", "kind", "title", "start", "end")
    ):
        events[technician_id].append(BoardEvent(technician_id, kind, title, start, end))

    free: dict[int, list[datetime]] = {}
    if service is not None and service.active:
        qualified = [t.id for t in qualified_technicians(trade_id=service.trade_id) if t.id in set(ids)]
        free = dict(
            _free_starts_by_technician(
                rules=SlotRules.for_service(service),
                technician_ids=qualified,
                first_day=first_day,
                last_day=last_day,
                now=now or timezone.now(),
            )
        )
    return BoardData(
        first_day=first_day,
        last_day=last_day,
        technicians=technicians,
        working=dict(working),
        opening=dict(opening),
        closed=closed,
        bookings=dict(bookings),
        events=dict(events),
        free=free,
    )
