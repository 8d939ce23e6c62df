"""`Relay.handle(headers, body) -> (status, json)` and the WSGI app around it.

`handle` is the only entry every adapter calls (WSGI here; Lambda / Cloud Functions in
examples/relay/): the pure `decide` plus one store write. A webhook is answered 2xx only after its
dispatch is committed to the outbox; the dispatcher sends it later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sentry_autofix import __version__
from sentry_autofix.relay.config import RelayConfig
from sentry_autofix.relay.dispatcher import Counters
from sentry_autofix.relay.store import Limits, NewDispatch, OutboxStore
from sentry_autofix.relay.webhook import (
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

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One webhook delivery → (HTTP status, JSON body). Never raises."""
        try:
            return self._handle(headers, body)
        except Exception:  # the relay logs per request and keeps serving (STYLE: errors at the edges)
            self.counters.inc("errors")
            log.exception("webhook handling failed", extra={"fields": {"event": "webhook.error"}})
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
        result = self.store.enqueue(
            NewDispatch(
                issue_id=decision.issue_id,
                dedup_group=decision.dedup_group,
                repo=decision.repo,
                event_type=decision.event_type,
                client_payload=decision.client_payload,
                request_id=decision.request_id,
            ),
            now=self._clock(),
            limits=self._limits,
        )
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

    def health(self) -> tuple[int, dict[str, Any]]:
        """Config status, counters and outbox state. Never a secret, a token or a route target."""
        body: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(self._clock() - self.started_at, 1),
            "config": {**self.config.status(), "github_auth": self._auth_kind or "none"},
            "counters": self.counters.snapshot(),
        }
        try:
            body["outbox"] = self.store.stats(now=self._clock())
        except Exception as exc:
            body["status"] = "degraded"
            body["outbox"] = {"error": type(exc).__name__}
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
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _respond(start_response, 400, {"status": "rejected", "error": "bad Content-Length"})
        if length > self.config.max_body:
            # Refuse before reading: a huge body costs nothing but this answer.
            self.counters.inc("received")
            self.counters.inc("rejected_413")
            return _respond(
                start_response,
                413,
                {"status": "rejected", "error": f"body larger than {self.config.max_body} bytes"},
            )
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        status, payload = self.handle(_wsgi_headers(environ), body)
        return _respond(start_response, status, payload)


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
