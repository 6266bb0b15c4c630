"""Race-free yearly numbers (BK-2026-000042, INT-2026-00042)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F

from bookings.models import YearlyCounter


def next_number(prefix: str, year: int, width: int) -> str:
    """Allocate the next number for (prefix, year) inside the caller's transaction.

    The UPDATE takes a row lock held until the caller commits, so concurrent callers queue
    on it instead of reading the same value. Call it as late as possible in a transaction
    to keep that lock short.
    """
    with transaction.atomic():
        updated = YearlyCounter.objects.filter(name=prefix, year=year).update(last_value=F("last_value") + 1)
        if not updated:
            try:
                # A savepoint, so losing the race to create the row does not poison the
                # caller's transaction; the loser then increments the winner's row.
                with transaction.atomic():
                    YearlyCounter.objects.create(name=prefix, year=year, last_value=1)
            except IntegrityError:
                YearlyCounter.objects.filter(name=prefix, year=year).update(last_value=F("last_value") + 1)
        value = YearlyCounter.objects.filter(name=prefix, year=year).values_list("last_value", flat=True).get()
    return f"{prefix}-{year}-{value:0{width}d}"
