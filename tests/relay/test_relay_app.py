"""The WSGI app in-process: status codes, ack-after-store, the health endpoint."""

from __future__ import annotations

import io
import json
import logging
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from relay_helpers import SECRET, TOKEN, Hooks, compact, headers_for

from sentry_autofix.relay.app import Relay
from sentry_autofix.relay.config import RelayConfig
from sentry_autofix.relay.store import SQLiteStore


class _NoRead(io.BytesIO):
    """A request body that must not be read (the 413 path answers from Content-Length alone)."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("body was read")


def call(
    app: Relay,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    stream: Any = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = stream if stream is not None else io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    got: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        got["status"] = int(status.split()[0])
        got["headers"] = dict(response_headers)

    data = b"".join(app(environ, start_response))
    return got["status"], json.loads(data), got["headers"]


@pytest.fixture
def app(make_config: Callable[..., RelayConfig], store: SQLiteStore) -> Relay:
    return Relay(make_config(), store, auth_kind="token")


def test_wsgi__signed_issue_is_stored_before_the_202(app: Relay, hooks: Hooks, store: SQLiteStore) -> None:
    body = hooks.bytes("issue.created.json")
    status, payload, headers = call(app, "POST", "/webhooks/sentry", body, headers_for(body, "issue"))
    assert status == 202
    assert payload["status"] == "queued"
    assert headers["Content-Type"] == "application/json"
    assert store.stats(now=0)["pending"] == 1  # already committed when the answer was built
    status, payload, _ = call(app, "POST", "/webhooks/sentry", body, headers_for(body, "issue"))
    assert (status, payload["status"]) == (200, "duplicate")


def test_wsgi__no_2xx_when_the_store_cannot_take_it(app: Relay, hooks: Hooks, store: SQLiteStore) -> None:
    store.close()  # stands in for a broken disk: enqueue raises
    body = hooks.bytes("issue.created.json")
    status, payload, _ = call(app, "POST", "/webhooks/sentry", body, headers_for(body, "issue"))
    assert status == 503
    assert payload["status"] == "error"
    assert app.counters.snapshot()["errors"] == 1


def test_wsgi__oversized_content_length_is_413_without_reading(app: Relay) -> None:
    environ_body = b"x" * (app.config.max_body + 1)
    status, _, _ = call(app, "POST", "/webhooks/sentry", environ_body, {}, stream=_NoRead())
    assert status == 413


def test_wsgi__unsigned_is_401_and_counted(app: Relay, hooks: Hooks) -> None:
    body = hooks.bytes("issue.created.json")
    status, payload, _ = call(app, "POST", "/webhooks/sentry", body, {"Sentry-Hook-Resource": "issue"})
    assert (status, payload["status"]) == (401, "rejected")
    assert app.counters.snapshot()["rejected_401"] == 1


def test_wsgi__methods_and_paths(app: Relay) -> None:
    assert call(app, "GET", "/webhooks/sentry")[0] == 405
    assert call(app, "POST", "/health")[0] == 405
    assert call(app, "GET", "/nope")[0] == 404


def test_wsgi__health_has_status_and_counters_but_no_secrets(app: Relay, hooks: Hooks) -> None:
    body = hooks.bytes("comment.created.json")
    call(app, "POST", "/webhooks/sentry", body, headers_for(body, "comment"))
    status, health, _ = call(app, "GET", "/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["config"]["webhook_secret"] == "set"
    assert health["config"]["trigger_auth"] == "token"
    assert health["counters"] == {"ignored": 1, "received": 1}
    assert health["outbox"]["pending"] == 0
    text = json.dumps(health)
    assert SECRET not in text
    assert TOKEN not in text
    assert "acme/" not in text


def test_wsgi__dedup_kinds_for_one_issue(app: Relay, hooks: Hooks) -> None:
    created = hooks.doc("issue.created.json")
    regressed = hooks.doc("issue.created.json")
    regressed["action"] = "unresolved"
    regressed["data"]["issue"]["substatus"] = "regressed"
    alert = hooks.doc("event_alert.triggered.json")
    alert["data"]["event"]["issue_id"] = created["data"]["issue"]["id"]  # an alert on that same issue
    answers = []
    for doc, resource in [
        (created, "issue"),
        (alert, "event_alert"),
        (regressed, "issue"),
        (regressed, "issue"),
    ]:
        body = compact(doc)
        status, payload, _ = call(app, "POST", "/webhooks/sentry", body, headers_for(body, resource))
        answers.append((status, payload["status"]))
    assert answers == [(202, "queued"), (200, "duplicate"), (202, "queued"), (200, "duplicate")]


class _CountingStream(io.BytesIO):
    """A request body that records how much the app read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def _chunked_environ(body: bytes, headers: dict[str, str], stream: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/sentry"}
    setup_testing_defaults(environ)
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = stream
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call_environ(app: Relay, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    got: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        got["status"] = int(status.split()[0])

    data = b"".join(app(environ, start_response))
    return got["status"], json.loads(data)


def test_wsgi__chunked_body_without_content_length_is_read(app: Relay, hooks: Hooks) -> None:
    """gunicorn passes `Transfer-Encoding: chunked` bodies without CONTENT_LENGTH: they got 401."""
    body = hooks.bytes("issue.created.json")
    stream = _CountingStream(body)
    status, payload = _call_environ(app, _chunked_environ(body, headers_for(body, "issue"), stream))
    assert (status, payload["status"]) == (202, "queued")
    assert stream.taken == len(body)


def test_wsgi__chunked_body_over_the_cap_is_413_after_reading_at_most_the_cap(app: Relay, hooks: Hooks) -> None:
    body = b'{"action":"created","data":{}}' + b" " * (app.config.max_body * 3)
    stream = _CountingStream(body)
    status, _ = _call_environ(app, _chunked_environ(body, headers_for(body, "issue"), stream))
    assert status == 413
    assert stream.taken == app.config.max_body + 1


class _FailingWrites:
    """A real store whose writes fail like a full disk or a read-only file while `broken`."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name not in {"enqueue", "check", "claim", "mark_sent"}:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.broken:
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return target(*args, **kwargs)

        return call


def test_health__degraded_while_writes_fail_and_ok_again_after(
    make_config: Callable[..., RelayConfig], store: SQLiteStore, hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    """/health answered `200 ok` while every webhook got 503; and each failure logged a traceback."""
    failing = _FailingWrites(store)
    relay = Relay(make_config(), failing, auth_kind="token")  # type: ignore[arg-type]
    failing.broken = True
    caplog.set_level(logging.WARNING, logger="sentry_autofix.relay")
    body = hooks.bytes("issue.created.json")
    answers = [call(relay, "POST", "/webhooks/sentry", body, headers_for(body, "issue"))[0] for _ in range(50)]
    assert set(answers) == {503}
    status, health, _ = call(relay, "GET", "/health")
    assert (status, health["status"]) == (503, "degraded")
    assert "readonly" in health["outbox"]["detail"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # one traceback for 50 failures, then at most a line a minute
    failing.broken = False
    assert call(relay, "POST", "/webhooks/sentry", body, headers_for(body, "issue"))[0] == 202
    status, health, _ = call(relay, "GET", "/health")
    assert (status, health["status"]) == (200, "ok")


def test_wsgi__deleted_store_file_fails_closed_with_503(
    make_config: Callable[..., RelayConfig], tmp_path: Path, hooks: Hooks
) -> None:
    """Deleting the outbox file under a running relay gave 2xx-and-lose (135 webhooks gone)."""
    path = tmp_path / "outbox.sqlite3"
    store = SQLiteStore(path)
    try:
        relay = Relay(make_config(), store)
        first = hooks.bytes("issue.created.json")
        assert call(relay, "POST", "/webhooks/sentry", first, headers_for(first, "issue"))[0] == 202
        path.unlink()
        second = hooks.bytes("error.created.json")
        assert call(relay, "POST", "/webhooks/sentry", second, headers_for(second, "error"))[0] == 503
        status, health, _ = call(relay, "GET", "/health")
        assert (status, health["status"]) == (503, "degraded")
        assert "was deleted" in health["outbox"]["detail"]
    finally:
        store.close()


_NESTED = b'{"action":"created","data":{"issue":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}}"


@pytest.mark.parametrize(
    ("label", "body", "resource", "status"),
    [
        ("nested objects 100,000 deep", _NESTED, "issue", 400),
        ("nested arrays 50,000 deep", b'{"action":"created","data":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "x", 400),
        ("bare nesting", b"[" * 200_000, "issue", 400),
        ("empty", b"", "issue", 400),
        ("not utf-8", b'{"action":"created","data":{"issue":"\xff\xfe"}}', "issue", 400),
        ("a 5,000-digit number", b'{"action":"created","data":{"issue":{"id":' + b"9" * 5000 + b"}}}", "issue", 400),
        ("NaN issue id", b'{"action":"created","data":{"issue":{"id":NaN}}}', "issue", 400),
        ("lone surrogate title", b'{"action":"created","data":{"issue":{"id":"1","title":"\\ud800"}}}', "issue", 200),
        ("NUL in strings", b'{"action":"created","data":{"issue":{"id":"1","title":"a\\u0000b"}}}', "issue", 200),
        ("top-level list", b"[1, 2]", "issue", 400),
        ("data is a string", b'{"action":"created","data":"x"}', "issue", 400),
        ("event id is a list", b'{"action":"triggered","data":{"event":{"issue_id":[1]}}}', "event_alert", 400),
        ("resource with NUL", b'{"action":"created","data":{}}', "iss\x00ue", 200),
    ],
)
def test_handle__bodies_that_never_parse_get_400_never_503(
    app: Relay, label: str, body: bytes, resource: str, status: int
) -> None:
    """Validly signed yet hostile: a 503 would have Sentry send it again and again (nesting 1,000+
    levels deep raised an uncaught RecursionError → `503 retry`)."""
    got, payload = app.handle(headers_for(body, resource), body)
    assert got == status, payload
    assert "errors" not in app.counters.snapshot()


def test_handle__300_mutations_of_real_webhooks_never_crash(app: Relay, hooks: Hooks) -> None:
    """Seeded byte and structure mutations of Sentry's published bodies, each validly signed."""
    rng = random.Random(1234)
    fixtures = [
        ("issue.created.json", "issue"),
        ("event_alert.triggered.json", "event_alert"),
        ("error.created.json", "error"),
    ]
    junk: list[Any] = [None, True, -1, 1e308, "", "x" * 5000, [], {}, [[[]]], {"id": {}}, "1" * 30]
    statuses: set[int] = set()
    for n in range(300):
        name, resource = fixtures[n % 3]
        if n % 2:
            raw = bytearray(hooks.bytes(name))
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            body = bytes(raw)
        else:
            doc = hooks.doc(name)
            node: Any = doc
            for _ in range(rng.randint(1, 4)):  # walk down, then replace one value with junk
                if not isinstance(node, dict) or not node:
                    break
                key = rng.choice(sorted(node))
                if rng.random() < 0.4 or not isinstance(node[key], dict):
                    node[key] = rng.choice(junk)
                    break
                node = node[key]
            body = compact(doc)
        status, _ = app.handle(headers_for(body, resource), body)
        statuses.add(status)
    assert statuses <= {200, 202, 400}
    assert "errors" not in app.counters.snapshot()
