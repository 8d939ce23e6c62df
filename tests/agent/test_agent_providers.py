"""Providers: wire conversion, retries honouring retry-after, errors that name the setting."""

from __future__ import annotations

import json
import time

import pytest
import requests
import responses

from sentry_autofix.agent.anthropic import AnthropicLLM, to_wire_messages
from sentry_autofix.agent.llm import AssistantTurn, ToolCall, ToolResult, ToolResults, UserMessage, build_llm
from sentry_autofix.agent.openai_compat import OpenAICompatLLM, retry_after_seconds
from sentry_autofix.agent.pricing import price_for
from sentry_autofix.agent.tools import TOOL_SPECS
from sentry_autofix.errors import ConfigError, LLMError
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.script import Failure, Reply, tool

from .conftest import ANTHROPIC_KEY, make_settings

CONVERSATION = [
    UserMessage("context"),
    AssistantTurn(text="look", tool_calls=(ToolCall("t1", "read_file", {"path": "a.py"}),)),
    ToolResults((ToolResult("t1", "1\tx = 1"),), note="Budget: 2 turn(s) left."),
    AssistantTurn(tool_calls=(ToolCall("t2", "read_file", {"path": "b.py"}),)),
    ToolResults((ToolResult("t2", "no such file", is_error=True),)),
]


def test_anthropic_to_wire_messages__tool_results_and_cache_breakpoints() -> None:
    wire = to_wire_messages(CONVERSATION)
    assert [m["role"] for m in wire] == ["user", "assistant", "user", "assistant", "user"]
    assert wire[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": "1\tx = 1",
        "is_error": False,
    }
    assert wire[2]["content"][1]["text"].startswith("Budget")
    marked = sum("cache_control" in b for m in wire for b in m["content"])
    assert marked == 2  # the stable context and the rolling newest message (tools + system make 4)


def test_anthropic_provider__429_retry_after_is_honoured() -> None:
    script = [Failure(429, {"retry-after": "0.4"}, message="rate limited"), Reply(text="done")]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as fake:
        llm = AnthropicLLM.from_settings(make_settings(anthropic_base_url=fake.url))
        started = time.monotonic()
        turn = llm.complete("system", [UserMessage("hi")], TOOL_SPECS)
        elapsed = time.monotonic() - started
        llm.close()
    assert turn.text == "done"
    assert turn.stop_reason == "end_turn"
    assert elapsed >= 0.4
    assert len(fake.requests) == 2


def test_anthropic_provider__bad_key_is_a_config_error_naming_the_setting() -> None:
    with FakeAnthropic([Reply(text="x")], api_key="the-right-key") as fake:
        llm = AnthropicLLM.from_settings(make_settings(anthropic_base_url=fake.url))
        with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
            llm.complete("s", [UserMessage("hi")], TOOL_SPECS)
        llm.close()


def test_anthropic_provider__request_the_api_would_reject_surfaces_as_llm_error() -> None:
    broken = [UserMessage("c"), AssistantTurn(tool_calls=(ToolCall("t9", "read_file", {"path": "x"}),))]
    with FakeAnthropic([tool("read_file", path="x")], api_key=ANTHROPIC_KEY) as fake:
        llm = AnthropicLLM.from_settings(make_settings(anthropic_base_url=fake.url))
        with pytest.raises(LLMError, match="tool_result"):
            llm.complete("s", broken, TOOL_SPECS)
        llm.close()


def test_build_llm__missing_keys_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        build_llm(make_settings(anthropic_api_key=None))
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_llm(make_settings(llm="openai"))
    # A local OpenAI-compatible server (Ollama, vLLM) needs no key.
    llm = build_llm(make_settings(llm="openai", openai_base_url="http://127.0.0.1:11434/v1", model="qwen3"))
    assert isinstance(llm, OpenAICompatLLM)
    assert llm.model == "qwen3"


URL = "http://llm.test/v1/chat/completions"
OK_BODY = {
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 2000, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 1536}},
}


@responses.activate
def test_openai_compat__retries_429_and_5xx_honouring_retry_after() -> None:
    responses.post(URL, status=429, headers={"retry-after": "7"}, json={"error": {"message": "slow down"}})
    responses.post(URL, status=503, headers={"retry-after-ms": "250"}, json={"error": {"message": "busy"}})
    responses.post(URL, status=500, json={"error": {"message": "oops"}})
    responses.post(URL, json=OK_BODY)
    waits: list[float] = []
    llm = OpenAICompatLLM("gpt-4.1", base_url="http://llm.test/v1", api_key="k", max_retries=3, sleep=waits.append)
    turn = llm.complete("sys", CONVERSATION, TOOL_SPECS)
    assert waits[:2] == [7.0, 0.25]
    assert 1.5 <= waits[2] <= 2.0
    assert turn.tool_calls == (ToolCall("c1", "read_file", {"path": "a.py"}),)
    assert (turn.usage.input_tokens, turn.usage.cache_read_tokens, turn.usage.output_tokens) == (464, 1536, 10)
    sent = json.loads(responses.calls[-1].request.body)
    assert sent["messages"][0] == {"role": "system", "content": "sys"}
    assert sent["messages"][4] == {"role": "user", "content": "Budget: 2 turn(s) left."}
    assert sent["messages"][6] == {"role": "tool", "tool_call_id": "t2", "content": "ERROR: no such file"}
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer k"


@responses.activate
def test_openai_compat__gives_up_after_max_retries_and_names_the_setting() -> None:
    for _ in range(3):
        responses.post(URL, status=529, json={"error": {"message": "overloaded"}})
    llm = OpenAICompatLLM("m", base_url="http://llm.test/v1", max_retries=2, sleep=lambda _s: None)
    with pytest.raises(LLMError, match="529"):
        llm.complete("s", [UserMessage("x")], TOOL_SPECS)
    responses.post(URL, status=401, json={"error": {"message": "bad key"}})
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        llm.complete("s", [UserMessage("x")], TOOL_SPECS)


@responses.activate
def test_openai_compat__connection_errors_are_retried_then_reported() -> None:
    responses.post(URL, body=requests.ConnectionError("refused"))
    responses.post(URL, body=requests.ConnectionError("refused"))
    llm = OpenAICompatLLM("m", base_url="http://llm.test/v1", max_retries=1, sleep=lambda _s: None)
    with pytest.raises(LLMError, match="OPENAI_BASE_URL"):
        llm.complete("s", [UserMessage("x")], TOOL_SPECS)


def test_retry_after_seconds__forms() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_price_for__dated_ids_gateway_prefixes_overrides_and_fallback() -> None:
    assert price_for("claude-sonnet-4-5-20250929").input == 3.0
    assert price_for("claude-sonnet-5-5").output == 10.0
    assert price_for("anthropic/claude-haiku-4-5").input == 1.0
    assert price_for("gpt-4.1-mini").input == 0.4  # not gpt-4.1's price
    assert price_for("my-local-llama").input == 3.0  # unknown: bounded like a Sonnet
    free = price_for("qwen3", 0.0, 0.0)
    assert (free.input, free.output, free.cache_read) == (0.0, 0.0, 0.0)


def test_anthropic_provider__sends_the_documented_x_api_key_header_too() -> None:
    with FakeAnthropic([Reply(text="ok")], api_key=ANTHROPIC_KEY) as fake:
        llm = AnthropicLLM.from_settings(make_settings(anthropic_base_url=fake.url))
        llm.complete("s", [UserMessage("hi")], TOOL_SPECS)
        llm.close()
    headers = fake.requests[0].headers
    assert headers["x-api-key"] == ANTHROPIC_KEY
    assert headers["anthropic-version"]
    assert ANTHROPIC_KEY not in fake.requests[0].text


@responses.activate
def test_openai_compat__switches_to_max_completion_tokens_when_the_server_asks() -> None:
    responses.post(
        URL,
        status=400,
        json={
            "error": {
                "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "type": "invalid_request_error",
            }
        },
    )
    responses.post(URL, json=OK_BODY)
    llm = OpenAICompatLLM("o4-mini", base_url="http://llm.test/v1", max_retries=0, sleep=lambda _s: None)
    llm.complete("s", [UserMessage("x")], TOOL_SPECS)
    first, second = (json.loads(c.request.body) for c in responses.calls)
    assert "max_tokens" in first
    assert "max_completion_tokens" not in first
    assert second["max_completion_tokens"] == 8192
    assert "max_tokens" not in second
    assert OpenAICompatLLM("gpt-5").token_param == "max_completion_tokens"  # OpenAI's own host
