"""Fix one error in a workspace: triage → context → agent loop → diff → guard → tests → reproduction.

`run_fix` receives its collaborators (the LLM, optionally the triage and the test runner) so it
can be driven by fakes; only `fix_command` (the `fix` subcommand) builds the real ones. The lead
folds this ordering into `pipeline.py`; keep it the one place that orders the fix steps.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, TextIO

from sentry_autofix import neutral
from sentry_autofix.agent.context import SYSTEM_PROMPT, build_context, estimate_tokens
from sentry_autofix.agent.llm import LLM, AssistantTurn, build_llm
from sentry_autofix.agent.loop import AgentOutcome, Budget, run_loop
from sentry_autofix.agent.pricing import price_for
from sentry_autofix.agent.tools import TestRunner, Toolbox
from sentry_autofix.config import Settings
from sentry_autofix.errors import AutofixError, ConfigError, InputError
from sentry_autofix.models import ErrorEvent, FixResult, RunStatus, TestOutcome, TriageReport
from sentry_autofix.pipeline import fetch_event, make_source, resolve_workspace
from sentry_autofix.sources import ErrorSource
from sentry_autofix.triage import build_triage
from sentry_autofix.workspace import diff as wsdiff
from sentry_autofix.workspace.git import is_work_tree
from sentry_autofix.workspace.guard import PathGuard
from sentry_autofix.workspace.testids import caused_failure, compare
from sentry_autofix.workspace.testrunner import TestExecutor, executor_for, redact

log = logging.getLogger(__name__)

_TEST_PATH = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing)/"
    r"|(^|/)test_[^/]*\.py$|_test\.(py|go|rb|exs?)$|(^|/)conftest\.py$"
    r"|\.(test|spec)\.[cm]?[jt]sx?$|_spec\.rb$|Tests?\.(java|kt|cs|php|swift)$"
)


def is_test_path(path: str) -> bool:
    """Whether a repo path is part of a test suite (by the conventions of common ecosystems)."""
    return bool(_TEST_PATH.search(PurePosixPath(path).as_posix()))


@dataclass
class FixRun:
    """A fix attempt's result plus what the caller needs to finish the job."""

    result: FixResult
    baseline: wsdiff.Baseline
    written: set[str] = field(default_factory=set)
    context_tokens: int = 0
    stop: str = ""
    model_seconds: float = 0.0
    test_seconds: float = 0.0
    total_seconds: float = 0.0


def default_test_runner(workspace: Path, settings: Settings) -> TestExecutor:
    """Sandboxed runs of the repository's tests, sharing one time budget for this fix."""
    return executor_for(workspace, settings)


def _triage_for(event: ErrorEvent, workspace: Path, settings: Settings) -> TriageReport:
    return build_triage(event, workspace, settings)


def verify_reproduction(
    workspace: Path,
    baseline: wsdiff.Baseline,
    written: set[str],
    run_tests: TestRunner,
    command: str | None,
    with_fix: TestOutcome,
    before: TestOutcome | None = None,
) -> tuple[Literal["true", "false", "unknown"], TestOutcome | None]:
    """Run the changed tests against the original source: they must fail there and pass with the fix.

    The fix's non-test changes are held back (restored to the baseline) for one test run, then
    put back, whatever happens. With a baseline test run (`before`), "fail" and "pass" mean
    "fail in a way the untouched workspace did not" and "no failure the fix caused".
    """
    if not command or with_fix.status == "not-run":
        return "unknown", None
    final = wsdiff.snapshot(workspace, baseline, written)
    changes = wsdiff.changed_paths(workspace, baseline.tree, final)
    tests = [p for _, p in changes if is_test_path(p)]
    source = [p for _, p in changes if not is_test_path(p)]
    if not tests or not source:
        return "unknown", None
    if caused_failure(before, with_fix) is not False:
        return "false", None
    wsdiff.move_to_tree(workspace, final, baseline.tree, only=source)
    try:
        without = run_tests(command)
    finally:
        wsdiff.move_to_tree(workspace, baseline.tree, final, only=source)
    failed = caused_failure(before, without)
    return ("unknown" if failed is None else "true" if failed else "false"), without


def run_fix(
    event: ErrorEvent,
    workspace: Path,
    settings: Settings,
    llm: LLM,
    *,
    triage: TriageReport | None = None,
    test_runner: TestRunner | None = None,
    keep_changes: bool = True,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
) -> FixRun:
    """Let the agent fix `event` in `workspace`; the change stays there only if `keep_changes`
    and the result is `fixed` (a blocked or unfinished change is always rolled back — also when
    anything, even a bug of ours or Ctrl-C, interrupts the run)."""
    started = clock()
    workspace = workspace.resolve()
    if not workspace.is_dir() or not is_work_tree(workspace):
        raise InputError(f"{workspace} is not a git work tree: pass --workspace pointing at the checkout")
    baseline = wsdiff.take_baseline(workspace)
    written: set[str] = set()
    owned = None if test_runner is not None else default_test_runner(workspace, settings)
    try:
        return _run_fix(
            event,
            workspace,
            settings,
            llm,
            baseline,
            written,
            triage,
            test_runner or owned,
            keep_changes,
            clock,
            progress,
            started,
        )
    except BaseException:
        try:
            wsdiff.restore(workspace, baseline, written)
        except Exception as exc:  # never mask the original failure
            log.error("could not restore the workspace: %s", exc)
        raise
    finally:
        if owned is not None:
            owned.close()  # the fix's sandbox server (a root process) ends with the fix


def _run_fix(
    event: ErrorEvent,
    workspace: Path,
    settings: Settings,
    llm: LLM,
    baseline: wsdiff.Baseline,
    written: set[str],
    triage: TriageReport | None,
    test_runner: TestRunner | None,
    keep_changes: bool,
    clock: Callable[[], float],
    progress: Callable[[str], None] | None,
    started: float,
) -> FixRun:
    guard = PathGuard.from_settings(workspace, settings)
    runner = test_runner or default_test_runner(workspace, settings)
    command = settings.test_command
    run = FixRun(result=FixResult(status="no-fix"), baseline=baseline)
    before = _baseline_tests(runner, command, settings, progress)
    run.test_seconds += before.seconds if before else 0.0
    toolbox = Toolbox(
        workspace,
        guard,
        runner,
        command,
        secret_values=settings.secret_values(),
        written=written,
        baseline=baseline,
        baseline_tests=before,
    )

    def finish(result: FixResult, keep: bool) -> FixRun:
        if not keep:
            wsdiff.restore(workspace, baseline, toolbox.written)
        else:
            wsdiff.remove_artifacts(workspace, baseline, toolbox.written)
        run.result = result
        run.written = set(toolbox.written)
        run.total_seconds = clock() - started
        result.usage.seconds = run.total_seconds
        return run

    try:
        triage = triage or _triage_for(event, workspace, settings)
        # The event is attacker-influenced: a secret it quotes (the job token in a URL) is cut here.
        context = redact(build_context(triage, workspace, guard, command), settings.secret_values())
        run.context_tokens = estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(context)
        budget = Budget(settings.max_turns, settings.max_tokens, settings.max_cost_usd)
        price = price_for(settings.model_name, settings.price_input_per_mtok, settings.price_output_per_mtok)
        outcome: AgentOutcome = run_loop(
            llm,
            SYSTEM_PROMPT,
            context,
            toolbox,
            budget,
            price,
            max_repairs=settings.max_repairs,
            clock=clock,
            progress=progress,
        )
    except AutofixError as exc:
        if isinstance(exc, ConfigError):
            raise
        return finish(FixResult(status="error", error=str(exc)), keep=False)

    run.stop, run.model_seconds, run.test_seconds = outcome.stop, outcome.model_seconds, outcome.test_seconds
    fin = outcome.finish
    base = FixResult(
        status="no-fix",
        root_cause=fin.root_cause if fin else "",
        analysis=fin.analysis if fin else "",
        confidence=fin.confidence if fin else None,
        pr_title=fin.pr_title if fin else "",
        summary=fin.summary if fin else "",
        usage=outcome.usage,
        baseline_tests=before,
    )
    if outcome.stop == "error":
        base.status, base.error = "error", outcome.error
        return finish(base, keep=False)
    diff_text = wsdiff.workspace_diff(workspace, baseline, toolbox.written)
    base.diff = diff_text
    base.files = wsdiff.file_changes(diff_text)

    blocked = guard.blocked_in_diff(diff_text)
    if blocked:
        base.status = "skipped-blocked-path"
        base.error = "the change touches blocked paths: " + ", ".join(blocked)
        return finish(base, keep=False)
    if not diff_text.strip():
        base.diff, base.files = "", []
        if toolbox.blocked_attempts:
            # The only change the model wanted was in a blocked path: say so, not just "no fix".
            base.status = "skipped-blocked-path"
            base.error = "the fix needs blocked paths, which were not changed: " + ", ".join(
                sorted(set(toolbox.blocked_attempts))
            )
        else:
            base.error = None if fin else f"the agent stopped ({outcome.stop}) without a change"
        return finish(base, keep=False)
    if outcome.stop not in ("finished", "idle"):
        base.error = f"budget exhausted ({outcome.stop}) before the agent called finish; change discarded"
        return finish(base, keep=False)
    if outcome.stop == "idle":
        # Ended without `finish`: keep the change, but say nobody vouched for it.
        last = next((m for m in reversed(outcome.transcript) if isinstance(m, AssistantTurn)), None)
        base.confidence = "low"
        base.analysis = base.analysis or (last.text if last else "")
        base.root_cause = base.root_cause or "(the model ended without calling finish)"

    tests = outcome.tests
    if tests is None:
        t0 = clock()
        tests = toolbox.execute_tests_now()
        run.test_seconds += clock() - t0
    base.tests = tests
    t0 = clock()
    try:
        base.reproduced, _ = verify_reproduction(workspace, baseline, toolbox.written, runner, command, tests, before)
    finally:
        run.test_seconds += clock() - t0
    base.status = "fixed"
    return finish(base, keep=keep_changes)


def _baseline_tests(
    runner: TestRunner, command: str | None, settings: Settings, progress: Callable[[str], None] | None
) -> TestOutcome | None:
    """The test command on the untouched workspace, so failures the fix did not cause are known
    (same sandbox and time budget as every other run); None when skipped or nothing to run."""
    if not settings.baseline_tests or not command:
        return None
    before = runner(command)
    if progress:
        known = before.failed_tests
        detail = "" if before.status != "failed" else f", {len(known)} failing" if known else ", failures unreadable"
        progress(f"baseline: tests {before.status} before any change ({before.seconds:.1f}s{detail})")
    return before


# -- presentation ---------------------------------------------------------------------------------


def render_pr_text(result: FixResult, event: ErrorEvent) -> str:
    """Plain PR title and body for `--dry-run` (delivery renders and neutralises the real one).

    Terminal text: `fix_command` prints it through a `neutral.NeutralStream`, which strips control
    characters and keeps every line from starting a workflow command."""
    u = result.usage
    files = "\n".join(f"- `{f.path}` (+{f.added} −{f.removed}{', new' if f.is_new else ''})" for f in result.files)
    tests = result.tests
    test_line = f"{tests.status}" + (f" (`{tests.command}`, exit {tests.exit_code})" if tests.command else "")
    versus = compare(result.baseline_tests, tests)
    test_line += f": {versus}" if versus else ""
    parts = [
        f"PR title: {result.pr_title or 'Fix ' + event.headline[:60]}",
        "",
        "## Error",
        f"`{event.headline[:300]}`" + (f" — {event.permalink}" if event.permalink else ""),
        "",
        "## Root cause",
        result.root_cause or "(not stated)",
        "",
        "## Analysis",
        result.analysis or "(none)",
        "",
        "## Changes",
        files or "(none)",
        "",
        result.summary,
        "",
        "## Tests",
        test_line,
    ]
    if tests.status == "failed" and tests.output_tail:
        parts += ["```", tests.output_tail[-2000:], "```"]
    parts += [
        f"Regression test reproduced the error without the fix: {result.reproduced}",
        f"Confidence: {result.confidence or 'unknown'}",
        f"Usage: {u.input_tokens} input + {u.output_tokens} output tokens "
        f"({u.cache_read_tokens} cache read, {u.cache_write_tokens} cache write), "
        f"~${u.cost_usd:.4f}, {u.turns} turns, {u.seconds:.1f}s",
        "",
        "Generated by sentry-autofix: review before merging.",
    ]
    return "\n".join(parts)


def fix_command(
    args: argparse.Namespace,
    settings: Settings,
    *,
    llm: LLM | None = None,
    source: ErrorSource | None = None,
    deliver: Callable[[FixRun, ErrorEvent], RunStatus] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The `fix` subcommand. Prints the diff and PR text (stdout), ends with `status: <status>`.

    Usage and configuration errors propagate (exit 2, message naming the setting); any other
    failure still ends with `status: error` (exit 1), as scripts parsing the last line expect.
    """
    # Everything printed quotes the event, the model or the tests: through the neutral choke point.
    out = neutral.stream(stdout or sys.stdout)
    err = neutral.stream(stderr or sys.stderr)
    try:
        return _fix_command(args, settings, llm, source, deliver, out, err)
    except (ConfigError, InputError):
        raise
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        kind = "error" if isinstance(exc, AutofixError) else f"internal error: {type(exc).__name__}"
        print(f"sentry-autofix: {kind}: {exc}", file=err)
        out.write("status: error\n")
        out.flush()
        return 1


def _fix_command(
    args: argparse.Namespace,
    settings: Settings,
    llm: LLM | None,
    source: ErrorSource | None,
    deliver: Callable[[FixRun, ErrorEvent], RunStatus] | None,
    out: neutral.NeutralStream,
    err: neutral.NeutralStream,
) -> int:
    dry_run = bool(getattr(args, "dry_run", False))

    workspace = resolve_workspace(getattr(args, "workspace", None))
    event = fetch_event(args, settings, source or make_source(settings))
    owned = llm is None
    if llm is None:
        llm = build_llm(settings)
    print(f"sentry-autofix: fixing {event.headline[:120]!r} with {settings.llm}/{settings.model_name}", file=err)
    try:
        run = run_fix(
            event, workspace, settings, llm, keep_changes=not dry_run, progress=lambda line: print(line, file=err)
        )
    finally:
        close = getattr(llm, "close", None)
        if owned and callable(close):
            close()
    result = run.result
    status: RunStatus
    if result.status == "fixed":
        out.write(result.diff if result.diff.endswith("\n") else result.diff + "\n")
        out.write("\n" + render_pr_text(result, event) + "\n")
        if dry_run:
            status = "dry-run"
        elif deliver is not None:
            status = deliver(run, event)
        else:
            print("sentry-autofix: no delivery configured: the change is left in the workspace", file=err)
            status = "dry-run"
    else:
        status = result.status
        if result.error:
            print(f"sentry-autofix: {result.error}", file=err)
        if result.root_cause:
            out.write(render_pr_text(result, event) + "\n")
    u = result.usage
    print(
        f"sentry-autofix: {u.turns} turns, "
        f"{u.input_tokens + u.cache_read_tokens + u.cache_write_tokens} input / {u.output_tokens} output tokens, "
        f"~${u.cost_usd:.4f}, tests {result.tests.status}, "
        f"reproduced {result.reproduced}",
        file=err,
    )
    out.write(f"status: {status}\n")
    out.flush()
    return 1 if status == "error" else 0
