"""`PostgresStore`: the outbox in PostgreSQL, for several relay replicas on different hosts.

Chosen by `SENTRY_AUTOFIX_RELAY_DB=postgresql://user:password@host:5432/dbname` (the `relay` extra
brings psycopg). It keeps every promise of the SQLite store (store.py) across hosts:

* dedup + per-issue rate limit: a transaction-scoped advisory lock on the issue id serializes the
  webhooks of one issue (and only those) around the `INSERT … WHERE NOT EXISTS`;
* claiming: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent dispatchers take disjoint rows without
  waiting on each other; the shared token bucket is one row locked `FOR UPDATE` in the same
  transaction when a dispatch rate is set;
* leases, `hold`, the global rate-limit pause and the write probe of `/health`, as in SQLite.

One connection per thread (autocommit, explicit transactions); a connection that fails is dropped
and the next call opens a new one, so a database restart costs the webhooks of that moment a 503
(Sentry retries them), not the relay. Statements time out after 5 s: a stuck database must not
hold a webhook past Sentry's 1 s for long. Timestamps are the relay hosts' clocks: keep them in
NTP sync (the dedup and rate windows are hours; the budget tolerates a skew of seconds).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from sentry_autofix.errors import ConfigError, StoreError
from sentry_autofix.relay.store import (
    UNLIMITED,
    Budget,
    Claim,
    Dispatch,
    EnqueueResult,
    HoldStatus,
    Limits,
    NewDispatch,
    after_spending,
    describe,
    new_owner,
    spend,
)

_SCHEMA_LOCK = 0x5E27_A0F1_0000_0001  # pg_advisory_lock key: one schema set-up at a time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sentry_autofix_outbox (
    id BIGSERIAL PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    issue_id TEXT NOT NULL,
    dedup_group TEXT NOT NULL,
    repo TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    request_id TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    lease_owner TEXT,
    last_error TEXT,
    done_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS sentry_autofix_outbox_issue ON sentry_autofix_outbox (issue_id, created_at);
CREATE INDEX IF NOT EXISTS sentry_autofix_outbox_due ON sentry_autofix_outbox (next_attempt_at)
    WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS sentry_autofix_budget (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tokens DOUBLE PRECISION,
    refilled_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    paused_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    probed_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
INSERT INTO sentry_autofix_budget (id) VALUES (1) ON CONFLICT DO NOTHING;
"""

_ENQUEUE_SQL = """
INSERT INTO sentry_autofix_outbox
    (created_at, issue_id, dedup_group, repo, event_type, payload, request_id, next_attempt_at)
SELECT %(now)s, %(issue)s, %(group)s, %(repo)s, %(event_type)s, %(payload)s, %(request_id)s, %(now)s
WHERE NOT EXISTS (
    SELECT 1 FROM sentry_autofix_outbox
    WHERE issue_id = %(issue)s AND dedup_group = %(group)s AND created_at > %(dedup_since)s
) AND (
    SELECT COUNT(*) FROM sentry_autofix_outbox WHERE issue_id = %(issue)s AND created_at > %(rate_since)s
) < %(rate_limit)s
RETURNING id
"""


def _clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; errors quoted from GitHub could."""
    return None if text is None else text.replace("\x00", "")


class PostgresStore:
    """The OutboxStore on PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, *, statement_timeout_ms: int = 5000) -> None:
        self.url = url
        self._where = describe(url)
        self._timeout = statement_timeout_ms
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        try:
            conn = self._connect()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except psycopg.Error as exc:
            raise ConfigError(f"SENTRY_AUTOFIX_RELAY_DB: cannot use PostgreSQL at {self._where}: {exc}") from exc
        self._local.conn = conn

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=5,
            application_name="sentry-autofix-relay",
            options=f"-c statement_timeout={self._timeout} -c lock_timeout={self._timeout}",
        )
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def _db(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection; a failed one is dropped and replaced on the next call."""
        if self._closed:
            raise StoreError("the outbox store is closed")
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = self._local.conn = self._connect()
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop(conn)
            raise StoreError(f"SENTRY_AUTOFIX_RELAY_DB: PostgreSQL at {self._where} failed: {exc}") from exc

    def _drop(self, conn: psycopg.Connection[Any] | None) -> None:
        self._local.conn = None
        if conn is None:
            return
        with self._conns_lock:
            if conn in self._conns:
                self._conns.remove(conn)
        try:
            conn.close()
        except psycopg.Error:
            pass

    def enqueue(self, item: NewDispatch, *, now: float, limits: Limits) -> EnqueueResult:
        params = {
            "now": now,
            "issue": item.issue_id,
            "group": item.dedup_group,
            "repo": item.repo,
            "event_type": item.event_type,
            "payload": json.dumps(item.client_payload, separators=(",", ":")),
            "request_id": _clean(item.request_id),
            "dedup_since": now - limits.dedup_window,
            "rate_since": now - limits.rate_window,
            "rate_limit": limits.rate_limit,
        }
        with self._db() as conn, conn.transaction():
            # Webhooks of one issue queue here, others pass: READ COMMITTED gives the INSERT's
            # NOT EXISTS a fresh snapshot that includes whatever the previous holder committed.
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (item.issue_id,))
            row = conn.execute(_ENQUEUE_SQL, params).fetchone()
            if row is not None:
                return EnqueueResult("queued", int(row[0]))
            dup = conn.execute(
                "SELECT 1 FROM sentry_autofix_outbox WHERE issue_id = %s AND dedup_group = %s AND created_at > %s"
                " LIMIT 1",
                (item.issue_id, item.dedup_group, now - limits.dedup_window),
            ).fetchone()
        return EnqueueResult("duplicate" if dup else "rate-limited")

    def claim(self, *, now: float, limit: int, lease: float, budget: Budget = UNLIMITED) -> Claim:
        owner = new_owner()
        with self._db() as conn, conn.transaction():
            # With a rate, the bucket row is locked for the claim: dispatchers take turns spending
            # it. Without one, it is only read, and SKIP LOCKED keeps concurrent claims apart.
            lock = " FOR UPDATE" if budget.rate is not None else ""
            state = conn.execute(
                "SELECT tokens, refilled_at, paused_until FROM sentry_autofix_budget WHERE id = 1" + lock
            ).fetchone()
            assert state is not None
            allowed, level, wait = spend(state[0], state[1], state[2], now=now, budget=budget)
            rows: list[Any] = []
            if allowed > 0:
                rows = conn.execute(
                    "SELECT id, created_at, issue_id, repo, event_type, payload, attempts FROM sentry_autofix_outbox"
                    " WHERE state = 'pending' AND next_attempt_at <= %s AND lease_until <= %s"
                    " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (now, now, min(limit, allowed)),
                ).fetchall()
                if rows:
                    conn.execute(
                        "UPDATE sentry_autofix_outbox SET lease_until = %s, lease_owner = %s, attempts = attempts + 1"
                        " WHERE id = ANY(%s)",
                        (now + lease, owner, [r[0] for r in rows]),
                    )
                if rows and budget.rate is not None:
                    conn.execute(
                        "UPDATE sentry_autofix_budget SET tokens = %s, refilled_at = GREATEST(refilled_at, %s)"
                        " WHERE id = 1",
                        (after_spending(level, len(rows), budget), now),
                    )
        return Claim(
            [
                Dispatch(
                    id=int(r[0]),
                    created_at=float(r[1]),
                    issue_id=r[2],
                    repo=r[3],
                    event_type=r[4],
                    client_payload=json.loads(r[5]),
                    attempts=int(r[6]) + 1,
                    owner=owner,
                )
                for r in rows
            ],
            wait,
        )

    def hold(self, item: Dispatch, *, now: float, lease: float) -> HoldStatus:
        with self._db() as conn:
            row = conn.execute(
                "UPDATE sentry_autofix_outbox SET lease_until = %s"
                " WHERE id = %s AND lease_owner = %s AND state = 'pending'"
                " AND (SELECT paused_until FROM sentry_autofix_budget WHERE id = 1) <= %s RETURNING id",
                (now + lease, item.id, item.owner, now),
            ).fetchone()
            if row is not None:
                return "send"
            paused = conn.execute("SELECT paused_until FROM sentry_autofix_budget WHERE id = 1").fetchone()
        return "paused" if paused is not None and now < paused[0] else "lost"

    def release(self, item: Dispatch) -> None:
        with self._db() as conn:
            conn.execute(
                "UPDATE sentry_autofix_outbox SET lease_until = 0, lease_owner = NULL,"
                " attempts = GREATEST(0, attempts - 1) WHERE id = %s AND lease_owner = %s AND state = 'pending'",
                (item.id, item.owner),
            )

    def pause(self, *, until: float) -> None:
        with self._db() as conn:
            conn.execute(
                "UPDATE sentry_autofix_budget SET paused_until = GREATEST(paused_until, %s) WHERE id = 1", (until,)
            )

    def mark_sent(self, item: Dispatch, *, now: float) -> None:
        with self._db() as conn:
            conn.execute(
                "UPDATE sentry_autofix_outbox SET state = 'sent', done_at = %s, lease_until = 0, last_error = NULL"
                " WHERE id = %s AND lease_owner = %s",
                (now, item.id, item.owner),
            )

    def mark_retry(self, item: Dispatch, *, next_attempt_at: float, error: str) -> None:
        with self._db() as conn:
            conn.execute(
                "UPDATE sentry_autofix_outbox SET next_attempt_at = %s, lease_until = 0, last_error = %s"
                " WHERE id = %s AND lease_owner = %s AND state = 'pending'",
                (next_attempt_at, _clean(error[:500]), item.id, item.owner),
            )

    def mark_failed(self, item: Dispatch, *, now: float, error: str) -> None:
        with self._db() as conn:
            conn.execute(
                "UPDATE sentry_autofix_outbox SET state = 'failed', done_at = %s, lease_until = 0, last_error = %s"
                " WHERE id = %s AND lease_owner = %s AND state = 'pending'",
                (now, _clean(error[:500]), item.id, item.owner),
            )

    def stats(self, *, now: float) -> dict[str, Any]:
        with self._db() as conn:
            counts = dict(conn.execute("SELECT state, COUNT(*) FROM sentry_autofix_outbox GROUP BY state").fetchall())
            oldest_row = conn.execute(
                "SELECT MIN(created_at) FROM sentry_autofix_outbox WHERE state = 'pending'"
            ).fetchone()
            paused_row = conn.execute("SELECT paused_until FROM sentry_autofix_budget WHERE id = 1").fetchone()
        oldest = oldest_row[0] if oldest_row else None
        paused_until = paused_row[0] if paused_row else 0.0
        return {
            "pending": counts.get("pending", 0),
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "oldest_pending_age_s": round(now - oldest, 3) if oldest is not None else None,
            "dispatch_paused_s": round(paused_until - now, 1) if paused_until > now else 0,
        }

    def next_due(self) -> float | None:
        with self._db() as conn:
            row = conn.execute(
                "SELECT next_attempt_at FROM sentry_autofix_outbox WHERE state = 'pending' AND lease_until = 0"
                " ORDER BY next_attempt_at LIMIT 1"
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def prune(self, *, older_than: float) -> int:
        with self._db() as conn:
            cur = conn.execute(
                "DELETE FROM sentry_autofix_outbox WHERE state != 'pending' AND created_at < %s", (older_than,)
            )
            return cur.rowcount

    def check(self, *, now: float) -> None:
        try:
            with self._db() as conn:
                conn.execute("UPDATE sentry_autofix_budget SET probed_at = %s WHERE id = 1", (now,))
        except psycopg.Error as exc:
            raise StoreError(
                f"SENTRY_AUTOFIX_RELAY_DB: PostgreSQL at {self._where} does not take writes: {exc}"
            ) from exc

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except psycopg.Error:  # closing anyway
                pass
        self._local = threading.local()
