"""Reproduction is verified, not claimed: changed tests must fail on the original source."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sentry_autofix.fix import is_test_path, verify_reproduction
from sentry_autofix.workspace import diff as wsdiff
from sentry_autofix.workspace.testrunner import TestExecutor

COMMAND = "sh tests/check.sh"


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/test_cart.py", True),
        ("app/test_utils.py", True),
        ("pkg/cart_test.go", True),
        ("src/cart.test.ts", True),
        ("spec/models/cart_spec.rb", True),
        ("src/test/java/CartTest.java", True),
        ("conftest.py", True),
        ("app/cart.py", False),
        ("app/contest.py", False),
        ("src/latest.js", False),
    ],
)
def test_is_test_path__common_conventions(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test


def _repo(tmp_path: Path) -> Path:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "code.txt").write_text("buggy\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "check.sh").write_text("true\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env, capture_output=True)
    return tmp_path


def _run(ws: Path, check_script: str) -> tuple[str, str | None, str]:
    base = wsdiff.take_baseline(ws)
    (ws / "app" / "code.txt").write_text("fixed\n")
    (ws / "tests" / "check.sh").write_text(check_script)
    runner = TestExecutor(ws, None, timeout=20, budget=600)
    with_fix = runner(COMMAND)
    verdict, without = verify_reproduction(ws, base, {"tests/check.sh"}, runner, COMMAND, with_fix)
    return verdict, without.status if without else None, (ws / "app" / "code.txt").read_text()


def test_verify_reproduction__test_fails_without_fix_and_passes_with_it(tmp_path: Path) -> None:
    verdict, without, after = _run(_repo(tmp_path), "grep -q fixed app/code.txt\n")
    assert (verdict, without) == ("true", "failed")
    assert after == "fixed\n"  # the fix is back in place afterwards


def test_verify_reproduction__test_that_passes_without_fix_proves_nothing(tmp_path: Path) -> None:
    verdict, without, after = _run(_repo(tmp_path), "test -f app/code.txt\n")
    assert (verdict, without) == ("false", "passed")
    assert after == "fixed\n"


def test_verify_reproduction__no_changed_tests_is_unknown(tmp_path: Path) -> None:
    ws = _repo(tmp_path)
    base = wsdiff.take_baseline(ws)
    (ws / "app" / "code.txt").write_text("fixed\n")
    runner = TestExecutor(ws, None, timeout=20, budget=600)
    assert verify_reproduction(ws, base, set(), runner, COMMAND, runner(COMMAND)) == ("unknown", None)
    assert verify_reproduction(ws, base, set(), runner, None, runner(None)) == ("unknown", None)
