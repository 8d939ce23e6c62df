"""End to end: `sentry-autofix eval` as a subprocess on a real git repository with a real bug, its
human fix (code + a new test) and a later commit, the crash captured by the real sentry-sdk, the
model a scripted loopback fake of the Anthropic API, tests sandboxed as in a real run."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OWN_FIXTURES
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.script import Step, finish, tool
from tests.fakes.sentry_api import FakeSentry, api_event_from_ingestion

from .conftest import ANTHROPIC_KEY, SENTRY_TOKEN, TEST_COMMAND, git, run_cli

STATS_BUGGY = '''"""Summary statistics for the order dashboard."""


def mean(values):
    return sum(values) / len(values)


def spread(values):
    return max(values) - min(values)
'''
OLD = "    return sum(values) / len(values)\n"
NEW = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"
WRONG = "    if not values:\n        return None\n    return sum(values) / len(values)\n"
REPORT = """from calc.stats import mean


def daily_report(orders):
    amounts = [o["amount"] for o in orders]
    return {"orders": len(orders), "average": mean(amounts)}


def main():
    daily_report([])
"""
TESTS = """from calc.stats import mean, spread


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_spread():
    assert spread([1, 5]) == 4
"""
HUMAN_TEST = """

def test_mean_of_no_orders_is_zero():
    assert mean([]) == 0.0
"""


def commit(repo: Path, message: str, date: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", message, "--date", date)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Any]:
    """The repository (bug → human fix with a new test → an unrelated later commit) and the real
    sentry-sdk event of the crash, captured from a deployed copy of the buggy code."""
    repo = tmp_path / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "calc" / "stats.py").write_text(STATS_BUGGY)
    (repo / "calc" / "report.py").write_text(REPORT)
    (repo / "tests" / "test_stats.py").write_text(TESTS)
    (repo / ".gitignore").write_text("__pycache__/\n")
    commit(repo, "Order dashboard statistics", "2026-10-01T09:00:00Z")
    deploy = tmp_path / "srv" / "app"
    shutil.copytree(repo / "calc", deploy / "calc")
    event_path = tmp_path / "captured.json"
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "sdk_capture.py"),
            str(event_path),
            "calc.report:main",
            str(deploy),
        ],
        check=True,
        capture_output=True,
    )
    (repo / "calc" / "stats.py").write_text(STATS_BUGGY.replace(OLD, NEW))
    (repo / "tests" / "test_stats.py").write_text(TESTS + HUMAN_TEST)
    fix = commit(repo, "Average of no orders is 0", "2026-11-02T10:00:00Z")
    (repo / "README.md").write_text("# calc\n")
    head = commit(repo, "Add a README", "2026-11-03T10:00:00Z")
    return {"repo": repo, "fix": fix, "head": head, "event": json.loads(event_path.read_text())}


def script(new_text: str) -> list[Step]:
    return [
        tool("read_file", path="calc/stats.py"),
        tool("edit_file", path="calc/stats.py", old_text=OLD, new_text=new_text),
        tool("run_tests"),
        finish(
            root_cause="mean() divides by the number of values, which is 0 for a day without orders",
            pr_title="Guard mean() against no values",
            summary="calc/stats.py: no values, no division",
        ),
    ]


def write_case(cases: Path, case_id: str, event: dict[str, Any], fix: str) -> None:
    (cases / case_id).mkdir(parents=True)
    (cases / case_id / "event.json").write_text(json.dumps(event))
    (cases / case_id / "case.json").write_text(json.dumps({"fix_commit": fix}))


def eval_cli(repo: Path, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["eval", "--workspace", str(repo), "--out", str(out), "--test-command", TEST_COMMAND, *args], dict(env)
    )


def lines(path: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_eval__reference_fix_is_resolved_wrong_fix_is_not_resumes_and_leaves_repo_alone(
    project: dict[str, Any], tmp_path: Path
) -> None:
    repo, cases, out, summary = project["repo"], tmp_path / "cases", tmp_path / "results.jsonl", tmp_path / "sum.md"
    write_case(cases, "a-reference", project["event"], project["fix"])
    write_case(cases, "b-wrong", project["event"], project["fix"])

    # The user's own uncommitted work, which eval must not touch.
    (repo / "README.md").write_text("# calc\n\nwork in progress\n")
    (repo / "notes.txt").write_text("untracked\n")
    dirty = git(repo, "status", "--porcelain")

    with FakeAnthropic([*script(NEW), *script(WRONG)], api_key=ANTHROPIC_KEY) as fake:
        proc = eval_cli(repo, out, "--cases", str(cases), "--summary", str(summary), ANTHROPIC_BASE_URL=fake.url)
    assert proc.returncode == 0, proc.stderr
    assert fake.turns_served == 8

    got = lines(out)
    ref, wrong = got["a-reference"], got["b-wrong"]
    for r in (ref, wrong):
        assert r["status"] == "fixed"
        assert r["fix_commit"] == project["fix"]
        assert r["base_commit"] == git(repo, "rev-parse", f"{project['fix']}^").strip()
        assert r["human_files"] == ["calc/stats.py"]
        assert r["human_test_files"] == ["tests/test_stats.py"]
        assert r["suspects"][0] == "calc/stats.py"  # the crashing frame, ahead of its caller
        assert r["localized_at_1"] is True
        assert r["localized_at_3"] is True
        assert r["agent_files"] == ["calc/stats.py"]
        assert r["files_overlap"] == 1.0
        assert r["fails_without_patch"] is True  # the human test reproduces the crash on the base
        assert r["suite"] == "passed"  # the repository's tests pass with either patch
        assert r["sandboxed"] is True
        assert r["turns"] == 4
        assert r["cost_usd"] > 0
        assert r["input_tokens"] > 0
        assert r["seconds"] > 0
        assert r["headline"] == "ZeroDivisionError: division by zero"
    assert ref["passes_with_patch"] is True
    assert ref["resolved"] is True
    assert wrong["passes_with_patch"] is False  # `None == 0.0`: the human's test catches it
    assert wrong["resolved"] is False

    table = proc.stdout.splitlines()
    assert table[0].split() == [
        "case",
        "status",
        "loc@1",
        "loc@3",
        "overlap",
        "resolved",
        "suite",
        "turns",
        "tokens",
        "cost",
        "time",
    ]
    assert table[1].split()[:7] == ["a-reference", "fixed", "yes", "yes", "100%", "yes", "passed"]
    assert table[2].split()[:7] == ["b-wrong", "fixed", "yes", "yes", "100%", "no", "passed"]
    text = summary.read_text()
    assert "* localized: @1 2/2 (100 %), @3 2/2 (100 %)" in text
    assert "agent's patch): 1/2 (50 %)" in text
    assert "| `a-reference` | fixed | yes | yes | 100% | yes | passed | 4 |" in text

    # The user's checkout is as it was: same HEAD, same uncommitted work, no worktree left behind.
    assert git(repo, "rev-parse", "HEAD").strip() == project["head"]
    assert git(repo, "status", "--porcelain") == dirty == " M README.md\n?? notes.txt\n"
    assert (repo / "README.md").read_text() == "# calc\n\nwork in progress\n"
    assert (repo / "calc" / "stats.py").read_text() == STATS_BUGGY.replace(OLD, NEW)
    assert len(git(repo, "worktree", "list", "--porcelain").split("worktree ")) == 2

    # Resumable: both cases are in --out, so a rerun asks the model nothing and reports them.
    with FakeAnthropic([], api_key=ANTHROPIC_KEY) as idle:
        again = eval_cli(repo, out, "--cases", str(cases), ANTHROPIC_BASE_URL=idle.url)
    assert again.returncode == 0, again.stderr
    assert idle.requests == []
    assert "2 case(s), 2 already in" in again.stderr
    assert again.stdout == proc.stdout  # the same table, from the same lines
    assert lines(out) == got


def test_eval__matrix_lists_case_ids_and_case_runs_only_that_one(project: dict[str, Any], tmp_path: Path) -> None:
    repo, cases, out = project["repo"], tmp_path / "cases", tmp_path / "one.jsonl"
    for case_id in ("a-reference", "b-wrong", "c-other"):
        write_case(cases, case_id, project["event"], project["fix"])

    matrix = eval_cli(repo, out, "--cases", str(cases), "--matrix", "--limit", "2")
    assert matrix.returncode == 0, matrix.stderr
    assert json.loads(matrix.stdout) == {"include": [{"case": "a-reference"}, {"case": "b-wrong"}]}
    assert not out.exists()

    with FakeAnthropic(script(WRONG), api_key=ANTHROPIC_KEY) as fake:
        one = eval_cli(repo, out, "--cases", str(cases), "--case", "b-wrong", ANTHROPIC_BASE_URL=fake.url)
    assert one.returncode == 0, one.stderr
    assert list(lines(out)) == ["b-wrong"]
    assert lines(out)["b-wrong"]["resolved"] is False

    # Fan-in: --report renders what the matrix jobs wrote, running nothing.
    report = eval_cli(repo, out, "--report")
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[1].split()[:6] == ["b-wrong", "fixed", "yes", "yes", "100%", "no"]


def test_eval__missing_fix_commit_is_a_skipped_case_naming_the_fix(project: dict[str, Any], tmp_path: Path) -> None:
    cases, out = tmp_path / "cases", tmp_path / "r.jsonl"
    write_case(cases, "gone", project["event"], "0123456789abcdef0123456789abcdef01234567")
    with FakeAnthropic([], api_key=ANTHROPIC_KEY) as fake:
        proc = eval_cli(project["repo"], out, "--cases", str(cases), ANTHROPIC_BASE_URL=fake.url)
    assert proc.returncode == 0, proc.stderr
    gone = lines(out)["gone"]
    assert gone["status"] == "skipped"
    assert "fetch-depth: 0" in gone["error"]
    assert fake.requests == []


def test_eval__without_cases_or_sentry_names_the_settings(project: dict[str, Any], tmp_path: Path) -> None:
    proc = run_cli(
        ["eval", "--workspace", str(project["repo"]), "--out", str(tmp_path / "r.jsonl")], {"SENTRY_AUTH_TOKEN": ""}
    )
    assert proc.returncode == 2
    assert "set SENTRY_AUTH_TOKEN and SENTRY_ORG" in proc.stderr
    assert "--cases DIR" in proc.stderr


def resolved_issue(sentry: FakeSentry, issue_id: str, sha: str, resolved_at: str) -> None:
    """Sentry's issue example, resolved in `sha` (Sentry's commit example, id replaced)."""
    inc = json.loads((OWN_FIXTURES / "sentry_commit" / "release-last-commit.json").read_text())
    inc["id"] = sha
    issue = sentry.add_issue(issue_id, short_id="CALC-7", title="ZeroDivisionError: division by zero")
    issue.update(status="resolved", substatus=None, statusDetails={"inCommit": inc})
    issue["firstSeen"] = "2026-10-20T08:00:00Z"
    issue["activity"] = [
        *issue["activity"],
        {"data": {}, "dateCreated": resolved_at, "id": "7", "type": "set_resolved_in_commit", "user": None},
    ]


def test_eval__sentry_cases_from_issues_resolved_in_a_commit(
    project: dict[str, Any], tmp_path: Path, shared_fixtures: Path
) -> None:
    out = tmp_path / "sentry.jsonl"
    sentry = FakeSentry(shared_fixtures / "sentry", token=SENTRY_TOKEN).start()
    try:
        template = sentry._load("get-organization-issue-event-latest.json")
        crash = api_event_from_ingestion(project["event"], template, "4001")
        resolved_issue(sentry, "4001", project["fix"], resolved_at="2026-11-02T12:00:00Z")
        sentry.add_event("4001", crash, "2026-11-01T09:30:00Z")
        # An event after the resolution (an old release still running) is not the case's crash.
        later = copy.deepcopy(template)
        sentry.add_event("4001", later, "2026-11-05T09:30:00Z")
        # Resolved, but not by a commit: not a case. Unresolved: not a case.
        sentry.add_issue("4002", short_id="CALC-8", title="KeyError", status="resolved")
        sentry.add_issue("4003", short_id="CALC-9", title="TypeError")

        matrix = eval_cli(project["repo"], out, "--matrix", SENTRY_URL=sentry.url)
        assert matrix.returncode == 0, matrix.stderr
        assert json.loads(matrix.stdout) == {"include": [{"case": "4001"}]}

        with FakeAnthropic(script(NEW), api_key=ANTHROPIC_KEY) as fake:
            proc = eval_cli(project["repo"], out, "--case", "4001", SENTRY_URL=sentry.url, ANTHROPIC_BASE_URL=fake.url)
        assert proc.returncode == 0, proc.stderr
        listing = [c for c in sentry.calls if c.path == "/api/0/organizations/acme/issues/"]
        events = [c for c in sentry.calls if c.path.endswith("/issues/4001/events/")]

    finally:
        sentry.stop()

    assert listing[0].query["query"] == ["is:resolved lastSeen:-90d"]
    assert events[0].query["end"] == ["2026-11-02T12:00:00"]
    case = lines(out)["4001"]
    assert case["headline"] == "ZeroDivisionError: division by zero"  # the crash before the resolution
    assert case["fix_commit"] == project["fix"]
    assert case["localized_at_1"] is True
    assert case["resolved"] is True
