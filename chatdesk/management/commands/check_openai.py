"""manage.py check_openai: is the OpenAI configuration good, before customers find out?"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chatdesk.assistant import openai_client
from chatdesk.assistant.openai_check import run_openai_checks


class Command(BaseCommand):
    help = (
        "Check that the configured OpenAI key and base URL answer, and that the text model (OPENAI_MODEL) and "
        "the voice model (OPENAI_REALTIME_MODEL) exist for this key. Exits non-zero with the reason when "
        "something is wrong; run it after changing any OPENAI_* setting and in deploy checks."
    )

    def handle(self, *args, **options):
        if not openai_client.is_configured():
            raise CommandError(
                "OPENAI_API_KEY is not set: the chat runs the guided flow only and voice is off. Set it to enable "
                "the model."
            )
        key = settings.OPENAI_API_KEY
        self.stdout.write(f"Key: {key[:3]}...{key[-4:]}" if len(key) > 10 else "Key: set")
        self.stdout.write(f"Base URL: {settings.OPENAI_BASE_URL or 'https://api.openai.com/v1 (default)'}")
        checks = run_openai_checks()
        for check in checks:
            mark = self.style.SUCCESS("ok  ") if check.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {check.what}: {check.detail}")
        failed = [c for c in checks if not c.ok]
        if failed:
            raise CommandError("; ".join(f"{c.what}: {c.detail}" for c in failed))
        self.stdout.write(self.style.SUCCESS("OpenAI is reachable and both models are available."))
