"""The demo business `manage.py seed_demo` loads: trades, services, technicians with their
hours and time off, opening hours, holidays and a few upcoming bookings.

Every function is idempotent: existing rows are kept as staff left them, missing ones are
added. The conversation history on top (chats, calls, their cost) needs the conversation
record, a layer above this one: chatdesk/management/demo_history.py.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from bookings.errors import DomainError
from bookings.holidays import holidays_between
from bookings.models import (
    BusinessHours,
    CalendarEvent,
    ClosedDay,
    Service,
    Technician,
    Trade,
    WorkingHours,
)
from bookings.selectors import available_slots, business_tz, local_today
from bookings.services import Actor, booking_create

# Holidays become closed days this far ahead (the demo runs for weeks; bookings reach 60 days).
HOLIDAY_DAYS_AHEAD = 366

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}

TRADES = {
    "hvac": ("HVAC", "Heating, ventilation and air conditioning"),
    "plumbing": ("Plumbing", "Pipes, drains, water heaters and fixtures"),
    "electrical": ("Electrical", "Wiring, panels, outlets and lighting"),
}

# slug: (trade, name, description, minutes, price_min, price_max, before, after, notice_min, emergency)
SERVICES = {
    "hvac-maintenance": (
        "hvac",
        "HVAC Maintenance",
        "Seasonal tune-up of a furnace or AC unit.",
        90,
        "150",
        None,
        30,
        15,
        240,
        False,
    ),
    "hvac-repair": (
        "hvac",
        "HVAC Repair",
        "Diagnosis and repair of a furnace, heat pump or AC.",
        120,
        "200",
        "600",
        30,
        15,
        120,
        False,
    ),
    "hvac-installation": (
        "hvac",
        "HVAC Installation",
        "Installation of a new furnace or AC system.",
        480,
        "3500",
        "9000",
        30,
        30,
        2880,
        False,
    ),
    "emergency-hvac": (
        "hvac",
        "Emergency HVAC",
        "Same-day visit for no heat or no cooling.",
        120,
        "300",
        None,
        30,
        15,
        60,
        True,
    ),
    "drain-cleaning": (
        "plumbing",
        "Drain Cleaning",
        "Clearing a blocked sink, tub or main drain.",
        60,
        "175",
        None,
        30,
        15,
        120,
        False,
    ),
    "leak-repair": (
        "plumbing",
        "Leak Repair",
        "Finding and fixing a leaking pipe or fixture.",
        90,
        "180",
        "450",
        30,
        15,
        120,
        False,
    ),
    "water-heater-install": (
        "plumbing",
        "Water Heater Installation",
        "Replacing a tank or tankless water heater.",
        240,
        "1800",
        "3200",
        30,
        30,
        1440,
        False,
    ),
    "outlet-repair": (
        "electrical",
        "Outlet and Switch Repair",
        "Fixing dead or sparking outlets and switches.",
        60,
        "140",
        "260",
        30,
        15,
        120,
        False,
    ),
    "panel-upgrade": (
        "electrical",
        "Panel Upgrade",
        "Upgrading an electrical panel to 200 A.",
        360,
        "2500",
        "4500",
        30,
        30,
        2880,
        False,
    ),
    "ev-charger-install": (
        "electrical",
        "EV Charger Installation",
        "Installing a level 2 EV charger.",
        180,
        "900",
        "1600",
        30,
        30,
        1440,
        False,
    ),
    "emergency-plumbing": (
        "plumbing",
        "Emergency Plumbing",
        "Same-day visit for a burst pipe, flooding or a sewage backup.",
        90,
        "325",
        None,
        30,
        15,
        60,
        True,
    ),
    "emergency-electrical": (
        "electrical",
        "Emergency Electrical",
        "Same-day visit for sparks, a burning smell or a dangerous fault.",
        90,
        "325",
        None,
        30,
        15,
        60,
        True,
    ),
}

# What customers say for each service (Service.keywords; staff edit them in the admin).
# Equipment words ("furnace", "ac") point to the repair service. A word listed for several
# services ("sink", "install") counts less, and alone makes the guided chat ask which one.
# Urgency ("no heat" in winter, "flooding", "sparks") sends a customer to the trade's
# emergency service whatever the keywords say (chatdesk.assistant.understanding).
KEYWORDS = {
    "hvac-maintenance": (
        "maintenance, annual maintenance, furnace maintenance, ac maintenance, tune-up, tune up, tuneup, tuned up, "
        "tune, annual service, yearly service, furnace service, furnace inspection, ac inspection, furnace checkup, "
        "ac checkup, "
        "ac service, servicing, service the furnace, check-up, checkup, check up, furnace checked, ac checked, "
        "heating checked, check the furnace, check the ac, inspection, inspect, "
        "furnace cleaning, clean furnace, furnace clean, duct cleaning, furnace filter, filter change, "
        "change filter, filter, before winter, before summer, seasonal"
    ),
    "hvac-repair": (
        "furnace, furnace repair, heating, heat, no heat, heater, boiler, heat pump, radiator, baseboard heater, "
        "ac, air conditioning, air conditioner, aircon, air con, central air, cooling, not cooling, "
        "thermostat, vent, vents, ductwork, blower, cold air, warm air, hot air, banging, rattling, "
        "squealing, noise, noisy, loud, humming, short cycling, pilot light, igniter, ac leaking, "
        "furnace leaking, hvac repair, hvac problem"
    ),
    "hvac-installation": (
        "new furnace, new ac, new air conditioner, new air conditioning, new heat pump, new boiler, "
        "new unit, new system, replace furnace, replace ac, replace air conditioner, replace heat pump, "
        "replace boiler, furnace replacement, ac replacement, furnace installation, ac installation, "
        "install furnace, install ac, install heat pump, installation, install, installed, replace, "
        "replacement, upgrade furnace"
    ),
    "emergency-hvac": "emergency hvac, hvac emergency, heating emergency, furnace emergency, emergency heating",
    "drain-cleaning": (
        "drain, drains, clogged drain, blocked drain, slow drain, clog, clogged, clogging, blocked, blockage, "
        "backed up, backing up, draining slow, draining slowly, not draining, won't drain, sink clogged, "
        "clogged sink, sink, toilet, clogged toilet, toilet clogged, overflowing toilet, toilet overflowing, "
        "tub, bathtub, shower drain, floor drain, main drain, sewer, sewer line, snake, auger, garbage disposal, "
        "disposal"
    ),
    "leak-repair": (
        "leak, leaks, leaking, leaky, leaked, drip, dripping, drips, water leak, pipe, pipes, leaking pipe, "
        "pipe leak, faucet, tap, running toilet, toilet running, toilet keeps running, leaking toilet, "
        "toilet leaking, water under sink, water on floor, water stain, wet spot, puddle, sink, valve, "
        "shut off valve, water everywhere, water coming through ceiling, ceiling leak"
    ),
    "water-heater-install": (
        "water heater, hot water heater, hot water tank, water tank, tankless, tankless water heater, "
        "no hot water, hot water, new water heater, water heater replacement, replace water heater, install, "
        "installation, installed, replace, replacement"
    ),
    "outlet-repair": (
        "outlet, outlets, plug, plugs, socket, sockets, receptacle, switch, switches, light switch, dimmer, "
        "gfci, gfi, dead outlet, outlet not working, breaker, breaker keeps tripping, tripping breaker, "
        "tripped breaker, breaker trips, flickering, flickering lights, lights flickering, light fixture, "
        "wiring, electrical problem, no power, lost power, power cutting out, power going out, losing power"
    ),
    "panel-upgrade": (
        "panel, panel upgrade, electrical panel, breaker panel, breaker box, fuse box, fuses, fuse panel, "
        "200 amp, 100 amp, 60 amp, amp service, upgrade panel, service upgrade, more power"
    ),
    "ev-charger-install": (
        "ev charger, ev, electric car, electric car charger, electric vehicle, car charger, charger, "
        "charging station, level 2, level 2 charger, tesla, tesla charger, wall connector, install, installation, "
        "installed"
    ),
    "emergency-plumbing": (
        "emergency plumber, emergency plumbing, plumbing emergency, burst pipe, pipe burst, flooding, flooded, "
        "sewage backup"
    ),
    "emergency-electrical": ("emergency electrician, emergency electrical, electrical emergency"),
}

# (first, last, title, trades, weekday spans)
WEEKDAYS_8_TO_5 = {d: [("08:00", "12:00"), ("12:30", "17:00")] for d in range(5)}
TECHNICIANS = [
    ("James", "Miller", "HVAC Technician Lead", ["hvac"], WEEKDAYS_8_TO_5),
    ("Sarah", "Johnson", "HVAC Senior Technician", ["hvac"], {**WEEKDAYS_8_TO_5, 5: [("09:00", "14:00")]}),
    # Omar takes the long jobs (installations: 8 h plus travel), so no lunch split on his days.
    ("Omar", "Haddad", "HVAC Installer", ["hvac", "electrical"], {d: [("08:00", "18:00")] for d in range(1, 5)}),
    ("Priya", "Patel", "Master Plumber", ["plumbing"], WEEKDAYS_8_TO_5),
    ("Luis", "Garcia", "Plumber", ["plumbing"], {d: [("08:00", "16:00")] for d in range(5)}),
    ("Grace", "Kim", "Licensed Electrician", ["electrical"], WEEKDAYS_8_TO_5),
]

DEMO_CUSTOMERS = [
    ("Alice Martin", "416-555-0142", "alice@example.com", "12 Queen St W, Toronto"),
    ("Bob Singh", "(647) 555-0199", "", "88 King St E, Toronto"),
    ("Chloe Wright", "+1 905 555 0123", "chloe@example.com", "5 Lakeshore Rd, Mississauga"),
]


def parse_business_hours(text: str) -> list[tuple[int, time, time]]:
    """'mon-fri 08:00-18:00; sat 09:00-14:00' -> [(weekday, opens, closes), ...]."""
    hours = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        match = re.fullmatch(r"([a-z]{3})(?:-([a-z]{3}))?\s+(\d\d:\d\d)-(\d\d:\d\d)", part.lower())
        if not match or match.group(1) not in DAYS or (match.group(2) and match.group(2) not in DAYS):
            raise CommandError(
                f"BUSINESS_HOURS: cannot read {part!r}; use e.g. 'mon-fri 08:00-18:00; sat 09:00-14:00'."
            )
        first = DAYS[match.group(1)]
        last = DAYS[match.group(2) or match.group(1)]
        opens, closes = time.fromisoformat(match.group(3)), time.fromisoformat(match.group(4))
        if opens >= closes:
            raise CommandError(f"BUSINESS_HOURS: {part!r} closes before it opens.")
        hours.extend((day, opens, closes) for day in range(first, last + 1))
    return hours


def seed_catalogue() -> None:
    """Trades, services (with keywords), opening hours, holidays, technicians with hours and time off."""
    trades = {}
    for slug, (name, description) in TRADES.items():
        trades[slug], _ = Trade.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})
    for slug, (trade, name, desc, minutes, pmin, pmax, before, after, notice, emergency) in SERVICES.items():
        service, created = Service.objects.get_or_create(
            slug=slug,
            defaults={
                "trade": trades[trade],
                "name": name,
                "description": desc,
                "duration_minutes": minutes,
                "price_min": Decimal(pmin),
                "price_max": Decimal(pmax) if pmax else None,
                "buffer_before_minutes": before,
                "buffer_after_minutes": after,
                "min_notice_minutes": notice,
                "is_emergency": emergency,
                "keywords": KEYWORDS[slug],
            },
        )
        if not created and not service.keywords:
            # A database seeded before services had keywords; keywords staff wrote stay.
            Service.objects.filter(pk=service.pk).update(keywords=KEYWORDS[slug])
    if not BusinessHours.objects.exists():
        BusinessHours.objects.bulk_create(
            BusinessHours(weekday=d, opens=o, closes=c) for d, o, c in parse_business_hours(settings.BUSINESS_HOURS)
        )
    today = local_today()
    # The region's public holidays (BUSINESS_HOLIDAYS, observed days included) for the coming
    # year are closed days; a re-run adds the missing ones and leaves existing rows as staff left them.
    for day, reason in holidays_between(today, today + timedelta(days=HOLIDAY_DAYS_AHEAD)).items():
        ClosedDay.objects.get_or_create(date=day, defaults={"reason": reason[:120]})

    tz = business_tz()
    for index, (first, last, title, trade_slugs, spans) in enumerate(TECHNICIANS):
        technician, created = Technician.objects.get_or_create(
            first_name=first,
            last_name=last,
            defaults={
                "title": title,
                "phone": f"+1416555{1000 + index:04d}",
                "email": f"{first.lower()}@staff.example.com",
                "pay_rate": Decimal("38.50") + index,
                "home_address": f"{100 + index} Staff Ave, Toronto",
            },
        )
        if created:
            technician.trades.set([trades[s] for s in trade_slugs])
            WorkingHours.objects.bulk_create(
                WorkingHours(
                    technician=technician, weekday=d, start_time=time.fromisoformat(s), end_time=time.fromisoformat(e)
                )
                for d, day_spans in spans.items()
                for s, e in day_spans
            )
            if index % 3 == 1:  # some time off next week
                day = today + timedelta(days=7 - today.weekday() + 2)
                CalendarEvent.objects.create(
                    technician=technician,
                    kind=CalendarEvent.Kind.TIME_OFF,
                    title="Vacation day",
                    start=datetime.combine(day, time(0, 0), tzinfo=tz),
                    end=datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz),
                )
            if index % 3 == 2:
                day = today + timedelta(days=3)
                CalendarEvent.objects.create(
                    technician=technician,
                    kind=CalendarEvent.Kind.TRAINING,
                    title="Safety training",
                    start=datetime.combine(day, time(8, 0), tzinfo=tz),
                    end=datetime.combine(day, time(12, 0), tzinfo=tz),
                )


def seed_upcoming_bookings() -> tuple[int, list[str]]:
    """A few real bookings in the coming days through the service, on slots the engine offers.

    Returns how many were made and why any was skipped.
    """
    made, skipped = 0, []
    now = timezone.now()
    services = list(Service.objects.filter(slug__in=["hvac-maintenance", "drain-cleaning", "outlet-repair"]))
    for offset, service in enumerate(services):
        day = local_today() + timedelta(days=2 + offset)
        slots = available_slots(service=service, start_date=day, end_date=day + timedelta(days=7), now=now)
        if not slots:
            continue
        name, phone, email, address = DEMO_CUSTOMERS[offset % len(DEMO_CUSTOMERS)]
        try:
            booking_create(
                service=service,
                start=slots[len(slots) // 3].start,
                customer_name=name,
                customer_phone=phone,
                customer_email=email,
                address=address,
                channel="staff",
                actor=Actor.system("seed_demo"),
                notes="Demo booking",
            )
            made += 1
        except DomainError as error:
            skipped.append(error.message)
    return made, skipped
