"""Benchmark of the dispatch board on a busy week: 50 technicians.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/dispatch_board.py

DATABASE_URL only names the PostgreSQL server. The script drops and recreates its own database
(BENCH_DATABASE, default chatdesk_bench_board), migrates it and seeds a business with 3 trades,
50 technicians (Mon-Sat shifts), opening hours, a closed day, some time off, and a busy
calendar: every technician has visits back to back with their buffers over four weeks around
the measured one (about 5 a day, a few pending, completed, no-show or cancelled), written with
bulk_create on a per-technician grid so the exclusion constraint accepts them. Then it requests
the board through django.test.Client as a superuser and prints the median and p95 of BENCH_RUNS
timed requests (default 15, after 2 warm-ups) and the queries per request: the day view and the
week view, each without and with a service picked (which adds the engine's free slots).
Target: < 300 ms median, like the other admin pages.
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
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import percentile  # noqa: E402

BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "chatdesk_bench_board")
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
WARMUP = 2
TECHNICIANS = 50
SEED = 20261204


def seed() -> dict:
    from django.contrib.auth.models import User
    from django.utils import timezone

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
    )
    from bookings.selectors import business_tz, local_today

    rng = random.Random(SEED)
    tz = business_tz()
    trades = [Trade.objects.create(name=n, slug=n.lower()) for n in ("HVAC", "Plumbing", "Electrical")]
    services = [
        Service.objects.create(
            trade=trade,
            name=f"{trade.name} visit",
            slug=f"{trade.slug}-visit",
            duration_minutes=60,
            price_min=Decimal("150"),
            buffer_before_minutes=30,
            buffer_after_minutes=15,
            min_notice_minutes=0,
        )
        for trade in trades
    ]
    for weekday in range(5):
        BusinessHours.objects.create(weekday=weekday, opens=time(8), closes=time(18))
    BusinessHours.objects.create(weekday=5, opens=time(9), closes=time(14))
    technicians = Technician.objects.bulk_create(
        Technician(first_name=f"Tech{i:02d}", last_name="Bench", title="Technician") for i in range(TECHNICIANS)
    )
    through = Technician.trades.through
    through.objects.bulk_create(
        through(technician_id=t.pk, trade_id=trades[i % len(trades)].pk) for i, t in enumerate(technicians)
    )
    WorkingHours.objects.bulk_create(
        WorkingHours(technician=t, weekday=weekday, start_time=time(8), end_time=time(17))
        for t in technicians
        for weekday in range(6)
    )
    today = local_today()
    monday = today - timedelta(days=today.weekday())
    ClosedDay.objects.create(date=monday + timedelta(days=11), reason="Bench holiday")
    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {i}", phone=f"+1416555{i:04d}", address=f"{i} King St") for i in range(2000)
    )
    bookings = []
    events = []
    number = 0
    now = timezone.now()
    for index, technician in enumerate(technicians):
        service = services[index % len(services)]
        for offset in range(-14, 14):
            day = monday + timedelta(days=offset)
            if day.weekday() == 6:
                continue
            if rng.random() < 0.05:
                start = datetime.combine(day, time(12), tzinfo=tz)
                events.append(
                    CalendarEvent(
                        technician=technician, kind="time_off", title="Off", start=start, end=start + timedelta(hours=4)
                    )
                )
                continue
            # Back to back: 1 h visits with 30 + 15 min buffers, from 08:30.
            at = datetime.combine(day, time(8, 30), tzinfo=tz)
            while at + timedelta(minutes=75) <= datetime.combine(day, time(17), tzinfo=tz):
                if rng.random() < 0.85:
                    number += 1
                    roll = rng.random()
                    status = BookingStatus.CONFIRMED
                    if roll < 0.1:
                        status = BookingStatus.PENDING
                    elif roll < 0.13:
                        status = BookingStatus.CANCELLED
                    elif at < now:
                        status = BookingStatus.COMPLETED if roll < 0.95 else BookingStatus.NO_SHOW
                    bookings.append(
                        Booking(
                            number=f"BK-BENCH-{number:06d}",
                            service=service,
                            technician=technician,
                            customer=customers[number % len(customers)],
                            start=at,
                            end=at + timedelta(hours=1),
                            occupied_start=at - timedelta(minutes=30),
                            occupied_end=at + timedelta(minutes=75),
                            status=status,
                            estimated_price_min=Decimal("150"),
                            address="1 King St",
                            channel="chat",
                        )
                    )
                at += timedelta(minutes=105)
    Booking.objects.bulk_create(bookings, batch_size=2000)
    CalendarEvent.objects.bulk_create(events)
    admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password-not-real")
    return {
        "admin": admin,
        "bookings": len(bookings),
        "events": len(events),
        "day": monday + timedelta(days=8),
        "service": services[0],
    }


def time_page(client, label: str, url: str) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(RUNS):
        started = clock.perf_counter()
        response = client.get(url)
        times.append((clock.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    median = statistics.median(times)
    print(
        f"{label:<40} median={median:7.1f} ms  p95={percentile(times, 0.95):7.1f} ms  queries={len(queries):<3} "
        f"{len(response.content) / 1000:6.0f} kB  {'OK' if median < 300 else 'OVER 300 ms'}",
        flush=True,
    )
    return {"label": label, "median": median}


def main() -> None:
    # django.test.Client speaks plain HTTP to "testserver".
    common.setup_django(
        BENCH_DATABASE,
        DEBUG="0",
        ALLOWED_HOSTS=os.environ.get("ALLOWED_HOSTS") or "testserver",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
    )
    import django
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    started = clock.perf_counter()
    data = seed()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, Django {django.get_version()}, PostgreSQL {pg_version}"
    )
    print(
        f"Data: {TECHNICIANS} technicians, {data['bookings']:,} bookings over 4 weeks, {data['events']} time off; "
        f"seeded in {clock.perf_counter() - started:.1f} s"
    )
    client = Client()
    client.force_login(data["admin"])
    board = reverse("admin:bookings_dispatch_board")
    day: date = data["day"]
    service = data["service"].pk
    pages = [
        ("Day view, all trades", {"day": day.isoformat()}),
        ("Day view, free slots for a service", {"day": day.isoformat(), "service": service}),
        ("Week view, all trades", {"day": day.isoformat(), "view": "week"}),
        ("Week view, free slots for a service", {"day": day.isoformat(), "view": "week", "service": service}),
    ]
    rows = [time_page(client, label, f"{board}?{urlencode(params)}") for label, params in pages]
    worst = max(row["median"] for row in rows)
    print(f"Slowest median {worst:.1f} ms: {'target met' if worst < 300 else 'TARGET MISSED'} (< 300 ms)")


if __name__ == "__main__":
    main()
