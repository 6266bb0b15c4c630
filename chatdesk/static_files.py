"""collectstatic's output served by the app itself, for a production server that serves no files.

uvicorn serves no static files, so under it `/static/...` was a 404 and the voice page's scripts
did not load (issue 13). In the production recipe nginx serves STATIC_ROOT at /static/ directly
(deploy/nginx/); this covers every other way of running the app (bare uvicorn, behind a load
balancer that only proxies) with WhiteNoise: its file table (built once from STATIC_ROOT at
start-up), content types, ETag/Last-Modified, ranges and cache headers.

WhiteNoise is a WSGI application and its Django middleware is sync-only: as a middleware it would
put every request, not just static ones, through a trip to Django's sync thread (chatdesk/handlers.py
exists to avoid those). So it sits in front of the ASGI application instead and sees only paths
under STATIC_URL; everything else goes straight through. A path it does not have is a plain 404.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from asgiref.wsgi import WsgiToAsgi
from django.conf import settings
from whitenoise import WhiteNoise

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def _not_found(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Not found."]


class StaticFiles:
    """An ASGI wrapper: STATIC_URL paths from STATIC_ROOT (WhiteNoise), the rest to `app`."""

    def __init__(self, app: ASGIApp, root: Path | str | None = None, url: str | None = None) -> None:
        self.app = app
        root = Path(root or settings.STATIC_ROOT)
        url = url or settings.STATIC_URL
        self.prefix = "/" + url.strip("/") + "/"
        whitenoise = WhiteNoise(_not_found)
        if root.is_dir():
            whitenoise.add_files(str(root), prefix=self.prefix)
        else:
            # Not an error: `make run` (daphne's runserver) serves static files itself. Said once,
            # so an operator whose pages have no scripts knows why.
            logger.info("No collected static files at %s: run `manage.py collectstatic` to serve them.", root)
        self.files = whitenoise.files
        self.static = WsgiToAsgi(whitenoise)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await self.static(scope, receive, send)
        else:
            await self.app(scope, receive, send)
