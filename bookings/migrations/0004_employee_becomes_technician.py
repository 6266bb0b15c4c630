"""Employee becomes Technician, in the code only: one word for the people who do the visits.

State-only for the real data: the model keeps its table (`db_table`) and every foreign key
keeps its column `employee_id` (`db_column`), so no booking row is rewritten and the
exclusion constraint of 0002, written over `employee_id`, keeps working. The one column
that does move is in the trades join table, whose column Django names after the model
(`technician_id`): a rename in the catalogue, no data copied on PostgreSQL.

Staff permissions follow the model: Django renames the content type (contenttypes' injected
RenameContentType) but not the permissions, so `view_employee` & co. become `view_technician`
& co. here, and the Dispatcher and Owner groups (chatdesk 0003) keep their access.

The audit rows' `changes` ({"employee_id": ...} on created/rescheduled events) are rewritten
to the new key, so history reads in one vocabulary.
"""

import django.db.models.deletion
from django.db import migrations, models

EVENT_KINDS = ("created", "rescheduled")


def _rename_keys(changes: dict, old: str, new: str) -> dict:
    renamed = {}
    for key, value in changes.items():
        if isinstance(value, dict):
            value = _rename_keys(value, old, new)
        renamed[new if key == old else key] = value
    return renamed


def _rewrite_events(apps, old: str, new: str) -> None:
    BookingEvent = apps.get_model("bookings", "BookingEvent")
    batch = []
    for event in BookingEvent.objects.filter(kind__in=EVENT_KINDS).only("pk", "changes").iterator(chunk_size=2000):
        changes = _rename_keys(event.changes or {}, old, new)
        if changes != event.changes:
            event.changes = changes
            batch.append(event)
        if len(batch) >= 2000:
            BookingEvent.objects.bulk_update(batch, ["changes"])
            batch = []
    if batch:
        BookingEvent.objects.bulk_update(batch, ["changes"])


def _move_permissions(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    old_type = ContentType.objects.filter(app_label="bookings", model=old).first()
    new_type = ContentType.objects.filter(app_label="bookings", model=new).first()
    if new_type is None and old_type is not None:
        # Migrated without contenttypes' rename (e.g. migrations run by hand): do it here.
        old_type.model = new
        old_type.save(update_fields=["model"])
        new_type, old_type = old_type, None
    if new_type is None:
        return  # a fresh database: post_migrate creates the permissions under the new name
    types = [t for t in (old_type, new_type) if t is not None]
    for action in ("add", "change", "delete", "view"):
        for stale in Permission.objects.filter(content_type__in=types, codename=f"{action}_{old}"):
            current = Permission.objects.filter(content_type=new_type, codename=f"{action}_{new}").first()
            if current is None:
                stale.content_type, stale.codename, stale.name = new_type, f"{action}_{new}", f"Can {action} {new}"
                stale.save(update_fields=["content_type", "codename", "name"])
                continue
            # Both exist (post_migrate ran in between): whoever held the old one gets the new one.
            for group in Group.objects.filter(permissions=stale):
                group.permissions.add(current)
            for user in stale.user_set.all():
                user.user_permissions.add(current)
            stale.delete()


def forwards(apps, schema_editor):
    _move_permissions(apps, "employee", "technician")
    _rewrite_events(apps, "employee_id", "technician_id")


def backwards(apps, schema_editor):
    _move_permissions(apps, "technician", "employee")
    _rewrite_events(apps, "technician_id", "employee_id")


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0003_service_keywords"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # Pin the table name first, so the rename below leaves the table where it is.
        migrations.AlterModelTable(name="employee", table="bookings_employee"),
        migrations.RenameModel(old_name="Employee", new_name="Technician"),
        migrations.AlterField(
            model_name="technician",
            name="trades",
            field=models.ManyToManyField(related_name="technicians", to="bookings.trade"),
        ),
        # Pin each column first, so renaming the field moves no column.
        migrations.AlterField(
            model_name="booking",
            name="employee",
            field=models.ForeignKey(
                db_column="employee_id",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="bookings",
                to="bookings.technician",
            ),
        ),
        migrations.RenameField(model_name="booking", old_name="employee", new_name="technician"),
        migrations.AlterField(
            model_name="workinghours",
            name="employee",
            field=models.ForeignKey(
                db_column="employee_id",
                on_delete=django.db.models.deletion.CASCADE,
                related_name="working_hours",
                to="bookings.technician",
            ),
        ),
        migrations.RenameField(model_name="workinghours", old_name="employee", new_name="technician"),
        migrations.AlterField(
            model_name="calendarevent",
            name="employee",
            field=models.ForeignKey(
                db_column="employee_id",
                on_delete=django.db.models.deletion.CASCADE,
                related_name="calendar_events",
                to="bookings.technician",
            ),
        ),
        migrations.RenameField(model_name="calendarevent", old_name="employee", new_name="technician"),
        migrations.AlterModelOptions(
            name="workinghours",
            options={"ordering": ["technician", "weekday", "start_time"], "verbose_name_plural": "working hours"},
        ),
        # The indexes name their field; the columns under them are unchanged, so the database
        # keeps the very same indexes and only the migration state learns the new field name.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="booking", name="booking_employee_window"),
                migrations.AddIndex(
                    model_name="booking",
                    index=models.Index(
                        condition=models.Q(("status__in", ["pending", "confirmed"])),
                        fields=["technician", "occupied_start", "occupied_end"],
                        name="booking_employee_window",
                    ),
                ),
                migrations.RemoveIndex(model_name="calendarevent", name="calendar_event_window"),
                migrations.AddIndex(
                    model_name="calendarevent",
                    index=models.Index(fields=["technician", "start", "end"], name="calendar_event_window"),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
