"""The client's IP address, the one definition every door uses (chat API, chat page, voice, login).

Per-IP limits (new conversations, messages, calls, failed lookups, admin logins) are only as
good as this address. `X-Forwarded-For` is a header anyone can send, so it counts only when
the peer that sent the request is a proxy the operator listed in settings.TRUSTED_PROXIES
(IPs or CIDRs, empty by default). Then the client is the right-most address in that header
which is not itself a trusted proxy: each proxy appends the address it saw, so everything to
the left of the first untrusted hop was written by the client and may be forged.

The server must hand us the real peer: uvicorn rewrites it from `X-Forwarded-For` for
127.0.0.1 by default, so production runs it with `--no-proxy-headers` (README).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_networks() -> tuple[IPNetwork, ...]:
    """settings.TRUSTED_PROXIES parsed (cached per value, so tests may change the setting)."""
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _parse(value: str) -> IPAddress | None:
    """An address as a peer or a proxy writes it, or None when it is not one.

    Some proxies append the port ("203.0.113.7:5123", "[2001:db8::1]:443"); an IPv4 client
    seen through an IPv6 socket arrives as ::ffff:a.b.c.d and is counted as the IPv4 address.
    """
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def is_trusted_proxy(peer: str) -> bool:
    """Whether the connection's peer is one of settings.TRUSTED_PROXIES (so its headers count)."""
    address = _parse(peer)
    return address is not None and _is_trusted(address, trusted_networks())


def resolve_client_ip(peer: str, forwarded_for: Iterable[str] = ()) -> str:
    """The client's address, given the connection's peer and its X-Forwarded-For header values.

    "" when the peer is unknown. A hop that is not an address (a proxy's "unknown", garbage a
    client sent ahead of it) ends the walk at the last trusted proxy: everyone behind such a
    proxy then shares its limits, which is safer than trusting what that hop said.
    """
    address = _parse(peer)
    if address is None:
        return ""
    networks = trusted_networks()
    if not networks or not _is_trusted(address, networks):
        return str(address)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        hop_address = _parse(hop)
        if hop_address is None:
            break
        address = hop_address
        if not _is_trusted(hop_address, networks):
            break
    return str(address)


def client_ip(request: HttpRequest) -> str:
    """The client's address for an HTTP request (Django joins repeated X-Forwarded-For headers)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return resolve_client_ip(request.META.get("REMOTE_ADDR", ""), [forwarded] if forwarded else [])


def scope_client_ip(scope: Mapping[str, Any]) -> str:
    """The client's address for an ASGI scope (a WebSocket): its `client` and its headers."""
    client = scope.get("client") or ("", 0)
    forwarded = [
        value.decode("latin-1") for name, value in scope.get("headers") or () if name.lower() == b"x-forwarded-for"
    ]
    return resolve_client_ip(client[0] or "", forwarded)
