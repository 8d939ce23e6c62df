"""Prices per million tokens, to turn usage into an estimated cost and enforce the cost budget.

Figures are list prices in USD (Anthropic's model pages and OpenAI's pricing page, 2025–2026). Cache writes cost
1.25x input and cache reads 0.1x input on Anthropic (5-minute cache); OpenAI bills cached input at
its own rate. A model that is not in the table is priced like the most expensive Sonnet-class
model, so the cost budget still bounds the run; `SENTRY_AUTOFIX_PRICE_INPUT`/`_OUTPUT` override.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentry_autofix.agent.llm import TurnUsage


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(self, usage: TurnUsage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_tokens * self.cache_write
            + usage.cache_read_tokens * self.cache_read
        ) / 1_000_000


def _anthropic(inp: float, out: float) -> Price:
    return Price(inp, out, inp * 1.25, inp * 0.1)


def _openai(inp: float, out: float, cached: float) -> Price:
    return Price(inp, out, inp, cached)


PRICES: dict[str, Price] = {
    "claude-fable-5": _anthropic(10.0, 50.0),
    "claude-opus-5": _anthropic(5.0, 25.0),
    "claude-sonnet-5": _anthropic(2.0, 10.0),
    "claude-opus-4-6": _anthropic(5.0, 25.0),
    "claude-sonnet-4-6": _anthropic(3.0, 15.0),
    "claude-opus-4-5": _anthropic(5.0, 25.0),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-opus-4": _anthropic(15.0, 75.0),
    "claude-sonnet-4-5": _anthropic(3.0, 15.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "claude-haiku-4-5": _anthropic(1.0, 5.0),
    "claude-3-5-haiku": _anthropic(0.8, 4.0),
    "gpt-5-mini": _openai(0.25, 2.0, 0.025),
    "gpt-5-nano": _openai(0.05, 0.4, 0.005),
    "gpt-5": _openai(1.25, 10.0, 0.125),
    "gpt-4.1-mini": _openai(0.4, 1.6, 0.1),
    "gpt-4.1-nano": _openai(0.1, 0.4, 0.025),
    "gpt-4.1": _openai(2.0, 8.0, 0.5),
    "gpt-4o-mini": _openai(0.15, 0.6, 0.075),
    "gpt-4o": _openai(2.5, 10.0, 1.25),
    "o4-mini": _openai(1.1, 4.4, 0.275),
    "o3": _openai(2.0, 8.0, 0.5),
}
FALLBACK = _anthropic(3.0, 15.0)


def price_for(model: str, input_override: float | None = None, output_override: float | None = None) -> Price:
    """The longest table key that prefixes `model` (dated ids like claude-sonnet-4-5-20250929 match)."""
    name = model.lower().rsplit("/", 1)[-1]  # gateways often say "anthropic/claude-…"
    best = max((k for k in PRICES if name.startswith(k)), key=len, default=None)
    price = PRICES[best] if best else FALLBACK
    if input_override is None and output_override is None:
        return price
    inp = price.input if input_override is None else input_override
    out = price.output if output_override is None else output_override
    ratio_w = price.cache_write / price.input if price.input else 1.0
    ratio_r = price.cache_read / price.input if price.input else 0.1
    return Price(inp, out, inp * ratio_w, inp * ratio_r)
