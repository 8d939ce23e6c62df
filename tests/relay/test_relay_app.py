"""The WSGI app in-process: status codes, ack-after-store, the health endpoint."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
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
    assert health["config"]["github_auth"] == "token"
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
