"""One round of a model's tool calls, and what its outcomes changed: the same for every door.

Text turns (chatdesk.assistant.turns), voice calls (voice) and replay
(chatdesk.assistant.replay) all run the calls of one model response here: the calls within
the caps run (`tools.tool_call_budget`), the rest are recorded as refused
(`too_many_tool_calls`), and the outcomes come back in the order the model made the calls.
Live doors run the calls concurrently on the thread pool (`run_tool_round`); replay runs them
in its own thread, inside the transaction it rolls back (`run_tool_round_here`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from chatdesk.assistant.openai_client import FunctionCall
from chatdesk.assistant.tools import (
    TOO_MANY_TOOL_CALLS,
    ToolOutcome,
    execute_tool_call,
    refuse_tool_calls,
    tool_call_budget,
)
from chatdesk.conversations.models import Conversation
from chatdesk.conversations.services import db

type Job = Callable[[], list[ToolOutcome]]


def _run_one(conversation: Conversation, call: FunctionCall, channel: str) -> list[ToolOutcome]:
    return [
        execute_tool_call(
            conversation=conversation,
            call_id=call.call_id,
            name=call.name,
            raw_arguments=call.arguments,
            channel=channel,
        )
    ]


def round_jobs(
    conversation: Conversation, calls: Sequence[FunctionCall], *, channel: str, ran_this_turn: int
) -> list[Job]:
    """The round's work, in call order: one job per call allowed to run, then one recording
    the refused ones together (one trip for all of them)."""
    allowed = tool_call_budget(len(calls), ran_this_turn=ran_this_turn)
    jobs: list[Job] = [partial(_run_one, conversation, call, channel) for call in calls[:allowed]]
    refused = [(c.call_id, c.name, c.arguments) for c in calls[allowed:]]
    if refused:
        jobs.append(partial(refuse_tool_calls, conversation_id=conversation.pk, calls=refused))
    return jobs


async def run_tool_round(
    conversation: Conversation, calls: Sequence[FunctionCall], *, channel: str, ran_this_turn: int
) -> list[ToolOutcome]:
    """Run one response's calls concurrently, each on its own connection from the thread pool."""
    jobs = round_jobs(conversation, calls, channel=channel, ran_this_turn=ran_this_turn)
    done = await asyncio.gather(*(db(job) for job in jobs))
    return [outcome for outcomes in done for outcome in outcomes]


def run_tool_round_here(
    conversation: Conversation, calls: Sequence[FunctionCall], *, channel: str, ran_this_turn: int
) -> list[ToolOutcome]:
    """Run one response's calls one after another in this thread (and its transaction)."""
    jobs = round_jobs(conversation, calls, channel=channel, ran_this_turn=ran_this_turn)
    return [outcome for job in jobs for outcome in job()]


def calls_run(outcomes: Iterable[ToolOutcome]) -> int:
    """How many of these calls ran (refused ones did not): what counts against the turn's cap."""
    return sum(1 for o in outcomes if o.error != TOO_MANY_TOOL_CALLS)


def bookings_touched(outcomes: Iterable[ToolOutcome]) -> list[int]:
    """The bookings these calls made, found, moved or cancelled, in call order."""
    return [o.touched_booking for o in outcomes if o.touched_booking is not None]


def booked(outcomes: Iterable[ToolOutcome]) -> bool:
    """Whether any of these calls made a booking."""
    return any(o.booked for o in outcomes)
