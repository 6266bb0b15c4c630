"""Database-enforced 'no double booking' on PostgreSQL.

An exclusion constraint over (employee, occupied period) for active bookings: the last
line of defence behind the row lock in bookings.services.booking_create. SQLite has no
such constraint; there IMMEDIATE transactions serialize writers instead (settings).
The status list must match bookings.models.ACTIVE_STATUSES.
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap
    EXCLUDE USING gist (
        employee_id WITH =,
        tstzrange(occupied_start, occupied_end, '[)') WITH &&
    ) WHERE (status IN ('pending', 'confirmed'));
"""
DROP = "ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
