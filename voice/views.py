"""The standalone voice page: call the assistant from the browser, with the call's transcript.

The call itself is static/voice.js talking to the WebSocket consumer (voice/PROTOCOL.md);
this view only renders the page. Without OPENAI_API_KEY the page still renders: the Call
button then explains why voice is off and points to the chat page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.signing import BadSignature
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from chatdesk.api import SESSION_COOKIE
from chatdesk.models import Interaction


def _open_session(request: HttpRequest) -> str:
    """The customer's open chat conversation (signed cookie), or "": the call continues it."""
    try:
        session_id = request.get_signed_cookie(SESSION_COOKIE, salt="chat-session", default="")
    except BadSignature:
        return ""
    if session_id and Interaction.objects.filter(session_id=session_id, status=Interaction.Status.OPEN).exists():
        return session_id
    return ""


@require_GET
@ensure_csrf_cookie  # voice.js starts a conversation through the chat API (CSRF-checked) before calling
def voice_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "voice.html",
        {
            "business_name": settings.BUSINESS_NAME,
            "business_phone": settings.BUSINESS_PHONE,
            "voice_enabled": bool(settings.OPENAI_API_KEY),
            "voice_session": _open_session(request),
            # No text box on this page: "type instead" opens the chat, which the session cookie
            # ties to the same conversation.
            "voice_text_url": reverse("chat"),
        },
    )
