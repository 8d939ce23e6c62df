"""Poll, the lifecycle and scheduled runs on GitLab, through `GitLabHost` / `GitLabTrigger` against
the loopback GitLab fake (tests/fakes/gitlab_api.py) and the poll's Sentry fake: the same
behaviour as on GitHub, reached through the same `CodeHost` / `Trigger` seams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.cli import main
from sentry_autofix.config import Settings, load_settings
from sentry_autofix.delivery.gitlab import GitLabHost
from sentry_autofix.errors import CodeHostError, Conflict
from sentry_autofix.lifecycle import LifecycleEvent, handle_lifecycle
from sentry_autofix.markers import marker_for
from sentry_autofix.models import IssueInfo
from sentry_autofix.run import run_command
from tests.fakes.gitlab_api import FakeGitLab

from .fakes import FakeIssue, FakeSentry

TOKEN = "glpat-poll-project-token-0123456789"
TRIGGER = "glptt-poll-trigger-token-abcdef0123"
ISSUE = IssueInfo(
    id="4242", short_id="SHOP-1F", title="ZeroDivisionError", permalink="https://acme.sentry.io/issues/4242/"
)


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab(project="acme/shop", project_id=42, token=TOKEN, trigger_token=TRIGGER).start()
    yield fake
    fake.stop()


@pytest.fixture
def sentry() -> Iterator[FakeSentry]:
    with FakeSentry() as server:
        yield server


def host_settings(gitlab: FakeGitLab, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "code_host": "gitlab",
        "gitlab_url": gitlab.url,
        "gitlab_project": "42",
        "gitlab_token": TOKEN,
    }
    values.update(over)
    return Settings(**values)


def seed(host: GitLabHost) -> dict[str, int]:
    """What earlier runs left: a triage issue and an MR for 4242, an old closed MR, another issue's."""
    return {
        "issue": host.open_issue(title="Triage", body=f"t\n\n{marker_for('4242')}\n", labels=["sentry-autofix"]).number,
        "mr": host.open_pull_request(
            branch="sentry-autofix/SHOP-1F",
            base="main",
            title="Fix",
            body=f"f\n\n{marker_for('4242')}\n",
            draft=False,
            labels=["sentry-autofix"],
        ).number,
        "other": host.open_issue(title="Other", body=f"o\n\n{marker_for('42420')}\n", labels=["sentry-autofix"]).number,
    }


def notes_on(gitlab: FakeGitLab, kind: str, iid: int) -> list[str]:
    return [n["body"] for n in gitlab.notes if n["noteable_type"] == kind and n["noteable_iid"] == iid]


# --- lifecycle ----------------------------------------------------------------------------------


def test_gitlab_lifecycle__resolved_closes_the_issue_and_notes_the_open_mr(gitlab: FakeGitLab) -> None:
    host = GitLabHost(host_settings(gitlab))
    n = seed(host)
    before = len(gitlab.api_calls())
    outcome = handle_lifecycle(LifecycleEvent("resolved", ISSUE), host)
    assert sorted(outcome.actions) == sorted([f"closed issue #{n['issue']}", f"commented on MR !{n['mr']}"])
    issue = next(i for i in gitlab.issues if i["iid"] == n["issue"])
    assert issue["state"] == "closed"
    assert "resolved" in notes_on(gitlab, "Issue", n["issue"])[0]
    assert "resolved" in notes_on(gitlab, "MergeRequest", n["mr"])[0]
    assert "this merge request may no longer be needed" in notes_on(gitlab, "MergeRequest", n["mr"])[0]
    assert next(m for m in gitlab.mrs if m["iid"] == n["mr"])["state"] == "opened"  # never closed or merged
    assert not notes_on(gitlab, "Issue", n["other"])
    # 2 searches (MRs, issues) + note + close on the issue + note on the MR.
    assert len(gitlab.api_calls()) - before == 5


def test_gitlab_lifecycle__regression_reopens_the_closed_triage_issue(gitlab: FakeGitLab) -> None:
    host = GitLabHost(host_settings(gitlab))
    n = seed(host)
    host.close_issue(n["issue"])
    outcome = handle_lifecycle(LifecycleEvent("regressed", ISSUE), host)
    assert f"reopened issue #{n['issue']}" in outcome.actions
    assert next(i for i in gitlab.issues if i["iid"] == n["issue"])["state"] == "opened"
    assert "regression" in notes_on(gitlab, "Issue", n["issue"])[-1]
    # Idempotent: a second regression comments, it does not reopen again.
    again = handle_lifecycle(LifecycleEvent("regressed", ISSUE), host)
    assert f"commented on issue #{n['issue']}" in again.actions


def test_gitlab_lifecycle__title_is_inert_in_notes(gitlab: FakeGitLab) -> None:
    host = GitLabHost(host_settings(gitlab))
    n = seed(host)
    hostile = ISSUE.model_copy(update={"title": "@all <img src=x> [x](javascript:alert(1)) /close"})
    handle_lifecycle(LifecycleEvent("escalating", hostile), host)
    note = notes_on(gitlab, "Issue", n["issue"])[-1]
    assert "`@all <img src=x> [x](javascript:alert(1)) /close`" in note


def test_gitlab_run__triggered_resolved_pipeline_closes_the_triage_issue(
    gitlab: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The relay's `resolved` webhook → a triggered pipeline → `sentry-autofix run` notes and closes."""
    n = seed(GitLabHost(host_settings(gitlab)))
    payload = {"issue_id": "4242", "short_id": "SHOP-1F", "action": "resolved", "substatus": None}
    env = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "trigger",
        "CI_SERVER_URL": gitlab.url,
        "CI_PROJECT_ID": "42",
        "SENTRY_AUTOFIX_GITLAB_TOKEN": TOKEN,
        "SENTRY_AUTOFIX_ISSUE_ID": "4242",
        "SENTRY_AUTOFIX_PAYLOAD": json.dumps(payload),
        "SENTRY_AUTOFIX_DOTENV": str(tmp_path / "out.env"),
        "SENTRY_AUTOFIX_SUMMARY_FILE": str(tmp_path / "summary.md"),
        "SENTRY_AUTH_TOKEN": "sntrys-unused",
        "SENTRY_ORG": "acme",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run"]) == 0, capsys.readouterr().err
    assert next(i for i in gitlab.issues if i["iid"] == n["issue"])["state"] == "closed"
    assert notes_on(gitlab, "MergeRequest", n["mr"])
    assert "SENTRY_AUTOFIX_STATUS=skipped-filtered" in (tmp_path / "out.env").read_text()


# --- poll ---------------------------------------------------------------------------------------


def _poll_env(monkeypatch: pytest.MonkeyPatch, sentry: FakeSentry, gitlab: FakeGitLab, **extra: str) -> None:
    for name, value in {
        "SENTRY_URL": sentry.url,
        "SENTRY_AUTH_TOKEN": sentry.token,
        "SENTRY_ORG": sentry.org,
        "SENTRY_PROJECTS": "backend",
        "SENTRY_AUTOFIX_CODE_HOST": "gitlab",
        "SENTRY_AUTOFIX_GITLAB_URL": gitlab.url,
        "SENTRY_AUTOFIX_GITLAB_PROJECT": "acme/shop",
        "SENTRY_AUTOFIX_GITLAB_TOKEN": TOKEN,
        "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN": TRIGGER,
        "SENTRY_AUTOFIX_BASE_BRANCH": "main",
        **extra,
    }.items():
        monkeypatch.setenv(name, value)


def test_gitlab_poll__dispatch_triggers_one_pipeline_per_issue_and_skips_open_mrs(
    gitlab: FakeGitLab, sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    issues = [
        sentry.add_issue(FakeIssue(7000 + i, "backend", 11, f"E{i}", period_counts={"24h": 90 - i})) for i in range(4)
    ]
    host = GitLabHost(host_settings(gitlab))
    host.open_pull_request(
        branch="sentry-autofix/x",
        base="main",
        title="Fix",
        body=f"f\n\n{marker_for(str(issues[0].id))}\n",
        draft=True,
        labels=["sentry-autofix"],
    )
    before = len(gitlab.api_calls())
    _poll_env(monkeypatch, sentry, gitlab)
    assert main(["poll", "--dispatch", "--max-issues", "2", "--no-claim"]) == 0
    err = capsys.readouterr().err
    assert "skip BACKEND-" in err and "open MR !1" in err
    assert [p["variables"]["SENTRY_AUTOFIX_ISSUE_ID"] for p in gitlab.pipelines] == [
        str(issues[1].id),
        str(issues[2].id),
    ]
    for pipeline in gitlab.pipelines:
        assert pipeline["ref"] == "main" and pipeline["source"] == "trigger"
        context = json.loads(pipeline["variables"]["SENTRY_AUTOFIX_PAYLOAD"])
        assert context["action"] == "poll" and context["org"] == "acme"
    # The handled index costs one list call per kind (MRs, issues); each pick one trigger call.
    assert len(gitlab.api_calls()) - before == 2
    assert len([c for c in gitlab.calls if c.path.endswith("/trigger/pipeline")]) == 2
    assert TRIGGER not in err and TOKEN not in err


def test_gitlab_poll__dispatch_starts_pipelines_on_the_projects_default_branch(
    gitlab: FakeGitLab, sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a GitLab job (a scheduled `poll --dispatch`), without SENTRY_AUTOFIX_BASE_BRANCH the
    pipelines start on the project's default branch (CI_DEFAULT_BRANCH), not on an assumed `main`."""
    sentry.add_issue(FakeIssue(7100, "backend", 11, "E0", period_counts={"24h": 50}))
    _poll_env(monkeypatch, sentry, gitlab, CI_DEFAULT_BRANCH="develop")
    monkeypatch.delenv("SENTRY_AUTOFIX_BASE_BRANCH")
    assert main(["poll", "--dispatch", "--max-issues", "1", "--no-claim"]) == 0
    assert [p["ref"] for p in gitlab.pipelines] == ["develop"]


def test_gitlab_poll__dispatch_without_a_trigger_token_names_the_setting_before_asking_sentry(
    gitlab: FakeGitLab, sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _poll_env(monkeypatch, sentry, gitlab)
    monkeypatch.delenv("SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN")
    assert main(["poll", "--dispatch"]) == 2
    assert "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN" in capsys.readouterr().err
    assert not sentry.requests


def test_gitlab_poll__a_refused_trigger_token_stops_with_the_setting_named(
    gitlab: FakeGitLab, sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sentry.add_issue(FakeIssue(7100, "backend", 11, "E", period_counts={"24h": 9}))
    _poll_env(monkeypatch, sentry, gitlab, SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN="glptt-revoked-000000")
    assert main(["poll", "--dispatch", "--no-claim"]) == 1
    err = capsys.readouterr().err
    assert "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN" in err and "glptt-revoked-000000" not in err
    assert not gitlab.pipelines


# --- scheduled runs -------------------------------------------------------------------------------


class NoModel:
    """A fixer that must not be reached: the issues are handled before any model call."""

    calls = 0

    def fix(self, *args: Any) -> Any:
        NoModel.calls += 1
        raise AssertionError("the model was called for an issue that already has an open MR")


def test_gitlab_schedule__issues_with_open_mrs_are_skipped_before_the_model(
    gitlab: FakeGitLab, sentry: FakeSentry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    issues = [
        sentry.add_issue(FakeIssue(7200 + i, "backend", 11, f"E{i}", period_counts={"24h": 50})) for i in range(2)
    ]
    host = GitLabHost(host_settings(gitlab))
    for n, issue in enumerate(issues):
        host.open_pull_request(
            branch=f"sentry-autofix/{n}",
            base="main",
            title="Fix",
            body=f"f\n\n{marker_for(str(issue.id))}\n",
            draft=False,
            labels=["sentry-autofix"],
        )
    settings = load_settings(
        gitlab_ci=True,
        ci_pipeline_source="schedule",
        gitlab_url=gitlab.url,
        gitlab_project="42",
        gitlab_token=TOKEN,
        sentry_url=sentry.url,
        sentry_auth_token=sentry.token,
        sentry_org=sentry.org,
        sentry_projects=["backend"],
        poll_claim=False,
        gitlab_dotenv=str(tmp_path / "out.env"),
        gitlab_summary=str(tmp_path / "summary.md"),
    )
    code = run_command(object(), settings, fixer_factory=lambda _s: NoModel())  # type: ignore[arg-type,return-value]
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code == 0, out
    assert NoModel.calls == 0
    assert out.count("open MR !") == 2
    assert "SENTRY_AUTOFIX_STATUS=skipped-filtered" in (tmp_path / "out.env").read_text()
    assert not sentry.calls("GET", r"/events/")


def test_gitlab_host__permalinks_point_at_the_project_files(gitlab: FakeGitLab) -> None:
    """Triage issues link mapped lines; GitLab's file URLs have `/-/blob/<sha>`."""
    under_ci = GitLabHost(host_settings(gitlab, gitlab_project_url="https://gitlab.example.com/acme/shop"))
    assert under_ci.blob_base("abc123") == "https://gitlab.example.com/acme/shop/-/blob/abc123"
    by_path = GitLabHost(host_settings(gitlab, gitlab_project="acme/shop"))
    assert by_path.blob_base("abc123") == f"{gitlab.url}/acme/shop/-/blob/abc123"
    assert GitLabHost(host_settings(gitlab)).blob_base("abc123") is None  # a bare id names no web page


# --- finding our own MRs and issues -------------------------------------------------------------


def test_gitlab_host__a_fork_mr_with_our_branch_name_and_marker_is_not_ours(gitlab: FakeGitLab) -> None:
    """The project's MR list holds MRs from forks: one whose source branch is `sentry-autofix/<id>`
    (and whose description even carries our marker) is neither our fix to skip nor ours to update,
    and does not stop our own MR from opening beside it."""
    host = GitLabHost(host_settings(gitlab))
    gitlab.add_fork_mr(source_branch="sentry-autofix/SHOP-1F", description=f"mine\n\n{marker_for('4242')}\n")
    assert host.find_existing("4242", "sentry-autofix/SHOP-1F").pr is None
    assert host.find_by_marker("4242") == []
    # Even when named directly (a 409 from a GitLab that counted the fork's MR), it is not rewritten.
    with pytest.raises(CodeHostError, match="from a fork"):
        host.update_pull_request(1, title="Ours", body="ours", labels=[])
    assert gitlab.mrs[0]["title"] == "Their own work"
    mine = host.open_pull_request(
        branch="sentry-autofix/SHOP-1F",
        base="main",
        title="Fix",
        body=f"f\n\n{marker_for('4242')}\n",
        draft=False,
        labels=[],
    )
    found = host.find_existing("4242", "sentry-autofix/SHOP-1F").pr
    assert found is not None and found.number == mine.number


def test_gitlab_host__marker_search_finds_an_mr_behind_any_history(gitlab: FakeGitLab) -> None:
    """Our open MR on another branch (the short id changed) behind 450 newer labelled MRs: one
    server-side search of descriptions finds it; the old scan stopped at the newest 300."""
    host = GitLabHost(host_settings(gitlab))
    ours = host.open_pull_request(
        branch="sentry-autofix/RENAMED-7",
        base="main",
        title="Fix",
        body=f"f\n\n{marker_for('4242')}\n",
        draft=False,
        labels=["sentry-autofix"],
    )
    template = gitlab.mrs[0]
    for n in range(450):
        gitlab.mrs.append(
            {
                **template,
                "iid": 100 + n,
                "state": "merged",
                "source_branch": f"sentry-autofix/OLD-{n}",
                "description": f"old\n\n{marker_for(str(900000 + n))}\n",
                "updated_at": f"2026-02-01T00:00:{n % 60:02d}Z",
            }
        )
    gitlab.calls.clear()
    found = host.find_existing("4242", "sentry-autofix/SHOP-1F")
    assert found.pr is not None and found.pr.number == ours.number
    searches = [c for c in gitlab.calls if c.path.endswith("/merge_requests") and "search" in c.query]
    assert len(searches) == 1
    assert searches[0].query["search"] == ["sentry-autofix:issue=4242"]
    assert searches[0].query["in"] == ["description"]
    assert searches[0].query["labels"] == ["sentry-autofix"]


def test_gitlab_host__an_instance_refusing_the_search_gets_the_labelled_scan(gitlab: FakeGitLab) -> None:
    """A 400 to `search`: the newest labelled items are read instead, markers checked by us."""
    host = GitLabHost(host_settings(gitlab))
    seed(host)
    gitlab.search_refused = True
    found = host.find_existing("4242", "sentry-autofix/RENAMED-7")
    assert found.pr is not None and found.issue is not None
    assert {(m.kind, m.number) for m in host.open_marked()} == {("pr", 1), ("issue", 1), ("issue", 2)}
    refused = [c for c in gitlab.calls if "search" in c.query]
    assert refused and all(c.status == 400 for c in refused)


def test_gitlab_host__second_mr_for_a_branch_is_a_conflict_in_plain_words(gitlab: FakeGitLab) -> None:
    """GitLab's 409 `{"message": ["Another open merge request already exists …"]}` becomes
    `Conflict` (the pipeline updates that MR) with the message as text, not a Python list."""
    host = GitLabHost(host_settings(gitlab))
    seed(host)
    with pytest.raises(Conflict) as err:
        host.open_pull_request(
            branch="sentry-autofix/SHOP-1F", base="main", title="Again", body="b", draft=False, labels=[]
        )
    assert "Another open merge request already exists for this source branch: !1" in str(err.value)
    assert "['" not in str(err.value)
    assert err.value.number == 1


def test_gitlab_host__chat_names_the_project_by_its_path_not_its_id(gitlab: FakeGitLab) -> None:
    """A GitLab job sets CI_PROJECT_ID (what the API is called with) and CI_PROJECT_PATH (what a
    person reads): notifications name `group/project`."""
    assert GitLabHost(host_settings(gitlab, ci_project_path="acme/shop")).full_name == "acme/shop"
    assert GitLabHost(host_settings(gitlab)).full_name == "42"  # outside a job: as configured
