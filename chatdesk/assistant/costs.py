"""Token usage priced with the per-model table in settings.OPENAI_PRICES (USD per 1M tokens)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

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


def has_text_price(model: str) -> bool:
    """False for a text model missing from OPENAI_PRICES: its cost would be recorded as 0, so the
    conversation is flagged (Interaction.price_missing) rather than looking free."""
    return model in settings.OPENAI_PRICES


def text_cost(model: str, usage: TextUsage) -> Decimal:
    prices = settings.OPENAI_PRICES.get(model)
    if prices is None:
        logger.warning("No price for model %s in OPENAI_PRICES; its cost is recorded as 0", model)
        return Decimal("0")
    uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
    total = (
        uncached * prices["input"]
        + usage.cached_input_tokens * prices["cached_input"]
        + usage.output_tokens * prices["output"]
    )
    return (total / MILLION).quantize(Decimal("0.000001"))
