"""Who is answering a customer's message right now, in every worker process: a lease in the shared cache.

A turn for a message that carries the client's id (`message_id`, or the Idempotency-Key header)
holds a lease on (conversation, message id) from before it stores the message until after it
stores the reply. A retry of the same message that finds the lease, in this process or in
another one behind the same load balancer, is told 409 turn_in_progress instead of being
answered a second time. This is the one rule for "is that message being answered?"; the turn
engine (chatdesk.assistant.turns) asks nothing else.

The lease lapses on its own: it is taken for TURN_LEASE_SECONDS and the running turn refreshes
it every third of that (`keep_alive`). When its worker dies (SIGKILL, a crash, a lost host),
nothing refreshes it, so at most TURN_LEASE_SECONDS later a retry finds the message stored and
unanswered, takes the lease and answers it, once.

The cache is Redis when REDIS_URL is set (shared by every process; `add` is SET NX, atomic), or
the process's own memory (`make run`, one process). While Redis is down, chatdesk.fallback_cache
keeps leases per process: a retry reaching another worker then is answered there too, as before
the lease existed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class TurnLease:
    """The lease on one message of one conversation."""

    conversation_id: int
    message_id: str

    @property
    def key(self) -> str:
        return f"turn-lease:{self.conversation_id}:{self.message_id}"

    def take(self) -> bool:
        """Take the lease; False when a turn (here or in another process) holds it."""
        return cache.add(self.key, 1, timeout=settings.TURN_LEASE_SECONDS)

    def release(self) -> None:
        cache.delete(self.key)

    def held(self) -> bool:
        return cache.has_key(self.key)

    async def keep_alive(self) -> None:
        """Refresh the lease until cancelled (the turn's finally cancels it, then releases)."""
        refresh = sync_to_async(cache.touch, thread_sensitive=False)
        while True:
            await asyncio.sleep(settings.TURN_LEASE_SECONDS / 3)
            await refresh(self.key, settings.TURN_LEASE_SECONDS)

    async def arelease(self) -> None:
        # Not cache.adelete: Django runs that in the one shared sync thread, which every
        # turn's release would then queue behind.
        await sync_to_async(self.release, thread_sensitive=False)()

    async def released(self, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, until no turn holds the lease; True if none does."""
        held = sync_to_async(self.held, thread_sensitive=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await held():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True
