"""Staff live monitor: open conversations updating live, takeover, hand back, staff replies.

The page (/staff/live/) renders the open conversations; static/staff-live.js keeps it
current through the staff WebSocket and acts through the small staff API below, which
calls the conversation services (so the audit rows are the same whoever acts).

The staff permission policy (chatdesk.conversations.access) decides: the page and the reads
need chatdesk.view_conversation; taking over, handing back and writing to the customer also
need chatdesk.take_over_conversation. Everything sent goes through the member's Visibility:
contact details masked without chatdesk.view_customer_pii, costs null without
chatdesk.view_costs.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from bookings import identifiers
from bookings.api_base import MethodFirstAPIView
from bookings.selectors import business_tz, local_today
from bookings.serializers import ErrorOut, QueryIn
from chatdesk.backoffice.common import local_time
from chatdesk.backoffice.permissions import StaffPolicy, staff_page
from chatdesk.conversations import access, live, services
from chatdesk.conversations.limits import MessageText
from chatdesk.conversations.models import Conversation, Message
from chatdesk.conversations.selectors import MONITOR_LIMIT, QUIET_AFTER, monitor_conversations

# ?quiet=1 lists the quiet greeting-only conversations too (hidden by default).
_QUIET_VALUES = {"": False, "0": False, "1": True}
QUIET_ERROR = "quiet must be 0 or 1."


def monitor_row(conversation: Conversation, seen: access.Visibility) -> dict:
    """One row of the monitor, from monitor_conversations: the live summary, plus who and
    whether they wait for a person, as this staff member may see it.

    The name follows the one policy (chatdesk.conversations.access): whoever may view
    conversations sees who they are with, as in the admin and the staff API; contact details
    (phones, emails, addresses, also inside the summary's text) need view_customer_pii.
    """
    name = conversation.customer.name if conversation.customer else (conversation.handoff_name or "")  # type: ignore[attr-defined]
    row = {
        **live.summary(conversation),
        "customer_name": name,
        "wants_person": conversation.wants_person,  # type: ignore[attr-defined]
        "last_activity_at": conversation.last_activity_at.isoformat(),
        "last_activity_local": local_time(conversation.last_activity_at),
        "last_activity_short": short_time(conversation.last_activity_at),
    }
    return seen.present(row)  # type: ignore[return-value]


def short_time(value: datetime) -> str:
    """Wall-clock time at the business, short enough for a narrow column: '14:05' today,
    'Thu 3 Dec 14:05' before."""
    local = value.astimezone(business_tz())
    return f"{local:%H:%M}" if local.date() == local_today() else f"{local:%a} {local.day} {local:%b %H:%M}"


def monitor_rows(seen: access.Visibility, *, include_quiet: bool = False) -> dict:
    """What both doors (the page and the open-conversations API) list for this staff member."""
    listing = monitor_conversations(include_quiet=include_quiet)
    return {
        "conversations": [monitor_row(i, seen) for i in listing.conversations],
        "hidden_quiet": listing.hidden_quiet,
        "include_quiet": include_quiet,
    }


def transcript(conversation: Conversation) -> list[dict]:
    """Messages and tool calls in time order, as staff see them."""
    entries = [
        {**live.message_event(m), "at_sort": m.created_at}
        for m in conversation.messages.select_related("staff_user").order_by("created_at", "id")
    ]
    entries += [
        {"kind": "tool_call", "name": c.name, "ok": c.ok, "error": c.error or None, "at_sort": c.created_at}
        for c in conversation.tool_calls.order_by("created_at", "id")
    ]
    entries.sort(key=lambda e: e["at_sort"])
    for entry in entries:
        entry.pop("at_sort")
    return entries


def _conversation(number: str) -> Conversation:
    conversation = Conversation.objects.filter(number=number).first()
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


@staff_page(access.VIEW_CONVERSATIONS)
def live_page(request: HttpRequest) -> HttpResponse:
    include_quiet = _QUIET_VALUES.get(request.GET.get("quiet", ""))
    if include_quiet is None:
        return HttpResponseBadRequest(QUIET_ERROR)
    context = {
        **monitor_rows(access.Visibility.of(request.user), include_quiet=include_quiet),
        "quiet_minutes": int(QUIET_AFTER.total_seconds()) // 60,
        # The reply box stops where staff_message_send would refuse (conversations.limits).
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "may_take_over": access.may(request.user, access.TAKE_OVER),
    }
    return render(request, "staff/live.html", context)


class SummaryOut(serializers.Serializer):
    """chatdesk.conversations.live.summary(): a conversation on the monitor."""

    number = serializers.CharField(help_text="The conversation's number, e.g. INT-2026-00042.")
    channel = serializers.ChoiceField(choices=Conversation.ChannelKind.choices, help_text="Where it started.")
    status = serializers.ChoiceField(choices=Conversation.Status.choices, help_text="Whether it is still open.")
    mode = serializers.ChoiceField(choices=Conversation.Mode.choices, help_text="Model or guided flow.")
    message_count = serializers.IntegerField(help_text="Messages so far, every role.")
    booking_count = serializers.IntegerField(help_text="Bookings made in it.")
    cost_usd = serializers.CharField(
        allow_null=True, help_text="Model cost so far, USD, 4 decimals, as a string; null without chatdesk.view_costs."
    )
    taken_over = serializers.BooleanField(help_text="True while a staff member answers instead of the assistant.")


class MonitorRowOut(SummaryOut):
    """monitor_row(): a conversation as the live monitor lists it."""

    customer_name = serializers.CharField(help_text="Who it is, when known; empty if not.")
    wants_person = serializers.BooleanField(help_text="True while a request for a person is not dealt with.")
    last_activity_at = serializers.DateTimeField(help_text="The last message or change.")
    last_activity_local = serializers.CharField(help_text="The same, as wall-clock time at the business.")
    last_activity_short = serializers.CharField(help_text="The same, short: '14:05' today, 'Thu 3 Dec 14:05' before.")


class OpenConversationsOut(serializers.Serializer):
    conversations = MonitorRowOut(
        many=True, help_text=f"Waiting for a person first, then most recently active; at most {MONITOR_LIMIT}."
    )
    hidden_quiet = serializers.IntegerField(help_text="Quiet greeting-only conversations left out (0 with quiet=1).")
    include_quiet = serializers.BooleanField(help_text="Whether quiet conversations are listed (quiet=1).")


class MonitorQuery(QueryIn):
    quiet = serializers.ChoiceField(
        choices=["0", "1"],
        required=False,
        error_messages={"invalid_choice": QUIET_ERROR},
        help_text="1: list the quiet greeting-only conversations too (hidden by default).",
    )


class MessageEventOut(serializers.Serializer):
    """chatdesk.conversations.live.message_event(): one message as staff see it."""

    kind = serializers.ChoiceField(choices=["message"], help_text="Always message.")
    id = serializers.IntegerField(help_text="The message's id.")
    role = serializers.ChoiceField(choices=Message.Role.choices, help_text="Who said it.")
    text = serializers.CharField(help_text="What was said.")
    channel = serializers.CharField(help_text="chat or voice.")
    at = serializers.DateTimeField(allow_null=True, help_text="When.")
    interrupted = serializers.BooleanField(help_text="A spoken assistant line the caller cut short.")


class TranscriptEntryOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["message", "tool_call"], help_text="A message or a tool call.")
    id = serializers.IntegerField(required=False, help_text="Messages only: the message's id.")
    role = serializers.ChoiceField(choices=Message.Role.choices, required=False, help_text="Messages only: who.")
    text = serializers.CharField(required=False, help_text="Messages only: what was said.")
    channel = serializers.CharField(required=False, help_text="Messages only: chat or voice.")
    at = serializers.DateTimeField(required=False, allow_null=True, help_text="Messages only: when.")
    interrupted = serializers.BooleanField(required=False, help_text="Messages only: cut short by the caller.")
    name = serializers.CharField(required=False, help_text="Tool calls only: the tool.")
    ok = serializers.BooleanField(required=False, help_text="Tool calls only: whether it succeeded.")
    error = serializers.CharField(required=False, allow_null=True, help_text="Tool calls only: the error code or null.")


class ConversationOut(SummaryOut):
    transcript = TranscriptEntryOut(many=True, help_text="Messages and tool calls in time order.")


class StaffMessageIn(serializers.Serializer):
    text = MessageText(help_text="What to tell the customer (after taking the conversation over).")


TAG = "staff"
NUMBER = OpenApiParameter(
    "number",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern=f"^{identifiers.PATTERN}$",
    description="The conversation's number, e.g. INT-2026-00042.",
)
FORBIDDEN = OpenApiResponse(
    ErrorOut, description="Not logged in as staff, without the permission this needs, or the CSRF token is missing."
)
NOT_FOUND = OpenApiResponse(ErrorOut, description="No conversation with that number.")
LIVE_UNAVAILABLE = OpenApiResponse(
    ErrorOut,
    description="live_unavailable: live updates cannot reach the customer now (Redis down); try again after "
    "Retry-After seconds.",
)
CONFLICT = OpenApiResponse(
    ErrorOut, description="conversation_closed: it is closed, or another staff member has it, or it is not taken over."
)


class StaffAPI(MethodFirstAPIView):
    permission_classes = [StaffPolicy]
    # Acting on a conversation (take over, hand back, write) needs the takeover permission
    # besides seeing it.
    required_permissions = {"GET": access.VIEW_CONVERSATIONS, "POST": (access.VIEW_CONVERSATIONS, access.TAKE_OVER)}
    parser_classes = [JSONParser]

    def shown(self, data: object) -> object:
        return access.Visibility.of(self.request.user).present(data)


class OpenConversationsAPI(StaffAPI):
    @extend_schema(
        summary="Open conversations: waiting for a person first, then most recently active",
        description="What the live monitor lists; the staff socket then pushes changes (docs: WebSockets). Quiet "
        "greeting-only conversations are left out (counted in hidden_quiet) unless quiet=1.",
        parameters=[MonitorQuery],
        responses={
            200: OpenConversationsOut,
            400: OpenApiResponse(ErrorOut, description="invalid_input: quiet is not 0 or 1."),
            403: FORBIDDEN,
        },
        tags=[TAG],
    )
    def get(self, request: Request) -> Response:
        # A serializer rather than the page's lenient table: `?quiet=` is a 400, as the schema says.
        query = MonitorQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        include_quiet = query.validated_data.get("quiet") == "1"
        return Response(monitor_rows(access.Visibility.of(request.user), include_quiet=include_quiet))


class ConversationAPI(StaffAPI):
    @extend_schema(
        summary="A conversation's transcript with tool calls",
        description="Its summary and the whole transcript, tool calls included, as staff see it.",
        parameters=[NUMBER],
        responses={200: ConversationOut, 403: FORBIDDEN, 404: NOT_FOUND},
        tags=[TAG],
    )
    def get(self, request: Request, number: str) -> Response:
        conversation = _conversation(number)
        return Response(self.shown({**live.summary(conversation), "transcript": transcript(conversation)}))


class TakeOverAPI(StaffAPI):
    @extend_schema(
        summary="Take a text conversation over: the assistant pauses",
        description="The customer's messages are stored but not answered until the conversation is handed back.",
        parameters=[NUMBER],
        request=None,
        responses={200: SummaryOut, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT, 503: LIVE_UNAVAILABLE},
        tags=[TAG],
    )
    def post(self, request: Request, number: str) -> Response:
        conversation = services.conversation_take_over(conversation=_conversation(number), user=request.user)
        return Response(self.shown(live.summary(conversation)))


class HandBackAPI(StaffAPI):
    @extend_schema(
        summary="Hand the conversation back to the assistant",
        description="The assistant answers the customer's next message.",
        parameters=[NUMBER],
        request=None,
        responses={200: SummaryOut, 403: FORBIDDEN, 404: NOT_FOUND},
        tags=[TAG],
    )
    def post(self, request: Request, number: str) -> Response:
        conversation = services.conversation_hand_back(conversation=_conversation(number), user=request.user)
        return Response(self.shown(live.summary(conversation)))


class StaffMessageAPI(StaffAPI):
    @extend_schema(
        summary="Reply to the customer as staff (after taking over)",
        description="Stored in the transcript and pushed to the customer's live socket.",
        parameters=[NUMBER],
        request=StaffMessageIn,
        responses={
            201: MessageEventOut,
            400: OpenApiResponse(ErrorOut, description="invalid_input: no text, or it is blank."),
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: CONFLICT,
            413: OpenApiResponse(ErrorOut, description="message_too_long: over CHAT_MAX_MESSAGE_CHARS."),
            503: LIVE_UNAVAILABLE,
        },
        tags=[TAG],
    )
    def post(self, request: Request, number: str) -> Response:
        text = request.data.get("text") if isinstance(request.data, dict) else None
        if not isinstance(text, str):
            raise serializers.ValidationError({"text": ["A text is required."]})
        message: Message = services.staff_message_send(conversation=_conversation(number), user=request.user, text=text)
        return Response(self.shown(live.message_event(message)), status=201)
