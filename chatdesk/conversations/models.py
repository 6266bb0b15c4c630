"""Conversations: every customer conversation, its transcript, its tool calls and its cost.

These rows are the transcript, the audit trail and the cost ledger at once: each
customer message is stored before the model is called, each tool call is a row written
when it runs, and token usage is added to the conversation after every model response.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models

from bookings import limits
from bookings.models import Channel


def new_session_id() -> str:
    # The customer's bearer token for this conversation: unguessable, URL-safe.
    return secrets.token_urlsafe(32)


def number_fields(number: str) -> dict[str, str]:
    """The conversation's number as clients read it: the chat API and the voice `ready` message.

    Until issue 10 renamed the model they sent it under the model's old name only (the second
    key). A widget or script already in a business's website may still read that key, so it is
    sent too, with the same value.
    """
    return {"conversation_number": number, "interaction_number": number}


class Conversation(models.Model):
    """A conversation: what staff, the admin and the APIs call it (INT- numbers).

    The code's name stays Conversation for now; every label a person reads says
    "conversation" (verbose_name), so the word staff see is one.
    """

    class ChannelKind(models.TextChoices):
        """The doors a conversation comes through: the chat and voice members of bookings' Channel.

        One vocabulary: a conversation on "chat" books on Channel.CHAT, and reports, filters and
        CSVs say "chat" for both (this was "text" until chatdesk 0007 converted the rows).
        """

        CHAT = Channel.CHAT.value, Channel.CHAT.label
        VOICE = Channel.VOICE.value, Channel.VOICE.label

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        ABANDONED = "abandoned", "Abandoned"

    class Resolution(models.TextChoices):
        BOOKED = "booked", "Booked"
        ANSWERED = "answered", "Answered"
        ESCALATED = "escalated", "Escalated"
        ABANDONED = "abandoned", "Abandoned"

    class Mode(models.TextChoices):
        MODEL = "model", "AI model"
        GUIDED = "guided", "Guided flow"

    session_id = models.CharField(max_length=64, unique=True, default=new_session_id, editable=False)
    number = models.CharField(max_length=20, unique=True, editable=False)
    # Where the conversation started. A call in a typed conversation sets has_call (and a voice
    # conversation the customer then types in keeps channel=voice): analytics count a conversation
    # in every channel it used (chatdesk.backoffice.dashboard.in_channel).
    channel = models.CharField(max_length=10, choices=ChannelKind.choices, default=ChannelKind.CHAT)
    has_call = models.BooleanField(default=False, help_text="A voice call took place in this conversation.")
    # Started in the website widget (static/widget.js) on the business's own site, and on which
    # page: scheme, host and path only (a query string may carry the visitor's own data).
    from_widget = models.BooleanField(
        "from the website widget", default=False, help_text="Started in the chat widget on the business's website."
    )
    widget_page = models.CharField(
        "website page", max_length=500, blank=True, help_text="The page of the business's website it started on."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.MODEL)
    customer = models.ForeignKey(
        "bookings.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    booking_count = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=60, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    audio_input_tokens = models.PositiveIntegerField(default=0)
    audio_output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    # USD by modality and kind, e.g. {"text_input": "0.0012", "audio_output": "0.0400"}.
    cost_breakdown = models.JSONField(default=dict, blank=True)
    # Live takeover: while set, the assistant is paused and staff answer the customer.
    taken_over_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taken_over_at = models.DateTimeField(null=True, blank=True)
    # Some usage was priced at 0 because its model has no price in settings.OPENAI_PRICES: the
    # recorded cost is too low. Logged as a warning too; shown in the admin.
    price_missing = models.BooleanField(default=False)
    failure_count = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    client_ip_hash = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # The model's item history (messages, function calls and outputs), resent each turn
    # because responses are not stored at OpenAI (store=false: customer PII).
    model_items = models.JSONField(default=list, blank=True)
    # State of the built-in guided flow (used without an API key or when the model is down).
    guided_state = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "conversation"
        verbose_name_plural = "conversations"
        ordering = ["-started_at"]
        # The model was called Conversation until issue 10 gave the code one vocabulary; the table
        # keeps its name so no data moves (migration 0011).
        db_table = "chatdesk_interaction"
        # Checked at every staff door through the staff policy (chatdesk/conversations/access.py).
        # The Owner group has all three; the Dispatcher group only take_over_conversation
        # (migrations 0003 and 0009).
        permissions = [
            ("view_costs", "Can see conversation costs and token usage"),
            ("view_customer_pii", "Can see customers' phone numbers, emails and addresses"),
            ("take_over_conversation", "Can take over a live conversation and write to the customer"),
        ]
        indexes = [
            # close_stale_sessions and the live monitor look at open conversations by activity.
            models.Index(fields=["status", "last_activity_at"], name="interaction_open_activity"),
            # The admin list's "from the website widget" filter: widget conversations only, newest first.
            models.Index(fields=["-started_at"], condition=models.Q(from_widget=True), name="conversation_from_widget"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def duration_seconds(self) -> int | None:
        end = self.ended_at or self.last_activity_at
        return int((end - self.started_at).total_seconds()) if end and self.started_at else None


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        ASSISTANT = "assistant", "Assistant"
        STAFF = "staff", "Staff"
        EVENT = "event", "System event"

    class FailureKind(models.TextChoices):
        """Why the model did not answer (chatdesk.assistant.openai_client.ModelUnavailable.kind)."""

        TIMEOUT = "timeout", "Timed out"
        UNREACHABLE = "unreachable", "Unreachable (refused or reset)"
        RATE_LIMITED = "rate_limited", "Rate limited (429)"
        SERVER_ERROR = "server_error", "Server error (5xx)"
        BAD_REQUEST = "bad_request", "Bad request (4xx)"
        INCOMPLETE = "incomplete", "Cut off (incomplete reply)"
        BAD_REPLY = "bad_reply", "Unusable reply"
        # A streamed reply that broke after some of its words were written (an error event, a
        # failed response, the connection lost): the customer saw them appear, then the kind
        # failure reply instead.
        STREAM_BROKEN = "stream_broken", "Broke off mid-reply"
        # Not a failure the customer saw: the reply was cut off, and the retry answered.
        INCOMPLETE_RETRIED = "incomplete_retried", "Cut off, answered on retry"
        # The fleet's OpenAI budget (chatdesk.assistant.openai_budget): nothing was sent, the
        # turn went to the guided flow (a 429 paused every worker, or the limits were used up).
        BUDGET_EXHAUSTED = "budget_exhausted", "No OpenAI budget (guided flow)"
        # Not a failure the customer saw: the turn waited for budget, then the model answered.
        BUDGET_WAIT = "budget_wait", "Waited for OpenAI budget"

    # Recorded problems the customer never saw (the dashboard, the admin's "any" filter and
    # the analytics' total leave them out).
    RECOVERED_KINDS = (FailureKind.INCOMPLETE_RETRIED, FailureKind.BUDGET_WAIT)

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        db_column="interaction_id",
        related_name="messages",
        verbose_name="conversation",
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # For assistant replies: from the customer's message arriving to the reply being ready.
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    interrupted = models.BooleanField(default=False)
    # For a system event recording a model failure: its kind (admin filter, dashboard).
    failure_kind = models.CharField(max_length=20, choices=FailureKind.choices, blank=True)
    # For an assistant voice line cut off by the caller: everything the model generated, kept for
    # audit, while `text` holds only the part the caller heard (voice.heard.heard_part).
    generated_text = models.TextField(blank=True)
    # Chat and voice share one conversation; this says how each message came in.
    channel = models.CharField(
        max_length=10, choices=Conversation.ChannelKind.choices, default=Conversation.ChannelKind.CHAT
    )
    # The Realtime item id of a voice utterance (for truncation and deduplication).
    item_id = models.CharField(max_length=100, blank=True)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The id the customer's client gave a message (`message_id`, or the Idempotency-Key header),
    # so a retry stores nothing twice. The assistant reply that answers it carries the same id:
    # a retry of a finished turn gets that reply back.
    client_message_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_message_id"],
                condition=models.Q(role="customer"),
                name="customer_message_once",
            ),
        ]
        indexes = [
            # Transcripts are always read per conversation in order.
            models.Index(fields=["conversation", "created_at"], name="message_transcript"),
            # The dashboard counts model failures by kind over a date range; only failure
            # events are in it.
            models.Index(
                fields=["created_at", "failure_kind"],
                name="message_model_failure",
                condition=~models.Q(failure_kind=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class ToolCall(models.Model):
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        db_column="interaction_id",
        related_name="tool_calls",
        verbose_name="conversation",
    )
    # The model's call id. Unique per conversation so a replayed call returns the first
    # result instead of acting twice.
    call_id = models.CharField(max_length=100)
    name = models.CharField(max_length=60)
    arguments = models.JSONField(default=dict, blank=True)
    raw_arguments = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=60, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    booking = models.ForeignKey(
        "bookings.Booking", null=True, blank=True, on_delete=models.SET_NULL, related_name="tool_calls"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "call_id"], name="tool_call_once_per_interaction"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.call_id})"

    @property
    def ok(self) -> bool:
        return not self.error


class HandoffRequest(models.Model):
    """A customer asked for a person (request_human): staff call back."""

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        db_column="interaction_id",
        related_name="handoffs",
        verbose_name="conversation",
    )
    reason = models.CharField(max_length=500)
    contact_name = models.CharField(max_length=limits.MAX_NAME, blank=True)
    contact_phone = models.CharField(max_length=20, blank=True)
    urgent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["handled_at", "-created_at"]

    def __str__(self) -> str:
        return f"Handoff for {self.conversation.number}"
