"""Helpers for the operator command tests (tests/test_cmd_*.py): stored conversations and running commands."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from io import StringIO

from django.core.management import call_command

from chatdesk.conversations.models import Conversation, Message, ToolCall

_numbers = itertools.count(1)


def stored_conversation(
    *,
    started: datetime,
    minutes: float = 5,
    messages: Sequence[tuple[str, str]] = (),
    tool_calls: Sequence[dict] = (),
    **fields: object,
) -> Conversation:
    """A stored conversation as the chat leaves it, started at `started`, last active `minutes` later.

    `messages` are (role, text), ten seconds apart; `tool_calls` are ToolCall fields.
    """
    fields.setdefault("model", "gpt-6-luna")
    conversation = Conversation.objects.create(number=f"INT-2026-{next(_numbers):05d}", **fields)
    Conversation.objects.filter(pk=conversation.pk).update(
        started_at=started, last_activity_at=started + timedelta(minutes=minutes)
    )
    for index, (role, text) in enumerate(messages):
        message = Message.objects.create(conversation=conversation, role=role, text=text)
        Message.objects.filter(pk=message.pk).update(created_at=started + timedelta(seconds=10 * index))
    for index, call in enumerate(tool_calls):
        created = ToolCall.objects.create(conversation=conversation, call_id=f"call_{index}", **call)
        ToolCall.objects.filter(pk=created.pk).update(created_at=started + timedelta(seconds=10 * index + 5))
    Conversation.objects.filter(pk=conversation.pk).update(message_count=len(messages))
    conversation.refresh_from_db()
    return conversation


def run(command: str, *args: str, **options: object) -> str:
    """The command's standard output (its errors raise CommandError)."""
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def help_text(command: str) -> str:
    """What `manage.py <command> --help` prints."""
    from django.core.management import get_commands, load_command_class

    # From the app that provides it, as manage.py finds it (send_reminders is bookings').
    parser = load_command_class(get_commands()[command], command).create_parser("manage.py", command)
    return parser.format_help()
