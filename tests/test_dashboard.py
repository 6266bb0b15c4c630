"""The staff dashboard and the analytics API: numbers on a known dataset, pages, auth, validation.

The dataset spans a weekend in Toronto. Days are the business's calendar days, so a
conversation at 23:30 on Sunday (04:30 UTC on Monday) belongs to Sunday.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bookings.models import Booking, BookingStatus, Technician
from bookings.selectors import available_slots, business_tz, local_today
from bookings.services import Actor, booking_cancel, booking_create
from chatdesk.backoffice.charts import _axis, _nice_ceiling, bar_chart, schedule_chart
from chatdesk.backoffice.dashboard import DayStats, _reply_latency_in_python, dashboard, reply_latency, schedule_for
from chatdesk.conversations.models import Conversation, HandoffRequest, Message
from tests.conftest import MONDAY_NOON_UTC
from tests.test_conversation_admin import dispatcher_fixture, staff_groups_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

SAT, SUN, MON = date(2026, 11, 14), date(2026, 11, 15), date(2026, 11, 16)
DASHBOARD = "admin:chatdesk_dashboard"
ANALYTICS = "/api/v1/chat/analytics"
NUMBERS = itertools.count(1)
PHONES = itertools.count(300)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=business_tz())


def conversation_at(at: datetime, *, channel: str = "chat", booked: bool = False, cost: str = "0.01") -> Conversation:
    conversation = Conversation.objects.create(
        number=f"INT-2026-{next(NUMBERS):05d}",
        channel=channel,
        booking_count=1 if booked else 0,
        resolution=Conversation.Resolution.BOOKED if booked else Conversation.Resolution.ANSWERED,
        cost_usd=Decimal(cost),
    )
    # started_at is auto_now_add: set the moment afterwards.
    Conversation.objects.filter(pk=conversation.pk).update(started_at=at, last_activity_at=at)
    return conversation


def reply(conversation: Conversation, at: datetime, latency_ms: int | None, channel: str = "chat") -> None:
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, text="ok", latency_ms=latency_ms, channel=channel
    )
    Message.objects.filter(pk=message.pk).update(created_at=at)


def booking_made(business, at: datetime, channel: str, *, day_offset: int = 1) -> Booking:
    today = local_today()
    slot = available_slots(
        service=business.drain, start_date=today + timedelta(days=day_offset), end_date=today + timedelta(days=14)
    )[0]
    booking = booking_create(
        service=business.drain,
        start=slot.start,
        customer_name="Pat Customer",
        customer_phone=f"416-555-{next(PHONES):04d}",
        address="1 Main St",
        channel=channel,
        actor=Actor.system(),
    )
    Booking.objects.filter(pk=booking.pk).update(created_at=at)
    return booking


@pytest.fixture
def weekend(business, time_machine):
    """Sat: 4 chat conversations (1 booked), Sun: 2 voice (both booked) and 1 chat late at night.

    Bookings made: Sat 1 (chat), Sun 2 (voice) + 1 (staff). Reply latencies: Sat chat
    100, 200, 300, 400, 1000 ms; Sun voice 500 ms. Costs: chat 0.01 each but the late one
    0.02; voice 0.50 each. Handoffs: two waiting (one urgent), one handled.
    """
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    sat = [conversation_at(local(SAT, 9 + i), booked=i == 0) for i in range(4)]
    for latency, hour in zip([100, 200, 300, 400, 1000], range(9, 14), strict=True):
        reply(sat[0], local(SAT, hour, 5), latency)
    reply(sat[1], local(SAT, 9, 1), None)  # the greeting: no latency
    sun = [conversation_at(local(SUN, 10 + i), channel="voice", booked=True, cost="0.50") for i in range(2)]
    reply(sun[0], local(SUN, 10, 2), 500, channel="voice")
    conversation_at(local(SUN, 23, 30), cost="0.02")  # 04:30 UTC on Monday
    conversation_at(local(date(2026, 11, 13), 23, 59))  # Friday: outside the range
    booking_made(business, local(SAT, 10), "chat", day_offset=0)  # a visit today
    booking_made(business, local(SUN, 10), "voice")
    booking_made(business, local(SUN, 11), "voice")
    booking_made(business, local(SUN, 12), "staff")
    HandoffRequest.objects.create(conversation=sat[1], reason="Call me", urgent=True)
    HandoffRequest.objects.create(conversation=sat[2], reason="Question about a quote")
    HandoffRequest.objects.create(conversation=sat[3], reason="Done", handled_at=local(SAT, 15))
    return business


def days_by_date(days: list[DayStats]) -> dict[date, DayStats]:
    return {d.day: d for d in days}


# --- The numbers -------------------------------------------------------------------------------


def test_conversations_bookings_and_conversion_per_business_day(weekend):
    d = dashboard(since=SAT, until=MON)
    days = days_by_date(d.days)
    assert [day.day for day in d.days] == [SAT, SUN, MON]
    assert (days[SAT].conversations, days[SAT].booked_conversations, days[SAT].bookings) == (4, 1, 1)
    assert (days[SUN].conversations, days[SUN].booked_conversations, days[SUN].bookings) == (3, 2, 3)
    assert (days[MON].conversations, days[MON].booked_conversations, days[MON].bookings) == (0, 0, 0)
    assert days[SAT].conversion == 0.25 and days[SUN].conversion == pytest.approx(2 / 3)
    assert days[MON].conversion is None
    assert (d.totals.conversations, d.totals.booked_conversations, d.totals.bookings) == (7, 3, 4)
    assert d.totals.conversion == pytest.approx(3 / 7)


def test_cost_per_day_by_channel(weekend):
    d = dashboard(since=SAT, until=MON)
    days = days_by_date(d.days)
    assert days[SAT].cost_by_channel == {"chat": Decimal("0.04"), "voice": Decimal("0")}
    assert days[SUN].cost_by_channel == {"chat": Decimal("0.02"), "voice": Decimal("1.00")}
    assert d.totals.cost_by_channel == {"chat": Decimal("0.06"), "voice": Decimal("1.00")}
    assert d.totals.cost_usd == Decimal("1.06")
    assert d.totals.cost_per_booking == Decimal("0.3533")


def test_reply_latency_percentiles_per_day_and_over_the_range(weekend):
    d = dashboard(since=SAT, until=MON)
    days = days_by_date(d.days)
    # percentile_cont interpolates: p95 of 100..400, 1000 is 400 + 0.8 x 600.
    assert (days[SAT].latency_p50_ms, days[SAT].latency_p95_ms) == (300, 880)
    assert (days[SUN].latency_p50_ms, days[SUN].latency_p95_ms) == (500, 500)
    assert (days[MON].latency_p50_ms, days[MON].latency_p95_ms) == (None, None)
    # Over the range the percentiles come from all six replies, not from the days'.
    assert (d.totals.latency_p50_ms, d.totals.latency_p95_ms, d.totals.replies) == (350, 875, 6)


@pytest.mark.parametrize("channel", [None, "chat", "voice"])
def test_the_sqlite_latency_path_gives_postgresqls_numbers(weekend, channel):
    # make run uses SQLite, which has no percentile_cont: the replies are ranked in Python there.
    window = {"start": local(SAT, 0), "end": local(MON + timedelta(days=1), 0), "channel": channel}
    assert _reply_latency_in_python(**window) == reply_latency(**window)


def test_channel_filter(weekend):
    chat = dashboard(since=SAT, until=MON, channel="chat")
    assert (chat.totals.conversations, chat.totals.booked_conversations, chat.totals.bookings) == (5, 1, 1)
    assert chat.totals.cost_by_channel == {"chat": Decimal("0.06")}
    assert chat.totals.replies == 5
    voice = dashboard(since=SAT, until=MON, channel="voice")
    assert (voice.totals.conversations, voice.totals.booked_conversations, voice.totals.bookings) == (2, 2, 2)
    assert (voice.totals.latency_p50_ms, voice.totals.replies) == (500, 1)


def test_open_handoffs(weekend):
    handoffs = dashboard(since=SAT, until=MON).handoffs
    assert (handoffs.open, handoffs.urgent) == (2, 1)


def test_a_day_starts_at_midnight_in_the_business_time_zone(weekend):
    sunday = dashboard(since=SUN, until=SUN)
    assert sunday.totals.conversations == 3  # the 23:30 one is Sunday's, though Monday in UTC
    assert dashboard(since=MON, until=MON).totals.conversations == 0


def test_the_numbers_take_a_fixed_number_of_queries(weekend, django_assert_num_queries):
    # Seven queries, and the latency query's SET LOCAL inside a savepoint (three more).
    with django_assert_num_queries(10):
        dashboard(since=SAT, until=MON)
    with django_assert_num_queries(10):
        dashboard(since=SAT - timedelta(days=300), until=MON)


def test_todays_schedule_groups_visits_by_technician(business, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)  # Monday 08:00 in Toronto
    today = local_today()
    made = [
        booking_create(
            service=business.repair,
            start=available_slots(service=business.repair, start_date=today, end_date=today)[0].start,
            customer_name=f"Customer {i}",
            customer_phone=f"416-555-02{i:02d}",
            address=f"{i} King St",
            channel="chat",
            actor=Actor.system(),
        )
        for i in range(3)
    ]
    booking_cancel(booking=made[2], actor=Actor.system())
    tomorrow = available_slots(
        service=business.drain, start_date=today + timedelta(days=1), end_date=today + timedelta(days=1)
    )
    booking_create(
        service=business.drain,
        start=tomorrow[0].start,
        customer_name="Tomorrow",
        customer_phone="416-555-0299",
        address="9 Bay St",
        channel="chat",
        actor=Actor.system(),
    )
    schedule = schedule_for(today)
    busy = {t.technician: [v.number for v in t.visits] for t in schedule if t.visits}
    assert sorted(n for numbers in busy.values() for n in numbers) == sorted(b.number for b in made[:2])
    free = [t.technician for t in schedule if not t.visits]
    assert "Carol Tech" in free  # her visit is tomorrow
    for technician in schedule:
        assert [v.start for v in technician.visits] == sorted(v.start for v in technician.visits)


# --- The page ----------------------------------------------------------------------------------


def svg_titles(content: str) -> list[str]:
    return re.findall(r'<svg class="chart[^"]*"[^>]*aria-label="([^"]+)"', content)


def test_dashboard_page_shows_the_numbers_as_charts(admin_client, weekend):
    response = admin_client.get(reverse(DASHBOARD), {"since": SAT.isoformat(), "until": MON.isoformat()})
    assert response.status_code == 200
    content = response.content.decode()
    assert svg_titles(content) == [
        "Conversations per day",
        "Conversion: conversations with a booking",
        "Bookings made per day (all channels)",
        "Cost per day by channel (USD)",
        "Reply latency (seconds)",
        "Visits on Monday Nov 16",
    ]
    assert "43%" in content  # conversion 3/7
    assert "$1.06" in content
    assert "350 ms" in content and "p95 875 ms" in content
    assert '2</span><span class="kpi-label">open handoffs, 1 urgent' in content
    assert "style=" not in content  # the CSP allows no inline styles
    assert "<script>" not in content.split("</header>")[-1]  # nor inline scripts in the page body


def test_a_dispatcher_sees_the_dashboard_without_costs(client, dispatcher, weekend):
    client.force_login(dispatcher)
    content = client.get(reverse(DASHBOARD), {"since": SAT.isoformat(), "until": MON.isoformat()}).content.decode()
    assert "Cost per day by channel (USD)" not in svg_titles(content)
    assert "$" not in content
    assert "Pat Customer" in content and "1 Main St" not in content  # today's visit, without the address


def test_staff_without_permission_cannot_see_the_dashboard(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(reverse(DASHBOARD)).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_dashboard_page_queries_do_not_grow_with_the_data_or_the_range(admin_client, business, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    url = reverse(DASHBOARD)
    admin_client.get(url)

    def queries(params: dict) -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(url, params).status_code == 200
        return len(context)

    empty = queries({})
    for i in range(20):
        conversation = conversation_at(local(SUN, 8) - timedelta(hours=i * 7), booked=i % 2 == 0)
        reply(conversation, local(SUN, 8) - timedelta(hours=i * 7), 100 * i)
    booking_made(business, local(SUN, 9), "chat", day_offset=0)
    assert queries({}) == empty
    assert queries({"since": "2026-01-01", "until": "2026-11-16", "channel": "voice"}) == empty


def test_the_range_form_reports_mistakes_and_falls_back_to_the_last_30_days(admin_client):
    response = admin_client.get(reverse(DASHBOARD), {"since": "2026-11-20", "until": "2026-11-01"})
    assert response.status_code == 200
    assert "The start date is after the end date." in response.content.decode()
    numbers = response.context["d"]
    assert (numbers.until - numbers.since).days == 29


def test_the_admin_index_links_the_dashboard_and_the_handoff_queue(admin_client):
    content = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse(DASHBOARD) in content and reverse("admin:chatdesk_handoffrequest_changelist") in content


def test_names_in_the_charts_are_escaped(business, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    evil = Technician.objects.create(first_name="<script>alert(1)</script>", last_name="&")
    today = local_today()
    chart = schedule_chart(schedule_for(today), today)
    assert "<script>" not in chart and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in chart
    assert evil.pk


def test_bar_chart_draws_one_bar_group_per_day_with_a_readable_axis():
    days = [SAT, SUN, MON]
    svg = bar_chart("Test", days, [("a", "s-a", [3, 0, 7]), ("b", "s-b", [1, 0, 0])])
    assert svg.count("<g><title>") == 3
    assert svg.count('<rect class="bar') == 3  # zero-height segments are left out
    ticks = re.findall(r'<text class="tick" x="50"[^>]*>([^<]+)</text>', svg)
    assert ticks == ["0", "2", "4", "6", "8"]  # 7 at most: steps of 2 up to 8
    assert [_nice_ceiling(v) for v in (0, 0.3, 7, 8, 11, 240, 1000)] == [1, 0.5, 10, 10, 20, 250, 1000]
    assert [_axis(v) for v in (0, 7, 22, 100, 0.7)] == [(1, 1), (8, 4), (25, 5), (100, 5), (pytest.approx(0.8), 4)]


# --- The analytics API -------------------------------------------------------------------------


def test_analytics_needs_a_staff_user_allowed_to_view_conversations(client, django_user_model):
    assert client.get(ANALYTICS).status_code == 403
    client.force_login(django_user_model.objects.create_user("customer", password="pw"))
    assert client.get(ANALYTICS).status_code == 403
    client.force_login(django_user_model.objects.create_user("nobody", password="pw", is_staff=True))
    response = client.get(ANALYTICS)
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_analytics_gives_the_dashboards_numbers(admin_client, weekend):
    response = admin_client.get(ANALYTICS, {"since": "2026-11-14", "until": "2026-11-16"})
    assert response.status_code == 200
    data = response.json()
    assert (data["since"], data["until"], data["channel"], data["timezone"]) == (
        "2026-11-14",
        "2026-11-16",
        None,
        "America/Toronto",
    )
    assert data["totals"] == {
        "conversations": 7,
        "booked_conversations": 3,
        "conversion": pytest.approx(3 / 7),
        "bookings": 4,
        "cost_usd": "1.060000",
        "cost_by_channel": {"chat": "0.060000", "voice": "1.000000"},
        "latency_p50_ms": 350,
        "latency_p95_ms": 875,
        "replies": 6,
    }
    assert [day["date"] for day in data["days"]] == ["2026-11-14", "2026-11-15", "2026-11-16"]
    assert data["days"][0] == {
        "date": "2026-11-14",
        "conversations": 4,
        "booked_conversations": 1,
        "conversion": 0.25,
        "bookings": 1,
        "cost_usd": "0.040000",
        "cost_by_channel": {"chat": "0.040000", "voice": "0.000000"},
        "latency_p50_ms": 300,
        "latency_p95_ms": 880,
    }
    assert data["open_handoffs"]["open"] == 2 and data["open_handoffs"]["urgent"] == 1
    assert data["today"] == "2026-11-16"
    assert isinstance(data["schedule_today"], list)


def test_analytics_filters_by_channel(admin_client, weekend):
    data = admin_client.get(ANALYTICS, {"since": "2026-11-14", "until": "2026-11-16", "channel": "voice"}).json()
    assert data["channel"] == "voice"
    assert (data["totals"]["conversations"], data["totals"]["bookings"]) == (2, 2)
    assert data["totals"]["cost_by_channel"] == {"voice": "1.000000"}


def test_analytics_defaults_to_the_last_30_days(admin_client, weekend):
    data = admin_client.get(ANALYTICS).json()
    assert (data["since"], data["until"]) == ("2026-10-18", "2026-11-16")
    assert len(data["days"]) == 30


def test_analytics_hides_costs_from_staff_without_view_costs(client, dispatcher, weekend):
    client.force_login(dispatcher)
    data = client.get(ANALYTICS, {"since": "2026-11-14", "until": "2026-11-16"}).json()
    assert data["totals"]["conversations"] == 7
    assert data["totals"]["cost_usd"] is None and data["totals"]["cost_by_channel"] is None
    assert all(day["cost_usd"] is None for day in data["days"])


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "14/11/2026"}, "since", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ({"until": "2026-02-30"}, "until", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ({"since": "2026-11-16", "until": "2026-11-14"}, "until", "until (2026-11-14) is before since (2026-11-16)."),
        ({"since": "2025-01-01", "until": "2026-11-16"}, "since", "The range is 685 days; ask for at most 367."),
        ({"channel": "fax"}, "channel", '"fax" is not a valid choice.'),
    ],
)
def test_analytics_rejects_bad_parameters_clearly(admin_client, params, field, message):
    response = admin_client.get(ANALYTICS, params)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_input",
        "message": "Some fields are not valid.",
        "fields": {field: [message]},
    }


def test_analytics_is_in_the_openapi_schema(admin_client):
    schema = admin_client.get(reverse("schema"), {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/chat/analytics"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"since", "until", "channel"}
    assert set(operation["responses"]) == {"200", "400", "403", "503"}  # 503: a service down (chatdesk.openapi)
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    out = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"totals", "days", "open_handoffs", "schedule_today"} <= set(out["properties"])


def test_schedule_visit_times_are_shown_in_business_time(admin_client, business, time_machine):
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    today = local_today()
    slot = available_slots(service=business.repair, start_date=today, end_date=today)[0]
    booking = booking_create(
        service=business.repair,
        start=slot.start,
        customer_name="Visit Today",
        customer_phone="416-555-0266",
        address="5 Front St",
        channel="chat",
        actor=Actor.system(),
    )
    assert booking.status == BookingStatus.CONFIRMED
    content = admin_client.get(reverse(DASHBOARD)).content.decode()
    start = slot.start.astimezone(business_tz())
    assert f"{start:%H:%M}–" in content and booking.number in content
    assert start.astimezone(UTC).hour != start.hour  # the test means something
