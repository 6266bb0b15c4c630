"""One set of channel names: a typed conversation's channel is "chat", as on its bookings.

Interaction.channel and Message.channel said "text" where bookings (Channel) said "chat" for
the same door; reports, the dashboard filter and CSVs showed both words. The rows are
converted here (and back on reverse), so every filter and report speaks one vocabulary.
"""

from django.db import migrations, models

CHOICES = [("chat", "Chat"), ("voice", "Voice")]


def _convert(apps, old: str, new: str) -> None:
    for model in ("Interaction", "Message"):
        apps.get_model("chatdesk", model).objects.filter(channel=old).update(channel=new)


def forwards(apps, schema_editor):
    _convert(apps, "text", "chat")


def backwards(apps, schema_editor):
    _convert(apps, "chat", "text")


class Migration(migrations.Migration):
    dependencies = [
        ("chatdesk", "0006_message_failure_kind"),
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
        migrations.RunPython(forwards, backwards),
    ]
