"""Real crashes, deployed under paths unlike the repo, raw and wrapped every way logs deliver them:
the file that needs the fix is among the top 3 suspects (as for real Sentry events in
tests/test_triage_cli.py). Captures and their programs: tests/fixtures/tracebacks (PROVENANCE.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.sources.traceback_text import parse_traceback
from sentry_autofix.triage import build_triage
from sentry_autofix.workspace.mapping import WorkspaceIndex

from ..gitrepo import git
from ..tracebacks_wrap import WRAPPERS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracebacks"
CASES: dict[str, dict[str, str]] = json.loads((FIXTURES / "cases.json").read_text())


@pytest.fixture(scope="module")
def app_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, WorkspaceIndex]]:
    """Each app's repository (apps/<lang>/ as committed), as a real git work tree."""
    root = tmp_path_factory.mktemp("apps")
    repos = {}
    for app in sorted({case["app"] for case in CASES.values()}):
        repo = root / app
        shutil.copytree(FIXTURES / "apps" / app, repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial", date="2026-01-01T00:00:00+00:00")
        repos[app] = (repo, WorkspaceIndex.scan(repo))
    return repos


def test_cases__every_capture_has_an_expectation_and_the_file_exists() -> None:
    """The manifest covers every capture of a fixture app, and names files the apps really have."""
    captured = {p.name for p in (FIXTURES / "raw").glob("*.txt")} - {"demo_logging.txt"}
    assert captured == set(CASES)
    for case in CASES.values():
        assert (FIXTURES / "apps" / case["app"] / case["fix"]).is_file(), case


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_triage_traceback__file_to_fix_in_top_3(
    name: str, wrapper: str, app_repos: dict[str, tuple[Path, WorkspaceIndex]]
) -> None:
    """Parsing + mapping + ranking finds the file to fix from the text alone, whatever the wrapper."""
    case = CASES[name]
    repo, index = app_repos[case["app"]]
    text = WRAPPERS[wrapper]((FIXTURES / "raw" / name).read_text())
    event = parse_traceback(text)
    assert event.platform == name.split("_", 1)[0]
    report = build_triage(event, repo, Settings(), index)
    top3 = [s.path for s in report.suspects[:3]]
    assert case["fix"] in top3, (top3, [(f.original_path, f.reason) for f in report.frames])
    assert "/srv/" not in " ".join(top3), "suspects are workspace paths, never deployed ones"
