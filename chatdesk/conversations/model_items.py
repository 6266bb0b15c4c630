"""The model's history as Conversation.model_items stores it: OpenAI Responses API input items.

The record owns this format: text turns, calls, staff replies and replay all append to
the same list, so every writer builds its items here.
"""

from __future__ import annotations


def function_output_item(call_id: str, output: str) -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def user_item(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant_item(text: str) -> dict:
    """A reply we produced ourselves (greeting, guided flow, staff) put into the model's history."""
    return {"role": "assistant", "content": text}
