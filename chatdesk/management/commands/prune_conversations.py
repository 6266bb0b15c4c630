"""manage.py prune_conversations: the retention policy for conversations."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from bookings.management.base import Progress, plural, positive_int, stop_on_sigterm
from chatdesk.conversations.retention import (
    conversations_anonymize,
    conversations_delete,
    expired_conversations,
    retention_counts,
    still_identifying,
)


class Command(BaseCommand):
    help = (
        "Apply the retention policy to conversations whose last activity is more than N days old (open ones "
        "are never touched). By default they are deleted with their messages, tool calls and callback "
        "requests. With --anonymize they are kept, with their metrics (tokens, cost, counts, outcomes, tool "
        "names), but everything about the customer is removed: message texts, names, phones, emails and "
        "addresses in tool calls, the model's history, the customer link, IP hash, browser and callback "
        "contact details. Bookings are never touched. Irreversible: asks for confirmation on a terminal, "
        "needs --yes otherwise; --dry-run only counts. Safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days", type=positive_int, required=True, metavar="N", help="Retention period in days."
        )
        parser.add_argument(
            "--anonymize", action="store_true", help="Keep the conversations, remove the customer's data."
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be affected.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation (for cron).")

    def handle(self, *args, **options):
        days = options["older_than_days"]
        anonymize = options["anonymize"]
        expired = expired_conversations(older_than_days=days)
        target = still_identifying(expired) if anonymize else expired
        counts = retention_counts(target)
        action = "anonymize" if anonymize else "delete"
        older = f"older than {plural(days, 'day')}"
        summary = (
            f"{plural(counts.conversations, 'conversation')} {older}, with {plural(counts.messages, 'message')}, "
            f"{plural(counts.tool_calls, 'tool call')} and {plural(counts.handoffs, 'callback request')}"
        )
        if options["dry_run"]:
            self.stdout.write(f"Would {action} {summary} (dry run).")
            return
        if not counts.conversations:
            self.stdout.write(f"Nothing to {action}: no conversations {older} need it.")
            return
        if not options["yes"]:
            self._confirm(f"This will {action} {summary}. It cannot be undone.")

        progress = Progress(self.stdout, self.stderr, total=counts.conversations, label=f"{action}d")
        run = conversations_anonymize if anonymize else conversations_delete
        with stop_on_sigterm() as stop:
            result = run(expired, on_batch=progress.advance, should_stop=lambda: stop.requested)
        progress.finish()
        message = f"{action.capitalize()}d {plural(result.done, 'conversation')} {older}."
        if result.stopped:
            message += " Stopped by SIGTERM; run again to finish."
        self.stdout.write(self.style.SUCCESS(message))

    def _confirm(self, question: str) -> None:
        if not sys.stdin.isatty():
            raise CommandError(f"{question} Pass --yes to confirm (no terminal to ask on).")
        answer = input(f"{question}\nType 'yes' to continue: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Cancelled; nothing was changed.")
