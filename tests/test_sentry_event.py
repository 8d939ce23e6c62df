"""The one ErrorEvent model, parsed from every shape Sentry produces (real fixtures) and from junk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentry_autofix.errors import InputError
from sentry_autofix.redact import REDACTED
from sentry_autofix.sources.sentry_event import classify, load_document, load_event_file, parse_event

from .conftest import SHARED_FIXTURES, load_shared, shared_fixture_dir

ALL_SENTRY_FIXTURES = sorted(
    p.relative_to(SHARED_FIXTURES / "sentry").as_posix() for p in (SHARED_FIXTURES / "sentry").rglob("*.json")
) or ["(shared fixtures absent)"]

EXPECTED_KIND = {
    "api/get-organization-issue-event-latest.json": "event",
    "api/get-organization-issue.json": "issue",
    "api/list-organization-issue-events.json": "event_list",
    "api/list-organization-issues.json": "issue_list",
    "api/list-project-issues.json": "issue_list",
    "webhooks/activity_alert.triggered.json": "activity_alert",
    "webhooks/comment.created.json": "comment",
    "webhooks/error.created.json": "error",
    "webhooks/event_alert.triggered.json": "event_alert",
    "webhooks/headers.example.json": "webhook_headers",
    "webhooks/installation.created.json": "installation",
    "webhooks/installation.created.old-docs.json": "installation",
    "webhooks/issue.created.json": "issue",
    "webhooks/issue.created.old-docs.json": "issue",
    "webhooks/metric_alert.resolved.json": "metric_alert",
    "webhooks/preprod_artifact.build_distribution_completed.json": "preprod_artifact",
    "webhooks/seer.coding_completed.json": "seer",
    "webhooks/seer.pr_created.json": "seer",
    "webhooks/seer.root_cause_completed.json": "seer",
    "webhooks/seer.solution_completed.json": "seer",
}


@pytest.mark.conformance
@pytest.mark.parametrize("name", ALL_SENTRY_FIXTURES)
def test_classify__every_shared_sentry_fixture_is_recognised(name: str) -> None:
    path = shared_fixture_dir() / "sentry" / name
    doc = load_document(path)
    expected = EXPECTED_KIND.get(name, "event")
    assert doc.kind == expected
    if doc.kind in ("event", "event_alert", "error"):
        event = doc.event
        assert event is not None
        assert event.exceptions, "an error event must yield its exception"
        assert event.headline and event.headline != "(no message)"
        # Every frame list keeps Sentry's order and drops nothing parseable.
        raw_frames = json.dumps(json.loads(path.read_text())).count('"function"')
        assert sum(len(e.frames) for e in event.exceptions) <= raw_frames
    if doc.kind in ("issue", "activity_alert"):
        assert doc.issue is not None and doc.issue.id


@pytest.mark.conformance
def test_parse_event__rest_api_shape_uses_entries_and_context_pairs() -> None:
    event = parse_event(load_shared("sentry/api/get-organization-issue-event-latest.json"))
    assert event.issue_id == "1341191803"
    assert event.platform == "javascript"
    assert event.headline == "ForbiddenError: GET /organizations/hellboy-meowmeow/users/ 403"
    frame = event.exceptions[0].frames[0]
    assert frame.abs_path is not None and frame.abs_path.startswith("webpack://")
    assert frame.lineno == 71 and frame.in_app is False and frame.colno == 23
    assert frame.context_line is not None and "fn.apply" in frame.context_line
    assert len(frame.pre_context) == 5 and len(frame.post_context) == 5
    assert ("environment", "prod") in event.tags and event.environment == "prod"
    assert event.request is not None and event.request.query_string == "project=5236886"
    assert len(event.breadcrumbs) == 3
    assert event.timestamp is not None and event.timestamp.year == 2020


@pytest.mark.conformance
def test_parse_event__dotnet_chain_is_oldest_first_and_secrets_are_redacted() -> None:
    event = parse_event(load_shared("sentry/events/dotnet-aspnetcore-chained.json"))
    types = [e.type for e in event.exceptions]
    assert types == [
        "System.Net.Http.HttpRequestException",
        "System.Data.DataException",
        "System.AggregateException",
        "System.InvalidOperationException",
    ]
    assert event.root_cause is event.exceptions[0]
    assert event.crashing_exception is not None and event.crashing_exception.value is not None
    assert event.crashing_exception.value.startswith("Bad POST!")
    assert len(event.breadcrumbs) == 9, "bare-list breadcrumbs are read"
    assert event.request is not None and event.request.has_cookies
    headers = dict(event.request.headers)
    assert headers["Cookie"] == REDACTED
    assert headers["MS-ASPNETCORE-TOKEN"] == REDACTED
    assert headers["Host"] == "localhost:62919"
    assert "wcsid" not in event.model_dump_json()
    assert event.environment == "Production" and event.release == "e386dfd"


@pytest.mark.conformance
def test_parse_event__legacy_node_bare_exception_list_and_dict_tags() -> None:
    event = parse_event(load_shared("sentry/events/node-legacy-raven-exception.json"))
    assert event.platform == "node"
    assert event.headline == "Error: captureException call"
    assert ("git_commit", "c0deb10c4") in event.tags
    frames = event.exceptions[0].frames
    assert len(frames) == 10 and frames[-1].filename is not None and frames[-1].filename.endswith("raven/lib/client.js")
    assert [f.filename for f in frames if f.in_app] == ["/Users/kamilogorek/Projects/sentry/tmp/main.js"]
    assert event.timestamp is not None


@pytest.mark.conformance
def test_parse_event__legacy_interface_keys() -> None:
    java = parse_event(load_shared("sentry/events/java.json"))
    assert java.headline == "ApiException: Authentication failed, token expired!"
    assert len(java.exceptions[0].frames) == 57
    assert java.request is not None and java.request.method is not None
    assert len(java.breadcrumbs) == 4
    php = parse_event(load_shared("sentry/events/php.json"))
    assert php.exceptions[0].frames[-1].function == "raven_cli_test"
    ruby = parse_event(load_shared("sentry/events/ruby.json"))
    assert ruby.headline == "ZeroDivisionError: divided by 0"


@pytest.mark.conformance
def test_parse_event__null_frames_and_mechanism_links() -> None:
    event = parse_event(load_shared("sentry/events/java-chained-exception-in-app.json"))
    assert [len(e.frames) for e in event.exceptions] == [0, 1]
    assert event.exceptions[1].frames[0].module == "com.example.MainActivity"


@pytest.mark.conformance
def test_classify__event_alert_and_error_webhooks_carry_issue_ids() -> None:
    alert = classify(load_shared("sentry/webhooks/event_alert.triggered.json"))
    assert alert.kind == "event_alert" and alert.action == "triggered"
    assert alert.event is not None and alert.event.issue_id == "1117540176"
    assert alert.event.permalink is not None and alert.event.permalink.startswith("https://")
    error = classify(load_shared("sentry/webhooks/error.created.json"))
    assert error.event is not None and error.event.issue_id == "1170820242"


@pytest.mark.conformance
def test_parse_issue__api_issue_object() -> None:
    doc = classify(load_shared("sentry/api/get-organization-issue.json"))
    assert doc.issue is not None
    assert doc.issue.project == "pump-station" and doc.issue.project_id == "2"
    assert doc.issue.count == 150 and doc.issue.user_count == 12
    assert doc.issue.first_seen is not None


@pytest.mark.conformance
def test_load_event_file__issue_webhook_explains_what_to_do() -> None:
    with pytest.raises(InputError, match="SENTRY_AUTH_TOKEN"):
        load_event_file(shared_fixture_dir() / "sentry/webhooks/issue.created.json")
    with pytest.raises(InputError, match="metric_alert"):
        load_event_file(shared_fixture_dir() / "sentry/webhooks/metric_alert.resolved.json")


# --- hostile and malformed input ---------------------------------------------------------------


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "event.json"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"exception": {"values": [{"type": "KeyErr', "not valid JSON"),
        (b"\xff\xfe{not utf8}", "not UTF-8"),
        (b"[1, 2, 3]", "list"),
        (b'"just a string"', "JSON object"),
        (b"{}", "holds no error"),
        (b'{"exception": null, "breadcrumbs": 7}', "holds no error"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_load_event_file__malformed_input_is_a_clear_input_error(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_event_file(_write(tmp_path, data))


def test_parse_event__wrong_types_everywhere_are_tolerated() -> None:
    raw = {
        "exception": {
            "values": [
                None,
                7,
                {
                    "type": ["not", "a", "string"],
                    "value": {"nested": True},
                    "stacktrace": {"frames": [None, "x", 5, {"filename": 12, "lineno": "41", "in_app": "true"}]},
                    "mechanism": "broken",
                },
            ]
        },
        "breadcrumbs": {"values": [None, {"message": 5, "data": {"password": "hunter2", "n": [1, 2]}}]},
        "tags": {"a": None, "b": "c"},
        "request": {"headers": "nope", "cookies": {"session": "abc"}},
        "timestamp": "not a date",
    }
    event = parse_event(raw)
    frame = event.exceptions[0].frames[0]
    assert frame.filename == "12" and frame.lineno == 41 and frame.in_app is True
    assert event.breadcrumbs[0].data == {"password": REDACTED, "n": "[1, 2]"}
    assert event.tags == [("b", "c")]
    assert event.request is not None and event.request.has_cookies and event.request.headers == []
    assert event.timestamp is None


def test_parse_event__ten_megabyte_payload_is_capped_not_choked_on(tmp_path: Path) -> None:
    frame = {"filename": "app.py", "abs_path": "/srv/app.py", "lineno": 3, "context_line": "x" * 10_000}
    raw = {
        "exception": {"values": [{"type": "E", "value": "v" * 2_000_000, "stacktrace": {"frames": [frame] * 800}}]},
        "breadcrumbs": [{"message": "m" * 5000}] * 1000,
    }
    data = json.dumps(raw).encode()
    assert len(data) > 10_000_000
    event = load_event_file(_write(tmp_path, data))
    exc = event.exceptions[0]
    assert len(exc.frames) == 250 and exc.value is not None and len(exc.value) <= 4001
    assert len(event.breadcrumbs) == 100
    assert all(len(f.context_line or "") <= 501 for f in exc.frames)


def test_parse_event__secret_values_in_messages_and_headers_are_redacted() -> None:
    raw = {
        "exception": {"values": [{"type": "AuthError", "value": "bad token ghp_abcdefghijklmnopqrstuvwxyz0123456789"}]},
        "request": {
            "url": "https://api.example.com/x?token=s3cr3tvalue&page=2",
            "headers": [["Authorization", "Bearer abc.def.ghi"], ["X-Api-Key", "k-123"], ["Accept", "*/*"]],
        },
        "breadcrumbs": [{"message": "calling with Authorization: Bearer sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaa"}],
    }
    dumped = parse_event(raw).model_dump_json()
    for secret in ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "s3cr3tvalue", "abc.def.ghi", "k-123", "sk-ant-api03"):
        assert secret not in dumped
    assert "page=2" in dumped and "*/*" in dumped


def test_parse_event__message_only_event_uses_thread_stack() -> None:
    raw = {
        "message": "worker stalled",
        "threads": {
            "values": [
                {"crashed": False, "stacktrace": {"frames": [{"filename": "other.py"}]}},
                {"crashed": True, "stacktrace": {"frames": [{"filename": "worker.py", "lineno": 9}]}},
            ]
        },
    }
    event = parse_event(raw)
    assert event.headline == "worker stalled"
    assert event.exceptions[0].frames[0].filename == "worker.py"
