"""Dispatcher + GitHub client against the loopback GitHub fake: retries, backoff, App auth."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from relay_fake_github import FakeGitHub, FakeGitHubState
from relay_helpers import REPOS, TOKEN, relay_settings

from sentry_autofix.delivery.github import GitHubAppAuth, GitHubTrigger, StaticToken, build_trigger
from sentry_autofix.errors import ConfigError
from sentry_autofix.relay.dispatcher import Dispatcher, backoff
from sentry_autofix.relay.store import Limits, NewDispatch, SQLiteStore

LIMITS = Limits(3600, 5, 86400)
PAYLOAD = {"issue_id": "1234567890", "short_id": "PYTHON-Y", "project": "python", "org": "example-org"}


class Clock:
    """A settable clock, so backoff can be stepped through without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _client(fake: FakeGitHub, token: str = TOKEN, clock: Any = time.time) -> GitHubTrigger:
    return GitHubTrigger(StaticToken(token), api_url=fake.url, clock=clock)


def _enqueue(store: SQLiteStore, now: float, issue: str = "1234567890", repo: str = "acme/python-app") -> None:
    item = NewDispatch(issue, "fix", repo, "sentry-issue", {**PAYLOAD, "issue_id": issue})
    assert store.enqueue(item, now=now, limits=LIMITS).status == "queued"


def test_github_dispatcher__sends_repository_dispatch(fake_github: FakeGitHub) -> None:
    outcome = _client(fake_github).dispatch("acme/python-app", "sentry-issue", PAYLOAD)
    assert (outcome.ok, outcome.status) == (True, 204)
    assert fake_github.state.dispatches[0]["client_payload"] == PAYLOAD
    assert fake_github.state.dispatches[0]["event_type"] == "sentry-issue"


@pytest.mark.parametrize(
    ("status", "message", "headers", "retry", "wait", "limited"),
    [
        (500, "Server Error", {}, True, None, False),
        (502, "Bad Gateway", {}, True, None, False),
        (429, "Too Many Requests", {"retry-after": "30"}, True, 30.0, True),
        (429, "Too Many Requests", {}, True, None, True),
        (403, "You have exceeded a secondary rate limit.", {"retry-after": "60"}, True, 60.0, True),
        (403, "You have exceeded a secondary rate limit.", {}, True, None, True),
        (
            403,
            "API rate limit exceeded",
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000120"},
            True,
            120.0,
            True,
        ),
        (403, "Resource not accessible by integration", {}, True, None, False),
        (422, "Invalid request.", {}, False, None, False),
    ],
)
def test_github_dispatcher__classifies_refusals(
    fake_github: FakeGitHub,
    status: int,
    message: str,
    headers: dict[str, str],
    retry: bool,
    wait: float | None,
    limited: bool,
) -> None:
    fake_github.state.fail_next(1, status, message, headers)
    outcome = _client(fake_github, clock=Clock(1_000_000.0)).dispatch("acme/python-app", "sentry-issue", PAYLOAD)
    assert (outcome.ok, outcome.retry, outcome.status, outcome.retry_after) == (False, retry, status, wait)
    assert outcome.rate_limited is limited
    assert message in outcome.detail


def test_github_dispatcher__bad_token_and_unknown_repo_are_retried_and_explained(
    fake_github: FakeGitHub,
) -> None:
    bad = _client(fake_github, token="wrong").dispatch("acme/python-app", "sentry-issue", PAYLOAD)
    assert (bad.status, bad.retry) == (401, True)
    assert "GITHUB_TOKEN" in bad.detail
    missing = _client(fake_github).dispatch("acme/gone", "sentry-issue", PAYLOAD)
    assert (missing.status, missing.retry) == (404, True)
    assert "acme/gone" in missing.detail


def test_github_dispatcher__unreachable_github_is_retryable() -> None:
    outcome = GitHubTrigger(StaticToken(TOKEN), api_url="http://127.0.0.1:9", timeout=2).dispatch(
        "acme/python-app", "sentry-issue", PAYLOAD
    )
    assert (outcome.ok, outcome.retry, outcome.status) == (False, True, None)


def test_backoff__grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff(1, base=1, cap=300, rng=lambda: 1.0) == 1.0
    assert backoff(4, base=1, cap=300, rng=lambda: 1.0) == 8.0
    assert backoff(4, base=1, cap=300, rng=lambda: 0.0) == 4.0
    assert backoff(30, base=1, cap=300, rng=lambda: 1.0) == 300.0


def test_dispatcher__github_failing_for_a_while_then_the_dispatch_arrives(
    fake_github: FakeGitHub, store: SQLiteStore
) -> None:
    clock = Clock()
    fake_github.state.fail_next(3, 503, "Service Unavailable")
    fake_github.state.fail_next(1, 429, "Too Many Requests", {"retry-after": "90"})
    dispatcher = Dispatcher(store, _client(fake_github, clock=clock), clock=clock, backoff_base=1, backoff_cap=60)
    _enqueue(store, clock.now)
    for _ in range(40):
        dispatcher.run_once()
        if fake_github.state.dispatches:
            break
        due = store.next_due()
        assert due is not None
        assert due > clock.now  # waits instead of hammering GitHub
        clock.now = due
    assert len(fake_github.state.dispatches) == 1
    counters = dispatcher.counters.snapshot()
    assert counters == {"dispatch_paused": 1, "dispatch_retried": 4, "dispatched": 1}
    assert store.stats(now=clock.now)["sent"] == 1
    # retry-after 90 s was honoured before the fifth attempt
    assert clock.now - 1_000_000.0 >= 90


def test_dispatcher__gives_up_after_max_retry_age_and_on_422(fake_github: FakeGitHub, store: SQLiteStore) -> None:
    clock = Clock()
    fake_github.state.fail_next(100, 500)
    dispatcher = Dispatcher(store, _client(fake_github, clock=clock), clock=clock, max_retry_age=600)
    _enqueue(store, clock.now)
    while store.stats(now=clock.now)["pending"]:
        dispatcher.run_once()
        clock.now = max(clock.now, store.next_due() or clock.now) + 0.001
    assert store.stats(now=clock.now)["failed"] == 1
    assert clock.now - 1_000_000.0 > 600
    fake_github.state.failures.clear()
    fake_github.state.fail_next(1, 422, "Invalid request.")
    _enqueue(store, clock.now, issue="2")
    dispatcher.run_once()
    assert store.stats(now=clock.now)["failed"] == 2
    assert dispatcher.counters.snapshot()["dispatch_failed"] == 2


def test_dispatcher__thread_sends_soon_after_wake_and_respects_the_rate_cap(
    fake_github: FakeGitHub, store: SQLiteStore
) -> None:
    dispatcher = Dispatcher(store, _client(fake_github), poll_interval=5.0, rate=20.0, burst=2)
    dispatcher.start()
    try:
        started = time.monotonic()
        for i in range(6):
            _enqueue(store, time.time(), issue=str(100 + i))
        dispatcher.wake()
        got = fake_github.wait_for_dispatches(6, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        dispatcher.stop()
    assert len(got) == 6
    assert elapsed < 4.0  # woken, not waiting for the 5 s poll
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(got)]
    # a burst of 2, then 20/s → the later ones ≥ 50 ms apart (timer slack allowed)
    assert min(gaps[2:]) >= 0.04
    assert got[-1]["at"] - got[0]["at"] >= 0.18


def test_dispatcher__burst_goes_out_at_once(fake_github: FakeGitHub, store: SQLiteStore) -> None:
    dispatcher = Dispatcher(store, _client(fake_github), rate=0.1, burst=5)
    for i in range(5):
        _enqueue(store, time.time(), issue=str(200 + i))
    started = time.monotonic()
    assert dispatcher.run_once() == 5
    assert time.monotonic() - started < 3.0  # at 0.1/s without the burst this would take 40 s
    assert len(fake_github.state.dispatches) == 5


# --- GitHub App auth ------------------------------------------------------------------------------------


@pytest.fixture
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def app_github(app_key: rsa.RSAPrivateKey) -> Any:
    state = FakeGitHubState(repos=set(REPOS), app_id="12345", app_public_key=app_key.public_key())
    with FakeGitHub(state) as fake:
        yield fake


def test_github_app_auth__installation_token_is_fetched_cached_and_refreshed(
    app_github: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    auth = GitHubAppAuth("12345", _pem(app_key), api_url=app_github.url, session=requests.Session())
    client = GitHubTrigger(auth, api_url=app_github.url)
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).ok
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).ok
    assert app_github.state.issued_tokens == ["ghs_fake0001"]  # cached for its hour
    assert ("GET", "/repos/acme/python-app/installation") in app_github.state.requests
    # A token within 5 minutes of its expiry is replaced before use.
    app_github.state.installation_token_ttl = 200
    auth.invalidate("acme/python-app")
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).ok
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).ok
    assert app_github.state.issued_tokens == ["ghs_fake0001", "ghs_fake0002", "ghs_fake0003"]


def test_github_app_auth__revoked_token_is_replaced_after_a_401(
    app_github: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    auth = GitHubAppAuth("12345", _pem(app_key), api_url=app_github.url, session=requests.Session())
    client = GitHubTrigger(auth, api_url=app_github.url)
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).ok
    app_github.state.tokens.clear()  # GitHub revoked it
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).status == 401
    assert client.dispatch("acme/python-app", "sentry-issue", PAYLOAD).ok
    assert len(app_github.state.issued_tokens) == 2


def test_github_app_auth__app_not_installed_is_retryable_with_advice(
    app_github: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    auth = GitHubAppAuth("12345", _pem(app_key), api_url=app_github.url, session=requests.Session())
    outcome = GitHubTrigger(auth, api_url=app_github.url).dispatch("other/repo", "sentry-issue", PAYLOAD)
    assert (outcome.ok, outcome.retry) == (False, True)
    assert "not installed on other/repo" in outcome.detail


def test_github_app_auth__key_from_a_file_path_and_flattened_newlines(
    app_github: FakeGitHub, app_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem_file = tmp_path / "app.pem"
    pem_file.write_text(_pem(app_key))
    for key in (str(pem_file), _pem(app_key).replace("\n", "\\n")):
        auth = GitHubAppAuth("12345", key, api_url=app_github.url, session=requests.Session())
        assert GitHubTrigger(auth, api_url=app_github.url).dispatch("acme/errors", "e", PAYLOAD).ok


def test_build_trigger__refuses_missing_or_half_configured_credentials() -> None:
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        build_trigger(relay_settings(github_token=None))
    with pytest.raises(ConfigError, match="GITHUB_APP_PRIVATE_KEY"):
        build_trigger(relay_settings(github_app_id="1"))
    with pytest.raises(ConfigError, match="GITHUB_APP_PRIVATE_KEY"):
        build_trigger(relay_settings(github_app_id="1", github_app_private_key="-----BEGIN PRIVATE KEY-----\nnope\n"))
