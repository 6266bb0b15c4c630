"""The client's IP address behind proxies: X-Forwarded-For counts only from TRUSTED_PROXIES.

The attack it stops: a client sending a new X-Forwarded-For with every request must not get a
new set of per-IP limits (issue 11 item 8: 25 of 25 new conversations against a limit of 20).
"""

from __future__ import annotations

import http.cookiejar
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from chatdesk.conversations.client_ip import client_ip, resolve_client_ip, scope_client_ip
from chatdesk.conversations.models import Conversation
from chatdesk.conversations.services import hash_ip
from tests.servers import free_port, subprocess_database_url, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        # Nobody trusted (the default): the header is ignored, whatever it says.
        ([], "127.0.0.1", ["203.0.113.9"], "127.0.0.1"),
        ([], "198.51.100.4", ["203.0.113.9, 10.0.0.1"], "198.51.100.4"),
        # A peer that is not a listed proxy: its header is ignored too.
        (["10.0.0.0/8"], "198.51.100.4", ["203.0.113.9"], "198.51.100.4"),
        # A trusted proxy: the address it saw (the right-most hop).
        (["127.0.0.1"], "127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        # What a client wrote ahead of the proxy's hop is not believed.
        (["127.0.0.1"], "127.0.0.1", ["1.2.3.4, 203.0.113.9"], "203.0.113.9"),
        # Two trusted proxies in a row (CIDR): skip both, stop at the first untrusted hop.
        (["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3"], "203.0.113.9"),
        # Repeated headers are one list, in order.
        (["127.0.0.1"], "127.0.0.1", ["6.6.6.6", "203.0.113.9"], "203.0.113.9"),
        # A trusted proxy with no header (a health check): the proxy itself.
        (["127.0.0.1"], "127.0.0.1", [], "127.0.0.1"),
        # Every hop trusted: the left-most one reached.
        (["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", ["10.0.0.7"], "10.0.0.7"),
        # A hop that is not an address ends the walk at the last trusted proxy.
        (["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", ["203.0.113.9, unknown, 10.0.0.7"], "10.0.0.7"),
        # Ports some proxies append, IPv6, and IPv4 seen through an IPv6 socket.
        (["127.0.0.1"], "127.0.0.1", ["203.0.113.9:5123"], "203.0.113.9"),
        (["::1"], "::1", ["[2001:db8::7]:443"], "2001:db8::7"),
        (["127.0.0.1"], "::ffff:127.0.0.1", ["2001:db8::7"], "2001:db8::7"),
        # No peer at all (a Unix socket): nothing to key on.
        (["127.0.0.1"], "", ["203.0.113.9"], ""),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(settings, trusted, peer, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    assert resolve_client_ip(peer, forwarded) == expected


def test_http_requests_and_websocket_scopes_read_the_same_headers(settings, rf):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert client_ip(request) == "203.0.113.9"
    scope = {"client": ("127.0.0.1", 50123), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")]}
    assert scope_client_ip(scope) == "203.0.113.9"
    assert scope_client_ip({"client": ("198.51.100.4", 1), "headers": scope["headers"]}) == "198.51.100.4"
    assert scope_client_ip({"client": None, "headers": []}) == ""


def test_a_bad_trusted_proxy_stops_startup_with_a_clear_message():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "TRUSTED_PROXIES": "10.0.0.0/8, nginx"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "TRUSTED_PROXIES: 'nginx' is not an IP address or network." in done.stderr


def new_conversation(client: Client, forwarded: str) -> int:
    return client.post("/api/v1/chat/session/new", HTTP_X_FORWARDED_FOR=forwarded).status_code


def test_rotating_x_forwarded_for_from_an_untrusted_client_does_not_reset_the_limit(db, settings):
    settings.CHAT_RATE_SESSION_PER_IP = "3/h"
    client = Client(REMOTE_ADDR="198.51.100.7")
    statuses = [new_conversation(client, f"203.0.113.{n}") for n in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert set(Conversation.objects.values_list("client_ip_hash", flat=True)) == {hash_ip("198.51.100.7")}


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(db, settings):
    settings.CHAT_RATE_SESSION_PER_IP = "2/h"
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    assert [new_conversation(proxy, "203.0.113.1") for _ in range(3)] == [201, 201, 429]
    # Another client behind the same proxy is not limited by the first one's conversations,
    # and what a client prepends to the header does not make it someone else.
    assert new_conversation(proxy, "203.0.113.2") == 201
    assert new_conversation(proxy, "9.9.9.9, 203.0.113.1") == 429
    hashes = list(Conversation.objects.order_by("pk").values_list("client_ip_hash", flat=True))
    assert hashes == [hash_ip("203.0.113.1")] * 2 + [hash_ip("203.0.113.2")]


@pytest.mark.django_db(transaction=True)  # the page's turn writes from a worker thread's connection
def test_the_page_without_javascript_uses_the_same_address(business, settings):
    settings.CHAT_RATE_SESSION_PER_IP = "2/h"
    statuses = []
    for n in range(3):
        # A new browser each time (no session cookie): every post starts a conversation.
        response = Client(REMOTE_ADDR="198.51.100.7").post(
            "/send", {"message": "menu"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        )
        statuses.append(response.status_code)
    assert statuses == [302, 302, 429]
    settings.TRUSTED_PROXIES = ["198.51.100.7"]
    response = Client(REMOTE_ADDR="198.51.100.7").post("/send", {"message": "menu"}, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 302
    assert Conversation.objects.order_by("pk").last().client_ip_hash == hash_ip("203.0.113.9")


def start_uvicorn(port: int, trusted: str) -> subprocess.Popen:
    """The README's production command: uvicorn with its own proxy-header handling off."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": subprocess_database_url(),
        "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdefghijklmnop",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CHAT_RATE_SESSION_PER_IP": "3/h",
        "TRUSTED_PROXIES": trusted,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    binary = str(Path(sys.executable).parent / "uvicorn")
    command = [binary, "--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers", "--lifespan", "off"]
    return subprocess.Popen([*command, "chatdesk.asgi:application"], cwd=ROOT, env=env, stderr=subprocess.PIPE)


def post_new(port: int, forwarded: str) -> int:
    # The API is CSRF-checked for anonymous customers: take the cookie and token from the page.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"http://127.0.0.1:{port}/", timeout=10).read()
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/chat/session/new",
        data=b"{}",
        method="POST",
        headers={
            "X-CSRFToken": token,
            "Content-Type": "application/json",
            "Origin": f"http://127.0.0.1:{port}",
            "X-Forwarded-For": forwarded,
        },
    )
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("trusted", "expected"),
    [("", [201, 201, 201, 429, 429]), ("127.0.0.1", [201] * 5)],
    ids=["no-trusted-proxy", "loopback-proxy-trusted"],
)
def test_a_real_uvicorn_with_proxy_headers_off_counts_the_peer_unless_it_is_trusted(trusted, expected):
    port = free_port()
    process = start_uvicorn(port, trusted)
    try:
        wait_for_port(port, process)
        # One local client rotating X-Forwarded-For, as in the probe that defeated the limit. Without
        # --no-proxy-headers uvicorn itself rewrites the peer from the header and this gets 5 x 201.
        assert [post_new(port, f"203.0.113.{n}") for n in range(5)] == expected
    finally:
        process.terminate()
        process.wait(timeout=15)
