"""AWS Lambda adapter for the relay (Function URL or API Gateway HTTP API, payload format 2.0).

Lambda freezes a function between invocations, so there is no background dispatcher thread. A
webhook invocation only verifies and stores (Sentry gets its answer well within its 1 s); an
EventBridge schedule (rate(1 minute)) invokes the same handler to send what is due, with the same
retry and backoff as `relay serve`. Dispatches therefore leave within about a minute.

Settings come from the function's environment, as for `relay serve`. The outbox must outlive the
instance: mount EFS and set SENTRY_AUTOFIX_RELAY_DB=/mnt/relay/relay.sqlite3, with reserved
concurrency 1 (SQLite's WAL wants one host at a time); for more, use PostgreSQL
(SENTRY_AUTOFIX_RELAY_DB=postgresql://…, docs/relay.md).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sentry_autofix.config import load_settings
from sentry_autofix.relay.server import build

parts = build(load_settings())  # once per cold start; a bad setting fails the deployment loudly


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    http = event.get("requestContext", {}).get("http")
    if http is None:  # the EventBridge schedule: send (or retry) what is due
        return {"dispatched": parts.dispatcher.run_once()}
    raw = event.get("body") or ""
    # Lambda passes JSON bodies as text; Sentry's are ASCII, so encoding restores the signed bytes.
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    if http["method"] == "GET":
        status, payload = parts.relay.health()
    else:
        status, payload = parts.relay.handle(event.get("headers") or {}, body)
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(payload),
    }
