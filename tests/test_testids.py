"""Failing test ids read from test output (workspace/testids.py), and the baseline comparison:
a failure is the fix's only if the test passed before; unreadable output never hides a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.models import FixResult, TestOutcome
from sentry_autofix.pipeline import draft_reasons
from sentry_autofix.workspace.testids import caused_failure, compare, failed_test_ids, new_failures, with_failures

RUNS = Path(__file__).parent / "fixtures" / "testruns"


def _pytest_output(tmp_path: Path, body: str, *args: str) -> str:
    (tmp_path / "test_mod.py").write_text(body)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, "test_mod.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (1, 2), proc.stdout  # 2: interrupted by a collection error
    return proc.stdout


_TWO_FAILING = (
    "import pytest\n\n"
    "def test_ok():\n    pass\n\n"
    "def test_bad():\n    assert 1 == 2\n\n"
    "@pytest.mark.parametrize('n', [1, 2])\n"
    "def test_param(n):\n    assert n == 1\n"
)


@pytest.mark.parametrize("flags", [(), ("-q",), ("-rA",)])
def test_failed_test_ids__real_pytest_summary(tmp_path: Path, flags: tuple[str, ...]) -> None:
    """pytest's `FAILED path::id` lines, in default, quiet and -rA modes (ids with parameters)."""
    out = _pytest_output(tmp_path, _TWO_FAILING, *flags)
    assert failed_test_ids(out) == ["test_mod.py::test_bad", "test_mod.py::test_param[2]"]


def test_failed_test_ids__real_pytest_collection_error(tmp_path: Path) -> None:
    out = _pytest_output(tmp_path, "import nosuchmodule_xyz\n\ndef test_a():\n    pass\n")
    assert failed_test_ids(out) == ["test_mod.py"]


def test_failed_test_ids__pytest_count_larger_than_the_ids_is_unreadable(tmp_path: Path) -> None:
    """A summary cut short (or a plugin that hides it) must not make failures look pre-existing."""
    out = _pytest_output(tmp_path, _TWO_FAILING, "-q")
    shortened = "\n".join(ln for ln in out.splitlines() if "test_param" not in ln)
    assert failed_test_ids(shortened) is None


def test_failed_test_ids__real_unittest(tmp_path: Path) -> None:
    (tmp_path / "test_u.py").write_text(
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_a(self):\n        self.assertEqual(1, 2)\n"
        "    def test_b(self):\n        raise KeyError('x')\n"
        "    def test_c(self):\n        pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "test_u"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert sorted(failed_test_ids(proc.stderr) or []) == ["test_a (test_u.T.test_a)", "test_b (test_u.T.test_b)"]


def test_failed_test_ids__real_go_test() -> None:
    """Tests, subtests and the package line, without the timing that differs between runs."""
    ids = failed_test_ids((RUNS / "go_test.txt").read_text())
    assert ids == ["TestDivide", "TestTable", "TestTable/empty", "example.com/calc"]


def test_failed_test_ids__real_cargo_test() -> None:
    assert failed_test_ids((RUNS / "cargo_test.txt").read_text()) == ["more::divides"]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # jest --verbose
        (
            "FAIL src/cart.test.js (5.2 s)\n  cart\n    ✓ adds (3 ms)\n    ✕ divides (4 ms)\n",
            ["src/cart.test.js", "divides"],
        ),
        # vitest
        (
            " FAIL  src/cart.test.ts > cart > divides\nAssertionError: expected 1 to be 2\n",
            ["src/cart.test.ts > cart > divides"],
        ),
        # rspec "Failed examples"
        (
            "Failed examples:\n\nrspec ./spec/cart_spec.rb:12 # Cart divides\nrspec ./spec/a_spec.rb:3 # A b\n",
            ["./spec/cart_spec.rb:12", "./spec/a_spec.rb:3"],
        ),
        # maven surefire
        (
            "[ERROR] Failures: \n[ERROR]   CartTest.divides:12 expected:<1> but was:<2>\n"
            "[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 0\n",
            ["CartTest.divides"],
        ),
        # gradle
        ("CartTest > divides() FAILED\n    java.lang.AssertionError at CartTest.java:12\n", ["CartTest > divides()"]),
    ],
)
def test_failed_test_ids__other_runners(output: str, expected: list[str]) -> None:
    assert failed_test_ids(output) == expected


@pytest.mark.parametrize(
    "output",
    [
        "Segmentation fault (core dumped)\n",
        "npm ERR! missing script: test\n",
        # go output cut in the middle by the sandbox: a FAIL line may be in the lost part
        "--- FAIL: TestA (0.00s)\n[… 50000 bytes of output omitted …]\nFAIL\n",
    ],
)
def test_failed_test_ids__unreadable_is_none(output: str) -> None:
    assert failed_test_ids(output) is None


def _run(status: str, ids: list[str] | None, command: str = "pytest") -> TestOutcome:
    return TestOutcome(status=status, command=command, exit_code=0 if status == "passed" else 1, failed_tests=ids)  # type: ignore[arg-type]


def test_new_failures__only_tests_that_passed_before_count() -> None:
    before = _run("failed", ["a", "b"])
    assert new_failures(before, _run("failed", ["a", "b"])) == []
    assert new_failures(before, _run("failed", ["a", "c"])) == ["c"]
    assert caused_failure(before, _run("failed", ["b"])) is False
    assert caused_failure(before, _run("failed", ["c"])) is True
    assert compare(before, _run("failed", ["a", "b"])) == "2 tests fail, both failed before this change"
    assert compare(before, _run("failed", ["a", "c"])) == "1 test newly failing, 1 failed before this change"


def test_caused_failure__falls_back_to_any_failure_when_it_cannot_tell() -> None:
    """No baseline, an unreadable run, or a different command: today's rule (a failure is a failure)."""
    assert caused_failure(None, _run("failed", ["a"])) is True
    assert caused_failure(_run("passed", []), _run("failed", None)) is True
    assert caused_failure(_run("failed", ["a"]), _run("failed", ["a"], command="pytest -k a")) is None
    assert caused_failure(_run("failed", None), _run("failed", ["a"])) is None
    assert caused_failure(_run("failed", ["a"]), _run("passed", [])) is False


def test_with_failures__timeout_says_nothing() -> None:
    killed = TestOutcome(status="failed", command="pytest", exit_code=None, output_tail="FAILED t.py::a\n")
    assert with_failures(killed).failed_tests is None
    assert with_failures(TestOutcome(status="passed", command="pytest", exit_code=0)).failed_tests == []


def test_draft_reasons__preexisting_failures_do_not_make_a_draft() -> None:
    settings = Settings(min_confidence="low")
    old = FixResult(
        status="fixed", confidence="high", tests=_run("failed", ["a"]), baseline_tests=_run("failed", ["a"])
    )
    assert draft_reasons(old, settings) == []
    new = FixResult(
        status="fixed", confidence="high", tests=_run("failed", ["a", "b"]), baseline_tests=_run("failed", ["a"])
    )
    assert draft_reasons(new, settings) == ["tests failed"]
    unreadable = FixResult(
        status="fixed", confidence="high", tests=_run("failed", None), baseline_tests=_run("failed", ["a"])
    )
    assert draft_reasons(unreadable, settings) == ["tests failed"]
