"""The run pipeline with real collaborators against loopback fakes: SentryClient → FakeSentry,
GitHubHost → FakeGitHub, real git with a bare remote, and a scripted Fixer (the agent's stand-in)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.actions import Runner
from sentry_autofix.delivery.github import GitHubHost
from sentry_autofix.markers import comment_state
from sentry_autofix.notify import Notification, Notifier
from sentry_autofix.pipeline import Collaborators, Fixer, deliver_issue
from sentry_autofix.sources.sentry import SentryClient
from sentry_autofix.triage import build_triage
from tests.delivery.conftest import GH_TOKEN, ISSUE_ID, SENTRY_TOKEN, git, make_settings
from tests.fakes.github_api import FakeGitHub
from tests.fakes.scripted_fixer import BLOCKED_FIX, BROKEN_FIX, GOOD_FIX, ScriptedFixer
from tests.fakes.sentry_api import FakeSentry


def run_once(
    workspace: Path,
    fake_sentry: FakeSentry,
    fake_github: FakeGitHub,
    fixer: Fixer | None,
    tmp_path: Path,
    notifiers: Sequence[Notifier] = (),
    **over: Any,
) -> tuple[int, str, dict[str, str], str]:
    settings = make_settings(fake_sentry, fake_github, **over)
    out_file = tmp_path / "out.txt"
    summary = tmp_path / "summary.md"
    out_file.write_text("")
    stdout, log = io.StringIO(), io.StringIO()
    runner = Runner(
        enabled=True,
        output_path=str(out_file),
        summary_path=str(summary),
        secret_values=settings.secret_values(),
        stream=stdout,
        log=log,
    )
    c = Collaborators(
        source=SentryClient(settings),
        host=GitHubHost(settings),
        locate=build_triage,
        fixer=fixer,
        runner=runner,
        notifiers=notifiers,
    )
    import contextlib

    with contextlib.redirect_stdout(stdout):
        code = deliver_issue(ISSUE_ID, settings, workspace, c)
    outputs = parse_outputs(out_file.read_text())
    return code, stdout.getvalue() + log.getvalue(), outputs, summary.read_text() if summary.exists() else ""


def parse_outputs(text: str) -> dict[str, str]:
    """Read GITHUB_OUTPUT the way the runner does (`name<<DELIM` … `DELIM`); last value wins."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        name, _, delim = lines[i].partition("<<")
        j = lines.index(delim, i + 1)
        out[name] = "\n".join(lines[i + 1 : j])
        i = j + 1
    return out


def remote_branches(remote: Path) -> list[str]:
    return git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def test_pipeline__opens_pr_with_the_fix_on_the_pushed_branch(
    workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, log, outputs, summary = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    assert code == 0, log
    assert outputs["status"] == "pr-opened"
    assert outputs["branch"] == "sentry-autofix/SHOP-1F"
    assert outputs["confidence"] == "high"
    pr = fake_github.pulls()[0]
    assert outputs["pr-url"] == pr["html_url"]
    assert outputs["pr-number"] == str(pr["number"])
    assert pr["draft"] is False
    assert pr["base"]["ref"] == "main"
    assert pr["body"].rstrip().endswith(f"<!-- sentry-autofix:issue={ISSUE_ID} -->")
    assert "✅ **passed**" in pr["body"]
    assert "shop/cart.py" in pr["body"]
    assert [lbl["name"] for lbl in pr["labels"]] == ["sentry-autofix"]
    # the fix is on the pushed branch as one commit by the bot, the base branch untouched
    assert sorted(remote_branches(remote)) == ["main", "sentry-autofix/SHOP-1F"]
    assert "if units == 0:" in git(remote, "show", "sentry-autofix/SHOP-1F:shop/cart.py")
    assert git(remote, "rev-list", "--count", "main..sentry-autofix/SHOP-1F").strip() == "1"
    assert git(remote, "log", "-1", "--format=%an", "sentry-autofix/SHOP-1F").strip() == "github-actions[bot]"
    assert git(remote, "rev-parse", "main") == git(workspace, "rev-parse", "main")
    # Sentry heard about it: investigating, then the PR link
    texts = fake_sentry.comments[ISSUE_ID]
    assert [comment_state(t) for t in texts] == ["in-progress", "pr-opened"]
    assert pr["html_url"] in texts[1]
    assert "::error file=shop/cart.py,line=29" in log
    assert "pr-opened" in summary
    assert "Root cause" in summary
    assert len(fake_github.calls) <= 8


def test_pipeline__rerun_skips_and_keeps_one_pr(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    git(workspace, "checkout", "-q", "main")
    fixer = ScriptedFixer(GOOD_FIX)
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, fixer, tmp_path)
    assert code == 0
    assert outputs["status"] == "skipped-duplicate"
    assert fixer.calls == []  # no LLM spend on a duplicate
    assert len(fake_github.pulls()) == 1
    assert outputs["pr-url"] == fake_github.pulls()[0]["html_url"]


def test_pipeline__rerun_in_update_mode_updates_the_pr_or_skips_when_unchanged(
    workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    first = git(remote, "rev-parse", "sentry-autofix/SHOP-1F")
    git(workspace, "checkout", "-q", "-f", "main")
    code, _, outputs, _ = run_once(
        workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path, on_existing="update"
    )
    assert (code, outputs["status"]) == (0, "skipped-duplicate")
    assert git(remote, "rev-parse", "sentry-autofix/SHOP-1F") == first
    git(workspace, "checkout", "-q", "-f", "main")
    better = ScriptedFixer(
        [
            *GOOD_FIX[:0],
            type(GOOD_FIX[0])(
                "shop/cart.py",
                "    return round(cart.total() / units, 2)",
                "    return round(cart.total() / units, 2) if units else 0.0",
            ),
        ]
    )
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, better, tmp_path, on_existing="update")
    assert (code, outputs["status"]) == (0, "pr-updated")
    assert git(remote, "rev-parse", "sentry-autofix/SHOP-1F") != first
    assert "if units else 0.0" in git(remote, "show", "sentry-autofix/SHOP-1F:shop/cart.py")
    assert len(fake_github.pulls()) == 1


def test_pipeline__failing_tests_open_a_draft(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(BROKEN_FIX), tmp_path)
    assert (code, outputs["status"]) == (0, "draft-pr-opened")
    pr = fake_github.pulls()[0]
    assert pr["draft"] is True
    assert "❌ **failed**" in pr["body"]
    assert "tests failed" in pr["body"]
    assert "FAILED tests/test_cart.py::test_total" not in pr["body"]  # only the broken one fails
    assert "FAILED tests/test_cart.py::test_cart_summary" in pr["body"]


def test_pipeline__no_test_command_or_low_confidence_is_a_draft(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, _, outputs, _ = run_once(
        workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX, confidence="medium"), tmp_path, test_command=None
    )
    assert (code, outputs["status"]) == (0, "draft-pr-opened")
    body = fake_github.pulls()[0]["body"]
    assert "tests were not run" in body
    assert "confidence medium is below high" in body


def test_pipeline__blocked_path_pushes_nothing(
    workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, log, outputs, _ = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(BLOCKED_FIX), tmp_path)
    assert (code, outputs["status"]) == (0, "skipped-blocked-path")
    assert "migrations/0002_cart.py" in log
    assert remote_branches(remote) == ["main"]
    assert fake_github.pulls() == []
    assert fake_github.writes() == []


def test_pipeline__pr_creation_forbidden_names_the_setting(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.forbid_pr_creation = True
    code, log, outputs, summary = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    assert (code, outputs["status"]) == (1, "error")
    assert "Settings → Actions → General → Workflow permissions" in log
    assert "Settings → Actions → General → Workflow permissions" in summary
    assert comment_state(fake_sentry.comments[ISSUE_ID][-1]) == "failed"
    assert "Workflow permissions" in fake_sentry.comments[ISSUE_ID][-1]


def test_pipeline__no_fix_opens_a_triage_issue_with_priority(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, ScriptedFixer([], status="no-fix"), tmp_path)
    assert (code, outputs["status"]) == (0, "issue-opened")
    issue = fake_github.issues()[0]
    assert issue["title"] == "[shop] ZeroDivisionError: division by zero"
    assert {lbl["name"] for lbl in issue["labels"]} == {"sentry-autofix", "triage", "P1"}
    assert "shop/cart.py" in issue["body"]
    assert outputs["issue-url"] == issue["html_url"]


def test_pipeline__sentry_comment_failure_never_fails_the_run(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_sentry.can_write = False
    code, log, outputs, _ = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    assert (code, outputs["status"]) == (0, "pr-opened")
    assert "could not comment on the Sentry issue" in log


def test_pipeline__secrets_never_leave_in_bodies_logs_or_outputs(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, log, outputs, summary = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    assert code == 0
    sent = " ".join(str(c.body) for c in fake_github.calls) + " ".join(str(c.body) for c in fake_sentry.calls)
    everything = sent + log + str(outputs) + summary + (workspace / ".git" / "config").read_text()
    for secret in (GH_TOKEN, SENTRY_TOKEN):
        assert secret not in everything


@pytest.mark.parametrize("mode", ["triage"])
def test_pipeline__triage_mode_dedups_and_reopens_on_regression(
    mode: str, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, None, tmp_path, mode=mode)
    assert (code, outputs["status"]) == (0, "issue-opened")
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, None, tmp_path, mode=mode)
    assert (code, outputs["status"]) == (0, "skipped-duplicate")
    assert len(fake_github.issues()) == 1
    fake_github.issues()[0]["state"] = "closed"
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, None, tmp_path, mode=mode)
    assert (code, outputs["status"]) == (0, "issue-opened")
    issue = fake_github.issues()[0]
    assert issue["state"] == "open"
    assert len(fake_github.issues()) == 1
    assert "happening again" in fake_github.comments[issue["number"]][0]


def test_pipeline__dry_run_touches_no_remote(
    workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, log, outputs, _ = run_once(
        workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path, dry_run=True
    )
    assert (code, outputs["status"]) == (0, "dry-run")
    assert "+    if units == 0:" in log  # the diff is printed
    assert fake_github.calls == []
    assert remote_branches(remote) == ["main"]
    assert ISSUE_ID not in fake_sentry.comments  # no Sentry comment either


def test_pipeline__commits_only_what_the_fix_touched(
    workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    # what earlier workflow steps leave in a checkout (not gitignored): never part of the PR
    (workspace / "shop.egg-info").mkdir()
    (workspace / "shop.egg-info" / "PKG-INFO").write_text("Name: shop\n")
    (workspace / "README.md").write_text("locally edited\n")
    code, log, outputs, _ = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    assert (code, outputs["status"]) == (0, "pr-opened"), log
    files = git(remote, "diff", "--name-only", "main", "sentry-autofix/SHOP-1F").split()
    assert files == ["shop/cart.py"]


def test_pipeline__secret_in_model_output_never_reaches_github(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fixer = ScriptedFixer(GOOD_FIX, root_cause=f"the token {GH_TOKEN} and sk-ant-api03-abcdefghijklmnopqrstuvwx leak")
    code, _, outputs, summary = run_once(workspace, fake_sentry, fake_github, fixer, tmp_path)
    assert (code, outputs["status"]) == (0, "pr-opened")
    body = fake_github.pulls()[0]["body"]
    assert GH_TOKEN not in body
    assert "sk-ant-api03" not in body
    assert GH_TOKEN not in summary


def test_pipeline__annotation_path_is_relative_to_github_workspace(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    # the repo checked out into a folder of GITHUB_WORKSPACE (actions/checkout `path: ws`)
    _, log, _, _ = run_once(
        workspace, fake_sentry, fake_github, None, tmp_path, mode="triage", github_workspace=str(workspace.parent)
    )
    assert "::error file=ws/shop/cart.py,line=29" in log


def test_pipeline__duplicate_run_posts_no_sentry_comment(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    before = list(fake_sentry.comments[ISSUE_ID])
    git(workspace, "checkout", "-q", "-f", "main")
    _, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path)
    assert outputs["status"] == "skipped-duplicate"
    assert fake_sentry.comments[ISSUE_ID] == before


class RecordingNotifier:
    """Stands in for a chat target (the Notifier protocol); records what it was sent."""

    name = "recording"

    def __init__(self, fail: bool = False) -> None:
        self.notes: list[Notification] = []
        self.fail = fail

    def send(self, note: Notification) -> None:
        self.notes.append(note)
        if self.fail:
            raise ConnectionError("chat is down")


def test_pipeline__notifies_chat_after_delivery_and_survives_a_failing_target(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    ok, down = RecordingNotifier(), RecordingNotifier(fail=True)
    code, log, outputs, _ = run_once(
        workspace, fake_sentry, fake_github, ScriptedFixer(GOOD_FIX), tmp_path, notifiers=[down, ok]
    )
    assert (code, outputs["status"]) == (0, "pr-opened")
    note = ok.notes[0]
    assert note.kind == "pr-opened"
    assert note.pr_url == outputs["pr-url"]
    assert note.tests == "passed"
    assert note.error_title == "ZeroDivisionError: division by zero"
    assert "recording notification failed" in log


class DescribingFixer(ScriptedFixer):
    """A fixer whose own account of the change is wrong: the PR must show what git says."""

    def fix(self, report: Any, workspace: Path, settings: Any) -> Any:
        result = super().fix(report, workspace, settings)
        result.diff = "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-a\n+b\n"
        result.files = []
        return result


def test_pipeline__pr_shows_the_diff_from_git_not_the_fixers_description(
    workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, _, outputs, _ = run_once(workspace, fake_sentry, fake_github, DescribingFixer(GOOD_FIX), tmp_path)
    assert (code, outputs["status"]) == (0, "pr-opened")
    body = fake_github.pulls()[0]["body"]
    assert "+    if units == 0:" in body
    assert "README.md" not in body
    assert "| `shop/cart.py` | 2 | 0 |" in body
