"""The SQLite outbox: dedup and rate limit decided atomically with the insert, leases, durability."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sentry_autofix.relay.store import Limits, NewDispatch, SQLiteStore

LIMITS = Limits(dedup_window=3600, rate_limit=3, rate_window=86400)


def _item(issue: str = "100", group: str = "fix") -> NewDispatch:
    return NewDispatch(issue, group, "acme/web", "sentry-issue", {"issue_id": issue}, request_id="r1")


def test_enqueue__duplicate_within_the_window_then_new_after(store: SQLiteStore) -> None:
    assert store.enqueue(_item(), now=1000.0, limits=LIMITS).status == "queued"
    assert store.enqueue(_item(), now=1000.0 + 3599, limits=LIMITS).status == "duplicate"
    assert store.enqueue(_item(group="resolved"), now=1001.0, limits=LIMITS).status == "queued"
    assert store.enqueue(_item(), now=1000.0 + 3601, limits=LIMITS).status == "queued"
    assert store.enqueue(_item(issue="101"), now=1002.0, limits=LIMITS).status == "queued"


def test_enqueue__rate_limit_per_issue(store: SQLiteStore) -> None:
    limits = Limits(dedup_window=10, rate_limit=2, rate_window=1000)
    assert store.enqueue(_item(), now=0.0, limits=limits).status == "queued"
    assert store.enqueue(_item(), now=20.0, limits=limits).status == "queued"
    assert store.enqueue(_item(), now=40.0, limits=limits).status == "rate-limited"
    assert store.enqueue(_item(), now=1001.0, limits=limits).status == "queued"


def test_enqueue__1000_concurrent_duplicates_store_exactly_one(store: SQLiteStore) -> None:
    results: list[str] = []
    barrier = threading.Barrier(50)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            results.append(store.enqueue(_item(issue="777"), now=5000.0, limits=LIMITS).status)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1000
    assert results.count("queued") == 1
    assert results.count("duplicate") == 999
    assert store.stats(now=5000.0)["pending"] == 1


def test_enqueue__two_stores_on_one_file_agree(tmp_path: Path) -> None:
    # Stands in for two gunicorn workers / replicas sharing the file.
    a, b = SQLiteStore(tmp_path / "o.sqlite3"), SQLiteStore(tmp_path / "o.sqlite3")
    try:
        results: list[str] = []

        def worker(s: SQLiteStore) -> None:
            for _ in range(100):
                results.append(s.enqueue(_item(issue="5"), now=1.0, limits=LIMITS).status)

        threads = [threading.Thread(target=worker, args=(s,)) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count("queued") == 1
    finally:
        a.close()
        b.close()


def test_claim__leases_rows_and_retry_makes_them_due_later(store: SQLiteStore) -> None:
    store.enqueue(_item(issue="1"), now=10.0, limits=LIMITS)
    store.enqueue(_item(issue="2"), now=11.0, limits=LIMITS)
    claimed = store.claim(now=12.0, limit=10, lease=30.0)
    assert [(d.issue_id, d.attempts) for d in claimed] == [("1", 1), ("2", 1)]
    assert claimed[0].client_payload == {"issue_id": "1"}
    assert store.claim(now=13.0, limit=10, lease=30.0) == []  # leased
    store.mark_sent(claimed[0].id, now=14.0)
    store.mark_retry(claimed[1].id, next_attempt_at=100.0, error="503 Service Unavailable")
    assert store.claim(now=50.0, limit=10, lease=30.0) == []
    assert store.next_due() == 100.0
    again = store.claim(now=100.0, limit=10, lease=30.0)
    assert [(d.issue_id, d.attempts) for d in again] == [("2", 2)]
    store.mark_failed(again[0].id, now=101.0, error="422")
    assert store.stats(now=200.0) == {"pending": 0, "sent": 1, "failed": 1, "oldest_pending_age_s": None}


def test_claim__an_expired_lease_is_claimed_again(store: SQLiteStore) -> None:
    # A process killed mid-send leaves its lease behind; it runs out and the row is sent again.
    store.enqueue(_item(), now=0.0, limits=LIMITS)
    assert len(store.claim(now=1.0, limit=5, lease=10.0)) == 1
    assert store.claim(now=5.0, limit=5, lease=10.0) == []
    assert len(store.claim(now=11.5, limit=5, lease=10.0)) == 1


def test_store__rows_survive_reopening_the_file(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "o.sqlite3")
    first.enqueue(_item(issue="9"), now=1.0, limits=LIMITS)
    first.close()
    second = SQLiteStore(tmp_path / "o.sqlite3")
    try:
        assert [d.issue_id for d in second.claim(now=2.0, limit=5, lease=5.0)] == ["9"]
        # and dedup still remembers it
        assert second.enqueue(_item(issue="9"), now=3.0, limits=LIMITS).status == "duplicate"
    finally:
        second.close()


def test_prune__drops_only_finished_rows_older_than_the_horizon(store: SQLiteStore) -> None:
    store.enqueue(_item(issue="1"), now=0.0, limits=LIMITS)
    store.enqueue(_item(issue="2"), now=0.0, limits=LIMITS)
    sent = store.claim(now=1.0, limit=1, lease=5.0)[0]
    store.mark_sent(sent.id, now=1.0)
    assert store.prune(older_than=10.0) == 1
    assert store.stats(now=10.0)["pending"] == 1


def test_enqueue__after_close_fails_instead_of_acknowledging(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.sqlite3")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.enqueue(_item(), now=1.0, limits=LIMITS)
