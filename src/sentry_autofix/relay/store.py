"""The durable outbox: a webhook is acknowledged only once its dispatch is stored here.

`OutboxStore` is the seam. `SQLiteStore` is the embedded default (WAL mode, one host);
`relay/postgres.py` holds `PostgresStore` for several replicas on different hosts. `open_store`
picks one from `SENTRY_AUTOFIX_RELAY_DB` (a file path, or a `postgresql://` URL).

Everything that must hold across workers and replicas is decided inside one store transaction:

* dedup and the per-issue rate limit, atomically with the insert;
* the **dispatch budget**: one token bucket and one rate-limit pause for the whole store (every
  worker, every replica), spent when rows are claimed, so N processes never send N bursts;
* **leases**: a claimed row carries its claimer's token; `hold` re-checks and extends it right
  before each send, so a batch that outlives its lease is not sent twice.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from sentry_autofix.errors import ConfigError, StoreError

try:
    import fcntl
except ImportError:  # Windows: SQLite's own locking alone (fine for one process)
    fcntl = None  # type: ignore[assignment]

EnqueueStatus = Literal["queued", "duplicate", "rate-limited"]
HoldStatus = Literal["send", "lost", "paused"]


@dataclass(frozen=True)
class Limits:
    dedup_window: float
    rate_limit: int
    rate_window: float


@dataclass(frozen=True)
class Budget:
    """The dispatch budget shared by everything that uses one store: a token bucket.

    `rate` dispatches per second after a burst of `burst`; `rate=None` means no bucket (the
    global rate-limit pause still applies).
    """

    rate: float | None = None
    burst: int = 20


UNLIMITED = Budget()


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
    """A stored dispatch claimed by a dispatcher, leased to `owner` until it reports back."""

    id: int
    created_at: float
    issue_id: str
    repo: str
    event_type: str
    client_payload: dict[str, Any]
    attempts: int
    owner: str = ""


@dataclass(frozen=True)
class Claim:
    """Rows to send now, and how long the budget says to wait before claiming again.

    `wait` is set when the budget, not the outbox, limited the claim (paused after a rate-limit
    answer, or out of tokens): the dispatcher sleeps that long instead of polling.
    """

    rows: list[Dispatch]
    wait: float | None = None


class OutboxStore(Protocol):
    def enqueue(self, item: NewDispatch, *, now: float, limits: Limits) -> EnqueueResult: ...

    def claim(self, *, now: float, limit: int, lease: float, budget: Budget = UNLIMITED) -> Claim: ...

    def hold(self, item: Dispatch, *, now: float, lease: float) -> HoldStatus:
        """Right before a send: `send` (still ours, lease extended), `lost` or `paused`."""
        ...

    def release(self, item: Dispatch) -> None:
        """Give an unsent claimed row back, due at once (the attempt does not count)."""
        ...

    def pause(self, *, until: float) -> None:
        """Stop every dispatcher of this store until `until` (GitHub said: rate limited)."""
        ...

    def mark_sent(self, item: Dispatch, *, now: float) -> None: ...

    def mark_retry(self, item: Dispatch, *, next_attempt_at: float, error: str) -> None: ...

    def mark_failed(self, item: Dispatch, *, now: float, error: str) -> None: ...

    def stats(self, *, now: float) -> dict[str, Any]: ...

    def next_due(self) -> float | None:
        """When the earliest unleased pending row is due (None: nothing waits)."""
        ...

    def prune(self, *, older_than: float) -> int: ...

    def check(self, *, now: float) -> None:
        """A real write (the health probe); raises when the store cannot take writes."""
        ...

    def close(self) -> None: ...


def spend(
    tokens: float | None, refilled_at: float, paused_until: float, *, now: float, budget: Budget
) -> tuple[int, float | None, float | None]:
    """Token bucket arithmetic shared by the stores: (dispatches allowed now, level, wait).

    `tokens=None` is a bucket never used yet (full). The level is what is left before the claim
    spends from it; `wait` is the time until a claim could get anything, when that is now nothing.
    A clock behind the one that refilled last (another host) adds nothing rather than subtracting.
    """
    if now < paused_until:
        return 0, tokens, paused_until - now
    if budget.rate is None:
        return 1 << 30, tokens, None
    burst = float(max(1, budget.burst))
    level = burst if tokens is None else min(burst, tokens + max(0.0, now - refilled_at) * budget.rate)
    allowed = math.floor(level + 1e-9)
    wait = None if allowed >= 1 else (1.0 - level) / budget.rate
    return allowed, level, wait


def after_spending(level: float | None, spent: int, budget: Budget) -> float | None:
    if budget.rate is None:
        return level
    return max(0.0, (level if level is not None else float(budget.burst)) - spent)


def new_owner() -> str:
    """A lease token: which claim (process, batch) a row belongs to."""
    return secrets.token_hex(8)


def open_store(target: str, *, sync: Literal["normal", "full"] = "normal") -> OutboxStore:
    """`SENTRY_AUTOFIX_RELAY_DB`: a `postgresql://` URL (several replicas), else a SQLite file."""
    if target.startswith(("postgresql://", "postgres://")):
        # Imported here so that psycopg stays an optional dependency of the SQLite default.
        from sentry_autofix.relay.postgres import PostgresStore

        return PostgresStore(target)
    return SQLiteStore(target, sync=sync)


def describe(target: str) -> str:
    """The store target for logs: a URL without its password."""
    if "://" not in target:
        return target
    scheme, _, rest = target.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return target
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


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
    lease_owner TEXT,
    last_error TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_issue ON outbox (issue_id, created_at);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS budget (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tokens REAL,
    refilled_at REAL NOT NULL DEFAULT 0,
    paused_until REAL NOT NULL DEFAULT 0,
    probed_at REAL NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO budget (id) VALUES (1);
"""
# Added after the first release: a file created by it gets the column when it is opened.
_MIGRATIONS = ("ALTER TABLE outbox ADD COLUMN lease_owner TEXT",)


_ENQUEUE_SQL = """
INSERT INTO outbox (created_at, issue_id, dedup_group, repo, event_type, payload, request_id, next_attempt_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?
WHERE NOT EXISTS (
    SELECT 1 FROM outbox WHERE issue_id = ? AND dedup_group = ? AND created_at > ?
) AND (SELECT COUNT(*) FROM outbox WHERE issue_id = ? AND created_at > ?) < ?
"""


class _Pending:
    """A row waiting for the group commit in SQLiteStore.enqueue."""

    __slots__ = ("error", "params", "result")

    def __init__(self, params: tuple[Any, ...]) -> None:
        self.params = params
        self.result: EnqueueResult | None = None
        self.error: Exception | None = None


class SQLiteStore:
    """Outbox in one SQLite file, WAL mode; safe for many threads and several processes of one host.

    `sync="normal"`: a committed row survives the process being killed (the WAL is written before
    COMMIT returns); `sync="full"` also survives power loss, at one fsync per webhook.

    All writes go through one connection (`_writer`) under `_write_lock`, in the caller's thread:
    no hand-off to a writer thread, and the connection's page cache stays warm. Reads use one
    connection per thread.

    The file's identity (device, inode) is recorded at open and checked before every write: a
    file deleted or replaced under a running relay would otherwise take writes into an unlinked
    inode (acknowledged, then lost) while a restarted worker opens a fresh, empty file. The store
    then fails closed: every call raises StoreError until the relay is restarted.
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
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._closed = False
        self._gone: str | None = None
        self._lock_fd: int | None = None
        self._identity: tuple[int, int] | None = None
        if fcntl is not None and self.path != ":memory:":
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            with self._process_lock():
                conn.executescript(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
                if "lease_owner" not in columns:
                    for statement in _MIGRATIONS:
                        conn.execute(statement)
            self._writer = self._connect()
        except sqlite3.Error as exc:
            raise ConfigError(f"SENTRY_AUTOFIX_RELAY_DB: cannot open {self.path}: {exc}") from exc
        if self.path != ":memory:":
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
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

    def _check_file(self) -> None:
        """Fail closed when the file was deleted or replaced (see the class docstring)."""
        if self._closed:
            raise StoreError("the outbox store is closed")
        if self._gone is None and self._identity is not None:
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) != self._identity:
                    self._gone = "was replaced by another file"
            except FileNotFoundError:
                self._gone = "was deleted"
        if self._gone is not None:
            raise StoreError(
                f"SENTRY_AUTOFIX_RELAY_DB: {self.path} {self._gone} while the relay was running; "
                "refusing writes that would be lost. Restore it or restart the relay"
            )

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        """Serialize writers of several processes (workers) sharing the file.

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
            self._check_file()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def enqueue(self, item: NewDispatch, *, now: float, limits: Limits) -> EnqueueResult:
        """Dedup, rate limit and insert; returns only after the row is committed.

        Group commit without a writer thread: the request thread queues its row, then takes the
        write lock; whoever holds it commits every queued row in one transaction, one INSERT …
        SELECT … WHERE NOT EXISTS each, in arrival order, so each dedup read sees the rows
        before it. A thread that finds its row already committed by the holder before it just
        returns. A commit costs ~4× an insert here (WAL frames, wal-index and lock syscalls);
        a dedicated writer thread saved as much and lost it again in two thread hand-offs per
        webhook (docs/relay.md).
        """
        pending = _Pending(
            (
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
        )
        with self._queue_lock:
            self._queue.append(pending)
        with self._write_lock:
            if pending.result is None and pending.error is None:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_batch(batch)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _commit_batch(self, batch: list[_Pending]) -> None:
        """Under the write lock: one transaction for the queued rows; each learns its outcome."""
        conn = self._writer
        try:
            with self._process_lock():
                self._check_file()
                if len(batch) == 1:
                    # Alone (the usual case below saturation): one autocommit statement is its own
                    # transaction (SQLite takes the write lock before it reads), two statements fewer
                    # than BEGIN … COMMIT, and each statement is a GIL hand-off under load.
                    results = [self._insert(conn, batch[0])]
                    batch[0].result = results[0]
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    results = [self._insert(conn, row) for row in batch]
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except Exception as exc:
            for row in batch:
                row.error = exc
            return
        for row, result in zip(batch, results, strict=True):
            row.result = result

    @staticmethod
    def _insert(conn: sqlite3.Connection, row: _Pending) -> EnqueueResult:
        cur = conn.execute(_ENQUEUE_SQL, row.params)
        if cur.rowcount == 1:
            return EnqueueResult("queued", cur.lastrowid)
        # params[8:11]: issue_id, dedup_group, window start, as in the NOT EXISTS.
        dup = conn.execute(
            "SELECT 1 FROM outbox WHERE issue_id = ? AND dedup_group = ? AND created_at > ? LIMIT 1",
            row.params[8:11],
        ).fetchone()
        return EnqueueResult("duplicate" if dup else "rate-limited")

    def claim(self, *, now: float, limit: int, lease: float, budget: Budget = UNLIMITED) -> Claim:
        owner = new_owner()
        with self._write() as conn:
            tokens, refilled_at, paused_until = conn.execute(
                "SELECT tokens, refilled_at, paused_until FROM budget WHERE id = 1"
            ).fetchone()
            allowed, level, wait = spend(tokens, refilled_at, paused_until, now=now, budget=budget)
            rows = []
            if allowed > 0:
                rows = conn.execute(
                    "SELECT id, created_at, issue_id, repo, event_type, payload, attempts FROM outbox"
                    " WHERE state = 'pending' AND next_attempt_at <= ? AND lease_until <= ?"
                    " ORDER BY next_attempt_at, id LIMIT ?",
                    (now, now, min(limit, allowed)),
                ).fetchall()
                conn.executemany(
                    "UPDATE outbox SET lease_until = ?, lease_owner = ?, attempts = attempts + 1 WHERE id = ?",
                    [(now + lease, owner, row[0]) for row in rows],
                )
                if rows and budget.rate is not None:
                    conn.execute(
                        "UPDATE budget SET tokens = ?, refilled_at = MAX(refilled_at, ?) WHERE id = 1",
                        (after_spending(level, len(rows), budget), now),
                    )
        return Claim(
            [
                Dispatch(
                    id=r[0],
                    created_at=r[1],
                    issue_id=r[2],
                    repo=r[3],
                    event_type=r[4],
                    client_payload=json.loads(r[5]),
                    attempts=r[6] + 1,
                    owner=owner,
                )
                for r in rows
            ],
            wait,
        )

    def hold(self, item: Dispatch, *, now: float, lease: float) -> HoldStatus:
        with self._write() as conn:
            paused_until = conn.execute("SELECT paused_until FROM budget WHERE id = 1").fetchone()[0]
            if now < paused_until:
                return "paused"
            cur = conn.execute(
                "UPDATE outbox SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                (now + lease, item.id, item.owner),
            )
            return "send" if cur.rowcount == 1 else "lost"

    def release(self, item: Dispatch) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET lease_until = 0, lease_owner = NULL, attempts = MAX(0, attempts - 1)"
                " WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                (item.id, item.owner),
            )

    def pause(self, *, until: float) -> None:
        with self._write() as conn:
            conn.execute("UPDATE budget SET paused_until = MAX(paused_until, ?) WHERE id = 1", (until,))

    def mark_sent(self, item: Dispatch, *, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'sent', done_at = ?, lease_until = 0, last_error = NULL"
                " WHERE id = ? AND lease_owner = ?",
                (now, item.id, item.owner),
            )

    def mark_retry(self, item: Dispatch, *, next_attempt_at: float, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, lease_until = 0, last_error = ?"
                " WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                (next_attempt_at, error[:500], item.id, item.owner),
            )

    def mark_failed(self, item: Dispatch, *, now: float, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'failed', done_at = ?, lease_until = 0, last_error = ?"
                " WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                (now, error[:500], item.id, item.owner),
            )

    def stats(self, *, now: float) -> dict[str, Any]:
        self._check_file()
        conn = self._conn()
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        oldest = conn.execute("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'").fetchone()[0]
        paused_until = conn.execute("SELECT paused_until FROM budget WHERE id = 1").fetchone()[0]
        return {
            "pending": counts.get("pending", 0),
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "oldest_pending_age_s": round(now - oldest, 3) if oldest is not None else None,
            "dispatch_paused_s": round(paused_until - now, 1) if paused_until > now else 0,
        }

    def next_due(self) -> float | None:
        # Unleased rows only: an index walk that stops at the first row instead of a scan of every
        # pending one (a flood leaves tens of thousands behind a 1/s budget). A lease left behind
        # by a crashed worker is noticed by the dispatcher's poll within a second of running out.
        row = (
            self._conn()
            .execute(
                "SELECT next_attempt_at FROM outbox WHERE state = 'pending' AND lease_until = 0"
                " ORDER BY next_attempt_at LIMIT 1"
            )
            .fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    def prune(self, *, older_than: float) -> int:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < ?", (older_than,))
            return cur.rowcount

    def check(self, *, now: float) -> None:
        try:
            with self._write() as conn:
                conn.execute("UPDATE budget SET probed_at = ? WHERE id = 1", (now,))
        except sqlite3.Error as exc:
            raise StoreError(f"SENTRY_AUTOFIX_RELAY_DB: {self.path} does not take writes: {exc}") from exc

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
