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
from sentry_autofix.errors import ConfigError
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
        rate=settings.relay_dispatch_rate,
        burst=settings.relay_dispatch_burst,
        backoff_base=settings.relay_retry_base,
        backoff_cap=settings.relay_retry_cap,
    )
    relay = Relay(config, store, counters=counters, on_stored=dispatcher.wake, auth_kind=client.auth.kind)
    return RelayParts(relay, dispatcher, store)


def serve(
    settings: Settings, *, host: str, port: int, threads: int, workers: int = 1, server: str = "waitress"
) -> int:
    if server == "gunicorn":
        return serve_gunicorn(settings, host=host, port=port, threads=threads, workers=workers)
    return serve_waitress(settings, host=host, port=port, threads=threads)


def serve_gunicorn(settings: Settings, *, host: str, port: int, threads: int, workers: int) -> int:
    try:
        from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(
            "SENTRY_AUTOFIX_RELAY_SERVER=gunicorn needs gunicorn: pip install gunicorn"
        ) from exc

    # Validate everything (and create the schema) in the master, before any worker forks, so a bad
    # setting stops the start with one clear message instead of a crash loop of workers.
    build(settings).store.close()

    class _App(BaseApplication):  # type: ignore[misc]
        parts: RelayParts | None = None

        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "graceful_timeout": 20,
                "timeout": 30,
                "keepalive": 5,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "info",
                "proc_name": "sentry-autofix-relay",
                "limit_request_field_size": 16380,
                "when_ready": _when_ready,
                "post_fork": _post_fork,
                "worker_exit": self._worker_exit,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Relay:
            # Runs in each worker after the fork: own SQLite connections, own dispatcher thread.
            self.parts = build(settings)
            self.parts.dispatcher.start()
            return self.parts.relay

        def _worker_exit(self, server: object, worker: object) -> None:
            if self.parts is not None:
                self.parts.dispatcher.stop(timeout=15.0)
                self.parts.store.close()

    def _post_fork(server: object, worker: object) -> None:
        # The log writer thread does not survive fork(): give each worker its own.
        from sentry_autofix.relay.logs import restart_log_writer

        restart_log_writer()

    def _when_ready(server: object) -> None:
        listeners = getattr(server, "LISTENERS", [])
        address = listeners[0].sock.getsockname() if listeners else (host, port)
        log.info(
            f"listening on http://{address[0]}:{address[1]}",
            extra={
                "fields": {
                    "event": "relay.started",
                    "server": "gunicorn",
                    "host": address[0],
                    "port": address[1],
                    "workers": workers,
                    "threads": threads,
                    "db": settings.relay_db,
                }
            },
        )

    _App().run()
    return 0


def serve_waitress(settings: Settings, *, host: str, port: int, threads: int) -> int:
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
