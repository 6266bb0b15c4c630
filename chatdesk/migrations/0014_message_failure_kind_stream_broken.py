"""Message.failure_kind gains stream_broken: a streamed reply that broke after some of its words (issue 14). No SQL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chatdesk", "0013_conversation_widget_source"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="failure_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("timeout", "Timed out"),
                    ("unreachable", "Unreachable (refused or reset)"),
                    ("rate_limited", "Rate limited (429)"),
                    ("server_error", "Server error (5xx)"),
                    ("bad_request", "Bad request (4xx)"),
                    ("incomplete", "Cut off (incomplete reply)"),
                    ("bad_reply", "Unusable reply"),
                    ("stream_broken", "Broke off mid-reply"),
                    ("incomplete_retried", "Cut off, answered on retry"),
                    ("budget_exhausted", "No OpenAI budget (guided flow)"),
                    ("budget_wait", "Waited for OpenAI budget"),
                ],
                max_length=20,
            ),
        ),
    ]
