"""manage.py prune_interactions: the name prune_conversations had until issue 10.

Kept so an operator's crontab written for the old name keeps applying the retention policy
instead of failing every night with "Unknown command". Same options, same behaviour.
"""

from __future__ import annotations

from chatdesk.management.commands.prune_conversations import Command as PruneConversations


class Command(PruneConversations):
    help = "The old name of prune_conversations (same options). " + PruneConversations.help

    def handle(self, *args, **options) -> None:
        self.stderr.write("Note: prune_interactions is now called prune_conversations; please use that name.")
        return super().handle(*args, **options)
