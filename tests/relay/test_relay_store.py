"""The outbox stores (SQLite, and PostgreSQL on a real server): dedup and rate limit decided
atomically with the insert, leases and `hold`, the shared dispatch budget and pause, durability,
failing closed. Every test runs against both implementations of the one Protocol."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sentry_autofix.errors import StoreError
from sentry_autofix.relay.store import Budget, Limits, NewDispatch, OutboxStore, SQLiteStore

LIMITS = Limits(dedup_window=3600, rate_limit=3, rate_window=86400)
OpenStore = Callable[[], OutboxStore]


def _item(issue: str = "100", group: str = "fix") -> NewDispatch:
    return NewDispatch(issue, group, "acme/web", "sentry-issue", {"issue_id": issue}, request_id="r1")


def test_enqueue__duplicate_within_the_window_then_new_after(open_store: OpenStore) -> None:
    store = open_store()
    assert store.enqueue(_item(), now=1000.0, limits=LIMITS).status == "queued"
    assert store.enqueue(_item(), now=1000.0 + 3599, limits=LIMITS).status == "duplicate"
    assert store.enqueue(_item(group="resolved"), now=1001.0, limits=LIMITS).status == "queued"
    assert store.enqueue(_item(), now=1000.0 + 3601, limits=LIMITS).status == "queued"
    assert store.enqueue(_item(issue="101"), now=1002.0, limits=LIMITS).status == "queued"


def test_enqueue__rate_limit_per_issue(open_store: OpenStore) -> None:
    store = open_store()
    limits = Limits(dedup_window=10, rate_limit=2, rate_window=1000)
    assert store.enqueue(_item(), now=0.0, limits=limits).status == "queued"
    assert store.enqueue(_item(), now=20.0, limits=limits).status == "queued"
    assert store.enqueue(_item(), now=40.0, limits=limits).status == "rate-limited"
    assert store.enqueue(_item(), now=1001.0, limits=limits).status == "queued"


def test_enqueue__concurrent_duplicates_on_two_handles_store_exactly_one(open_store: OpenStore) -> None:
    """Two handles stand in for two workers or two replicas; 20 threads × 25 copies of one webhook."""
    handles = [open_store(), open_store()]
    results: list[str] = []
    barrier = threading.Barrier(20)

    def worker(k: int) -> None:
        barrier.wait()
        for _ in range(25):
            results.append(handles[k % 2].enqueue(_item(issue="777"), now=5000.0, limits=LIMITS).status)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 500
    assert results.count("queued") == 1
    assert results.count("duplicate") == 499
    assert handles[0].stats(now=5000.0)["pending"] == 1


def test_claim__leases_rows_and_retry_makes_them_due_later(open_store: OpenStore) -> None:
    store = open_store()
    store.enqueue(_item(issue="1"), now=10.0, limits=LIMITS)
    store.enqueue(_item(issue="2"), now=11.0, limits=LIMITS)
    claimed = store.claim(now=12.0, limit=10, lease=30.0).rows
    assert [(d.issue_id, d.attempts) for d in claimed] == [("1", 1), ("2", 1)]
    assert claimed[0].client_payload == {"issue_id": "1"}
    assert store.claim(now=13.0, limit=10, lease=30.0).rows == []  # leased
    store.mark_sent(claimed[0], now=14.0)
    store.mark_retry(claimed[1], next_attempt_at=100.0, error="503 Service Unavailable")
    assert store.claim(now=50.0, limit=10, lease=30.0).rows == []
    assert store.next_due() == 100.0
    again = store.claim(now=100.0, limit=10, lease=30.0).rows
    assert [(d.issue_id, d.attempts) for d in again] == [("2", 2)]
    store.mark_failed(again[0], now=101.0, error="422")
    stats = store.stats(now=200.0)
    assert (stats["pending"], stats["sent"], stats["failed"], stats["oldest_pending_age_s"]) == (0, 1, 1, None)


def test_claim__an_expired_lease_is_claimed_again(open_store: OpenStore) -> None:
    # A process killed mid-send leaves its lease behind; it runs out and the row is sent again.
    store = open_store()
    store.enqueue(_item(), now=0.0, limits=LIMITS)
    assert len(store.claim(now=1.0, limit=5, lease=10.0).rows) == 1
    assert store.claim(now=5.0, limit=5, lease=10.0).rows == []
    assert len(store.claim(now=11.5, limit=5, lease=10.0).rows) == 1


def test_hold__a_row_reclaimed_after_its_lease_ran_out_is_lost_to_the_first_claimer(open_store: OpenStore) -> None:
    """The double-dispatch defect: a batch outlived its lease and two workers sent the same row.
    Now the first claimer learns before sending that the row is no longer its own."""
    a, b = open_store(), open_store()
    a.enqueue(_item(), now=0.0, limits=LIMITS)
    first = a.claim(now=1.0, limit=5, lease=10.0).rows[0]
    second = b.claim(now=12.0, limit=5, lease=10.0).rows[0]  # a's lease ran out
    assert first.id == second.id
    assert a.hold(first, now=12.5, lease=10.0) == "lost"
    assert b.hold(second, now=12.5, lease=10.0) == "send"
    a.mark_sent(first, now=13.0)  # a late report from the loser changes nothing
    assert a.stats(now=13.0)["sent"] == 0
    b.mark_sent(second, now=13.0)
    assert a.stats(now=13.0)["sent"] == 1


def test_hold__extends_the_lease_so_no_one_else_claims_during_a_slow_send(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    a.enqueue(_item(), now=0.0, limits=LIMITS)
    row = a.claim(now=1.0, limit=5, lease=10.0).rows[0]
    assert a.hold(row, now=9.0, lease=10.0) == "send"  # now leased until 19
    assert b.claim(now=15.0, limit=5, lease=10.0).rows == []


def test_release__hands_an_unsent_row_back_without_counting_the_attempt(open_store: OpenStore) -> None:
    store = open_store()
    store.enqueue(_item(), now=0.0, limits=LIMITS)
    row = store.claim(now=1.0, limit=5, lease=60.0).rows[0]
    store.release(row)
    again = store.claim(now=2.0, limit=5, lease=60.0).rows
    assert [d.attempts for d in again] == [1]


def test_claim__one_token_bucket_for_every_handle(open_store: OpenStore) -> None:
    """DISPATCH_BURST / DISPATCH_RATE are global: three workers do not get three bursts."""
    handles = [open_store(), open_store(), open_store()]
    for i in range(20):
        handles[0].enqueue(_item(issue=str(1000 + i)), now=0.0, limits=LIMITS)
    budget = Budget(rate=2.0, burst=5)
    got = [len(h.claim(now=1.0, limit=50, lease=60.0, budget=budget).rows) for h in handles]
    assert got == [5, 0, 0]
    empty = handles[1].claim(now=1.0, limit=50, lease=60.0, budget=budget)
    assert empty.wait == pytest.approx(0.5)  # one token at 2/s
    # One second later: two tokens, whoever claims first.
    assert [len(h.claim(now=2.0, limit=50, lease=60.0, budget=budget).rows) for h in handles] == [2, 0, 0]


def test_pause__stops_every_handles_claims_and_holds_until_it_ends(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    for i in range(3):
        a.enqueue(_item(issue=str(i)), now=0.0, limits=LIMITS)
    held = a.claim(now=1.0, limit=1, lease=100.0).rows[0]
    b.pause(until=61.0)  # another worker got a 429 with retry-after: 60
    blocked = a.claim(now=2.0, limit=5, lease=60.0)
    assert (blocked.rows, blocked.wait) == ([], pytest.approx(59.0))
    assert a.hold(held, now=2.0, lease=60.0) == "paused"
    assert a.stats(now=2.0)["dispatch_paused_s"] == pytest.approx(59.0)
    b.pause(until=30.0)  # a shorter pause never cuts a longer one short
    assert len(b.claim(now=61.0, limit=5, lease=60.0).rows) == 2


def test_store__rows_survive_reopening(open_store: OpenStore) -> None:
    first = open_store()
    first.enqueue(_item(issue="9"), now=1.0, limits=LIMITS)
    first.close()
    second = open_store()
    assert [d.issue_id for d in second.claim(now=2.0, limit=5, lease=5.0).rows] == ["9"]
    # and dedup still remembers it
    assert second.enqueue(_item(issue="9"), now=3.0, limits=LIMITS).status == "duplicate"


def test_prune__drops_only_finished_rows_older_than_the_horizon(open_store: OpenStore) -> None:
    store = open_store()
    store.enqueue(_item(issue="1"), now=0.0, limits=LIMITS)
    store.enqueue(_item(issue="2"), now=0.0, limits=LIMITS)
    sent = store.claim(now=1.0, limit=1, lease=5.0).rows[0]
    store.mark_sent(sent, now=1.0)
    assert store.prune(older_than=10.0) == 1
    assert store.stats(now=10.0)["pending"] == 1


def test_store__after_close_fails_instead_of_acknowledging(open_store: OpenStore) -> None:
    store = open_store()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.enqueue(_item(), now=1.0, limits=LIMITS)


def test_check__is_a_real_write(open_store: OpenStore) -> None:
    store = open_store()
    store.check(now=5.0)  # healthy: no exception
    store.close()
    with pytest.raises(StoreError):
        store.check(now=6.0)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_sqlite_store__a_deleted_or_replaced_file_fails_closed(tmp_path: Path, how: str) -> None:
    """Deleting the file under a running relay acknowledged webhooks into an unlinked inode (lost)
    while a restarted worker opened a fresh file and split dedup. Now every write refuses."""
    path = tmp_path / "outbox.sqlite3"
    store = SQLiteStore(path)
    try:
        assert store.enqueue(_item(issue="1"), now=0.0, limits=LIMITS).status == "queued"
        path.unlink()
        if how == "replaced":
            other = SQLiteStore(path)  # e.g. another worker restarted and created a fresh file
            other.close()
        for attempt in (
            lambda: store.enqueue(_item(issue="2"), now=1.0, limits=LIMITS),
            lambda: store.claim(now=1.0, limit=5, lease=5.0),
            lambda: store.check(now=1.0),
            lambda: store.stats(now=1.0),
        ):
            with pytest.raises(StoreError, match=f"SENTRY_AUTOFIX_RELAY_DB: .* was {how}"):
                attempt()
    finally:
        store.close()


def test_sqlite_store__opens_a_file_of_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, issue_id TEXT NOT NULL,"
            " dedup_group TEXT NOT NULL, repo TEXT NOT NULL, event_type TEXT NOT NULL, payload TEXT NOT NULL,"
            " request_id TEXT, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
            " next_attempt_at REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0, last_error TEXT, done_at REAL);"
            "INSERT INTO outbox (created_at, issue_id, dedup_group, repo, event_type, payload, next_attempt_at)"
            " VALUES (1, '5', 'fix', 'acme/web', 'sentry-issue', '{\"issue_id\": \"5\"}', 1);"
        )
    conn.close()
    store = SQLiteStore(path)
    try:
        rows = store.claim(now=2.0, limit=5, lease=5.0, budget=Budget(rate=1.0, burst=2)).rows
        assert [r.issue_id for r in rows] == ["5"]
        assert store.hold(rows[0], now=2.0, lease=5.0) == "send"
    finally:
        store.close()


def test_postgres_store__a_dropped_connection_is_one_error_then_replaced(pg_url: str) -> None:
    """A database restart or failover kills connections: that moment's calls fail (503, Sentry
    retries), the next ones reconnect by themselves."""
    import psycopg

    from sentry_autofix.relay.postgres import PostgresStore

    store = PostgresStore(pg_url)
    try:
        assert store.enqueue(_item(issue="1"), now=0.0, limits=LIMITS).status == "queued"
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'sentry-autofix-relay' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError, match="PostgreSQL"):
            store.enqueue(_item(issue="2"), now=1.0, limits=LIMITS)
        assert store.enqueue(_item(issue="2"), now=1.0, limits=LIMITS).status == "queued"
        assert store.stats(now=2.0)["pending"] == 2
    finally:
        store.close()
