"""Shared test setup: real vendor fixtures from ../shared/fixtures, and a scrubbed environment."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.workspace.sandbox import homes

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = Path(os.environ.get("SENTRY_AUTOFIX_SHARED_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Read before the autouse fixture scrubs SENTRY_AUTOFIX_*: this project's GitHub-hosted CI has no
# ../shared folder beside the checkout and says so explicitly; everywhere else CI=true requires it.
FIXTURES_OPTIONAL = os.environ.get("SENTRY_AUTOFIX_FIXTURES_OPTIONAL") == "1"
# The sandbox gives tests their own /tmp and hides HOME: a checkout there (and its .venv, whose
# python the demo tests run) would vanish inside it. It is then shown read-only, as a toolchain is.
VENV_HIDDEN_IN_SANDBOX = any(
    Path(sys.prefix).resolve().is_relative_to(Path(p).resolve())
    for p in ("/tmp", "/var/tmp", "/dev/shm", *homes(os.environ))
    if Path(p).exists()
)
INTERPRETER_EXPOSE: tuple[str, ...] = (sys.prefix,) if VENV_HIDDEN_IN_SANDBOX else ()
"""For sandboxes built directly (not from settings): this interpreter, where the sandbox hides it."""

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
    if VENV_HIDDEN_IN_SANDBOX:
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
