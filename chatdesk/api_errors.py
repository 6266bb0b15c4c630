"""Domain errors mapped to HTTP once, for every DRF view."""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from bookings.errors import DomainError, retry_after_header


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        response = Response(exc.as_dict(), status=exc.http_status)
        # A domain error that passes (e.g. live updates unavailable) says when to try again.
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = retry_after_header(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.Throttled):
        response.status_code = status.HTTP_429_TOO_MANY_REQUESTS
        response.data = {"error": "rate_limited", "message": "Too many requests. Please wait a moment."}
        response["Retry-After"] = retry_after_header(exc.wait)
    elif isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "invalid_input", "message": "Some fields are not valid.", "fields": response.data}
    elif isinstance(exc, exceptions.APIException):
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"error": exc.default_code, "message": str(detail)}
    return response
