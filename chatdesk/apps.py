from django.apps import AppConfig


class ChatdeskConfig(AppConfig):
    name = "chatdesk"
    verbose_name = "Conversations"
    # The models are in chatdesk/conversations/, the admins in chatdesk/backoffice/ (see
    # chatdesk/models.py and chatdesk/admin.py); this app keeps the label and migrations.
