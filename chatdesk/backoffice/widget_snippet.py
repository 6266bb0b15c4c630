"""What the admin's "Website widget" page shows: the snippet a business pastes, and where it may run.

The snippet's address is this server's own, as the staff member's browser reached it (behind a
TLS proxy, SECURE_PROXY_SSL_HEADER makes it https). The optional data- attributes are the ones
static/widget.js reads.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

# (option, example, what it does), as static/widget.js reads them from its <script> tag's dataset.
_OPTIONS = [
    ("color", "#0f4c81", "Launcher and panel colour (hex); text on it turns black or white to stay legible."),
    ("position", "left", "Launcher at the bottom left instead of the bottom right."),
    ("greeting", "Furnace trouble? Book here.", "A short line shown beside the launcher until it is opened."),
    ("title", "Book a technician", "The panel's title and the launcher's name (default: Chat with us)."),
]
# (in the snippet, on the plain tag, what it does): the same option written for either form.
OPTIONS = [
    (f"s.dataset.{name}={json.dumps(example)};", f'data-{name}="{example}"', help_text)
    for name, example, help_text in _OPTIONS
]


def deferred_snippet(script_url: str, options: dict[str, str] | None = None) -> str:
    """The line to paste: it fetches widget.js only once the host page has loaded.

    Browsers hold a page's load event until every async script has arrived, so the plain
    `<script src async>` tag makes a first visit's load event wait for widget.js (measured by
    bench/widget_load.py). Inserted after `load`, it adds nothing to it. Options go on the
    created element as `s.dataset.color="#0f4c81";`, which widget.js reads like data- attributes.
    If the page has already loaded (the line added later by a tag manager), it inserts at once.
    """
    # json.dumps makes each value a JavaScript string; "</" is escaped so none can end the <script>.
    dataset = "".join(f"s.dataset.{name}={json.dumps(value)};" for name, value in (options or {}).items())
    dataset = dataset.replace("</", "<\\/")
    return (
        '<script>(function(){function l(){var s=document.createElement("script");'
        f"s.src={json.dumps(script_url)};s.async=true;{dataset}document.body.appendChild(s)}}"
        'document.readyState=="complete"?l():addEventListener("load",l)})()</script>'
    )


def snippet_context(request: HttpRequest) -> dict:
    script_url = request.build_absolute_uri(reverse("widget-js"))
    return {
        "snippet": deferred_snippet(script_url),
        "plain_snippet": f'<script src="{script_url}" async></script>',
        "script_url": script_url,
        "allowed_origins": settings.WIDGET_ALLOWED_ORIGINS,
        "own_origin": f"{request.scheme}://{request.get_host()}",
        "options": OPTIONS,
    }
