"""{{ number|phone }} shows a phone number to a person; {{ number|tel }} is for tel: links.

Both go through bookings.phones, so a template shows numbers exactly as the admin, the emails
and the assistant do.
"""

from __future__ import annotations

from django import template

from bookings.phones import phone_display, phone_e164

register = template.Library()


@register.filter
def phone(number: str | None) -> str:
    return phone_display(number or "")


@register.filter
def tel(number: str | None) -> str:
    return phone_e164(number or "")
