"""The permission to take a live conversation over: chatdesk.take_over_interaction.

Taking over, handing back and writing to the customer were open to any staff account; the
staff policy (chatdesk/conversations/access.py) now asks for this permission. A custom one,
not change_interaction: the conversation record stays read-only for everyone.

Owners get it (they have everything in the app). Dispatchers get it too: they run the
callbacks in the handoff queue (change_handoffrequest), and taking a live conversation over
is the same job while the customer is still there. They still see neither costs nor
contact details: a takeover shows them the masked transcript, and they write to the
customer through the conversation, not by phone.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSION = "take_over_interaction"
GROUPS = ["Owner", "Dispatcher"]


def grant(apps, schema_editor):
    alias = schema_editor.connection.alias
    # As in 0003: permissions are created after all migrations (post_migrate), so on a fresh
    # database this one does not exist yet; create it now, from the models as of here.
    app_config = apps.get_app_config("chatdesk")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=alias)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.using(alias).get(content_type__app_label="chatdesk", codename=PERMISSION)
    # Groups an operator removed are not recreated; groups they changed keep their changes.
    for group in Group.objects.using(alias).filter(name__in=GROUPS):
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("chatdesk", "0007_message_client_message_id"),
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
                    ("take_over_interaction", "Can take over a live conversation and write to the customer"),
                ],
            },
        ),
        # Reversing keeps the grant: removing a permission staff rely on is an operator's call.
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
