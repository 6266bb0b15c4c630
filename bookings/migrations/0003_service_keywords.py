from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0002_no_overlapping_bookings"),
    ]

    operations = [
        migrations.AddField(
            model_name="service",
            name="keywords",
            field=models.TextField(
                blank=True,
                help_text=(
                    "Words and phrases customers use for this service, separated by commas "
                    "(e.g. furnace, no heat, banging noise). Case, plurals and small typos are forgiven."
                ),
            ),
        ),
    ]
