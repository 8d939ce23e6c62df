"""End to end: `sentry-autofix relay serve` as a real subprocess, fed Sentry's published webhook
bodies over HTTP, dispatching to the loopback GitHub fake. Includes SIGKILL + restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from relay_fake_github import FakeGitHub, FakeGitHubState
from relay_helpers import REPOS, ROUTES, SECRET, TOKEN, Hooks, headers_for

pytestmark = pytest.mark.conformance


class RelayProcess:
    """`python -m sentry_autofix relay serve --port 0`, its JSON log lines collected from stderr."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentry_autofix",
                "relay",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "relay.started":
                self.url = f"http://127.0.0.1:{entry['port']}"
                self._ready.set()

    def wait_ready(self, timeout: float = 20.0) -> RelayProcess:
        if not self._ready.wait(timeout):
            self.proc.kill()
            raise AssertionError("relay did not start:\n" + "".join(self.lines))
        return self

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == name:
                out.append(entry)
        return out

    def post(self, body: bytes, resource: str, **kw: Any) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/sentry", data=body, headers=headers_for(body, resource), **kw)

    def close(self) -> None:
        """Kill if still running, then reap the reader and the pipe (no ResourceWarning)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def _env(db: Path, api_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SENTRY_"))}
    env.update(
        {
            "SENTRY_WEBHOOK_SECRET": SECRET,
            "SENTRY_AUTOFIX_ROUTES": ROUTES,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": api_url,
            "SENTRY_AUTOFIX_RELAY_DB": str(db),
            "SENTRY_AUTOFIX_RELAY_DISPATCH_RATE": "50",
            "SENTRY_AUTOFIX_RELAY_RETRY_BASE": "0.2",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeGitHubState(tokens={TOKEN}, repos=set(REPOS))) as fake:
        yield fake


@pytest.fixture
def relays() -> Iterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        relay.close()


def _start(relays: list[RelayProcess], env: dict[str, str], *extra: str) -> RelayProcess:
    relay = RelayProcess(env, *extra)
    relays.append(relay)
    return relay.wait_ready()


def test_serve__real_fixtures_end_to_end(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url))
    answers = {
        name: relay.post(hooks.bytes(name), resource)
        for name, resource in [
            ("issue.created.json", "issue"),
            ("event_alert.triggered.json", "event_alert"),
            ("error.created.json", "error"),
            ("comment.created.json", "comment"),
            ("installation.created.json", "installation"),
            ("metric_alert.resolved.json", "metric_alert"),
        ]
    }
    assert {n: r.status_code for n, r in answers.items()} == {
        "issue.created.json": 202,
        "event_alert.triggered.json": 202,
        "error.created.json": 202,
        "comment.created.json": 200,
        "installation.created.json": 200,
        "metric_alert.resolved.json": 200,
    }
    forged = hooks.bytes("issue.created.json").replace(b"PYTHON-Y", b"PYTHON-Z")
    forged_answer = requests.post(
        f"{relay.url}/webhooks/sentry",
        data=forged,
        headers=headers_for(hooks.bytes("issue.created.json"), "issue"),
    )
    assert forged_answer.status_code == 401
    got = github.wait_for_dispatches(3)
    assert sorted((d["repo"], d["client_payload"]["issue_id"]) for d in got) == [
        ("acme/front-end", "1117540176"),
        ("acme/front-end", "1170820242"),
        ("acme/python-app", "1234567890"),
    ]
    assert all(d["event_type"] == "sentry-issue" for d in got)
    health = requests.get(f"{relay.url}/health").json()
    assert health["counters"]["received"] == 7
    assert health["counters"]["queued"] == 3
    assert health["counters"]["rejected_401"] == 1
    assert SECRET not in json.dumps(health)
    assert TOKEN not in json.dumps(health)
    assert relay.stop() == 0
    assert relay.events("relay.stopped")
    assert relay.events("webhook.queued")[0]["issue_id"] == "1234567890"
    assert not any(SECRET in line or TOKEN in line for line in relay.lines)


def test_serve__1000_concurrent_duplicates_make_exactly_one_dispatch(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url, SENTRY_AUTOFIX_RELAY_THREADS="16"))
    body = hooks.bytes("event_alert.triggered.json")
    headers = headers_for(body, "event_alert")
    local = threading.local()

    def send(_: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return int(local.session.post(f"{relay.url}/webhooks/sentry", data=body, headers=headers).status_code)

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(send, range(1000)))
    assert statuses.count(202) == 1
    assert statuses.count(200) == 999
    github.wait_for_dispatches(1)
    time.sleep(1.0)  # anything extra would have been sent by now (rate cap 50/s)
    assert len(github.state.dispatches) == 1
    assert requests.get(f"{relay.url}/health").json()["counters"]["duplicate"] == 999


def test_serve__github_failing_for_a_while_then_the_dispatch_arrives(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    github.state.fail_next(2, 502, "Bad Gateway")
    github.state.fail_next(1, 403, "You have exceeded a secondary rate limit.", {"retry-after": "1"})
    github.state.fail_next(1, 500, "Server Error")
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url))
    assert relay.post(hooks.bytes("issue.created.json"), "issue").status_code == 202
    got = github.wait_for_dispatches(1, timeout=30)
    assert len(got) == 1
    assert got[0]["client_payload"]["short_id"] == "PYTHON-Y"
    assert len(relay.events("dispatch.retry")) == 4
    assert requests.get(f"{relay.url}/health").json()["outbox"]["sent"] == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve__sigkill_after_the_ack_then_restart_delivers(
    hooks: Hooks, relays: list[RelayProcess], tmp_path: Path
) -> None:
    port = _closed_port()  # GitHub is down: nothing listens there yet
    db = tmp_path / "o.sqlite3"
    env = _env(db, f"http://127.0.0.1:{port}")
    first = _start(relays, env)
    for name, resource in [("issue.created.json", "issue"), ("error.created.json", "error")]:
        assert first.post(hooks.bytes(name), resource).status_code == 202
    deadline = time.monotonic() + 10
    while not first.events("dispatch.retry") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.events("dispatch.retry"), "the relay should have tried GitHub and failed"
    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(10) == -signal.SIGKILL

    with FakeGitHub(FakeGitHubState(tokens={TOKEN}, repos=set(REPOS)), port=port) as github:
        second = _start(relays, env)
        got = github.wait_for_dispatches(2, timeout=30)
        assert sorted(d["client_payload"]["issue_id"] for d in got) == ["1170820242", "1234567890"]
        # the restarted relay still remembers them for dedup
        assert second.post(hooks.bytes("issue.created.json"), "issue").json()["status"] == "duplicate"
        assert second.stop() == 0


def test_serve__bad_configuration_exits_2_naming_the_setting(tmp_path: Path) -> None:
    env = _env(tmp_path / "o.sqlite3", "http://127.0.0.1:9")
    del env["SENTRY_WEBHOOK_SECRET"]
    proc = subprocess.run(
        [sys.executable, "-m", "sentry_autofix", "relay", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "SENTRY_WEBHOOK_SECRET" in proc.stderr


def test_serve__gunicorn_workers_share_the_outbox(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    pytest.importorskip("gunicorn")
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url), "--server", "gunicorn", "--workers", "2")
    body = hooks.bytes("issue.created.json")

    def send(_: int) -> int:
        return int(relay.post(body, "issue").status_code)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(send, range(200)))
    assert statuses.count(202) == 1
    assert statuses.count(200) == 199
    assert relay.post(hooks.bytes("error.created.json"), "error").status_code == 202
    got = github.wait_for_dispatches(2)
    time.sleep(0.5)
    assert sorted(d["client_payload"]["issue_id"] for d in github.state.dispatches) == [
        "1170820242",
        "1234567890",
    ]
    assert len(got) == 2
    assert relay.stop() == 0
    relay._reader.join(5)
    # gunicorn's own log lines format `[%(process)d]`: our logging setup must not break them.
    assert not [line for line in relay.lines if "Logging error" in line]


def test_serve__answers_within_sentrys_second_while_github_hangs(
    hooks: Hooks, relays: list[RelayProcess], tmp_path: Path
) -> None:
    # A GitHub that accepts connections and never answers: the dispatcher hangs on it, webhooks must not.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        relay = _start(relays, _env(tmp_path / "o.sqlite3", f"http://127.0.0.1:{black_hole.getsockname()[1]}"))
        timings = []
        for name, resource in [
            ("issue.created.json", "issue"),
            ("event_alert.triggered.json", "event_alert"),
            ("error.created.json", "error"),
        ]:
            started = time.monotonic()
            assert relay.post(hooks.bytes(name), resource, timeout=5).status_code == 202
            timings.append(time.monotonic() - started)
        assert max(timings) < 0.5
        assert requests.get(f"{relay.url}/health", timeout=5).json()["outbox"]["pending"] == 3
