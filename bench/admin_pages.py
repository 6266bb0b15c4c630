"""Benchmark of the staff admin pages on a year of data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/admin_pages.py

DATABASE_URL only names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/chatdesk).
The script drops and recreates its own database (BENCH_DATABASE, default chatdesk_bench_admin),
migrates it and seeds a year of a busy business with COPY: 50,000 conversations (a quarter by
voice), 500,000 messages, 100,000 tool calls, 20,000 bookings laid out on a per-technician grid
(so the no-overlap exclusion constraint accepts them) with their audit rows, 15,000 customers and
about 1,100 handoff requests. Then it requests each page through django.test.Client as a superuser and
prints the median and p95 of BENCH_RUNS timed requests (default 15, after 2 warm-ups) and the
number of queries per request. Target: every page under 300 ms median, with a query count that
does not depend on the data. Results are recorded in BENCHMARKS.md ("Admin pages").
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time as clock
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import percentile  # noqa: E402

BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "chatdesk_bench_admin")
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
WARMUP = 2
CONVERSATIONS = 50_000
MESSAGES_PER_CONVERSATION = (7, 14)  # about 10 on average with the booking confirmations: 500,000
BOOKINGS = 20_000
CUSTOMERS = 15_000
TECHNICIANS = 30
DAYS = 365
SEED = 20261125

# Words customers use. A few are rare, so one search finds a handful and another thousands.
PROBLEMS = [
    ("My furnace is making a loud banging noise when it starts", 10),
    ("The furnace is not turning on and the house is cold", 8),
    ("Our AC is blowing warm air", 6),
    ("The kitchen sink drains really slowly", 8),
    ("There is water leaking under the water heater", 6),
    ("The toilet keeps running all night", 5),
    ("Half the outlets in the basement stopped working", 5),
    ("The breaker for the dryer keeps tripping", 4),
    ("I would like a quote for an EV charger in the garage", 3),
    ("The thermostat screen is blank", 4),
    ("Can someone service the boiler before winter", 4),
    ("I need to move my appointment", 6),
    ("I want to cancel my visit", 4),
    ("How much does a drain cleaning cost", 5),
    ("The carbon monoxide alarm went off near the furnace", 1),
]
FOLLOW_UPS = [
    "Tomorrow morning would be best.",
    "Anytime after 2 pm works.",
    "Is there anything on Friday?",
    "Yes, that works for me.",
    "My address is {n} Queen Street West.",
    "You can reach me at 416-555-{p:04d}.",
    "Is there a charge for the visit?",
    "Do I need to be home?",
    "Great, thank you!",
    "Can the technician call before arriving?",
]
REPLIES = [
    "I can send a technician {day} at {hour}:00. Shall I book it?",
    "The first free time is {day} at {hour}:30 with Alex.",
    "A drain cleaning is $175, a repair is $200 to $600 depending on parts.",
    "Yes, the technician calls about 30 minutes before arriving.",
    "Could I have your name and phone number, please?",
    "You're booked: {booking}. You'll get a confirmation email.",
    "Someone needs to be home to let the technician in.",
    "I've asked a colleague to call you back today.",
    "Is there anything else I can help with?",
]
DAYS_OF_WEEK = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
TOOLS = ["get_available_time_slots", "resolve_date", "get_available_services", "get_booking_info"]


def setup_django() -> str:
    # django.test.Client speaks plain HTTP.
    return common.setup_django(
        BENCH_DATABASE,
        DEBUG="0",
        ALLOWED_HOSTS=os.environ.get("ALLOWED_HOSTS") or "testserver",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
    )


# --- Seeding ---------------------------------------------------------------------------------


def weighted(rng: random.Random, choices: list[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def copy_rows(cursor, table: str, columns: list[str], rows) -> int:
    """COPY rows (tuples in `columns` order) into `table`; returns how many."""
    count = 0
    quoted = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


class Rows:
    """COPY rows of conversations, messages and tool calls, built one conversation at a time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.conversations: list[tuple] = []
        self.messages: list[tuple] = []
        self.calls: list[tuple] = []
        self.handoffs: list[tuple] = []
        self.events: list[tuple] = []

    def begin(self, conversation_id: int, channel: str, at: datetime) -> None:
        self.conversation_id, self.channel, self.moment, self.said = conversation_id, channel, at, 0

    def message(self, role: str, text: str, latency: int | None, cost: Decimal | None) -> None:
        self.said += 1
        row = (len(self.messages) + 1, role, text, self.moment, latency, cost, False, self.conversation_id)
        self.messages.append((*row, self.channel, "", None))
        self.moment += timedelta(seconds=self.rng.randint(8, 40))

    def tool(self, name: str, error: str = "", booking_id: int | None = None) -> str:
        call_id = f"call_{len(self.calls) + 1:07d}"
        arguments = json.dumps(
            {"date": (self.moment.date() + timedelta(days=1)).isoformat(), "service_id": "hvac-repair"}
        )
        if error:
            result = {"error": error, "message": "That time is not available."}
        else:
            result = {"slots": [{"start": f"{h}:00", "technicians": [{"name": "Alex B."}]} for h in range(8, 12)]}
        row = (len(self.calls) + 1, call_id, name, arguments, arguments, json.dumps(result), error)
        self.calls.append((*row, self.rng.randint(3, 80), self.moment, booking_id, self.conversation_id))
        self.moment += timedelta(seconds=1)
        return call_id


def seed(now: datetime) -> dict:
    """Fill the database with a year of a busy business; returns what the timing needs."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from bookings.models import BusinessHours, Service, Technician, Trade, WorkingHours
    from bookings.selectors import business_tz

    rng = random.Random(SEED)
    tz = business_tz()
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=DAYS - 1)
    started = clock.perf_counter()

    index_sql = _index_statements()
    with connection.cursor() as cursor:
        # Built after the data (as CREATE INDEX), not maintained row by row during COPY.
        for name, _ in index_sql:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")

    with transaction.atomic():
        admin = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
        hvac = Trade.objects.create(name="HVAC", slug="hvac")
        plumbing = Trade.objects.create(name="Plumbing", slug="plumbing")
        electrical = Trade.objects.create(name="Electrical", slug="electrical")
        services = [
            Service.objects.create(
                trade=trade,
                name=name,
                slug=slug,
                duration_minutes=minutes,
                price_min=Decimal(price),
                buffer_before_minutes=30,
                buffer_after_minutes=15,
            )
            for trade, name, slug, minutes, price in [
                (hvac, "HVAC Repair", "hvac-repair", 120, "200"),
                (hvac, "HVAC Maintenance", "hvac-maintenance", 90, "150"),
                (plumbing, "Drain Cleaning", "drain-cleaning", 60, "175"),
                (plumbing, "Leak Repair", "leak-repair", 90, "220"),
                (electrical, "Outlet Repair", "outlet-repair", 60, "140"),
            ]
        ]
        for weekday in range(6):
            BusinessHours.objects.create(weekday=weekday, opens=time(8), closes=time(18 if weekday < 5 else 14))
        technicians = []
        for i in range(TECHNICIANS):
            trade = [hvac, plumbing, electrical][i % 3]
            technician = Technician.objects.create(first_name=f"Tech{i:02d}", last_name="Bench", title=f"{trade.name}")
            technician.trades.add(trade)
            for weekday in range(5):
                WorkingHours.objects.create(
                    technician=technician, weekday=weekday, start_time=time(7), end_time=time(18)
                )
            technicians.append((technician, [s for s in services if s.trade_id == trade.pk]))

    with connection.cursor() as cursor:
        # Customers.
        customers = list(range(1, CUSTOMERS + 1))
        copy_rows(
            cursor,
            "bookings_customer",
            ["id", "name", "phone", "email", "address", "created_at"],
            (
                (
                    n,
                    f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    f"+1416{2000000 + n}",
                    f"customer{n}@example.com",
                    f"{n % 400 + 1} Queen Street West, Toronto",
                    now - timedelta(days=rng.randint(0, DAYS)),
                )
                for n in customers
            ),
        )

        # Bookings on a grid: visits start at 08:00, 11:00 or 14:00, at most 2 h long with
        # 30/15 min buffers, so no two occupied periods of one technician overlap.
        cells = [
            (e, d, s) for e in range(TECHNICIANS) for d in range(-DAYS + 1, 31) for s in range(3) if (d + 7000) % 7 != 6
        ]
        chosen = rng.sample(cells, BOOKINGS)
        chosen.sort(key=lambda c: (c[1], c[2], c[0]))
        bookings = []  # (id, number, start, created_at, channel, customer_id, technician, service)
        for i, (e, d, s) in enumerate(chosen, start=1):
            technician, offered = technicians[e]
            service = rng.choice(offered)
            day = today + timedelta(days=d)
            start = datetime.combine(day, time(8 + 3 * s), tzinfo=tz)
            created = min(start - timedelta(days=rng.randint(1, 10), minutes=rng.randint(0, 600)), now)
            channel = weighted(rng, [("chat", 45), ("voice", 25), ("staff", 25), ("api", 5)])
            bookings.append(
                (i, f"BK-{created.year}-{i:06d}", start, created, channel, rng.choice(customers), technician, service)
            )

        def booking_rows():
            for i, number, start, created, channel, customer, technician, service in bookings:
                end = start + timedelta(minutes=service.duration_minutes)
                past = start < now
                roll = rng.random()
                if roll < 0.1:
                    status = "cancelled"
                elif past:
                    status = "no_show" if roll < 0.15 else "completed"
                else:
                    status = "pending" if roll < 0.15 else "confirmed"
                yield (
                    i,
                    number,
                    start,
                    end,
                    start - timedelta(minutes=30),
                    end + timedelta(minutes=15),
                    status,
                    service.price_min,
                    None,
                    "CAD",
                    f"{i % 400 + 1} Queen Street West, Toronto",
                    "",
                    channel,
                    created,
                    created,
                    "",
                    None,
                    None,
                    customer,
                    technician.pk,
                    service.pk,
                )

        copy_rows(
            cursor,
            "bookings_booking",
            [
                "id",
                "number",
                "start",
                "end",
                "occupied_start",
                "occupied_end",
                "status",
                "estimated_price_min",
                "estimated_price_max",
                "currency",
                "address",
                "notes",
                "channel",
                "created_at",
                "updated_at",
                "cancellation_reason",
                "cancelled_at",
                "reminder_sent_at",
                "customer_id",
                "employee_id",  # the column keeps its name (Booking.technician, db_column)
                "service_id",
            ],
            booking_rows(),
        )

        # Conversations: the chat and voice bookings each came from one; the rest answered,
        # escalated or were abandoned, spread over the year with busier weekdays.
        conversations = []  # (started_at, channel, booking or None)
        for booking in bookings:
            if booking[4] in ("chat", "voice") and booking[3] >= datetime.combine(first_day, time.min, tzinfo=tz):
                conversations.append((booking[3] - timedelta(minutes=rng.randint(2, 9)), booking[4], booking))
        while len(conversations) < CONVERSATIONS:
            day = first_day + timedelta(days=rng.randrange(DAYS))
            if day.weekday() >= 5 and rng.random() < 0.5:
                continue
            at = datetime.combine(day, time(7), tzinfo=tz) + timedelta(seconds=rng.randrange(14 * 3600))
            if at > now:
                continue
            conversations.append((at, "voice" if rng.random() < 0.25 else "chat", None))
        conversations.sort(key=lambda c: c[0])

        rows = Rows(rng)
        counters: dict[int, int] = {}
        for conversation_id, (at, kind, booking) in enumerate(conversations, start=1):
            channel = kind  # chat or voice: the conversation's channel is the booking's
            counters[at.year] = counters.get(at.year, 0) + 1
            number = f"INT-{at.year}-{counters[at.year]:05d}"
            escalated = booking is None and rng.random() < 0.03
            failed = rng.random() < 0.03
            problem = weighted(rng, PROBLEMS)
            phone = rng.randrange(10000)
            cost_total = Decimal("0")
            rows.begin(conversation_id, channel, at)
            rows.message("assistant", "Hi! I'm the Maple Home Services assistant. How can I help?", None, None)
            for turn in range((rng.randint(*MESSAGES_PER_CONVERSATION) - 1) // 2):
                text = problem if turn == 0 else rng.choice(FOLLOW_UPS)
                rows.message("customer", text.format(n=rng.randint(1, 400), p=phone), None, None)
                if turn == 0 or rng.random() < 0.2:
                    rows.tool(rng.choice(TOOLS), error="slot_unavailable" if failed and turn == 0 else "")
                reply = rng.choice(REPLIES).format(
                    day=rng.choice(DAYS_OF_WEEK), hour=rng.randint(8, 15), booking=booking[1] if booking else "BK"
                )
                if channel == "chat":
                    cost = Decimal(rng.randint(80, 400)) / 1_000_000
                else:
                    cost = Decimal(rng.randint(2, 30)) / 1000
                cost_total += cost
                latency = int(rng.lognormvariate(7.0 if channel == "chat" else 6.3, 0.5))
                rows.message("assistant", reply, latency, cost)
            if booking is not None:
                call = rows.tool("create_booking", booking_id=booking[0])
                rows.message("assistant", f"You're booked: {booking[1]}.", int(rng.lognormvariate(7.2, 0.4)), None)
                rows.events.append(
                    (
                        len(rows.events) + 1,
                        "created",
                        "customer",
                        channel,
                        f"{number} {call}",
                        "{}",
                        "",
                        booking[3],
                        None,
                        booking[0],
                    )
                )
            if escalated:
                rows.tool("request_human")
                recent = rows.moment > now - timedelta(days=2)  # the last ones still wait
                rows.handoffs.append(
                    (
                        len(rows.handoffs) + 1,
                        "Wants to talk to a person about a quote",
                        "Pat",
                        f"+1416555{phone:04d}",
                        rng.random() < 0.2,
                        rows.moment,
                        None if recent else rows.moment + timedelta(hours=2),
                        None if recent else admin.pk,
                        conversation_id,
                    )
                )
            tokens_in = rng.randint(3000, 15000)
            breakdown = (
                json.dumps({"audio_input": str(cost_total * 2 / 5), "audio_output": str(cost_total * 3 / 5)})
                if channel == "voice"
                else "{}"
            )
            rows.conversations.append(
                (
                    conversation_id,
                    f"bench-session-{conversation_id}",
                    number,
                    channel,
                    "closed",
                    "booked" if booking else "escalated" if escalated else rng.choice(["answered", "abandoned"]),
                    "model",
                    at,
                    rows.moment,
                    rows.moment,
                    "customer_closed",
                    rows.said,
                    1 if booking else 0,
                    "gpt-6-luna" if channel == "chat" else "gpt-realtime-2.1-mini",
                    tokens_in,
                    tokens_in // 3,
                    rng.randint(200, 1500),
                    0,
                    tokens_in // 2 if channel == "voice" else 0,
                    rng.randint(300, 1500) if channel == "voice" else 0,
                    cost_total,
                    1 if failed else 0,
                    "slot_unavailable" if failed else "",
                    "",
                    "Mozilla/5.0",
                    "[]",
                    "{}",
                    booking[5] if booking else None,
                    breakdown,
                    None,
                    None,
                )
            )
        conversation_rows, message_rows, call_rows = rows.conversations, rows.messages, rows.calls
        handoff_rows, event_rows = rows.handoffs, rows.events

        copy_rows(
            cursor,
            "chatdesk_interaction",
            [
                "id",
                "session_id",
                "number",
                "channel",
                "status",
                "resolution",
                "mode",
                "started_at",
                "last_activity_at",
                "ended_at",
                "end_reason",
                "message_count",
                "booking_count",
                "model",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "audio_input_tokens",
                "audio_output_tokens",
                "cost_usd",
                "failure_count",
                "last_error",
                "client_ip_hash",
                "user_agent",
                "model_items",
                "guided_state",
                "customer_id",
                "cost_breakdown",
                "taken_over_at",
                "taken_over_by_id",
            ],
            conversation_rows,
        )
        copy_rows(
            cursor,
            "chatdesk_message",
            [
                "id",
                "role",
                "text",
                "created_at",
                "latency_ms",
                "cost_usd",
                "interrupted",
                "interaction_id",
                "channel",
                "item_id",
                "staff_user_id",
            ],
            message_rows,
        )
        copy_rows(
            cursor,
            "chatdesk_toolcall",
            [
                "id",
                "call_id",
                "name",
                "arguments",
                "raw_arguments",
                "result",
                "error",
                "duration_ms",
                "created_at",
                "booking_id",
                "interaction_id",
            ],
            call_rows,
        )
        copy_rows(
            cursor,
            "chatdesk_handoffrequest",
            [
                "id",
                "reason",
                "contact_name",
                "contact_phone",
                "urgent",
                "created_at",
                "handled_at",
                "handled_by_id",
                "interaction_id",
            ],
            handoff_rows,
        )
        copy_rows(
            cursor,
            "bookings_bookingevent",
            [
                "id",
                "kind",
                "actor_kind",
                "actor_channel",
                "actor_reference",
                "changes",
                "note",
                "created_at",
                "actor_user_id",
                "booking_id",
            ],
            event_rows,
        )
        for table in [
            "bookings_customer",
            "bookings_booking",
            "bookings_bookingevent",
            "chatdesk_interaction",
            "chatdesk_message",
            "chatdesk_toolcall",
            "chatdesk_handoffrequest",
        ]:
            # Table names are the constants above.
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")  # noqa: S608
        for _, statement in index_sql:
            cursor.execute(statement)
    seeded = clock.perf_counter() - started

    # VACUUM (outside a transaction): the visibility map makes index-only scans possible,
    # as on a table that autovacuum has visited.
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {
        "admin": admin,
        "seconds": seeded,
        "vacuum_seconds": clock.perf_counter() - started - seeded,
        "conversations": len(conversation_rows),
        "messages": len(message_rows),
        "tool_calls": len(call_rows),
        "handoffs": len(handoff_rows),
        "bookings": len(bookings),
        "typical": conversation_rows[len(conversation_rows) // 2][0],
        "longest": max(conversation_rows, key=lambda r: r[11])[0],
        "booked_booking": next(b[0] for b in reversed(bookings) if b[4] == "chat" and b[3] < now),
    }


FIRST_NAMES = ["Dana", "Eli", "Fay", "Gil", "Hana", "Ivan", "Jo", "Kai", "Lee", "Mo", "Nia", "Omar", "Pat", "Quinn"]
LAST_NAMES = ["Whitfield", "Novak", "Ortiz", "Singh", "Chen", "Tremblay", "Roy", "Smith", "Brown", "Martin", "Lee"]


def _index_statements() -> list[tuple[str, str]]:
    """The CREATE INDEX statements of migration 0004, without CONCURRENTLY (nobody else is here)."""
    import importlib

    migration = importlib.import_module("chatdesk.migrations.0004_staff_admin_indexes")
    return [(name, f"CREATE INDEX {name} {definition}") for name, definition in migration.INDEXES.items()]


# --- Timing ----------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def time_page(client, label: str, url: str) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(RUNS):
        started = clock.perf_counter()
        response = client.get(url)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        times.append((clock.perf_counter() - started) * 1000)
        assert response.status_code == 200
    # Counted in a separate pass: capturing queries slows them down.
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    row = {
        "label": label,
        "median": statistics.median(times),
        "p95": percentile(times, 0.95),
        "queries": len(queries),
        "bytes": len(response.content) if not getattr(response, "streaming", False) else 0,
    }
    print(
        f"{label:<44} median={row['median']:7.1f} ms  p95={row['p95']:7.1f} ms  queries={row['queries']:<3}"
        f"  {'OK' if row['median'] < 300 else 'OVER 300 ms'}",
        flush=True,
    )
    return row


def slowest_queries(client, url: str, top: int = 3) -> None:
    """Print where a page spends its database time (BENCH_EXPLAIN=1)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    for q in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:top]:
        print(f"    {float(q['time']) * 1000:7.1f} ms  {q['sql'][:300]}")


def main() -> None:
    started = clock.perf_counter()
    setup_django()
    import django
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    now = timezone.now()
    print(f"Load average before seeding: {load_average()}", flush=True)
    data = seed(now)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, Django {django.get_version()}, PostgreSQL {pg_version}"
    )
    print(
        f"Data: {data['conversations']:,} conversations, {data['messages']:,} messages, {data['tool_calls']:,} tool "
        f"calls, {data['bookings']:,} bookings, {data['handoffs']:,} handoffs over {DAYS} days; database {size}; "
        f"seeded in {data['seconds']:.1f} s (+ VACUUM ANALYZE {data['vacuum_seconds']:.1f} s), "
        f"{clock.perf_counter() - started:.0f} s with migrations"
    )

    client = Client()
    client.force_login(data["admin"])
    changelist = reverse("admin:chatdesk_conversation_changelist")
    year_ago = (now - timedelta(days=DAYS - 1)).astimezone(timezone.get_current_timezone()).date()
    pages = [
        ("Conversation list", changelist),
        ("Conversation list, page 200", f"{changelist}?p=200"),
        ("Search: rare words (carbon monoxide)", f"{changelist}?{urlencode({'q': 'carbon monoxide'})}"),
        ("Search: common word (furnace)", f"{changelist}?{urlencode({'q': 'furnace'})}"),
        ("Search: customer phone", f"{changelist}?{urlencode({'q': '(416) 200-1234'})}"),
        ("Filters: tool error, not booked, voice", f"{changelist}?tool_error=yes&booked=no&channel__exact=voice"),
        ("Filters: escalated, past 30 days", f"{changelist}?escalated=yes&started=30d"),
        ("Conversation detail (typical)", reverse("admin:chatdesk_conversation_change", args=[data["typical"]])),
        ("Conversation detail (longest)", reverse("admin:chatdesk_conversation_change", args=[data["longest"]])),
        ("Dashboard (last 30 days)", reverse("admin:chatdesk_dashboard")),
        ("Dashboard (a year)", f"{reverse('admin:chatdesk_dashboard')}?since={year_ago.isoformat()}"),
        ("Analytics API (a year)", f"/api/v1/chat/analytics?since={year_ago.isoformat()}"),
        ("Handoff queue", reverse("admin:chatdesk_handoffrequest_changelist")),
        ("Booking page with provenance", reverse("admin:bookings_booking_change", args=[data["booked_booking"]])),
    ]
    print(f"Load average before timing: {load_average()}  (runs per page: {RUNS}, after {WARMUP} warm-ups)")
    rows = [time_page(client, label, url) for label, url in pages]
    export_started = clock.perf_counter()
    response = client.get(reverse("admin:chatdesk_conversation_export") + "?started=30d")
    exported = b"".join(response.streaming_content)
    print(
        f"{'CSV export, past 30 days (one run)':<44} {(clock.perf_counter() - export_started) * 1000:7.1f} ms, "
        f"{exported.count(b'\n') - 1:,} rows, {len(exported) / 1e6:.1f} MB"
    )
    print(f"Load average after timing: {load_average()}")
    if os.environ.get("BENCH_EXPLAIN"):
        for label, url in pages:
            print(label)
            slowest_queries(client, url)
    over = [row["label"] for row in rows if row["median"] >= 300]
    print("All pages under 300 ms median." if not over else f"Over 300 ms: {', '.join(over)}")


if __name__ == "__main__":
    main()
