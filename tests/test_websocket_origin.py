"""The WebSocket Origin check compares scheme, host and port (issue 11 item 11).

Driven through the ASGI validator with a consumer that accepts everything, then once through the
real application, for both socket families (voice calls and live updates).
"""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from chatdesk.asgi import application
from chatdesk.websocket_origin import SameOriginValidator

HOST = b"127.0.0.1:8000"


async def accept_everything(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def handshake(headers: list[tuple[bytes, bytes]], scheme: str = "ws", app=None) -> bool:
    communicator = WebsocketCommunicator(app or SameOriginValidator(accept_everything), "/socket", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


def page(origin: bytes, host: bytes = HOST) -> list[tuple[bytes, bytes]]:
    return [(b"origin", origin), (b"host", host)]


@pytest.mark.parametrize(
    ("headers", "scheme", "allowed"),
    [
        (page(b"http://127.0.0.1:8000"), "ws", True),
        # The probe's two: another port on the same host, and the same host over https.
        (page(b"http://127.0.0.1:9999"), "ws", False),
        (page(b"https://127.0.0.1"), "ws", False),
        (page(b"https://127.0.0.1:8000"), "ws", False),
        # A TLS page opens wss: its origin is https, and http is not it.
        (page(b"https://127.0.0.1:8000"), "wss", True),
        (page(b"http://127.0.0.1:8000"), "wss", False),
        # The default port, written or not, is the same origin.
        (page(b"http://localhost", b"localhost:80"), "ws", True),
        (page(b"https://localhost:443", b"localhost"), "wss", True),
        (page(b"http://LOCALHOST:8000", b"localhost:8000"), "ws", True),
        (page(b"http://[::1]:8000", b"[::1]:8000"), "ws", False),  # not in ALLOWED_HOSTS
        # No Origin, a null one, two of them, or not an http(s) origin.
        ([(b"host", HOST)], "ws", False),
        (page(b"null"), "ws", False),
        ([(b"origin", b"http://127.0.0.1:8000"), *page(b"http://127.0.0.1:8000")], "ws", False),
        (page(b"ftp://127.0.0.1:8000"), "ws", False),
        (page(b"http://127.0.0.1:99999"), "ws", False),
        (page(b"http://[::1"), "ws", False),
        # DNS rebinding: a foreign name pointed at this server is its own "same origin", but its
        # Host is not one ALLOWED_HOSTS serves.
        (page(b"http://evil.example:8000", b"evil.example:8000"), "ws", False),
        ([(b"origin", b"http://127.0.0.1:8000")], "ws", False),  # no Host at all
    ],
)
async def test_only_this_sites_own_origin_may_open_a_socket(settings, headers, scheme, allowed):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    assert await handshake(headers, scheme) is allowed


async def test_behind_a_tls_proxy_its_header_makes_the_origin_https(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    tls_page = page(b"https://chat.example.com", b"chat.example.com")
    assert await handshake([*tls_page, (b"x-forwarded-proto", b"https")])
    assert not await handshake(tls_page)  # the proxy did not say so: plain ws, origin http
    plain_page = page(b"http://chat.example.com", b"chat.example.com")
    assert not await handshake([*plain_page, (b"x-forwarded-proto", b"https")])
    assert not await handshake([*tls_page, (b"x-forwarded-proto", b"http")], scheme="wss")


async def test_csrf_trusted_origins_are_allowed_with_their_scheme_and_port(settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://www.example.com", "https://*.shops.example.com:8443"]
    host = b"api.example.com"
    assert await handshake(page(b"https://www.example.com", host))
    assert not await handshake(page(b"http://www.example.com", host))
    assert not await handshake(page(b"https://www.example.com:8443", host))
    assert await handshake(page(b"https://north.shops.example.com:8443", host))
    assert await handshake(page(b"https://shops.example.com:8443", host))
    assert not await handshake(page(b"https://north.shops.example.com", host))
    assert not await handshake(page(b"https://evilshops.example.com:8443", host))
    assert not await handshake(page(b"https://www.example.com", b"www.example.com"))  # Host not served


@pytest.mark.parametrize("path", ["/api/v1/chat/voice/call", "/api/v1/chat/live", "/api/v1/staff/live"])
@pytest.mark.parametrize("origin", [b"http://testserver:9999", b"https://testserver"])
async def test_the_application_refuses_another_port_or_scheme_on_every_socket(origin, path):
    communicator = WebsocketCommunicator(application, path, headers=page(origin, b"testserver"))
    connected, _ = await communicator.connect()
    assert not connected  # refused during the handshake: the browser sees HTTP 403
    await communicator.disconnect()
