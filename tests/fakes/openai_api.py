"""A loopback fake of an OpenAI-compatible chat-completions server (`POST /v1/chat/completions`).

Stands in for api.openai.com (and Ollama/vLLM/gateways, which copy it): `Authorization: Bearer`
checked when the fake has a key (401 `invalid_api_key` otherwise), the 400s the real API sends for
a tool-call sequence it cannot accept (an assistant `tool_calls` message not answered by one
`tool` message per id; a `tool` message with no preceding call), scripted 429/5xx with
`retry-after`, and usage with automatic prefix caching (`prompt_tokens_details.cached_tokens`:
the longest common prefix with an earlier request, counted when ≥ 1,024 tokens, in 128-token
steps). Tool-call `arguments` are JSON strings, as on the wire; a script can send malformed ones.
Token counts are estimated as characters / 4.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from tests.fakes._server import LoopbackServer, Recorded
from tests.fakes.script import Failure, Reply, Step


def _error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class FakeOpenAI(LoopbackServer):
    """Use `fake.url + "/v1"` as OPENAI_BASE_URL."""

    def __init__(self, script: Sequence[Step], api_key: str | None = "sk-test-openai", model: str = "gpt-4.1"):
        super().__init__()
        self.script = list(script)
        self.api_key = api_key
        self.model = model
        self.turns_served = 0
        self._prompts: list[str] = []
        self._ids = 0

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _invalid(self, body: Any) -> str | None:
        if not isinstance(body, dict) or "model" not in body or not body.get("messages"):
            return "you must provide a model parameter and a non-empty messages array"
        pending: set[str] = set()
        for i, msg in enumerate(body["messages"]):
            role = msg.get("role")
            if pending and role != "tool":
                return (
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    "'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(sorted(pending))}"
                )
            if role == "assistant" and msg.get("tool_calls"):
                pending = {c["id"] for c in msg["tool_calls"]}
            elif role == "tool":
                if msg.get("tool_call_id") not in pending:
                    return (
                        f"Invalid parameter: messages[{i}]: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'."
                    )
                pending.discard(msg["tool_call_id"])
        if pending:
            return f"The following tool_call_ids did not have response messages: {', '.join(sorted(pending))}"
        return None

    def _cached_tokens(self, prompt: str) -> int:
        best = 0
        for earlier in self._prompts:
            n = len(os.path.commonprefix([earlier, prompt]))  # noqa: RUF071 - strings, not paths
            best = max(best, n)
        self._prompts.append(prompt)
        tokens = best // 4
        return 0 if tokens < 1024 else tokens - tokens % 128

    def respond(self, rec: Recorded) -> tuple[int, dict[str, str], Any]:
        if rec.method != "POST" or rec.path.split("?")[0] != "/v1/chat/completions":
            return 404, {}, _error(f"Invalid URL ({rec.method} {rec.path})")
        if self.api_key is not None and rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, _error("Incorrect API key provided.", code="invalid_api_key")
        try:
            body = rec.json()
        except ValueError:
            return 400, {}, _error("We could not parse the JSON body of your request.")
        problem = self._invalid(body)
        if problem:
            return 400, {}, _error(problem)
        if not self.script:
            return 400, {}, _error("fake: the script has no more turns")
        step = self.script.pop(0)
        if callable(step):
            step = step(body)
        if isinstance(step, Failure):
            type_ = "rate_limit_exceeded" if step.status == 429 else "server_error"
            return step.status, step.headers, _error(step.message, type_)
        assert isinstance(step, Reply)
        self.turns_served += 1
        message: dict[str, Any] = {"role": "assistant", "content": step.text or None, "refusal": None}
        if step.calls:
            calls = []
            for call in step.calls:
                self._ids += 1
                args = call.input if isinstance(call.input, str) else json.dumps(call.input)
                calls.append(
                    {
                        "id": f"call_{self._ids:04d}",
                        "type": "function",
                        "function": {"name": call.name, "arguments": args},
                    }
                )
            message["tool_calls"] = calls
        prompt = json.dumps(body["messages"]) + json.dumps(body.get("tools") or [])
        prompt_tokens = max(1, len(prompt) // 4)
        completion = max(1, len(json.dumps(message)) // 4)
        return (
            200,
            {"x-request-id": f"req_{self.turns_served:04d}"},
            {
                "id": f"chatcmpl-{self.turns_served:04d}",
                "object": "chat.completion",
                "created": 1_763_800_000 + self.turns_served,
                "model": body.get("model", self.model),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if step.calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": prompt_tokens + completion,
                    "prompt_tokens_details": {"cached_tokens": self._cached_tokens(prompt), "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            },
        )
