"""End to end: `sentry-autofix run` on a repository whose suite already fails. The fix's PR is
not a draft for that failure, and its body says the failing test failed before the change."""

from __future__ import annotations

from pathlib import Path

from tests.delivery.conftest import git
from tests.delivery.test_e2e_run import ANTHROPIC_KEY, run_action
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.demo_fix import fix_steps
from tests.fakes.github_api import FakeGitHub
from tests.fakes.script import finish
from tests.fakes.sentry_api import FakeSentry


def _break_a_test(ws: Path) -> None:
    (ws / "tests" / "test_legacy.py").write_text("def test_legacy_rounding():\n    assert round(2.675, 2) == 2.68\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "A test that already fails")
    git(ws, "push", "-q", "origin", "main")


def test_run__preexisting_failure_opens_a_ready_pr_that_says_so(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    _break_a_test(workspace)
    with FakeAnthropic(fix_steps(), api_key=ANTHROPIC_KEY) as llm:
        run = run_action(
            tmp_path, workspace, fake_sentry, fake_github, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=llm.url
        )
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "pr-opened"
    pr = fake_github.pulls()[0]
    assert pr["draft"] is False
    assert "1 test fails, it failed before this change" in pr["body"]
    assert "test_legacy_rounding" in pr["body"]


def test_run__preexisting_failure_with_baseline_off_is_still_a_draft(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    """The switch restores the old rule: any failing test makes the PR a draft."""
    _break_a_test(workspace)
    with FakeAnthropic([*fix_steps(), finish(), finish()], api_key=ANTHROPIC_KEY) as llm:
        run = run_action(
            tmp_path,
            workspace,
            fake_sentry,
            fake_github,
            ANTHROPIC_API_KEY=ANTHROPIC_KEY,
            ANTHROPIC_BASE_URL=llm.url,
            SENTRY_AUTOFIX_BASELINE_TESTS="false",
        )
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "draft-pr-opened"
    assert "failed before this change" not in fake_github.pulls()[0]["body"]
