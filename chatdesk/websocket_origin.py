"""The Origin check on every WebSocket handshake (voice calls, live updates), before any consumer runs.

Browsers send cookies with a cross-site WebSocket handshake, and no CORS rule stops a page on
another origin from opening one: the Origin header is the only defence (issue 11 item 11).
Channels' AllowedHostsOriginValidator compared the host only, so `http://127.0.0.1:9999` (any
other program on the machine) and `https://127.0.0.1` passed as this site.

The rule is the one Django's CSRF middleware applies to an unsafe HTTP request, so one
configuration covers both: the Origin must be this request's own origin (scheme, host and port,
where the Host header passes ALLOWED_HOSTS and the scheme is https for wss or behind
SECURE_PROXY_SSL_HEADER), or one listed in CSRF_TRUSTED_ORIGINS (`https://*.example.com` for
subdomains). The Host check matters on its own: without it a DNS-rebinding page whose name
points at this server would be its own "same origin". A missing Origin is refused (every
browser sends one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, or None when it is not one."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _own_scheme(scope: Mapping[str, Any], headers: dict[bytes, str]) -> str:
    # As HttpRequest.scheme: a TLS-terminating proxy's header decides when it is configured and sent.
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        value = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower().encode())
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") == "wss" else "http"


def _own_host(headers: dict[bytes, str]) -> tuple[str, str] | None:
    """The Host header's (domain, port) when ALLOWED_HOSTS serves it, else None (as HttpRequest.get_host)."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, port = split_domain_port(headers.get(b"host", ""))
    if not domain or not validate_host(domain, allowed):
        return None
    return domain.strip("[]"), port  # an IPv6 Host is bracketed, an origin's hostname is not


def _trusted(origin: tuple[str, str, int]) -> bool:
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        wildcard = "://*." in entry
        trusted = _origin(entry.replace("://*.", "://", 1) if wildcard else entry)
        if trusted is None or (trusted[0], trusted[2]) != (scheme, port):
            continue
        if host == trusted[1] or (wildcard and is_same_domain(host, "." + trusted[1])):
            return True
    return False


def origin_allowed(scope: Mapping[str, Any]) -> bool:
    """Whether a WebSocket handshake comes from a page of this site (see the module's docstring)."""
    headers: dict[bytes, str] = {}
    origins = []
    for name, value in scope.get("headers") or ():
        name = name.lower()
        if name == b"origin":
            origins.append(value.decode("latin-1"))
        headers[name] = value.decode("latin-1")
    if len(origins) != 1:
        return False
    origin = _origin(origins[0])
    own_host = _own_host(headers)
    if origin is None or own_host is None:
        return False
    scheme = _own_scheme(scope, headers)
    domain, port = own_host
    if origin == (scheme, domain, int(port) if port.isdigit() else DEFAULT_PORTS[scheme]):
        return True
    return _trusted(origin)


class SameOriginValidator:
    """ASGI middleware for the WebSocket router: refuses the handshake (HTTP 403) from any other origin."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            # Closing before accepting is how ASGI refuses a handshake; no consumer (and no
            # channel layer) is involved.
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close"})
            return
        await self.application(scope, receive, send)
