"""Live updates over the Channels layer: staff watch conversations, customers see staff replies.

Two kinds of groups:
- `monitor`: every staff member on the live monitor; gets a summary of every change.
- `interaction-<id>`: one conversation; its customer page and the staff watching it.

With REDIS_URL set the layer is Redis, so a customer served by one server process and
a staff member served by another see each other's messages. Publishing never raises:
a live view is a convenience, the database rows are the record.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chatdesk.conversations.models import Interaction, Message

logger = logging.getLogger(__name__)

MONITOR_GROUP = "monitor"


def interaction_group(interaction_id: int) -> str:
    return f"interaction-{interaction_id}"


def message_event(message: Message) -> dict:
    return {
        "kind": "message",
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "channel": message.channel,
        "at": message.created_at.isoformat() if message.created_at else None,
        "interrupted": message.interrupted,
    }


def summary(interaction: Interaction) -> dict:
    return {
        "number": interaction.number,
        "channel": interaction.channel,
        "status": interaction.status,
        "mode": interaction.mode,
        "message_count": interaction.message_count,
        "booking_count": interaction.booking_count,
        "cost_usd": str(interaction.cost_usd.quantize(Decimal("0.0001"))),
        "taken_over": bool(interaction.taken_over_by_id),
    }


async def apublish(interaction: Interaction, event: dict) -> None:
    """Send `event` to the conversation's group and a summary to the monitor."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            interaction_group(interaction.pk),
            {"type": "live.event", "via": "conversation", "interaction": interaction.number, "event": event},
        )
        await layer.group_send(
            MONITOR_GROUP,
            {
                "type": "live.event",
                "via": "monitor",
                "interaction": interaction.number,
                "event": {"kind": event.get("kind"), "role": event.get("role")},
                "summary": summary(interaction),
            },
        )
    except Exception:  # a broken layer must not break a customer's turn
        logger.exception("Live update for %s failed", interaction.number)


def publish(interaction: Interaction, event: dict) -> None:
    """Sync flavour, for services running in worker threads and the admin."""
    async_to_sync(apublish)(interaction, event)
