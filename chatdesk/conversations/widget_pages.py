"""Which sites may show the chat widget, and the host page a widget conversation records.

One rule for every door the widget uses (its page, the chat API, a voice call): a host page
counts only when it is an http(s) page of an origin in WIDGET_ALLOWED_ORIGINS, or of our own
origin (the admin's preview). The page is what the visitor's browser says, so it is checked
and trimmed, never trusted: scheme, host and path are kept, the query string and fragment
dropped (they may carry the visitor's own data, an email address in a sign-up link).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

MAX_PAGE_CHARS = 500
DEFAULT_PORTS = {"http": 80, "https": 443}


class NotAWidgetPage(ValueError):
    """The page is not an http(s) URL of a site allowed to show the widget."""


def origin_allowed(origin: str) -> bool:
    """Whether `origin` (scheme://host[:port]) is one of WIDGET_ALLOWED_ORIGINS (`*.` for subdomains)."""
    origin = origin.lower()
    for allowed in settings.WIDGET_ALLOWED_ORIGINS:
        if allowed == origin:
            return True
        scheme, _, rest = allowed.partition("://")
        if rest.startswith("*."):
            # https://*.example.com: any subdomain of example.com, on the same scheme and port.
            prefix, suffix = f"{scheme}://", rest[1:]
            if origin.startswith(prefix) and origin.endswith(suffix) and len(origin) > len(prefix) + len(suffix):
                return "/" not in origin[len(prefix) : -len(suffix)]
    return False


def _origin_of(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def host_page(url: str, *, own_origin: str) -> str:
    """The page a widget was opened on, as recorded: `https://www.example.com/services/furnace`.

    Raises NotAWidgetPage when it is not an http(s) URL of an allowed origin or of `own_origin`.
    """
    if not isinstance(url, str) or len(url) > 2000 or "\x00" in url:
        raise NotAWidgetPage("The widget page must be a web address.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise NotAWidgetPage("The widget page must be a web address.") from error
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise NotAWidgetPage("The widget page must be an http or https address.")
    origin = _origin_of(parts.scheme, parts.hostname.lower(), port)
    if origin != own_origin.lower() and not origin_allowed(origin):
        raise NotAWidgetPage(f"{origin} is not a site allowed to show the chat widget (WIDGET_ALLOWED_ORIGINS).")
    # Rebuilt from the checked origin: no user:password@, no default port.
    return (origin + (parts.path or "/"))[:MAX_PAGE_CHARS]
