"""ASGI entry point: HTTP through Django, WebSockets through Channels, and the lifespan.

WebSockets: the voice call relay (voice.routing) and the live updates for customers and
staff (chatdesk.web.routing). The Origin (scheme, host and port) is checked before any consumer
runs (chatdesk.websocket_origin); the auth stack gives consumers the cookies and the staff user.
Static files (collectstatic's output) are answered in front of both (chatdesk.static_files).
The lifespan (uvicorn's startup and shutdown) installs the drain on SIGTERM (chatdesk.drain).
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatdesk.settings")

from chatdesk.handlers import get_asgi_application

# Django must be set up before anything imports models. Our handler is Django's, with the
# standard middleware's hooks run on the event loop (see chatdesk/handlers.py).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from chatdesk.drain import lifespan  # noqa: E402
from chatdesk.request_ids import RequestIdMiddleware  # noqa: E402
from chatdesk.static_files import StaticFiles  # noqa: E402
from chatdesk.web.routing import websocket_urlpatterns as live_routes  # noqa: E402
from chatdesk.websocket_origin import SameOriginValidator  # noqa: E402
from voice.routing import websocket_urlpatterns as voice_routes  # noqa: E402

# collectstatic's output under /static/ for servers that serve no files (chatdesk/static_files.py);
# every other request goes straight to Django or Channels, with a request id for its log lines
# (HTTP responses echo it in X-Request-ID; chatdesk/request_ids.py).
application = StaticFiles(
    RequestIdMiddleware(
        ProtocolTypeRouter(
            {
                "http": django_asgi_app,
                "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter([*voice_routes, *live_routes]))),
                "lifespan": lifespan,
            }
        )
    )
)

# Load now what the first request would (the URL patterns import every view, and with them the
# assistant and the openai SDK), then put it all out of the garbage collector's reach. Modules,
# classes and Django's registries live as long as the process, yet every full collection walked
# them all: pauses of 170-300 ms in a worker relaying 100 streamed replies, every reply on the
# worker stalled for as long (bench/streaming.py). Frozen, a full collection walks only what
# requests created. (gc.freeze is the standard library's own recipe for long-lived objects.)
get_resolver().url_patterns  # noqa: B018 (loading it is the point)
gc.collect()
gc.freeze()
