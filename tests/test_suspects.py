"""Suspect ranking and suspect commits, on real git history."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.models import ErrorEvent, ExceptionValue, IssueInfo, StackFrame
from sentry_autofix.triage import build_triage, to_json
from sentry_autofix.workspace.suspects import MAX_COMMITS

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


def test_rank__a_validator_that_rejects_its_input_points_at_the_caller(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {"app/checks.py": "def check_tz(a, b):\n    raise TypeError('tz')\n", "app/index.py": "x\ny\nz\n"},
    )
    event = ErrorEvent(
        exceptions=[
            ExceptionValue(
                type="TypeError",
                value="Cannot compare tz-naive and tz-aware datetime-like objects",
                frames=[
                    _frame("app/index.py", 3, "asof_locs"),
                    _frame("app/checks.py", 2, "_check_tzawareness_compat"),
                ],
            )
        ]
    )
    report = build_triage(event, repo, SETTINGS)
    assert [s.path for s in report.suspects] == ["app/index.py", "app/checks.py"]
    assert any("rejects bad input" in r for r in report.suspects[0].reasons)


def test_rank__a_shared_helper_raising_about_its_argument_points_at_the_caller(tmp_path: Path) -> None:
    # salt#33908: compare_dicts(None, ...) in salt/utils; the fix went to the state that passed None.
    files = {"app/utils/__init__.py": "a\nb\nc\n", "app/states/lam.py": "a\nb\nc\nd\n", "app/loader.py": "a\n"}
    repo = make_repo(tmp_path / "r", files)
    frames = [
        _frame("app/loader.py", 1, "wrapper"),
        _frame("app/states/lam.py", 2, "function_present"),
        _frame("app/states/lam.py", 4, "_permissions_present"),
        _frame("app/utils/__init__.py", 3, "compare_dicts"),
    ]
    event = ErrorEvent(
        exceptions=[
            ExceptionValue(type="TypeError", value="argument of type 'NoneType' is not iterable", frames=frames)
        ]
    )
    report = build_triage(event, repo, SETTINGS)
    assert [s.path for s in report.suspects][:2] == ["app/states/lam.py", "app/utils/__init__.py"]
    assert report.suspects[0].line == 4


@pytest.mark.parametrize(
    ("frames", "exc_type", "value"),
    [
        # A TypeError in an ordinary module is that module's bug: the crash frame stays first.
        ([("app/views.py", 1, "handler"), ("app/cart.py", 2, "total")], "TypeError", "'NoneType' object"),
        # A shared helper raising something that is not about its argument.
        ([("app/views.py", 1, "handler"), ("app/utils.py", 2, "fetch")], "KeyError", "'user'"),
        # The exception came from a library below the helper: the app frame is a caller already.
        (
            [("app/views.py", 1, "handler"), ("app/utils.py", 2, "load"), ("lib/json.py", 9, "loads")],
            "TypeError",
            "None",
        ),
    ],
)
def test_rank__the_crash_frame_stays_first_when_no_helper_rejected_an_argument(
    tmp_path: Path, frames: list[tuple[str, int, str]], exc_type: str, value: str
) -> None:
    files = {path: "a\nb\nc\n" for path, _, _ in frames if not path.startswith("lib/")}
    repo = make_repo(tmp_path / "r", files)
    stack = [_frame(p, n, f, in_app=not p.startswith("lib/")) for p, n, f in frames]
    report = build_triage(
        event := ErrorEvent(exceptions=[ExceptionValue(type=exc_type, value=value, frames=stack)]), repo, SETTINGS
    )
    deepest_app = [p for p, _, _ in frames if not p.startswith("lib/")][-1]
    assert report.suspects[0].path == deepest_app, event


def test_rank__a_lambda_frame_is_named_by_the_function_around_it(tmp_path: Path) -> None:
    source = (
        "def json_normalize(data, record_prefix):\n"
        "    result = frame(data)\n"
        "    result = result.rename(\n"
        "        columns=lambda x: record_prefix + x)\n"
        "    return [str(c) for c in result]\n"
    )
    repo = make_repo(tmp_path / "r", {"pkg/normalize.py": source, "pkg/frame.py": "a\nb\n"})
    event = ErrorEvent(
        exceptions=[
            ExceptionValue(
                type="TypeError",
                value='can only concatenate str (not "int") to str',
                frames=[
                    _frame("pkg/normalize.py", 3, "json_normalize"),
                    _frame("pkg/frame.py", 2, "rename"),
                    _frame("pkg/normalize.py", 4, "<lambda>"),
                ],
            )
        ]
    )
    report = build_triage(event, repo, SETTINGS)
    top = report.suspects[0]
    assert (top.path, top.line, top.function) == ("pkg/normalize.py", 4, "json_normalize")
    assert "<lambda> is inside json_normalize()" in top.reasons
    assert [f.function for f in report.frames if f.path == "pkg/normalize.py"] == ["json_normalize", "<lambda>"]


def test_rank__a_suspect_lists_every_function_of_its_file_on_the_stack(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app/svc.py": "a\nb\nc\nd\ne\n", "app/api.py": "a\n"})
    frames = [
        _frame("app/api.py", 1, "post"),
        _frame("app/svc.py", 2, "checkout"),
        _frame("app/svc.py", 4, "total"),
        _frame("app/svc.py", 5, "line_price"),
    ]
    report = build_triage(ErrorEvent(exceptions=[ExceptionValue(type="KeyError", frames=frames)]), repo, SETTINGS)
    top = report.suspects[0]
    assert (top.path, top.function) == ("app/svc.py", "line_price")
    assert top.functions == ["line_price", "total", "checkout"]
    assert top.lines == [5, 4, 2]
    dumped = json.loads(json.dumps(to_json(report)))["suspects"][0]
    assert {"path", "line", "function", "score"} <= dumped.keys(), "SPEC §3 keys stay"
    assert dumped["functions"] == ["line_price", "total", "checkout"]


def test_suspect_commits__the_commit_on_a_crashing_line_survives_a_busy_file(tmp_path: Path) -> None:
    # The crash file has many recent edits next to the crashing line; the caller's crashing line was
    # last changed by one older commit, which a plain top-5 by score would cut.
    crash = [f"c{i}\n" for i in range(12)]
    repo = make_repo(
        tmp_path / "r",
        {"app/core.py": "".join(crash), "app/a.py": "a\n", "app/b.py": "b\n", "app/view.py": "v1\nv2\n"},
        date="2025-06-01T00:00:00+00:00",
    )
    culprit = commit(repo, {"app/view.py": "v1\nv2 changed\n"}, "Pass None to core", "2025-07-01T00:00:00+00:00")
    for n, line in enumerate([3, 4, 5, 7, 8, 9]):
        crash[line - 1] = f"edited {n}\n"
        commit(repo, {"app/core.py": "".join(crash)}, f"Tweak core {n}", f"2025-08-{10 + n:02d}T00:00:00+00:00")
    frames = [
        _frame("app/view.py", 2, "handler"),
        _frame("app/b.py", 1, "step_b"),
        _frame("app/a.py", 1, "step_a"),
        _frame("app/core.py", 6, "compute"),
    ]
    event = ErrorEvent(
        exceptions=[ExceptionValue(type="KeyError", frames=frames)],
        issue=IssueInfo(id="1", first_seen=datetime(2026, 1, 1, tzinfo=timezone.utc)),
    )
    report = build_triage(event, repo, SETTINGS)
    shas = [c.sha for c in report.suspect_commits]
    assert len(shas) == MAX_COMMITS
    assert culprit in shas
    why = next(c for c in report.suspect_commits if c.sha == culprit).reasons
    assert "last changed app/view.py:2" in why
