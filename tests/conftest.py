"""Shared test setup: environment, and a small business with named technicians.

Tests run on real PostgreSQL (DATABASE_URL, set by `make test`); the environment
defaults are in tests/settings.py. Nothing here skips when a
service is missing: a missing PostgreSQL, Redis or Chromium is a failure.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

import pytest


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache.

    Rate limits and the failed-lookup counters (chatdesk.assistant.lookup_guard.LookupGuard) live there,
    keyed by client IP, and every test client is 127.0.0.1: without this, one test's
    wrong phone numbers would lock lookups in a later one.
    """
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def business(db):
    """A small home-services business.

    Opening hours Mon-Fri 08:00-18:00 and Sat 09:00-14:00 (Toronto time).
    HVAC: alice (Mon-Fri 08-17), bob (Mon-Sat 09-17); plumbing: carol (Mon-Fri 08-16).
    Services: HVAC Repair 120 min (30 before, 15 after, 2 h notice), Drain Cleaning 60 min.
    """
    from bookings.models import BusinessHours, Service, Technician, Trade, WorkingHours

    hvac = Trade.objects.create(name="HVAC", slug="hvac")
    plumbing = Trade.objects.create(name="Plumbing", slug="plumbing")
    for weekday in range(5):
        BusinessHours.objects.create(weekday=weekday, opens=time(8), closes=time(18))
    BusinessHours.objects.create(weekday=5, opens=time(9), closes=time(14))

    def technician(first: str, trade: Trade, weekdays: range, start: int, end: int) -> Technician:
        technician = Technician.objects.create(
            first_name=first,
            last_name="Tech",
            title=f"{trade.name} Technician",
            phone="+14165550000",
            email=f"{first.lower()}@staff.example.com",
            pay_rate=Decimal("41.00"),
            home_address="1 Secret Lane",
        )
        technician.trades.add(trade)
        for weekday in weekdays:
            WorkingHours.objects.create(
                technician=technician, weekday=weekday, start_time=time(start), end_time=time(end)
            )
        return technician

    ns = type("Business", (), {})()
    ns.hvac, ns.plumbing = hvac, plumbing
    ns.alice = technician("Alice", hvac, range(5), 8, 17)
    ns.bob = technician("Bob", hvac, range(6), 9, 17)
    ns.carol = technician("Carol", plumbing, range(5), 8, 16)
    ns.repair = Service.objects.create(
        trade=hvac,
        name="HVAC Repair",
        slug="hvac-repair",
        duration_minutes=120,
        price_min=Decimal("200"),
        price_max=Decimal("600"),
        buffer_before_minutes=30,
        buffer_after_minutes=15,
        min_notice_minutes=120,
    )
    ns.drain = Service.objects.create(
        trade=plumbing,
        name="Drain Cleaning",
        slug="drain-cleaning",
        duration_minutes=60,
        price_min=Decimal("175"),
        buffer_before_minutes=30,
        buffer_after_minutes=15,
        min_notice_minutes=120,
    )
    return ns


# A Monday morning far from DST changes, used as "now" by calendar tests.
MONDAY_NOON_UTC = datetime(2026, 11, 16, 13, 0, tzinfo=UTC)  # 08:00 in Toronto


# --- a private Redis, and a server process on it (outage tests) -----------------------------


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, to stop and start (tests.servers.RedisServer)."""
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_on_private_redis(business, private_redis):
    """One daphne process whose cache and channel layer are the private Redis: its address,
    and its stderr (a file) for the test to read.

    Redis is retried a second after a failure, and a session may send 6 messages a day (so a
    test can reach the limit). Plain daphne serves no /static/: a browser test serves those
    files itself (tests/test_live_pages.py).
    """
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from django.conf import settings as django_settings

    from tests.servers import free_port, subprocess_database_url, wait_for_port

    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": private_redis.url,
        "REDIS_RETRY_SECONDS": "1",
        "CHAT_RATE_MESSAGE_PER_SESSION": "6/d",
        "SECRET_KEY": django_settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "",
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    log = tempfile.TemporaryFile()
    daphne = str(Path(sys.executable).parent / "daphne")
    process = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port, process)
        yield f"127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
