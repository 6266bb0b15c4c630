"""WebSocket routes (served by chatdesk.asgi behind the Origin check and the cookie/session stack)."""

from django.urls import path

from voice.consumers import VoiceCallConsumer

websocket_urlpatterns = [
    path("api/v1/chat/voice/call", VoiceCallConsumer.as_asgi(), name="voice-call"),
]
