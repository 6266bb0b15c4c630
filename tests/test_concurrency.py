"""Double booking under real concurrency: real threads, real PostgreSQL, committed transactions.

Each thread has its own Django connection (checked out of the psycopg pool, max 20) and gives
it back in a `finally`, or the pool runs dry and later tests hang.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from bookings.errors import SlotUnavailable
from bookings.models import ACTIVE_STATUSES, Booking, BookingStatus, Channel, Technician, WorkingHours
from bookings.services import Actor, booking_create
from tests.conftest import MONDAY_NOON_UTC

pytestmark = pytest.mark.django_db(transaction=True)

TORONTO = ZoneInfo("America/Toronto")
NOW = MONDAY_NOON_UTC  # Monday 2026-11-16 08:00 in Toronto
RACERS = 16
ROUNDS = 15


def at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=TORONTO)


def weekdays(first: date, count: int) -> list[date]:
    days = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def in_thread(work: Callable[[], object]) -> Callable[[], tuple[str, object]]:
    """Wrap `work` to report ("ok", result) or ("error", exception) and always free the connection."""

    def run() -> tuple[str, object]:
        try:
            return "ok", work()
        except Exception as error:  # the test inspects every failure, so catch them all
            return "error", error
        finally:
            connection.close()

    return run


def overlapping_active_pairs() -> list[tuple]:
    """Pairs of active bookings of one technician whose busy periods overlap, straight from SQL."""
    statuses = [str(status) for status in ACTIVE_STATUSES]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.number, b.number
            FROM bookings_booking a
            JOIN bookings_booking b
              ON a.employee_id = b.employee_id AND a.id < b.id
             AND a.occupied_start < b.occupied_end AND b.occupied_start < a.occupied_end
            WHERE a.status = ANY(%s) AND b.status = ANY(%s)
            """,
            [statuses, statuses],
        )
        return cursor.fetchall()


def race(requests: list[dict]) -> list[tuple[str, object]]:
    """Run one booking_create per request, all threads released at once by a barrier."""
    barrier = threading.Barrier(len(requests))

    def attempt(request: dict) -> Booking:
        # Take a connection before the barrier, so the race is between queries, not pool checkouts.
        connection.ensure_connection()
        barrier.wait(timeout=30)
        return booking_create(
            channel=Channel.CHAT,
            actor=Actor.customer(Channel.CHAT, reference=request["customer_phone"]),
            address="12 Elm St, Toronto",
            customer_name="Racing Customer",
            now=NOW,
            **request,
        )

    results: list[tuple[str, object]] = [("missing", None)] * len(requests)

    def runner(index: int, request: dict) -> None:
        results[index] = in_thread(lambda: attempt(request))()

    threads = [threading.Thread(target=runner, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a booking thread hung"
    return results


def test_racing_bookings_for_one_technician_get_exactly_one_winner_per_round(business):
    # One round a day, each on a weekday of its own, so rounds never clash with each other.
    days = weekdays(date(2026, 11, 17), ROUNDS)
    for round_number, day in enumerate(days):
        base = "09:00" if round_number % 2 else "10:30"
        later = at(day, base) + timedelta(minutes=30)
        # Same start or 30 min apart: every pair of these 2 h visits overlaps.
        requests = [
            {
                "service": business.repair,
                "technician": business.alice,
                "start": at(day, base) if i % 2 else later,
                "customer_phone": f"+1 416 555 {100 + i:04d}",
            }
            for i in range(RACERS)
        ]

        results = race(requests)

        winners = [value for outcome, value in results if outcome == "ok"]
        losers = [value for outcome, value in results if outcome != "ok"]
        assert len(winners) == 1, f"round {round_number} on {day}: {len(winners)} winners"
        # Losers get the clean domain error, never an IntegrityError, a deadlock or a pool timeout.
        assert all(type(error) is SlotUnavailable for error in losers), [repr(e) for e in losers]
        assert winners[0].technician_id == business.alice.pk

    assert Booking.objects.filter(status__in=ACTIVE_STATUSES).count() == ROUNDS
    assert overlapping_active_pairs() == []


def test_racing_bookings_without_a_technician_fill_each_free_technician_once(business):
    # alice and bob both do HVAC: 16 racers for the same time end with one booking each.
    for day in weekdays(date(2026, 12, 14), 5):
        requests = [
            {"service": business.repair, "start": at(day, "11:00"), "customer_phone": f"+1 416 555 {200 + i:04d}"}
            for i in range(RACERS)
        ]

        results = race(requests)

        winners = [value for outcome, value in results if outcome == "ok"]
        losers = [value for outcome, value in results if outcome != "ok"]
        assert sorted(b.technician_id for b in winners) == sorted([business.alice.pk, business.bob.pk])
        assert all(type(error) is SlotUnavailable for error in losers), [repr(e) for e in losers]

    assert overlapping_active_pairs() == []


def test_fifty_concurrent_bookings_on_free_slots_all_succeed_with_distinct_numbers(business):
    # 10 HVAC technicians x 5 days = 50 disjoint (technician, day) slots.
    technicians = [business.alice, business.bob]
    for n in range(8):
        technician = Technician.objects.create(first_name=f"Extra{n}", last_name="Tech")
        technician.trades.add(business.hvac)
        WorkingHours.objects.bulk_create(
            [WorkingHours(technician=technician, weekday=d, start_time=time(8), end_time=time(17)) for d in range(5)]
        )
        technicians.append(technician)
    days = weekdays(date(2026, 11, 23), 5)
    requests = [
        {
            "service": business.repair,
            "technician": technician,
            "start": at(day, "10:00"),
            # Five customers share the 50 bookings, so customers are created and updated concurrently too.
            "customer_phone": f"+1 416 555 {300 + (i % 5):04d}",
            "customer_email": f"customer{i % 5}@example.com",
        }
        for i, (technician, day) in enumerate((e, d) for e in technicians for d in days)
    ]
    assert len(requests) == 50

    # The pool holds at most 20 connections (settings) and the server serves other test runs,
    # so 16 workers carry the 50 bookings. All wait on one gate and start together; a worker
    # frees its connection after each booking, so the later ones race the earlier ones' commits.
    gate = threading.Event()
    ready = threading.Semaphore(0)

    def attempt(request: dict) -> Booking:
        connection.ensure_connection()
        ready.release()
        assert gate.wait(timeout=30)
        return booking_create(
            channel=Channel.VOICE,
            actor=Actor.customer(Channel.VOICE),
            address="5 Oak Ave, Toronto",
            customer_name="Parallel Customer",
            now=NOW,
            **request,
        )

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        futures = [pool.submit(in_thread(lambda r=request: attempt(r))) for request in requests]
        for _ in range(RACERS):
            assert ready.acquire(timeout=30)
        gate.set()
        results = [future.result(timeout=60) for future in futures]

    errors = [repr(value) for outcome, value in results if outcome != "ok"]
    assert errors == []
    numbers = [booking.number for _, booking in results]
    assert len(set(numbers)) == 50
    # No number skipped or repeated: the counter handed out exactly 1..50.
    assert sorted(numbers) == [f"BK-2026-{n:06d}" for n in range(1, 51)]
    assert Booking.objects.filter(status=BookingStatus.CONFIRMED).count() == 50
    assert Counter(Booking.objects.values_list("customer__phone", flat=True)) == {
        f"+1416555{300 + n:04d}": 10 for n in range(5)
    }
    assert overlapping_active_pairs() == []
