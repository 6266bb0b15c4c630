"""The dashboard's charts: server-side SVG, no scripts, styled by static/admin-dashboard.css."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from datetime import date, datetime

from django.utils.safestring import SafeString, mark_safe

from bookings.selectors import business_tz
from chatdesk.backoffice import dashboard as stats
from chatdesk.conversations.models import Conversation

# --- Charts: server-side SVG, no scripts, styled by static/admin-dashboard.css ------------------
#
# Built with f-strings: the numbers are formatted by Python, and every piece of text
# (titles, names, labels) goes through esc() first. A year of days is a few thousand
# elements, where format_html's per-argument escaping was a third of the page's time.

CHART_WIDTH, CHART_HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 14, 30
PLOT_W, PLOT_H = CHART_WIDTH - PAD_LEFT - PAD_RIGHT, CHART_HEIGHT - PAD_TOP - PAD_BOTTOM


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above `value`, so axis ticks read well."""
    if value <= 0:
        return 1
    scale = 10 ** math.floor(math.log10(value))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if value <= m * scale * (1 + 1e-9))


def _axis(largest: float, min_step: float = 0) -> tuple[float, int]:
    """The top of a y axis and its number of gridline steps: 0, 5, 10 ... 25 for 22, not 0 ... 40.

    Counts take min_step=1, so an axis never reads 0, 0, 1, 1.
    """
    step = max(_nice_ceiling(largest / 5), min_step)
    steps = max(math.ceil(largest / step - 1e-9), 1)
    return step * steps, steps


def seconds(value: float, places: int = 1) -> str:
    return f"{value:.{places}f} s"


def step_places(step: float) -> int:
    """Decimals that tell an axis's ticks apart: 0 for 5, 1 for 2.5 or 0.5, 2 for 0.05."""
    for places in range(7):
        if abs(round(step, places) - step) < step * 1e-6:
            return places
    return 6


def _day(day: date) -> str:
    return f"{day:%a %b} {day.day}"


def _frame(
    title: str,
    labels: list[date],
    top: float,
    steps: int,
    fmt: Callable[[float], str],
    body: list[str],
    legend: list[tuple[str, str]],
    tick_fmt: Callable[[float, int], str] | None = None,
) -> SafeString:
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{esc(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>'
    ]
    # Tick labels carry the decimals their step needs: fast replies of 0.01 to 0.05 s
    # all read "0.0 s" with the data's one decimal.
    places = step_places(top / steps)
    tick = (lambda v: tick_fmt(v, places)) if tick_fmt else fmt
    for i in range(steps + 1):
        y = PAD_TOP + PLOT_H - PLOT_H * i / steps
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{CHART_WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text class="tick" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{esc(tick(top * i / steps))}</text>'
        )
    band = PLOT_W / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 10))
    for i, day in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{PAD_LEFT + band * (i + 0.5):.1f}" y="{CHART_HEIGHT - 10}" '
                f'text-anchor="middle" font-size="11">{day:%b} {day.day}</text>'
            )
    parts += body
    parts.append("</svg>")
    keys = "".join(f'<li><span class="swatch {esc(css)}"></span>{esc(name)}</li>' for css, name in legend)
    return mark_safe(  # noqa: S308 (numbers, and text through esc())
        f'<figure class="chart-box"><figcaption>{esc(title)}</figcaption>{"".join(parts)}'
        f'<ul class="legend">{keys}</ul></figure>'
    )


def bar_chart(
    title: str,
    labels: list[date],
    series: list[tuple[str, str, list[float]]],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    min_step: float = 1,
) -> SafeString:
    """Stacked bars, one per day; `series` is [(name, css class, values)], bottom first."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    top, steps = _axis(max(totals, default=0), min_step)
    band = PLOT_W / max(len(labels), 1)
    width = max(band * 0.72, 1)
    named = [(esc(name), esc(css), values) for name, css, values in series]
    body = []
    for i, day in enumerate(labels):
        x = PAD_LEFT + band * i + (band - width) / 2
        base = PAD_TOP + PLOT_H
        rects = []
        for _, css, values in named:
            height = PLOT_H * values[i] / top
            if height > 0:
                base -= height
                rects.append(
                    f'<rect class="bar {css}" x="{x:.1f}" y="{base:.1f}" width="{width:.1f}" height="{height:.1f}"/>'
                )
        tip = ", ".join(f"{name} {esc(fmt(values[i]))}" for name, _, values in named)
        body.append(f"<g><title>{_day(day)}: {tip}</title>{''.join(rects)}</g>")
    return _frame(title, labels, top, steps, fmt, body, [(css, name) for name, css, _ in series])


def line_chart(
    title: str,
    labels: list[date],
    series: list[tuple[str, str, list[float | None]]],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    tick_fmt: Callable[[float, int], str] | None = None,
    top: float | None = None,
) -> SafeString:
    """Lines over days; a day without a value breaks the line rather than dropping to zero.

    `fmt` formats values (tooltips, and ticks by default); `tick_fmt(value, places)`, when
    given, formats the axis ticks with the decimals the axis step needs.
    """
    values = [v for _, _, vs in series for v in vs if v is not None]
    if top is None:
        top, steps = _axis(max(values, default=0))
    else:
        steps = 4
    band = PLOT_W / max(len(labels), 1)
    body = []
    for name, css, points in series:
        name, css = esc(name), esc(css)
        segments: list[list[str]] = [[]]
        dots = []
        for i, value in enumerate(points):
            if value is None:
                segments.append([])
                continue
            x, y = PAD_LEFT + band * (i + 0.5), PAD_TOP + PLOT_H - PLOT_H * min(value, top) / top
            segments[-1].append(f"{x:.1f},{y:.1f}")
            dots.append(
                f'<circle class="dot {css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{_day(labels[i])}: {name} {esc(fmt(value))}</title></circle>"
            )
        body += [
            f'<polyline class="line {css}" points="{" ".join(points_)}" fill="none" stroke-width="2"/>'
            for points_ in segments
            if len(points_) > 1
        ]
        body += dots
    return _frame(title, labels, top, steps, fmt, body, [(css, name) for name, css, _ in series], tick_fmt)


def dashboard_charts(d: stats.Dashboard, *, costs: bool) -> list[SafeString]:
    labels = [day.day for day in d.days]
    charts = [
        bar_chart(
            "Conversations per day",
            labels,
            [
                ("with a booking", "s-booked", [day.booked_conversations for day in d.days]),
                ("without", "s-other", [day.conversations - day.booked_conversations for day in d.days]),
            ],
        ),
        line_chart(
            "Conversion: conversations with a booking",
            labels,
            [("conversion", "s-booked", [None if day.conversion is None else day.conversion * 100 for day in d.days])],
            fmt=lambda v: f"{v:.0f}%",
            top=100,
        ),
        bar_chart(
            "Bookings made per day" if d.channel else "Bookings made per day (all channels)",
            labels,
            [("bookings", "s-bookings", [day.bookings for day in d.days])],
        ),
    ]
    if costs:
        channels = [d.channel] if d.channel else list(stats.CHANNELS)
        charts.append(
            bar_chart(
                "Cost per day by channel (USD)",
                labels,
                [
                    (
                        Conversation.ChannelKind(c).label,
                        f"s-{c}",
                        [float(day.cost_by_channel.get(c, 0)) for day in d.days],
                    )
                    for c in channels
                ],
                fmt=lambda v: f"${v:,.2f}",
                min_step=0,
            )
        )
    charts.append(
        line_chart(
            "Reply latency (seconds)",
            labels,
            [
                ("p50", "s-p50", [None if day.latency_p50_ms is None else day.latency_p50_ms / 1000 for day in d.days]),
                ("p95", "s-p95", [None if day.latency_p95_ms is None else day.latency_p95_ms / 1000 for day in d.days]),
            ],
            fmt=lambda v: seconds(v, 2 if v < 1 else 1),
            tick_fmt=lambda v, places: seconds(v, max(places, 1)),
        )
    )
    return charts


def numbers_table(d: stats.Dashboard, *, costs: bool) -> SafeString:
    """The charts' numbers, newest day first (a year is 365 rows: built here, not in a template loop)."""
    head = ["Day", "Conversations", "With a booking", "Conversion", "Bookings made"]
    head += ["Cost"] if costs else []
    head += ["p50 ms", "p95 ms"]
    rows = []
    for day in reversed(d.days):
        cells = [
            _day(day.day),
            day.conversations,
            day.booked_conversations,
            "–" if day.conversion is None else f"{day.conversion:.0%}",
            day.bookings,
        ]
        cells += [f"${day.cost_usd:,.2f}"] if costs else []
        cells += ["–" if v is None else v for v in (day.latency_p50_ms, day.latency_p95_ms)]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f'<th scope="col">{esc(h)}</th>' for h in head)
    return mark_safe(f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>")  # noqa: S308


def schedule_chart(schedule: Iterable[stats.TechnicianDay], day: date) -> SafeString | None:
    """Today's visits as a timeline, one row per technician, in business time."""
    rows = list(schedule)
    if not rows:
        return None
    tz = business_tz()
    visits = [v for row in rows for v in row.visits]
    first = min([v.start.astimezone(tz).hour for v in visits] + [8])
    last = max([math.ceil(v.end.astimezone(tz).hour + v.end.astimezone(tz).minute / 60) for v in visits] + [18])
    label_w, row_h, top_pad, right_pad = 130, 30, 22, 24
    height = top_pad + row_h * len(rows) + 6
    plot_w = CHART_WIDTH - label_w - right_pad
    hours = max(last - first, 1)

    def x_of(moment: datetime) -> float:
        local = moment.astimezone(tz)
        offset = (local.hour - first) + local.minute / 60
        if local.date() != day:
            offset = 0 if local.date() < day else hours
        return label_w + plot_w * min(max(offset, 0), hours) / hours

    title = esc(f"Visits on {day:%A %b} {day.day}")
    parts = [
        f'<svg class="chart schedule" viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{title}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
    ]
    for h in range(first, last + 1):
        x = label_w + plot_w * (h - first) / hours
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad - 4}" y2="{height}" stroke="#ddd"/>'
            f'<text class="tick" x="{x:.1f}" y="14" text-anchor="middle" font-size="11">{h}:00</text>'
        )
    for i, row in enumerate(rows):
        y = top_pad + row_h * i
        parts.append(
            f'<text class="row-label" x="0" y="{y + row_h / 2 + 4}" font-size="12">{esc(row.technician)}</text>'
        )
        for visit in row.visits:
            x1, x2 = x_of(visit.start), x_of(visit.end)
            label = visit.service if x2 - x1 > 6.5 * len(visit.service) else ""
            tip = (
                f"{visit.start.astimezone(tz):%H:%M}–{visit.end.astimezone(tz):%H:%M} {visit.service} "
                f"({visit.number}, {visit.status_label})"
            )
            parts.append(
                f"<g><title>{esc(tip)}</title>"
                f'<rect class="visit status-{esc(visit.status)}" x="{x1:.1f}" y="{y + 4}" '
                f'width="{max(x2 - x1, 2):.1f}" height="{row_h - 8}" rx="3"/>'
                f'<text class="visit-label" x="{x1 + 4:.1f}" y="{y + row_h / 2 + 4}" font-size="11">'
                f"{esc(label)}</text></g>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers, and text through esc())
