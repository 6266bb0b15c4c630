"""Domain errors, defined once.

Each has a stable `code` and a message a customer can read. The API maps them to HTTP
statuses in chatdesk.api_errors; the assistant's tools return them as structured tool
results the model can recover from.
"""

from __future__ import annotations

import math

from django.http import JsonResponse


class DomainError(Exception):
    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict:
        data = {"error": self.code, "message": self.message}
        if self.field:
            data["field"] = self.field
        return data


class InvalidInput(DomainError):
    code = "invalid_input"


class SlotUnavailable(DomainError):
    code = "slot_unavailable"
    http_status = 409


class BookingNotFound(DomainError):
    code = "booking_not_found"
    http_status = 404


class InvalidTransition(DomainError):
    code = "invalid_transition"
    http_status = 409


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


def retry_after_header(seconds: float | None) -> str:
    """The Retry-After value for a 429 or a 503: whole seconds, rounded up (a client told "0" would
    retry at once and be refused again), and a minute when the wait is not known."""
    return str(max(1, math.ceil(seconds))) if seconds else "60"


def json_error(code: str, message: str, status: int, **extra: object) -> JsonResponse:
    """The error envelope (`as_dict`'s shape) as a response, for views that are not DRF's.

    A 429 (rate limited), a 503 (a service down) and any error given a `retry_after` also say
    when to come back: Retry-After, from `retry_after` in `extra`."""
    response = JsonResponse({"error": code, "message": message, **extra}, status=status)
    if status in (429, 503) or "retry_after" in extra:
        wait = extra.get("retry_after")
        response["Retry-After"] = retry_after_header(wait if isinstance(wait, int | float) else None)
    return response
