"""Token usage priced with the per-model table in settings.OPENAI_PRICES (USD per 1M tokens).

Text turns (`text_cost`) and voice calls (`realtime_usage`, `transcription_usage`) read the
same table, through `model_prices`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from chatdesk.conversations.money import MONEY

logger = logging.getLogger(__name__)
MILLION = Decimal(1_000_000)


@dataclass
class TextUsage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: TextUsage) -> None:
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens

    @classmethod
    def from_response(cls, usage: object) -> TextUsage:
        """From a Responses API `usage` (JSON; cached is a subset of input, reasoning of output)."""
        if not isinstance(usage, dict):
            return cls()
        input_details = usage.get("input_tokens_details") or {}
        output_details = usage.get("output_tokens_details") or {}
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            cached_input_tokens=int(input_details.get("cached_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
        )


def model_prices(model: str) -> dict[str, Decimal] | None:
    """The model's row of settings.OPENAI_PRICES (USD per 1M tokens by kind), None when it has none."""
    return settings.OPENAI_PRICES.get(model)


def has_text_price(model: str) -> bool:
    """False for a text model missing from OPENAI_PRICES: its cost would be recorded as 0, so the
    conversation is flagged (Conversation.price_missing) rather than looking free."""
    return model_prices(model) is not None


def text_cost(model: str, usage: TextUsage) -> Decimal:
    prices = model_prices(model)
    if prices is None:
        logger.warning("No price for model %s in OPENAI_PRICES; its cost is recorded as 0", model)
        return Decimal("0")
    uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
    total = (
        uncached * prices["input"]
        + usage.cached_input_tokens * prices["cached_input"]
        + usage.output_tokens * prices["output"]
    )
    return (total / MILLION).quantize(MONEY)


# --- voice calls ------------------------------------------------------------------------


@dataclass
class RealtimeUsage:
    """One `response.done` usage, priced by modality. audio_* are subsets of input/output."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    cost: Decimal = Decimal("0")
    breakdown: dict[str, Decimal] = field(default_factory=dict)
    # Some of it was priced at 0 because the model (or this kind of token) has no price.
    price_missing: bool = False


def realtime_usage(model: str, usage: dict[str, Any] | None) -> RealtimeUsage:
    """Price `usage` with settings.OPENAI_PRICES[model] (USD per 1M tokens).

    Cached tokens are a subset of input tokens: uncached text and audio input are billed
    at the input rates, the cached parts at the cached rates, output by modality.
    """
    if not usage:
        return RealtimeUsage()
    details_in = usage.get("input_token_details") or {}
    cached = details_in.get("cached_tokens_details") or {}
    details_out = usage.get("output_token_details") or {}
    text_in, audio_in = int(details_in.get("text_tokens") or 0), int(details_in.get("audio_tokens") or 0)
    cached_text, cached_audio = int(cached.get("text_tokens") or 0), int(cached.get("audio_tokens") or 0)
    counts = {
        "text_input": max(text_in - cached_text, 0),
        "text_cached_input": cached_text,
        "audio_input": max(audio_in - cached_audio, 0),
        "audio_cached_input": cached_audio,
        "text_output": int(details_out.get("text_tokens") or 0),
        "audio_output": int(details_out.get("audio_tokens") or 0),
    }
    result = RealtimeUsage(
        input_tokens=int(usage.get("input_tokens") or 0),
        cached_input_tokens=int(details_in.get("cached_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        audio_input_tokens=audio_in,
        audio_output_tokens=counts["audio_output"],
    )
    result.breakdown, result.cost, result.price_missing = _priced(
        model, {kind: Decimal(tokens) / MILLION for kind, tokens in counts.items()}
    )
    return result


def _priced(model: str, amounts: dict[str, Decimal]) -> tuple[dict[str, Decimal], Decimal, bool]:
    """(cost per kind, total, whether a price was missing) for amounts in each price's unit.

    A missing price is loud: a warning here, and `price_missing` on the conversation (add_usage),
    because a cost recorded as 0 would otherwise look like a free call.
    """
    prices = model_prices(model) or {}
    breakdown: dict[str, Decimal] = {}
    missing = [kind for kind, amount in amounts.items() if amount and kind not in prices]
    if missing:
        logger.warning(
            "No %s price for model %s in OPENAI_PRICES; that usage is recorded as 0", "/".join(missing), model
        )
    for kind, amount in amounts.items():
        if amount and kind in prices:
            breakdown[kind] = (amount * prices[kind]).quantize(MONEY)
    return breakdown, sum(breakdown.values(), Decimal("0")), bool(missing)


def transcription_usage(model: str, usage: dict[str, Any] | None) -> RealtimeUsage:
    """The caller's input transcription, billed apart at the transcription model's rates.

    settings.OPENAI_PRICES[model] gives USD per 1M tokens (audio_input, text_input for the
    prompt, text_output for the transcript) and `per_minute` for duration-billed models.
    Recorded under one "transcription" kind in the conversation's cost breakdown.
    """
    if not usage:
        return RealtimeUsage()
    if usage.get("type") == "duration":
        amounts = {"per_minute": Decimal(str(usage.get("seconds") or 0)) / 60}
    else:
        details = usage.get("input_token_details") or {}
        amounts = {
            "audio_input": Decimal(int(details.get("audio_tokens") or 0)) / MILLION,
            "text_input": Decimal(int(details.get("text_tokens") or 0)) / MILLION,
            "text_output": Decimal(int(usage.get("output_tokens") or 0)) / MILLION,
        }
    _, cost, missing = _priced(model, amounts)
    cost = cost.quantize(MONEY)
    return RealtimeUsage(cost=cost, breakdown={"transcription": cost} if cost else {}, price_missing=missing)
