"""Scripted model turns shared by the fake Anthropic and OpenAI servers.

A script is a list of steps consumed one per model request: a `Reply` (text and tool calls), a
`Failure` (an HTTP error the real API sends: 429, 529 overloaded, 500…), or a callable that sees
the request body and returns either — so a scripted model can react to tool results, as a real
one would, while staying deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    name: str
    input: dict[str, Any] | str
    """A dict, or (OpenAI only) a raw `arguments` string — e.g. malformed JSON."""


@dataclass
class Reply:
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    thinking: str | None = None
    """(Anthropic) a signed thinking block before the text, as models with adaptive thinking send."""


@dataclass
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = "api_error"
    message: str = "scripted failure"


Step = Reply | Failure | Callable[[dict[str, Any]], "Reply | Failure"]


def tool(name: str, **inputs: Any) -> Reply:
    """One turn calling one tool."""
    return Reply(calls=[Call(name, inputs)])


def finish(**overrides: Any) -> Reply:
    args = {
        "root_cause": "the empty cart has zero units, and the average divides by the unit count",
        "analysis": "average_item_price divided by the number of units without a guard",
        "confidence": "high",
        "pr_title": "Guard average price against empty carts",
        "summary": "shop/cart.py: return 0.0 for an empty cart; tests: regression test",
    }
    args.update(overrides)
    return tool("finish", **args)
