"""Errors mapped to HTTP once: the JSON error contract of every route under /api/.

Every 4xx and 5xx under /api/ is the one envelope (`bookings.errors.json_error`:
`{"error": code, "message": text}`), never an HTML page:
- DRF views: `exception_handler` (domain errors, DRF's own, then `error_for`).
- Everything else, and what escapes a view: `ApiErrors`, a middleware that maps exceptions
  with `error_for` (process_exception) and turns any other error response under /api/ into
  the envelope (a 404 for no route, require_POST's 405, DEBUG's pages, a proxy-less 500).
- What Django renders itself outside the view (a 400 from a middleware, an uncaught error):
  `bad_request` and `server_error`, the project's handler400/handler500.

A database or Redis that cannot be reached is a 503 with Retry-After, never a 500: on the
API as JSON, elsewhere (the no-JavaScript chat page) as a short HTML page.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.signals import got_request_exception
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.request import RawPostDataException
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from bookings.errors import DomainError, json_error, retry_after_header

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# A PostgreSQL restart or a Redis failover takes seconds: ask clients to come back then.
UNAVAILABLE_RETRY_AFTER = 5

# Exceptions that say a backing service is down, not that the request was wrong. Django
# wraps psycopg's (PoolTimeout included) in its own OperationalError/InterfaceError.
_DATABASE_DOWN = (OperationalError, InterfaceError)
# SQLite reports a bad query as an OperationalError too ('unrecognized token: ":"'): that is a
# bug to see as a 500, not an outage to hide behind a 503. Only these mean it is unavailable.
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "out of memory")
_CACHE_DOWN = (RedisConnectionError, RedisTimeoutError)

# The envelope's code for an error response that carries none (Django's or a decorator's).
CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    503: "service_unavailable",
}


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def unavailable(exc: BaseException) -> str | None:
    """ "database" or "cache" when `exc` (or what caused it) means that service is down, else None."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain: a wrapper's cause is the driver's error
        if seen is None:
            return None
        if isinstance(seen, _DATABASE_DOWN):
            driver = seen.__cause__
            if isinstance(driver, sqlite3.Error) and not any(w in str(driver).lower() for w in _SQLITE_UNAVAILABLE):
                return None
            return "database"
        if isinstance(seen, _CACHE_DOWN):
            return "cache"
        seen = seen.__cause__ or seen.__context__
    return None


def error_for(exc: BaseException) -> JsonResponse | None:
    """The envelope for an exception any API route may meet beyond its own checks, or None."""
    service = unavailable(exc)
    if service:
        logger.warning("API request failed: the %s is unavailable: %r", service, exc)
        return json_error(
            "service_unavailable",
            "The service is briefly unavailable. Please try again in a few seconds.",
            503,
            retry_after=UNAVAILABLE_RETRY_AFTER,
        )
    if isinstance(exc, RequestDataTooBig):
        return json_error("too_large", "The request is too large.", 413)
    if isinstance(exc, RawPostDataException):
        return json_error("unsupported_media_type", "Send the body as application/json.", 415)
    if isinstance(exc, DataError):
        # What the database refuses to store or compare (a NUL byte in text, a number out of range).
        return json_error("invalid_input", "The request contains a value that cannot be used.", 400)
    if isinstance(exc, Http404):
        return json_error("not_found", "Not found.", 404)
    if isinstance(exc, PermissionDenied):
        return json_error("forbidden", "You do not have permission to do this.", 403)
    if isinstance(exc, SuspiciousOperation):
        return json_error("bad_request", "The request is not valid.", 400)
    return None


def exception_handler(exc: Exception, context: dict) -> Response | HttpResponseBase | None:
    """DRF's exception handler: domain errors, DRF's own errors, then `error_for`."""
    if isinstance(exc, DomainError):
        response = Response(exc.as_dict(), status=exc.http_status)
        # A domain error that passes (e.g. live updates unavailable) says when to try again.
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = retry_after_header(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return error_for(exc)
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


def unavailable_page(request: HttpRequest) -> HttpResponse:
    """The pages' 503: a short page saying to try again, with Retry-After.

    Rendered without the request's context processors: they could touch the database
    that is down.
    """
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def _as_envelope(response: HttpResponseBase) -> JsonResponse:
    """An error response that is not JSON, as the envelope, keeping its headers and cookies."""
    code = response.status_code
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
    envelope = json_error(CODES.get(code, "server_error" if code >= 500 else "bad_request"), f"{phrase}.", code)
    for header, value in response.headers.items():
        if header.lower() not in ("content-type", "content-length"):
            envelope[header] = value
    envelope.cookies = response.cookies
    return envelope


def _remember_uncaught(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    # Sent by Django for an uncaught error (in the view or in a middleware) before it renders
    # the 500; under DEBUG that is the traceback page, which carries no exception to map.
    if request is not None:
        request._uncaught_exception = sys.exc_info()[1]  # type: ignore[attr-defined]


class ApiErrors(MiddlewareMixin):
    """The JSON error contract for /api/ (and the pages' 503 when a service is down).

    Sits inside SecurityMiddleware and the CSP middleware, so what it answers gets their
    headers, and outside the others, so it sees their error responses. Its hooks do no I/O:
    chatdesk.handlers runs them on the event loop.
    """

    def __init__(self, get_response: Callable) -> None:
        super().__init__(get_response)
        got_request_exception.connect(_remember_uncaught, dispatch_uid="chatdesk.api_errors.uncaught")

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if is_api(request):
            return error_for(exception)
        if unavailable(exception):
            logger.warning("Page request failed: a backing service is unavailable: %r", exception)
            return unavailable_page(request)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        uncaught = getattr(request, "_uncaught_exception", None)
        if response.status_code == 500 and uncaught is not None and unavailable(uncaught):
            # A service down outside the view (a session saved after it), also under DEBUG.
            return (error_for(uncaught) or response) if is_api(request) else unavailable_page(request)
        if (
            response.status_code >= 400
            and is_api(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return _as_envelope(response)
        return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a 400 Django renders for an error outside the view (a 10 MB form read by a
    middleware is a 413 on the API)."""
    if is_api(request):
        return error_for(exception) or json_error("bad_request", "The request is not valid.", 400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an uncaught error. A service that is down is a 503 (JSON on the API, the
    short page elsewhere); anything else on the API is the envelope's 500."""
    exc = sys.exc_info()[1]
    if exc is not None and unavailable(exc):
        if is_api(request):
            response = error_for(exc)
            assert response is not None  # unavailable() said so
            return response
        return unavailable_page(request)
    if is_api(request):
        return json_error("server_error", "Something went wrong on our side. Please try again.", 500)
    return defaults.server_error(request)
