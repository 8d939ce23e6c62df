"""OpenAI-compatible chat-completions provider over `requests` (OpenAI, Ollama, vLLM, gateways).

No SDK: the endpoint is one POST, and every compatible server speaks the same JSON. Base URL from
`OPENAI_BASE_URL` (default `https://api.openai.com/v1`, the SDK's), key from `OPENAI_API_KEY`
(optional: local servers such as Ollama need none). Retries 408/409/429/5xx and connection errors
with exponential backoff, honouring `retry-after-ms` / `retry-after` like the official SDKs.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

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
from sentry_autofix.retry import retry_after

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_WAIT = 60.0


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    return retry_after(headers.get("retry-after"))


def to_wire_messages(system: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for msg in messages:
        if isinstance(msg, UserMessage):
            wire.append({"role": "user", "content": msg.text})
        elif isinstance(msg, AssistantTurn):
            entry: dict[str, Any] = {"role": "assistant", "content": msg.text or None}
            if msg.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.input)},
                    }
                    for c in msg.tool_calls
                ]
            elif not msg.text:
                entry["content"] = "(no output)"
            wire.append(entry)
        else:
            for r in msg.results:
                content = r.content or "(empty)"
                # The role has no error flag; say it in the text so the model cannot miss it.
                wire.append(
                    {
                        "role": "tool",
                        "tool_call_id": r.call_id,
                        "content": f"ERROR: {content}" if r.is_error else content,
                    }
                )
            if msg.note:
                wire.append({"role": "user", "content": msg.note})
    return wire


def to_wire_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
        }
        for t in tools
    ]


def from_wire_response(body: Mapping[str, Any]) -> AssistantTurn:
    choices = body.get("choices") or []
    if not choices:
        raise LLMError("chat completion has no choices (is OPENAI_BASE_URL an OpenAI-compatible /v1 endpoint?)")
    choice = choices[0]
    message = choice.get("message") or {}
    calls: list[ToolCall] = []
    for raw in message.get("tool_calls") or []:
        fn = raw.get("function") or {}
        args = fn.get("arguments")
        call_id = str(raw.get("id") or f"call_{len(calls)}")
        name = str(fn.get("name") or "")
        try:
            parsed = json.loads(args) if isinstance(args, str) and args.strip() else (args or {})
        except json.JSONDecodeError as exc:
            calls.append(ToolCall(call_id, name, {}, input_error=f"arguments are not valid JSON ({exc.msg})"))
            continue
        if not isinstance(parsed, dict):
            calls.append(ToolCall(call_id, name, {}, input_error="arguments are not a JSON object"))
            continue
        calls.append(ToolCall(call_id, name, parsed))
    usage = body.get("usage") or {}
    cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
    prompt = usage.get("prompt_tokens") or 0
    return AssistantTurn(
        text=message.get("content") or "",
        tool_calls=tuple(calls),
        stop_reason=choice.get("finish_reason"),
        # OpenAI counts cached tokens inside prompt_tokens; keep our fields disjoint.
        usage=TurnUsage(
            input_tokens=max(0, prompt - cached),
            output_tokens=usage.get("completion_tokens") or 0,
            cache_read_tokens=cached,
        ),
    )


class OpenAICompatLLM:
    """`LLM` over `POST {base}/chat/completions`."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        max_output_tokens: int = 8192,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_output_tokens = max_output_tokens
        self.session = session or requests.Session()
        self.sleep = sleep
        # OpenAI's own API wants `max_completion_tokens` (reasoning models refuse `max_tokens`);
        # Ollama and older gateways only know `max_tokens`. Start by host, switch on the 400 that says so.
        self.token_param = "max_completion_tokens" if "api.openai.com" in base_url else "max_tokens"

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatLLM:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        base = settings.openai_base_url or DEFAULT_BASE_URL
        if not key and base == DEFAULT_BASE_URL:
            raise ConfigError("no OpenAI API key: set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)")
        return cls(
            settings.model_name,
            base_url=base,
            api_key=key,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
            max_output_tokens=settings.llm_max_output_tokens,
        )

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def complete(self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantTurn:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": to_wire_messages(system, messages),
            "tools": to_wire_tools(tools),
        }
        attempt = 0
        switched = False
        while True:
            payload.pop("max_tokens", None)
            payload.pop("max_completion_tokens", None)
            payload[self.token_param] = self.max_output_tokens
            try:
                resp = self.session.post(self.url, json=payload, headers=self._headers(), timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_retries:
                    raise LLMError(
                        f"cannot reach {self.url} after {attempt + 1} attempts: check OPENAI_BASE_URL "
                        f"(or raise SENTRY_AUTOFIX_LLM_TIMEOUT) — {type(exc).__name__}"
                    ) from exc
                self.sleep(self._backoff(attempt, None))
                attempt += 1
                continue
            if resp.status_code in (401, 403):
                raise ConfigError(
                    f"the chat-completions server refused the key ({resp.status_code}): check OPENAI_API_KEY"
                )
            if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                self.sleep(self._backoff(attempt, retry_after_seconds(resp.headers)))
                attempt += 1
                continue
            if resp.status_code == 400 and not switched:
                other = "max_tokens" if self.token_param == "max_completion_tokens" else "max_completion_tokens"
                if other in _error_text(resp) or self.token_param in _error_text(resp):
                    self.token_param, switched = other, True
                    continue
            if resp.status_code >= 400:
                raise LLMError(f"chat completions error {resp.status_code}: {_error_text(resp)}")
            try:
                body = resp.json()
            except ValueError as exc:
                raise LLMError("chat completions answered with non-JSON (check OPENAI_BASE_URL)") from exc
            return from_wire_response(body)

    def _backoff(self, attempt: int, asked: float | None) -> float:
        if asked is not None and asked >= 0:
            return min(asked, MAX_RETRY_WAIT)
        return float(min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random()))


def _error_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err or body)[:500]
    except ValueError:
        return resp.text[:500]
