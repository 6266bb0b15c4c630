"""The standalone voice page: call the assistant from the browser, with the call's transcript.

The call itself is static/voice.js talking to the WebSocket consumer (voice/PROTOCOL.md);
this view only renders the page. Without OPENAI_API_KEY the page still renders: the Call
button then explains why voice is off and points to the chat page.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from bookings.api_base import SchemaFor
from bookings.errors import json_error
from bookings.serializers import ErrorOut, Text
from chatdesk.assistant import openai_client
from chatdesk.conversations.selectors import open_conversation_for
from chatdesk.conversations.session_cookie import session_id_from_request, set_session_cookie


def _open_session(request: HttpRequest) -> str:
    """The customer's open chat conversation (signed cookie), or "": the call continues it."""
    session_id = session_id_from_request(request)
    if open_conversation_for(session_id).exists():
        return session_id
    return ""


@require_GET
@ensure_csrf_cookie  # voice.js posts to call_session (CSRF-checked) once a call has started
def voice_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "voice.html",
        {
            "business_name": settings.BUSINESS_NAME,
            "business_phone": settings.BUSINESS_PHONE,
            "voice_enabled": openai_client.is_configured(),
            "voice_session": _open_session(request),
            # No text box on this page: "type instead" opens the chat, which the session cookie
            # ties to the same conversation.
            "voice_text_url": reverse("chat"),
        },
    )


class CallSessionIn(serializers.Serializer):
    session_id = Text(max_length=64, help_text="The session id the call's `ready` message gave.")


class CallSessionOut(serializers.Serializer):
    session_id = serializers.CharField(help_text="The same session id, now also in the signed session cookie.")


@require_POST
def call_session(request: HttpRequest) -> JsonResponse:
    """Tie the browser to the conversation a call started: set its signed session cookie.

    A call that finds no conversation to continue starts a voice one, but a WebSocket cannot
    set a cookie; voice.js posts the session id from `ready` here, so typing after the call and
    reloading the page continue that conversation. The session id is the bearer secret of its
    conversation; only an open conversation with a call in it is accepted. CSRF-checked.
    """
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return json_error("bad_request", "The body must be JSON.", 400)
    # The schema's rules (CallSessionIn): a string, not blank, no NUL (which PostgreSQL refuses), 64 at most.
    data = CallSessionIn(data=body if isinstance(body, dict) else {})
    if not data.is_valid():
        message = "session_id (the id the call's ready message gave) is required."
        return json_error("bad_request", message, 400, fields=data.errors)
    session_id = data.validated_data["session_id"]
    conversation = open_conversation_for(session_id).filter(has_call=True).only("from_widget").first()
    if conversation is None:
        return json_error("session_not_found", "No open conversation with a call has that session id.", 404)
    response = JsonResponse({"session_id": session_id})
    # A call placed in the website widget: the cookie is a partitioned one, as the widget's chat sets.
    set_session_cookie(response, session_id, embedded=conversation.from_widget)
    return response


class CallSessionAPI(SchemaFor):
    """Schema for `call_session` (a plain Django view); `as_view()` returns it."""

    routed = staticmethod(call_session)

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    @extend_schema(
        request=CallSessionIn,
        responses={
            200: CallSessionOut,
            400: OpenApiResponse(ErrorOut, description="bad_request: not JSON, or no session_id."),
            403: OpenApiResponse(ErrorOut, description="csrf_failed: the CSRF token is missing."),
            404: OpenApiResponse(ErrorOut, description="session_not_found: no open conversation with a call has it."),
        },
        summary="Tie the browser to a call's conversation",
        description="After a call's `ready` (voice WebSocket, below), sets the session cookie so typing after the "
        "call continues the same conversation. CSRF-checked.",
        tags=["chat"],
    )
    def post(self, request: Request) -> Response:  # pragma: no cover - never routed
        raise NotImplementedError
