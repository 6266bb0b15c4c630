"""Staff live monitor: open conversations updating live, takeover, hand back, staff replies.

The page (/staff/live/) renders the open conversations; static/staff-live.js keeps it
current through the staff WebSocket and acts through the small staff API below, which
calls the conversation services (so the audit rows are the same whoever acts).

The staff permission policy (chatdesk.conversations.access) decides: the page and the reads
need chatdesk.view_interaction; taking over, handing back and writing to the customer also
need chatdesk.take_over_interaction. Everything sent goes through the member's Visibility:
contact details masked without chatdesk.view_customer_pii, costs null without
chatdesk.view_costs.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatdesk.backoffice.permissions import StaffPolicy, staff_page
from chatdesk.conversations import access, live, services
from chatdesk.conversations.models import Interaction, Message

OPEN_LIMIT = 100


def open_conversations(seen: access.Visibility) -> list[dict]:
    rows = Interaction.objects.filter(status=Interaction.Status.OPEN).order_by("-last_activity_at")[:OPEN_LIMIT]
    return seen.present([{**live.summary(i), "last_activity_at": i.last_activity_at.isoformat()} for i in rows])


def transcript(interaction: Interaction) -> list[dict]:
    """Messages and tool calls in time order, as staff see them."""
    entries = [
        {**live.message_event(m), "at_sort": m.created_at}
        for m in interaction.messages.select_related("staff_user").order_by("created_at", "id")
    ]
    entries += [
        {"kind": "tool_call", "name": c.name, "ok": c.ok, "error": c.error or None, "at_sort": c.created_at}
        for c in interaction.tool_calls.order_by("created_at", "id")
    ]
    entries.sort(key=lambda e: e["at_sort"])
    for entry in entries:
        entry.pop("at_sort")
    return entries


def _interaction(number: str) -> Interaction:
    interaction = Interaction.objects.filter(number=number).first()
    if interaction is None:
        raise NotFound("No such conversation.")
    return interaction


@staff_page(access.VIEW_CONVERSATIONS)
def live_page(request: HttpRequest) -> HttpResponse:
    seen = access.Visibility.of(request.user)
    # The reply box stops where staff_message_send would refuse (conversations.limits).
    context = {
        "conversations": open_conversations(seen),
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "may_take_over": access.may(request.user, access.TAKE_OVER),
    }
    return render(request, "staff/live.html", context)


class StaffAPI(APIView):
    permission_classes = [StaffPolicy]
    # Acting on a conversation (take over, hand back, write) needs the takeover permission
    # besides seeing it.
    required_permissions = {"GET": access.VIEW_CONVERSATIONS, "POST": (access.VIEW_CONVERSATIONS, access.TAKE_OVER)}

    def shown(self, data: object) -> object:
        return access.Visibility.of(self.request.user).present(data)


class OpenConversationsAPI(StaffAPI):
    @extend_schema(summary="Open conversations, most recently active first", responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"conversations": open_conversations(access.Visibility.of(request.user))})


class ConversationAPI(StaffAPI):
    @extend_schema(summary="A conversation's transcript with tool calls", responses={200: dict, 404: dict})
    def get(self, request: Request, number: str) -> Response:
        interaction = _interaction(number)
        return Response(self.shown({**live.summary(interaction), "transcript": transcript(interaction)}))


class TakeOverAPI(StaffAPI):
    @extend_schema(summary="Take a text conversation over: the assistant pauses", request=None, responses={200: dict})
    def post(self, request: Request, number: str) -> Response:
        interaction = services.interaction_take_over(interaction=_interaction(number), user=request.user)
        return Response(self.shown(live.summary(interaction)))


class HandBackAPI(StaffAPI):
    @extend_schema(summary="Hand the conversation back to the assistant", request=None, responses={200: dict})
    def post(self, request: Request, number: str) -> Response:
        interaction = services.interaction_hand_back(interaction=_interaction(number), user=request.user)
        return Response(self.shown(live.summary(interaction)))


class StaffMessageAPI(StaffAPI):
    @extend_schema(
        summary="Reply to the customer as staff (after taking over)",
        request=inline_serializer("StaffMessageIn", {"text": serializers.CharField()}),
        responses={201: dict, 409: dict},
    )
    def post(self, request: Request, number: str) -> Response:
        text = request.data.get("text") if isinstance(request.data, dict) else None
        if not isinstance(text, str):
            raise serializers.ValidationError({"text": ["A text is required."]})
        message: Message = services.staff_message_send(interaction=_interaction(number), user=request.user, text=text)
        return Response(self.shown(live.message_event(message)), status=201)
