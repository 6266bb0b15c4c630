"""The ASGI handler runs the standard middleware's hooks on the event loop, and stays correct.

Requests go through the real application (`chatdesk.asgi.application`) with Channels'
HttpCommunicator, so they take the same path as under daphne or uvicorn: the hooks that
may do I/O (saving a modified session, storing flash messages) must still reach the
database from Django's sync thread, or Django would refuse with SynchronousOnlyOperation.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from chatdesk.asgi import application, django_asgi_app
from chatdesk.conversations.models import Conversation
from chatdesk.handlers import ChatdeskASGIHandler, _messages_will_store, _session_will_save

pytestmark = pytest.mark.django_db(transaction=True)
HOST = [(b"host", b"testserver")]


async def request(method: str, path: str, body: bytes = b"", headers: list | None = None) -> dict:
    communicator = HttpCommunicator(application, method, path, body=body, headers=[*HOST, *(headers or [])])
    response = await communicator.get_response(timeout=10)
    response["header_map"] = {}
    for name, value in response["headers"]:
        response["header_map"].setdefault(name.decode().lower(), []).append(value.decode())
    return response


def cookies_of(response: dict) -> dict[str, str]:
    jar = SimpleCookie()
    for value in response["header_map"].get("set-cookie", []):
        jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def cookie_header(cookies: dict[str, str]) -> tuple[bytes, bytes]:
    return (b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode())


def test_every_standard_middleware_runs_inline_and_settings_keep_their_names():
    assert isinstance(django_asgi_app, ChatdeskASGIHandler)
    # Same list, same order: Django's checks find the middleware by these names. django-axes'
    # middleware, last, is async-native: Django calls it on the loop as it is.
    assert django_asgi_app.inlined == settings.MIDDLEWARE[:-1]
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


async def test_responses_still_carry_every_middlewares_headers(business):
    response = await request("GET", "/")
    assert response["status"] == 200
    headers = response["header_map"]
    assert headers["x-frame-options"] == ["DENY"]  # XFrameOptionsMiddleware
    assert headers["x-content-type-options"] == ["nosniff"]  # SecurityMiddleware
    assert "content-security-policy" in headers  # ContentSecurityPolicyMiddleware
    assert "csrftoken" in cookies_of(response)  # CsrfViewMiddleware


async def test_csrf_is_still_enforced_through_the_handler(business):
    response = await request("POST", "/api/v1/chat/session/new", headers=[(b"origin", b"http://testserver")])
    assert response["status"] == 403
    assert await Conversation.objects.acount() == 0


async def test_admin_login_saves_the_session_from_the_sync_thread():
    await sync_to_async(get_user_model().objects.create_superuser)("boss", "boss@example.com", "a-long-pass-phrase")
    page = await request("GET", "/admin/login/")
    cookies = cookies_of(page)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1).decode()
    login = await request(
        "POST",
        "/admin/login/?next=/admin/",
        body=f"csrfmiddlewaretoken={token}&username=boss&password=a-long-pass-phrase&next=/admin/".encode(),
        headers=[
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"origin", b"http://testserver"),
            (b"referer", b"http://testserver/admin/login/"),
            cookie_header(cookies),
        ],
    )
    # A session saved inline on the event loop would have been a 500 (SynchronousOnlyOperation).
    assert login["status"] == 302, login["body"][:500]
    cookies.update(cookies_of(login))
    assert settings.SESSION_COOKIE_NAME in cookies
    index = await request("GET", "/admin/", headers=[cookie_header(cookies)])
    assert index["status"] == 200
    assert b"boss" in index["body"]


def test_the_io_hooks_go_to_the_thread_only_when_they_would_write(rf: RequestFactory, settings):
    request = rf.get("/")
    assert not _session_will_save(request)  # no session at all
    assert not _messages_will_store(request)

    class Session:
        modified = False

    request.session = Session()
    assert not _session_will_save(request)
    request.session.modified = True
    assert _session_will_save(request)
    request.session.modified = False
    settings.SESSION_SAVE_EVERY_REQUEST = True
    assert _session_will_save(request)

    class Messages:
        used = False
        added_new = False

    request._messages = Messages()
    assert not _messages_will_store(request)
    request._messages.added_new = True
    assert _messages_will_store(request)


def test_the_server_process_starts_with_its_long_lived_objects_out_of_the_collectors_reach():
    # chatdesk.asgi loads every view (the assistant and the openai SDK with them), then freezes
    # what is loaded: full garbage collections then walk only what requests create (they
    # paused a worker for 170-300 ms before, bench/streaming.py).
    import subprocess
    import sys

    from tests.test_deploy_settings import REPO, production_env

    code = (
        "import gc, sys; import chatdesk.asgi; "
        "print(gc.get_freeze_count(), 'openai' in sys.modules, 'chatdesk.web.api' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=production_env(), capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    frozen, sdk_loaded, views_loaded = shown.stdout.split()[-3:]
    assert int(frozen) > 100_000, frozen
    assert sdk_loaded == views_loaded == "True"
