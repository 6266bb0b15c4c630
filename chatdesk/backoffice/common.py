"""What both admins share: who may see costs and PII, and how times, money and durations read."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from bookings.selectors import business_tz
from chatdesk import replica
from chatdesk.conversations import access

Users = AbstractBaseUser | AnonymousUser


class ReadOnlyMixin:
    """For a ModelAdmin or an inline over rows the system writes: staff may look, never touch.

    The audit trail, counters and conversation records are written by services only, so no
    staff member, superusers included, may add, change or delete them here.
    """

    def has_add_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


class InternalMixin:
    """For a ModelAdmin over the system's own bookkeeping (audit rows, number counters).

    Left out of the admin index for everyone but superusers, so staff see the models of
    their day's work only. Nothing else changes: the permissions still decide who may open
    the pages, and bookings still show their own audit trail.
    """

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        if request.user.is_superuser:
            return super().get_model_perms(request)
        return {}


class ReplicaListMixin:
    """For a ModelAdmin whose list is a heavy read (bookings, conversations, handoffs).

    With a read replica, the list's GET (counts, filters, facets, the page of rows, rendered
    here) reads the replica; a POST to it (actions, list edits: read-then-write) stays on the
    primary, and so does a user who wrote in the last few seconds (chatdesk.replica).
    Put it first among the bases, so every other changelist_view runs inside it.
    """

    @replica.replica_reads
    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class WideListMixin:
    """For a ModelAdmin whose list is a working screen with many columns (bookings, conversations).

    Its changelist leaves out the admin's nav sidebar (the index and the breadcrumbs have the
    same links), so the table and the filters fit side by side at 1280 px.
    """

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})


def can_see_costs(user: Users) -> bool:
    # The staff policy's answer, so the admin hides exactly what the API and the socket hide.
    return access.Visibility.of(user).costs


def can_see_pii(user: Users) -> bool:
    return access.Visibility.of(user).pii


def usd(value: Decimal | None, places: int = 4) -> str:
    return "-" if value is None else f"${value:,.{places}f}"


def duration_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def staff_name(user: object | None) -> str:
    if user is None:
        return "Staff"
    return user.get_full_name() or user.get_username()  # type: ignore[attr-defined]


BOTH_LOCATIONS = [admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM]


def short_time(value: datetime, *, zone: bool = True) -> str:
    """A compact wall-clock time at the business for lists: 'Fri Dec 4 16:00 EST'.

    The year is added when it is not this one.
    """
    local, now = value.astimezone(business_tz()), timezone.now().astimezone(business_tz())
    year = f" {local.year}" if local.year != now.year else ""
    return f"{local:%a %b} {local.day}{year} {local:%H:%M}" + (f" {local:%Z}" if zone else "")


def local_time(value: datetime | None) -> str:
    """A UTC instant as wall-clock time at the business, e.g. 'Tue 2026-11-17 09:00 EST'."""
    if value is None:
        return "-"
    return f"{value.astimezone(business_tz()):%a %Y-%m-%d %H:%M %Z}"
