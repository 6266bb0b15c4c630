"""Our ASGI handler behaves as Django's stock ASGIHandler, middleware by middleware.

The same visit (a page, a missing slash, a forged form, a session with a flash message, a
sign-in, an async view, an https request behind a proxy) goes through a fresh
ChatdeskASGIHandler and a fresh django.core.handlers.asgi.ASGIHandler, each with its own
cookies, and every response must match: status, body, every header, and each cookie's name,
attributes and whether it was set or deleted (not its value: tokens and signatures are
random). Loading the middleware logs the same debug lines, MiddlewareNotUsed included.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie

import pytest
from asgiref.sync import markcoroutinefunction
from channels.testing import HttpCommunicator
from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path

from chatdesk.handlers import ChatdeskASGIHandler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]


# --- A small site that exercises every standard middleware ---------------------------------


def storefront(request: HttpRequest) -> HttpResponse:
    """Sets the CSRF cookie; shows who is signed in and the flash messages, which reads them."""
    get_token(request)
    lines = [f"user={request.user.get_username() or 'anonymous'}"]
    lines += [f"message={message}" for message in messages.get_messages(request)]
    return HttpResponse("\n".join(lines), content_type="text/plain")


def remember_visit(request: HttpRequest) -> HttpResponse:
    """Counts visits in the session and leaves a flash message."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    messages.success(request, "Visit saved")
    return HttpResponse(str(request.session["visits"]), content_type="text/plain")


def sign_in(request: HttpRequest) -> HttpResponse:
    # Two backends (django-axes' throttle, then Django's): login() must be told which one vouched.
    login(
        request,
        get_user_model().objects.get(username="dispatcher"),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    return HttpResponse("signed in", content_type="text/plain")


async def who_is_here(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username(), "visits": await request.session.aget("visits")})


urlpatterns = [
    path("storefront/", storefront),
    path("remember/", remember_visit),
    path("sign-in/", sign_in),
    path("who/", who_is_here),
]


# --- Middleware that are not Django's standard ones --------------------------------------


class NotForThisDeployment:
    """Opts out at start-up, as a middleware for a feature that is switched off would."""

    def __init__(self, get_response) -> None:
        raise MiddlewareNotUsed("no legacy portal here")


class StampsResponses:
    """Async-only and not a MiddlewareMixin: our handler cannot see through it."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = await self.get_response(request)
        response["X-Stamped"] = "async"
        return response


def stamps_in_a_thread(get_response):
    """Sync-only (a plain function middleware): Django adapts around it."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response["X-Stamped-Sync"] = "sync"
        return response

    return middleware


# --- Driving a handler and reading its answers --------------------------------------------


def _cookie_facts(set_cookie_headers: list[str]) -> list[tuple]:
    """Each cookie's name, whether it was set or deleted, and its attributes except expiry."""
    facts = []
    for header in set_cookie_headers:
        jar = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            attributes = {key: value for key, value in morsel.items() if value and key != "expires"}
            facts.append((name, "set" if morsel.value else "deleted", sorted(attributes.items())))
    return sorted(facts)


async def visit(app) -> list[dict]:
    """One visitor's way through the site; what the handler answered at each step."""
    cookies: dict[str, str] = {}
    answers = []

    async def ask(method: str, url: str, headers: list | None = None) -> dict:
        sent = [(b"host", b"testserver"), *(headers or [])]
        if cookies:
            sent.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
        response = await HttpCommunicator(app, method, url, headers=sent).get_response(timeout=10)
        set_cookies = [value.decode() for name, value in response["headers"] if name.lower() == b"set-cookie"]
        for header in set_cookies:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value:
                    cookies[name] = morsel.value
                else:
                    cookies.pop(name, None)
        answer = {
            "step": f"{method} {url}",
            "status": response["status"],
            "body": response["body"].decode(),
            "headers": sorted(
                (name.decode().lower(), value.decode())
                for name, value in response["headers"]
                if name.lower() != b"set-cookie"
            ),
            "cookies": _cookie_facts(set_cookies),
        }
        answers.append(answer)
        return answer

    def form_headers() -> list:
        return [(b"origin", b"http://testserver"), (b"x-csrftoken", cookies["csrftoken"].encode())]

    await ask("GET", "/storefront/")
    await ask("GET", "/storefront")  # CommonMiddleware: APPEND_SLASH
    await ask("POST", "/remember/", [(b"origin", b"http://testserver")])  # no token: CSRF rejects
    await ask("POST", "/remember/", form_headers())  # session saved, flash message stored
    await ask("GET", "/storefront/")  # the message is shown and its cookie deleted
    await ask("POST", "/sign-in/", form_headers())  # a new session key
    await ask("GET", "/who/")
    await ask("GET", "/storefront/", [(b"x-forwarded-proto", b"https")])  # HSTS on https only
    return answers


@pytest.fixture
def dispatcher(db):
    return get_user_model().objects.create_user("dispatcher", password="a-long-pass-phrase")


def standard_middleware() -> list[str]:
    """settings.MIDDLEWARE but django-axes' (last, async-native: nothing to inline, see chatdesk.handlers)."""
    assert django_settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    return django_settings.MIDDLEWARE[:-1]


@pytest.fixture
def behind_a_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    return settings


async def test_every_standard_middleware_answers_as_under_djangos_handler(dispatcher, behind_a_proxy):
    ours = ChatdeskASGIHandler()
    assert ours.inlined == standard_middleware()  # all of them run inline

    answers, djangos = await visit(ours), await visit(ASGIHandler())

    assert answers == djangos
    # The visit did exercise each middleware (so equal answers mean something).
    by_step = {answer["step"]: answer for answer in answers}
    first = answers[0]
    headers = dict(first["headers"])
    assert headers["x-frame-options"] == "DENY"  # XFrameOptionsMiddleware
    assert headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware
    assert headers["referrer-policy"] == "same-origin"
    assert "default-src 'self'" in headers["content-security-policy"]  # ContentSecurityPolicyMiddleware
    assert ("csrftoken", "set") in [fact[:2] for fact in first["cookies"]]  # CsrfViewMiddleware
    assert by_step["GET /storefront"]["status"] == 301  # CommonMiddleware
    rejected, saved = [a for a in answers if a["step"] == "POST /remember/"]
    assert rejected["status"] == 403
    assert saved["status"] == 200 and saved["body"] == "1"
    assert {fact[:2] for fact in saved["cookies"]} == {("sessionid", "set"), ("messages", "set")}
    shown = answers[4]
    assert "message=Visit saved" in shown["body"] and ("messages", "deleted") in [f[:2] for f in shown["cookies"]]
    assert ("sessionid", "set") in [fact[:2] for fact in by_step["POST /sign-in/"]["cookies"]]
    assert by_step["GET /who/"]["body"] == '{"user": "dispatcher", "visits": 1}'  # AuthenticationMiddleware
    assert "strict-transport-security" in dict(answers[-1]["headers"])
    assert "strict-transport-security" not in headers


async def test_a_middleware_it_cannot_see_through_keeps_djangos_handling_inside_it(dispatcher, behind_a_proxy):
    middleware = list(django_settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1, f"{__name__}.StampsResponses"
    )
    behind_a_proxy.MIDDLEWARE = middleware
    ours = ChatdeskASGIHandler()
    # Inline down to the async-only middleware; below it, Django's own async MiddlewareMixin calls.
    assert ours.inlined == middleware[: middleware.index(f"{__name__}.StampsResponses")]

    answers, djangos = await visit(ours), await visit(ASGIHandler())

    assert answers == djangos
    assert all(("x-stamped", "async") in answer["headers"] for answer in answers)


async def test_with_a_sync_only_middleware_the_chain_is_djangos(dispatcher, behind_a_proxy):
    behind_a_proxy.MIDDLEWARE = [*django_settings.MIDDLEWARE, f"{__name__}.stamps_in_a_thread"]
    ours = ChatdeskASGIHandler()
    # Django runs everything above a sync-only middleware in sync mode: nothing to inline.
    assert ours.inlined == []

    answers, djangos = await visit(ours), await visit(ASGIHandler())

    assert answers == djangos
    assert ("x-stamped-sync", "sync") in answers[0]["headers"]


def test_loading_logs_what_djangos_handler_logs(settings, caplog):
    settings.DEBUG = True
    settings.MIDDLEWARE = [
        f"{__name__}.StampsResponses",
        *settings.MIDDLEWARE,
        f"{__name__}.NotForThisDeployment",
        f"{__name__}.stamps_in_a_thread",
    ]

    def load(handler_class) -> list[tuple[int, str]]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="django.request"):
            handler_class()
        return [(record.levelno, record.getMessage()) for record in caplog.records if record.name == "django.request"]

    ours, djangos = load(ChatdeskASGIHandler), load(ASGIHandler)

    assert ours == djangos
    assert (logging.DEBUG, f"MiddlewareNotUsed('{__name__}.NotForThisDeployment'): no legacy portal here") in ours
    # The debug names: which middleware Django had to adapt, and which way.
    assert (logging.DEBUG, f"Asynchronous handler adapted for middleware {__name__}.stamps_in_a_thread.") in ours
    assert (logging.DEBUG, f"Synchronous handler adapted for middleware {__name__}.StampsResponses.") in ours


def test_middleware_not_used_is_left_out_of_the_chain(settings):
    settings.MIDDLEWARE = [*standard_middleware(), f"{__name__}.NotForThisDeployment"]
    assert ChatdeskASGIHandler().inlined == list(django_settings.MIDDLEWARE[:-1])
