"""ASGI entry point: HTTP through Django, WebSockets (voice calls) through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatdesk.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

import voice.routing  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The Origin check refuses cross-site pages during the handshake (a page on another
        # site must not open a call with the customer's cookie); AuthMiddlewareStack parses the
        # cookies, which carry the signed chat session a call continues.
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(voice.routing.websocket_urlpatterns))),
    }
)
