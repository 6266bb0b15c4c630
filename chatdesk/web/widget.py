"""The website widget: `/widget.js` for the business's own site, and what its frame needs.

A business pastes `<script src="https://<chatdesk host>/widget.js" async></script>` into its
site. The script draws a launcher and, once opened, frames the chat page in its compact layout
(`/widget/`, chatdesk.web.views.widget_chat_page). Those framed pages differ from the others
in three ways, all applied by `widget_frame`:

- they may be framed, but only by WIDGET_ALLOWED_ORIGINS (and our own origin): CSP
  `frame-ancestors` says so, and X-Frame-Options is left off (it cannot name origins);
  every other page keeps `frame-ancestors 'none'` and X-Frame-Options: DENY;
- their CSRF cookie is partitioned (CHIPS): in the business's site the frame is third-party,
  and browsers drop ordinary third-party cookies, which would fail every CSRF check;
- the conversation cookie they set is partitioned too (session_cookie, `embedded=True`).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET

from chatdesk.conversations.session_cookie import partition_cookie
from chatdesk.conversations.widget_pages import NotAWidgetPage, host_page

# A changed widget.js reaches the business's visitors within this long.
SCRIPT_MAX_AGE_SECONDS = 3600


def own_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def frame_ancestors() -> list[str]:
    return ["'self'", *settings.WIDGET_ALLOWED_ORIGINS]


class _PartitionedCsrfCookie(CsrfViewMiddleware):
    """As Django's ensure_csrf_cookie, but the cookie it sends is partitioned."""

    def _reject(self, request: HttpRequest, reason: str) -> None:
        # CsrfViewMiddleware in MIDDLEWARE has already checked (and refused) the request.
        return None

    def process_view(self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any) -> Any:
        result = super().process_view(request, callback, callback_args, callback_kwargs)
        get_token(request)  # the page's forms and chat.js need the token: always send the cookie
        return result

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response = super().process_response(request, response)
        partition_cookie(response, settings.CSRF_COOKIE_NAME)
        return response


partitioned_csrf_cookie = decorator_from_middleware(_PartitionedCsrfCookie)


def widget_frame[V: Callable[..., Any]](view: V) -> V:
    """For the pages the widget frames: framable by the allowed origins only, partitioned CSRF cookie."""
    framed = xframe_options_exempt(partitioned_csrf_cookie(view))

    # The policy is read per request, so a test (or a settings reload) that changes the
    # allowed origins is obeyed; csp_override itself takes a fixed mapping.
    if _is_async(framed):

        @wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return await csp_override(_policy())(framed)(request, *args, **kwargs)

        return async_view  # type: ignore[return-value]

    @wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return csp_override(_policy())(framed)(request, *args, **kwargs)

    return sync_view  # type: ignore[return-value]


def _is_async(view: Callable[..., Any]) -> bool:
    from inspect import iscoroutinefunction

    return iscoroutinefunction(view)


def _policy() -> dict[str, list[str]]:
    return {**settings.SECURE_CSP, "frame-ancestors": frame_ancestors()}


def page_from(value: str, request: HttpRequest) -> str:
    """The host page the widget says it is on, checked (widget_pages.host_page), or "" when it is not usable."""
    try:
        return host_page(value, own_origin=own_origin(request)) if value else ""
    except NotAWidgetPage:
        return ""


@cache
def _script() -> tuple[bytes, bytes, str]:
    path = finders.find("widget.js")
    if not path:
        raise FileNotFoundError("static/widget.js is missing")
    body = Path(path).read_bytes()
    # mtime=0: the same bytes, and so the same ETag, from every process.
    return body, gzip.compress(body, compresslevel=9, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@require_GET
def widget_script(request: HttpRequest) -> HttpResponse:
    """`/widget.js`, served by the app: the snippet works behind any server (uvicorn serves no static files)."""
    if settings.DEBUG:
        _script.cache_clear()  # make run: edits show on reload
    body, compressed, etag = _script()
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(compressed, content_type="text/javascript; charset=utf-8")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE_SECONDS}"
    response["Vary"] = "Accept-Encoding"
    # Loaded by other sites' pages, including ones that isolate themselves (COEP require-corp).
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
