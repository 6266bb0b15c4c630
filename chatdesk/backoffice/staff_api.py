"""Staff analytics API: the dashboard's numbers as JSON (GET /api/v1/chat/analytics).

Same selector as the admin dashboard (chatdesk.backoffice.dashboard), so the two never disagree.
Staff only, with permission to view conversations (the staff policy,
chatdesk.conversations.access); costs are null for staff without `chatdesk.view_costs`, and
no customer contact details are ever included.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from bookings.api_base import MethodFirstAPIView
from bookings.serializers import ErrorOut, QueryIn
from chatdesk import replica
from chatdesk.backoffice import dashboard as stats
from chatdesk.backoffice.permissions import StaffPolicy
from chatdesk.conversations import access
from chatdesk.conversations.models import Conversation

MONEY = {"max_digits": 16, "decimal_places": 6}


class AnalyticsQuery(QueryIn):
    since = serializers.DateField(
        required=False,
        help_text=f"First day, ISO (YYYY-MM-DD), business time. Default: {stats.DEFAULT_RANGE_DAYS} days ago.",
    )
    until = serializers.DateField(required=False, help_text="Last day, included, ISO (YYYY-MM-DD). Default: today.")
    channel = serializers.ChoiceField(
        choices=Conversation.ChannelKind.choices, required=False, help_text="Only conversations on this channel."
    )

    def validate(self, data: dict) -> dict:
        default_since, default_until = stats.default_range()
        until = data.get("until") or default_until
        since = data.get("since") or (until - (default_until - default_since))
        if since > until:
            raise serializers.ValidationError({"until": [f"until ({until}) is before since ({since})."]})
        if (until - since).days + 1 > stats.MAX_RANGE_DAYS:
            raise serializers.ValidationError(
                {"since": [f"The range is {(until - since).days + 1} days; ask for at most {stats.MAX_RANGE_DAYS}."]}
            )
        return {"since": since, "until": until, "channel": data.get("channel")}


class CostByChannel(serializers.Serializer):
    chat = serializers.DecimalField(**MONEY, required=False, help_text="Cost of typed conversations, USD.")
    voice = serializers.DecimalField(**MONEY, required=False, help_text="Cost of calls, USD.")


class NumbersOut(serializers.Serializer):
    conversations = serializers.IntegerField(help_text="Conversations started.")
    booked_conversations = serializers.IntegerField(help_text="Conversations in which a booking was made.")
    conversion = serializers.FloatField(
        allow_null=True, help_text="booked_conversations / conversations, 0 to 1; null without conversations."
    )
    bookings = serializers.IntegerField(help_text="Bookings made, on any channel unless one is asked for.")
    cost_usd = serializers.DecimalField(**MONEY, allow_null=True, help_text="Null without chatdesk.view_costs.")
    cost_by_channel = CostByChannel(
        allow_null=True, help_text="cost_usd split by channel; null without chatdesk.view_costs."
    )
    latency_p50_ms = serializers.IntegerField(allow_null=True, help_text="Median assistant reply time.")
    latency_p95_ms = serializers.IntegerField(allow_null=True, help_text="95th percentile assistant reply time.")


class DayOut(NumbersOut):
    date = serializers.DateField(help_text="The day, in the business time zone.")


class TotalsOut(NumbersOut):
    replies = serializers.IntegerField(help_text="Assistant replies the latency percentiles are computed over.")


class HandoffsOut(serializers.Serializer):
    open = serializers.IntegerField(help_text="Requests for a person not yet dealt with.")
    urgent = serializers.IntegerField(help_text="Of those, the urgent ones.")
    oldest_open_at = serializers.DateTimeField(
        allow_null=True, help_text="When the oldest open one came in; null if none."
    )


class VisitOut(serializers.Serializer):
    booking_number = serializers.CharField(help_text="The booking number.")
    start = serializers.DateTimeField(help_text="When the visit starts.")
    end = serializers.DateTimeField(help_text="When it ends.")
    service = serializers.CharField(help_text="The service's name.")
    status = serializers.CharField(help_text="The booking's status.")


class TechnicianOut(serializers.Serializer):
    technician = serializers.CharField(help_text="The technician's full name.")
    visits = VisitOut(many=True, help_text="Their visits today, in time order.")


class ModelFailuresOut(serializers.Serializer):
    total = serializers.IntegerField(help_text="Turns the customer got the failure reply for.")
    by_kind = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="timeout, unreachable, rate_limited, budget_exhausted (no OpenAI budget: guided flow), "
        "server_error, bad_request, incomplete, bad_reply, and, not counted in total, incomplete_retried (cut "
        "off, answered on retry) and budget_wait (waited for the OpenAI budget, then answered).",
    )


class AnalyticsOut(serializers.Serializer):
    since = serializers.DateField(help_text="First day counted.")
    until = serializers.DateField(help_text="Last day counted (included).")
    channel = serializers.CharField(allow_null=True, help_text="The channel asked for; null for all.")
    timezone = serializers.CharField(help_text="Days are calendar days in this time zone.")
    totals = TotalsOut(help_text="The whole range.")
    days = DayOut(many=True, help_text="Each day of the range, oldest first.")
    open_handoffs = HandoffsOut(help_text="Requests for a person, now (not limited to the range).")
    model_failures = ModelFailuresOut(help_text="Turns in the range the model failed to answer.")
    today = serializers.DateField(help_text="Today in the business time zone (the day of schedule_today).")
    schedule_today = TechnicianOut(many=True, help_text="Today's visits per technician, cancelled ones left out.")


def _numbers(item: stats.DayStats | stats.Totals) -> dict:
    return {
        "conversations": item.conversations,
        "booked_conversations": item.booked_conversations,
        "conversion": item.conversion,
        "bookings": item.bookings,
        "cost_usd": item.cost_usd,
        "cost_by_channel": item.cost_by_channel,
        "latency_p50_ms": item.latency_p50_ms,
        "latency_p95_ms": item.latency_p95_ms,
    }


class AnalyticsAPI(MethodFirstAPIView):
    permission_classes = [StaffPolicy]
    required_permissions = {"GET": access.VIEW_CONVERSATIONS}

    @extend_schema(
        summary="Dashboard numbers: conversations, bookings, conversion, cost and reply latency per day",
        parameters=[AnalyticsQuery],
        description="The admin dashboard's numbers as JSON, from the same selector. Needs permission to view "
        "conversations; costs are null without chatdesk.view_costs; no customer contact details.",
        responses={
            200: AnalyticsOut,
            400: OpenApiResponse(
                ErrorOut,
                description="invalid_input: a bad date or channel, until before since, or more than "
                f"{stats.MAX_RANGE_DAYS} days.",
            ),
            403: OpenApiResponse(ErrorOut, description="Not staff, or no permission to view conversations."),
        },
        tags=["staff"],
    )
    @replica.replica_reads
    def get(self, request: Request) -> Response:
        query = AnalyticsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        d = stats.dashboard(**query.validated_data)
        data = {
            "since": d.since,
            "until": d.until,
            "channel": d.channel,
            "timezone": settings.TIME_ZONE,
            "totals": {**_numbers(d.totals), "replies": d.totals.replies},
            "days": [{"date": day.day, **_numbers(day)} for day in d.days],
            "open_handoffs": {
                "open": d.handoffs.open,
                "urgent": d.handoffs.urgent,
                "oldest_open_at": d.handoffs.oldest_open_at,
            },
            "model_failures": {
                "total": d.model_failures.total,
                "by_kind": {kind: n for kind, _, n in d.model_failures.rows()},
            },
            "today": d.today,
            "schedule_today": [
                {
                    "technician": t.technician,
                    "visits": [
                        {
                            "booking_number": v.number,
                            "start": v.start,
                            "end": v.end,
                            "service": v.service,
                            "status": v.status,
                        }
                        for v in t.visits
                    ],
                }
                for t in d.schedule
            ],
        }
        # Costs null without chatdesk.view_costs: the one masking every staff door uses.
        return Response(access.Visibility.of(request.user).present(AnalyticsOut(data).data))
