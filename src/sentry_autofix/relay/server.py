"""`sentry-autofix relay serve`: the relay on waitress, in one or several worker processes.

Why waitress (docs/relay.md has the measurements): its event loop reads every request whole
before a worker thread sees it, so connections that send slowly, or open and say nothing, cost a
socket and a few KB, not a thread. gunicorn's gthread workers read headers and body in the worker
thread: 50 such connections left 0 of 48 well-behaved webhooks answered within Sentry's 1 s.

One waitress process runs all of its Python under one GIL, so `workers` processes share one
listening socket (bound here, then forked), each with its own event loop, threads and dispatcher
thread. They share the outbox and, through it, dedup, leases and the dispatch budget. The parent
only supervises: it restarts a worker that dies and forwards SIGTERM.

SIGTERM/SIGINT stop accepting, let in-flight requests finish, then stop the dispatcher between two
sends. Nothing is lost by a harder stop either: every acknowledged webhook is already in the outbox.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sentry_autofix import delivery
from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError
from sentry_autofix.relay.app import Relay
from sentry_autofix.relay.config import build_relay_config
from sentry_autofix.relay.dispatcher import Counters, Dispatcher
from sentry_autofix.relay.logs import flush_logs
from sentry_autofix.relay.store import OutboxStore, describe, open_store

log = logging.getLogger("sentry_autofix.relay")

GRACEFUL_TIMEOUT = 25.0
"""Seconds a worker gets to finish after SIGTERM before the supervisor kills it (Docker: 30 s grace
with the compose file's stop_grace_period)."""


@dataclass
class RelayParts:
    relay: Relay
    dispatcher: Dispatcher
    store: OutboxStore


def build(settings: Settings) -> RelayParts:
    """Validate everything and wire the real collaborators; raises ConfigError naming the setting."""
    config = build_relay_config(settings)
    client = delivery.build_trigger(settings, config.hosts())
    store = open_store(settings.relay_db, sync=settings.relay_db_sync)
    counters = Counters()
    dispatcher = Dispatcher(
        store,
        client,
        counters=counters,
        max_retry_age=config.max_retry_age,
        keep_for=max(config.dedup_window, config.rate_window, config.replay_window, 3600.0),
        rate=settings.relay_dispatch_rate,
        burst=settings.relay_dispatch_burst,
        backoff_base=settings.relay_retry_base,
        backoff_cap=settings.relay_retry_cap,
    )
    relay = Relay(config, store, counters=counters, on_stored=dispatcher.wake, auth_kind=client.kind)
    if 0 < config.dedup_window < config.replay_window:
        log.warning(
            "replay window longer than the dedup window: a replayed webhook can dispatch again",
            extra={"fields": {"event": "relay.config_warning", "setting": "SENTRY_AUTOFIX_RELAY_REPLAY_WINDOW"}},
        )
    return RelayParts(relay, dispatcher, store)


def serve(settings: Settings, *, host: str, port: int, threads: int, workers: int = 1, server: str = "waitress") -> int:
    if server == "gunicorn":
        return serve_gunicorn(settings, host=host, port=port, threads=threads, workers=workers)
    return serve_waitress(settings, host=host, port=port, threads=threads, workers=workers)


# --- waitress ----------------------------------------------------------------------------------------


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket, bound before any worker starts (port 0: the kernel picks one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port/--host)") from exc
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def waitress_server(app: Any, sock: socket.socket, *, threads: int, max_body: int = 1 << 20) -> Any:
    """A waitress server on `sock`, tuned for many idle or slow connections (see the module docstring)."""
    from waitress import create_server  # the `relay` extra

    return create_server(
        app,
        sockets=[sock],
        threads=threads,
        # Sentry sends small JSON bodies; anything close to the cap is refused by the app anyway.
        max_request_body_size=max(max_body * 2, 1 << 20),
        max_request_header_size=32768,
        # poll(), not select(): select() fails outright past 1,024 open descriptors, which is
        # exactly what a slow-client flood produces.
        asyncore_use_poll=True,
        connection_limit=4000,
        channel_timeout=30,
        cleanup_interval=10,
        ident="sentry-autofix-relay",
        clear_untrusted_proxy_headers=True,
    )


def _raise_fd_limit(wanted: int = 65536) -> None:
    """Idle connections are file descriptors: lift the soft limit towards the hard one (often 1,024)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def _stop_on_signals() -> None:
    def _stop(signum: int, frame: FrameType | None) -> None:
        # waitress's run loop catches SystemExit and shuts its worker threads down cleanly.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """A worker whose supervisor was killed (kill -9, OOM) stops too instead of serving on alone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="relay-parent-watch", daemon=True).start()


def run_relay_worker(settings: Settings, sock: socket.socket, *, threads: int, announce: bool) -> int:
    """One serving process: its own store connections, dispatcher thread and waitress loop."""
    parts = build(settings)
    server = waitress_server(parts.relay, sock, threads=threads, max_body=parts.relay.config.max_body)
    _stop_on_signals()
    parts.dispatcher.start()
    started = time.monotonic()
    if announce:
        _log_started(settings, sock, workers=1, threads=threads, server="waitress")
    else:
        log.info("worker started", extra={"fields": {"event": "relay.worker_started", "pid": os.getpid()}})
    try:
        server.run()
    finally:
        server.close()
        parts.dispatcher.stop(timeout=15.0)
        parts.store.close()
        if announce:
            _log_stopped(started)
        else:
            log.info("worker stopped", extra={"fields": {"event": "relay.worker_stopped", "pid": os.getpid()}})
    return 0


def serve_waitress(settings: Settings, *, host: str, port: int, threads: int, workers: int = 1) -> int:
    if workers > 1 and not hasattr(os, "fork"):
        log.warning(
            "worker processes need fork(); serving from one process",
            extra={"fields": {"event": "relay.config_warning", "setting": "SENTRY_AUTOFIX_RELAY_WORKERS"}},
        )
        workers = 1
    _raise_fd_limit()
    if workers <= 1:
        sock = listen(host, port)
        try:
            return run_relay_worker(settings, sock, threads=threads, announce=True)
        finally:
            sock.close()
    # Validate everything (and create the schema) here, before any worker forks, so a bad setting
    # stops the start with one clear message instead of a crash loop of workers.
    build(settings).store.close()
    sock = listen(host, port)
    parent = os.getpid()

    def worker() -> int:
        _exit_with_parent(parent)
        return run_relay_worker(settings, sock, threads=threads, announce=False)

    supervisor = Supervisor(workers, worker)
    _log_started(settings, sock, workers=workers, threads=threads, server="waitress")
    started = time.monotonic()
    try:
        return supervisor.run()
    finally:
        sock.close()
        _log_stopped(started)


class Supervisor:
    """Fork `workers` processes running `worker()`, restart the ones that die, stop them on SIGTERM.

    A pre-fork arbiter in the manner of gunicorn's, minus everything the relay does not need.
    Restarts back off (1 s doubling to 30 s) while workers keep dying within seconds of starting.
    """

    def __init__(self, workers: int, worker: Callable[[], int], *, graceful_timeout: float = GRACEFUL_TIMEOUT):
        self._workers = workers
        self._worker = worker
        self._graceful = graceful_timeout
        self._children: dict[int, float] = {}
        self._stopping = False
        self._restart_delay = 0.0

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous_alarm = signal.signal(signal.SIGALRM, self._on_alarm)
        try:
            for _ in range(self._workers):
                self._spawn()
            while self._children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                born = self._children.pop(pid, None)
                if born is None or self._stopping:
                    continue
                self._restart(pid, status, born)
        finally:
            signal.alarm(0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGALRM, previous_alarm)
        return 0

    def _restart(self, pid: int, status: int, born: float) -> None:
        lived = time.monotonic() - born
        self._restart_delay = min(30.0, max(1.0, self._restart_delay * 2)) if lived < 10 else 0.0
        log.error(
            "worker exited; starting another",
            extra={
                "fields": {
                    "event": "relay.worker_exited",
                    "pid": pid,
                    "exit_code": os.waitstatus_to_exitcode(status),
                    "lived_s": round(lived, 1),
                    "restart_in_s": self._restart_delay,
                }
            },
        )
        deadline = time.monotonic() + self._restart_delay
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self._stopping:
            self._spawn()

    def _spawn(self) -> None:
        # Signals wait until the child has dropped the supervisor's handlers: a SIGTERM landing in
        # between would otherwise run them in the child, against its siblings.
        stopping = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 1
            try:
                self._children.clear()
                for sig in stopping:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                code = self._worker()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:
                log.exception("worker crashed", extra={"fields": {"event": "relay.worker_crashed"}})
            finally:
                flush_logs()
                os._exit(code)
        self._children[pid] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            return
        self._stopping = True
        for pid in list(self._children):
            _signal(pid, signal.SIGTERM)
        signal.alarm(max(1, int(self._graceful)))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        for pid in list(self._children):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _log_started(settings: Settings, sock: socket.socket, *, workers: int, threads: int, server: str) -> None:
    address = sock.getsockname()
    log.info(
        f"listening on http://{address[0]}:{address[1]}",
        extra={
            "fields": {
                "event": "relay.started",
                "server": server,
                "host": address[0],
                "port": address[1],
                "workers": workers,
                "threads": threads,
                "db": describe(settings.relay_db),
            }
        },
    )


def _log_stopped(started: float) -> None:
    log.info(
        "stopped",
        extra={"fields": {"event": "relay.stopped", "uptime_s": round(time.monotonic() - started, 1)}},
    )


# --- gunicorn ----------------------------------------------------------------------------------------


def serve_gunicorn(settings: Settings, *, host: str, port: int, threads: int, workers: int) -> int:
    """gunicorn gthread workers: only behind a proxy that buffers whole requests (docs/relay.md).

    Its worker threads read the request themselves, so slow or idle connections occupy them;
    nginx (`proxy_request_buffering on`, the default) in front removes that.
    """
    try:
        from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError("SENTRY_AUTOFIX_RELAY_SERVER=gunicorn needs gunicorn: pip install gunicorn") from exc

    build(settings).store.close()
    started = time.monotonic()

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
                "worker_exit": self._worker_exit,
                "on_exit": _on_exit,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Relay:
            # Runs in each worker after the fork: own store connections, own dispatcher thread.
            self.parts = build(settings)
            self.parts.dispatcher.start()
            return self.parts.relay

        def _worker_exit(self, server: object, worker: object) -> None:
            if self.parts is not None:
                self.parts.dispatcher.stop(timeout=15.0)
                self.parts.store.close()

    def _when_ready(server: object) -> None:
        listeners = getattr(server, "LISTENERS", [])
        if listeners:
            _log_started(settings, listeners[0].sock, workers=workers, threads=threads, server="gunicorn")

    def _on_exit(server: object) -> None:
        _log_stopped(started)

    _App().run()
    return 0
