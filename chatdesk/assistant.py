"""The one module that talks to OpenAI for text (the Responses API through the official SDK).

Responses are not stored at OpenAI (`store=False`: transcripts hold customer PII), so the
whole item history is resent each turn. The SDK never retries here (`max_retries=0`): a
turn whose tool call already ran must not be replayed behind our back.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import openai
from django.conf import settings
from openai import AsyncOpenAI

from chatdesk.costs import TextUsage

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple, AsyncOpenAI]] = weakref.WeakKeyDictionary()


class ModelUnavailable(Exception):
    """The model could not answer this turn (timeout, rate limit, outage, bad reply)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail[:250]


@dataclass
class FunctionCall:
    call_id: str
    name: str
    arguments: str


@dataclass
class ModelReply:
    text: str
    output_items: list[dict]
    function_calls: list[FunctionCall]
    usage: TextUsage
    model: str


def is_configured() -> bool:
    return bool(settings.OPENAI_API_KEY)


def client() -> AsyncOpenAI:
    """One client per event loop (its HTTP pool is bound to the loop that first uses it)."""
    loop = asyncio.get_running_loop()
    config = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)
    cached = _clients.get(loop)
    if cached is None or cached[0] != config:
        instance = AsyncOpenAI(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
            max_retries=0,
        )
        _clients[loop] = (config, instance)
        return instance
    return cached[1]


async def respond(*, instructions: str, items: list[dict], tools: list[dict]) -> ModelReply:
    """One model response for the conversation so far. Raises ModelUnavailable."""
    try:
        response = await client().responses.create(
            model=settings.OPENAI_MODEL,
            instructions=instructions,
            tool_choice="auto",
            parallel_tool_calls=True,
            store=False,
            include=["reasoning.encrypted_content"],
            reasoning={"effort": settings.OPENAI_REASONING_EFFORT},
            max_output_tokens=settings.OPENAI_MAX_OUTPUT_TOKENS,
            # `input` and `tools` are plain JSON we built ourselves (and the tools' schemas
            # are fixed). Passed as typed parameters, the SDK walks them recursively against
            # its TypedDicts on every call: ~3 ms of CPU per call measured (bench/chat_turns.py),
            # more than the rest of a turn's overhead. The wire request is identical.
            extra_body={"input": items, "tools": tools},
        )
    except openai.APITimeoutError as error:
        raise ModelUnavailable("timeout", str(error)) from error
    except openai.RateLimitError as error:
        raise ModelUnavailable("rate_limited", str(error)) from error
    except openai.APIConnectionError as error:
        raise ModelUnavailable("unreachable", str(error)) from error
    except openai.APIStatusError as error:
        raise ModelUnavailable(f"http_{error.status_code}", str(error)) from error
    except openai.OpenAIError as error:
        raise ModelUnavailable("error", str(error)) from error

    if response.status == "failed":
        raise ModelUnavailable("failed", str(getattr(response.error, "message", "") or "response failed"))
    output_items = [item.model_dump(mode="json", exclude_none=True) for item in response.output]
    calls = [
        FunctionCall(call_id=item.call_id, name=item.name, arguments=item.arguments)
        for item in response.output
        if item.type == "function_call"
    ]
    return ModelReply(
        text=response.output_text or "",
        output_items=output_items,
        function_calls=calls,
        usage=TextUsage.from_response(response.usage),
        model=response.model or settings.OPENAI_MODEL,
    )


def function_output_item(call_id: str, output: str) -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def user_item(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant_item(text: str) -> dict:
    """A reply we produced ourselves (greeting, guided flow, staff) put into the model's history."""
    return {"role": "assistant", "content": text}
