"""Fixtures for the relay tests; helpers in relay_helpers.py, the GitHub fake in relay_fake_github.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relay_fake_github import FakeGitHub, FakeGitHubState
from relay_helpers import REPOS, TOKEN, Hooks, relay_settings

from sentry_autofix.relay.config import RelayConfig, build_relay_config
from sentry_autofix.relay.store import SQLiteStore


@pytest.fixture
def hooks(shared_fixtures: Path) -> Hooks:
    return Hooks(shared_fixtures / "sentry" / "webhooks")


@pytest.fixture
def make_config() -> Callable[..., RelayConfig]:
    def make(**overrides: Any) -> RelayConfig:
        return build_relay_config(relay_settings(**overrides))

    return make


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "outbox.sqlite3")
    yield s
    s.close()


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeGitHubState(tokens={TOKEN}, repos=set(REPOS))) as fake:
        yield fake
