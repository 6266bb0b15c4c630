"""Chat API (paths as the predecessor's): thin views over chatdesk.assistant.turns (a turn)
and chatdesk.conversations.services (the record).

The message endpoint is a plain async Django view because a turn waits seconds on the
model and DRF views are synchronous (under ASGI they would all share one thread). It
still validates with DRF serializers and is documented in the OpenAPI schema through
`ChatMessageAPI`, whose `as_view()` hands out the async view.
"""

from __future__ import annotations

import json

from django.core.validators import RegexValidator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings import identifiers
from bookings.errors import DomainError, json_error
from bookings.serializers import ErrorOut
from chatdesk.assistant import turns
from chatdesk.assistant.rate_limits import new_conversation_wait
from chatdesk.conversations import booking_cards, services
from chatdesk.conversations.client_ip import client_ip
from chatdesk.conversations.limits import message_length_check
from chatdesk.conversations.models import Interaction
from chatdesk.conversations.session_cookie import set_session_cookie

MAX_BODY_BYTES = 16 * 1024


class CsrfEnforced(SessionAuthentication):
    """Session auth that checks CSRF for anonymous customers too.

    DRF only checks CSRF for logged-in users; our customers are anonymous and the page
    calls these endpoints with the session cookie, so every unsafe request is checked.
    """

    def authenticate(self, request: Request):  # type: ignore[override]
        self.enforce_csrf(request)
        return super().authenticate(request)


class SessionOut(serializers.Serializer):
    session_id = serializers.CharField()
    interaction_number = serializers.CharField()
    greeting = serializers.CharField()
    mode = serializers.ChoiceField(choices=Interaction.Mode.choices)


MESSAGE_ID_HELP = (
    "The client's id for this message (a UUID is fine; letters, digits, - and _, at most 64). "
    "Send it again when retrying: the message is stored once, and a retry gets the first answer "
    "(409 turn_in_progress, with Retry-After, while that is still being worked out). "
    "The Idempotency-Key header does the same."
)


class MessageIn(serializers.Serializer):
    session_id = serializers.CharField(max_length=64)
    message = serializers.CharField(trim_whitespace=True, allow_blank=False)
    message_id = serializers.CharField(
        required=False,
        max_length=64,
        validators=[RegexValidator(f"^{identifiers.PATTERN}$", "Letters, digits, - and _ only.")],
        help_text=MESSAGE_ID_HELP,
    )


class ToolCallOut(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)


class BookingCardOut(serializers.Serializer):
    """A booking as its card shows it: chatdesk.conversations.booking_cards.booking_card()."""

    booking_number = serializers.CharField()
    status = serializers.CharField()
    state = serializers.ChoiceField(choices=booking_cards.CardState.ALL, help_text="What the card says, as of now.")
    headline = serializers.CharField(help_text='The card\'s heading, e.g. "Booking cancelled".')
    note = serializers.CharField()
    service = serializers.CharField()
    technician = serializers.CharField()
    date = serializers.DateField()
    weekday = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    when = serializers.CharField()
    previous_when = serializers.CharField(allow_null=True, help_text="For a moved booking, when it was before.")
    address = serializers.CharField()
    estimated_price = serializers.CharField()
    customer_name = serializers.CharField()


class MessageOut(serializers.Serializer):
    interaction_number = serializers.CharField()
    reply = serializers.CharField()
    mode = serializers.CharField()
    tool_calls = ToolCallOut(many=True)
    bookings = BookingCardOut(
        many=True,
        help_text="The bookings this turn created, looked up, moved or cancelled, as they stand after it. "
        "Show each once: a booking already on the page has its card updated where it is.",
    )
    latency_ms = serializers.IntegerField()
    paused = serializers.BooleanField(help_text="True while a staff member has taken over: no assistant reply.")


class HistoryMessageOut(serializers.Serializer):
    role = serializers.CharField()
    text = serializers.CharField()
    at = serializers.DateTimeField()
    bookings = BookingCardOut(many=True, help_text="Cards shown right after this message (its turn's bookings).")


class HistoryOut(serializers.Serializer):
    interaction_number = serializers.CharField()
    status = serializers.CharField()
    mode = serializers.CharField()
    messages = HistoryMessageOut(many=True)
    bookings = BookingCardOut(many=True, help_text="Every booking of the conversation once, in transcript order.")


class CloseIn(serializers.Serializer):
    resolution = serializers.ChoiceField(choices=Interaction.Resolution.choices, required=False, allow_blank=True)


class ChatAPIView(APIView):
    authentication_classes = [CsrfEnforced]
    permission_classes = [AllowAny]


class SessionNewAPI(ChatAPIView):
    @extend_schema(request=None, responses={201: SessionOut, 429: ErrorOut}, summary="Start a conversation")
    def post(self, request: Request) -> Response:
        wait = new_conversation_wait(ip=client_ip(request))
        if wait:
            raise Throttled(wait=wait)
        interaction = turns.interaction_start(ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""))
        response = Response(
            {
                "session_id": interaction.session_id,
                "interaction_number": interaction.number,
                "greeting": interaction.messages.first().text,
                "mode": interaction.mode,
            },
            status=201,
        )
        set_session_cookie(response, interaction.session_id)
        return response


class HistoryAPI(ChatAPIView):
    @extend_schema(responses={200: HistoryOut, 404: ErrorOut}, summary="A conversation's transcript")
    def get(self, request: Request, session_id: str) -> Response:
        interaction = services.interaction_by_session(session_id)
        messages = services.history(interaction)
        return Response(
            {
                "interaction_number": interaction.number,
                "status": interaction.status,
                "mode": interaction.mode,
                "messages": messages,
                "bookings": services.booking_summaries(interaction, messages),
            }
        )


class CloseAPI(ChatAPIView):
    @extend_schema(request=CloseIn, responses={200: HistoryOut, 404: ErrorOut, 409: ErrorOut}, summary="End it")
    def post(self, request: Request, session_id: str) -> Response:
        data = CloseIn(data=request.data)
        data.is_valid(raise_exception=True)
        interaction = services.interaction_close(
            session_id=session_id, resolution=data.validated_data.get("resolution", "")
        )
        return Response({"interaction_number": interaction.number, "status": interaction.status})


@require_POST
async def chat_message(request: HttpRequest) -> JsonResponse:
    if int(request.headers.get("Content-Length") or 0) > MAX_BODY_BYTES:
        return json_error("too_large", "The request is too large.", 413)
    # Before the body is read: a form or multipart body was already parsed by the CSRF check,
    # and reading it again as bytes would raise.
    if request.content_type != "application/json":
        return json_error("unsupported_media_type", "Send the body as application/json.", 415)
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return json_error("invalid_json", "The body must be JSON.", 400)
    body = body if isinstance(body, dict) else {}
    header_id = request.headers.get("Idempotency-Key")
    if header_id is not None:
        if "message_id" in body and body["message_id"] != header_id:
            return json_error(
                "invalid_input",
                "Some fields are not valid.",
                400,
                fields={"message_id": ["Differs from Idempotency-Key."]},
            )
        body = {**body, "message_id": header_id}
    data = MessageIn(data=body)
    if not data.is_valid():
        return json_error("invalid_input", "Some fields are not valid.", 400, fields=data.errors)
    session_id, text = data.validated_data["session_id"], data.validated_data["message"]
    try:
        message_length_check(text)
        result = await turns.chat_turn(
            session_id=session_id,
            text=text,
            client_ip=client_ip(request),
            message_id=data.validated_data.get("message_id"),
        )
    except turns.RateLimited as error:
        return json_error(error.code, error.message, 429, retry_after=error.retry_after)
    except turns.TurnInProgress as error:
        return json_error(error.code, error.message, 409, retry_after=error.retry_after)
    except DomainError as error:
        return JsonResponse(error.as_dict(), status=error.http_status)
    # Read again after the turn rather than taken from the tool results: a booking created
    # and cancelled in one turn is shown cancelled, and a moved one says it was moved.
    cards = await services.db(booking_cards.booking_cards, result.booking_ids) if result.booking_ids else []
    return JsonResponse(turn_payload(result, cards))


def turn_payload(result: turns.TurnResult, cards: list[dict]) -> dict:
    return {
        "interaction_number": result.interaction.number,
        "reply": result.reply,
        "mode": result.interaction.mode,
        "tool_calls": [o.summary() for o in result.outcomes],
        "bookings": cards,
        "latency_ms": result.latency_ms,
        "paused": result.paused,
    }


class ChatMessageAPI(APIView):
    """Schema for the async message endpoint; `as_view()` returns `chat_message`."""

    @extend_schema(
        request=MessageIn,
        responses={
            200: MessageOut,
            400: ErrorOut,
            403: ErrorOut,
            404: ErrorOut,
            409: ErrorOut,
            413: ErrorOut,
            415: ErrorOut,
            429: inline_serializer(
                "RateLimited", {"error": serializers.CharField(), "message": serializers.CharField()}
            ),
        },
        summary="Send a customer message and get the assistant's reply",
    )
    def post(self, request: Request) -> Response:  # pragma: no cover - never routed
        raise NotImplementedError

    @classmethod
    def as_view(cls, **initkwargs):  # type: ignore[override]
        view = chat_message
        view.cls = cls  # type: ignore[attr-defined]  # drf-spectacular finds the schema here
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        return view


class CsrfEnforcedScheme(SessionScheme):
    """Documents CsrfEnforced as the cookie session scheme in the OpenAPI schema."""

    target_class = CsrfEnforced
    name = "chatSession"
