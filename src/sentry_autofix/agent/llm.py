"""The `LLM` seam: one method, vendor-neutral messages in, one assistant turn out.

Providers (`anthropic.py`, `openai_compat.py`) translate these dataclasses to and from their wire
format; the loop never sees a vendor type. Adding a provider is one module plus one line in
`PROVIDERS` (imported lazily, so an optional SDK stays optional).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError
from sentry_autofix.neutral import no_surrogates


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]
    input_error: str | None = None
    """Set when the provider could not decode the model's arguments (the tool then is not run)."""

    def __post_init__(self) -> None:
        # JSON may carry a lone surrogate ("\ud800"): it could not be written to a file or printed.
        object.__setattr__(self, "input", no_surrogates(self.input))


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class TurnUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class UserMessage:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str | None = None
    usage: TurnUsage = field(default_factory=TurnUsage)
    replay: tuple[dict[str, Any], ...] = ()
    """Provider blocks that must be sent back verbatim on the next turn (Anthropic thinking blocks,
    which the API requires unchanged before tool results when thinking is on)."""

    def __post_init__(self) -> None:
        # The text is sent back on the next turn: a lone surrogate could not be encoded in the request.
        object.__setattr__(self, "text", no_surrogates(self.text))


@dataclass(frozen=True)
class ToolResults:
    results: tuple[ToolResult, ...]
    note: str | None = None
    """Extra user text sent with the results (e.g. the budget left)."""


Message = UserMessage | AssistantTurn | ToolResults


class LLM(Protocol):
    """A chat model that can call tools. Errors are raised as `LLMError`."""

    model: str

    def complete(self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantTurn: ...


PROVIDERS: dict[str, str] = {
    "anthropic": "sentry_autofix.agent.anthropic:AnthropicLLM",
    "openai": "sentry_autofix.agent.openai_compat:OpenAICompatLLM",
}
"""Setting `SENTRY_AUTOFIX_LLM` → class; each class has `from_settings(settings)`."""


def build_llm(settings: Settings) -> LLM:
    """The real provider for these settings (only the CLI calls this; tests pass fakes in)."""
    target = PROVIDERS.get(settings.llm)
    if target is None:
        raise ConfigError(
            f"unknown LLM provider {settings.llm!r}: set SENTRY_AUTOFIX_LLM to one of {sorted(PROVIDERS)}"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    llm: LLM = cls.from_settings(settings)
    return llm
