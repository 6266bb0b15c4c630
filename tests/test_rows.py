"""chatdesk.conversations.rows: the chat turn's SQL without the ORM must read and write exactly what the ORM would.

On PostgreSQL here, and on SQLite (what `make run` uses) in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from chatdesk.conversations import rows
from chatdesk.conversations.models import Conversation, Message, ToolCall

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def a_conversation() -> Conversation:
    return Conversation.objects.create(
        number="INT-2026-00042",
        cost_usd=Decimal("0.012345"),
        model_items=[{"role": "user", "content": "héllo <b>"}, {"type": "function_call", "arguments": "{}"}],
        guided_state={"step": "menu"},
        message_count=3,
    )


def fields_of(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_fetch_one_reads_what_the_orm_reads():
    conversation = a_conversation()
    fetched = rows.fetch_one(Conversation, field="session_id", value=conversation.session_id)
    assert fields_of(fetched) == fields_of(Conversation.objects.get(pk=conversation.pk))
    assert isinstance(fetched.cost_usd, Decimal)
    assert fetched._state.adding is False
    assert rows.fetch_one(Conversation, field="session_id", value="no-such-session") is None


def test_insert_applies_defaults_and_auto_now_and_sets_the_pk():
    conversation = a_conversation()
    before = timezone.now()
    message = Message(conversation=conversation, role=Message.Role.CUSTOMER, text="My furnace is banging")
    rows.insert(message)
    assert message.pk
    stored = Message.objects.get(pk=message.pk)
    assert stored.text == "My furnace is banging"
    assert stored.created_at >= before
    assert stored.latency_ms == message.latency_ms
    call = ToolCall(conversation=conversation, call_id="call_1", name="resolve_date", raw_arguments="{}")
    rows.insert(call)
    assert ToolCall.objects.get(pk=call.pk).arguments == {}


def test_update_adds_in_sql_and_assigns_values():
    conversation = a_conversation()
    changed = rows.update(
        Conversation,
        conversation.pk,
        add={"message_count": 2, "cost_usd": Decimal("0.000005"), "input_tokens": 120},
        assign={"model_items": [{"role": "assistant", "content": "Friday 9:00?"}], "last_error": ""},
    )
    assert changed == 1
    conversation.refresh_from_db()
    assert conversation.message_count == 5
    assert conversation.cost_usd == Decimal("0.012350")
    assert conversation.input_tokens == 120
    assert conversation.model_items == [{"role": "assistant", "content": "Friday 9:00?"}]
    assert rows.update(Conversation, 999_999, add={"message_count": 1}) == 0


def test_update_appends_to_the_history_as_stored_not_as_read():
    conversation = a_conversation()
    stored_meanwhile = {"role": "assistant", "content": "A staff reply"}
    rows.update(Conversation, conversation.pk, append={"model_items": [stored_meanwhile]})
    # `conversation` still holds the history read before; the append adds to the row's.
    rows.update(
        Conversation,
        conversation.pk,
        add={"message_count": 1},
        append={"model_items": [{"role": "user", "content": "ok"}]},
    )
    conversation.refresh_from_db()
    assert conversation.model_items[-3:] == [
        {"type": "function_call", "arguments": "{}"},
        stored_meanwhile,
        {"role": "user", "content": "ok"},
    ]
    assert conversation.message_count == 4


def test_the_same_statements_work_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "1",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    script = textwrap.dedent(
        """
        from decimal import Decimal
        from chatdesk.conversations import rows
        from chatdesk.conversations.models import Conversation, Message
        i = Conversation.objects.create(number="INT-2026-00001", cost_usd=Decimal("0.5"), model_items=[{"a": 1}])
        got = rows.fetch_one(Conversation, field="session_id", value=i.session_id)
        assert got.model_items == [{"a": 1}] and got.cost_usd == Decimal("0.5"), (got.model_items, got.cost_usd)
        assert got.started_at == Conversation.objects.get(pk=i.pk).started_at
        m = Message(conversation=i, role="customer", text="hi")
        rows.insert(m)
        assert Message.objects.get(pk=m.pk).text == "hi"
        add = {"message_count": 1, "cost_usd": Decimal("0.25")}
        rows.update(Conversation, i.pk, add=add, assign={"model_items": []})
        i.refresh_from_db()
        assert (i.message_count, i.cost_usd, i.model_items) == (1, Decimal("0.75"), []), (i.message_count, i.cost_usd)
        rows.update(Conversation, i.pk, append={"model_items": [{"b": "é"}]})
        rows.update(Conversation, i.pk, add={"message_count": 2}, append={"model_items": [{"c": [1]}, "d"]})
        i.refresh_from_db()
        assert (i.message_count, i.model_items) == (3, [{"b": "é"}, {"c": [1]}, "d"]), i.model_items
        print("sqlite ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "sqlite ok" in done.stdout
