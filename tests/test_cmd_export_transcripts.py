"""`manage.py export_transcripts`: JSON Lines, streamed in chunks, written whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import shlex
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from chatdesk.conversations import reports
from tests.cmd_fixtures import help_text, run, stored_conversation

pytestmark = pytest.mark.django_db

TORONTO = ZoneInfo("America/Toronto")
REPO = Path(__file__).resolve().parent.parent
NOVEMBER = ("--since", "2026-11-01", "--until", "2026-11-30")


@pytest.fixture
def stored():
    """Five November conversations with 3 messages and 2 tool calls each, and one in December."""
    first = datetime(2026, 11, 2, 9, 0, tzinfo=TORONTO)
    made = []
    for index in range(5):
        made.append(
            stored_conversation(
                started=first + timedelta(days=index),
                messages=[
                    ("assistant", "Hi! How can I help?"),
                    ("customer", f'Customer {index}: my sink is "blocked"\nsince Monday'),
                    ("assistant", "Let me check."),
                ],
                tool_calls=[
                    {"name": "resolve_date", "arguments": {"text": "Monday"}, "result": {"date": "2026-11-02"}},
                    {"name": "get_available_services", "arguments": {"trade": None}, "result": {"services": []}},
                ],
            )
        )
    stored_conversation(started=datetime(2026, 12, 1, 9, 0, tzinfo=TORONTO), messages=[("customer", "December")])
    return made


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_it_writes_one_conversation_per_line_with_messages_and_tool_calls(stored, tmp_path):
    out = tmp_path / "november.jsonl"
    summary = run("export_transcripts", *NOVEMBER, "--out", str(out))
    assert "Exported 5 conversations" in summary
    rows = lines_of(out)
    assert [r["number"] for r in rows] == [i.number for i in stored]
    assert all(len(r["messages"]) == 3 and len(r["tool_calls"]) == 2 for r in rows)
    first = rows[0]
    assert first["messages"][1]["text"] == 'Customer 0: my sink is "blocked"\nsince Monday'
    assert [m["role"] for m in first["messages"]] == ["assistant", "customer", "assistant"]
    assert [c["name"] for c in first["tool_calls"]] == ["resolve_date", "get_available_services"]
    assert first["tool_calls"][0]["arguments"] == {"text": "Monday"}
    assert first["started_at"].startswith("2026-11-02T14:00:00")
    assert first["cost_usd"] == "0.000000"
    assert "model_items" not in first


@pytest.mark.parametrize(("chunk_size", "chunks"), [(2, 3), (5, 1)])
def test_it_streams_in_chunks_with_prefetches_per_chunk(
    stored, tmp_path, django_assert_num_queries, chunk_size, chunks
):
    # The count for the progress line, one server-side cursor read chunk by chunk, and per
    # chunk one query for its messages and one for its tool calls: never one per conversation.
    with django_assert_num_queries(1 + 1 + 2 * chunks):
        run("export_transcripts", *NOVEMBER, "--out", str(tmp_path / "out.jsonl"), "--chunk-size", str(chunk_size))


def test_it_writes_to_standard_output_with_a_dash(stored):
    output = run("export_transcripts", *NOVEMBER, "--out", "-")
    assert [json.loads(line)["number"] for line in output.splitlines()] == [i.number for i in stored]


def test_the_file_is_private_and_no_temporary_file_is_left(stored, tmp_path):
    out = tmp_path / "export.jsonl"
    run("export_transcripts", *NOVEMBER, "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


def test_a_failure_half_way_leaves_the_previous_file_untouched(stored, tmp_path, monkeypatch):
    out = tmp_path / "export.jsonl"
    out.write_text("the previous export\n")
    real = reports.transcript_dict
    calls = []

    def failing(conversation):
        calls.append(conversation.number)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return real(conversation)

    monkeypatch.setattr(reports, "transcript_dict", failing)
    with pytest.raises(RuntimeError):
        run("export_transcripts", *NOVEMBER, "--out", str(out))
    assert out.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


def test_running_it_again_replaces_the_file(stored, tmp_path):
    out = tmp_path / "export.jsonl"
    run("export_transcripts", *NOVEMBER, "--out", str(out))
    run("export_transcripts", "--since", "2026-11-02", "--until", "2026-11-02", "--out", str(out))
    assert len(lines_of(out)) == 1


def test_an_empty_period_writes_an_empty_file(tmp_path):
    out = tmp_path / "empty.jsonl"
    assert "Exported 0 conversations" in run("export_transcripts", *NOVEMBER, "--out", str(out))
    assert out.read_text() == ""


def test_it_refuses_a_directory_that_does_not_exist(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("export_transcripts", *NOVEMBER, "--out", str(tmp_path / "nope" / "x.jsonl"))


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_it_shows_progress_on_stderr_only_on_a_terminal(stored, tmp_path):
    err = Terminal()
    call_command("export_transcripts", *NOVEMBER, "--out", str(tmp_path / "x.jsonl"), stdout=StringIO(), stderr=err)
    assert "\r5/5 conversations exported" in err.getvalue()

    # From cron (stderr to a file or mail) there is no progress line, even if stdout is a terminal.
    quiet = StringIO()
    call_command("export_transcripts", *NOVEMBER, "--out", str(tmp_path / "y.jsonl"), stdout=Terminal(), stderr=quiet)
    assert quiet.getvalue() == ""


def test_no_progress_line_mixes_into_an_export_to_standard_output(stored):
    err = Terminal()
    call_command("export_transcripts", *NOVEMBER, "--out", "-", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_it_refuses_a_directory_as_output(tmp_path):
    with pytest.raises(CommandError, match=f"--out: {tmp_path} is a directory; give a file name inside it"):
        run("export_transcripts", *NOVEMBER, "--out", str(tmp_path))


def test_it_refuses_a_directory_it_may_not_write_in(stored):
    # /sys refuses new files to every user, root included (chmod would not stop root).
    with pytest.raises(CommandError, match=r"--out: cannot write in /sys \(Permission denied\)"):
        run("export_transcripts", *NOVEMBER, "--out", "/sys/export.jsonl")


def test_a_disk_error_while_writing_is_a_clear_error_and_leaves_nothing(stored, tmp_path, monkeypatch):
    out = tmp_path / "export.jsonl"

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CommandError, match=f"--out: could not write {out} \\(No space left on device\\)"):
        run("export_transcripts", *NOVEMBER, "--out", str(out))
    assert list(tmp_path.iterdir()) == []


def test_it_needs_since_until_and_out():
    with pytest.raises(CommandError, match="--out"):
        run("export_transcripts", *NOVEMBER)
    with pytest.raises(CommandError, match="is after --until"):
        run("export_transcripts", "--since", "2026-12-01", "--until", "2026-11-01", "--out", "-")


def test_help_warns_about_pii():
    text = help_text("export_transcripts")
    assert "PII" in text
    assert "--out FILE" in text


def test_a_reader_that_stops_early_ends_the_export_quietly(tmp_path):
    # `manage.py export_transcripts --out - | head -1` in a real shell, on make run's SQLite
    # database with the demo history: far more than a pipe buffer holds, so the export is
    # still writing when head leaves, and its next write meets the closed pipe.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
    }
    for step in (["migrate", "--no-input"], ["seed_demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *step], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    today = datetime.now(TORONTO).date()
    args = ["manage.py", "export_transcripts", "--since", str(today - timedelta(days=70)), "--until", str(today)]
    full = subprocess.run(
        [sys.executable, *args, "--out", "-"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    export = shlex.join([sys.executable, *args, "--out", "-"])
    assert len(full.stdout) > 256 * 1024  # several pipe buffers

    piped = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {export} | head -1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert piped.returncode == 0
    assert json.loads(piped.stdout)["number"].startswith("INT-")


# --- Customers' contact details: masked unless --with-pii ---------------------------------------


@pytest.fixture
def with_contact_details():
    return stored_conversation(
        started=datetime(2026, 11, 3, 9, 0, tzinfo=TORONTO),
        messages=[("customer", "Call me at 416-555-0142 or dana@example.com")],
        tool_calls=[
            {
                "name": "create_booking",
                "arguments": {"customer_name": "Dana", "customer_phone": "416-555-0142", "address": "12 Elm Street"},
                "result": {"booking": {"booking_number": "BK-2026-000001"}},
            }
        ],
        cost_usd="0.001234",
    )


def test_an_export_masks_contact_details_by_default_and_keeps_costs(with_contact_details, tmp_path):
    out = tmp_path / "masked.jsonl"
    run("export_transcripts", *NOVEMBER, "--out", str(out))
    (row,) = lines_of(out)
    assert row["messages"][0]["text"] == "Call me at ••• or •••"
    assert row["tool_calls"][0]["arguments"] == {"customer_name": "Dana", "customer_phone": "•••", "address": "•••"}
    assert row["tool_calls"][0]["result"] == {"booking": {"booking_number": "BK-2026-000001"}}
    assert row["cost_usd"] == "0.001234"


def test_with_pii_the_export_keeps_contact_details(with_contact_details, tmp_path):
    out = tmp_path / "clear.jsonl"
    run("export_transcripts", *NOVEMBER, "--with-pii", "--out", str(out))
    (row,) = lines_of(out)
    assert row["messages"][0]["text"] == "Call me at 416-555-0142 or dana@example.com"
    assert row["tool_calls"][0]["arguments"]["customer_phone"] == "416-555-0142"
