"""Several dispatchers sharing one store (SQLite, and PostgreSQL on a real server), as the workers of
one relay or the replicas of a deployment do, against the loopback GitHub fake: each accepted
webhook dispatched exactly once with GitHub slow, one burst and one rate for all of them, one pause
for all of them after a rate-limit answer; and a failing store met with backoff, not a hot loop."""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relay_fake_github import FakeGitHub
from relay_helpers import TOKEN

from sentry_autofix.delivery import DispatchOutcome
from sentry_autofix.delivery.github import GitHubTrigger, StaticToken
from sentry_autofix.relay.dispatcher import Dispatcher
from sentry_autofix.relay.store import Limits, NewDispatch, OutboxStore, SQLiteStore

LIMITS = Limits(3600, 5, 86400)
OpenStore = Callable[[], OutboxStore]


def _fill(store: OutboxStore, n: int, *, first: int = 5000) -> list[str]:
    issues = [str(first + i) for i in range(n)]
    for issue in issues:
        item = NewDispatch(issue, "fix", "acme/python-app", "sentry-issue", {"issue_id": issue})
        assert store.enqueue(item, now=time.time(), limits=LIMITS).status == "queued"
    return issues


def _client(fake: FakeGitHub) -> GitHubTrigger:
    return GitHubTrigger(StaticToken(TOKEN), api_url=fake.url, timeout=10)


class Workers:
    """N dispatcher threads, each on its own handle of the same store (own connections)."""

    def __init__(self, open_store: OpenStore, fake: FakeGitHub, n: int, **options: Any) -> None:
        self.dispatchers = [
            Dispatcher(open_store(), _client(fake), poll_interval=0.05, backoff_base=0.2, **options) for _ in range(n)
        ]

    def __enter__(self) -> Workers:
        for d in self.dispatchers:
            d.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for d in self.dispatchers:
            d.stop(timeout=15)


def _issues_sent(fake: FakeGitHub) -> collections.Counter[str]:
    return collections.Counter(d["client_payload"]["issue_id"] for d in fake.state.dispatches)


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_dispatchers__each_row_once_when_github_outlasts_the_lease(
    open_store: OpenStore, fake_github: FakeGitHub
) -> None:
    """The double-dispatch defect, scaled down: batches of 10 at 0.12 s per GitHub answer outlast a
    0.6 s lease, so other workers re-claim their tail. Before the fix those rows went out twice."""
    issues = _fill(open_store(), 45)
    fake_github.state.delay = 0.12
    with Workers(open_store, fake_github, 3, lease=0.6, batch=10):
        assert _wait(lambda: len(fake_github.state.dispatches) >= 45, timeout=40)
        time.sleep(0.8)  # a late second copy would arrive now
    sent = _issues_sent(fake_github)
    assert sorted(sent) == sorted(issues)
    assert [issue for issue, n in sent.items() if n > 1] == []


def test_dispatchers__share_one_burst_and_one_rate(open_store: OpenStore, fake_github: FakeGitHub) -> None:
    """DISPATCH_BURST=5, DISPATCH_RATE=4/s with three workers: 5 at once, then about 4 a second in
    all (the issue measured 84 in the first second with 4 workers and a burst of 20)."""
    _fill(open_store(), 30)
    with Workers(open_store, fake_github, 3, rate=4.0, burst=5):
        started = time.time()
        time.sleep(1.6)
    at = [d["at"] - started for d in fake_github.state.dispatches]
    assert len(at) >= 5
    assert len([t for t in at if t < 0.5]) <= 5 + 2  # the burst, plus 0.5 s of refill
    assert len([t for t in at if t < 1.5]) <= 5 + 6  # and 4/s after it, across all three
    assert _issues_sent(fake_github).most_common(1)[0][1] == 1


@pytest.mark.parametrize(
    ("status", "message", "headers"),
    [
        (429, "Too Many Requests", {"retry-after": "2"}),
        (403, "API rate limit exceeded", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "+2"}),
    ],
)
def test_dispatchers__all_pause_after_a_rate_limit_answer(
    open_store: OpenStore, fake_github: FakeGitHub, status: int, message: str, headers: dict[str, str]
) -> None:
    """One worker hears "rate limited, retry in 2 s": nobody sends until then (the issue counted
    63-99 requests in 45 s after a `429 retry-after: 60`); then everything goes out, once."""
    if headers.get("x-ratelimit-reset") == "+2":
        headers = {**headers, "x-ratelimit-reset": str(int(time.time()) + 2)}
    issues = _fill(open_store(), 12)
    fake_github.state.delay = 0.05
    fake_github.state.fail_next(1, status, message, headers)
    with Workers(open_store, fake_github, 3):
        assert _wait(lambda: len(fake_github.state.dispatches) >= 12, timeout=20)
    attempts = fake_github.state.attempts
    refused_at = next(t for t, s in attempts if s == status)
    during = [t for t, _ in attempts if refused_at < t < refused_at + 1.0]
    # Each other worker may still have one request on the wire and one that passed its `hold` just
    # before the pause was committed: at most 2 × 2. Without the shared pause, the other 11 rows
    # all went out inside this second.
    assert len(during) <= 4, during
    assert sorted(_issues_sent(fake_github)) == sorted(issues)
    assert max(_issues_sent(fake_github).values()) == 1


class ScriptedClient:
    """A DispatchClient answering from a list (then 204s), counting calls."""

    def __init__(self, outcomes: list[DispatchOutcome]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    def dispatch(self, repo: str, event_type: str, client_payload: dict[str, Any]) -> DispatchOutcome:
        self.calls += 1
        return self.outcomes.pop(0) if self.outcomes else DispatchOutcome(True, False, 204, "dispatched")


def test_dispatcher__secondary_limit_without_retry_after_pauses_a_minute_then_longer(store: SQLiteStore) -> None:
    """GitHub: without retry-after, wait at least one minute, and longer when it repeats."""
    limited = DispatchOutcome(False, True, 403, "403 You have exceeded a secondary rate limit", None, True)
    client = ScriptedClient([limited, limited])
    now = [1000.0]
    dispatcher = Dispatcher(store, client, clock=lambda: now[0])
    _fill(store, 1)
    now[0] = time.time() + 1
    dispatcher.run_once()
    assert store.stats(now=now[0])["dispatch_paused_s"] == pytest.approx(60, abs=0.2)
    now[0] += 60
    dispatcher.run_once()
    assert store.stats(now=now[0])["dispatch_paused_s"] == pytest.approx(120, abs=0.2)
    now[0] += 120
    assert store.claim(now=now[0], limit=5, lease=5).rows  # due again once the pause is over


class BrokenStore:
    """A real SQLiteStore whose calls fail like a full disk while `broken` is set."""

    def __init__(self, inner: SQLiteStore, fail: set[str]) -> None:
        self.inner = inner
        self.fail = fail
        self.broken = False
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if self.broken and name in self.fail:
                raise sqlite3.OperationalError("database or disk is full")
            return target(*args, **kwargs)

        return call


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[BrokenStore]:
    inner = SQLiteStore(tmp_path / "o.sqlite3")
    yield BrokenStore(inner, {"claim", "hold", "release", "mark_sent", "mark_retry", "prune", "next_due", "pause"})
    inner.close()


def test_dispatcher__a_failing_store_is_retried_with_backoff_and_logged_boundedly(
    broken: BrokenStore, fake_github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    """The hot loop defect: disk full and a row due gave 24,212 tracebacks in 5 s at 100 % CPU."""
    _fill(broken.inner, 1)
    broken.broken = True
    dispatcher = Dispatcher(broken, _client(fake_github), poll_interval=0.05)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="sentry_autofix.relay")
    dispatcher.start()
    try:
        time.sleep(1.5)
        failed_claims = broken.calls["claim"]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert 2 <= failed_claims <= 12  # 0.1 s doubling: ~5 tries in 1.5 s, not thousands
        assert len(errors) == 1
        assert errors[0].exc_info is not None  # the first one carries the traceback
        broken.broken = False
        assert fake_github.wait_for_dispatches(1, timeout=10)
    finally:
        dispatcher.stop()
    assert any(getattr(r, "fields", {}).get("event") == "dispatcher.store_error.recovered" for r in caplog.records)


def test_dispatcher__sent_while_the_store_fails_is_recorded_later_not_sent_again(
    broken: BrokenStore, fake_github: FakeGitHub
) -> None:
    _fill(broken.inner, 1)
    broken.fail = {"mark_sent"}
    broken.broken = True
    dispatcher = Dispatcher(broken, _client(fake_github), lease=0.5)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError):
        dispatcher.run_once()  # GitHub took it; recording failed
    assert len(fake_github.state.dispatches) == 1
    broken.broken = False
    time.sleep(0.6)  # the lease has run out meanwhile
    dispatcher.run_once()
    assert broken.inner.stats(now=time.time())["sent"] == 1
    assert len(fake_github.state.dispatches) == 1


def test_dispatcher__stop_hands_claimed_rows_back(open_store: OpenStore, fake_github: FakeGitHub) -> None:
    store = open_store()
    _fill(store, 5)
    fake_github.state.delay = 0.2
    dispatcher = Dispatcher(store, _client(fake_github), poll_interval=0.05)
    dispatcher.start()
    assert _wait(lambda: len(fake_github.state.attempts) >= 1, timeout=10)
    threading.Thread(target=dispatcher.stop).start()
    assert _wait(lambda: dispatcher._thread is None, timeout=10)
    sent = len(fake_github.state.dispatches)
    rows = store.claim(now=time.time(), limit=10, lease=5).rows
    assert len(rows) == 5 - sent  # due at once, not after the 60 s lease
    assert {r.attempts for r in rows} == {1}
