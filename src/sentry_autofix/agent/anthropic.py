"""Anthropic Messages API provider (official `anthropic` SDK, tool use, prompt caching).

The SDK retries 408/409/429/5xx (529 "overloaded" included) with backoff and honours
`retry-after` / `retry-after-ms` / `x-should-retry`; we set how many times and the per-request
timeout. `ANTHROPIC_BASE_URL` (or the setting) points it at a gateway or a test fake.

Caching: tools, the system prompt and the initial context are the same on every turn, so each
gets a `cache_control` breakpoint, and a rolling breakpoint on the newest message lets turn N+1
read turn N's prefix from the cache (4 breakpoints, the API's maximum).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sentry_autofix.agent.llm import (
    AssistantTurn,
    Message,
    ToolCall,
    ToolSpec,
    TurnUsage,
    UserMessage,
)
from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, LLMError

if TYPE_CHECKING:
    import anthropic as anthropic_sdk

_CACHE = {"type": "ephemeral"}


def to_wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Neutral messages → Messages API `messages`, with the cache breakpoints described above."""
    wire: list[dict[str, Any]] = []
    for msg in messages:
        if isinstance(msg, UserMessage):
            wire.append({"role": "user", "content": [{"type": "text", "text": msg.text}]})
        elif isinstance(msg, AssistantTurn):
            blocks: list[dict[str, Any]] = [dict(b) for b in msg.replay]
            if msg.text:
                blocks.append({"type": "text", "text": msg.text})
            for call in msg.tool_calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
            wire.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "(no output)"}]})
        else:
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_result",
                    "tool_use_id": r.call_id,
                    "content": r.content or "(empty)",
                    "is_error": r.is_error,
                }
                for r in msg.results
            ]
            if msg.note:
                content.append({"type": "text", "text": msg.note})
            wire.append({"role": "user", "content": content})
    if wire:
        wire[0]["content"][-1]["cache_control"] = _CACHE
        wire[-1]["content"][-1]["cache_control"] = _CACHE
    return wire


def to_wire_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    wire = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools]
    if wire:
        wire[-1]["cache_control"] = _CACHE
    return wire


def from_wire_message(message: Any) -> AssistantTurn:
    texts: list[str] = []
    calls: list[ToolCall] = []
    replay: list[dict[str, Any]] = []
    for block in message.content:
        if block.type in ("thinking", "redacted_thinking"):
            replay.append(block.model_dump(mode="json", exclude_none=True))
        elif block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            raw = block.input
            if isinstance(raw, dict):
                calls.append(ToolCall(id=block.id, name=block.name, input=dict(raw)))
            else:
                calls.append(
                    ToolCall(id=block.id, name=block.name, input={}, input_error="tool input is not a JSON object")
                )
    u = message.usage
    usage = TurnUsage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_read_tokens=getattr(u, "cache_read_input_tokens", None) or 0,
        cache_write_tokens=getattr(u, "cache_creation_input_tokens", None) or 0,
    )
    return AssistantTurn(
        text="\n".join(texts),
        tool_calls=tuple(calls),
        stop_reason=message.stop_reason,
        usage=usage,
        replay=tuple(replay),
    )


class AnthropicLLM:
    """`LLM` over the Anthropic Messages API."""

    def __init__(
        self,
        client: anthropic_sdk.Anthropic,
        model: str,
        max_output_tokens: int = 8192,
    ) -> None:
        self.client = client
        self.model = model
        self.max_output_tokens = max_output_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicLLM:
        import anthropic as anthropic_sdk

        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
        if not key:
            raise ConfigError("no Anthropic API key: set ANTHROPIC_API_KEY (or choose SENTRY_AUTOFIX_LLM=openai)")
        client = anthropic_sdk.Anthropic(
            api_key=key,
            base_url=settings.anthropic_base_url or None,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
            # SDK 2.x sends the key as `Authorization: Bearer`; the API's documented header is
            # `x-api-key`, which gateways and proxies built from the docs still expect. Send both.
            default_headers={"x-api-key": key},
        )
        return cls(client, settings.model_name, settings.llm_max_output_tokens)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.client.close()

    def complete(self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantTurn:
        import anthropic as anthropic_sdk

        try:
            message = self.client.messages.create(
                model=self.model,
                max_tokens=self.max_output_tokens,
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                messages=to_wire_messages(messages),  # type: ignore[arg-type]
                tools=to_wire_tools(tools),  # type: ignore[arg-type]
            )
        except anthropic_sdk.AuthenticationError as exc:
            raise ConfigError(f"Anthropic refused the API key (401): check ANTHROPIC_API_KEY ({exc.message})") from exc
        except anthropic_sdk.APIStatusError as exc:
            hint = " after retries (raise SENTRY_AUTOFIX_LLM_MAX_RETRIES)" if exc.status_code in (429, 529) else ""
            hint = hint or (" after retries" if exc.status_code >= 500 else "")
            raise LLMError(f"Anthropic API error {exc.status_code}{hint}: {exc.message}") from exc
        except anthropic_sdk.APITimeoutError as exc:
            raise LLMError("Anthropic API timed out: raise SENTRY_AUTOFIX_LLM_TIMEOUT") from exc
        except anthropic_sdk.APIConnectionError as exc:
            raise LLMError(f"cannot reach the Anthropic API: check ANTHROPIC_BASE_URL ({exc})") from exc
        return from_wire_message(message)
