"""Replay stored text conversations against the current prompt and tools, then throw it all away.

What a prompt or model change does to real conversations: each stored conversation's
customer messages are sent again, in order, to the model with today's tools and prompt
(built for the time the customer wrote, so "tomorrow" means what it meant then). Tool
calls run for real, bookings included, inside one transaction per conversation that is
always rolled back: no booking, tool-call row, counter or email survives the replay
(emails go out on commit, and there is none).

The turn loop is the one chatdesk.assistant.turns runs, driven synchronously in the
caller's thread: turns.chat_turn does its database work on other threads, whose
connections would not see this transaction, let alone roll back with it. Model calls
run on an event loop owned by the caller (`run`); between them the loop is idle, so
the ORM may be used in this thread.

Limits of the comparison: tools see the current time and data (a slot offered then may
be gone now), and the model answers the customer's words, not what the customer would
have said to a different reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from chatdesk.assistant import openai_client
from chatdesk.assistant.costs import text_cost
from chatdesk.assistant.prompts import system_prompt
from chatdesk.assistant.tool_rounds import booked, calls_run, run_tool_round_here
from chatdesk.assistant.tools import ToolOutcome, tool_definitions
from chatdesk.conversations import model_items
from chatdesk.conversations.models import Conversation, Message
from chatdesk.conversations.retention import REDACTED
from chatdesk.conversations.services import conversation_create

logger = logging.getLogger(__name__)

type Runner = Callable[[Awaitable[Any]], Any]


@dataclass
class ReplayResult:
    number: str
    started_at: datetime
    turns: int
    original_booked: bool
    original_tools: list[str]
    replay_booked: bool = False
    replay_tools: list[str] = field(default_factory=list)
    replay_cost_usd: Decimal = Decimal("0")
    error: str = ""

    @property
    def differences(self) -> list[str]:
        found = []
        if self.error:
            found.append(f"replay failed: {self.error}")
        if self.original_booked != self.replay_booked:
            before = "booked" if self.original_booked else "no booking"
            after = "booked" if self.replay_booked else "no booking"
            found.append(f"booking: {before} -> {after}")
        if self.original_tools != self.replay_tools:
            found.append("tool calls differ")
        return found

    @property
    def differs(self) -> bool:
        return bool(self.differences)

    def as_dict(self) -> dict:
        return {
            "number": self.number,
            "started_at": self.started_at.isoformat(),
            "turns": self.turns,
            "differs": self.differs,
            "differences": self.differences,
            "original": {"booked": self.original_booked, "tools": self.original_tools},
            "replay": {"booked": self.replay_booked, "tools": self.replay_tools},
            "replay_cost_usd": str(self.replay_cost_usd),
            "error": self.error or None,
        }


def replayable_conversations(*, start: datetime, end: datetime | None = None) -> QuerySet[Conversation]:
    """Text conversations the model answered (they started in model mode) with customer words left.

    Guided-flow conversations are left out (the customer answered menus, not a model) and
    so are anonymized ones (their messages are gone).
    """
    spoken = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.CUSTOMER).exclude(text=REDACTED)
    conversations = Conversation.objects.filter(
        channel=Conversation.ChannelKind.CHAT, started_at__gte=start, model__gt=""
    ).filter(Exists(spoken))
    if end is not None:
        conversations = conversations.filter(started_at__lt=end)
    return conversations.order_by("started_at", "id")


def _scratch_copy(conversation: Conversation) -> Conversation:
    # Tool calls are recorded against a conversation (and create_booking counts bookings on
    # it): a fresh one per replay, so the original's call ids and limits do not interfere.
    return conversation_create(
        number=f"RPL-{conversation.number}"[:20],
        channel=Conversation.ChannelKind.CHAT,
        mode=Conversation.Mode.MODEL,
        model=settings.OPENAI_MODEL,
    )


def conversation_replay(conversation: Conversation, *, run: Runner) -> ReplayResult:
    """Replay one conversation and compare it with what happened. Never raises for model errors."""
    messages = list(conversation.messages.order_by("created_at", "id"))
    customer_turns = [m for m in messages if m.role == Message.Role.CUSTOMER]
    result = ReplayResult(
        number=conversation.number,
        started_at=conversation.started_at,
        turns=len(customer_turns),
        original_booked=conversation.booking_count > 0,
        original_tools=list(conversation.tool_calls.order_by("created_at", "id").values_list("name", flat=True)),
    )
    greeting = next((m.text for m in messages if m.role == Message.Role.ASSISTANT), "")
    items: list[dict] = [model_items.assistant_item(greeting)] if greeting else []
    tools = tool_definitions()
    outcomes: list[ToolOutcome] = []
    with transaction.atomic():
        try:
            scratch = _scratch_copy(conversation)
            for message in customer_turns:
                items.append(model_items.user_item(message.text))
                instructions = system_prompt(message.created_at)
                turn_start = len(outcomes)
                for _ in range(settings.CHAT_MAX_TOOL_ROUNDS):
                    answer = run(openai_client.respond(instructions=instructions, items=items, tools=tools))
                    result.replay_cost_usd += text_cost(answer.model, answer.usage)
                    items.extend(answer.output_items)
                    if not answer.function_calls:
                        break
                    # The text chat's round (caps included), run in this thread and transaction.
                    results = run_tool_round_here(
                        scratch,
                        answer.function_calls,
                        channel=Conversation.ChannelKind.CHAT,
                        ran_this_turn=calls_run(outcomes[turn_start:]),
                    )
                    outcomes.extend(results)
                    items.extend(model_items.function_output_item(o.call_id, o.output) for o in results)
        except openai_client.ModelUnavailable as error:
            result.error = f"{error.kind}: {error.detail}"
        finally:
            transaction.set_rollback(True)
    result.replay_tools = [o.name for o in outcomes]
    result.replay_booked = booked(outcomes)
    return result
