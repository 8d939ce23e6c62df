"""End to end: a repository whose suite already has a failing test. With the baseline run the
scripted model's fix is accepted and reported as "fails, failed before"; without it, as before,
finish is refused on the failing suite."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.demo_fix import fix_steps
from tests.fakes.script import finish

from .conftest import ANTHROPIC_KEY, DEMO, TEST_COMMAND, git, run_cli, status

LEGACY = "tests/test_legacy.py"


def _with_failing_test(ws: Path) -> Path:
    (ws / LEGACY).write_text("def test_legacy_rounding():\n    assert round(2.675, 2) == 2.68\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "A test that already fails")
    return ws


def _fix(fake: FakeAnthropic, ws: Path, **env: str):  # type: ignore[no-untyped-def]
    args = ["fix", "--event-file", str(DEMO / "event.json"), "--workspace", str(ws), "--dry-run"]
    return run_cli([*args, "--test-command", TEST_COMMAND], {"ANTHROPIC_BASE_URL": fake.url, **env})


def test_fix_cli__preexisting_failure_is_reported_not_blamed_on_the_fix(demo_ws: Path) -> None:
    ws = _with_failing_test(demo_ws)
    with FakeAnthropic(fix_steps(), api_key=ANTHROPIC_KEY) as fake:
        proc = _fix(fake, ws)
        bodies = fake.all_bodies()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"
    assert "baseline: tests failed before any change" in proc.stderr
    assert "1 test fails, it failed before this change" in proc.stdout
    assert "reproduced the error without the fix: true" in proc.stdout
    assert fake.turns_served == 6  # finish accepted first time: no repair turn
    assert "also failed before any change: tests/test_legacy.py::test_legacy_rounding" in bodies
    assert status(ws) == ""


def test_fix_cli__without_baseline_the_failing_suite_refuses_finish(demo_ws: Path) -> None:
    ws = _with_failing_test(demo_ws)
    with FakeAnthropic([*fix_steps(), finish(), finish()], api_key=ANTHROPIC_KEY) as fake:
        proc = _fix(fake, ws, SENTRY_AUTOFIX_BASELINE_TESTS="false")
        bodies = fake.all_bodies()
    assert "baseline:" not in proc.stderr
    assert "finish refused: the tests fail" in bodies
    assert "failed before this change" not in proc.stdout
