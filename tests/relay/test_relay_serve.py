"""End to end: `sentry-autofix relay serve` as a real subprocess, fed Sentry's published webhook
bodies over HTTP, dispatching to the loopback GitHub fake. Includes SIGKILL + restart."""

from __future__ import annotations

import json
import os
import re
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
from relay_helpers import REPOS, ROUTES, SECRET, TOKEN, Hooks, compact, fresh, headers_for
from tests.fakes.gitlab_api import FakeGitLab

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
            start_new_session=True,  # its own process group: the supervisor and its workers
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

    def kill_all(self) -> None:
        """SIGKILL to the relay and its worker processes at once, as when a container is killed."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Kill if still running, then reap the reader and the pipe (no ResourceWarning)."""
        self.kill_all()
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
            # Sentry's published bodies are years old; the replay bound has its own tests.
            "SENTRY_AUTOFIX_RELAY_REPLAY_WINDOW": "0",
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
    # One worker process: /health's counters are per process.
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url, SENTRY_AUTOFIX_RELAY_WORKERS="1"))
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
    relay = _start(
        relays,
        _env(tmp_path / "o.sqlite3", github.url, SENTRY_AUTOFIX_RELAY_THREADS="16", SENTRY_AUTOFIX_RELAY_WORKERS="1"),
    )
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
    first.kill_all()
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
    # Transfer-Encoding: chunked (requests sends a generator that way): gunicorn gives no
    # CONTENT_LENGTH, and the relay used to verify an empty body (401).
    alert = hooks.bytes("event_alert.triggered.json")
    chunked = requests.post(
        f"{relay.url}/webhooks/sentry", data=iter([alert[:100], alert[100:]]), headers=headers_for(alert, "event_alert")
    )
    assert chunked.status_code == 202, chunked.text
    got = github.wait_for_dispatches(3)
    time.sleep(0.5)
    assert sorted(d["client_payload"]["issue_id"] for d in github.state.dispatches) == [
        "1117540176",
        "1170820242",
        "1234567890",
    ]
    assert len(got) == 3
    assert relay.stop() == 0
    relay._reader.join(5)
    # gunicorn's own log lines format `[%(process)d]`: our logging setup must not break them.
    assert not [line for line in relay.lines if "Logging error" in line]
    assert relay.events("relay.stopped"), "gunicorn mode never logged relay.stopped"


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


def test_serve__waitress_reads_chunked_bodies_and_refuses_oversized_ones(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url, SENTRY_AUTOFIX_RELAY_MAX_BODY="4096"))
    body = hooks.bytes("issue.created.json")
    answer = requests.post(
        f"{relay.url}/webhooks/sentry", data=iter([body[:10], body[10:]]), headers=headers_for(body, "issue"), timeout=5
    )
    assert answer.status_code == 202, answer.text
    huge = body + b" " * 10_000
    refused = requests.post(
        f"{relay.url}/webhooks/sentry",
        data=iter([huge[:5000], huge[5000:]]),
        headers=headers_for(huge, "issue"),
        timeout=5,
    )
    assert refused.status_code == 413


def _dockerfile_env() -> dict[str, str]:
    """The server settings the Docker image runs with (its ENV lines)."""
    text = (Path(__file__).resolve().parents[2] / "examples" / "relay" / "Dockerfile").read_text()
    joined = text.replace("\\\n", " ")
    found = dict(re.findall(r"(SENTRY_AUTOFIX_RELAY_(?:SERVER|WORKERS|THREADS))=(\S+)", joined))
    assert "SENTRY_AUTOFIX_RELAY_SERVER" in found, "the Dockerfile must pin the server"
    return found


class SlowClients:
    """Connections that open a webhook request and send it one byte at a time (slowloris), plus
    connections that connect and say nothing. Bounded: loopback only, closed on exit."""

    def __init__(self, port: int, dribbling: int, idle: int, interval: float = 0.3) -> None:
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._head = b"POST /webhooks/sentry HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        for _ in range(dribbling + idle):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            self._socks.append(s)
        self._dribbling = self._socks[:dribbling]
        self._interval = interval
        self._thread = threading.Thread(target=self._dribble, daemon=True)

    def _dribble(self) -> None:
        position = 0
        while not self._stop.wait(self._interval):
            byte = self._head[position % len(self._head) : position % len(self._head) + 1]
            for s in self._dribbling:
                try:
                    s.send(byte)
                except OSError:
                    pass
            position += 1

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self._socks:
            s.close()


def test_serve__docker_image_settings_answer_within_a_second_under_slow_clients(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    """The starvation defect: with gunicorn's gthread workers (the image's 4 × 1, or 2 × 2), 50
    connections sending headers a byte a second left 0 of 48 webhooks answered within Sentry's 1 s.
    With the image's server, 150 dribbling + 150 idle connections must not delay any of 48."""
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url, **_dockerfile_env()))
    port = int(relay.url.rsplit(":", 1)[1])
    doc = hooks.doc("issue.created.json")
    bodies = []
    for i in range(48):
        doc["data"]["issue"]["id"] = str(9_100_000_000 + i)
        bodies.append(compact(doc))
    with SlowClients(port, dribbling=150, idle=150):
        time.sleep(1.0)  # let the slow ones settle in first

        def send(body: bytes) -> tuple[int, float]:
            started = time.monotonic()
            try:
                answer = requests.post(
                    f"{relay.url}/webhooks/sentry", data=body, headers=headers_for(body, "issue"), timeout=1.0
                )
            except requests.RequestException:
                return 0, time.monotonic() - started
            return answer.status_code, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(send, bodies))
    late = [r for r in results if r[0] != 202]
    assert late == [], f"{len(late)} of 48 not answered 202 within 1 s: {late[:5]}"


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_serve__two_replicas_sharing_a_store_with_slow_github_lose_and_duplicate_nothing(
    hooks: Hooks, relays: list[RelayProcess], tmp_path: Path, request: pytest.FixtureRequest, store_kind: str
) -> None:
    """The soak guarantees, scaled to a test: two relay replicas (two worker processes each) on one
    store, GitHub taking 50 ms per dispatch, 100 distinct webhooks plus a duplicate of each sent to
    either replica: every acknowledged one dispatched exactly once, nothing else."""
    db = str(tmp_path / "o.sqlite3") if store_kind == "sqlite" else request.getfixturevalue("pg_url")
    with FakeGitHub(FakeGitHubState(tokens={TOKEN}, repos=set(REPOS), delay=0.05)) as github:
        env = _env(
            Path(db),
            github.url,
            SENTRY_AUTOFIX_RELAY_DB=db,
            SENTRY_AUTOFIX_RELAY_WORKERS="2",
            SENTRY_AUTOFIX_RELAY_DISPATCH_RATE="200",
            SENTRY_AUTOFIX_RELAY_DISPATCH_BURST="50",
            SENTRY_AUTOFIX_RELAY_REPLAY_WINDOW="3600",
        )
        replicas = [_start(relays, env), _start(relays, env)]
        doc = hooks.doc("issue.created.json")
        bodies = []
        for i in range(100):
            doc["data"]["issue"]["id"] = str(8_200_000_000 + i)
            bodies.append(compact(fresh(doc, time.time())))
        jobs = [(k, body) for k, body in enumerate(bodies)] + [(k + 1, body) for k, body in enumerate(bodies)]
        local = threading.local()

        def send(job: tuple[int, bytes]) -> tuple[str, int]:
            k, body = job
            if not hasattr(local, "session"):
                local.session = requests.Session()
            answer = local.session.post(
                f"{replicas[k % 2].url}/webhooks/sentry", data=body, headers=headers_for(body, "issue"), timeout=10
            )
            return json.loads(body)["data"]["issue"]["id"], answer.status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(send, jobs))
        acked = sorted(issue for issue, status in answers if status == 202)
        assert len(acked) == 100  # one of each pair queued, the other a duplicate
        assert sorted(status for _, status in answers).count(200) == 100
        github.wait_for_dispatches(100, timeout=60)
        time.sleep(1.0)  # a second copy of anything would have arrived by now
        sent = sorted(d["client_payload"]["issue_id"] for d in github.state.dispatches)
    assert sent == acked
    for replica in replicas:
        assert replica.stop() == 0
        assert replica.events("relay.stopped")


def test_serve__a_killed_worker_is_replaced_and_the_relay_keeps_answering(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    relay = _start(relays, _env(tmp_path / "o.sqlite3", github.url, SENTRY_AUTOFIX_RELAY_WORKERS="2"))
    deadline = time.monotonic() + 10
    while len(relay.events("relay.worker_started")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = relay.events("relay.worker_started")[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not relay.events("relay.worker_exited") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay.events("relay.worker_exited")[0]["pid"] == victim
    for name, resource in [("issue.created.json", "issue"), ("error.created.json", "error")]:
        assert relay.post(hooks.bytes(name), resource, timeout=5).status_code == 202
    assert len(github.wait_for_dispatches(2)) == 2
    assert relay.stop() == 0


def test_serve__routes_to_a_gitlab_project_and_github_side_by_side(
    hooks: Hooks, github: FakeGitHub, relays: list[RelayProcess], tmp_path: Path
) -> None:
    """`relay serve` with a GitLab route: the webhook becomes a triggered pipeline, its replay is a
    duplicate, the other project still gets its repository_dispatch; no token in any log line."""
    trigger = "glptt-serve-trigger-token-0123456789"
    gitlab = FakeGitLab(project="acme/python-app", project_id=7, trigger_token=trigger).start()
    try:
        routes = f"python=gitlab:{gitlab.url}#acme/python-app@main,1=acme/front-end"
        env = _env(
            tmp_path / "o.sqlite3",
            github.url,
            SENTRY_AUTOFIX_ROUTES=routes,
            SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN=trigger,
            SENTRY_AUTOFIX_RELAY_WORKERS="1",
        )
        relay = _start(relays, env)
        issue = hooks.bytes("issue.created.json")
        assert relay.post(issue, "issue").status_code == 202
        assert relay.post(issue, "issue").json()["status"] == "duplicate"
        assert relay.post(hooks.bytes("error.created.json"), "error").status_code == 202
        got = github.wait_for_dispatches(1)
        deadline = time.monotonic() + 20
        while not gitlab.pipelines and time.monotonic() < deadline:
            time.sleep(0.05)
        [pipeline] = gitlab.pipelines
        assert pipeline["variables"]["SENTRY_AUTOFIX_ISSUE_ID"] == "1234567890"
        assert [d["repo"] for d in got] == ["acme/front-end"]
        health = requests.get(f"{relay.url}/health").json()
        assert health["config"]["trigger_auth"] == "token+trigger-token"
        assert relay.stop() == 0
        assert not any(trigger in line or TOKEN in line for line in relay.lines)
        assert len(gitlab.pipelines) == 1
    finally:
        gitlab.stop()
