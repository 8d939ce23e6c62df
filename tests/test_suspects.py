"""Suspect ranking and suspect commits, on real git history."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sentry_autofix.config import Settings
from sentry_autofix.models import ErrorEvent, ExceptionValue, IssueInfo, StackFrame
from sentry_autofix.triage import build_triage

from .gitrepo import commit, make_repo

SETTINGS = Settings()


def _frame(path: str, line: int, function: str, in_app: bool | None = True, ctx: str | None = None) -> StackFrame:
    return StackFrame(abs_path=f"/srv/app/{path}", lineno=line, function=function, in_app=in_app, context_line=ctx)


def test_rank__crash_frame_first_then_callers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app/views.py": "a\nb\nc\n", "app/service.py": "a\nb\nc\n", "app/db.py": "a\n"})
    event = ErrorEvent(
        exceptions=[
            ExceptionValue(
                type="KeyError",
                frames=[
                    _frame("framework/wsgi.py", 9, "call", in_app=False),
                    _frame("app/views.py", 2, "handler"),
                    _frame("app/service.py", 3, "compute"),
                    _frame("lib/json.py", 1, "load", in_app=False),
                ],
            )
        ]
    )
    report = build_triage(event, repo, SETTINGS)
    assert [s.path for s in report.suspects] == ["app/service.py", "app/views.py"]
    assert report.suspects[0].function == "compute" and report.suspects[0].line == 3
    assert report.suspects[0].score > report.suspects[1].score


def test_rank__root_cause_of_a_chain_outranks_the_wrapper(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app/api.py": "a\nb\n", "app/repo.py": "a\nb\n"})
    event = ErrorEvent(
        exceptions=[
            ExceptionValue(type="KeyError", frames=[_frame("app/repo.py", 2, "lookup")]),
            ExceptionValue(type="NotFound", frames=[_frame("app/api.py", 1, "get")]),
        ]
    )
    report = build_triage(event, repo, SETTINGS)
    assert [s.path for s in report.suspects] == ["app/repo.py", "app/api.py"]


def test_suspect_commits__blame_finds_the_commit_that_changed_the_crashing_line(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {"app/calc.py": "def avg(xs):\n    return sum(xs) / len(xs) if xs else 0\n", "README": "x\n"},
        date="2026-01-01T10:00:00+00:00",
    )
    culprit = commit(
        repo,
        {"app/calc.py": "def avg(xs):\n    return sum(xs) / len(xs)\n"},
        "Simplify avg",
        "2026-03-01T10:00:00+00:00",
        author="Mallory",
    )
    later = commit(
        repo,
        {"app/calc.py": "def avg(xs):\n    return sum(xs) / len(xs)\n# later\n"},
        "Later",
        "2026-06-01T10:00:00+00:00",
    )
    event = ErrorEvent(
        exceptions=[ExceptionValue(type="ZeroDivisionError", frames=[_frame("app/calc.py", 2, "avg")])],
        issue=IssueInfo(id="1", first_seen=datetime(2026, 3, 5, tzinfo=timezone.utc)),
    )
    report = build_triage(event, repo, SETTINGS)
    assert report.suspect_commits[0].sha == culprit
    assert report.suspect_commits[0].author == "Mallory"
    assert any("last changed app/calc.py:2" in r for r in report.suspect_commits[0].reasons)
    assert later not in {c.sha for c in report.suspect_commits}, "commits after first seen cannot be the cause"
    assert "changed within 14 days before first seen" in report.suspects[0].reasons


def test_suspect_commits__workspace_without_commits_has_none(tmp_path: Path) -> None:
    from .gitrepo import git

    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "app").mkdir()
    (repo / "app" / "x.py").write_text("a\n")
    git(repo, "add", "app/x.py")  # tracked (in the index), never committed
    event = ErrorEvent(exceptions=[ExceptionValue(type="E", frames=[_frame("app/x.py", 1, "f")])])
    report = build_triage(event, repo, SETTINGS)
    assert [s.path for s in report.suspects] == ["app/x.py"]
    assert report.suspect_commits == []
