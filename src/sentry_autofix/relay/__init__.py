"""The relay: Sentry webhooks → verified, filtered, deduplicated, durable triggers of a run
(`repository_dispatch` on GitHub, a triggered pipeline on GitLab).

decide(headers, body, config)   pure: verify, parse, filter, route, shape the payload
Relay.handle(headers, body)     decide + store in the outbox → (status, json); also a WSGI app
Dispatcher                      background thread: outbox → the host's Trigger, retry with backoff
SQLiteStore                     the embedded OutboxStore (WAL)
build(settings) / serve(...)    wiring for `sentry-autofix relay serve`
"""

from __future__ import annotations

from sentry_autofix.relay.app import Relay
from sentry_autofix.relay.config import RelayConfig, Route, build_relay_config
from sentry_autofix.relay.webhook import Forward, Ignore, Reject, decide, sign, verify_signature

__all__ = [
    "Forward",
    "Ignore",
    "Reject",
    "Relay",
    "RelayConfig",
    "Route",
    "build_relay_config",
    "decide",
    "sign",
    "verify_signature",
]
