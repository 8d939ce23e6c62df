"""The tools of SPEC §5 against a real git workspace: reads, search, edits, test narrowing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sentry_autofix.agent.llm import ToolCall
from sentry_autofix.agent.tools import TOOL_SPECS, Toolbox, ToolInputError, replace_once
from sentry_autofix.config import DEFAULT_BLOCKED_PATHS
from sentry_autofix.models import TestOutcome
from sentry_autofix.workspace.guard import PathGuard

SOURCE = (
    "def f(x):\n    if x:\n        return 1\n    return 0\n\n\ndef g(x):\n    if x:\n        return 1\n    return 2\n"
)


@pytest.fixture
def box(tmp_path: Path) -> Toolbox:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SOURCE)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "k.txt").write_text("return 1 TOPSECRET\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    ran: list[str | None] = []

    def runner(cmd: str | None) -> TestOutcome:
        ran.append(cmd)
        return TestOutcome(status="passed", command=cmd, exit_code=0, output_tail="ok TOKEN123456")

    box = Toolbox(
        tmp_path, PathGuard(tmp_path, DEFAULT_BLOCKED_PATHS), runner, "pytest -q", secret_values=["TOKEN123456"]
    )
    box.ran = ran  # type: ignore[attr-defined]
    return box


def rebox(box: Toolbox) -> Toolbox:
    """A toolbox for the workspace as it is now: a new baseline, as the next fix run would take."""
    return Toolbox(
        box.workspace,
        PathGuard(box.workspace, DEFAULT_BLOCKED_PATHS),
        box.test_runner,
        box.test_command,
        secret_values=box.secret_values,
    )


def git(ws: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True)


def call(box: Toolbox, name: str, **args: object) -> tuple[str, bool]:
    result, _ = box.execute(ToolCall("id1", name, dict(args)))
    return result.content, result.is_error


def test_tool_specs__names_and_required_inputs_are_spec_section_5() -> None:
    assert {t.name: t.input_schema["required"] for t in TOOL_SPECS} == {
        "read_file": ["path"],
        "search_code": ["pattern"],
        "list_files": [],
        "edit_file": ["path", "old_text", "new_text"],
        "write_file": ["path", "content"],
        "run_tests": [],
        "finish": ["root_cause", "analysis", "confidence", "pr_title", "summary"],
    }
    assert set(TOOL_SPECS[0].input_schema["properties"]) == {"path", "start_line", "end_line"}


def test_read_file__numbered_range_and_paging_hint(box: Toolbox) -> None:
    text, err = call(box, "read_file", path="pkg/mod.py", start_line=2, end_line=3)
    assert not err
    assert text.splitlines()[1:] == ["2\t    if x:", "3\t        return 1"]
    assert "more lines: call again with start_line=4" in text


def test_read_file__missing_file_suggests_close_names(box: Toolbox) -> None:
    text, err = call(box, "read_file", path="pkg/mdo.py")
    assert err
    assert "did you mean pkg/mod.py" in text


def test_search_code__finds_matches_but_hides_secret_files(box: Toolbox) -> None:
    text, err = call(box, "search_code", pattern="return 1")
    assert not err
    assert "pkg/mod.py:3:" in text
    assert "pkg/mod.py:9:" in text
    assert "TOPSECRET" not in text


def test_search_code__bad_regex_is_a_tool_error(box: Toolbox) -> None:
    text, err = call(box, "search_code", pattern="(unclosed")
    assert err
    assert "search_code" in text


def test_list_files__tracked_files_under_a_folder(box: Toolbox) -> None:
    text, err = call(box, "list_files", path="pkg")
    assert (text, err) == ("pkg/mod.py", False)


def test_edit_file__ambiguous_match_is_refused_and_file_untouched(box: Toolbox) -> None:
    text, err = call(box, "edit_file", path="pkg/mod.py", old_text="    if x:\n        return 1\n", new_text="pass\n")
    assert err
    assert "matches 2 places" in text
    assert (box.workspace / "pkg" / "mod.py").read_text() == SOURCE


def test_edit_file__unique_edit_is_applied_and_remembered(box: Toolbox) -> None:
    text, err = call(box, "edit_file", path="pkg/mod.py", old_text="    return 2\n", new_text="    return 3\n")
    assert not err
    assert "edited pkg/mod.py at line 10" in text
    assert (box.workspace / "pkg" / "mod.py").read_text().endswith("return 3\n")
    assert box.written == {"pkg/mod.py"}


def test_edit_file__blocked_path_refused(box: Toolbox) -> None:
    text, err = call(box, "edit_file", path="secrets/k.txt", old_text="return 1", new_text="x")
    assert err
    assert "blocked path" in text
    assert "TOPSECRET" not in text


def test_replace_once__tolerates_indentation_drift_and_reindents() -> None:
    drifted_old = "def g(x):\n  if x:\n    return 1\n  return 2\n"
    new = "def g(x):\n  if x is not None:\n    return 1\n  return 2\n"
    out = replace_once(SOURCE, drifted_old, new)
    assert "def g(x):\n    if x is not None:\n        return 1\n    return 2\n" in out
    assert out.startswith("def f(x):\n    if x:\n")


def test_replace_once__trailing_whitespace_drift() -> None:
    assert replace_once("a = 1   \nb = 2\n", "a = 1\nb = 2", "a = 3\nb = 2") == "a = 3\nb = 2\n"


def test_replace_once__tolerant_match_that_is_ambiguous_is_refused() -> None:
    with pytest.raises(ToolInputError, match="ignoring whitespace"):
        replace_once(SOURCE, "if x:\n  return 1", "x")


def test_replace_once__not_found_points_at_closest_line() -> None:
    with pytest.raises(ToolInputError, match="closest line is 10"):
        replace_once(SOURCE, "    return 22\n", "x")


def test_run_tests__only_the_configured_command_narrowed_by_selectors(box: Toolbox) -> None:
    text, err = call(box, "run_tests", command="pytest -q tests/test_a.py::test_x[1]")
    assert not err
    assert "exit code: 0 (passed)" in text
    assert "[redacted]" in text
    assert "TOKEN123456" not in text
    os.symlink("/etc", box.workspace / "outside")
    for bad in (
        "rm -rf /",
        "pytest -q; id",
        "pytest -q --rootdir=/",
        "pytest -q ../x",
        "pytest -q $(id)",
        "pytest -q @args.txt",  # pytest reads options from an @file: --basetemp=… would be smuggled
        "pytest -q tests/@args.txt",
        "pytest -q basetemp=/tmp/x",
        "pytest -q SHELL=/bin/evil",
        "pytest -q -p evil",
        "pytest -qx",
        "pytest -q /etc/passwd",
        "pytest -q outside/passwd",
        "pytest -q ::test_x",
        "pytest -q 'tests/a b.py'",
    ):
        text, err = call(box, "run_tests", command=bad)
        assert err, bad
    assert box.ran == ["pytest -q 'tests/test_a.py::test_x[1]'"]  # type: ignore[attr-defined]
    call(box, "run_tests", command="pytest -q tests/test_a.py tests/sub/ ./...")
    assert box.ran[-1] == "pytest -q tests/test_a.py tests/sub/ ./..."  # type: ignore[attr-defined]


def test_run_tests__no_command_configured_is_not_run(box: Toolbox) -> None:
    box.test_command = None
    text, err = call(box, "run_tests")
    assert not err
    assert "not run" in text
    assert box.last_tests is not None
    assert box.last_tests.status == "not-run"


def test_finish__confidence_must_be_in_the_enum(box: Toolbox) -> None:
    args = {"root_cause": "r", "analysis": "a", "confidence": "certain", "pr_title": "t", "summary": "s"}
    result, fin = box.execute(ToolCall("f", "finish", args))
    assert result.is_error
    assert fin is None
    assert "must be one of" in result.content
    result, fin = box.execute(ToolCall("f", "finish", {**args, "confidence": "high"}))
    assert fin is not None
    assert fin.confidence == "high"


def test_write_file__gitignored_paths_are_refused(box: Toolbox) -> None:
    (box.workspace / ".gitignore").write_text("local_settings.py\nbuild/\n")
    (box.workspace / "local_settings.py").write_text("DEBUG = True\n")
    box = rebox(box)
    for path in ("local_settings.py", "build/out.js"):
        text, err = call(box, "write_file", path=path, content="x\n")
        assert err, path
        assert "git ignores this path" in text
    assert (box.workspace / "local_settings.py").read_text() == "DEBUG = True\n"
    text, err = call(box, "edit_file", path="local_settings.py", old_text="True", new_text="False")
    assert err


def test_write_file__ignored_file_stays_refused_after_the_model_rewrites_gitignore(box: Toolbox) -> None:
    """Issue 9: editing `.gitignore` first let the model write, then the restore delete, a user's
    ignored file. The rules that count are the baseline's."""
    ws = box.workspace
    (ws / ".gitignore").write_text("local_settings.py\nbuild/\n")
    git(ws, "add", ".gitignore")
    (ws / "local_settings.py").write_text("DEBUG = True\n")
    os.symlink("local_settings.py", ws / "pkg_settings.py")  # a new symlink onto the ignored file
    box = rebox(box)
    text, err = call(box, "write_file", path=".gitignore", content="# nothing ignored any more\n")
    assert not err, text
    for path in ("local_settings.py", "build/out.js", "pkg_settings.py"):
        text, err = call(box, "write_file", path=path, content="x\n")
        assert err, path
        assert "git ignores this path" in text or "untracked file" in text, text
    assert (ws / "local_settings.py").read_text() == "DEBUG = True\n"
    assert not (ws / "build").exists()


def test_write_file__untracked_file_present_before_the_fix_is_refused_new_files_are_fine(box: Toolbox) -> None:
    (box.workspace / "notes.txt").write_text("the user's own notes\n")
    box = rebox(box)
    text, err = call(box, "write_file", path="notes.txt", content="overwritten\n")
    assert err
    assert "untracked file was in the workspace before the fix started" in text
    assert (box.workspace / "notes.txt").read_text() == "the user's own notes\n"
    for _ in range(2):  # creating a file, then rewriting the model's own file
        text, err = call(box, "write_file", path="pkg/new_test.py", content="def test(): pass\n")
        assert not err, text
    text, err = call(box, "edit_file", path="pkg/new_test.py", old_text="pass", new_text="assert True")
    assert not err, text


def test_read_file__only_tracked_files_and_the_models_own(box: Toolbox) -> None:
    """Untracked and ignored files are the user's or the runner's (gha-creds-*.json, .env):
    not read, not listed, not searched — unless SENTRY_AUTOFIX_READ_UNTRACKED opens untracked ones."""
    ws = box.workspace
    (ws / "gha-creds-1234.json").write_text('{"private_key": "return 1 CREDVALUE"}\n')
    text, err = call(box, "read_file", path="gha-creds-1234.json")
    assert err
    assert "git does not track this file" in text
    assert "CREDVALUE" not in call(box, "search_code", pattern="CREDVALUE|return 1")[0]
    assert "gha-creds" not in call(box, "list_files")[0]
    call(box, "write_file", path="pkg/mine.py", content="return 1 # mine\n")
    assert not call(box, "read_file", path="pkg/mine.py")[1]
    assert "pkg/mine.py:1:return 1 # mine" in call(box, "search_code", pattern="mine")[0]
    assert "pkg/mine.py" in call(box, "list_files", path="pkg")[0]
    opened = Toolbox(ws, PathGuard(ws, DEFAULT_BLOCKED_PATHS, read_untracked=True), box.test_runner, box.test_command)
    text, err = call(opened, "read_file", path="gha-creds-1234.json")
    assert not err
    assert "CREDVALUE" in text


def test_read_file__tracked_symlink_to_an_ignored_file_is_refused(box: Toolbox) -> None:
    ws = box.workspace
    (ws / ".gitignore").write_text("local.cfg\n")
    (ws / "local.cfg").write_text("DB_PASSWORD=return 1 LOCALSECRET\n")
    os.symlink("../local.cfg", ws / "pkg" / "settings.py")
    git(ws, "add", ".gitignore", "pkg/settings.py")
    box = rebox(box)
    text, err = call(box, "read_file", path="pkg/settings.py")
    assert err
    assert "it resolves to local.cfg" in text
    assert "LOCALSECRET" not in call(box, "search_code", pattern="LOCALSECRET|return 1")[0]


def test_tools__symlink_loops_and_fifos_are_tool_errors_not_crashes(box: Toolbox) -> None:
    """Issue 9: a committed symlink loop crashed the run (RuntimeError from Path.resolve())."""
    ws = box.workspace
    os.symlink("loop.py", ws / "pkg" / "loop.py")
    os.symlink("b", ws / "pkg" / "a")
    os.symlink("a", ws / "pkg" / "b")
    os.mkfifo(ws / "pkg" / "pipe.py")
    git(ws, "add", "pkg/loop.py", "pkg/a", "pkg/b")
    box = rebox(box)
    for path in ("pkg/loop.py", "pkg/a/x.py", "pkg/b", "pkg/pipe.py"):
        for name, args in (
            ("read_file", {"path": path}),
            ("write_file", {"path": path, "content": "x\n"}),
            ("edit_file", {"path": path, "old_text": "a", "new_text": "b"}),
        ):
            text, err = call(box, name, **args)
            assert err, (name, path, text)
    assert not call(box, "list_files", path="pkg")[1]
    assert not call(box, "search_code", pattern="return")[1]
    text, err = call(box, "run_tests", command="pytest -q pkg/loop.py")
    assert err


def test_search_code__path_glob_limits_the_search_and_sees_new_files(box: Toolbox) -> None:
    call(box, "write_file", path="other/x.py", content="return 1\n")
    text, err = call(box, "search_code", pattern="return 1", path_glob="other/**")
    assert (text, err) == ("other/x.py:1:return 1", False)
    text, err = call(box, "search_code", pattern="return 1", path_glob="*.py")
    assert not err
    assert {line.split(":")[0] for line in text.splitlines()} == {"pkg/mod.py", "other/x.py"}
    text, err = call(box, "search_code", pattern="return 1", path_glob="../**")
    assert err


def test_search_code__works_with_literal_pathspecs(box: Toolbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every git call runs with literal pathspecs (issue 9): `:(glob)` magic would match nothing."""
    monkeypatch.setenv("GIT_LITERAL_PATHSPECS", "1")
    text, err = call(box, "search_code", pattern="return 2", path_glob="pkg/**/*.py")
    assert (text, err) == ("pkg/mod.py:10:    return 2", False)
    text, err = call(box, "write_file", path="pkg/*", content="return 2\n")
    assert not err
    assert call(box, "list_files", path="pkg")[0] == "pkg/*\npkg/mod.py"


def test_read_file__folder_points_to_list_files(box: Toolbox) -> None:
    text, err = call(box, "read_file", path="pkg")
    assert err
    assert "use list_files" in text


def test_edit_file__crlf_file_keeps_its_line_endings(box: Toolbox) -> None:
    (box.workspace / "pkg" / "win.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    git(box.workspace, "add", "pkg/win.py")
    text, err = call(box, "edit_file", path="pkg/win.py", old_text="a = 1\nb = 2\n", new_text="a = 1\nb = 3\n")
    assert not err, text
    assert (box.workspace / "pkg" / "win.py").read_bytes() == b"a = 1\r\nb = 3\r\n"


def test_edit_file__non_utf8_file_is_refused_not_corrupted(box: Toolbox) -> None:
    (box.workspace / "pkg" / "latin.txt").write_bytes(b"caf\xe9 = 1\n")
    git(box.workspace, "add", "pkg/latin.txt")
    text, err = call(box, "edit_file", path="pkg/latin.txt", old_text="= 1", new_text="= 2")
    assert err
    assert "not UTF-8" in text
    assert (box.workspace / "pkg" / "latin.txt").read_bytes() == b"caf\xe9 = 1\n"


def test_finish__confidence_is_case_insensitive(box: Toolbox) -> None:
    args = {"root_cause": "r", "analysis": "a", "confidence": "High", "pr_title": "t", "summary": "s"}
    _, fin = box.execute(ToolCall("f", "finish", args))
    assert fin is not None
    assert fin.confidence == "high"
