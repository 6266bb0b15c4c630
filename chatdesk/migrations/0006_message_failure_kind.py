from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chatdesk", "0005_call_record_truth"),
    ]

    operations = [
        migrations.AddField(
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
                    ("incomplete_retried", "Cut off, answered on retry"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("failure_kind", ""), _negated=True),
                fields=["created_at", "failure_kind"],
                name="message_model_failure",
            ),
        ),
    ]
