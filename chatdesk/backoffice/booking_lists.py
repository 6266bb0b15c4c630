"""How the bookings list opens: the visits still to do, soonest first.

A dispatcher opens the list to see the work ahead, so by default it shows only active
bookings (pending or confirmed) that have not ended yet, with "All bookings" one click
away. The default steps aside as soon as staff narrow the list themselves (a search, a
status, a day, a customer's bookings...), so a search for an old or cancelled booking
still finds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.db.models import Case, DateTimeField, F, IntegerField, QuerySet, Value, When
from django.db.models.expressions import OrderBy
from django.http import HttpRequest
from django.utils import timezone

from bookings.models import ACTIVE_STATUSES, Booking
from bookings.selectors import business_tz
from chatdesk.backoffice.common import short_time

# Cells that must not wrap: a booking number broken at its hyphens, a visit over three lines.
LIST_CSS = "admin-lists.css"

# Query parameters that page, sort or frame the list without narrowing it.
NOT_NARROWING = {"o", "p", "_facets", "_popup", "_to_field", "_changelist_filters", "e"}


class ShowFilter(admin.SimpleListFilter):
    """'Upcoming, active' (the default) or 'All bookings'."""

    title = "bookings"  # the sidebar reads "By bookings"
    parameter_name = "show"
    UPCOMING, ALL = "upcoming", "all"

    def __init__(self, request: HttpRequest, params: dict[str, list[str]], *args: Any, **kwargs: Any) -> None:
        # Read before super() pops this filter's own parameter out of `params`.
        self.narrowed = any(key not in NOT_NARROWING and key != self.parameter_name for key in request.GET)
        # An action on rows picked one by one applies to exactly those (a cancelled booking
        # picked under "All bookings" is refused by name, not silently skipped); "select all
        # N" keeps the default, so it means the N rows the default showed.
        if request.method == "POST" and request.POST.get("select_across", "0") == "0":
            self.narrowed = self.narrowed or bool(request.POST.getlist(ACTION_CHECKBOX_NAME))
        super().__init__(request, params, *args, **kwargs)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(self.UPCOMING, "Upcoming, active"), (self.ALL, "All bookings")]

    def effective(self) -> str:
        """What the list shows: the choice made, else the default unless staff narrowed the list."""
        if self.value() in (self.UPCOMING, self.ALL):
            return self.value()
        return self.ALL if self.narrowed else self.UPCOMING

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        # No "All" entry of Django's own: "All bookings" is one of the two choices, and the
        # default is shown selected although it is not in the URL.
        for value, label in self.lookup_choices:
            yield {
                "selected": self.effective() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Booking]) -> QuerySet[Booking]:
        if self.effective() == self.ALL:
            return queryset
        return queryset.filter(status__in=ACTIVE_STATUSES, end__gt=timezone.now())


def upcoming_first() -> list[OrderBy]:
    """An ordering: visits not over yet first, soonest first; then the past, latest first."""
    now = timezone.now()
    return [
        Case(When(end__gt=now, then=Value(0)), default=Value(1), output_field=IntegerField()).asc(),
        # NULL for every past row, so "-start" alone orders the past among itself.
        Case(When(end__gt=now, then=F("start")), default=None, output_field=DateTimeField()).asc(),
        F("start").desc(),
    ]


def visit_span(start: datetime, end: datetime) -> str:
    """A visit as staff read it, in business time, compact so the list fits at 1280 px."""
    return f"{short_time(start, zone=False)}–{end.astimezone(business_tz()):%H:%M %Z}"
