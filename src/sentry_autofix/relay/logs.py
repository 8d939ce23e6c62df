"""Structured logs for the relay: one JSON object per line on stderr (or plain text).

Fields come from `extra={"fields": {...}}`; nothing secret is ever put there (headers and bodies
are not logged at all, only the ids we routed on).

Request threads only append the record to a deque (no lock, no wake-up); one writer thread formats
and writes everything that piled up, every 50 ms. Under load that is one write per batch instead
of a lock hand-off and a syscall per line, which showed up in the relay's p99.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def _ts(self, record: logging.LogRecord) -> str:
        # strftime once per second, not once per line: the relay logs every webhook.
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = ""
        if isinstance(fields, dict):
            extra = " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp} {record.levelname} {record.getMessage()}{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class BatchingHandler(logging.Handler):
    """Append-only in the caller's thread; a daemon thread writes batches to `stream`."""

    def __init__(self, stream: TextIO, interval: float = 0.05) -> None:
        super().__init__()
        self._stream = stream
        self._records: deque[logging.LogRecord] = deque()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-log-writer", daemon=True)
        self._thread.start()

    def before_fork(self) -> None:
        """Stop the writer (after writing what is queued): fork() only from a single-threaded
        process (Python 3.12 warns otherwise, and a lock held by another thread stays held)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self._drain()

    def after_fork(self) -> None:
        """A fresh writer thread, in the parent and in the child alike."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            # Traceback objects must be rendered now, while the frames still exist.
            record.exc_text = self.format(record)
            record.exc_info = None
            record.msg, record.args = record.exc_text, None
            record.fields = None
            self._records.append(record)
            return
        self._records.append(record)

    def _drain(self) -> None:
        lines = []
        while self._records:
            record = self._records.popleft()
            try:
                lines.append(self.format(record) if record.exc_text is None else record.getMessage())
            except Exception:  # a bad record must not stop the writer
                lines.append(f'{{"level": "error", "msg": "unformattable log record from {record.name}"}}')
        if lines:
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._drain()
        self._drain()

    def flush(self) -> None:
        self._drain()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._drain()
        super().close()


_handler: BatchingHandler | None = None
# gunicorn configures its own "gunicorn.error" handler (plain text); it is left alone.
_LOGGERS = ("sentry_autofix", "waitress")


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Route the relay's and the WSGI server's logs to stderr in the chosen format."""
    global _handler
    # Logging HOWTO, "Optimization": skip the caller lookup (a stack walk per line) nobody reads here.
    logging._srcfile = None
    # Same section: thread names are not in our lines either. Process ids stay: gunicorn's own
    # log format prints `[%(process)d]`, and a None there is a logging error on every line.
    logging.logThreads = False
    logging.logMultiprocessing = False
    if _handler is not None:
        _handler.close()
        atexit.unregister(_handler.close)
    _handler = BatchingHandler(sys.stderr)
    _handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    atexit.register(_handler.close)
    global _fork_hooks
    if not _fork_hooks and hasattr(os, "register_at_fork"):
        # Worker processes (ours and gunicorn's) are forked after logging is set up.
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)
        _fork_hooks = True
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [_handler]
        logger.setLevel(level)
        logger.propagate = False
    # "Task queue depth is N" once per request while all threads are busy: noise that costs CPU
    # exactly when the relay is loaded. Sustained overload still shows in p99 and in the counters.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


_fork_hooks = False


def _before_fork() -> None:
    if _handler is not None:
        _handler.before_fork()


def _after_fork() -> None:
    if _handler is not None:
        _handler.after_fork()


def flush_logs() -> None:
    """Write what is queued now (a worker about to `os._exit`, which skips atexit)."""
    if _handler is not None:
        _handler.before_fork()
