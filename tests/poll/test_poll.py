"""Poll against loopback Sentry and GitHub fakes: which issues are picked, what is output, and how
many API calls one poll costs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.cli import main
from sentry_autofix.config import Settings, load_settings
from sentry_autofix.delivery.github import GitHubHost
from sentry_autofix.markers import marker_for, state_comment
from sentry_autofix.models import IssueInfo
from sentry_autofix.poll import (
    MAX_MATRIX_JOBS,
    Filters,
    build_matrix,
    dispatch_payload,
    matrix_json,
    select_issues,
    write_output,
)
from sentry_autofix.sources.sentry import SentryClient

from ..conftest import load_shared
from .fakes import GITHUB_SEARCH_ITEM_KEYS, SENTRY_ISSUE_KEYS, FakeGitHub, FakeGitItem, FakeIssue, FakeSentry

PROJECTS = {"backend": 11, "frontend": 12, "worker": 13}
LEVELS = ["warning", "info", "fatal", "error", "error", "error", "error"]


def make_dataset(sentry: FakeSentry, n: int) -> list[FakeIssue]:
    """A deterministic mix across projects, levels, priorities, counts and statuses."""
    slugs = list(PROJECTS)
    issues = []
    for i in range(n):
        slug = slugs[i % 3]
        issue = FakeIssue(
            id=5000 + i,
            project_slug=slug,
            project_id=PROJECTS[slug],
            title=f"ValueError: case {i}",
            level=LEVELS[i % 7],
            priority="low" if i % 5 == 0 else ("high" if i % 2 else "medium"),
            status="resolved" if i % 11 == 0 else "unresolved",
            period_counts={"24h": (i * 37) % 120, "14d": (i * 37) % 120 + 500},
            environments=("production",) if i % 13 else ("staging",),
        )
        issues.append(sentry.add_issue(issue))
    return issues


def eligible(issues: list[FakeIssue], projects: set[str], min_events: int) -> list[FakeIssue]:
    """The ground truth, straight from the dataset: what the filters must let through, best first."""
    keep = [
        i
        for i in issues
        if i.project_slug in projects
        and i.level in ("error", "fatal")
        and i.priority in ("high", "medium")
        and i.status == "unresolved"
        and i.count("24h") >= min_events
    ]
    return sorted(keep, key=lambda i: (-i.count("24h"), i.id))


@pytest.fixture
def sentry() -> Iterator[FakeSentry]:
    with FakeSentry() as server:
        yield server


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def client_for(sentry: FakeSentry, sleeps: list[float] | None = None) -> SentryClient:
    settings = load_settings(sentry_url=sentry.url, sentry_auth_token=sentry.token, sentry_org=sentry.org)
    return SentryClient(settings, sleep=(sleeps.append if sleeps is not None else lambda _s: None))


def github_for(github: FakeGitHub) -> GitHubHost:
    return GitHubHost(
        Settings(
            github_api_url=github.url,
            github_token=github.token,
            github_repository=github.repository,
            github_write_interval=0.0,
        )
    )


def test_fakes__shapes_match_the_real_fixtures(sentry: FakeSentry, github: FakeGitHub) -> None:
    real_issue = load_shared("sentry/api/list-organization-issues.json")[0]
    assert set(SENTRY_ISSUE_KEYS) <= set(real_issue), set(SENTRY_ISSUE_KEYS) - set(real_issue)
    fake_issue = FakeIssue(1, "backend", 11, "x", period_counts={"24h": 1}).api(sentry.url, "acme", "24h")
    assert set(fake_issue) == set(SENTRY_ISSUE_KEYS)
    assert isinstance(real_issue["count"], str)
    assert isinstance(fake_issue["count"], str)
    real_search = load_shared("github/search__issues-and-pull-requests.response.json")
    real_item = real_search["items"][0]
    assert set(GITHUB_SEARCH_ITEM_KEYS) <= set(real_item)
    fake_item = github.issue_json(FakeGitItem(1, "body", kind="pr"))
    assert set(GITHUB_SEARCH_ITEM_KEYS) <= set(fake_item)
    assert set(real_item["pull_request"]) <= set(fake_item["pull_request"]) | {"merged_at"}


def test_select_issues__filters_and_skips_pick_exactly_the_right_issues(sentry: FakeSentry, github: FakeGitHub) -> None:
    issues = make_dataset(sentry, 700)
    truth = eligible(issues, {"backend", "worker"}, min_events=10)
    assert len(truth) > 150, "the dataset must span several pages of 100"
    e = truth
    now = datetime.now(timezone.utc)
    # Handled on GitHub: an open PR, an open issue (two markers in one body), and a closed PR.
    github.add(FakeGitItem(1, f"Fix\n\n{marker_for(str(e[0].id))}", kind="pr"))
    github.add(FakeGitItem(2, f"{marker_for(str(e[1].id))}\n{marker_for(str(e[20].id))}", kind="issue"))
    github.add(FakeGitItem(3, marker_for(str(e[2].id)), kind="pr", state="closed"))
    github.add(FakeGitItem(4, "mentions sentry-autofix:issue but carries no marker", kind="issue"))
    # State on Sentry, as our comments (and one human's look-alike without the tag).
    sentry.add_comment(e[3].id, state_comment("in-progress"), timedelta(minutes=10))
    sentry.add_comment(e[4].id, state_comment("in-progress"), timedelta(hours=5))
    for age in (1, 2, 3):
        sentry.add_comment(e[5].id, state_comment("failed", f"attempt {age}"), timedelta(days=age))
    for age in (1, 2):
        sentry.add_comment(e[6].id, state_comment("failed", f"attempt {age}"), timedelta(days=age))
    sentry.add_comment(e[7].id, state_comment("pr-opened"), timedelta(minutes=1))
    sentry.add_comment(e[8].id, state_comment("pr-opened"), timedelta(days=3))
    sentry.add_comment(e[9].id, "Is sentry-autofix [sentry-autofix:in-progress] on this?", timedelta(minutes=1))
    sentry.add_comment(e[10].id, state_comment("failed"), timedelta(minutes=30))
    sentry.add_comment(e[10].id, state_comment("in-progress"), timedelta(minutes=40))

    skipped_ids = {e[i].id for i in (0, 1, 20, 3, 5, 7)}
    expected = [i.id for i in truth if i.id not in skipped_ids][:150]
    filters = Filters(
        projects=("backend", "worker"),
        min_events=10,
        priorities=("high", "medium"),
        max_issues=150,
        scan_limit=400,
        stale_after=timedelta(hours=2),
        claim=False,
    )
    result = select_issues(client_for(sentry), github_for(github), filters, now=lambda: now)

    assert [int(i.id) for i in result.selected] == expected
    reasons = {int(s.issue_id): s.reason for s in result.skipped}
    assert reasons == {
        e[0].id: "open PR #1",
        e[1].id: "open issue #2",
        e[20].id: "open issue #2",
        e[3].id: reasons[e[3].id],
        e[5].id: "gave up after 3 failed attempts",
        e[7].id: "pr-opened recently (search may lag)",
    }
    assert reasons[e[3].id].startswith("in progress since")
    assert result.taken_over == [str(e[4].id)]
    # Sentry was asked for exactly this, across the two projects' ids, for the period.
    listing = sentry.calls("GET", r"/organizations/acme/issues/$")
    first = listing[0].query
    assert first["query"] == ["is:unresolved level:[error,fatal] issue.priority:[high,medium] times_seen:>=10"]
    assert first["project"] == ["11", "13"]
    assert first["statsPeriod"] == ["24h"]
    assert first["sort"] == ["freq"]
    # Link cursors were followed: page 2 came from the `next` URL, with its cursor.
    assert len(listing) == 2
    assert listing[1].query["cursor"] == ["0:100:0"]


def test_select_issues__api_calls_per_poll_of_n_issues(sentry: FakeSentry, github: FakeGitHub) -> None:
    issues = make_dataset(sentry, 300)
    truth = eligible(issues, {"backend", "worker"}, min_events=10)
    sentry.add_comment(truth[1].id, state_comment("in-progress"), timedelta(minutes=5))
    github.add(FakeGitItem(7, marker_for(str(truth[0].id)), kind="pr"))
    n = 5
    filters = Filters(projects=("backend", "worker"), min_events=10, priorities=("high", "medium"), max_issues=n)
    result = select_issues(client_for(sentry), github_for(github), filters)

    assert len(result.selected) == n
    skipped_by_comments = 1
    assert len(github.requests) == 1  # one search, whatever N is
    assert len(sentry.calls("GET", r"^/api/0/projects/")) == 2  # slug -> id, once per project
    assert len(sentry.calls("GET", r"/organizations/acme/issues/$")) == 1  # one page covers N picks
    assert len(sentry.calls("GET", r"/comments/$")) == n + skipped_by_comments  # not for GitHub-handled ones
    claims = sentry.calls("POST", r"/comments/$")
    assert len(claims) == n
    assert all(c.json()["text"].startswith("[sentry-autofix:in-progress]") for c in claims)
    assert len(sentry.requests) == 2 + 1 + (n + skipped_by_comments) + n


def test_select_issues__claims_make_an_overlapping_poll_skip(sentry: FakeSentry, github: FakeGitHub) -> None:
    make_dataset(sentry, 120)
    filters = Filters(projects=("backend",), max_issues=3)
    first = select_issues(client_for(sentry), github_for(github), filters)
    second = select_issues(client_for(sentry), github_for(github), filters)
    assert len(first.selected) == len(second.selected) == 3
    assert not {i.id for i in first.selected} & {i.id for i in second.selected}
    assert sum(1 for s in second.skipped if s.reason.startswith("in progress")) == 3


def test_select_issues__all_projects_sends_project_minus_one(sentry: FakeSentry) -> None:
    issues = make_dataset(sentry, 60)
    result = select_issues(client_for(sentry), None, Filters(max_issues=256, claim=False, priorities=()))
    assert sentry.calls("GET", r"/issues/$")[0].query["project"] == ["-1"]
    projects = {i.project for i in result.selected}
    assert projects == {"backend", "frontend", "worker"}
    assert len(result.selected) == len(
        [i for i in issues if i.level in ("error", "fatal") and i.status == "unresolved" and i.count("24h") >= 1]
    )


def test_select_issues__environment_and_custom_query_reach_sentry(sentry: FakeSentry) -> None:
    issues = make_dataset(sentry, 100)
    filters = Filters(environments=("staging",), query="!level:fatal", claim=False, max_issues=100, priorities=())
    result = select_issues(client_for(sentry), None, filters)
    want = [i for i in issues if "staging" in i.environments and i.level == "error" and i.status == "unresolved"]
    want = [i for i in want if i.count("24h") >= 1]
    assert sorted(int(i.id) for i in result.selected) == sorted(i.id for i in want)
    assert sentry.requests[0].query["environment"] == ["staging"]


def test_select_issues__rate_limit_is_waited_out_from_the_reset_header(sentry: FakeSentry) -> None:
    make_dataset(sentry, 30)
    reset = datetime.now(timezone.utc).timestamp() + 3
    sentry.script.append(
        (429, {"X-Sentry-Rate-Limit-Remaining": "0", "X-Sentry-Rate-Limit-Reset": str(int(reset))}, b'{"detail":"x"}')
    )
    sleeps: list[float] = []
    result = select_issues(client_for(sentry, sleeps), None, Filters(claim=False, max_issues=2, priorities=()))
    assert len(result.selected) == 2
    assert len(sleeps) == 1
    assert 0 < sleeps[0] <= 4.5


def test_select_issues__bad_custom_query_is_sentrys_400(sentry: FakeSentry) -> None:
    from sentry_autofix.errors import SourceError

    make_dataset(sentry, 5)
    with pytest.raises(SourceError, match="unknown key"):
        select_issues(client_for(sentry), None, Filters(query="nosuchkey:1", claim=False))


def test_filters__sentry_query_terms() -> None:
    f = Filters(levels=("error",), priorities=(), min_events=0, query="")
    assert f.sentry_query() == "is:unresolved level:error"
    assert Filters(levels=(), min_events=1).sentry_query() == "is:unresolved times_seen:>=1"
    f = Filters(levels=(), priorities=("high",), min_events=50, query=" release:1.2.0 ")
    assert f.sentry_query() == "is:unresolved issue.priority:high times_seen:>=50 release:1.2.0"


# --- outputs ------------------------------------------------------------------------------------


def parse_github_output(text: str) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the runner does: `name=value` lines and `name<<DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        if line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


def test_write_output__multiline_value_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("earlier=1\n")
    value = 'line one\nEOF\nmatrix<<EOF\n{"include": []}'
    write_output(path, "matrix", value)
    write_output(path, "count", "2")
    assert parse_github_output(path.read_text()) == {"earlier": "1", "matrix": value, "count": "2"}


def test_matrix__256_jobs_fit_and_only_ids_go_in() -> None:
    issues = [
        IssueInfo(id=str(10**12 + n), short_id=f"{'P' * 90}-{n:X}", project="p" * 100, title="<script>${{ x }}")
        for n in range(MAX_MATRIX_JOBS)
    ]
    text = matrix_json(issues)
    assert len(text.encode()) < 1024 * 1024
    doc = json.loads(text)
    assert len(doc["include"]) == 256
    assert all(set(e) == {"issue_id", "short_id", "project"} and e["issue_id"].isdigit() for e in doc["include"])
    assert "script" not in text
    with pytest.raises(Exception, match="256"):
        build_matrix([*issues, issues[0]])


def test_dispatch_payload__within_githubs_limits() -> None:
    issue = IssueInfo(
        id="42",
        short_id="APP-1F",
        project="app",
        title="x" * 10_000 + "\n::error::boom",
        level="error",
        permalink="javascript:alert(1)",
    )
    payload = dispatch_payload(issue, "acme")
    assert len(payload) <= 10
    assert len(json.dumps(payload)) < 64 * 1024
    assert payload["issue_id"] == "42"
    assert payload["org"] == "acme"
    assert payload["web_url"] is None
    assert "\n" not in payload["title"]
    assert len(payload["title"]) <= 256


def _env(monkeypatch: pytest.MonkeyPatch, sentry: FakeSentry, github: FakeGitHub, tmp_path: Path) -> Path:
    out = tmp_path / "github_output"
    out.write_text("")
    for name, value in {
        "SENTRY_URL": sentry.url,
        "SENTRY_AUTH_TOKEN": sentry.token,
        "SENTRY_ORG": sentry.org,
        "SENTRY_PROJECTS": "backend,worker",
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": github.token,
        "GITHUB_REPOSITORY": github.repository,
        "GITHUB_OUTPUT": str(out),
        "GITHUB_RUN_ID": "777",
        "GITHUB_SERVER_URL": "https://github.com",
        "SENTRY_AUTOFIX_POLL_MIN_EVENTS": "10",
    }.items():
        monkeypatch.setenv(name, value)
    return out


def test_poll_cli__matrix_on_stdout_and_in_github_output(
    sentry: FakeSentry, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    issues = make_dataset(sentry, 200)
    truth = eligible(issues, {"backend"}, min_events=10)
    out = _env(monkeypatch, sentry, github, tmp_path)
    code = main(["poll", "--matrix", "--project", "backend", "--max-issues", "4", "--priority", "high,medium"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    stdout_matrix = json.loads(captured.out)
    assert [e["issue_id"] for e in stdout_matrix["include"]] == [str(i.id) for i in truth[:4]]
    assert all(e["project"] == "backend" and e["short_id"].startswith("BACKEND-") for e in stdout_matrix["include"])
    outputs = parse_github_output(out.read_text())
    assert json.loads(outputs["matrix"]) == stdout_matrix
    assert outputs["count"] == "4"
    claim = sentry.calls("POST", r"/comments/$")[0].json()["text"]
    assert "https://github.com/acme/shop/actions/runs/777" in claim


def test_poll_cli__dispatch_sends_one_repository_dispatch_per_issue(
    sentry: FakeSentry, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    issues = make_dataset(sentry, 90)
    truth = eligible(issues, {"backend", "worker"}, min_events=10)
    _env(monkeypatch, sentry, github, tmp_path)
    code = main(["poll", "--dispatch", "--max-issues", "3", "--priority", "high", "--priority", "medium", "--no-claim"])
    assert code == 0, capsys.readouterr().err
    assert [d["client_payload"]["issue_id"] for d in github.dispatches] == [str(i.id) for i in truth[:3]]
    for d in github.dispatches:
        assert d["event_type"] == "sentry-issue"
        assert {"issue_id", "short_id", "project", "org"} <= set(d["client_payload"])
        assert len(d["client_payload"]) <= 10
    assert len(github.calls("GET", "/search/issues")) == 1
    assert not sentry.calls("POST")


def test_poll_cli__listing_cannot_start_a_workflow_command(
    sentry: FakeSentry, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sentry.add_issue(
        FakeIssue(
            9001, "backend", 11, "x\n::add-mask::\n::error file=a::pwned\r\u2028::warning::y", period_counts={"24h": 50}
        )
    )
    _env(monkeypatch, sentry, github, tmp_path)
    assert main(["poll", "--no-claim", "--project", "backend"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("9001\tBACKEND-2329\tbackend\t50\t")
    assert not any(line.startswith("::") for line in out.splitlines())


def test_poll_cli__missing_org_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("SENTRY_AUTH_TOKEN", "t")
    assert main(["poll", "--matrix"]) == 2
    assert "SENTRY_ORG" in capsys.readouterr().err


def test_poll_cli__github_search_refused_names_the_permission(
    sentry: FakeSentry, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    make_dataset(sentry, 10)
    github.script.append(
        (403, {"Content-Type": "application/json"}, b'{"message": "Resource not accessible by integration"}')
    )
    _env(monkeypatch, sentry, github, tmp_path)
    assert main(["poll", "--matrix"]) == 1
    err = capsys.readouterr().err
    assert "issues: write" in err
    assert github.token not in err


def test_poll_cli__unknown_project_names_the_setting(
    sentry: FakeSentry, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    make_dataset(sentry, 3)
    _env(monkeypatch, sentry, github, tmp_path)
    assert main(["poll", "--project", "nope"]) == 1
    assert "no project 'nope'" in capsys.readouterr().err


def test_poll_cli__max_issues_over_256_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("SENTRY_AUTH_TOKEN", "t")
    monkeypatch.setenv("SENTRY_ORG", "acme")
    assert main(["poll", "--matrix", "--max-issues", "300"]) == 2
    assert "256" in capsys.readouterr().err


def test_search_pages__only_when_more_than_100_marked(github: FakeGitHub) -> None:
    for n in range(1, 151):
        github.add(FakeGitItem(n, marker_for(str(70000 + n)), kind="pr" if n % 2 else "issue"))
    gh = github_for(github)
    items = gh.open_marked()
    assert len(items) == 150
    assert len(github.calls("GET", "/search/issues")) == math.ceil(150 / 100)


def test_select_issues__a_stale_claim_taken_over_is_refreshed(sentry: FakeSentry, github: FakeGitHub) -> None:
    [issue] = [sentry.add_issue(FakeIssue(6001, "backend", 11, "E", period_counts={"24h": 5}))]
    sentry.add_comment(issue.id, state_comment("in-progress", "Picked by a scheduled poll."), timedelta(minutes=20))
    filters = Filters(projects=("backend",), stale_after=timedelta(minutes=15), max_issues=1)
    first = select_issues(client_for(sentry), github_for(github), filters)
    assert first.taken_over == ["6001"]
    # The new claim was accepted (a different text: Sentry refuses a repeat within the hour)...
    assert len(sentry.comments[6001]) == 2
    # ...so the next poll sees a fresh claim and leaves the issue alone.
    second = select_issues(client_for(sentry), github_for(github), filters)
    assert second.selected == []
    assert second.skipped[0].reason.startswith("in progress since")


def test_process_sequentially__one_failure_does_not_stop_the_rest() -> None:
    from sentry_autofix.errors import LLMError
    from sentry_autofix.poll import process_sequentially

    issues = [IssueInfo(id=str(n), short_id=f"APP-{n}") for n in (1, 2, 3)]
    done: list[str] = []

    def handle(issue: IssueInfo) -> str:
        done.append(issue.id)
        if issue.id == "2":
            raise LLMError("model unavailable")
        return "pr-opened"

    assert process_sequentially(issues, handle) == {"1": "pr-opened", "2": "error", "3": "pr-opened"}
    assert done == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--period", "forever"], "--period"),
        (["--min-events", "-1"], "--min-events"),
        (["--level", "error;drop"], "--level"),
        (["--project", "../etc"], "SENTRY_PROJECTS"),
    ],
)
def test_poll_cli__bad_filters_are_configuration_errors(
    flags: list[str], needle: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("SENTRY_AUTH_TOKEN", "t")
    monkeypatch.setenv("SENTRY_ORG", "acme")
    assert main(["poll", *flags]) == 2
    assert needle in capsys.readouterr().err


def test_search__falls_back_to_one_search_per_kind_when_github_wants_a_type(github: FakeGitHub) -> None:
    github.require_type_qualifier = True
    github.add(FakeGitItem(1, marker_for("11"), kind="pr"))
    github.add(FakeGitItem(2, marker_for("22"), kind="issue"))
    github.add(FakeGitItem(3, marker_for("33"), kind="issue", state="closed"))
    gh = github_for(github)
    items = gh.open_marked()
    assert sorted((i.number, i.kind) for i in items) == [(1, "pr"), (2, "issue")]
    queries = [r.query["q"][0] for r in github.calls("GET", "/search/issues")]
    assert len(queries) == 3
    assert queries[1].endswith(" is:issue")
    assert queries[2].endswith(" is:pull-request")


def test_poll_cli__as_a_subprocess_only_json_goes_to_stdout(
    sentry: FakeSentry, github: FakeGitHub, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    issues = make_dataset(sentry, 60)
    truth = eligible(issues, {"backend", "worker"}, min_events=1)
    out = tmp_path / "github_output"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SENTRY_"))}
    env.update(
        SENTRY_URL=sentry.url,
        SENTRY_AUTH_TOKEN=sentry.token,
        SENTRY_ORG=sentry.org,
        SENTRY_PROJECTS="backend,worker",
        SENTRY_AUTOFIX_POLL_PRIORITIES="high,medium",
        GITHUB_API_URL=github.url,
        GITHUB_TOKEN=github.token,
        GITHUB_REPOSITORY=github.repository,
        GITHUB_OUTPUT=str(out),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sentry_autofix", "poll", "--matrix", "--max-issues", "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [e["issue_id"] for e in doc["include"]] == [str(i.id) for i in truth[:7]]
    assert "picked 7 of 7 issues" in proc.stderr
    assert sentry.token not in proc.stderr + proc.stdout
    assert json.loads(parse_github_output(out.read_text())["matrix"]) == doc


def test_select_issues__numeric_project_ids_need_no_lookup(sentry: FakeSentry) -> None:
    issues = make_dataset(sentry, 40)
    result = select_issues(
        client_for(sentry), None, Filters(projects=("13",), claim=False, max_issues=50, priorities=())
    )
    assert not sentry.calls("GET", r"^/api/0/projects/")
    assert {i.project for i in result.selected} == {"worker"}
    assert len(result.selected) == len(
        [
            i
            for i in issues
            if i.project_slug == "worker"
            and i.level in ("error", "fatal")
            and i.status == "unresolved"
            and i.count("24h") >= 1
        ]
    )


def test_open_marked__marker_quoted_in_text_is_not_ours(github: FakeGitHub) -> None:
    """Issue 9: a marker-looking string inside Sentry or model text (a table cell, a sentence, a
    code block) made poll treat issue 999 as handled. Only a marker alone on its line counts."""
    forged = "| `x` <!-- sentry-autofix:issue=999 --> | 1 |\n```\n<!-- sentry-autofix:issue=998 -->\n```\n"
    github.add(FakeGitItem(5, forged + "\n" + marker_for("4242") + "\n", kind="issue"))
    github.add(FakeGitItem(6, forged, kind="issue"))
    items = github_for(github).open_marked()
    assert [(i.number, i.issue_ids) for i in items] == [(5, frozenset({"4242"}))]


def test_trigger_once__a_5xx_is_retried_once_and_a_long_wait_is_not_waited_out(github: FakeGitHub) -> None:
    """poll has no outbox: one short retry (as before the trigger moved into delivery/github.py)."""
    from sentry_autofix.delivery.github import GitHubTrigger, StaticToken
    from sentry_autofix.errors import RateLimited
    from sentry_autofix.poll import trigger_once

    trigger = GitHubTrigger(StaticToken(github.token), api_url=github.url)
    sleeps: list[float] = []
    github.script.append((502, {"Content-Type": "application/json"}, b'{"message": "Bad Gateway"}'))
    trigger_once(trigger, github.repository, "sentry-issue", {"issue_id": "1"}, sleep=sleeps.append)
    assert sleeps == [2.0] and len(github.dispatches) == 1
    github.script.append(
        (429, {"Content-Type": "application/json", "Retry-After": "600"}, b'{"message": "Too Many Requests"}')
    )
    with pytest.raises(RateLimited):
        trigger_once(trigger, github.repository, "sentry-issue", {"issue_id": "2"}, sleep=sleeps.append)
    assert sleeps == [2.0] and len(github.dispatches) == 1
