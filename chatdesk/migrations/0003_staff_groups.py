"""Staff permission groups: Dispatcher and Owner.

Also declares the two permissions the staff admin and the analytics API check
(`chatdesk.view_costs`, `chatdesk.view_customer_pii`): a schema-less change of
Interaction's Meta.

A group holds the permissions that exist when this migration runs; a model added later
must be added to the groups by its own migration.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DISPATCHER = "Dispatcher"
OWNER = "Owner"
# Apps whose every permission an owner has, costs and customer details included. Staff
# accounts (auth) stay with superusers: whoever may change users can make anyone superuser.
OWNER_APPS = ["bookings", "chatdesk"]
# Dispatchers run the day: bookings and reference data, callbacks; conversations read-only,
# without costs or customers' contact details.
DISPATCHER_CHATDESK = [
    "view_interaction",
    "view_message",
    "view_toolcall",
    "view_handoffrequest",
    "change_handoffrequest",
]


def create_groups(apps, schema_editor):
    alias = schema_editor.connection.alias
    # Permissions are normally created after all migrations (post_migrate), so on a fresh
    # database they do not exist yet: create them now, from the models as of this migration.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=alias)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.using(alias)

    dispatcher, _ = Group.objects.using(alias).get_or_create(name=DISPATCHER)
    booking_perms = perms.filter(content_type__app_label="bookings", codename__regex=r"^(view|change)_")
    chatdesk_perms = perms.filter(content_type__app_label="chatdesk", codename__in=DISPATCHER_CHATDESK)
    # add, not set: a group an operator already made by hand keeps what they gave it.
    dispatcher.permissions.add(*booking_perms, *chatdesk_perms)

    owner, _ = Group.objects.using(alias).get_or_create(name=OWNER)
    owner.permissions.add(*perms.filter(content_type__app_label__in=OWNER_APPS))


class Migration(migrations.Migration):
    dependencies = [
        ("chatdesk", "0002_voice_takeover_fields"),
        ("bookings", "0002_no_overlapping_bookings"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="interaction",
            options={
                "ordering": ["-started_at"],
                "permissions": [
                    ("view_costs", "Can see conversation costs and token usage"),
                    ("view_customer_pii", "Can see customers' phone numbers, emails and addresses"),
                ],
            },
        ),
        # Reversing keeps the groups: by then staff belong to them, and removing them is an
        # operator's decision, not a schema rollback's.
        migrations.RunPython(create_groups, migrations.RunPython.noop),
    ]
