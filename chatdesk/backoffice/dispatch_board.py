"""The dispatch board: technicians as rows, time as columns, over a day or a week.

Server-rendered as a plain table (no JavaScript needed, no inline styles for the CSP): a
booking spans its columns with colspan, and its state, buffers, time off, hours off and
closed days are classes drawn by static/dispatch-board.css. Every link is an ordinary admin
page: a booking opens its change page, "move" opens the move form (booking_reschedule, the
same service every door uses), and a free slot opens "Add booking" with the service, the
technician, the day and the slot filled in. Free slots come from the availability engine
for the service picked on the board, so the board never offers a time booking_create refuses.

The data is read by bookings.selectors.board_data in one query per kind of row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html import escape as esc
from urllib.parse import urlencode

from django import forms
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from bookings.models import Booking, BookingStatus, CalendarEvent, Service, Trade
from bookings.selectors import BoardBooking, BoardData, BoardEvent, board_data, business_tz, local_today
from chatdesk.backoffice.common import Users
from chatdesk.conversations import access

COLUMN_MINUTES = 15
DEFAULT_SPAN = (time(8), time(18))  # when nobody works that day, the board still has a shape


def can_view_board(user: Users) -> bool:
    return access.may(user, access.VIEW_BOOKINGS)


class BoardForm(forms.Form):
    day = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Day")
    view = forms.ChoiceField(required=False, choices=[("day", "Day"), ("week", "Week")], label="View")
    trade = forms.ModelChoiceField(required=False, queryset=Trade.objects.all(), empty_label="All trades")
    service = forms.ModelChoiceField(
        required=False,
        queryset=Service.objects.filter(active=True).select_related("trade"),
        empty_label="No service (no free slots)",
        help_text="Free slots are shown for this service.",
    )

    def clean(self) -> dict:
        data = super().clean()
        trade, service = data.get("trade"), data.get("service")
        if trade is not None and service is not None and service.trade_id != trade.pk:
            raise forms.ValidationError(f"{service.name} is {service.trade.name} work, not {trade.name}.")
        return data


@dataclass
class Cell:
    """One <td> of a technician's row."""

    kind: str  # booking, buffer, event, slot, free, off, closed
    span: int = 1
    label: str = ""
    title: str = ""
    css: str = ""
    url: str = ""
    move_url: str = ""

    def html(self, technician: str) -> str:
        # Built here rather than in the template: a busy board has thousands of cells, and
        # an f-string over html.escape is many times cheaper per cell than the template's tags
        # (or format_html). Every value is escaped, quotes included.
        if self.url:
            if self.kind == "slot":
                name = f"{self.title} with {technician}"
            else:
                # The visible text first, then the details: a name that leaves out what the
                # link shows fails WCAG 2.5.3 (axe "label-content-name-mismatch", serious),
                # and speech users say what they see.
                name = f"{self.label}, {self.title}" if self.label else self.title
            content = f'<a href="{esc(self.url)}" aria-label="{esc(name)}">{esc(self.label)}</a>'
        elif self.label:
            content = esc(self.label)
        else:
            content = f'<span class="visually-hidden">{esc(self.title)}</span>'
        if self.move_url:
            content += _move_link(self.move_url, self.title)
        return (
            f'<td colspan="{self.span}" class="k-{esc(self.kind)} {esc(self.css)}" title="{esc(self.title)}">'
            f"{content}</td>"
        )


def _move_link(url: str, title: str) -> str:
    return f' <a class="move" href="{esc(url)}" aria-label="Move {esc(title)}">move</a>'


@dataclass
class Row:
    technician: str
    detail: str
    cells: list[Cell] = field(default_factory=list)

    @property
    def html(self) -> SafeString:
        return mark_safe("".join(cell.html(self.technician) for cell in self.cells))  # noqa: S308 (built by format_html)


@dataclass
class WeekItem:
    kind: str  # booking or event
    label: str
    title: str
    css: str
    url: str = ""
    move_url: str = ""


@dataclass
class WeekCell:
    kind: str  # open, off, closed
    hours: str = ""
    items: list[WeekItem] = field(default_factory=list)
    free: int = 0
    free_url: str = ""

    @property
    def items_html(self) -> SafeString:
        """The cell's list, built here for speed as Cell.html is (every value escaped)."""
        if not self.items:
            return mark_safe("")
        parts = []
        for item in self.items:
            content = f'<a href="{esc(item.url)}">{esc(item.label)}</a>' if item.url else esc(item.label)
            if item.move_url:
                content += _move_link(item.move_url, item.title)
            parts.append(f'<li class="item {esc(item.css)}" title="{esc(item.title)}">{content}</li>')
        return mark_safe("<ul>" + "".join(parts) + "</ul>")  # noqa: S308 (every value escaped above)


class Links:
    """Where each link of the board goes, and whether this user may follow it.

    Reversed once per page, not per booking: a busy week has thousands of links.
    """

    def __init__(self, *, can_add: bool, can_move: bool, service: Service | None) -> None:
        self.can_add, self.can_move, self.service = can_add, can_move, service
        self._change = reverse("admin:bookings_booking_change", args=["0"]).replace("/0/", "/{}/")
        self._move = reverse("admin:bookings_booking_move", args=["0"]).replace("/0/", "/{}/")
        self._add = reverse("admin:bookings_booking_add")

    def booking(self, booking_id: int) -> str:
        return self._change.format(booking_id)

    def move(self, booking: BoardBooking) -> str:
        if not self.can_move or booking.status not in (BookingStatus.PENDING, BookingStatus.CONFIRMED):
            return ""
        return self._move.format(booking.id)

    def add(self, technician_id: int, start: datetime) -> str:
        if not self.can_add or self.service is None:
            return ""
        query = {
            "service": self.service.pk,
            "technician": technician_id,
            "day": f"{start.astimezone(business_tz()):%Y-%m-%d}",
            # The same value the add form's slot choices carry (booking_admin.slot_value).
            "slot": start.astimezone(UTC).isoformat(),
        }
        return f"{self._add}?{urlencode(query)}"


STATUS_LABELS = dict(BookingStatus.choices)
EVENT_LABELS = dict(CalendarEvent.Kind.choices)


def _hm(instant: datetime) -> str:
    local = instant.astimezone(business_tz())
    return f"{local.hour:02d}:{local.minute:02d}"


def _booking_text(booking: BoardBooking, links: Links) -> tuple[str, str]:
    """The short label and the full title (tooltip, and the accessible name) of a booking."""
    # The name only: contact details (phone, email, address) are never on the board, so it
    # shows the same to every staff member (as the booking page does without PII).
    customer = f" · {booking.customer}"
    label = f"{_hm(booking.start)} {booking.service}{customer}"
    title = (
        f"{booking.number} {STATUS_LABELS.get(booking.status, booking.status)}: {booking.service}{customer}, "
        f"{_hm(booking.start)}–{_hm(booking.end)} (busy {_hm(booking.occupied_start)}–{_hm(booking.occupied_end)})"
    )
    return label, title


def _event_text(event: BoardEvent) -> str:
    kind = EVENT_LABELS.get(event.kind, event.kind)
    what = f"{kind}: {event.title}" if event.title else kind
    return f"{what} {_hm(event.start)}–{_hm(event.end)}"


def day_columns(data: BoardData, day: date) -> list[datetime]:
    """The column starts of a day view, as aware instants in the business's time zone: whole
    hours from the earliest opening or shift start to the latest close or shift end."""
    weekday = day.weekday()
    spans = list(data.opening.get(weekday, []))
    for technician in data.technicians:
        spans.extend(data.working.get((technician.id, weekday), []))
    first, last = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else DEFAULT_SPAN
    midnight = datetime.combine(day, time.min)
    wall = midnight + timedelta(hours=first.hour)
    end = midnight + timedelta(hours=last.hour + (1 if (last.minute or last.second) else 0))
    tz = business_tz()
    columns = []
    while wall < end:
        columns.append(wall.replace(tzinfo=tz))
        wall += timedelta(minutes=COLUMN_MINUTES)
    return columns


def _classify(
    at: datetime,
    *,
    bookings: list[BoardBooking],
    events: list[BoardEvent],
    working: list[tuple[datetime, datetime]],
    free: set[datetime],
) -> tuple[str, object]:
    for booking in bookings:
        if booking.start <= at < booking.end:
            return "booking", booking
    for booking in bookings:
        if booking.occupied_start <= at < booking.occupied_end:
            return "buffer", booking
    for event in events:
        if event.start <= at < event.end:
            return "event", event
    if at in free:
        return "slot", at
    if any(start <= at < end for start, end in working):
        return "free", None
    return "off", None


def day_rows(data: BoardData, day: date, columns: list[datetime], links: Links) -> list[Row]:
    tz = business_tz()
    weekday = day.weekday()
    rows = []
    for technician in data.technicians:
        row = Row(technician=technician.name, detail=", ".join(technician.trades) or technician.title)
        rows.append(row)
        if day in data.closed:
            reason = data.closed[day]
            row.cells.append(Cell("closed", len(columns), f"Closed{': ' + reason if reason else ''}"))
            continue
        working = [
            (datetime.combine(day, start, tzinfo=tz), datetime.combine(day, end, tzinfo=tz))
            for start, end in data.working.get((technician.id, weekday), [])
        ]
        bookings = data.bookings.get(technician.id, [])
        events = data.events.get(technician.id, [])
        free = set(data.free.get(technician.id, []))
        previous: tuple[str, object] | None = None
        for at in columns:
            kind, what = _classify(at, bookings=bookings, events=events, working=working, free=free)
            # A booking, its buffer, an event or a stretch off or free is one cell; each free
            # slot is its own cell, since each is its own link.
            if previous == (kind, what) and kind != "slot":
                row.cells[-1].span += 1
                continue
            previous = (kind, what)
            row.cells.append(_cell(kind, what, technician.id, links))
    return rows


def _cell(kind: str, what: object, technician_id: int, links: Links) -> Cell:
    if kind == "booking":
        booking: BoardBooking = what  # type: ignore[assignment]
        label, title = _booking_text(booking, links)
        return Cell(
            kind,
            label=label,
            title=title,
            css=f"st-{booking.status}",
            url=links.booking(booking.id),
            move_url=links.move(booking),
        )
    if kind == "buffer":
        booking = what  # type: ignore[assignment]
        return Cell(kind, title=f"Travel and prep for {booking.number}")
    if kind == "event":
        event: BoardEvent = what  # type: ignore[assignment]
        text = _event_text(event)
        return Cell(kind, label=EVENT_LABELS.get(event.kind, event.kind), title=text, css=f"ev-{event.kind}")
    if kind == "slot":
        start: datetime = what  # type: ignore[assignment]
        url = links.add(technician_id, start)
        return Cell(
            kind, label="+", title=f"Book {links.service.name if links.service else ''} at {_hm(start)}", url=url
        )
    if kind == "free":
        return Cell(kind, title="Free")
    return Cell(kind, title="Not working")


def week_rows(
    data: BoardData, days: list[date], links: Links, day_url: Callable[[date], str]
) -> list[tuple[str, str, list[WeekCell]]]:
    tz = business_tz()
    rows = []
    for technician in data.technicians:
        cells = []
        by_day: dict[date, list[BoardBooking]] = {}
        for booking in data.bookings.get(technician.id, []):
            by_day.setdefault(booking.start.astimezone(tz).date(), []).append(booking)
        events = data.events.get(technician.id, [])
        free = data.free.get(technician.id, [])
        for day in days:
            if day in data.closed:
                reason = data.closed[day]
                cells.append(WeekCell("closed", hours=f"Closed{': ' + reason if reason else ''}"))
                continue
            spans = data.working.get((technician.id, day.weekday()), [])
            cell = WeekCell("open" if spans else "off")
            cell.hours = ", ".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in spans) or "Off"
            start = datetime.combine(day, time.min, tzinfo=tz)
            end = start + timedelta(days=1)
            for event in events:
                if event.start < end and event.end > start:
                    label = _event_text(event)
                    cell.items.append(WeekItem("event", label, label, f"ev-{event.kind}"))
            for booking in by_day.get(day, ()):
                label, title = _booking_text(booking, links)
                cell.items.append(
                    WeekItem(
                        "booking",
                        label,
                        title,
                        f"st-{booking.status}",
                        url=links.booking(booking.id),
                        move_url=links.move(booking),
                    )
                )
            cell.free = sum(1 for s in free if start <= s < end)
            if cell.free:
                cell.free_url = day_url(day)
            cells.append(cell)
        rows.append((technician.name, ", ".join(technician.trades) or technician.title, cells))
    return rows


def dispatch_board_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The board page (BookingAdmin routes it at /admin/bookings/booking/board/)."""
    if not can_view_board(request.user):
        raise PermissionDenied
    form = BoardForm(request.GET or None)
    status = 200
    day, view, trade, service = local_today(), "day", None, None
    if form.is_bound:
        if form.is_valid():
            day = form.cleaned_data["day"] or day
            view = form.cleaned_data["view"] or view
            trade = form.cleaned_data["trade"]
            service = form.cleaned_data["service"]
        else:
            status = 400  # the errors are shown above today's board
    if service is not None and trade is None:
        trade = service.trade
    if view == "week":
        first = day - timedelta(days=day.weekday())
        days = [first + timedelta(days=i) for i in range(7)]
    else:
        days = [day]
    data = board_data(first_day=days[0], last_day=days[-1], trade_id=trade.pk if trade else None, service=service)
    user = request.user
    links = Links(
        can_add=access.may(user, access.ADD_BOOKINGS),
        can_move=access.may(user, access.CHANGE_BOOKINGS),
        service=service,
    )

    base = reverse("admin:bookings_dispatch_board")

    def url(**changes: object) -> str:
        params = {"day": f"{day:%Y-%m-%d}", "view": view}
        if trade is not None:
            params["trade"] = str(trade.pk)
        if service is not None:
            params["service"] = str(service.pk)
        params.update({k: str(v) for k, v in changes.items()})
        return f"{base}?{urlencode(params)}"

    step = timedelta(days=7 if view == "week" else 1)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Dispatch board",
        "opts": Booking._meta,
        "form": form,
        "view": view,
        "day": day,
        "days": days,
        "trade": trade,
        "service": service,
        "links": links,
        "count": len(data.technicians),
        "prev_url": url(day=f"{day - step:%Y-%m-%d}"),
        "next_url": url(day=f"{day + step:%Y-%m-%d}"),
        "today_url": url(day=f"{local_today():%Y-%m-%d}"),
        "day_view_url": url(view="day"),
        "week_view_url": url(view="week"),
        "statuses": [(s, STATUS_LABELS[s]) for s in BookingStatus.values if s != BookingStatus.CANCELLED],
        "closed_reason": data.closed.get(day) if view == "day" else None,
    }
    if view == "week":
        context["week_days"] = [(d, url(view="day", day=f"{d:%Y-%m-%d}"), d in data.closed) for d in days]
        context["week_rows"] = week_rows(data, days, links, lambda d: url(view="day", day=f"{d:%Y-%m-%d}"))
    else:
        columns = day_columns(data, day)
        per_hour = 60 // COLUMN_MINUTES
        context["hours"] = [(at, min(per_hour, len(columns) - i)) for i, at in enumerate(columns) if i % per_hour == 0]
        context["columns"] = len(columns)
        context["day_rows"] = day_rows(data, day, columns, links)
    return TemplateResponse(request, "admin/bookings/dispatch_board.html", context, status=status)
