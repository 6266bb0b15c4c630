"""iCalendar feeds of the visits: one per technician and one for the whole business.

A technician subscribes to their feed's secret URL in Google or Apple Calendar and sees the
day's visits on their phone. The URL's token (CalendarFeed.token) is the only credential,
so what a feed says is kept to what its reader needs:

- a technician's own feed: the service and the area in the title, the full address as the
  location (they drive there), and the customer's first name and booking number;
- the business feed (owner, dispatcher): the service, area and technician, but no street
  address and no customer name;
- never a phone number, email, note or price: a calendar app copies its feeds to servers
  we do not control.

Times carry the business time zone (TZID, with its VTIMEZONE), so a visit stays at 09:00
local whatever zone the phone is in. Cancelled visits stay in the feed as STATUS:CANCELLED,
which calendar apps show struck through or drop, instead of silently vanishing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from icalendar import Calendar, Event, vDuration

from bookings.models import Booking, BookingStatus, CalendarFeed, Technician, new_feed_token
from bookings.selectors import business_tz, local_today

logger = logging.getLogger(__name__)

# The visits a feed carries, in business days around today: enough history to look back
# at last month's jobs, enough ahead for any booking the availability engine offers.
WINDOW_DAYS_BACK = 30
WINDOW_DAYS_AHEAD = 90
# How often calendar apps are asked to poll (REFRESH-INTERVAL, X-PUBLISHED-TTL); Google
# polls on its own schedule whatever we say, Apple and Thunderbird honour it.
REFRESH_INTERVAL = timedelta(hours=1)
# Longer than any token_urlsafe(32) (43 characters): anything longer is refused unread.
MAX_TOKEN_LENGTH = 64

# RFC 5545 VEVENT STATUS: a completed or no-show visit did hold the technician's time.
_EVENT_STATUS = {
    BookingStatus.PENDING: "TENTATIVE",
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.COMPLETED: "CONFIRMED",
    BookingStatus.NO_SHOW: "CONFIRMED",
    BookingStatus.CANCELLED: "CANCELLED",
}


@dataclass(frozen=True)
class FeedWindow:
    """Local midnights bounding a feed: a whole number of business days, so the feed (and its
    ETag) stays the same all day unless a booking changes."""

    first_day: date
    last_day: date  # exclusive

    @classmethod
    def around(cls, now: datetime | None = None) -> FeedWindow:
        today = local_today(now)
        return cls(today - timedelta(days=WINDOW_DAYS_BACK), today + timedelta(days=WINDOW_DAYS_AHEAD + 1))

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=business_tz())

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day, time.min, tzinfo=business_tz())


# --- writes -----------------------------------------------------------------------------


def feed_rotate(*, technician: Technician | None) -> CalendarFeed:
    """Issue a new secret URL for a technician's feed (or the business's, with None).

    Creates the feed on first use. Rotating replaces the token, so the previous URL stops
    working at once (a lost phone, a technician who left): the caller hands out the new one.
    """
    kind = CalendarFeed.Kind.TECHNICIAN if technician is not None else CalendarFeed.Kind.BUSINESS
    with transaction.atomic():
        # The row lock makes two rotations at once end with one token, not a unique-key error.
        feed = CalendarFeed.objects.select_for_update().filter(kind=kind, technician=technician).first()
        if feed is None:
            feed = CalendarFeed.objects.create(kind=kind, technician=technician)
            logger.info("Calendar feed created: %s", feed)
            return feed
        feed.token = new_feed_token()
        feed.rotated_at = timezone.now()
        feed.save(update_fields=["token", "rotated_at"])
    logger.info("Calendar feed rotated: %s", feed)
    return feed


# --- reads ------------------------------------------------------------------------------


def feed_by_token(token: str) -> CalendarFeed | None:
    """The live feed a token opens, or None (unknown, rotated, or an inactive technician's)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    feed = CalendarFeed.objects.select_related("technician").filter(token=token).first()
    if feed is None:
        return None
    # A technician marked inactive (left the company) loses the feed without a rotation.
    if feed.technician is not None and not feed.technician.active:
        return None
    return feed


def feeds_by_owner() -> tuple[CalendarFeed | None, dict[int, CalendarFeed]]:
    """The business feed (or None) and every technician's feed by technician id: two queries
    for the admin's list whatever the number of technicians."""
    feeds = list(CalendarFeed.objects.all())
    business = next((f for f in feeds if f.kind == CalendarFeed.Kind.BUSINESS), None)
    return business, {f.technician_id: f for f in feeds if f.technician_id is not None}


def address_area(address: str) -> str:
    """The area of a street address, for a title: '12 Queen St W, Toronto' -> 'Toronto'.

    The part after the first comma (the locality, in the addresses people type here); ''
    when there is none, so a bare street never ends up in a title.
    """
    parts = [part.strip() for part in address.split(",")]
    return parts[1] if len(parts) > 1 else ""


def feed_bookings(feed: CalendarFeed, window: FeedWindow) -> list[Booking]:
    bookings = Booking.objects.filter(start__gte=window.start, start__lt=window.end)
    if feed.technician_id is not None:
        bookings = bookings.filter(technician_id=feed.technician_id)
    return list(bookings.select_related("service", "technician", "customer").order_by("start", "id"))


def feed_name(feed: CalendarFeed) -> str:
    if feed.technician is None:
        return f"{settings.BUSINESS_NAME}: all visits"
    return f"{settings.BUSINESS_NAME}: {feed.technician.public_name}"


def booking_uid(booking: Booking) -> str:
    """Stable per booking (its number never changes), so a moved visit moves in the calendar
    instead of appearing twice."""
    return f"{booking.number}@chatdesk"


def _event(booking: Booking, *, own: bool) -> Event:
    """One visit. `own`: the technician's own feed, which may say where to go and whom to ask for."""
    tz = business_tz()
    area = address_area(booking.address)
    summary = f"{booking.service.name} · {area}" if area else booking.service.name
    details = [f"Booking {booking.number}", f"Status: {booking.get_status_display()}"]
    if own:
        first_name = booking.customer.name.split()[0] if booking.customer.name.split() else ""
        if first_name:
            details.append(f"Customer: {first_name}")
    else:
        summary = f"{summary} ({booking.technician.public_name})"
        details.append(f"Technician: {booking.technician.public_name}")
    event = Event()
    event.add("uid", booking_uid(booking))
    # Without METHOD, DTSTAMP is when the event's information last changed (RFC 5545
    # 3.8.7.2): the feed reads the same until a booking changes.
    event.add("dtstamp", booking.updated_at)
    event.add("created", booking.created_at)
    event.add("last-modified", booking.updated_at)
    event.add("dtstart", booking.start.astimezone(tz))
    event.add("dtend", booking.end.astimezone(tz))
    event.add("summary", summary)
    location = booking.address if own else area
    if location:
        event.add("location", location)
    event.add("description", "\n".join(details))
    event.add("status", _EVENT_STATUS[BookingStatus(booking.status)])
    # A cancelled visit no longer blocks the technician's free/busy time.
    event.add("transp", "TRANSPARENT" if booking.status == BookingStatus.CANCELLED else "OPAQUE")
    return event


def feed_ical(feed: CalendarFeed, *, now: datetime | None = None) -> bytes:
    """The feed as an iCalendar document (RFC 5545): every visit starting inside the window."""
    window = FeedWindow.around(now)
    calendar = Calendar()
    calendar.add("prodid", "-//Chatdesk//Calendar feed//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.calendar_name = feed_name(feed)  # NAME and X-WR-CALNAME
    calendar.add("x-wr-timezone", business_tz().key)
    calendar.add("refresh-interval", REFRESH_INTERVAL, parameters={"VALUE": "DURATION"})
    # An X- property has no type of its own: say it is a duration, or it is written as text.
    calendar.add("x-published-ttl", vDuration(REFRESH_INTERVAL))
    own = feed.technician_id is not None
    for booking in feed_bookings(feed, window):
        calendar.add_component(_event(booking, own=own))
    # The VTIMEZONE for the TZID the events use, with the transitions of the window only.
    calendar.add_missing_timezones(first_date=window.first_day, last_date=window.last_day)
    return calendar.to_ical()
