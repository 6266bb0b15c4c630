"""The standalone voice page: call the assistant from the browser, with the call's transcript.

The call itself is static/voice.js talking to the WebSocket consumer (voice/PROTOCOL.md);
this view only renders the page. Without OPENAI_API_KEY the page still renders: the Call
button then explains why voice is off and points to the chat page.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET


@require_GET
def voice_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "voice.html",
        {
            "business_name": settings.BUSINESS_NAME,
            "business_phone": settings.BUSINESS_PHONE,
            "voice_enabled": bool(settings.OPENAI_API_KEY),
            # No text box on this page: "type instead" links to the chat, which the session
            # cookie ties to the same conversation.
            "voice_text_url": reverse("chat"),
        },
    )
