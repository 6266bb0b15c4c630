"""Benchmark of the availability engine (bookings.selectors.available_slots) on a busy calendar.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/availability.py

DATABASE_URL only says which PostgreSQL server to use: the script drops and recreates its own
database (BENCH_DATABASE, default chatdesk_bench) on that server, migrates it and fills it with
50 technicians across 3 trades (a few in two), weekly working hours (10 h days, some with a
lunch break, some with Saturdays), business hours, two holidays, 10,000 bookings and ~1,700
calendar events (time off, meetings) over 90 days: 30 days of history (completed, no-shows) and
60 ahead (confirmed, pending, and cancelled rows left where the slot was booked again), around
a fixed reference day (REFERENCE_DAY), so the calendar does not depend on the day it runs. Then it
times `available_slots` for one service: one day at a time (BENCH_RUNS, default 200, spread over
every bookable day), 7-day ranges, and one day for one technician, and prints the median, p95
and query count per call. Results are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time as clock
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import percentile  # noqa: E402

BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "chatdesk_bench")
RUNS = int(os.environ.get("BENCH_RUNS", "200"))
RANGE_RUNS = int(os.environ.get("BENCH_RANGE_RUNS", "50"))
TECHNICIANS = 50
BOOKINGS = 10_000
HISTORY_DAYS, FUTURE_DAYS = 30, 60  # 90 days of calendar around the reference day
SEED = 20261116
# The calendar is built around this day, not the day the script runs: which weekdays, year
# end and holidays fall in the 90 days changes how many bookings the generator lays out, and
# on 2026-12-04 fewer than BOOKINGS fit. A fixed "now" gives every run the same calendar and
# the same calls (available_slots takes `now` explicitly). Business-local noon.
REFERENCE_DAY = date(2026, 11, 25)


def setup_django() -> None:
    common.setup_django(BENCH_DATABASE)


# (trade, slug, name, minutes, buffer before, buffer after, notice minutes)
SERVICES = [
    ("hvac", "hvac-maintenance", "HVAC Maintenance", 90, 30, 15, 240),
    ("hvac", "hvac-repair", "HVAC Repair", 120, 30, 15, 120),
    ("hvac", "emergency-hvac", "Emergency HVAC", 120, 30, 15, 60),
    ("plumbing", "drain-cleaning", "Drain Cleaning", 60, 30, 15, 120),
    ("plumbing", "leak-repair", "Leak Repair", 90, 30, 15, 120),
    ("plumbing", "water-heater-install", "Water Heater Installation", 240, 30, 30, 1440),
    ("electrical", "outlet-repair", "Outlet and Switch Repair", 60, 30, 15, 120),
    ("electrical", "ev-charger-install", "EV Charger Installation", 180, 30, 30, 1440),
]
SHIFTS = [
    {d: [(time(8), time(18))] for d in range(5)},
    {d: [(time(8), time(12)), (time(12, 30), time(18))] for d in range(5)},
    {**{d: [(time(8), time(18))] for d in range(5)}, 5: [(time(9), time(14))]},
    {**{d: [(time(8), time(18))] for d in range(1, 5)}, 5: [(time(9), time(14))]},
]


def build_calendar(today: date) -> dict:
    """Fill the database; returns what the timing loop needs."""
    from django.db import transaction

    from bookings.models import (
        Booking,
        BookingStatus,
        BusinessHours,
        CalendarEvent,
        ClosedDay,
        Customer,
        Service,
        Technician,
        Trade,
        WorkingHours,
        YearlyCounter,
    )
    from bookings.selectors import business_tz

    rng = random.Random(SEED)
    tz = business_tz()
    with transaction.atomic():
        trades = {
            slug: Trade.objects.create(name=name, slug=slug)
            for slug, name in (("hvac", "HVAC"), ("plumbing", "Plumbing"), ("electrical", "Electrical"))
        }
        services = [
            Service.objects.create(
                trade=trades[trade],
                slug=slug,
                name=name,
                duration_minutes=minutes,
                price_min=Decimal("150"),
                buffer_before_minutes=before,
                buffer_after_minutes=after,
                min_notice_minutes=notice,
            )
            for trade, slug, name, minutes, before, after, notice in SERVICES
        ]
        BusinessHours.objects.bulk_create(
            [BusinessHours(weekday=d, opens=time(8), closes=time(18)) for d in range(5)]
            + [BusinessHours(weekday=5, opens=time(9), closes=time(14))]
        )
        # Two holidays inside the bookable window.
        ClosedDay.objects.bulk_create(
            [ClosedDay(date=today + timedelta(days=n), reason="Holiday") for n in (17, 45) if n <= FUTURE_DAYS]
        )

        trade_list = list(trades.values())
        technicians: list[tuple[Technician, dict]] = []
        hours: list[WorkingHours] = []
        for n in range(TECHNICIANS):
            technician = Technician.objects.create(first_name=f"Tech{n:02d}", last_name="Bench", title="Technician")
            technician.trades.add(trade_list[n % 3])
            if n % 10 == 0:  # a few do two trades
                technician.trades.add(trade_list[(n + 1) % 3])
            shift = SHIFTS[n % len(SHIFTS)]
            hours += [
                WorkingHours(technician=technician, weekday=d, start_time=s, end_time=e)
                for d, spans in shift.items()
                for s, e in spans
            ]
            technicians.append((technician, shift))
        WorkingHours.objects.bulk_create(hours)

        customers = Customer.objects.bulk_create(
            [Customer(name=f"Customer {n}", phone=f"+1416{5550000 + n:07d}") for n in range(2000)]
        )
        by_trade = {trade.pk: [s for s in services if s.trade_id == trade.pk] for trade in trade_list}

        # Lay each technician's day out left to right, so nothing overlaps and the exclusion
        # constraint accepts the bulk insert: random gaps, visits with their buffers, meetings.
        bookings: list[Booking] = []
        events: list[CalendarEvent] = []
        for n, (technician, shift) in enumerate(technicians):
            offered = by_trade[trade_list[n % 3].pk]
            for offset in range(-HISTORY_DAYS, FUTURE_DAYS):
                day = today + timedelta(days=offset)
                spans = shift.get(day.weekday())
                if not spans:
                    continue
                if rng.random() < 0.03:
                    events.append(
                        CalendarEvent(
                            technician=technician,
                            kind=CalendarEvent.Kind.TIME_OFF,
                            title="Vacation",
                            start=datetime.combine(day, time.min, tzinfo=tz),
                            end=datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz),
                        )
                    )
                    continue
                for span_start, span_end in spans:
                    bookings += lay_out_span(
                        rng,
                        technician,
                        offered,
                        customers,
                        events,
                        past=offset < 0,
                        span_start=datetime.combine(day, span_start, tzinfo=tz),
                        span_end=datetime.combine(day, span_end, tzinfo=tz),
                    )
        if len(bookings) < BOOKINGS:
            raise SystemExit(f"Only {len(bookings)} bookings fit the calendar; loosen the generator.")
        # Keep 10,000 of them, chosen at random; dropping some leaves every day non-overlapping.
        rng.shuffle(bookings)
        bookings = sorted(bookings[:BOOKINGS], key=lambda b: b.start)
        counters: dict[int, int] = {}
        for booking in bookings:
            year = booking.start.astimezone(tz).year
            counters[year] = counters.get(year, 0) + 1
            booking.number = f"BK-{year}-{counters[year]:06d}"
        Booking.objects.bulk_create(bookings, batch_size=2000)
        CalendarEvent.objects.bulk_create(events, batch_size=2000)
        YearlyCounter.objects.bulk_create([YearlyCounter(name="BK", year=y, last_value=v) for y, v in counters.items()])

    from django.db import connection

    # Fresh statistics, as autovacuum would have them on a live database.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    # How full the bookable future is: busy minutes (active visits with buffers, events) over
    # working minutes, from tomorrow on.
    tomorrow = datetime.combine(today + timedelta(days=1), time.min, tzinfo=tz)
    closed = set(ClosedDay.objects.values_list("date", flat=True))
    open_days = [today + timedelta(days=n) for n in range(1, FUTURE_DAYS)]
    working_minutes = sum(
        (datetime.combine(day, e) - datetime.combine(day, s)).total_seconds() / 60
        for _, shift in technicians
        for day in open_days
        if day not in closed
        for s, e in shift.get(day.weekday(), ())
    )
    busy_minutes = sum(
        (b.occupied_end - b.occupied_start).total_seconds() / 60
        for b in bookings
        if b.status in (BookingStatus.PENDING, BookingStatus.CONFIRMED) and b.occupied_start >= tomorrow
    ) + sum((e.end - e.start).total_seconds() / 60 for e in events if e.start >= tomorrow)
    return {
        "utilization": busy_minutes / working_minutes,
        "service": next(s for s in services if s.slug == "hvac-repair"),
        "bookings": len(bookings),
        "active": sum(b.status in (BookingStatus.PENDING, BookingStatus.CONFIRMED) for b in bookings),
        "events": len(events),
        "hvac_technicians": Technician.objects.filter(trades__slug="hvac").count(),
    }


def lay_out_span(rng, technician, offered, customers, events, *, past, span_start, span_end) -> list:
    """One working span of a technician: visits and meetings in order, with random gaps.

    The span is filled to a random utilization (50-90 %), and the free time is split at random
    points, so some days keep a long free stretch and others only crumbs, as real calendars do.
    Visits start on the 30 min grid, like the ones the engine offers.
    """
    from bookings.models import Booking, BookingStatus, CalendarEvent, Channel, Service

    span_minutes = int((span_end - span_start).total_seconds() // 60)
    budget = rng.uniform(0.85, 1.0) * span_minutes
    items: list = []
    used = 0
    misses = 0
    while misses < 5:  # a few tries to fill the rest of the budget with a shorter item
        if rng.random() < 0.08:
            item = length = rng.choice((30, 60))  # a meeting of that many minutes
        else:
            # Short jobs are the everyday ones; installations are rarer.
            item = rng.choices(offered, weights=[1 / s.duration_minutes for s in offered])[0]
            length = item.buffer_before_minutes + item.duration_minutes + item.buffer_after_minutes
            length += -length % 30  # the next visit starts on the grid again
        if used + length > budget:
            misses += 1
            continue
        items.append(item)
        used += length
    cuts = sorted(rng.randint(0, span_minutes - used) for _ in items)

    bookings = []
    cursor, previous = span_start, 0
    for cut, service in zip(cuts, items, strict=True):
        cursor += timedelta(minutes=cut - previous)
        previous = cut
        before = service.buffer_before if isinstance(service, Service) else timedelta(0)
        start = cursor + before
        start += timedelta(minutes=-start.minute % 30)
        if not isinstance(service, Service):
            end = start + timedelta(minutes=service)
            if end > span_end:
                continue
            events.append(
                CalendarEvent(
                    technician=technician, kind=CalendarEvent.Kind.MEETING, title="Meeting", start=start, end=end
                )
            )
            cursor = end
            continue
        occupied_end = start + service.duration + service.buffer_after
        if occupied_end > span_end:
            continue  # pushed out by rounding to the grid; a shorter item may still fit
        roll = rng.random()
        if past:
            status = BookingStatus.COMPLETED if roll < 0.9 else BookingStatus.NO_SHOW
        else:
            status = BookingStatus.PENDING if roll < 0.08 else BookingStatus.CONFIRMED
        # Some slots were booked, cancelled and booked again: the cancelled row stays in the
        # table on the same time (the exclusion constraint ignores it).
        rebooked = not past and rng.random() < 0.2
        for row_status in (BookingStatus.CANCELLED, status) if rebooked else (status,):
            bookings.append(
                Booking(
                    service=service,
                    technician=technician,
                    customer=rng.choice(customers),
                    start=start,
                    end=start + service.duration,
                    occupied_start=start - before,
                    occupied_end=occupied_end,
                    status=row_status,
                    estimated_price_min=service.price_min,
                    address="1 Bench St",
                    channel=Channel.STAFF,
                )
            )
        cursor = occupied_end
    return bookings


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_calls(label: str, calls: list, *, now: datetime) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bookings.selectors import available_slots

    # Warm up: connection from the pool, prepared caches, first-call imports.
    for kwargs in calls[:5]:
        available_slots(now=now, **kwargs)
    timings: list[float] = []
    slots = 0
    for kwargs in calls:
        started = clock.perf_counter()
        result = available_slots(now=now, **kwargs)
        timings.append((clock.perf_counter() - started) * 1000)
        slots += len(result)
    # Counted in a separate pass: capturing queries forces the debug cursor, which costs time.
    queries = set()
    for kwargs in calls[:20]:
        with CaptureQueriesContext(connection) as captured:
            available_slots(now=now, **kwargs)
        queries.add(len(captured.captured_queries))
    row = {
        "label": label,
        "runs": len(calls),
        "median": statistics.median(timings),
        "p95": percentile(timings, 0.95),
        "max": max(timings),
        "queries": "/".join(str(q) for q in sorted(queries)),
        "slots": slots / len(calls),
    }
    print(
        f"{label:<34} runs={row['runs']:<4} median={row['median']:6.2f} ms  p95={row['p95']:6.2f} ms  "
        f"max={row['max']:6.2f} ms  queries/call={row['queries']}  slots/call={row['slots']:.1f}"
    )
    return row


def main() -> None:
    started = clock.perf_counter()
    setup_django()
    import django
    from django.conf import settings
    from django.db import connection

    from bookings.models import Technician
    from bookings.selectors import business_tz

    now = datetime.combine(REFERENCE_DAY, time(12), tzinfo=business_tz())
    today = REFERENCE_DAY
    data = build_calendar(today)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, Django {django.get_version()}, PostgreSQL {pg_version}"
    )
    print(
        f"Calendar: {TECHNICIANS} technicians ({data['hvac_technicians']} do HVAC), {data['bookings']} bookings "
        f"({data['active']} active), {data['events']} calendar events, {HISTORY_DAYS + FUTURE_DAYS} days; "
        f"built in {clock.perf_counter() - started:.1f} s; the technicians are busy {data['utilization']:.0%} of "
        f"their working time from tomorrow on"
    )
    service = data["service"]
    print(
        f"Service: {service.name} ({service.duration_minutes} min, buffers {service.buffer_before_minutes}/"
        f"{service.buffer_after_minutes} min), grid {settings.SLOT_GRID_MINUTES} min, "
        f"horizon {settings.BOOKING_HORIZON_DAYS} days"
    )

    rng = random.Random(SEED)
    bookable = [today + timedelta(days=n) for n in range(1, min(FUTURE_DAYS, settings.BOOKING_HORIZON_DAYS))]
    days = [bookable[n % len(bookable)] for n in range(RUNS)]
    rng.shuffle(days)
    one_day = [{"service": service, "start_date": day} for day in days]
    weeks = [rng.choice(bookable[:-7]) for _ in range(RANGE_RUNS)]
    seven_days = [{"service": service, "start_date": d, "end_date": d + timedelta(days=6)} for d in weeks]
    hvac_ids = list(Technician.objects.filter(trades=service.trade_id).values_list("id", flat=True))
    one_tech = [{"service": service, "start_date": day, "technician_id": rng.choice(hvac_ids)} for day in days]

    # The machine may be shared: print its load, so a slow run can be told from a slow engine.
    print(f"Load average before timing: {os.getloadavg()[0]:.2f}")
    time_calls("available_slots, one day", one_day, now=now)
    time_calls("available_slots, 7 days", seven_days, now=now)
    time_calls("available_slots, one day, one tech", one_tech, now=now)
    print(f"Load average after timing: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
