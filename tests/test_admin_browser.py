"""A look at the transcript and the dashboard in headless Chromium, as staff see them.

Screenshots go to /tmp/admin_*.png. The pages run under the real CSP (no inline styles or
scripts): a violation would show in the console and fails the test.

Playwright's sync API runs an event loop in the main thread, where Django then refuses
ORM calls, so every row is made by fixtures before the browser starts.
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from bookings.models import Booking, BookingStatus, Customer
from bookings.selectors import business_tz, local_today
from chatdesk.conversations.models import Conversation, HandoffRequest, Message
from tests.browser import chromium_fixture  # noqa: F401  (registers `chromium`)
from tests.test_conversation_admin import assistant_says, call_tool, converse, customer_says

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def transcript(business) -> dict:
    """A booked conversation with a refused call, a long tool result, a handoff and a staff reply."""
    conversation = converse(business, tool_error=True, handoff=True, urgent=True)
    customer_says(conversation, "Thanks! Will the technician call before coming?")
    assistant_says(conversation, "Yes, they call about 30 minutes before arriving.", latency_ms=1800)
    Message.objects.create(
        conversation=conversation, role=Message.Role.STAFF, text="Hi Dana, this is Sam from the office."
    )
    call_tool(conversation, "resolve_date", "call_date", text="next friday")
    Message.objects.create(
        conversation=conversation, role=Message.Role.EVENT, text="Conversation closed by the customer."
    )
    return {"url": f"/admin/chatdesk/conversation/{conversation.pk}/change/", "number": conversation.number}


@pytest.fixture
def month(business, transcript) -> None:
    """Thirty days of conversations, replies and bookings, and a full day of visits today."""
    rng = random.Random(7)
    tz = business_tz()
    today = local_today()
    number = 80000
    for days_ago in range(30):
        day = today - timedelta(days=days_ago)
        weekend = day.weekday() >= 5
        for n in range(rng.randint(4, 8) if weekend else rng.randint(10, 22)):
            number += 1
            at = datetime.combine(day, time(8), tzinfo=tz) + timedelta(minutes=rng.randint(0, 600))
            voice = rng.random() < 0.3
            booked = rng.random() < (0.45 if voice else 0.3)
            conversation = Conversation.objects.create(
                number=f"INT-2026-{number}",
                channel="voice" if voice else "chat",
                status="closed",
                resolution="booked" if booked else "answered",
                booking_count=int(booked),
                cost_usd=Decimal(rng.randint(200, 900) if voice else rng.randint(5, 60)) / 10000,
            )
            Conversation.objects.filter(pk=conversation.pk).update(started_at=at)
            for _ in range(3):
                reply = Message.objects.create(
                    conversation=conversation,
                    role="assistant",
                    text="…",
                    channel=conversation.channel,
                    latency_ms=int(rng.lognormvariate(7.1 if not voice else 6.4, 0.45)),
                )
                Message.objects.filter(pk=reply.pk).update(created_at=at + timedelta(minutes=n % 5))
    first = Conversation.objects.order_by("started_at").first()
    HandoffRequest.objects.create(conversation=first, reason="Question about an invoice")
    # Today's visits, laid out directly (availability is not what this test looks at).
    customer = Customer.objects.create(name="Rita Example", phone="+14165550300")
    plan = [
        (business.alice, business.repair, [(8, 0), (11, 0), (14, 30)]),
        (business.bob, business.repair, [(9, 30), (13, 0)]),
        (business.carol, business.drain, [(8, 30), (10, 0), (12, 30), (14, 0)]),
    ]
    count = 0
    for technician, service, starts in plan:
        for hour, minute in starts:
            count += 1
            start = datetime.combine(today, time(hour, minute), tzinfo=tz)
            end = start + service.duration
            Booking.objects.create(
                number=f"BK-2026-9{count:05d}",
                service=service,
                technician=technician,
                customer=customer,
                start=start,
                end=end,
                occupied_start=start,
                occupied_end=end,
                status=BookingStatus.COMPLETED if hour < 10 else BookingStatus.CONFIRMED,
                estimated_price_min=service.price_min,
                address="1 Main St",
                channel="chat",
            )
    # Booked over the past days, as visits are.
    for i, booking in enumerate(Booking.objects.order_by("pk")):
        Booking.objects.filter(pk=booking.pk).update(created_at=timezone.now() - timedelta(days=1 + i * 3 % 20))


def log_in(browser: Browser, live_server, *, dark: bool = False) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport=DESKTOP, color_scheme="dark" if dark else "light")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page, problems


def test_transcript_reads_as_a_conversation(live_server, admin_user, transcript, chromium):
    page, problems = log_in(chromium, live_server)
    page.goto(live_server.url + transcript["url"])

    expect(page.locator(".chat-row.from-customer .bubble").first).to_be_visible()
    expect(page.locator(".chat-row.from-assistant .bubble").first).to_be_visible()
    expect(page.locator(".chat-row.from-staff .bubble")).to_contain_text("Sam from the office")
    expect(page.locator(".chat-row.from-event .bubble")).to_contain_text("closed by the customer")
    calls = page.locator(".chat-row.tool-call")
    expect(calls).to_have_count(5)
    expect(page.locator(".chat-row.tool-call.is-error")).to_contain_text("confirmation_required")
    # Customer on the left, assistant on the right.
    customer_box = page.locator(".from-customer .bubble").first.bounding_box()
    assistant_box = page.locator(".from-assistant .bubble").nth(1).bounding_box()
    assert customer_box["x"] < assistant_box["x"]
    # The long slot list is folded until asked for.
    folded = page.locator(".tool-call details.json").first
    expect(folded.locator("pre")).to_be_hidden()
    folded.locator("summary").click()
    expect(folded.locator("pre")).to_be_visible()
    expect(page.locator(".transcript-summary")).to_contain_text("Urgent handoff")

    page.screenshot(path="/tmp/admin_transcript.png", full_page=True)
    page.locator(".transcript").screenshot(path="/tmp/admin_transcript_only.png")
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems


def test_dashboard_charts_are_drawn(live_server, admin_user, month, chromium):
    page, problems = log_in(chromium, live_server)
    expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
    page.get_by_role("link", name="Dashboard").click()

    charts = page.locator("svg.chart")
    expect(charts).to_have_count(6)
    for i in range(6):
        chart = charts.nth(i)
        expect(chart).to_be_visible()
        assert chart.bounding_box()["width"] > 400
    expect(page.locator("svg.chart rect.bar").first).to_be_visible()
    expect(page.locator("svg.chart polyline.line").first).to_be_visible()
    expect(page.locator("svg.schedule rect.visit")).to_have_count(9)
    expect(page.locator(".kpis")).to_contain_text("conversations")
    page.screenshot(path="/tmp/admin_dashboard.png", full_page=True)

    page.goto(live_server.url + "/admin/chatdesk/conversation/")
    expect(page.locator(".conversation-totals")).to_contain_text("conversations")
    page.screenshot(path="/tmp/admin_conversations.png")
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems


def test_dashboard_in_the_dark_theme(live_server, admin_user, month, chromium):
    page, problems = log_in(chromium, live_server, dark=True)
    page.goto(live_server.url + "/admin/chatdesk/conversation/dashboard/")
    expect(page.locator("svg.chart")).to_have_count(6)
    page.screenshot(path="/tmp/admin_dashboard_dark.png", full_page=True)
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
