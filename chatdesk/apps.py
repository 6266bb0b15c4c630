from django.apps import AppConfig


class ChatdeskConfig(AppConfig):
    name = "chatdesk"
    verbose_name = "Conversations"
