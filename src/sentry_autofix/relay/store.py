"""The durable outbox: a webhook is acknowledged only once its dispatch is stored here.

`OutboxStore` is the seam; `SQLiteStore` the embedded default (WAL mode). Dedup and the per-issue
rate limit are decided inside the same write transaction as the insert, so any number of threads
or processes sharing the file agree on exactly one winner. Another store (e.g. Postgres for several
replicas) implements the same five calls with `SELECT … FOR UPDATE SKIP LOCKED`-style claiming.
"""

from __future__ import annotations

import json
import os
import queue
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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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


class _Pending:
    __slots__ = ("done", "error", "item", "limits", "now", "result")

    def __init__(self, item: NewDispatch, now: float, limits: Limits) -> None:
        self.item = item
        self.now = now
        self.limits = limits
        self.result: EnqueueResult | None = None
        self.error: Exception | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def params(self) -> tuple[Any, ...]:
        item, now, limits = self.item, self.now, self.limits
        return (
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


class SQLiteStore:
    """Outbox in one SQLite file, WAL mode; safe for many threads and several processes.

    `sync="normal"`: a committed row survives the process being killed (the WAL is written before
    COMMIT returns); `sync="full"` also survives power loss, at one fsync per group commit.
    """

    def __init__(self, path: str | Path, *, sync: Literal["normal", "full"] = "normal") -> None:
        self.path = str(path)
        self._sync = sync.upper()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # The outbox writer thread and the dispatcher's updates take turns on this lock, then on
        # the flock shared with other processes: SQLite's own busy handler sleeps in steps of
        # milliseconds, which would show up in p99; these locks hand over in microseconds.
        self._write_lock = threading.Lock()
        self._lock_fd: int | None = None
        if fcntl is not None and self.path != ":memory:":
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        try:
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"SENTRY_AUTOFIX_RELAY_DB: cannot open {self.path}: {exc}") from exc
        self._writer_thread = threading.Thread(target=self._writer, name="relay-outbox-writer", daemon=True)
        self._writer_thread.start()
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="relay-outbox-checkpoint", daemon=True)
        self._checkpointer.start()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute("PRAGMA busy_timeout=30000")
            # Checkpoints (which fsync) run on their own thread (_checkpoints), not inside a
            # webhook's COMMIT; this threshold is only the safety net if that thread falls behind.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
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
        conn = self._conn()
        with self._write_lock, self._process_lock():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def enqueue(self, item: NewDispatch, *, now: float, limits: Limits) -> EnqueueResult:
        """Group commit through one writer thread; returns only after the row is committed.

        Request threads hand their item over and wait; the writer commits whatever piled up in one
        transaction. No Python lock is held across a call into SQLite by a request thread (with
        the GIL that turns into lock convoys and p99 spikes), and one connection does all the
        writing, so its page cache stays warm.
        """
        pending = _Pending(item, now, limits)
        if self._closed:
            raise RuntimeError("the outbox store is closed")
        self._queue.put(pending)
        pending.done.acquire()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 500:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            with self._write_lock, self._process_lock():
                self._commit_batch(batch)
            for p in batch:
                p.done.release()

    def _commit_batch(self, batch: list[_Pending]) -> None:
        conn = self._conn()
        try:
            rowids: list[int | None] = []
            if len(batch) == 1:
                # Alone: one autocommit statement (its own transaction), two fewer trips into SQLite.
                cur = conn.execute(_ENQUEUE_SQL, batch[0].params())
                rowids.append(cur.lastrowid if cur.rowcount == 1 else None)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for p in batch:
                        cur = conn.execute(_ENQUEUE_SQL, p.params())
                        rowids.append(cur.lastrowid if cur.rowcount == 1 else None)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except Exception as exc:
            for p in batch:
                p.error = exc
            return
        for p, rowid in zip(batch, rowids, strict=True):
            if rowid is not None:
                p.result = EnqueueResult("queued", rowid)
                continue
            dup = conn.execute(
                "SELECT 1 FROM outbox WHERE issue_id = ? AND dedup_group = ? AND created_at > ? LIMIT 1",
                (p.item.issue_id, p.item.dedup_group, p.now - p.limits.dedup_window),
            ).fetchone()
            p.result = EnqueueResult("duplicate" if dup else "rate-limited")

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
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._writer_thread.join(10.0)
            # A webhook handed over after the writer stopped must not wait forever: it fails
            # (503, Sentry may retry) rather than being acknowledged unstored.
            while True:
                try:
                    late = self._queue.get_nowait()
                except queue.Empty:
                    break
                if late is not None:
                    late.error = RuntimeError("the outbox store is closed")
                    late.done.release()
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
