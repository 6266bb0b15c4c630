"""The model Interaction becomes Conversation (issue 10 item 7: one vocabulary in code too).

Only names move; no data does:
- The table keeps its name (db_table "chatdesk_interaction") and the foreign keys keep their
  column (db_column "interaction_id"), so the schema is untouched: every change below is
  state-only, and nothing locks or rewrites a table on a large install.
- The content type is renamed in place, and so are the permission codenames (add/change/
  delete/view_interaction and take_over_interaction become *_conversation). The permission
  rows keep their ids, so the Owner and Dispatcher groups, and every user granted one
  directly, keep what they had. Where both names exist (post_migrate ran in between, after a
  rollback), holders of the old permission get the new one.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

ACTIONS = ("add", "change", "delete", "view", "take_over")


def _move_permissions(apps, old: str, new: str) -> None:
    """As bookings 0004 does for Employee -> Technician, for this app's model."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    old_type = ContentType.objects.filter(app_label="chatdesk", model=old).first()
    new_type = ContentType.objects.filter(app_label="chatdesk", model=new).first()
    if new_type is None and old_type is not None:
        old_type.model = new
        old_type.save(update_fields=["model"])
        new_type, old_type = old_type, None
    if new_type is None:
        return  # a fresh database: post_migrate creates the permissions under the new name
    types = [t for t in (old_type, new_type) if t is not None]
    for action in ACTIONS:
        for stale in Permission.objects.filter(content_type__in=types, codename=f"{action}_{old}"):
            current = Permission.objects.filter(content_type=new_type, codename=f"{action}_{new}").first()
            if current is None:
                stale.content_type, stale.codename = new_type, f"{action}_{new}"
                stale.save(update_fields=["content_type", "codename"])
                continue
            # Both exist (post_migrate ran in between, e.g. after a rollback): whoever held the
            # old one gets the new one.
            for group in Group.objects.filter(permissions=stale):
                group.permissions.add(current)
            for user in stale.user_set.all():
                user.user_permissions.add(current)
            stale.delete()


def forwards(apps, schema_editor):
    _move_permissions(apps, "interaction", "conversation")


def backwards(apps, schema_editor):
    _move_permissions(apps, "conversation", "interaction")


def _conversation_fk(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        db_column="interaction_id",
        on_delete=django.db.models.deletion.CASCADE,
        related_name=related_name,
        to="chatdesk.conversation",
        verbose_name="conversation",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_calendar_feeds"),
        ("chatdesk", "0010_one_vocabulary"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterModelTable(name="interaction", table="chatdesk_interaction"),
                migrations.RenameModel(old_name="Interaction", new_name="Conversation"),
                migrations.AlterModelOptions(
                    name="conversation",
                    options={
                        "ordering": ["-started_at"],
                        "permissions": [
                            ("view_costs", "Can see conversation costs and token usage"),
                            ("view_customer_pii", "Can see customers' phone numbers, emails and addresses"),
                            ("take_over_conversation", "Can take over a live conversation and write to the customer"),
                        ],
                        "verbose_name": "conversation",
                        "verbose_name_plural": "conversations",
                    },
                ),
                migrations.AlterField(
                    model_name="conversation",
                    name="customer",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="conversations",
                        to="bookings.customer",
                    ),
                ),
                migrations.RemoveConstraint(model_name="message", name="customer_message_once"),
                migrations.RemoveIndex(model_name="message", name="message_transcript"),
                migrations.RemoveConstraint(model_name="toolcall", name="tool_call_once_per_interaction"),
                migrations.RenameField(model_name="message", old_name="interaction", new_name="conversation"),
                migrations.RenameField(model_name="toolcall", old_name="interaction", new_name="conversation"),
                migrations.RenameField(model_name="handoffrequest", old_name="interaction", new_name="conversation"),
                migrations.AlterField(model_name="message", name="conversation", field=_conversation_fk("messages")),
                migrations.AlterField(model_name="toolcall", name="conversation", field=_conversation_fk("tool_calls")),
                migrations.AlterField(
                    model_name="handoffrequest", name="conversation", field=_conversation_fk("handoffs")
                ),
                migrations.AddConstraint(
                    model_name="message",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("role", "customer")),
                        fields=("conversation", "client_message_id"),
                        name="customer_message_once",
                    ),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["conversation", "created_at"], name="message_transcript"),
                ),
                migrations.AddConstraint(
                    model_name="toolcall",
                    constraint=models.UniqueConstraint(
                        fields=("conversation", "call_id"), name="tool_call_once_per_interaction"
                    ),
                ),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
