"""The tool loop: ask the model, run its tool calls through the toolbox, until `finish` or a budget.

Ending is control flow, not failure: the loop returns an `AgentOutcome` saying why it stopped
(`finished`, `turns`, `tokens`, `cost`, or `idle`: the model stopped calling tools). After
`finish`, if the files changed since the last full test run, the tests run on the final state; a
failure is fed back (the tail of the output) for another attempt while repairs and budget remain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sentry_autofix.agent.llm import LLM, AssistantTurn, Message, ToolCall, ToolResult, ToolResults, UserMessage
from sentry_autofix.agent.pricing import Price
from sentry_autofix.agent.tools import Finish, Toolbox
from sentry_autofix.errors import LLMError
from sentry_autofix.models import TestOutcome, Usage

log = logging.getLogger(__name__)

StopReason = Literal["finished", "turns", "tokens", "cost", "idle", "error"]

NUDGE = (
    "Continue by calling tools. When the fix is made and the tests pass, call `finish`; if no safe "
    "fix is possible, leave the files unchanged and call `finish` with confidence low."
)


@dataclass(frozen=True)
class Budget:
    max_turns: int
    max_tokens: int
    max_cost_usd: float


@dataclass
class AgentOutcome:
    stop: StopReason
    finish: Finish | None
    usage: Usage
    tests: TestOutcome | None
    """The last full test run on the files as they are now (None: never ran, or files changed since)."""
    repairs: int = 0
    model_seconds: float = 0.0
    test_seconds: float = 0.0
    transcript: list[Message] = field(default_factory=list)
    error: str | None = None
    """Why the provider failed (stop == "error"); usage up to that point is still counted."""


class _Meter:
    def __init__(self, price: Price, budget: Budget) -> None:
        self.price = price
        self.budget = budget
        self.usage = Usage()

    def add(self, turn: AssistantTurn) -> None:
        u = turn.usage
        self.usage.input_tokens += u.input_tokens
        self.usage.output_tokens += u.output_tokens
        self.usage.cache_read_tokens += u.cache_read_tokens
        self.usage.cache_write_tokens += u.cache_write_tokens
        self.usage.cost_usd += self.price.cost(u)
        self.usage.turns += 1

    @property
    def tokens(self) -> int:
        u = self.usage
        return u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens

    def exhausted(self) -> StopReason | None:
        if self.usage.turns >= self.budget.max_turns:
            return "turns"
        if self.tokens >= self.budget.max_tokens:
            return "tokens"
        if self.usage.cost_usd >= self.budget.max_cost_usd:
            return "cost"
        return None

    def note(self) -> str | None:
        left = self.budget.max_turns - self.usage.turns
        if left <= 3:
            return f"Budget: {left} turn(s) left. Finish soon: make the minimal fix and call `finish`."
        if self.tokens >= 0.8 * self.budget.max_tokens or self.usage.cost_usd >= 0.8 * self.budget.max_cost_usd:
            return "Budget: over 80% of the token/cost budget is spent. Finish soon."
        return None


COMPACT_ABOVE_CHARS = 400_000
"""About 100k tokens of transcript: beyond it, old bulky tool results are elided (see `compact`)."""
KEEP_RECENT = 8


def compact(messages: list[Message], limit: int = COMPACT_ABOVE_CHARS, keep_recent: int = KEEP_RECENT) -> None:
    """Keep long sessions inside the context window: when the transcript is over `limit`
    characters, replace bulky tool results older than the last `keep_recent` messages by a stub
    (the model can read the file again). The initial context and every tool call stay intact."""
    size = sum(
        len(m.text) if isinstance(m, UserMessage | AssistantTurn) else sum(len(r.content) for r in m.results)
        for m in messages
    )
    if size <= limit:
        return
    for i, msg in enumerate(messages[: max(0, len(messages) - keep_recent)]):
        if isinstance(msg, ToolResults) and any(len(r.content) > 2_000 for r in msg.results):
            stubbed = tuple(
                ToolResult(
                    r.call_id,
                    f"[output of {len(r.content)} chars elided to save context; call the tool again if you need it]",
                    r.is_error,
                )
                if len(r.content) > 2_000
                else r
                for r in msg.results
            )
            messages[i] = ToolResults(stubbed, msg.note)


def _describe(turn: int, call: ToolCall, failed: bool) -> str:
    target = call.input.get("path") or call.input.get("pattern") or call.input.get("command") or ""
    target = " ".join(str(target).split())[:80]  # one line: nothing the model writes can start a log command
    return f"turn {turn}: {call.name} {target}".rstrip() + (" — refused/failed" if failed else "")


def run_loop(
    llm: LLM,
    system: str,
    context: str,
    toolbox: Toolbox,
    budget: Budget,
    price: Price,
    *,
    max_repairs: int = 2,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
) -> AgentOutcome:
    """Run the loop; `progress` receives one short line per tool call (for the job log)."""
    meter = _Meter(price, budget)
    messages: list[Message] = [UserMessage(context)]
    started = clock()
    model_seconds = test_seconds = 0.0
    repairs = idle = 0
    finish: Finish | None = None
    refused: Finish | None = None
    """The last `finish` sent back because tests failed: the fallback if the repair never comes."""
    error: str | None = None
    stop: StopReason

    while True:
        exhausted = meter.exhausted()
        if exhausted:
            stop = exhausted
            log.info("agent stopped: %s budget exhausted", exhausted)
            break
        compact(messages)
        t0 = clock()
        try:
            turn = llm.complete(system, messages, toolbox.specs)
        except LLMError as exc:
            stop, error = "error", str(exc)
            break
        finally:
            model_seconds += clock() - t0
        meter.add(turn)
        messages.append(turn)

        if not turn.tool_calls:
            idle += 1
            # A model that ends its turn after changing files considers itself done: keep the change
            # (the caller runs the tests and marks it low confidence) rather than discard real work.
            if idle >= 2 or toolbox.written:
                stop = "idle"
                break
            messages.append(UserMessage(NUDGE))
            continue
        idle = 0

        results: list[ToolResult] = []
        finish_index: int | None = None
        for call in turn.tool_calls:
            if finish_index is not None:
                results.append(ToolResult(call.id, "not run: finish was already called", is_error=True))
                continue
            t0 = clock()
            result, fin = toolbox.execute(call)
            if call.name == "run_tests":
                test_seconds += clock() - t0
            if progress is not None:
                progress(_describe(meter.usage.turns, call, result.is_error))
            results.append(result)
            if fin is not None:
                finish, finish_index = fin, len(results) - 1

        if finish is not None and finish_index is not None:
            if toolbox.written and toolbox.test_command and not toolbox.tests_current:
                t0 = clock()
                toolbox.execute_tests_now()
                test_seconds += clock() - t0
            tests = toolbox.last_tests
            failed = toolbox.written and tests is not None and toolbox.regressed(tests)
            if failed and repairs < max_repairs and meter.exhausted() is None and tests is not None:
                repairs += 1
                tail = tests.output_tail[-toolbox.guard.limits.max_test_output_chars :]
                results[finish_index] = ToolResult(
                    results[finish_index].call_id,
                    f"finish refused: the tests fail on the final state (exit code {tests.exit_code}).\n"
                    f"$ {tests.command}\n{tail}\n"
                    "Fix the failure (or revert your change if it cannot be fixed), then call finish again.",
                    is_error=True,
                )
                refused, finish = finish, None
                messages.append(ToolResults(tuple(results), meter.note()))
                continue
            messages.append(ToolResults(tuple(results)))
            stop = "finished"
            break
        messages.append(ToolResults(tuple(results), meter.note()))

    if stop != "finished" and refused is not None:
        # The model did finish once; the repair attempt ran out of budget, failed at the provider
        # or petered out. Its change stands, with the failing tests on record (a draft PR).
        log.info("agent stopped (%s) during a repair; keeping the last finished change", stop)
        stop, finish = "finished", refused
    meter.usage.seconds = clock() - started
    return AgentOutcome(
        stop=stop,
        finish=finish,
        usage=meter.usage,
        tests=toolbox.last_tests if toolbox.tests_current else None,
        repairs=repairs,
        model_seconds=model_seconds,
        test_seconds=test_seconds,
        transcript=messages,
        error=error,
    )
