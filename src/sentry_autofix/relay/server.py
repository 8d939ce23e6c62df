"""`sentry-autofix relay serve`: the relay on waitress (threads), with a graceful shutdown.

SIGTERM/SIGINT stop accepting, let in-flight requests finish, then stop the dispatcher between two
sends. Nothing is lost by a harder stop either: every acknowledged webhook is already in the outbox.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from types import FrameType

from sentry_autofix.config import Settings
from sentry_autofix.relay.app import Relay
from sentry_autofix.relay.config import build_relay_config
from sentry_autofix.relay.dispatcher import Counters, Dispatcher
from sentry_autofix.relay.github import build_dispatcher_client
from sentry_autofix.relay.store import SQLiteStore

log = logging.getLogger("sentry_autofix.relay")


@dataclass
class RelayParts:
    relay: Relay
    dispatcher: Dispatcher
    store: SQLiteStore


def build(settings: Settings) -> RelayParts:
    """Validate everything and wire the real collaborators; raises ConfigError naming the setting."""
    config = build_relay_config(settings)
    client = build_dispatcher_client(settings)
    store = SQLiteStore(settings.relay_db, sync=settings.relay_db_sync)
    counters = Counters()
    dispatcher = Dispatcher(
        store,
        client,
        counters=counters,
        max_retry_age=config.max_retry_age,
        keep_for=max(config.dedup_window, config.rate_window, 3600.0),
    )
    relay = Relay(config, store, counters=counters, on_stored=dispatcher.wake, auth_kind=client.auth.kind)
    return RelayParts(relay, dispatcher, store)


def serve(settings: Settings, *, host: str, port: int, threads: int) -> int:
    from waitress import create_server  # the `relay` extra

    parts = build(settings)
    server = create_server(
        parts.relay,
        host=host,
        port=port,
        threads=threads,
        # Sentry sends small JSON bodies; anything close to the cap is refused by the app anyway.
        max_request_body_size=max(settings.relay_max_body * 2, 1 << 20),
        channel_timeout=30,
        connection_limit=1000,
        ident="sentry-autofix-relay",
        clear_untrusted_proxy_headers=True,
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        # waitress's run loop catches SystemExit and shuts its worker threads down cleanly.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    parts.dispatcher.start()
    bound_host = getattr(server, "effective_host", host)
    bound_port = getattr(server, "effective_port", port)
    log.info(
        f"listening on http://{bound_host}:{bound_port}",
        extra={
            "fields": {
                "event": "relay.started",
                "host": bound_host,
                "port": bound_port,
                "threads": threads,
                "db": settings.relay_db,
                "routes": len(parts.relay.config.routes),
                "github_auth": parts.dispatcher.client.auth.kind,  # type: ignore[attr-defined]
            }
        },
    )
    started = time.monotonic()
    try:
        server.run()
    finally:
        server.close()
        parts.dispatcher.stop(timeout=15.0)
        parts.store.close()
        log.info(
            "stopped",
            extra={"fields": {"event": "relay.stopped", "uptime_s": round(time.monotonic() - started, 1)}},
        )
    return 0
