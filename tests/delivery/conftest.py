"""Delivery fixtures: the demo app as a real repo with a real bare remote, and loopback fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.config import Settings
from tests.conftest import REPO_ROOT
from tests.fakes.github_api import FakeGitHub
from tests.fakes.sentry_api import FakeSentry, api_event_from_ingestion

GH_TOKEN = "ghs_TESTtoken0123456789abcdefABCDEF"
SENTRY_TOKEN = "sntrys_TESTtoken_abcdef0123456789"
ISSUE_ID = "4242"
SHORT_ID = "SHOP-1F"
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        **GIT_ENV,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True, text=True).stdout


@pytest.fixture(autouse=True)
def _no_global_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    return bare


@pytest.fixture
def workspace(tmp_path: Path, remote: Path) -> Path:
    """The demo shop with its two-commit history, checked out on main, origin = the bare remote."""
    sys.path.insert(0, str(REPO_ROOT / "examples" / "demo"))
    try:
        import build_workspace
    finally:
        sys.path.pop(0)
    ws = build_workspace.build(tmp_path / "ws")
    git(ws, "remote", "add", "origin", str(remote))
    git(ws, "push", "-q", "origin", "main")
    return ws


def demo_api_event(fixtures: Path) -> dict[str, Any]:
    ingest = json.loads((REPO_ROOT / "examples" / "demo" / "event.json").read_text())
    template = json.loads((fixtures / "sentry" / "api" / "get-organization-issue-event-latest.json").read_text())
    return api_event_from_ingestion(ingest, template, ISSUE_ID)


@pytest.fixture
def fake_sentry(shared_fixtures: Path) -> Iterator[FakeSentry]:
    fake = FakeSentry(shared_fixtures / "sentry", token=SENTRY_TOKEN).start()
    fake.add_issue(
        ISSUE_ID,
        short_id=SHORT_ID,
        title="ZeroDivisionError: division by zero",
        project="shop",
        priority="high",
        event=demo_api_event(shared_fixtures),
    )
    yield fake
    fake.stop()


@pytest.fixture
def fake_github(shared_fixtures: Path, remote: Path) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(shared_fixtures / "github", repo="acme/shop", token=GH_TOKEN, git_remote=remote).start()
    yield fake
    fake.stop()


def make_settings(fake_sentry: FakeSentry, fake_github: FakeGitHub, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "sentry_url": fake_sentry.url,
        "sentry_auth_token": SENTRY_TOKEN,
        "sentry_org": "acme",
        "github_api_url": fake_github.url,
        "github_token": GH_TOKEN,
        "github_repository": "acme/shop",
        "github_write_interval": 0.0,
        "github_max_wait": 5.0,
        "test_command": f"{sys.executable} -m pytest -q -p no:cacheprovider",
        "github_run_id": "777",
    }
    values.update(over)
    return Settings(**values)
