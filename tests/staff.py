"""Staff accounts for tests: the permission groups as the migrations make them, and grants.

Transactional tests elsewhere in the suite flush the reused test database, groups included,
so `staff_groups()` runs the migrations' own functions again (both are idempotent).
"""

from __future__ import annotations

import importlib

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# Each migration that makes, grants to or renames the groups' permissions, in the order they
# run, with the function that does it (bookings 0004: view_employee & co. -> view_technician;
# chatdesk 0011: view_interaction & co. -> view_conversation).
GROUP_MIGRATIONS = [
    ("chatdesk", "0003_staff_groups", "create_groups"),
    ("bookings", "0004_employee_becomes_technician", "forwards"),
    ("chatdesk", "0009_take_over_permission", "grant"),
    ("chatdesk", "0011_interaction_becomes_conversation", "forwards"),
    ("bookings", "0006_text_messages", "add_to_groups"),
]
_STATES: dict[str, object] = {}


def staff_groups() -> dict[str, Group]:
    """Dispatcher and Owner, with what the migrations give them."""
    for app, name, function in GROUP_MIGRATIONS:
        migration = importlib.import_module(f"{app}.migrations.{name}")
        if name not in _STATES:
            _STATES[name] = MigrationExecutor(connection).loader.project_state((app, name)).apps
        with connection.schema_editor() as editor:
            getattr(migration, function)(_STATES[name], editor)
    return {group.name: group for group in Group.objects.filter(name__in=["Dispatcher", "Owner"])}


def grant(user, *permissions: str):
    """Give `user` each "app_label.codename" permission directly; returns the user, reloaded."""
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    # has_perm caches per user object: a fresh one sees the grants.
    return get_user_model().objects.get(pk=user.pk)
