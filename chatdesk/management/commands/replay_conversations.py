"""manage.py replay_conversations: what would today's prompt and tools have done with past conversations?"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bookings.management.base import Progress, day, day_window, plural, positive_int, stop_on_sigterm
from bookings.selectors import business_tz, local_today
from chatdesk.assistant import openai_client
from chatdesk.assistant.replay import ReplayResult, conversation_replay, replayable_conversations


async def _close_client() -> None:
    await openai_client.client().close()


class Command(BaseCommand):
    help = (
        "Re-run stored text conversations' customer messages against the current prompt, model and tools, and "
        "report where the outcome differs from what happened: a booking made or not, and the sequence of tool "
        "calls. Everything the replay does (bookings included) is rolled back; nothing is emailed. Calls the "
        "model (OPENAI_API_KEY must be set) and costs tokens: start with --limit. Tools see today's calendar, "
        "so a slot taken since then can explain a difference. "
        "Example: manage.py replay_conversations --since 2026-11-01 --limit 20"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", type=day, required=True, metavar="YYYY-MM-DD", help="First day included (started on)."
        )
        parser.add_argument(
            "--until", type=day, metavar="YYYY-MM-DD", help="Last day included (default: today, business time)."
        )
        parser.add_argument("--limit", type=positive_int, metavar="N", help="Replay at most N conversations.")
        parser.add_argument(
            "--format", choices=("table", "json"), default="table", help="table for people, json for scripts."
        )

    def handle(self, *args, **options):
        if not openai_client.is_configured():
            raise CommandError(
                "Replaying needs the model: set OPENAI_API_KEY (and OPENAI_BASE_URL for a proxy or a test server)."
            )
        start, end = day_window(options["since"], options["until"] or max(local_today(), options["since"]))
        conversations = replayable_conversations(start=start, end=end)
        if options["limit"]:
            conversations = conversations[: options["limit"]]
        conversations = list(conversations)
        progress = Progress(self.stdout, self.stderr, total=len(conversations), label="conversations replayed")
        results: list[ReplayResult] = []
        stopped = False
        # One event loop for the whole run keeps one HTTP connection pool to the model.
        with asyncio.Runner() as runner, stop_on_sigterm() as stop:
            try:
                for conversation in conversations:
                    results.append(conversation_replay(conversation, run=runner.run))
                    progress.advance()
                    if stop.requested:
                        stopped = True
                        break
            finally:
                runner.run(_close_client())
        progress.finish()
        if options["format"] == "json":
            self._json(results)
        else:
            self._table(results)
        if stopped:
            self.stderr.write("Stopped by SIGTERM before replaying every conversation.")

    def _json(self, results: list[ReplayResult]) -> None:
        summary = {
            "replayed": len(results),
            "differ": sum(r.differs for r in results),
            "failed": sum(bool(r.error) for r in results),
            "replay_cost_usd": str(sum((r.replay_cost_usd for r in results), Decimal("0"))),
            "model": settings.OPENAI_MODEL,
        }
        self.stdout.write(json.dumps({"summary": summary, "conversations": [r.as_dict() for r in results]}, indent=2))

    def _table(self, results: list[ReplayResult]) -> None:
        tz = business_tz()
        for r in results:
            when = r.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            booked = "booked" if r.original_booked else "no booking"
            if not r.differs:
                self.stdout.write(
                    f"{r.number}  {when}  same      {booked}, {plural(len(r.original_tools), 'tool call')}"
                )
                continue
            self.stdout.write(self.style.WARNING(f"{r.number}  {when}  DIFFERS   {'; '.join(r.differences)}"))
            self.stdout.write(f"    original: {' > '.join(r.original_tools) or '(no tool calls)'}")
            self.stdout.write(f"    replay:   {' > '.join(r.replay_tools) or '(no tool calls)'}")
        differ = sum(r.differs for r in results)
        cost = sum((r.replay_cost_usd for r in results), Decimal("0"))
        self.stdout.write(
            f"Replayed {plural(len(results), 'conversation')} with {settings.OPENAI_MODEL}: {differ} differ, "
            f"{len(results) - differ} the same. Replay cost ${cost}."
        )
