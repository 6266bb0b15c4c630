"""The conversation on a fake Realtime connection (wire protocol sections 4.3 and 4.4): the items as the
server sees them, and the `conversation.item.*` client events (create, truncate, delete, retrieve).

`ConversationItems` is mixed into the connection (`_Session` in `realtime.py`), which provides `send`,
`error`, `ids`, `fake` (the script) and `record` (the recordings); the input audio buffer and the
responses add their items through `_append_item`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["ConversationItem", "ConversationItems"]


@dataclass
class ConversationItem:
    """One item of the conversation, with what the wire item doesn't show."""

    item: dict[str, Any]
    """As sent to the client (in `conversation.item.added`/`.done`)."""
    audio_ms: float = 0.0
    """Audio the item holds: caller audio committed, or model audio sent (cut by a truncate)."""
    transcript: str | None = None
    """The scripted transcript of a caller's audio item."""


class ConversationItems:
    """`conversation.item.*` handling for the connection; the items live in `self.items`, in order."""

    items: list[ConversationItem]

    def _last_item_id(self) -> str | None:
        return self.items[-1].item["id"] if self.items else None

    def _append_item(self, state: ConversationItem, previous_item_id: str | None = None) -> None:
        position = len(self.items)
        if previous_item_id is not None:
            for index, existing in enumerate(self.items):
                if existing.item["id"] == previous_item_id:
                    position = index + 1
        self.items.insert(position, state)
        self._record_items()

    def _record_items(self) -> None:
        self.record.items = [state.item for state in self.items]

    def _find(self, item_id: Any) -> ConversationItem | None:
        return next((state for state in self.items if state.item["id"] == item_id), None)

    async def _find_or_error(self, event: dict[str, Any]) -> ConversationItem | None:
        """The item `event["item_id"]` names; `None`, after the real API's error, when there is none."""
        state = self._find(event.get("item_id"))
        if state is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{event.get('item_id')}'. No item with this id.",
                param="item_id",
                client_event=event,
            )
        return state

    async def on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            await self.missing_parameter("item", event)
            return
        item = copy.deepcopy(item)
        kind = item.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            await self.error("invalid_value", f"Invalid value: '{kind}'.", param="item.type", client_event=event)
            return
        required = {"function_call_output": ("call_id", "output"), "function_call": ("name", "arguments")}.get(kind, ())
        for name in required:
            if name not in item:
                await self.missing_parameter(f"item.{name}", event)
                return
        if kind == "function_call_output" and not isinstance(item["output"], str):
            await self.error(
                "invalid_type",
                "Invalid type for 'item.output': expected a string.",
                param="item.output",
                client_event=event,
            )
            return
        previous_item_id = event.get("previous_item_id")
        if previous_item_id is not None and self._find(previous_item_id) is None:
            await self.error(
                "invalid_value",
                f"Invalid value: '{previous_item_id}'. No item with this id.",
                param="previous_item_id",
                client_event=event,
            )
            return
        item.setdefault("id", self.ids.next("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        previous = previous_item_id if previous_item_id is not None else self._last_item_id()
        self._append_item(ConversationItem(item=item), previous_item_id)
        await self.send({"type": "conversation.item.added", "item": copy.deepcopy(item), "previous_item_id": previous})
        await self.send({"type": "conversation.item.done", "item": copy.deepcopy(item), "previous_item_id": previous})

    async def on_truncate(self, event: dict[str, Any]) -> None:
        state = await self._find_or_error(event)
        if state is None:
            return
        content = state.item.get("content") or []
        if state.item.get("role") != "assistant" or not any(part.get("type") == "output_audio" for part in content):
            await self.error(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                client_event=event,
            )
            return
        audio_end_ms = event.get("audio_end_ms")
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            await self.error(
                "invalid_value", "Invalid value for 'audio_end_ms'.", param="audio_end_ms", client_event=event
            )
            return
        if audio_end_ms > state.audio_ms:
            await self.error(
                "invalid_value",
                f"Audio content of {int(state.audio_ms)}ms is already shorter than {audio_end_ms}ms",
                param="audio_end_ms",
                client_event=event,
            )
            return
        content_index = event.get("content_index", 0)
        state.audio_ms = audio_end_ms
        # The real API drops the text transcript so the model can't "know" words the caller never heard.
        for part in content:
            if part.get("type") == "output_audio":
                part["transcript"] = None
        truncation = {"item_id": state.item["id"], "content_index": content_index, "audio_end_ms": audio_end_ms}
        self.fake.truncations.append(truncation)
        await self.send({"type": "conversation.item.truncated", **truncation})

    async def on_item_delete(self, event: dict[str, Any]) -> None:
        state = await self._find_or_error(event)
        if state is None:
            return
        self.items.remove(state)
        self._record_items()
        await self.send({"type": "conversation.item.deleted", "item_id": state.item["id"]})

    async def on_item_retrieve(self, event: dict[str, Any]) -> None:
        state = await self._find_or_error(event)
        if state is None:
            return
        await self.send({"type": "conversation.item.retrieved", "item": copy.deepcopy(state.item)})
