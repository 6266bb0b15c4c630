"""How many SQL statements a chat turn and a tool call send, counted on every thread.

A turn's server CPU was half database work (BENCHMARKS.md "Chat turns"): these counts make
a regression in round trips (an extra read, a lost batching) fail here, not only in the
benchmark. The turn runs its database work on worker threads, each on its own connection,
so the statements are counted where every connection executes them (Django's CursorWrapper),
not on one connection as django_assert_num_queries would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.db.backends import utils as db_utils
from django.utils import timezone

from chatdesk.assistant import turns
from chatdesk.assistant.prompts import system_prompt
from chatdesk.assistant.tools import execute_tool_call
from chatdesk.conversations.models import Conversation
from tests.chat_customer import model_fixture  # noqa: F401 (registers `model`)
from tests.conftest import MONDAY_NOON_UTC
from tests.fake_openai import fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        yield


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement sent while the test runs, from any thread, in order."""
    sent: list[str] = []
    lock = threading.Lock()
    execute, executemany = db_utils.CursorWrapper._execute, db_utils.CursorWrapper._executemany

    def counted_execute(self, sql, params, *ignored_wrapper_args):
        with lock:
            sent.append(sql)
        return execute(self, sql, params, *ignored_wrapper_args)

    def counted_executemany(self, sql, param_list, *ignored_wrapper_args):
        with lock:
            sent.append(sql)
        return executemany(self, sql, param_list, *ignored_wrapper_args)

    monkeypatch.setattr(db_utils.CursorWrapper, "_execute", counted_execute)
    monkeypatch.setattr(db_utils.CursorWrapper, "_executemany", counted_executemany)
    yield sent


def a_turn(session_id: str, text: str) -> turns.TurnResult:
    return async_to_sync(turns.chat_turn)(session_id=session_id, text=text)


def a_conversation() -> Conversation:
    """A new conversation, with the model's instructions already built: they are kept per
    minute in the process (chatdesk.assistant.prompts), so most turns do not read them."""
    system_prompt(timezone.now())
    return turns.conversation_start(ip="203.0.113.5", user_agent="pytest")


def test_a_plain_model_turn_sends_five_statements(business, model, frozen, statements):
    chat = a_conversation()
    model.queue_text("We do HVAC, plumbing and electrical work.")
    statements.clear()
    result = a_turn(chat.session_id, "What do you do?")
    assert result.reply == "We do HVAC, plumbing and electrical work."
    # Read the conversation, store the customer's words and count them; store the reply and
    # move the counters with the model history appended; and nothing else.
    assert len(statements) == 5, statements


def test_a_turn_with_two_tool_calls_sends_twelve_statements(business, model, frozen, statements):
    chat = a_conversation()
    model.queue_function_calls([("resolve_date", {"text": "Wednesday"}), ("get_available_services", {"trade": "HVAC"})])
    model.queue_text("Wednesday is November 18.")
    statements.clear()
    result = a_turn(chat.session_id, "Can someone come Wednesday?")
    assert [o.name for o in result.outcomes] == ["resolve_date", "get_available_services"]
    assert not any(o.error for o in result.outcomes)
    # The plain turn's five, plus for each call its row claimed and its result stored, the
    # services listing's one read and resolve_date's two (opening days, closed days).
    assert len(statements) == 5 + 2 * 2 + 1 + 2, statements


def test_a_tool_call_claims_its_row_runs_and_stores_the_result(business, frozen, statements):
    chat = a_conversation()
    statements.clear()
    outcome = execute_tool_call(
        conversation=chat, call_id="call_1", name="resolve_date", raw_arguments='{"text": "Wednesday"}'
    )
    assert not outcome.error
    # The row claimed, the opening days and closed days read, the result stored.
    assert len(statements) == 4, statements
