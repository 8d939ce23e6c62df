"""A loopback fake of the Anthropic Messages API (`POST /v1/messages`) that replays scripted turns.

Stands in for api.anthropic.com as the official SDK sees it:
* requires the key (`x-api-key`, or `Authorization: Bearer` as SDK 2.x sends it) and the
  `anthropic-version` header (401 / 400 otherwise, with the API's error body shape);
* rejects what the real API rejects: a `tool_use` without a `tool_result` right after it, an
  unknown `tool_use_id`, a dropped thinking block, more than 4 `cache_control` breakpoints, a
  non-user first message, tool names the API forbids;
* answers scripted errors with the real error types (`overloaded_error` for 529,
  `rate_limit_error` for 429) and `retry-after` headers when scripted;
* reports usage the way the API does, including prompt-cache reads/writes for prefixes ending at
  a breakpoint already seen. Token counts are estimated as characters / 4.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from tests.fakes._server import LoopbackServer, Recorded
from tests.fakes.script import Failure, Reply, Step

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _tokens(chars: int) -> int:
    return max(1, chars // 4)


def _error(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type or _ERROR_TYPES.get(status, "api_error"), "message": message}}


class FakeAnthropic(LoopbackServer):
    """Use `fake.url` as ANTHROPIC_BASE_URL; `fake.requests` holds every request received."""

    def __init__(self, script: Sequence[Step], api_key: str = "sk-ant-test-key", model: str = "claude-sonnet-4-5"):
        super().__init__()
        self.script = list(script)
        self.api_key = api_key
        self.model = model
        self.turns_served = 0
        self._cached: set[str] = set()
        self._thinking_for: dict[str, str] = {}
        """tool_use id -> signature of the thinking block served with it (must come back unchanged)."""
        self._ids = 0

    # -- validation the real API performs -------------------------------------------------------

    def _invalid(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                return f"{key}: Field required"
        msgs = body["messages"]
        if not isinstance(msgs, list) or not msgs:
            return "messages: at least one message is required"
        if msgs[0].get("role") != "user":
            return 'messages: first message must use the "user" role'
        for tool in body.get("tools") or []:
            if not _TOOL_NAME.match(str(tool.get("name", ""))):
                return f"tools: name {tool.get('name')!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$"
            if (tool.get("input_schema") or {}).get("type") != "object":
                return "tools: input_schema.type must be 'object'"
        breakpoints = 0
        for block in [
            *(body.get("tools") or []),
            *(body.get("system") or [] if isinstance(body.get("system"), list) else []),
        ]:
            breakpoints += "cache_control" in block
        for i, msg in enumerate(msgs):
            content = msg.get("content")
            blocks = content if isinstance(content, list) else []
            breakpoints += sum("cache_control" in b for b in blocks)
            if msg.get("role") == "assistant":
                signed = {self._thinking_for[b["id"]] for b in blocks if b.get("id") in self._thinking_for}
                sent = {b.get("signature") for b in blocks if b.get("type") == "thinking"}
                if signed and not (blocks and blocks[0].get("type") == "thinking" and signed <= sent):
                    return (
                        f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                        f"`{blocks[0].get('type') if blocks else None}`. When `thinking` is enabled, a final "
                        "`assistant` message must start with a thinking block (preceeding the lastmost set of "
                        "`tool_use` and `tool_result` blocks)."
                    )
                wanted = {b["id"] for b in blocks if b.get("type") == "tool_use"}
                if wanted:
                    nxt = msgs[i + 1] if i + 1 < len(msgs) else None
                    got = (
                        {b.get("tool_use_id") for b in nxt.get("content", []) if b.get("type") == "tool_result"}
                        if nxt and isinstance(nxt.get("content"), list)
                        else set()
                    )
                    if not wanted <= got:
                        return (
                            f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                            f"after: {', '.join(sorted(wanted - got))}. Each `tool_use` block must have a "
                            "corresponding `tool_result` block in the next message."
                        )
            else:
                prev = msgs[i - 1] if i > 0 else None
                prev_ids = (
                    {b.get("id") for b in prev.get("content", []) if b.get("type") == "tool_use"}
                    if prev and isinstance(prev.get("content"), list)
                    else set()
                )
                for b in blocks:
                    if b.get("type") == "tool_result" and b.get("tool_use_id") not in prev_ids:
                        return (
                            f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                            "`tool_use` block in the previous message."
                        )
        if breakpoints > 4:
            return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        return None

    # -- usage, with prompt caching -------------------------------------------------------------

    def _usage(self, body: dict[str, Any], output: list[dict[str, Any]]) -> dict[str, int]:
        system = body.get("system") or []
        if isinstance(system, str):
            system = [{"type": "text", "text": system}]
        blocks: list[dict[str, Any]] = [*(body.get("tools") or []), *system]
        for msg in body["messages"]:
            content = msg["content"]
            blocks += content if isinstance(content, list) else [{"type": "text", "text": content}]
        sizes, marks = [], []
        total = 0
        digest = hashlib.sha256()
        for block in blocks:
            clean = {k: v for k, v in block.items() if k != "cache_control"}
            piece = json.dumps(clean, sort_keys=True)
            digest.update(piece.encode())
            total += len(piece)
            sizes.append(total)
            if "cache_control" in block:
                marks.append((total, digest.copy().hexdigest()))
        read_upto = 0
        for upto, key in reversed(marks):
            if key in self._cached:
                read_upto = upto
                break
        write_upto = marks[-1][0] if marks else 0
        self._cached.update(key for _, key in marks)
        return {
            "input_tokens": _tokens(total - max(write_upto, read_upto)),
            "output_tokens": _tokens(len(json.dumps(output))),
            "cache_read_input_tokens": _tokens(read_upto) if read_upto else 0,
            "cache_creation_input_tokens": _tokens(write_upto - read_upto) if write_upto > read_upto else 0,
        }

    # -- the endpoint ---------------------------------------------------------------------------

    def respond(self, rec: Recorded) -> tuple[int, dict[str, str], Any]:
        if rec.method != "POST" or rec.path.split("?")[0] != "/v1/messages":
            return 404, {}, _error(404, f"Not found: {rec.path}")
        # The API takes the key as `x-api-key` (classic SDKs) or `Authorization: Bearer` (SDK 2.x).
        if self.api_key not in (rec.headers.get("x-api-key"), rec.headers.get("authorization", "")[7:]):
            return 401, {}, _error(401, "invalid x-api-key")
        if not rec.headers.get("anthropic-version"):
            return 400, {}, _error(400, "anthropic-version: header is required")
        try:
            body = rec.json()
        except ValueError:
            return 400, {}, _error(400, "request body is not valid JSON")
        problem = self._invalid(body)
        if problem:
            return 400, {}, _error(400, problem)
        if not self.script:
            return 400, {}, _error(400, "fake: the script has no more turns")
        step = self.script.pop(0)
        if callable(step):
            step = step(body)
        if isinstance(step, Failure):
            return step.status, step.headers, _error(step.status, step.message, _ERROR_TYPES.get(step.status))
        assert isinstance(step, Reply)
        self.turns_served += 1
        content: list[dict[str, Any]] = []
        signature = None
        if step.thinking is not None:
            signature = hashlib.sha256(f"{self.turns_served}:{step.thinking}".encode()).hexdigest()
            content.append({"type": "thinking", "thinking": step.thinking, "signature": signature})
        if step.text:
            content.append({"type": "text", "text": step.text})
        for call in step.calls:
            self._ids += 1
            if not isinstance(call.input, dict):
                raise AssertionError("the Messages API always sends tool input as a JSON object")
            call_id = f"toolu_{self._ids:04d}"
            if signature:
                self._thinking_for[call_id] = signature
            content.append({"type": "tool_use", "id": call_id, "name": call.name, "input": call.input})
        return (
            200,
            {"request-id": f"req_{self.turns_served:04d}"},
            {
                "id": f"msg_{self.turns_served:04d}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", self.model),
                "content": content,
                "stop_reason": "tool_use" if step.calls else "end_turn",
                "stop_sequence": None,
                "usage": self._usage(body, content),
            },
        )
