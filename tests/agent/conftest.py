"""Fixtures for the agent tests: the demo app as a real git workspace, its real Sentry event, and
helpers that run the real loop (in process, or the CLI as a subprocess) against the loopback fakes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.models import ErrorEvent
from sentry_autofix.sources.sentry_event import load_event_file

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
ANTHROPIC_KEY = "sk-ant-test-key-1234567890"
GITHUB_TOKEN = "ghs_FAKEgithubTOKENvalue0123456789abcdef"
SENTRY_TOKEN = "sntrys_FAKEsentryTOKENvalue0123456789"
ENV_SECRET = "hunter2-dotenv-SECRET-value-42"
TEST_COMMAND = f"{sys.executable} -m pytest -q -p no:cacheprovider"


def _build_demo(dest: Path) -> Path:
    spec = importlib.util.spec_from_file_location("demo_build_workspace", DEMO / "build_workspace.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(dest)
    return dest


def git(ws: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def demo_ws(tmp_path: Path) -> Path:
    """The demo shop (bug: average price of an empty cart divides by zero) with a committed
    migration, a .gitignore'd .env holding a secret, and a clean `git status`."""
    ws = _build_demo(tmp_path / "shop")
    (ws / "migrations").mkdir()
    (ws / "migrations" / "0001_initial.py").write_text("# create table cart\nOPERATIONS = ['create cart']\n")
    (ws / ".gitignore").write_text(".env\n__pycache__/\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "Add migrations and gitignore")
    (ws / ".env").write_text(f"SECRET_KEY={ENV_SECRET}\n")
    assert status(ws) == ""
    return ws


def status(ws: Path) -> str:
    return git(ws, "status", "--porcelain")


@pytest.fixture
def demo_event() -> ErrorEvent:
    return load_event_file(DEMO / "event.json")


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "anthropic_api_key": ANTHROPIC_KEY,
        "github_token": GITHUB_TOKEN,
        "sentry_auth_token": SENTRY_TOKEN,
        "test_command": TEST_COMMAND,
        "test_timeout": 120,
        "llm_max_retries": 3,
        "llm_timeout": 30,
    }
    values.update(overrides)
    return Settings(**values)


def run_cli(args: list[str], env_extra: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`sentry-autofix …` as a subprocess, with fake credentials in its environment."""
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "SENTRY_AUTH_TOKEN": SENTRY_TOKEN,
        "SENTRY_ORG": "acme",
        **env_extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "sentry_autofix", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )
