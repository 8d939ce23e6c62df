"""The background half: drain the outbox into GitHub, with retry and backoff.

One thread per process. It wakes when a webhook is stored (in-process signal) and otherwise
polls the store, so rows left by a crashed process or another replica are picked up too. A row is
leased while it is being sent; a process killed mid-send leaves a lease that simply runs out.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sentry_autofix.relay.github import DispatchOutcome
from sentry_autofix.relay.store import Dispatch, OutboxStore

log = logging.getLogger("sentry_autofix.relay")


class DispatchClient(Protocol):
    def dispatch(self, repo: str, event_type: str, client_payload: dict[str, Any]) -> DispatchOutcome: ...


class Counters:
    """Thread-safe counters for the health endpoint (this process only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + by

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._values.items()))


def backoff(attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter in its upper half: base·2^(n-1), capped."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(delay * (0.5 + 0.5 * rng()))


class Dispatcher:
    def __init__(
        self,
        store: OutboxStore,
        client: DispatchClient,
        *,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        batch: int = 50,
        lease: float = 60.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        max_retry_age: float = 86400.0,
        keep_for: float = 86400.0,
        rate: float | None = None,
        burst: int = 20,
    ) -> None:
        self.store = store
        self.client = client
        self.counters = counters or Counters()
        self._clock = clock
        self._poll = poll_interval
        self._batch = batch
        self._lease = lease
        self._base = backoff_base
        self._cap = backoff_cap
        self._max_age = max_retry_age
        self._keep_for = keep_for
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        # Token bucket: up to `burst` dispatches at once, then `rate` a second. GitHub's secondary
        # limits allow ~80 content-creating requests a minute; a flood of new issues is spread
        # out instead of being refused (and each dispatch starts a workflow run).
        self._rate = rate
        self._burst = float(max(1, burst))
        self._tokens = self._burst
        self._refilled = time.monotonic()
        if rate:
            self._batch = max(1, min(batch, int(self._burst + rate * lease / 2)))

    def _take_token(self) -> None:
        assert self._rate
        while not self._stop.is_set():
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            self._stop.wait((1 - self._tokens) / self._rate)

    def wake(self) -> None:
        # Called once per stored webhook: skip the Condition (a futex under load) when already set.
        if not self._wake.is_set():
            self._wake.set()

    def run_once(self) -> int:
        """Send every dispatch that is due now; returns how many were claimed."""
        now = self._clock()
        if now - self._last_prune > 600:
            self._last_prune = now
            pruned = self.store.prune(older_than=now - self._keep_for)
            if pruned:
                log.info("pruned outbox", extra={"fields": {"event": "outbox.pruned", "rows": pruned}})
        claimed = self.store.claim(now=now, limit=self._batch, lease=self._lease)
        for index, item in enumerate(claimed):
            if self._rate:
                self._take_token()
            if self._stop.is_set():
                # Shutting down: hand the unsent rest back so the next start (or a replica) sends them now.
                for rest in claimed[index:]:
                    self.store.mark_retry(
                        rest.id, next_attempt_at=self._clock(), error="released at shutdown"
                    )
                break
            self._send(item)
        return len(claimed)

    def _send(self, item: Dispatch) -> None:
        started = self._clock()
        try:
            outcome = self.client.dispatch(item.repo, item.event_type, item.client_payload)
        except Exception as exc:  # a bug in a client must not kill the thread; keep the row
            log.exception("dispatch crashed", extra={"fields": {"event": "dispatch.error", "id": item.id}})
            outcome = DispatchOutcome(False, True, None, f"client error: {type(exc).__name__}")
        now = self._clock()
        fields = {
            "id": item.id,
            "issue_id": item.issue_id,
            "repo": item.repo,
            "attempt": item.attempts,
            "status": outcome.status,
            "ms": round((now - started) * 1000, 1),
        }
        if outcome.ok:
            self.store.mark_sent(item.id, now=now)
            self.counters.inc("dispatched")
            log.info("dispatched", extra={"fields": {"event": "dispatch.sent", **fields}})
            return
        if not outcome.retry or now - item.created_at > self._max_age:
            self.store.mark_failed(item.id, now=now, error=outcome.detail)
            self.counters.inc("dispatch_failed")
            log.error(
                "dispatch failed for good",
                extra={"fields": {"event": "dispatch.failed", "error": outcome.detail, **fields}},
            )
            return
        delay = backoff(item.attempts, base=self._base, cap=self._cap)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, 3600.0))
        self.store.mark_retry(item.id, next_attempt_at=now + delay, error=outcome.detail)
        self.counters.inc("dispatch_retried")
        log.warning(
            "dispatch refused, will retry",
            extra={
                "fields": {
                    "event": "dispatch.retry",
                    "error": outcome.detail,
                    "retry_in_s": round(delay, 2),
                    **fields,
                }
            },
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # the store may be briefly unavailable; never let the thread die
                log.exception("dispatcher loop error", extra={"fields": {"event": "dispatcher.error"}})
                claimed = 0
            if claimed >= self._batch:
                continue  # more may be due right now
            timeout = self._poll
            try:
                due = self.store.next_due()
                if due is not None:
                    timeout = min(timeout, max(0.0, due - self._clock()))
            except Exception:
                pass
            self._wake.wait(timeout)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="relay-dispatcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
