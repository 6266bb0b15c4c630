"""Domain errors, defined once.

Each has a stable `code` and a message a customer can read. The API maps them to HTTP
statuses in chatdesk.api_errors; the assistant's tools return them as structured tool
results the model can recover from.
"""

from __future__ import annotations

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


def json_error(code: str, message: str, status: int, **extra: object) -> JsonResponse:
    """The error envelope (`as_dict`'s shape) as a response, for views that are not DRF's."""
    response = JsonResponse({"error": code, "message": message, **extra}, status=status)
    if status == 429:
        response["Retry-After"] = str(extra.get("retry_after", 60))
    return response
