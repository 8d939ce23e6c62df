"""The durable outbox: a webhook is acknowledged only once its dispatch is stored here.

`OutboxStore` is the seam; `SQLiteStore` the embedded default (WAL mode). Dedup and the per-issue
rate limit are decided inside the same write transaction as the insert, so any number of threads
or processes sharing the file agree on exactly one winner. Another store (e.g. Postgres for several
replicas) implements the same five calls with `SELECT … FOR UPDATE SKIP LOCKED`-style claiming.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from sentry_autofix.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: SQLite's own locking alone (fine for one process)
    fcntl = None  # type: ignore[assignment]

EnqueueStatus = Literal["queued", "duplicate", "rate-limited"]


@dataclass(frozen=True)
class Limits:
    dedup_window: float
    rate_limit: int
    rate_window: float


@dataclass(frozen=True)
class NewDispatch:
    issue_id: str
    dedup_group: str
    repo: str
    event_type: str
    client_payload: dict[str, Any]
    request_id: str | None = None


@dataclass(frozen=True)
class EnqueueResult:
    status: EnqueueStatus
    id: int | None = None


@dataclass(frozen=True)
class Dispatch:
    """A stored dispatch claimed by a dispatcher (leased until it reports back)."""

    id: int
    created_at: float
    issue_id: str
    repo: str
    event_type: str
    client_payload: dict[str, Any]
    attempts: int


class OutboxStore(Protocol):
    def enqueue(self, item: NewDispatch, *, now: float, limits: Limits) -> EnqueueResult: ...

    def claim(self, *, now: float, limit: int, lease: float) -> list[Dispatch]: ...

    def mark_sent(self, id: int, *, now: float) -> None: ...

    def mark_retry(self, id: int, *, next_attempt_at: float, error: str) -> None: ...

    def mark_failed(self, id: int, *, now: float, error: str) -> None: ...

    def stats(self, *, now: float) -> dict[str, Any]: ...

    def next_due(self) -> float | None: ...

    def prune(self, *, older_than: float) -> int: ...

    def close(self) -> None: ...


# No AUTOINCREMENT: it rewrites the sqlite_sequence page on every insert (a fourth page per
# webhook in the WAL). Plain rowids only repeat after the newest row was pruned, i.e. after the
# relay sat idle longer than the retention; ids only tie log lines and leases to live rows.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    issue_id TEXT NOT NULL,
    dedup_group TEXT NOT NULL,
    repo TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    request_id TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_issue ON outbox (issue_id, created_at);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
"""


_ENQUEUE_SQL = """
INSERT INTO outbox (created_at, issue_id, dedup_group, repo, event_type, payload, request_id, next_attempt_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?
WHERE NOT EXISTS (
    SELECT 1 FROM outbox WHERE issue_id = ? AND dedup_group = ? AND created_at > ?
) AND (SELECT COUNT(*) FROM outbox WHERE issue_id = ? AND created_at > ?) < ?
"""


class SQLiteStore:
    """Outbox in one SQLite file, WAL mode; safe for many threads and several processes.

    `sync="normal"`: a committed row survives the process being killed (the WAL is written before
    COMMIT returns); `sync="full"` also survives power loss, at one fsync per webhook.

    All writes go through one connection (`_writer`) under `_write_lock`, in the caller's thread:
    no hand-off to a writer thread, and the connection's page cache stays warm. Reads use one
    connection per thread.
    """

    def __init__(self, path: str | Path, *, sync: Literal["normal", "full"] = "normal") -> None:
        self.path = str(path)
        self._sync = sync.upper()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # Request threads and the dispatcher take turns on this lock, then on the flock shared
        # with other processes: SQLite's own busy handler sleeps in steps of milliseconds, which
        # would show up in p99; these locks hand over in microseconds.
        self._write_lock = threading.Lock()
        self._closed = False
        self._lock_fd: int | None = None
        if fcntl is not None and self.path != ":memory:":
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            self._writer = self._connect()
        except sqlite3.Error as exc:
            raise ConfigError(f"SENTRY_AUTOFIX_RELAY_DB: cannot open {self.path}: {exc}") from exc
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="relay-outbox-checkpoint", daemon=True)
        self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={self._sync}")
        conn.execute("PRAGMA busy_timeout=30000")
        # Checkpoints (which fsync) run on their own thread (_checkpoints), not inside a
        # webhook's COMMIT; this threshold is only the safety net if that thread falls behind.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, for reads."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        """Serialize writers of several processes (gunicorn workers) sharing the file.

        SQLite's own busy handler polls with sleeps of 1-100 ms when another process holds the
        write lock; a blocking flock() wakes the next writer the moment the lock is free.
        """
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        with self._write_lock, self._process_lock():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def enqueue(self, item: NewDispatch, *, now: float, limits: Limits) -> EnqueueResult:
        """Dedup, rate limit and insert in one statement; returns only after it is committed.

        Runs in the request thread. One autocommit statement is its own transaction (SQLite takes
        the write lock before it reads), and the locks make it the only writer, so what its
        NOT EXISTS read is still true when it writes. A group-commit writer thread was measured
        against this (README, "Relay benchmark"): the thread hand-offs cost as much as the
        commits they saved.
        """
        params = (
            now,
            item.issue_id,
            item.dedup_group,
            item.repo,
            item.event_type,
            json.dumps(item.client_payload, separators=(",", ":")),
            item.request_id,
            now,
            item.issue_id,
            item.dedup_group,
            now - limits.dedup_window,
            item.issue_id,
            now - limits.rate_window,
            limits.rate_limit,
        )
        conn = self._writer
        with self._write_lock, self._process_lock():
            if self._closed:
                raise RuntimeError("the outbox store is closed")
            cur = conn.execute(_ENQUEUE_SQL, params)
            if cur.rowcount == 1:
                return EnqueueResult("queued", cur.lastrowid)
            dup = conn.execute(
                "SELECT 1 FROM outbox WHERE issue_id = ? AND dedup_group = ? AND created_at > ? LIMIT 1",
                (item.issue_id, item.dedup_group, now - limits.dedup_window),
            ).fetchone()
        return EnqueueResult("duplicate" if dup else "rate-limited")

    def claim(self, *, now: float, limit: int, lease: float) -> list[Dispatch]:
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, created_at, issue_id, repo, event_type, payload, attempts FROM outbox"
                " WHERE state = 'pending' AND next_attempt_at <= ? AND lease_until <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE outbox SET lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                [(now + lease, row[0]) for row in rows],
            )
        return [
            Dispatch(
                id=r[0],
                created_at=r[1],
                issue_id=r[2],
                repo=r[3],
                event_type=r[4],
                client_payload=json.loads(r[5]),
                attempts=r[6] + 1,
            )
            for r in rows
        ]

    def mark_sent(self, id: int, *, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'sent', done_at = ?, lease_until = 0, last_error = NULL WHERE id = ?",
                (now, id),
            )

    def mark_retry(self, id: int, *, next_attempt_at: float, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, lease_until = 0, last_error = ? WHERE id = ?",
                (next_attempt_at, error[:500], id),
            )

    def mark_failed(self, id: int, *, now: float, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'failed', done_at = ?, lease_until = 0, last_error = ? WHERE id = ?",
                (now, error[:500], id),
            )

    def stats(self, *, now: float) -> dict[str, Any]:
        conn = self._conn()
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        oldest = conn.execute("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'").fetchone()[0]
        return {
            "pending": counts.get("pending", 0),
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "oldest_pending_age_s": round(now - oldest, 3) if oldest is not None else None,
        }

    def next_due(self) -> float | None:
        row = (
            self._conn()
            .execute("SELECT MIN(MAX(next_attempt_at, lease_until)) FROM outbox WHERE state = 'pending'")
            .fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    def prune(self, *, older_than: float) -> int:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < ?", (older_than,))
            return cur.rowcount

    def _checkpoints(self, interval: float = 0.5) -> None:
        """Copy the WAL into the database file twice a second without blocking writers (PASSIVE).

        A short WAL keeps reads fast and the occasional fsync off the webhook path.
        """
        while not self._stop_checkpoints.wait(interval):
            try:
                self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # busy or closing: the next round (or the safety net) catches up
                pass

    def close(self) -> None:
        self._stop_checkpoints.set()
        self._checkpointer.join(5.0)
        with self._write_lock:
            # A webhook arriving now fails (503, Sentry retries) rather than being acknowledged unstored.
            self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:  # a connection in use by a finishing thread; the OS closes it
                    pass
            self._conns.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._local = threading.local()
