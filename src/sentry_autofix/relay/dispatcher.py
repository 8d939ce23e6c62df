"""The background half: drain the outbox into the code hosts' triggers, with retry, backoff and one shared budget.

One thread per process. It wakes when a webhook is stored (in-process signal) and otherwise
polls the store, so rows left by a crashed process or another replica are picked up too.

What keeps several workers and replicas from sending too much or twice lives in the store (see
store.py): claims spend from one token bucket; a rate-limit answer pauses every dispatcher of the
store until GitHub's reset; a claimed row is leased, and the lease is re-checked and extended
right before each send (`hold`), so a row whose lease ran out while an earlier send of the batch
was slow is skipped instead of being sent by two workers.

When the store itself fails (disk full, database down) the loop backs off exponentially and logs
the first traceback, then one summary line a minute: never a hot loop, never a log flood.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sentry_autofix.delivery import DispatchOutcome, Trigger
from sentry_autofix.relay.store import Budget, Dispatch, OutboxStore

log = logging.getLogger("sentry_autofix.relay")


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


class ErrorThrottle:
    """Bounded logging of a failure that repeats: the first with its traceback, then one line a minute.

    Under a full disk every webhook and every dispatcher round fails the same way; logging each
    one would fill the disk faster (the issue measured 24,000 tracebacks in 5 s).
    """

    def __init__(self, event: str, message: str, *, every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._event = event
        self._message = message
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._failing = False
        self._suppressed = 0
        self._last = 0.0

    @property
    def failing(self) -> bool:
        """Unlocked read for hot paths: call `recovered()` only when this says so."""
        return self._failing

    def failed(self, exc: BaseException, **fields: Any) -> None:
        now = self._clock()
        with self._lock:
            first = not self._failing
            due = first or now - self._last >= self._every
            self._failing = True
            if not due:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        extra = {"event": self._event, "error": f"{type(exc).__name__}: {exc}"[:500], **fields}
        if first:
            log.error(self._message, exc_info=exc, extra={"fields": extra})
        else:
            log.error(f"{self._message} (still failing)", extra={"fields": {**extra, "suppressed": suppressed}})

    def recovered(self) -> None:
        with self._lock:
            if not self._failing:
                return
            suppressed, self._failing, self._suppressed = self._suppressed, False, 0
        log.warning(
            f"{self._message}: recovered",
            extra={"fields": {"event": f"{self._event}.recovered", "suppressed": suppressed}},
        )


class Dispatcher:
    def __init__(
        self,
        store: OutboxStore,
        client: Trigger,
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
        rate_limit_pause: float = 60.0,
        store_retry_cap: float = 30.0,
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
        # One token bucket for the whole store (all workers, all replicas): up to `burst` at once,
        # then `rate` a second. GitHub's secondary limits allow ~80 content-creating requests a
        # minute; a flood of new issues is spread out instead of being refused.
        self.budget = Budget(rate, max(1, burst))
        # GitHub: after a secondary rate limit without retry-after, wait at least a minute, and
        # longer each time it repeats.
        self._pause_base = rate_limit_pause
        self._pauses_in_a_row = 0
        self._store_retry_cap = store_retry_cap
        self._store_failures = 0
        # Sent but not yet recorded (the store failed right after GitHub said 204): recorded
        # first when the store is back, before anything else is claimed.
        self._unrecorded: list[tuple[Dispatch, float]] = []
        self.store_errors = ErrorThrottle("dispatcher.store_error", "dispatcher cannot use the outbox store")

    def wake(self) -> None:
        # Called once per stored webhook: skip the Condition (a futex under load) when already set.
        if not self._wake.is_set():
            self._wake.set()

    def run_once(self) -> int:
        """Send what is due now and the budget allows; returns how many rows were claimed."""
        return len(self._run_once().rows)

    def _run_once(self) -> _Round:
        self._record_unrecorded()
        now = self._clock()
        if now - self._last_prune > 600:
            self._last_prune = now
            pruned = self.store.prune(older_than=now - self._keep_for)
            if pruned:
                log.info("pruned outbox", extra={"fields": {"event": "outbox.pruned", "rows": pruned}})
        claim = self.store.claim(now=now, limit=self._batch, lease=self._lease, budget=self.budget)
        rows = claim.rows
        for index, item in enumerate(rows):
            rest = rows[index:]
            if self._stop.is_set():
                # Shutting down: hand the unsent rest back so the next start (or a replica) sends them now.
                self._release(rest, "shutdown")
                break
            status = self.store.hold(item, now=self._clock(), lease=self._lease)
            if status == "paused":
                self._release(rest, "paused")
                break
            if status == "lost":
                # Our lease ran out during an earlier (slow) send and another worker claimed the
                # row: it sends it, we must not.
                self.counters.inc("dispatch_lease_lost")
                log.warning(
                    "lease lost before sending; another worker has the row",
                    extra={"fields": {"event": "dispatch.lease_lost", "id": item.id, "issue_id": item.issue_id}},
                )
                continue
            if self._send(item):
                self._release(rows[index + 1 :], "paused")
                break
        return _Round(rows, claim.wait)

    def _release(self, rows: list[Dispatch], why: str) -> None:
        for item in rows:
            self.store.release(item)
        if rows:
            log.info(
                "unsent dispatches handed back",
                extra={"fields": {"event": "dispatch.released", "rows": len(rows), "reason": why}},
            )

    def _record_unrecorded(self) -> None:
        while self._unrecorded:
            item, at = self._unrecorded[0]
            self.store.mark_sent(item, now=at)
            self._unrecorded.pop(0)

    def _send(self, item: Dispatch) -> bool:
        """One dispatch; returns True when the host asked every dispatcher to stop (rate limit)."""
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
        paused = self._pause_if_limited(outcome, now)
        if outcome.ok:
            self.counters.inc("dispatched")
            log.info("dispatched", extra={"fields": {"event": "dispatch.sent", **fields}})
            try:
                self.store.mark_sent(item, now=now)
            except Exception:
                # GitHub has it; recording it must not turn into a second send later.
                self._unrecorded.append((item, now))
                raise
            return paused
        if not outcome.retry or now - item.created_at > self._max_age:
            self.store.mark_failed(item, now=now, error=outcome.detail)
            self.counters.inc("dispatch_failed")
            log.error(
                "dispatch failed for good",
                extra={"fields": {"event": "dispatch.failed", "error": outcome.detail, **fields}},
            )
            return paused
        delay = backoff(item.attempts, base=self._base, cap=self._cap)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, 3600.0))
        self.store.mark_retry(item, next_attempt_at=now + delay, error=outcome.detail)
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
        return paused

    def _pause_if_limited(self, outcome: DispatchOutcome, now: float) -> bool:
        if not outcome.rate_limited:
            if outcome.ok:
                self._pauses_in_a_row = 0
            return False
        if outcome.retry_after is not None:
            pause = min(outcome.retry_after, 3600.0)
        else:
            pause = min(self._pause_base * 2.0**self._pauses_in_a_row, 900.0)
            self._pauses_in_a_row += 1
        self.store.pause(until=now + pause)
        self.counters.inc("dispatch_paused")
        log.warning(
            "the code host asked to slow down: every dispatcher of this outbox pauses",
            extra={"fields": {"event": "dispatch.paused", "status": outcome.status, "pause_s": round(pause, 1)}},
        )
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = self._run_once()
            except Exception as exc:  # the store may be unavailable; never let the thread die
                self._store_failures += 1
                self.store_errors.failed(exc, failures=self._store_failures)
                delay = backoff(self._store_failures, base=0.1, cap=self._store_retry_cap)
                self._stop.wait(delay)
                continue
            if self._store_failures:
                self._store_failures = 0
                self.store_errors.recovered()
            if result.wait is not None:
                # Budget-limited (paused, or out of tokens): new webhooks must not wake us into
                # a claim per webhook; only the budget frees up the next send.
                self._stop.wait(min(result.wait, self._poll * 30))
                continue
            if len(result.rows) >= self._batch:
                continue  # more may be due right now
            timeout = self._poll
            try:
                due = self.store.next_due()
                if due is not None:
                    timeout = min(timeout, max(0.0, due - self._clock()))
            except Exception:
                pass  # claim will raise too, and back off
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


class _Round:
    __slots__ = ("rows", "wait")

    def __init__(self, rows: list[Dispatch], wait: float | None) -> None:
        self.rows = rows
        self.wait = wait
