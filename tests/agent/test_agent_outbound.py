"""End to end, issue 9 §4: `fix --dry-run` and `triage` on a hostile event (and a steered model)
print nothing the Actions runner would run, no control character, and never crash on `\\ud800`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.hostile import HOSTILE, PRINTABLE, steered_steps
from tests.outbound import forbidden_chars, markdown_problems, workflow_commands

from .conftest import ANTHROPIC_KEY, DEMO, TEST_COMMAND, run_cli


@pytest.mark.parametrize("hostile", [HOSTILE, PRINTABLE], ids=["all", "no-surrogate"])
def test_fix_cli__dry_run_with_hostile_event_and_model_prints_nothing_live(
    hostile: str, tmp_path: Path, demo_ws: Path
) -> None:
    """`fix --dry-run` prints the diff and PR text quoting the model and the event (stdout) and the
    progress lines (stderr): no workflow command, no control character, no crash on `\\ud800`."""
    event = json.loads((DEMO / "event.json").read_text())
    exc = event["exception"]["values"][-1]
    exc["value"] = hostile
    exc["stacktrace"]["frames"][1]["filename"] = f"shop/{hostile[:50]}.py"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(event))  # ensure_ascii: the lone surrogate travels as valid JSON "\ud800"
    with FakeAnthropic(steered_steps(hostile), api_key=ANTHROPIC_KEY) as fake:
        args = ["fix", "--event-file", str(path), "--workspace", str(demo_ws), "--dry-run"]
        proc = run_cli([*args, "--test-command", TEST_COMMAND], {"ANTHROPIC_BASE_URL": fake.url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"
    assert "PR title: " in proc.stdout and "+++ b/shop/evil|<img src=x>" in proc.stdout
    assert workflow_commands(proc.stdout + proc.stderr) == []  # `fix` writes no command of its own
    assert forbidden_chars(proc.stdout + proc.stderr) == []


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_triage_cli__lone_surrogate_and_hostile_text(tmp_path: Path, demo_ws: Path, fmt: str) -> None:
    """`triage` used to crash with UnicodeEncodeError on a lone surrogate; now every format prints,
    and the markdown report is inert as GitHub would render it (stdout and --out alike)."""
    event = json.loads((DEMO / "event.json").read_text())
    event["exception"]["values"][-1]["value"] = HOSTILE
    event["exception"]["values"][-1]["stacktrace"]["frames"][0]["filename"] = HOSTILE
    event["breadcrumbs"]["values"][0]["message"] = HOSTILE
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(event))
    assert "\\ud800" in path.read_text()
    base = [sys.executable, "-m", "sentry_autofix", "triage", "--event-file", str(path), "--workspace", str(demo_ws)]
    proc = subprocess.run([*base, "--format", fmt], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert workflow_commands(proc.stdout + proc.stderr) == []
    assert forbidden_chars(proc.stderr) == []
    if fmt == "json":
        assert json.loads(proc.stdout)["error"]["value"].startswith("boom")
        return
    assert markdown_problems(proc.stdout) == []
    out = tmp_path / "report.md"
    written = subprocess.run([*base, "--out", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert written.returncode == 0, written.stderr
    assert markdown_problems(out.read_text(encoding="utf-8")) == []


def test_cli__error_lines_quoting_input_go_through_the_neutral_stream(tmp_path: Path, demo_ws: Path) -> None:
    """`cli.main` puts stderr behind the neutral stream: even its own error line, quoting a path
    that holds a newline and a command, cannot start a workflow command."""
    missing = str(tmp_path / "x\n::warning::pwned ##[error]y\x1b[2J.json")
    base = [sys.executable, "-m", "sentry_autofix", "triage", "--event-file", missing, "--workspace", str(demo_ws)]
    proc = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "event file not found" in proc.stderr
    assert "pwned" in proc.stderr
    assert workflow_commands(proc.stdout + proc.stderr) == []
    assert forbidden_chars(proc.stderr) == []
