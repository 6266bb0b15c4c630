"""One vocabulary for the conversation record (issue 10 item 7).

Channels: Interaction.channel and Message.channel said "text" where bookings (Channel) said
"chat" for the same door; reports, the dashboard filter and CSVs showed both words. The rows
are converted here (and back on reverse), so every filter and report speaks one vocabulary.

Conversation: staff read "conversation" for an Interaction everywhere (verbose names, and the
names of its default permissions, which Django set from the old verbose name). No SQL.
"""

import django.db.models.deletion
from django.db import migrations, models

CHOICES = [("chat", "Chat"), ("voice", "Voice")]


def _convert(apps, old: str, new: str) -> None:
    for model in ("Interaction", "Message"):
        apps.get_model("chatdesk", model).objects.filter(channel=old).update(channel=new)


def _name_permissions(apps, new: str) -> None:
    Permission = apps.get_model("auth", "Permission")
    for action in ("add", "change", "delete", "view"):
        Permission.objects.filter(
            content_type__app_label="chatdesk", content_type__model="interaction", codename=f"{action}_interaction"
        ).update(name=f"Can {action} {new}")


def forwards(apps, schema_editor):
    _convert(apps, "text", "chat")
    _name_permissions(apps, "conversation")


def backwards(apps, schema_editor):
    _convert(apps, "chat", "text")
    _name_permissions(apps, "interaction")


class Migration(migrations.Migration):
    dependencies = [
        ("chatdesk", "0009_take_over_permission"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterField(
            model_name="interaction",
            name="channel",
            field=models.CharField(choices=CHOICES, default="chat", max_length=10),
        ),
        migrations.AlterField(
            model_name="message",
            name="channel",
            field=models.CharField(choices=CHOICES, default="chat", max_length=10),
        ),
        migrations.AlterModelOptions(
            name="interaction",
            options={
                "ordering": ["-started_at"],
                "permissions": [
                    ("view_costs", "Can see conversation costs and token usage"),
                    ("view_customer_pii", "Can see customers' phone numbers, emails and addresses"),
                    ("take_over_interaction", "Can take over a live conversation and write to the customer"),
                ],
                "verbose_name": "conversation",
                "verbose_name_plural": "conversations",
            },
        ),
        *(
            migrations.AlterField(
                model_name=model,
                name="interaction",
                field=models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name=related_name,
                    to="chatdesk.interaction",
                    verbose_name="conversation",
                ),
            )
            for model, related_name in (
                ("message", "messages"),
                ("toolcall", "tool_calls"),
                ("handoffrequest", "handoffs"),
            )
        ),
        migrations.RunPython(forwards, backwards),
    ]
