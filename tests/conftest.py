"""Shared test setup: real vendor fixtures from ../shared/fixtures, and a scrubbed environment."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = Path(os.environ.get("SENTRY_AUTOFIX_SHARED_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Read before the autouse fixture scrubs SENTRY_AUTOFIX_*: this project's GitHub-hosted CI has no
# ../shared folder beside the checkout and says so explicitly; everywhere else CI=true requires it.
FIXTURES_OPTIONAL = os.environ.get("SENTRY_AUTOFIX_FIXTURES_OPTIONAL") == "1"
VENV_IN_PRIVATE_TMP = any(
    Path(sys.prefix).resolve().is_relative_to(p) for p in ("/tmp", "/var/tmp", "/dev/shm") if Path(p).exists()
)
INTERPRETER_EXPOSE: tuple[str, ...] = (sys.prefix,) if VENV_IN_PRIVATE_TMP else ()
"""For sandboxes built directly (not from settings): this interpreter, when /tmp would hide it."""

# Tests must never see real credentials: they would leak into fakes, logs or subprocesses.
SECRET_ENV = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "SENTRY_AUTH_TOKEN",
    "SENTRY_ORG",
    "SENTRY_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "SLACK_WEBHOOK_URL",
    "SLACK_BOT_TOKEN",
    "DISCORD_WEBHOOK_URL",
    "SENTRY_WEBHOOK_SECRET",
    "GITHUB_APP_PRIVATE_KEY",
)


@pytest.fixture(autouse=True)
def _scrubbed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        # AWS_/DD_/ROLLBAR_: the CloudWatch, Datadog and Rollbar sources must never see real credentials.
        if name in SECRET_ENV or name.startswith(
            ("ACTIONS_", "GITHUB_", "SENTRY_AUTOFIX_", "INPUT_", "AWS_", "DD_", "ROLLBAR_")
        ):
            monkeypatch.delenv(name, raising=False)
    if VENV_IN_PRIVATE_TMP:
        # The sandbox gives tests their own /tmp: a checkout there (and its .venv, whose python the
        # demo tests run) would vanish inside it. Shown read-only, as a user's toolchain would be.
        monkeypatch.setenv("SENTRY_AUTOFIX_SANDBOX_EXPOSE", sys.prefix)


def forwarded_env() -> dict[str, str]:
    """What a CLI subprocess built with a clean environment must still get from ours."""
    return {k: os.environ[k] for k in ("SENTRY_AUTOFIX_SANDBOX_EXPOSE",) if k in os.environ}


def shared_fixture_dir() -> Path:
    """The shared fixture folder; skip (or, under CI=true, fail) when it is absent."""
    if not SHARED_FIXTURES.is_dir():
        reason = f"shared fixtures not found at {SHARED_FIXTURES} (expected ../shared/fixtures beside the checkout)"
        if os.environ.get("CI") == "true" and not FIXTURES_OPTIONAL:
            pytest.fail(reason + "; CI must run the conformance tests")
        pytest.skip(reason)
    return SHARED_FIXTURES


@pytest.fixture
def shared_fixtures() -> Path:
    return shared_fixture_dir()


def load_shared(relative: str) -> Any:
    return json.loads((shared_fixture_dir() / relative).read_text(encoding="utf-8"))
