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

from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings.selectors import business_tz, local_today
from chatdesk.backoffice.common import local_time
from chatdesk.backoffice.permissions import StaffPolicy, staff_page
from chatdesk.conversations import access, live, services
from chatdesk.conversations.models import Interaction, Message
from chatdesk.conversations.selectors import QUIET_AFTER, monitor_conversations

# ?quiet=1 lists the quiet greeting-only conversations too (hidden by default).
_QUIET_VALUES = {"": False, "0": False, "1": True}
QUIET_ERROR = "quiet must be 0 or 1."


def monitor_row(interaction: Interaction, seen: access.Visibility) -> dict:
    """One row of the monitor, from monitor_conversations: the live summary, plus who and
    whether they wait for a person, as this staff member may see it.

    The name follows the one policy (chatdesk.conversations.access): whoever may view
    conversations sees who they are with, as in the admin and the staff API; contact details
    (phones, emails, addresses, also inside the summary's text) need view_customer_pii.
    """
    name = interaction.customer.name if interaction.customer else (interaction.handoff_name or "")  # type: ignore[attr-defined]
    row = {
        **live.summary(interaction),
        "customer_name": name,
        "wants_person": interaction.wants_person,  # type: ignore[attr-defined]
        "last_activity_at": interaction.last_activity_at.isoformat(),
        "last_activity_local": local_time(interaction.last_activity_at),
        "last_activity_short": short_time(interaction.last_activity_at),
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


class StaffAPI(APIView):
    permission_classes = [StaffPolicy]
    # Acting on a conversation (take over, hand back, write) needs the takeover permission
    # besides seeing it.
    required_permissions = {"GET": access.VIEW_CONVERSATIONS, "POST": (access.VIEW_CONVERSATIONS, access.TAKE_OVER)}

    def shown(self, data: object) -> object:
        return access.Visibility.of(self.request.user).present(data)


class OpenConversationsAPI(StaffAPI):
    @extend_schema(
        summary="Open conversations: waiting for a person first, then most recently active",
        description="Quiet greeting-only conversations are left out (counted in hidden_quiet) unless quiet=1.",
        responses={200: dict, 400: dict},
    )
    def get(self, request: Request) -> Response:
        include_quiet = _QUIET_VALUES.get(request.query_params.get("quiet", ""))
        if include_quiet is None:
            raise serializers.ValidationError({"quiet": [QUIET_ERROR]})
        return Response(monitor_rows(access.Visibility.of(request.user), include_quiet=include_quiet))


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
