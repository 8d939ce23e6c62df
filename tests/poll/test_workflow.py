"""The example scheduled workflows: actionlint (the maintained fork), GitHub's workflow schema, and
the properties the docs promise (least privilege, matrix fan-out, no persisted credentials)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / "examples" / "workflows").glob("scheduled-poll*.yml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return str(path)


def _load(path: Path) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def test_examples__exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["scheduled-poll-dispatch.yml", "scheduled-poll.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_examples__pass_actionlint(path: Path) -> None:
    proc = subprocess.run([_tool("actionlint"), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint__would_catch_an_outdated_checkout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        (REPO_ROOT / "examples/workflows/scheduled-poll.yml").read_text().replace("checkout@v5", "checkout@v4")
    )
    proc = subprocess.run([_tool("actionlint"), str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "actions/checkout@v4" in proc.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_examples__match_githubs_workflow_schema(path: Path) -> None:
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_matrix_example__fans_out_from_the_poll_output() -> None:
    doc = _load(REPO_ROOT / "examples/workflows/scheduled-poll.yml")
    assert doc["permissions"] == {}
    assert "schedule" in doc["on"]
    poll, fix = doc["jobs"]["poll"], doc["jobs"]["fix"]
    assert "sentry-autofix poll --matrix" in poll["steps"][-1]["run"]
    assert poll["outputs"]["matrix"] == "${{ steps.poll.outputs.matrix }}"
    assert set(poll["permissions"].values()) == {"read"}
    assert fix["needs"] == "poll"
    assert "count != '0'" in fix["if"]
    assert fix["strategy"]["matrix"] == "${{ fromJSON(needs.poll.outputs.matrix) }}"
    assert isinstance(fix["strategy"]["max-parallel"], int)
    checkout = next(s for s in fix["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    action = next(s for s in fix["steps"] if "sentry-autofix@" in s.get("uses", ""))
    assert action["with"]["sentry-issue-id"] == "${{ matrix.issue_id }}"
    # Secrets reach steps through env/with only, never pasted into a script.
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", "")
