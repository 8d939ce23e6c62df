"""`Relay.handle(headers, body) -> (status, json)` and the WSGI app around it.

`handle` is the only entry every adapter calls (WSGI here; Lambda / Cloud Functions in
examples/relay/): the pure `decide`, the replay bound, plus one store write. A webhook is answered
2xx only after its dispatch is committed to the outbox; the dispatcher sends it later.

Replay bound: Sentry signs the body only, so a captured webhook stays validly signed forever. A
webhook that would start a fix run is forwarded only while the issue/event time inside the signed
body is at most `replay_window` old (and not more than `FUTURE_SKEW` ahead of our clock); with the
window no longer than the dedup window, a replay is either a duplicate of its original or ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sentry_autofix import __version__
from sentry_autofix.relay.config import RelayConfig
from sentry_autofix.relay.dispatcher import Counters, ErrorThrottle
from sentry_autofix.relay.store import Limits, NewDispatch, OutboxStore
from sentry_autofix.relay.webhook import (
    REPLAY_BOUND_GROUPS,
    REQUEST_ID_HEADER,
    RESOURCE_HEADER,
    SIGNATURE_HEADER,
    Forward,
    Ignore,
    Reject,
    decide,
)

log = logging.getLogger("sentry_autofix.relay")

WEBHOOK_PATH = "/webhooks/sentry"
HEALTH_PATHS = ("/health", "/healthz", "/")
FUTURE_SKEW = 300.0
"""Seconds an issue/event time may lie ahead of our clock (clock drift) before it counts as stale."""
_READ_CHUNK = 65536

StartResponse = Callable[..., Any]


class Relay:
    def __init__(
        self,
        config: RelayConfig,
        store: OutboxStore,
        *,
        counters: Counters | None = None,
        on_stored: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        auth_kind: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.counters = counters or Counters()
        self._on_stored = on_stored
        self._clock = clock
        self._auth_kind = auth_kind
        self._limits = Limits(config.dedup_window, config.rate_limit, config.rate_window)
        self.started_at = clock()
        self._store_errors = ErrorThrottle("webhook.error", "webhook could not be stored")

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One webhook delivery → (HTTP status, JSON body). Never raises."""
        try:
            return self._handle(headers, body)
        except Exception as exc:  # the relay logs and keeps serving (STYLE: errors at the edges)
            self.counters.inc("errors")
            # Bounded: under a full disk every webhook fails alike; one traceback, then a line a minute.
            self._store_errors.failed(exc)
            return 503, {"status": "error", "error": "could not store the webhook; retry"}

    def _handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        self.counters.inc("received")
        decision = decide(headers, body, self.config)
        if isinstance(decision, Reject):
            self.counters.inc(f"rejected_{decision.status}")
            log.warning(
                "webhook rejected",
                extra={
                    "fields": {
                        "event": "webhook.rejected",
                        "status": decision.status,
                        "error": decision.error,
                    }
                },
            )
            return decision.status, {"status": "rejected", "error": decision.error}
        if isinstance(decision, Ignore):
            self.counters.inc("ignored")
            level = logging.WARNING if decision.reason == "unknown project" else logging.INFO
            log.log(
                level,
                "webhook ignored",
                extra={
                    "fields": {
                        "event": "webhook.ignored",
                        "reason": decision.reason,
                        "resource": decision.resource,
                        "action": decision.action,
                        "issue_id": decision.issue_id,
                        "project": decision.project,
                    }
                },
            )
            return 200, {"status": "ignored", "reason": decision.reason}
        assert isinstance(decision, Forward)
        now = self._clock()
        stale = self._replay_reason(decision, now)
        if stale is not None:
            self.counters.inc("ignored_stale")
            log.warning(
                "webhook ignored",
                extra={
                    "fields": {
                        "event": "webhook.ignored",
                        "reason": stale,
                        "resource": decision.resource,
                        "action": decision.action,
                        "issue_id": decision.issue_id,
                        "age_s": round(now - decision.occurred_at, 1) if decision.occurred_at is not None else None,
                    }
                },
            )
            return 200, {"status": "ignored", "reason": stale}
        result = self.store.enqueue(
            NewDispatch(
                issue_id=decision.issue_id,
                dedup_group=decision.dedup_group,
                repo=decision.repo,
                event_type=decision.event_type,
                client_payload=decision.client_payload,
                request_id=decision.request_id,
            ),
            now=now,
            limits=self._limits,
        )
        if self._store_errors.failing:
            self._store_errors.recovered()
        self.counters.inc(result.status.replace("-", "_"))
        log.info(
            "webhook " + result.status,
            extra={
                "fields": {
                    "event": f"webhook.{result.status}",
                    "resource": decision.resource,
                    "action": decision.action,
                    "issue_id": decision.issue_id,
                    "repo": decision.repo,
                    "id": result.id,
                }
            },
        )
        if result.status == "queued":
            if self._on_stored is not None:
                self._on_stored()
            return 202, {
                "status": "queued",
                "id": result.id,
                "repo": decision.repo,
                "issue_id": decision.issue_id,
            }
        return 200, {"status": result.status, "issue_id": decision.issue_id}

    def _replay_reason(self, decision: Forward, now: float) -> str | None:
        """Why a fix-starting webhook is outside the replay bound, or None (see the module docstring)."""
        window = self.config.replay_window
        if window <= 0 or decision.dedup_group not in REPLAY_BOUND_GROUPS:
            return None
        if decision.occurred_at is None:
            # Sentry's issue and event bodies always carry one; a body without is not Sentry's shape.
            return "no issue or event time in the body (replay bound)"
        age = now - decision.occurred_at
        if age > window:
            return "older than the replay window"
        if age < -FUTURE_SKEW:
            return "issue or event time ahead of the relay's clock"
        return None

    def health(self) -> tuple[int, dict[str, Any]]:
        """Config status, counters and outbox state. Never a secret, a token or a route target.

        `degraded` (503) when the store cannot take a write right now: a real write is tried,
        since a read alone passes on a full disk or a read-only file.
        """
        now = self._clock()
        body: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(now - self.started_at, 1),
            "config": {**self.config.status(), "trigger_auth": self._auth_kind or "none"},
            "counters": self.counters.snapshot(),
        }
        try:
            self.store.check(now=now)
            body["outbox"] = self.store.stats(now=now)
        except Exception as exc:
            body["status"] = "degraded"
            body["outbox"] = {"error": type(exc).__name__, "detail": str(exc)[:300]}
            return 503, body
        return 200, body

    # --- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        if path.rstrip("/") == WEBHOOK_PATH:
            if method != "POST":
                return _respond(start_response, 405, {"error": "POST a Sentry webhook here"}, allow="POST")
            return self._wsgi_webhook(environ, start_response)
        if path in HEALTH_PATHS:
            if method not in ("GET", "HEAD"):
                return _respond(start_response, 405, {"error": "GET only"}, allow="GET, HEAD")
            status, body = self.health()
            return _respond(start_response, status, body)
        return _respond(start_response, 404, {"error": f"not found; webhooks go to {WEBHOOK_PATH}"})

    def _wsgi_webhook(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        cap = self.config.max_body
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
            except ValueError:
                return _respond(start_response, 400, {"status": "rejected", "error": "bad Content-Length"})
            if length > cap:
                # Refuse before reading: a huge body costs nothing but this answer.
                return self._too_large(start_response)
            body = environ["wsgi.input"].read(length) if length > 0 else b""
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get("wsgi.input_terminated"):
            # No length up front (Transfer-Encoding: chunked; gunicorn passes it through, waitress
            # de-chunks): read until the end, but never more than the cap + 1 byte.
            body = _read_capped(environ["wsgi.input"], cap)
            if len(body) > cap:
                return self._too_large(start_response)
        else:
            body = b""
        status, payload = self.handle(_wsgi_headers(environ), body)
        return _respond(start_response, status, payload)

    def _too_large(self, start_response: StartResponse) -> list[bytes]:
        self.counters.inc("received")
        self.counters.inc("rejected_413")
        return _respond(
            start_response,
            413,
            {"status": "rejected", "error": f"body larger than {self.config.max_body} bytes"},
        )


def _read_capped(stream: Any, cap: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total <= cap:
        chunk = stream.read(min(_READ_CHUNK, cap + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


def _respond(start_response: StartResponse, status: int, body: dict[str, Any], **extra: str) -> list[bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    headers += [(k.capitalize(), v) for k, v in extra.items()]
    start_response(f"{status} {_REASONS.get(status, 'Status')}", headers)
    return [data]


# The only headers `decide` reads; copying every HTTP_* key of the environ was a measurable part
# of a webhook's cost.
_WSGI_HEADERS = {
    "HTTP_SENTRY_HOOK_SIGNATURE": SIGNATURE_HEADER,
    "HTTP_SENTRY_HOOK_RESOURCE": RESOURCE_HEADER,
    "HTTP_REQUEST_ID": REQUEST_ID_HEADER,
}


def _wsgi_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(environ[key]) for key, name in _WSGI_HEADERS.items() if key in environ}
