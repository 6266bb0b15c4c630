"""Indexes for the staff admin, the dashboard and the analytics API over a year of data.

Plain SQL on PostgreSQL, built CONCURRENTLY (so a deploy does not block chat writes while a large
message table is indexed), which needs a non-atomic migration and one statement per
operation. Django's model state does not know these indexes: if one is ever declared in
a model's Meta, drop it here first.
"""

from django.db import migrations

INDEXES = {
    # Full-text search over transcripts (transcript_matches, chatdesk/backoffice/conversation_admin.py).
    # The expression must be exactly what SearchVector("text", config="english") compiles to, or the
    # planner cannot use the index; tests/test_conversation_admin.py checks the plan.
    "message_text_search": ("ON chatdesk_message USING gin (to_tsvector('english'::regconfig, COALESCE(text, '')))"),
    # The conversation list (newest first, ties by id as the admin adds -pk), its date
    # hierarchy, and the dashboard's per-day counts over a date range.
    "interaction_started": "ON chatdesk_interaction (started_at, id)",
    # Reply latency percentiles per day: an index-only scan over assistant replies.
    "message_reply_latency": (
        "ON chatdesk_message (created_at) INCLUDE (latency_ms, channel) "
        "WHERE role = 'assistant' AND latency_ms IS NOT NULL"
    ),
    # "Had a tool error" filter: the few failed calls, not every call.
    "toolcall_failed": "ON chatdesk_toolcall (interaction_id) WHERE error <> ''",
}


def _on_postgresql(statement: str):
    # PostgreSQL only: SQLite (`make run`) has neither CONCURRENTLY, GIN nor INCLUDE, and a
    # demo database does not need them.
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatdesk", "0003_staff_groups")]

    operations = [
        migrations.RunPython(
            _on_postgresql(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}"),
            _on_postgresql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"),
        )
        for name, definition in INDEXES.items()
    ]
