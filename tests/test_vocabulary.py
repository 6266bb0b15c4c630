"""One vocabulary (issue 10 item 7): technician, conversation, and one set of channel names.

Pins the words people see (admin labels), the words in the code, and the migrations that moved
the code to them without moving the data: the Employee -> Technician and Interaction ->
Conversation renames keep their tables and columns.
"""

from __future__ import annotations

import html as html_lib
import importlib
import re
from datetime import datetime
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.urls import reverse

from bookings.models import ActorKind, Booking, BookingEvent, Channel, Technician
from bookings.services import Actor, booking_create
from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall
from tests.conftest import MONDAY_NOON_UTC
from tests.staff import staff_groups
from tests.test_conversation_admin import converse

pytestmark = pytest.mark.django_db

TORONTO = ZoneInfo("America/Toronto")
RENAME = importlib.import_module("bookings.migrations.0004_employee_becomes_technician")


def sql_statements(app: str, migration: str) -> list[str]:
    out = StringIO()
    call_command("sqlmigrate", app, migration, stdout=out)
    lines = [line.strip() for line in out.getvalue().splitlines()]
    return [line for line in lines if line and not line.startswith("--") and line not in ("BEGIN;", "COMMIT;")]


# --- Technician, not employee ----------------------------------------------------------------


def test_the_technician_rename_moves_no_booking_data():
    statements = sql_statements("bookings", "0004_employee_becomes_technician")
    # Bookings, working hours and time off keep their column employee_id (db_column), and the
    # technicians their table: nothing but the trades join table's column is touched.
    for table in ("bookings_booking", "bookings_workinghours", "bookings_calendarevent", '"bookings_employee" '):
        assert not [s for s in statements if table in s], statements
    if connection.vendor == "postgresql":
        assert statements == ['ALTER TABLE "bookings_employee_trades" RENAME COLUMN "employee_id" TO "technician_id";']
    assert Technician._meta.db_table == "bookings_employee"
    assert Booking._meta.get_field("technician").column == "employee_id"


def a_booking(business) -> Booking:
    return booking_create(
        service=business.repair,
        start=datetime(2026, 11, 17, 10, tzinfo=TORONTO),
        customer_name="Dana Smith",
        customer_phone="(416) 555-0123",
        address="12 Elm St, Toronto",
        channel=Channel.CHAT,
        actor=Actor.customer(Channel.CHAT),
        now=datetime(2026, 11, 16, 8, tzinfo=TORONTO),
    )


def test_the_rename_rewrites_the_audit_rows_written_with_employee_id(business):
    booking = a_booking(business)
    created = booking.events.get(kind=BookingEvent.Kind.CREATED)
    assert created.changes["technician_id"] == booking.technician_id  # new rows speak the new word
    BookingEvent.objects.filter(pk=created.pk).update(
        changes={"start": "2026-11-17T15:00:00+00:00", "employee_id": 7, "status": "confirmed"}
    )
    moved = BookingEvent.objects.create(
        booking=booking,
        kind=BookingEvent.Kind.RESCHEDULED,
        actor_kind=ActorKind.SYSTEM,
        changes={"from": {"start": "a", "employee_id": 1}, "to": {"start": "b", "employee_id": 2}},
    )
    # Another kind of event with an employee_id-looking key is not the migration's business.
    noted = BookingEvent.objects.create(
        booking=booking, kind=BookingEvent.Kind.CONFIRMED, actor_kind=ActorKind.SYSTEM, changes={"employee_id": 3}
    )

    with connection.schema_editor() as editor:
        RENAME.forwards(django_apps, editor)

    created.refresh_from_db()
    moved.refresh_from_db()
    noted.refresh_from_db()
    assert created.changes == {"start": "2026-11-17T15:00:00+00:00", "technician_id": 7, "status": "confirmed"}
    assert moved.changes == {"from": {"start": "a", "technician_id": 1}, "to": {"start": "b", "technician_id": 2}}
    assert noted.changes == {"employee_id": 3}

    with connection.schema_editor() as editor:
        RENAME.backwards(django_apps, editor)
    moved.refresh_from_db()
    assert moved.changes == {"from": {"start": "a", "employee_id": 1}, "to": {"start": "b", "employee_id": 2}}


def test_staff_keep_their_technician_permissions_through_the_rename(django_user_model):
    technician_type = ContentType.objects.get_for_model(Technician)
    # As a database migrated before the rename can hold them: view_employee under a stale
    # content type (beside the new view_technician that post_migrate made), and add_employee
    # with no add_technician yet.
    stale_type = ContentType.objects.create(app_label="bookings", model="employee")
    view_old = Permission.objects.create(content_type=stale_type, codename="view_employee", name="Can view employee")
    Permission.objects.filter(content_type=technician_type, codename="add_technician").delete()
    add_old = Permission.objects.create(content_type=technician_type, codename="add_employee", name="Can add employee")
    dispatchers = Group.objects.create(name="Legacy dispatchers")
    dispatchers.permissions.add(view_old, add_old)
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(view_old)

    with connection.schema_editor() as editor:
        RENAME.forwards(django_apps, editor)

    assert not Permission.objects.filter(codename__endswith="_employee").exists()
    held = {(p.content_type_id, p.codename, p.name) for p in dispatchers.permissions.all()}
    assert held == {
        (technician_type.pk, "view_technician", "Can view technician"),
        (technician_type.pk, "add_technician", "Can add technician"),
    }
    clerk = django_user_model.objects.get(pk=clerk.pk)  # a fresh permission cache
    assert clerk.has_perm("bookings.view_technician")


def test_the_rename_renames_the_content_type_when_contenttypes_did_not(django_user_model):
    try:
        ContentType.objects.filter(app_label="bookings", model="technician").delete()
        old_type = ContentType.objects.create(app_label="bookings", model="employee")
        Permission.objects.create(content_type=old_type, codename="change_employee", name="Can change employee")

        with connection.schema_editor() as editor:
            RENAME.forwards(django_apps, editor)

        old_type.refresh_from_db()
        assert old_type.model == "technician"
        assert list(Permission.objects.filter(content_type=old_type).values_list("codename", flat=True)) == [
            "change_technician"
        ]

        # A database with neither content type yet (fresh): nothing to move, post_migrate makes them.
        old_type.delete()
        with connection.schema_editor() as editor:
            RENAME.forwards(django_apps, editor)
        assert not ContentType.objects.filter(app_label="bookings", model__in=["employee", "technician"]).exists()
    finally:
        ContentType.objects.clear_cache()


# --- Conversation, not interaction -----------------------------------------------------------

CONVERSATION_MIGRATION = importlib.import_module("chatdesk.migrations.0011_interaction_becomes_conversation")


def test_the_conversation_rename_moves_no_data():
    # State-only: not one statement touches a table (the only operation left is the Python one
    # that renames the content type and the permission codenames).
    assert sql_statements("chatdesk", "0011_interaction_becomes_conversation") == []
    assert Conversation._meta.db_table == "chatdesk_interaction"
    for model in (Message, ToolCall, HandoffRequest):
        assert model._meta.get_field("conversation").column == "interaction_id"


def test_staff_keep_their_conversation_permissions_through_the_rename(django_user_model):
    conversation_type = ContentType.objects.get_for_model(Conversation)
    try:
        # As a database migrated up to 0010 holds them: the content type and codenames of old.
        ContentType.objects.filter(pk=conversation_type.pk).update(model="interaction")
        for permission in Permission.objects.filter(content_type=conversation_type, codename__endswith="_conversation"):
            permission.codename = permission.codename.replace("_conversation", "_interaction")
            permission.save()
        dispatchers = Group.objects.create(name="Night dispatch")
        dispatchers.permissions.add(
            *Permission.objects.filter(codename__in=["view_interaction", "take_over_interaction"])
        )
        clerk = django_user_model.objects.create_user("clerk", is_staff=True)
        clerk.user_permissions.add(Permission.objects.get(codename="change_interaction"))

        with connection.schema_editor() as editor:
            CONVERSATION_MIGRATION.forwards(django_apps, editor)

        ContentType.objects.clear_cache()
        assert ContentType.objects.get(pk=conversation_type.pk).model == "conversation"
        assert not Permission.objects.filter(codename__endswith="_interaction").exists()
        assert set(dispatchers.permissions.values_list("codename", flat=True)) == {
            "view_conversation",
            "take_over_conversation",
        }
        clerk = django_user_model.objects.get(pk=clerk.pk)  # a fresh permission cache
        assert clerk.has_perm("chatdesk.change_conversation")
        assert not clerk.has_perm("chatdesk.view_conversation")

        # And back: a rollback to 0010 leaves what 0010's code expects.
        with connection.schema_editor() as editor:
            CONVERSATION_MIGRATION.backwards(django_apps, editor)
        assert ContentType.objects.get(pk=conversation_type.pk).model == "interaction"
        assert set(dispatchers.permissions.values_list("codename", flat=True)) == {
            "view_interaction",
            "take_over_interaction",
        }
        with connection.schema_editor() as editor:
            CONVERSATION_MIGRATION.forwards(django_apps, editor)
    finally:
        ContentType.objects.clear_cache()


def test_holders_of_a_stale_old_permission_get_the_new_one():
    # After a rollback to 0010 and a migrate forward, post_migrate has made the new content type
    # and permissions beside the old ones: the old ones' holders must not lose their access.
    try:
        stale_type = ContentType.objects.create(app_label="chatdesk", model="interaction")
        stale = Permission.objects.create(content_type=stale_type, codename="take_over_interaction", name="x")
        night = Group.objects.create(name="Night desk")
        night.permissions.add(stale)

        with connection.schema_editor() as editor:
            CONVERSATION_MIGRATION.forwards(django_apps, editor)

        assert list(night.permissions.values_list("codename", flat=True)) == ["take_over_conversation"]
        assert not Permission.objects.filter(codename__endswith="_interaction").exists()
    finally:
        ContentType.objects.clear_cache()


def test_the_groups_hold_the_new_codenames_after_the_migrations():
    groups = staff_groups()  # the migrations' own functions, 0003 to 0011, as migrate runs them
    owner = set(groups["Owner"].permissions.values_list("codename", flat=True))
    dispatcher = set(groups["Dispatcher"].permissions.values_list("codename", flat=True))
    assert {"view_conversation", "change_conversation", "take_over_conversation"} <= owner
    assert {"view_conversation", "take_over_conversation"} <= dispatcher
    assert not {c for c in owner | dispatcher if c.endswith("_interaction")}


def test_the_code_says_conversation():
    # The old word survives only where it names something outside the code's vocabulary: the
    # database (table, column, index and constraint names), the migrations that are history,
    # and the compatibility names kept for clients and operators (interaction_number in the
    # chat API, the prune_interactions command, the old admin URLs).
    allowed = re.compile(
        r"chatdesk_interaction(?![_a-z])|interaction_id\b|interaction_open_activity|tool_call_once_per_interaction"
        r"|interaction_number|prune_interactions|admin/chatdesk/interaction/|renamed the model \(Interaction"
    )
    root = Path(__file__).resolve().parent.parent
    offenders = []
    for folder in ("chatdesk", "bookings", "voice", "templates", "static", "bench"):
        for path in (root / folder).rglob("*"):
            if path.suffix not in {".py", ".html", ".js", ".css"} or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "nteraction" in allowed.sub("", line):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []


def test_clients_written_for_the_old_name_keep_working(client, business):
    started = client.post("/api/v1/chat/session/new", content_type="application/json").json()
    assert started["conversation_number"].startswith("INT-")
    assert started["interaction_number"] == started["conversation_number"]
    history = client.get(f"/api/v1/chat/session/{started['session_id']}/history").json()
    assert history["interaction_number"] == history["conversation_number"] == started["conversation_number"]
    schema = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert "Deprecated" in schema["SessionOut"]["properties"]["interaction_number"]["description"]


def test_staff_bookmarks_and_crontabs_from_before_the_rename_keep_working(admin_client, business):
    conversation = Conversation.objects.create(number="INT-2026-00977")
    old = admin_client.get(f"/admin/chatdesk/interaction/{conversation.pk}/change/?_changelist_filters=status%3Dopen")
    assert old.status_code == 301
    assert old["Location"] == (
        f"/admin/chatdesk/conversation/{conversation.pk}/change/?_changelist_filters=status%3Dopen"
    )
    assert admin_client.get(old["Location"]).status_code == 200
    assert admin_client.get("/admin/chatdesk/interaction/").headers["Location"] == "/admin/chatdesk/conversation/"

    err, out = StringIO(), StringIO()
    call_command("prune_interactions", "--older-than-days", "90", "--dry-run", stdout=out, stderr=err)
    assert "now called prune_conversations" in err.getvalue()
    dry = StringIO()
    call_command("prune_conversations", "--older-than-days", "90", "--dry-run", stdout=dry)
    assert out.getvalue() == dry.getvalue()


# --- One set of channel names ----------------------------------------------------------------

CHANNEL_MIGRATION = importlib.import_module("chatdesk.migrations.0010_one_vocabulary")


def apps_at(app: str, migration: str):
    """The models as they were right after `migration` (0010 knows the model as Interaction)."""
    return MigrationLoader(connection).project_state((app, migration)).apps


def test_a_conversation_channel_is_a_booking_channel_of_the_same_name():
    assert dict(Conversation.ChannelKind.choices) == {"chat": "Chat", "voice": "Voice"}
    booking_channels = dict(Channel.choices)
    for value, label in Conversation.ChannelKind.choices:
        assert booking_channels[value] == label
    assert Conversation().channel == Message().channel == Channel.CHAT


def test_the_channel_migration_converts_text_rows_to_chat_and_back():
    typed = Conversation.objects.create(number="INT-2026-00901")
    called = Conversation.objects.create(number="INT-2026-00902", channel=Conversation.ChannelKind.VOICE)
    said = Message.objects.create(conversation=typed, role=Message.Role.CUSTOMER, text="hi")
    spoke = Message.objects.create(conversation=called, role=Message.Role.CUSTOMER, text="hi", channel="voice")
    # Rows as they were stored before the vocabulary was made one.
    Conversation.objects.filter(pk=typed.pk).update(channel="text")
    Message.objects.filter(pk=said.pk).update(channel="text")

    with connection.schema_editor() as editor:
        CHANNEL_MIGRATION.forwards(apps_at("chatdesk", "0010_one_vocabulary"), editor)
    assert dict(Conversation.objects.values_list("pk", "channel")) == {typed.pk: "chat", called.pk: "voice"}
    assert dict(Message.objects.values_list("pk", "channel")) == {said.pk: "chat", spoke.pk: "voice"}

    with connection.schema_editor() as editor:
        CHANNEL_MIGRATION.backwards(apps_at("chatdesk", "0010_one_vocabulary"), editor)
    assert dict(Conversation.objects.values_list("pk", "channel")) == {typed.pk: "text", called.pk: "voice"}
    assert dict(Message.objects.values_list("pk", "channel")) == {said.pk: "text", spoke.pk: "voice"}


# --- The words staff read --------------------------------------------------------------------


def visible_text(response) -> str:
    """The page as read: tags, scripts and attribute values (URLs, ids) left out."""
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", html))


def test_staff_pages_say_technician_and_conversation(admin_client, business):
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        conversation = converse(business, handoff=True)
    index = visible_text(admin_client.get(reverse("admin:index")))
    assert "Technicians" in index and "Conversations" in index
    pages = {
        "index": index,
        "conversations": visible_text(admin_client.get(reverse("admin:chatdesk_conversation_changelist"))),
        "conversation": visible_text(
            admin_client.get(reverse("admin:chatdesk_conversation_change", args=[conversation.pk]))
        ),
        "handoffs": visible_text(admin_client.get(reverse("admin:chatdesk_handoffrequest_changelist"))),
        "technicians": visible_text(admin_client.get(reverse("admin:bookings_technician_changelist"))),
        "bookings": visible_text(admin_client.get(reverse("admin:bookings_booking_changelist"))),
        "dashboard": visible_text(admin_client.get(reverse("admin:chatdesk_dashboard"))),
        "live": visible_text(admin_client.get(reverse("staff-live"))),
    }
    for name, text in pages.items():
        # INT- numbers are the conversations' reference numbers, not the word.
        words = re.findall(r"\b(employees?|interactions?)\b", text, flags=re.I)
        assert not words, (name, words)
