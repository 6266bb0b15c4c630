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
from django.http import HttpRequest, JsonResponse, QueryDict
from django.views.decorators.http import require_POST
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from bookings import identifiers
from bookings.api_base import MethodFirstAPIView, SchemaFor
from bookings.errors import DomainError, json_error
from bookings.serializers import ErrorOut, Text
from chatdesk.assistant import turns
from chatdesk.assistant.rate_limits import new_conversation_wait, too_many_conversations
from chatdesk.conversations import booking_cards, services
from chatdesk.conversations.client_ip import client_ip
from chatdesk.conversations.limits import MessageText, message_length_check
from chatdesk.conversations.models import Conversation, number_fields
from chatdesk.conversations.session_cookie import set_session_cookie
from chatdesk.web.widget import page_from

MAX_BODY_BYTES = 16 * 1024


class HeaderTokenOnly:
    """The request as the CSRF check sees it: no form fields, so the token comes from X-CSRFToken.

    Django's check reads a POST's form fields for the token first. Through DRF's Request
    that parses the body, so a form body without a token was answered 415 (JSON only)
    before the 403 it deserves. These endpoints take JSON: the token is in the header.
    """

    POST = QueryDict()

    def __init__(self, request: Request) -> None:
        object.__setattr__(self, "_wrapped", request)

    def __getattr__(self, name: str) -> object:
        return getattr(self._wrapped, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._wrapped, name, value)


class CsrfEnforced(SessionAuthentication):
    """Session auth that checks CSRF for anonymous customers too.

    DRF only checks CSRF for logged-in users; our customers are anonymous and the page
    calls these endpoints with the session cookie, so every unsafe request is checked.
    """

    def authenticate(self, request: Request):  # type: ignore[override]
        self.enforce_csrf(HeaderTokenOnly(request))
        return super().authenticate(request)


TAG = "chat"
SESSION_ID = OpenApiParameter(
    "session_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern=f"^{identifiers.PATTERN}$",
    description="The conversation's session id, from `session/new`: the bearer secret of the conversation.",
)
OLD_NUMBER_HELP = "Deprecated: the same as conversation_number, kept for clients written before it."
MODE_HELP = "model: the OpenAI model answers; guided: the built-in guided flow does (no API key, or the model is off)."


class SessionNewIn(serializers.Serializer):
    widget_page = Text(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Only from the website widget (static/widget.js): the page of the business's site it is shown "
        "on. The conversation is recorded as coming from the widget, and its cookie is partitioned (CHIPS). The "
        "page is kept when it is an http(s) address of an origin in WIDGET_ALLOWED_ORIGINS (without its query "
        'string); anything else ("" included) is recorded as an unknown page, as the widget\'s other doors do.',
    )

    def validate_widget_page(self, value: str) -> str:
        # What the visitor's browser says, not what the customer typed: an unusable page is not a
        # reason to refuse the chat (the widget's page and a call from it ignore one the same way).
        return page_from(value, self.context["request"])


class SessionOut(serializers.Serializer):
    session_id = serializers.CharField(
        help_text="Send it with every message; keep it secret, it opens the conversation."
    )
    conversation_number = serializers.CharField(help_text="The conversation's number staff see, e.g. INT-2026-00042.")
    interaction_number = serializers.CharField(help_text=OLD_NUMBER_HELP)
    greeting = serializers.CharField(help_text="The assistant's first message, to show the customer.")
    mode = serializers.ChoiceField(choices=Conversation.Mode.choices, help_text=MODE_HELP)


MESSAGE_ID_HELP = (
    "The client's id for this message (a UUID is fine; letters, digits, - and _, at most 64). "
    "Send it again when retrying: the message is stored once, and a retry gets the first answer "
    "(409 turn_in_progress, with Retry-After, while that is still being worked out). "
    "The Idempotency-Key header does the same."
)


class MessageIn(serializers.Serializer):
    session_id = Text(max_length=64, help_text="The session id `session/new` returned.")
    message = MessageText(
        help_text="What the customer typed. Over CHAT_MAX_MESSAGE_CHARS (2000) characters: 413 message_too_long.",
    )
    message_id = Text(
        required=False,
        max_length=64,
        validators=[RegexValidator(f"^{identifiers.PATTERN}$", "Letters, digits, - and _ only.")],
        help_text=MESSAGE_ID_HELP,
    )


class ToolCallOut(serializers.Serializer):
    name = serializers.CharField(help_text="The tool the assistant called, e.g. find_slots or create_booking.")
    ok = serializers.BooleanField(help_text="Whether the call succeeded.")
    error = serializers.CharField(allow_null=True, help_text="The error code when it failed; null when ok.")


class BookingCardOut(serializers.Serializer):
    """A booking as its card shows it: chatdesk.conversations.booking_cards.booking_card()."""

    booking_number = serializers.CharField(help_text="The booking number, e.g. BK-2026-000123.")
    status = serializers.CharField(help_text="The booking's status: pending, confirmed, cancelled, completed, no_show.")
    state = serializers.ChoiceField(choices=booking_cards.CardState.ALL, help_text="What the card says, as of now.")
    headline = serializers.CharField(help_text='The card\'s heading, e.g. "Booking cancelled".')
    note = serializers.CharField(help_text="The card's closing sentence, written for the customer.")
    service = serializers.CharField(help_text="The service's name.")
    technician = serializers.CharField(help_text="The technician as customers see them: first name and last initial.")
    date = serializers.DateField(help_text="The visit's day, in the business time zone.")
    weekday = serializers.CharField(help_text="The visit's weekday, e.g. Monday.")
    start = serializers.DateTimeField(help_text="When the visit starts, with the business's offset.")
    end = serializers.DateTimeField(help_text="When the visit ends.")
    when = serializers.CharField(
        help_text='The visit\'s day and time in words, e.g. "Monday November 16, 2026 at 9:00 AM".'
    )
    previous_when = serializers.CharField(allow_null=True, help_text="For a moved booking, when it was before.")
    address = serializers.CharField(help_text="Where the visit is.")
    estimated_price = serializers.CharField(help_text='The price estimate, e.g. "200.00–600.00 CAD".')
    customer_name = serializers.CharField(help_text="The name the booking is under.")


class MessageOut(serializers.Serializer):
    conversation_number = serializers.CharField(help_text="The conversation's number, e.g. INT-2026-00042.")
    interaction_number = serializers.CharField(help_text=OLD_NUMBER_HELP)
    reply = serializers.CharField(help_text="The assistant's answer; empty while staff have taken over (`paused`).")
    mode = serializers.CharField(help_text=MODE_HELP)
    tool_calls = ToolCallOut(many=True, help_text="The tools the assistant called this turn, in order.")
    bookings = BookingCardOut(
        many=True,
        help_text="The bookings this turn created, looked up, moved or cancelled, as they stand after it. "
        "Show each once: a booking already on the page has its card updated where it is.",
    )
    latency_ms = serializers.IntegerField(help_text="How long the turn took on the server, in milliseconds.")
    paused = serializers.BooleanField(help_text="True while a staff member has taken over: no assistant reply.")


class HistoryMessageOut(serializers.Serializer):
    role = serializers.CharField(help_text="Who said it: customer, assistant or staff.")
    text = serializers.CharField(help_text="What was said.")
    at = serializers.DateTimeField(help_text="When.")
    bookings = BookingCardOut(many=True, help_text="Cards shown right after this message (its turn's bookings).")


class HistoryOut(serializers.Serializer):
    conversation_number = serializers.CharField(help_text="The conversation's number, e.g. INT-2026-00042.")
    interaction_number = serializers.CharField(help_text=OLD_NUMBER_HELP)
    status = serializers.CharField(help_text="open, closed or abandoned.")
    mode = serializers.CharField(help_text=MODE_HELP)
    messages = HistoryMessageOut(many=True, help_text="The transcript as the customer sees it, oldest first.")
    bookings = BookingCardOut(many=True, help_text="Every booking of the conversation once, in transcript order.")


class CloseIn(serializers.Serializer):
    resolution = serializers.ChoiceField(
        choices=Conversation.Resolution.choices,
        required=False,
        allow_blank=True,
        help_text="How it ended, if the page knows; left out or empty: booked when a booking was made, else answered.",
    )


class CloseOut(serializers.Serializer):
    conversation_number = serializers.CharField(help_text="The conversation's number, e.g. INT-2026-00042.")
    interaction_number = serializers.CharField(help_text=OLD_NUMBER_HELP)
    status = serializers.ChoiceField(choices=Conversation.Status.choices, help_text="closed, once it is.")


# The error answers the customer endpoints share (schema only).
CSRF_FAILED = OpenApiResponse(ErrorOut, description="The CSRF token (X-CSRFToken header, csrftoken cookie) is missing.")
NO_SESSION = OpenApiResponse(ErrorOut, description="session_not_found: no conversation has that session id.")
CLOSED = OpenApiResponse(ErrorOut, description="conversation_closed: the conversation is closed; start a new one.")
INVALID = OpenApiResponse(ErrorOut, description="invalid_input (`fields` says which), or parse_error: not JSON.")
MESSAGE_INVALID = OpenApiResponse(
    ErrorOut,
    description="invalid_input (`fields` says which; also when message_id and Idempotency-Key differ) or invalid_json.",
)
RATE_LIMITED = OpenApiResponse(ErrorOut, description="rate_limited: wait `Retry-After` seconds.")


class ChatAPIView(MethodFirstAPIView):
    authentication_classes = [CsrfEnforced]
    permission_classes = [AllowAny]
    # JSON only, as the schema says (static/chat.js sends JSON).
    parser_classes = [JSONParser]


class SessionNewAPI(ChatAPIView):
    @extend_schema(
        request=SessionNewIn,
        responses={201: SessionOut, 400: INVALID, 403: CSRF_FAILED, 429: RATE_LIMITED},
        summary="Start a conversation",
        description="Opens a conversation and sets the signed session cookie the live socket and the page use. "
        "New conversations are rate limited per client IP (CHAT_RATE_SESSION_PER_IP). The body is optional.",
        tags=[TAG],
    )
    def post(self, request: Request) -> Response:
        # The body is optional; only a JSON one is read (a bare POST, or an empty form, starts a plain chat).
        body = request.data if request.content_type.startswith("application/json") else {}
        data = SessionNewIn(data=body, context={"request": request})
        data.is_valid(raise_exception=True)
        widget_page = data.validated_data.get("widget_page")
        wait = new_conversation_wait(ip=client_ip(request))
        if wait:
            raise turns.RateLimited(wait, too_many_conversations(wait))
        conversation = turns.conversation_start(
            ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""), widget_page=widget_page
        )
        response = Response(
            {
                "session_id": conversation.session_id,
                **number_fields(conversation.number),
                "greeting": conversation.messages.first().text,
                "mode": conversation.mode,
            },
            status=201,
        )
        set_session_cookie(response, conversation.session_id, embedded=widget_page is not None)
        return response


class HistoryAPI(ChatAPIView):
    @extend_schema(
        parameters=[SESSION_ID],
        responses={200: HistoryOut, 404: NO_SESSION},
        summary="A conversation's transcript",
        description="What the customer sees, with booking cards in their current state: for a page reload.",
        tags=[TAG],
    )
    def get(self, request: Request, session_id: str) -> Response:
        conversation = services.conversation_by_session(session_id)
        messages = services.history(conversation)
        return Response(
            {
                **number_fields(conversation.number),
                "status": conversation.status,
                "mode": conversation.mode,
                "messages": messages,
                "bookings": services.booking_summaries(conversation, messages),
            }
        )


class CloseAPI(ChatAPIView):
    @extend_schema(
        parameters=[SESSION_ID],
        request=CloseIn,
        responses={200: CloseOut, 400: INVALID, 403: CSRF_FAILED, 404: NO_SESSION, 409: CLOSED},
        summary="End a conversation",
        description="The customer is done. Closing twice is a 409.",
        tags=[TAG],
    )
    def post(self, request: Request, session_id: str) -> Response:
        data = CloseIn(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_close(
            session_id=session_id, resolution=data.validated_data.get("resolution", "")
        )
        return Response({**number_fields(conversation.number), "status": conversation.status})


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
    except turns.ServerDraining as error:
        return json_error(error.code, error.message, 503, retry_after=error.retry_after)
    except DomainError as error:
        return JsonResponse(error.as_dict(), status=error.http_status)
    # Read again after the turn rather than taken from the tool results: a booking created
    # and cancelled in one turn is shown cancelled, and a moved one says it was moved.
    cards = await services.db(booking_cards.booking_cards, result.booking_ids) if result.booking_ids else []
    return JsonResponse(turn_payload(result, cards))


def turn_payload(result: turns.TurnResult, cards: list[dict]) -> dict:
    return {
        **number_fields(result.conversation.number),
        "reply": result.reply,
        "mode": result.conversation.mode,
        "tool_calls": [o.summary() for o in result.outcomes],
        "bookings": cards,
        "latency_ms": result.latency_ms,
        "paused": result.paused,
    }


class ChatMessageAPI(SchemaFor):
    """Schema for the async message endpoint; `as_view()` returns `chat_message`."""

    routed = staticmethod(chat_message)

    authentication_classes = [CsrfEnforced]
    permission_classes = [AllowAny]
    # The real view parses JSON itself; this tells the schema it takes nothing else.
    parser_classes = [JSONParser]

    @extend_schema(
        request=MessageIn,
        responses={
            200: MessageOut,
            400: MESSAGE_INVALID,
            403: CSRF_FAILED,
            404: NO_SESSION,
            409: OpenApiResponse(
                ErrorOut,
                description="conversation_closed: start a new one; turn_in_progress: a retry (same message_id) "
                "while the first turn is still running, try again after Retry-After seconds.",
            ),
            413: OpenApiResponse(
                ErrorOut, description="too_large: the body is over 16 KiB; message_too_long: the message is too long."
            ),
            429: RATE_LIMITED,
            503: OpenApiResponse(
                ErrorOut,
                description="server_draining: this server is restarting. Send the same message (same message_id) "
                "again after Retry-After: it is stored once and answered once, by another server. Also "
                "service_unavailable when the database or Redis is down.",
            ),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                pattern=f"^{identifiers.PATTERN}$",
                description="The message_id, as a header instead of in the body (both: they must agree, else 400).",
            )
        ],
        summary="Send a customer message and get the assistant's reply",
        description="Stores the message first, then runs one turn: the model (or the guided flow) answers and may "
        "call tools that book, look up, move or cancel visits. Rate limited per client IP and per conversation.",
        tags=[TAG],
    )
    def post(self, request: Request) -> Response:  # pragma: no cover - never routed
        raise NotImplementedError


class CsrfEnforcedScheme(SessionScheme):
    """Documents what CsrfEnforced asks of a customer: Django's CSRF pair on unsafe requests, no login.

    The pair is the csrftoken cookie and the same token in the X-CSRFToken header; both are
    required. chatdesk.openapi.postprocess gives every operation its security requirements
    from these schemes and the staff session's.
    """

    target_class = CsrfEnforced
    name = ["csrfToken", "csrfCookie"]

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRFToken",
                "description": "Django's CSRF token, with the csrftoken cookie, on every POST (customer and staff "
                "routes): the cookie's value or a masked token from the page.",
            },
            {
                "type": "apiKey",
                "in": "cookie",
                "name": "csrftoken",
                "description": "Django's CSRF cookie, which the chat page and the admin set; needed with the "
                "X-CSRFToken header on every POST.",
            },
        ]

    def get_security_requirement(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"csrfToken": [], "csrfCookie": []}
