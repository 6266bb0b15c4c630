"""What the admin's "Website widget" page shows: the snippet a business pastes, and where it may run.

The snippet's address is this server's own, as the staff member's browser reached it (behind a
TLS proxy, SECURE_PROXY_SSL_HEADER makes it https). The optional data- attributes are the ones
static/widget.js reads.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

# (attribute, example, what it does), as static/widget.js reads them.
OPTIONS = [
    ("data-color", "#0f4c81", "Launcher and panel colour (hex); text on it turns black or white to stay legible."),
    ("data-position", "left", "Launcher at the bottom left instead of the bottom right."),
    ("data-greeting", "Furnace trouble? Book here.", "A short line shown beside the launcher until it is opened."),
    ("data-title", "Book a technician", "The panel's title and the launcher's name (default: Chat with us)."),
]


def snippet_context(request: HttpRequest) -> dict:
    script_url = request.build_absolute_uri(reverse("widget-js"))
    return {
        "snippet": f'<script src="{script_url}" async></script>',
        "script_url": script_url,
        "allowed_origins": settings.WIDGET_ALLOWED_ORIGINS,
        "own_origin": f"{request.scheme}://{request.get_host()}",
        "options": OPTIONS,
    }
