"""One vocabulary (issue 10 item 7): technician, conversation, and one set of channel names.

Pins the words people see (admin labels) and the migrations that moved the code to them
without moving the data: the Employee -> Technician rename keeps its table and columns.
"""

from __future__ import annotations

import html as html_lib
import importlib
import re
from datetime import datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from bookings.models import ActorKind, Booking, BookingEvent, Channel, Technician
from bookings.services import Actor, booking_create
from chatdesk.conversations.models import Interaction, Message
from tests.conftest import MONDAY_NOON_UTC
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


# --- One set of channel names ----------------------------------------------------------------

CHANNEL_MIGRATION = importlib.import_module("chatdesk.migrations.0010_one_vocabulary")


def test_a_conversation_channel_is_a_booking_channel_of_the_same_name():
    assert dict(Interaction.ChannelKind.choices) == {"chat": "Chat", "voice": "Voice"}
    booking_channels = dict(Channel.choices)
    for value, label in Interaction.ChannelKind.choices:
        assert booking_channels[value] == label
    assert Interaction().channel == Message().channel == Channel.CHAT


def test_the_channel_migration_converts_text_rows_to_chat_and_back():
    typed = Interaction.objects.create(number="INT-2026-00901")
    called = Interaction.objects.create(number="INT-2026-00902", channel=Interaction.ChannelKind.VOICE)
    said = Message.objects.create(interaction=typed, role=Message.Role.CUSTOMER, text="hi")
    spoke = Message.objects.create(interaction=called, role=Message.Role.CUSTOMER, text="hi", channel="voice")
    # Rows as they were stored before the vocabulary was made one.
    Interaction.objects.filter(pk=typed.pk).update(channel="text")
    Message.objects.filter(pk=said.pk).update(channel="text")

    with connection.schema_editor() as editor:
        CHANNEL_MIGRATION.forwards(django_apps, editor)
    assert dict(Interaction.objects.values_list("pk", "channel")) == {typed.pk: "chat", called.pk: "voice"}
    assert dict(Message.objects.values_list("pk", "channel")) == {said.pk: "chat", spoke.pk: "voice"}

    with connection.schema_editor() as editor:
        CHANNEL_MIGRATION.backwards(django_apps, editor)
    assert dict(Interaction.objects.values_list("pk", "channel")) == {typed.pk: "text", called.pk: "voice"}
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
        "conversations": visible_text(admin_client.get(reverse("admin:chatdesk_interaction_changelist"))),
        "conversation": visible_text(
            admin_client.get(reverse("admin:chatdesk_interaction_change", args=[conversation.pk]))
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
