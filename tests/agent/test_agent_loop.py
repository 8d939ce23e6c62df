"""Loop mechanics that need no model server: transcript compaction and progress lines."""

from __future__ import annotations

from sentry_autofix.agent.llm import AssistantTurn, ToolCall, ToolResult, ToolResults, UserMessage
from sentry_autofix.agent.loop import _describe, compact


def test_compact__elides_old_bulky_tool_results_only_when_over_the_limit() -> None:
    big = "x" * 5_000
    messages = [UserMessage("context " * 100)]
    for i in range(12):
        messages.append(AssistantTurn(tool_calls=(ToolCall(f"t{i}", "read_file", {"path": "a.py"}),)))
        messages.append(ToolResults((ToolResult(f"t{i}", big), ToolResult(f"s{i}", "short"))))
    untouched = list(messages)
    compact(messages, limit=1_000_000)
    assert messages == untouched
    compact(messages, limit=10_000, keep_recent=4)
    old, recent = messages[2], messages[-1]
    assert isinstance(old, ToolResults)
    assert old.results[0].content.startswith("[output of 5000 chars elided")
    assert old.results[0].call_id == "t0"  # ids stay paired with their tool calls
    assert old.results[1].content == "short"
    assert isinstance(recent, ToolResults)
    assert recent.results[0].content == big
    assert messages[0] == untouched[0]


def test_describe__one_line_that_cannot_start_a_workflow_command() -> None:
    call = ToolCall("t", "read_file", {"path": "a.py\n::set-output name=x::y"})
    line = _describe(3, call, failed=True)
    assert "\n" not in line
    assert line.startswith("turn 3: read_file a.py ::set-output")
    assert line.endswith("refused/failed")
