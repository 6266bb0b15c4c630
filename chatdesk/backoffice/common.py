"""What both admins share: who may see costs and PII, and how times, money and durations read."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from bookings.selectors import business_tz
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


def local_time(value: datetime | None) -> str:
    """A UTC instant as wall-clock time at the business, e.g. 'Tue 2026-11-17 09:00 EST'."""
    if value is None:
        return "-"
    return f"{value.astimezone(business_tz()):%a %Y-%m-%d %H:%M %Z}"
