"""The business's public holidays (settings.BUSINESS_HOLIDAYS, e.g. "CA-ON"), from the `holidays` package.

seed_demo closes them; the assistant's date grammar (chatdesk.assistant.dates) names them.
"""

from __future__ import annotations

from datetime import date


def holiday_region() -> str:
    from django.conf import settings

    return getattr(settings, "BUSINESS_HOLIDAYS", "")


def holidays_between(first: date, last: date, region: str | None = None) -> dict[date, str]:
    """The region's public holidays (official names, observed days included) in [first, last]."""
    import holidays

    region = holiday_region() if region is None else region
    if not region:
        return {}
    country, _, subdivision = region.partition("-")
    found = holidays.country_holidays(country, subdiv=subdivision or None, years=range(first.year, last.year + 1))
    return {day: name for day, name in sorted(found.items()) if first <= day <= last}
