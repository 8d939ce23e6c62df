"""End to end: `sentry-autofix run` as a subprocess, as the Actions runner starts it — event file,
env, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY — against the fake Sentry and GitHub APIs and a real bare
git remote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.markers import comment_state
from tests.conftest import REPO_ROOT, forwarded_env
from tests.delivery.conftest import GH_TOKEN, ISSUE_ID, SENTRY_TOKEN, demo_api_event, git
from tests.delivery.test_pipeline import parse_outputs, remote_branches
from tests.fakes.github_api import FakeGitHub
from tests.fakes.sentry_api import FakeSentry
from tests.outbound import workflow_commands

CLI = str(Path(sys.executable).with_name("sentry-autofix"))


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    def everything(self) -> str:
        return self.stdout + self.stderr + json.dumps(self.outputs) + self.summary


def run_action(
    tmp_path: Path,
    workspace: Path,
    sentry: FakeSentry,
    github: FakeGitHub,
    *,
    event_name: str = "repository_dispatch",
    event: dict[str, Any] | None = None,
    command: list[str] | None = None,
    **env: str,
) -> Run:
    n = len(list(tmp_path.glob("event-*.json")))
    event_path = tmp_path / f"event-{n}.json"
    payload = (
        event
        if event is not None
        else {
            "action": "sentry-issue",
            "client_payload": {"issue_id": ISSUE_ID, "short_id": "SHOP-1F", "project": "shop", "org": "acme"},
        }
    )
    event_path.write_text(json.dumps(payload))
    output, summary = tmp_path / f"output-{n}", tmp_path / f"summary-{n}.md"
    output.write_text("")
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(REPO_ROOT),
        **forwarded_env(),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_API_URL": github.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "99",
        "GITHUB_TOKEN": GH_TOKEN,
        "SENTRY_URL": sentry.url,
        "SENTRY_AUTH_TOKEN": SENTRY_TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_AUTOFIX_GITHUB_WRITE_INTERVAL": "0",
        "SENTRY_AUTOFIX_GITHUB_MAX_WAIT": "5",
        "SENTRY_AUTOFIX_TEST_COMMAND": f"{sys.executable} -m pytest -q -p no:cacheprovider",
        **env,
    }
    proc = subprocess.run(
        command or [CLI, "run"], env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    return Run(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        parse_outputs(output.read_text()),
        summary.read_text() if summary.exists() else "",
    )


def no_secrets(run: Run, *paths: Path) -> None:
    text = run.everything() + "".join(p.read_text() for p in paths)
    for secret in (GH_TOKEN, SENTRY_TOKEN):
        assert secret not in text.replace(f"::add-mask::{secret}", "")


def test_run__triage_opens_issue_then_dedups(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    first = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert first.code == 0, first.stderr
    assert first.stdout == "status: issue-opened\n"  # stdout: only the machine-readable result
    issue = fake_github.issues()[0]
    assert first.outputs == {
        "status": "issue-opened",
        "pr-url": "",
        "pr-number": "",
        "branch": "",
        "issue-url": issue["html_url"],
        "confidence": "",
    }
    assert f"::add-mask::{GH_TOKEN}" in first.stderr
    assert f"::add-mask::{SENTRY_TOKEN}" in first.stderr
    assert "::group::Sentry issue 4242" in first.stderr
    assert "::error file=shop/cart.py,line=29,title=Sentry error::ZeroDivisionError: division by zero" in first.stderr
    assert "issue-opened" in first.summary
    assert issue["html_url"] in first.summary
    second = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert second.code == 0
    assert second.stdout.rstrip().endswith("status: skipped-duplicate")
    assert second.outputs["issue-url"] == issue["html_url"]
    assert len(fake_github.issues()) == 1
    assert fake_github.pulls() == []
    assert fake_sentry.comments[ISSUE_ID][0].startswith("[sentry-autofix:issue-opened]")
    no_secrets(first, workspace / ".git" / "config")
    no_secrets(second)


def test_run__hostile_sentry_text_cannot_issue_commands_or_forge_marker(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, shared_fixtures: Path
) -> None:
    event = demo_api_event(shared_fixtures)
    hostile = "boom\n::warning::pwned\n@octocat <img src=x> <!-- sentry-autofix:issue=1 --> [x](javascript:alert(1))"
    event["entries"][0]["data"]["values"][-1]["value"] = hostile
    fake_sentry.events[ISSUE_ID] = event
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert run.code == 0, run.stderr
    # the hostile line is in the log, inside a stop-commands block, and cannot be run even without it
    lines = run.stderr.splitlines()
    i = lines.index(":\u200b:warning::pwned")
    token = next(line for line in reversed(lines[:i]) if line.startswith("::stop-commands::")).split("::")[2]
    assert f"::{token}::" in lines[i:]
    assert not [line for line in workflow_commands(run.stderr) if "pwned" in line and not line.startswith("::error ")]
    body = fake_github.issues()[0]["body"]
    assert body.count("<!-- sentry-autofix:issue=") == 1
    assert body.rstrip().endswith("issue=4242 -->")
    assert "@octocat" not in body
    assert "<img" not in body
    assert "[x](javascript:" not in body


def test_run__fix_opens_pr_and_rerun_keeps_one(
    tmp_path: Path, workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    cmd = [sys.executable, "-m", "tests.fakes.run_with_fixer", "good"]
    base_before = git(remote, "rev-parse", "main").strip()
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, command=cmd)
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "pr-opened"
    assert run.outputs["branch"] == "sentry-autofix/SHOP-1F"
    assert "if units == 0" in git(remote, "show", "sentry-autofix/SHOP-1F:shop/cart.py")
    git(workspace, "checkout", "-q", "-f", "main")
    again = run_action(tmp_path, workspace, fake_sentry, fake_github, command=cmd)
    assert again.code == 0
    assert again.outputs["status"] == "skipped-duplicate"
    assert len(fake_github.pulls()) == 1
    no_secrets(run, workspace / ".git" / "config")
    no_secrets(again)
    never_merged(fake_github, remote, base_before)


def test_run__an_overlapping_run_updates_the_pr_the_other_opened(
    tmp_path: Path, workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    """Two runs for one issue: run 2 looked before run 1 opened the PR, then replaced run 1's
    branch with its own fix and got GitHub's 422 "A pull request already exists". It updates that
    PR (`pr-updated`), so the PR text describes the code on the branch."""
    first = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        command=[sys.executable, "-m", "tests.fakes.run_with_fixer", "good"],
    )
    assert first.outputs["status"] == "pr-opened", first.stderr
    git(workspace, "checkout", "-q", "-f", "main")
    # Run 2's reads (PR by head, marker scan of labelled issues) ran before run 1's POST.
    fake_github.inject("GET", r"/pulls$", 200, [])
    fake_github.inject("GET", r"/issues$", 200, [])
    second = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        command=[sys.executable, "-m", "tests.fakes.run_with_fixer", "good2"],
    )
    assert second.code == 0, second.stderr
    assert second.outputs["status"] == "pr-updated"
    assert [c.status for c in fake_github.calls if c.method == "POST" and c.path.endswith("/pulls")] == [201, 422]
    assert len(fake_github.pulls()) == 1
    pr = fake_github.pulls()[0]
    on_branch = git(remote, "show", "sentry-autofix/SHOP-1F:shop/cart.py")
    assert "if not units:" in on_branch and "if units == 0" not in on_branch
    assert "if not units:" in pr["body"] and "if units == 0" not in pr["body"]
    no_secrets(second)


def test_run__pr_creation_forbidden_is_one_clear_line_and_exit_1(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    fake_github.forbid_pr_creation = True
    run = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        command=[sys.executable, "-m", "tests.fakes.run_with_fixer", "good"],
    )
    assert run.code == 1
    assert run.outputs["status"] == "error"
    assert run.stdout.rstrip().endswith("status: error")
    errors = [line for line in run.stderr.splitlines() if line.startswith("::error title=sentry-autofix::")]
    assert len(errors) == 1
    assert "Settings → Actions → General → Workflow permissions" in errors[0]
    assert "Traceback" not in run.stderr
    no_secrets(run)


def test_run__blocked_path_pushes_nothing(
    tmp_path: Path, workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    run = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        command=[sys.executable, "-m", "tests.fakes.run_with_fixer", "blocked"],
    )
    assert run.code == 0
    assert run.outputs["status"] == "skipped-blocked-path"
    assert remote_branches(remote) == ["main"]
    assert fake_github.writes() == []


def test_run__workflow_dispatch_reads_inputs_issue_id(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    run = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        event_name="workflow_dispatch",
        event={"inputs": {"issue_id": ISSUE_ID}, "ref": "refs/heads/main"},
        SENTRY_AUTOFIX_MODE="triage",
    )
    assert run.code == 0
    assert run.outputs["status"] == "issue-opened"


def test_run__schedule_polls_sentry_and_fixes_the_picked_issues(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    event = {"schedule": "17 */6 * * *"}
    run = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        event_name="schedule",
        event=event,
        SENTRY_AUTOFIX_MODE="triage",
        SENTRY_AUTOFIX_POLL_MIN_EVENTS="0",
    )
    assert run.code == 0, run.stderr
    assert run.stdout == "status: issue-opened\n"
    assert "::group::Poll Sentry" in run.stderr
    assert len(fake_github.issues()) == 1
    assert run.outputs["issue-url"] == fake_github.issues()[0]["html_url"]
    # the next scheduled run finds the issue handled (marker search) and picks nothing
    again = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        event_name="schedule",
        event=event,
        SENTRY_AUTOFIX_MODE="triage",
        SENTRY_AUTOFIX_POLL_MIN_EVENTS="0",
    )
    assert again.code == 0, again.stderr
    assert again.outputs["status"] == "skipped-filtered"
    assert len(fake_github.issues()) == 1


@pytest.mark.parametrize(("event_name", "event"), [("push", {}), ("repository_dispatch", {"client_payload": {}})])
def test_run__no_issue_id_is_a_usage_error(
    event_name: str,
    event: dict[str, Any],
    tmp_path: Path,
    workspace: Path,
    fake_sentry: FakeSentry,
    fake_github: FakeGitHub,
) -> None:
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, event_name=event_name, event=event)
    assert run.code == 2
    assert run.outputs["status"] == "error"
    assert "issue" in run.stderr
    assert run.stdout.rstrip().endswith("status: error")


def test_run__resolved_issue_forwarded_by_the_relay_closes_its_triage_issue(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    opened = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert opened.outputs["status"] == "issue-opened"
    resolved = {"action": "sentry-issue", "client_payload": {"issue_id": ISSUE_ID, "action": "resolved"}}
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, event=resolved)
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "skipped-filtered"
    issue = fake_github.issues()[0]
    assert issue["state"] == "closed"
    assert len(fake_github.comments[issue["number"]]) == 1
    assert fake_github.pulls() == []


def test_run__invalid_setting_still_reports_status_error(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="fixx")
    assert run.code == 2
    assert run.outputs["status"] == "error"
    assert run.stdout == "status: error\n"
    assert "::error title=sentry-autofix::invalid setting" in run.stderr
    assert "SENTRY_AUTOFIX_MODE" in run.stderr  # names the setting to fix
    no_secrets(run)


def test_run__failing_tests_open_a_draft_pr(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    run = run_action(
        tmp_path,
        workspace,
        fake_sentry,
        fake_github,
        command=[sys.executable, "-m", "tests.fakes.run_with_fixer", "broken"],
    )
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "draft-pr-opened"
    pr = fake_github.pulls()[0]
    assert pr["draft"] is True
    assert "❌ **failed**" in pr["body"]
    assert "draft-pr-opened" in run.summary
    no_secrets(run)


ANTHROPIC_KEY = "sk-ant-api03-e2e-test-key-0123456789abcdef"


def test_run__real_agent_against_the_fake_llm_opens_the_fix_pr(
    tmp_path: Path, workspace: Path, remote: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    """The whole path as the Action runs it: Sentry → agent (Anthropic Messages API fake) → tests →
    branch → PR → Sentry comment, with the real `build_fixer`."""
    from tests.fakes.anthropic_api import FakeAnthropic
    from tests.fakes.demo_fix import REGRESSION_TEST_PATH, fix_steps

    base_before = git(remote, "rev-parse", "main").strip()
    with FakeAnthropic(fix_steps(), api_key=ANTHROPIC_KEY) as llm:
        run = run_action(
            tmp_path, workspace, fake_sentry, fake_github, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=llm.url
        )
        bodies = llm.all_bodies()
    assert run.code == 0, run.stderr
    assert run.stdout == "status: pr-opened\n"
    assert run.outputs["status"] == "pr-opened"
    assert run.outputs["confidence"]
    files = git(remote, "diff", "--name-only", "main", "sentry-autofix/SHOP-1F").split()
    assert sorted(files) == sorted(["shop/cart.py", REGRESSION_TEST_PATH])
    pr = fake_github.pulls()[0]
    assert "Regression test reproduced the error: ✅ yes" in pr["body"]
    assert "✅ **passed**" in pr["body"]
    assert [comment_state(t) for t in fake_sentry.comments[ISSUE_ID]] == ["in-progress", "pr-opened"]
    for secret in (GH_TOKEN, SENTRY_TOKEN, ANTHROPIC_KEY):
        assert secret not in bodies
    no_secrets(run, workspace / ".git" / "config")
    assert ANTHROPIC_KEY not in run.everything().replace(f"::add-mask::{ANTHROPIC_KEY}", "")
    never_merged(fake_github, remote, base_before)


def never_merged(github: FakeGitHub, remote: Path, base_before: str) -> None:
    """SPEC §6: never merge, never approve, never touch the base branch."""
    for call in github.calls:
        assert not call.path.endswith(("/merge", "/reviews")), call
        assert "/git/refs" not in call.path or call.method == "GET", call
    assert git(remote, "rev-parse", "main").strip() == base_before
    assert all(not pr.get("merged") for pr in github.pulls())


def test_run__fix_mode_without_an_llm_key_names_the_setting(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub
) -> None:
    run = run_action(tmp_path, workspace, fake_sentry, fake_github)
    assert run.code == 2
    assert run.outputs["status"] == "error"
    assert "ANTHROPIC_API_KEY" in run.stderr
