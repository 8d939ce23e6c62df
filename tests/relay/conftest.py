"""Fixtures for the relay tests; helpers in relay_helpers.py, the GitHub fake in relay_fake_github.py,
the throwaway PostgreSQL server in relay_postgres.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relay_fake_github import FakeGitHub, FakeGitHubState
from relay_helpers import REPOS, TOKEN, Hooks, relay_settings
from relay_postgres import PostgresServer, find_bindir, unavailable

from sentry_autofix.relay.config import RelayConfig, build_relay_config
from sentry_autofix.relay.store import OutboxStore, SQLiteStore
from sentry_autofix.relay.store import open_store as open_store_for


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install '.[relay]')")
    bindir = find_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        unavailable("no PostgreSQL server binaries (apt-get install postgresql, or set SENTRY_AUTOFIX_TEST_PG_BINDIR)")
    assert bindir is not None
    server = PostgresServer(bindir)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server; its URL."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each OutboxStore implementation in turn (SENTRY_AUTOFIX_RELAY_DB): a file, or a fresh database."""
    if request.param == "sqlite":
        return str(tmp_path / "outbox.sqlite3")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def open_store(store_target: str) -> Iterator[Callable[[], OutboxStore]]:
    """Opens a handle on the test's store; call it again for another worker or replica on the same one."""
    opened: list[OutboxStore] = []

    def open_one() -> OutboxStore:
        opened.append(open_store_for(store_target))
        return opened[-1]

    yield open_one
    for s in opened:
        s.close()


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeGitHubState(tokens={TOKEN}, repos=set(REPOS))) as fake:
        yield fake
