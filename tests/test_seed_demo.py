"""`manage.py seed_demo`: the data `make run` starts with, safe to load again and again."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from bookings.models import (
    ActorKind,
    Booking,
    BookingEvent,
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
from bookings.selectors import available_slots, local_today
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall
from chatdesk.management import demo_history
from tests.conftest import MONDAY_NOON_UTC

pytestmark = pytest.mark.django_db

SEEDED = [
    Conversation,
    Message,
    ToolCall,
    HandoffRequest,
    Trade,
    Service,
    Technician,
    WorkingHours,
    BusinessHours,
    ClosedDay,
    CalendarEvent,
    Customer,
    Booking,
    BookingEvent,
    YearlyCounter,
]


@pytest.fixture(autouse=True)
def monday_morning(time_machine):
    # The demo is laid out relative to today; a fixed Monday keeps it the same every run.
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)


def seed(*args: str, history: bool = False) -> str:
    """Run seed_demo; without the history unless asked (tests/test_seed_demo_history.py covers it)."""
    out = StringIO()
    call_command("seed_demo", *args, *([] if history else ["--no-history"]), stdout=out, stderr=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in SEEDED}


def test_seeding_twice_gives_the_same_data():
    seed()
    first = counts()
    output = seed()
    assert counts() == first
    assert "(0 new)" in output
    assert first["Trade"] == 3
    assert first["Service"] == 12
    assert first["Technician"] == 6
    assert first["Booking"] == 3


def test_services_have_the_predecessors_prices():
    seed()
    prices = {s.name: (s.trade.slug, s.price_min) for s in Service.objects.select_related("trade")}
    assert prices["HVAC Maintenance"] == ("hvac", Decimal("150"))
    assert prices["HVAC Repair"] == ("hvac", Decimal("200"))
    assert prices["HVAC Installation"] == ("hvac", Decimal("3500"))
    assert prices["Emergency HVAC"] == ("hvac", Decimal("300"))
    assert Service.objects.get(name="Emergency HVAC").is_emergency


def test_seeding_again_keeps_what_staff_changed():
    seed()
    Service.objects.filter(slug="hvac-repair").update(price_min=Decimal("250"))
    seed()
    assert Service.objects.get(slug="hvac-repair").price_min == Decimal("250")


def test_every_technician_has_a_trade_and_working_hours():
    seed()
    for technician in Technician.objects.all():
        assert technician.trades.exists(), technician
        assert technician.working_hours.exists(), technician
    assert BusinessHours.objects.exists()


@pytest.mark.parametrize(
    "slug",
    [
        "hvac-maintenance",
        "hvac-repair",
        "hvac-installation",
        "emergency-hvac",
        "drain-cleaning",
        "leak-repair",
        "water-heater-install",
        "outlet-repair",
        "panel-upgrade",
        "ev-charger-install",
    ],
)
def test_every_demo_service_can_be_booked_within_two_weeks(slug):
    seed()
    service = Service.objects.get(slug=slug)
    today = local_today()
    assert available_slots(service=service, start_date=today, end_date=today + timedelta(days=14))


def test_upcoming_demo_bookings_were_made_through_the_booking_service():
    seed("--no-history")
    assert Booking.objects.count() == 3
    for booking in Booking.objects.all():
        (event,) = booking.events.all()
        assert (event.kind, event.actor_kind, event.actor_reference) == ("created", ActorKind.SYSTEM, "seed_demo")
        assert booking.number.startswith("BK-")
        assert booking.start > timezone.now()


def test_no_bookings_option_seeds_everything_else():
    seed("--no-bookings", history=True)
    assert not Booking.objects.exists()
    assert not Conversation.objects.exists()
    assert Service.objects.count() == 12


def test_staff_user_option_creates_a_staff_superuser():
    output = seed("--staff-user", "demo")
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff
    assert user.is_superuser
    assert user.check_password("chatdesk-demo")
    assert "Demo staff login: demo / chatdesk-demo" in output


def test_staff_user_option_resets_an_existing_users_password():
    seed("--staff-user", "demo", "--staff-password", "first-password")
    seed("--staff-user", "demo", "--staff-password", "second-password")
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("second-password")
    assert get_user_model().objects.filter(username="demo").count() == 1


def test_unreadable_business_hours_stop_the_command_with_a_hint(settings):
    settings.BUSINESS_HOURS = "weekdays 8am to 6pm"
    with pytest.raises(CommandError, match="BUSINESS_HOURS: cannot read 'weekdays 8am to 6pm'"):
        seed()
    # The command runs in one transaction: nothing half-seeded stays behind.
    assert not Trade.objects.exists()


def test_a_staff_password_without_a_staff_user_is_refused():
    with pytest.raises(CommandError, match="--staff-password needs --staff-user"):
        seed("--staff-password", "a-fine-long-password", history=True)
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    "password, reason",
    [
        ("short", "too short"),
        ("password123", "too common"),
        ("83920174625", "entirely numeric"),
        ("demo-user", "too similar to the username"),
    ],
)
def test_a_weak_staff_password_is_refused_by_djangos_validators(password, reason):
    with pytest.raises(CommandError, match=f"--staff-password is too weak: .*{reason}"):
        seed("--staff-user", "demo-user", "--staff-password", password)
    # Refused before anything is written.
    assert not get_user_model().objects.exists()
    assert not Trade.objects.exists()


def test_make_runs_demo_login_passes_the_validators():
    # The Makefile runs `seed_demo --staff-user demo --staff-password chatdesk-demo`.
    makefile = (settings.BASE_DIR / "Makefile").read_text()
    assert "seed_demo --staff-user demo --staff-password chatdesk-demo" in makefile
    seed("--staff-user", "demo", "--staff-password", "chatdesk-demo")
    assert get_user_model().objects.get(username="demo").check_password("chatdesk-demo")


# --- the history: loaded once per database, the same every time ------------------------------


def snapshot() -> list[tuple]:
    return list(
        Conversation.objects.order_by("started_at", "number").values_list(
            "number", "started_at", "channel", "message_count", "booking_count", "cost_usd", "resolution"
        )
    )


def test_the_history_is_the_same_every_time_from_its_fixed_seed(monkeypatch):
    monkeypatch.setattr(demo_history, "DAYS", 12)  # the same code over fewer days, to keep the test quick
    call_command("seed_demo", "--no-bookings", stdout=StringIO())  # the catalogue alone
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    first = snapshot()
    bookings = list(Booking.objects.order_by("number").values_list("number", "start", "status", "customer__name"))
    Conversation.objects.all().delete()
    Booking.objects.all().delete()
    Customer.objects.all().delete()
    YearlyCounter.objects.all().delete()
    Message.objects.all().delete()
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    assert snapshot() == first
    assert list(Booking.objects.order_by("number").values_list("number", "start", "status", "customer__name")) == (
        bookings
    )


def test_no_history_skips_it_and_a_later_run_adds_it_once(monkeypatch):
    monkeypatch.setattr(demo_history, "DAYS", 5)
    call_command("seed_demo", "--no-history", stdout=StringIO())
    assert not Conversation.objects.exists()
    assert Booking.objects.count() == 3
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    count = Conversation.objects.count()
    assert count > 5
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    assert Conversation.objects.count() == count
