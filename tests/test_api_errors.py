"""The JSON error contract: every 4xx and 5xx under /api/ is `{"error", "message"}` JSON.

Cases the testers found (issue 11, items 4 and 5): a form or multipart body to the message
endpoint (a 500), a NUL byte in a path's identifier (a 500 from PostgreSQL), a 10 MB body to
the staff API (an HTML 400), Django's own 404/405/403 pages, and a database or Redis that
cannot be reached (an HTML 500 without Retry-After). The pages outside /api/ keep HTML.
The outage of the real PostgreSQL under chat traffic is tests/test_postgres_restart.py.
"""

from __future__ import annotations

import json
import socket

import pytest
from django.contrib.auth import get_user_model
from django.core.cache.backends.redis import RedisCache
from django.db import connections
from django.db.utils import ConnectionHandler
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from chatdesk import urls as chatdesk_urls
from chatdesk.conversations.models import Message
from tests.chat_customer import Customer

# Turns run their database work on worker threads, each with its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


def assert_envelope(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    if error:
        assert body["error"] == error, body
    return body


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("owner", password="x"))
    return client


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "post",
    [
        pytest.param(lambda c, s: c.post("/api/v1/chat/message", {"session_id": s, "message": "hi"}), id="multipart"),
        pytest.param(
            lambda c, s: c.post(
                "/api/v1/chat/message",
                f"session_id={s}&message=hi",
                content_type="application/x-www-form-urlencoded",
            ),
            id="form",
        ),
        pytest.param(
            lambda c, s: c.post("/api/v1/chat/message", json.dumps({"session_id": s}), content_type="text/plain"),
            id="text",
        ),
    ],
)
def test_a_message_that_is_not_json_is_415_and_stores_nothing(business, post):
    dana = Customer()
    response = post(dana.client, dana.session_id)
    assert_envelope(response, 415, "unsupported_media_type")
    assert dana.conversation.messages.count() == 1  # the greeting


def test_json_with_a_charset_is_json(business):
    dana = Customer()
    body = json.dumps({"session_id": dana.session_id, "message": "menu"})
    response = dana.client.post("/api/v1/chat/message", body, content_type="application/json; charset=utf-8")
    assert response.status_code == 200, response.content


CHAT_PATHS = [
    ("get", "/api/v1/chat/session/a%00b/history"),
    ("post", "/api/v1/chat/session/a%00b/close"),
]
STAFF_PATHS = [
    ("get", "/api/v1/bookings/BK%00-2026"),
    ("post", "/api/v1/bookings/BK%00/cancel"),
    ("post", "/api/v1/bookings/BK%00/reschedule"),
    ("post", "/api/v1/bookings/BK%00/confirm"),
    ("post", "/api/v1/bookings/BK%00/complete"),
    ("post", "/api/v1/bookings/BK%00/no-show"),
    ("get", "/api/v1/staff/conversations/INT%00"),
    ("post", "/api/v1/staff/conversations/INT%00/takeover"),
    ("post", "/api/v1/staff/conversations/INT%00/release"),
    ("post", "/api/v1/staff/conversations/INT%00/messages"),
]


@pytest.mark.parametrize(("method", "url"), CHAT_PATHS)
def test_a_nul_byte_in_a_customers_path_is_a_json_404(method, url):
    assert_envelope(getattr(Client(), method)(url), 404, "not_found")


@pytest.mark.parametrize(("method", "url"), STAFF_PATHS)
def test_a_nul_byte_in_a_staff_path_is_a_json_404(staff, method, url):
    assert_envelope(getattr(staff, method)(url, {}, content_type="application/json"), 404, "not_found")


@pytest.mark.parametrize("shape", ["a%20b", "a.b", "x" * 65, "%C3%A9t%C3%A9"])
def test_identifiers_of_another_shape_never_reach_a_view(staff, shape):
    assert_envelope(Client().get(f"/api/v1/chat/session/{shape}/history"), 404, "not_found")
    assert_envelope(staff.get(f"/api/v1/bookings/{shape}"), 404, "not_found")


def test_well_shaped_identifiers_still_reach_the_views(business, staff):
    dana = Customer()
    assert Client().get(f"/api/v1/chat/session/{dana.session_id}/history").status_code == 200
    assert_envelope(staff.get("/api/v1/bookings/BK-2026-000001"), 404, "booking_not_found")
    assert_envelope(staff.get("/api/v1/staff/conversations/INT-2026-99999"), 404, "not_found")
    number = dana.conversation.number
    assert staff.get(f"/api/v1/staff/conversations/{number}").status_code == 200


def test_a_nul_byte_in_a_query_is_a_json_400_not_a_500(staff):
    # A value the database refuses (PostgreSQL text cannot hold NUL) is bad input.
    response = staff.get("/api/v1/bookings/", {"service": "hvac\x00repair"})
    assert response.status_code == 400, response.content
    assert_envelope(response, 400)


TEN_MB = "x" * (10 * 1024 * 1024)


@pytest.mark.parametrize(
    "post",
    [
        pytest.param(
            lambda c, url: c.post(url, json.dumps({"notes": TEN_MB}), content_type="application/json"), id="json"
        ),
        pytest.param(
            lambda c, url: c.post(url, f"notes={TEN_MB}", content_type="application/x-www-form-urlencoded"), id="form"
        ),
        pytest.param(lambda c, url: c.post(url, {"notes": TEN_MB}), id="multipart"),
    ],
)
@pytest.mark.parametrize("url", ["/api/v1/bookings/", "/api/v1/staff/conversations/INT-2026-00001/messages"])
def test_a_10_mb_body_to_the_staff_api_is_a_json_413(staff, post, url):
    assert_envelope(post(staff, url), 413, "too_large")


# --- Django's own answers ---------------------------------------------------------------------


def test_no_route_under_api_is_a_json_404_and_the_pages_keep_html():
    assert_envelope(Client().get("/api/v1/nothing-here"), 404, "not_found")
    page = Client().get("/nothing-here")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_a_wrong_method_is_a_json_405_with_allow():
    response = Client().get("/api/v1/chat/message")  # require_POST's bare 405
    assert_envelope(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    drf = Client().get("/api/v1/chat/session/new")
    assert_envelope(drf, 405)


def test_a_csrf_failure_is_a_json_403_on_the_api_and_text_on_the_pages(business):
    browser = Client(enforce_csrf_checks=True)
    assert_envelope(browser.post("/api/v1/chat/session/new"), 403)
    assert_envelope(browser.post("/api/v1/bookings/", {}), 403)
    page = browser.post("/send", {"message": "hi"})
    assert page.status_code == 403
    assert not page["Content-Type"].startswith("application/json")


def test_under_debug_the_api_still_answers_json(settings):
    settings.DEBUG = True
    assert_envelope(Client().get("/api/v1/nothing-here"), 404, "not_found")
    assert_envelope(Client().get("/api/v1/chat/session/a%00b/history"), 404, "not_found")


# --- services down: real connections to ports nothing listens on ------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reads_a_dead_database(request: HttpRequest) -> HttpResponse:
    """A real Django connection to a PostgreSQL port nothing listens on."""
    settings_dict = {**connections["default"].settings_dict, "HOST": "127.0.0.1", "PORT": str(closed_port())}
    settings_dict["OPTIONS"] = {k: v for k, v in settings_dict["OPTIONS"].items() if k != "pool"}
    dead = ConnectionHandler({"default": settings_dict})["default"]
    try:
        dead.ensure_connection()
    finally:
        dead.close()
    return HttpResponse("unreachable")


def reads_a_dead_redis(request: HttpRequest) -> HttpResponse:
    """A real Redis cache client to a port nothing listens on, not degraded by anything."""
    RedisCache(f"redis://127.0.0.1:{closed_port()}/0", {}).get("anything")
    return HttpResponse("unreachable")


def fails(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


outage_routes = [
    path("ok", ok),
    path("db", reads_a_dead_database),
    path("redis", reads_a_dead_redis),
    path("bug", fails),
]
handler400, handler500 = chatdesk_urls.handler400, chatdesk_urls.handler500
urlpatterns = [
    path("api/test/", include(outage_routes)),
    path("page/", include(outage_routes)),
    path("", include("chatdesk.urls")),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("service", ["db", "redis"])
@pytest.mark.parametrize("debug", [False, True])
def test_a_service_down_is_a_json_503_with_retry_after_on_the_api(settings, service, debug):
    settings.DEBUG = debug
    response = Client(raise_request_exception=False).get(f"/api/test/{service}")
    assert_envelope(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) >= 1


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("service", ["db", "redis"])
def test_a_service_down_is_a_short_html_503_page_elsewhere(settings, service):
    response = Client(raise_request_exception=False).get(f"/page/{service}")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) >= 1
    assert b"Back in a moment" in response.content
    assert b"Traceback" not in response.content


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_under_api_is_a_json_500_and_a_page_keeps_the_html_500(settings, debug):
    settings.DEBUG = debug
    assert_envelope(Client(raise_request_exception=False).get("/api/test/bug"), 500, "server_error")
    page = Client(raise_request_exception=False).get("/page/bug")
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")


class DatabaseDownAfterTheView:
    """A middleware that meets the database down after the view, as SessionMiddleware saving a
    session would: Django renders that error itself (handler500, or under DEBUG its traceback page)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.GET.get("then") == "db":
            reads_a_dead_database(request)
        return response


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [False, True])
def test_a_service_down_outside_the_view_is_a_503_too_even_under_debug(settings, debug):
    settings.DEBUG = debug
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.DatabaseDownAfterTheView"]
    client = Client(raise_request_exception=False)
    api = client.get("/api/test/ok", {"then": "db"})
    assert_envelope(api, 503, "service_unavailable")
    assert int(api["Retry-After"]) >= 1
    page = client.get("/page/ok", {"then": "db"})
    assert page.status_code == 503
    assert b"Back in a moment" in page.content
    assert client.get("/api/test/ok").status_code == 200


def test_the_envelope_keeps_cookies_and_security_headers():
    response = Client().get("/api/v1/nothing-here")
    assert_envelope(response, 404)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


def test_nothing_is_stored_for_a_rejected_body(business):
    dana = Customer()
    dana.client.post("/api/v1/chat/message", {"session_id": dana.session_id, "message": "hi"})
    assert not Message.objects.filter(text="hi").exists()


def test_what_django_renders_outside_a_view_follows_the_contract_too(rf):
    """handler500 and handler400: an outage or a too large body met by a middleware (the
    session saved after the view, CSRF reading a form)."""
    from django.core.exceptions import RequestDataTooBig
    from django.db import OperationalError

    from chatdesk import api_errors

    for url, is_json in [("/api/v1/chat/message", True), ("/", False)]:
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError:
            response = api_errors.server_error(rf.get(url))
        assert response.status_code == 503
        assert int(response["Retry-After"]) >= 1
        assert response["Content-Type"].startswith("application/json" if is_json else "text/html")
    too_big = api_errors.bad_request(rf.post("/api/v1/bookings/"), RequestDataTooBig("10 MB"))
    assert_envelope(too_big, 413, "too_large")
    assert api_errors.bad_request(rf.post("/send"), RequestDataTooBig("10 MB")).status_code == 400


def test_a_bad_query_on_sqlite_is_a_bug_not_an_outage():
    # SQLite reports a syntax error as an OperationalError: it must surface as a 500 to fix,
    # not hide behind "briefly unavailable"; a locked database is an outage.
    import sqlite3

    from django.db import OperationalError

    from chatdesk.api_errors import unavailable

    def wrapped(message: str) -> OperationalError:
        error = OperationalError(message)
        error.__cause__ = sqlite3.OperationalError(message)
        return error

    assert unavailable(wrapped('unrecognized token: ":"')) is None
    assert unavailable(wrapped("no such table: x")) is None
    assert unavailable(wrapped("database is locked")) == "database"
    assert unavailable(OperationalError("connection refused")) == "database"
