"""The tools of SPEC §5 against a real git workspace: reads, search, edits, test narrowing."""

from __future__ import annotations

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
    for bad in ("rm -rf /", "pytest -q; id", "pytest -q --rootdir=/", "pytest -q ../x", "pytest -q $(id)"):
        text, err = call(box, "run_tests", command=bad)
        assert err, bad
    assert box.ran == ["pytest -q 'tests/test_a.py::test_x[1]'"]  # type: ignore[attr-defined]


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
    for path in ("local_settings.py", "build/out.js"):
        text, err = call(box, "write_file", path=path, content="x\n")
        assert err, path
        assert "git ignores this path" in text
    assert (box.workspace / "local_settings.py").read_text() == "DEBUG = True\n"
    text, err = call(box, "edit_file", path="local_settings.py", old_text="True", new_text="False")
    assert err


def test_search_code__path_glob_limits_the_search_and_sees_new_files(box: Toolbox) -> None:
    (box.workspace / "other").mkdir()
    (box.workspace / "other" / "x.py").write_text("return 1\n")  # untracked, not ignored
    text, err = call(box, "search_code", pattern="return 1", path_glob="other/**")
    assert (text, err) == ("other/x.py:1:return 1", False)
    text, err = call(box, "search_code", pattern="return 1", path_glob="../**")
    assert err


def test_read_file__folder_points_to_list_files(box: Toolbox) -> None:
    text, err = call(box, "read_file", path="pkg")
    assert err
    assert "use list_files" in text


def test_edit_file__crlf_file_keeps_its_line_endings(box: Toolbox) -> None:
    (box.workspace / "pkg" / "win.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    text, err = call(box, "edit_file", path="pkg/win.py", old_text="a = 1\nb = 2\n", new_text="a = 1\nb = 3\n")
    assert not err, text
    assert (box.workspace / "pkg" / "win.py").read_bytes() == b"a = 1\r\nb = 3\r\n"


def test_edit_file__non_utf8_file_is_refused_not_corrupted(box: Toolbox) -> None:
    (box.workspace / "pkg" / "latin.txt").write_bytes(b"caf\xe9 = 1\n")
    text, err = call(box, "edit_file", path="pkg/latin.txt", old_text="= 1", new_text="= 2")
    assert err
    assert "not UTF-8" in text
    assert (box.workspace / "pkg" / "latin.txt").read_bytes() == b"caf\xe9 = 1\n"


def test_finish__confidence_is_case_insensitive(box: Toolbox) -> None:
    args = {"root_cause": "r", "analysis": "a", "confidence": "High", "pr_title": "t", "summary": "s"}
    _, fin = box.execute(ToolCall("f", "finish", args))
    assert fin is not None
    assert fin.confidence == "high"
