"""The Datadog source with `responses` (no network): Error Tracking bodies recorded in Datadog's own
client tests, the logs search example of the API reference with a real traceback in `error.stack`
(tests/fixtures/datadog/PROVENANCE.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import responses

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, InputError, SourceAuthError, SourceNotFound
from sentry_autofix.sources.datadog import DatadogSource, event_from_datadog

FIX = Path(__file__).resolve().parents[1] / "fixtures"
ISSUE = "5f8ebd5c-6dd9-11f0-8a28-da7ad0900002"
NOW = 1_756_308_813.0


def load(name: str) -> Any:
    return json.loads((FIX / "datadog" / name).read_text())


def source(**over: Any) -> DatadogSource:
    settings = Settings(datadog_api_key="dd-api-key-123", datadog_app_key="dd-app-key-456", **over)
    return DatadogSource(settings, sleep=lambda _s: None, clock=lambda: NOW)


def log_with_stack(raw: str) -> dict[str, Any]:
    body = load("logs_search_docs_example.json")
    record = body["data"][0]
    record["attributes"]["status"] = "error"
    record["attributes"]["tags"] = ["env:prod", "version:3"]
    record["attributes"]["attributes"]["error"] = {
        "kind": "TypeError",
        "message": "Cannot read properties of undefined (reading 'price')",
        "stack": (FIX / "tracebacks" / "raw" / raw).read_text(),
    }
    return body


def test_event_from_datadog__log_record_with_error_stack() -> None:
    record = log_with_stack("node_total.txt")["data"][0]
    event = event_from_datadog(record)
    assert event.headline == "TypeError: Cannot read properties of undefined (reading 'price')"
    crash = event.exceptions[0].frames[-1]
    assert (crash.abs_path, crash.lineno, crash.function) == ("/srv/app/releases/3/node/src/cart.js", 5, "lineTotal")
    assert event.environment == "prod" and event.release == "3" and event.server_name == "i-0123"
    assert ("service", "agent") in event.tags


def test_event_from_datadog__span_custom_and_dotted_webhook_shapes() -> None:
    stack = (FIX / "tracebacks" / "raw" / "python_zero.txt").read_text()
    span = {"id": "s1", "attributes": {"custom": {"error": {"type": "ZeroDivisionError", "stack": stack}}}}
    assert event_from_datadog(span).exceptions[-1].frames[-1].function == "average_item_price"
    webhook = {"error.stack": stack, "error.message": "division by zero"}
    assert event_from_datadog(webhook).headline == "ZeroDivisionError: division by zero"
    with pytest.raises(InputError, match=r"error\.stack"):
        event_from_datadog(load("logs_search_docs_example.json")["data"][0])


@responses.activate
def test_list_issues__one_search_with_included_issues() -> None:
    """The recorded search result (ids + total_count) joined with the recorded issue attributes."""
    search = load("cassette_search_issues_rum.json")
    search["included"] = [load("cassette_get_issue.json")["data"]]
    responses.post("https://api.datadoghq.com/api/v2/error-tracking/issues/search", json=search)
    dd = source(datadog_query="env:prod", datadog_track="rum")
    issues = list(dd.list_issues(projects=["synthetics-browser"], stats_period="14d"))
    assert dd.calls == 1
    [issue] = issues
    assert issue.id == f"datadog-{ISSUE}" and issue.count == 1 and issue.title == "Error: HTTP\nerror"
    assert issue.platform == "javascript" and issue.project == "synthetics-browser" and issue.status == "resolved"
    sent = json.loads(responses.calls[0].request.body)["data"]["attributes"]
    assert sent["query"] == "env:prod (service:synthetics-browser)" and sent["track"] == "rum"
    assert sent["to"] - sent["from"] == 14 * 86_400_000 and sent["order_by"] == "TOTAL_COUNT"
    assert responses.calls[0].request.headers["DD-APPLICATION-KEY"] == "dd-app-key-456"
    assert "include=issue" in (responses.calls[0].request.url or "")


@responses.activate
def test_list_issues__empty_recorded_search() -> None:
    responses.post(
        "https://api.datadoghq.eu/api/v2/error-tracking/issues/search", json=load("cassette_search_issues_empty.json")
    )
    assert list(source(datadog_site="datadoghq.eu").list_issues()) == []


@responses.activate
def test_latest_event__issue_then_newest_log_with_stack() -> None:
    responses.get(
        f"https://api.datadoghq.com/api/v2/error-tracking/issues/{ISSUE}", json=load("cassette_get_issue.json")
    )
    responses.post("https://api.datadoghq.com/api/v2/logs/events/search", json=log_with_stack("node_cause.txt"))
    dd = source(datadog_track="logs")
    event = dd.latest_event(f"datadog-{ISSUE}")
    assert dd.calls == 2
    assert event.issue is not None and event.issue_id == f"datadog-{ISSUE}"
    assert [e.type for e in event.exceptions] == ["TypeError", "Error"]
    sent = json.loads(responses.calls[1].request.body)
    assert sent["filter"]["query"] == f"@issue.id:{ISSUE}" and sent["sort"] == "-timestamp"


@responses.activate
def test_latest_event__no_stack_falls_back_to_the_issue_attributes() -> None:
    issue = load("cassette_get_issue.json")
    with_frame = copy.deepcopy(issue)
    with_frame["data"]["attributes"].update(file_path="src/cart.js", function_name="lineTotal")
    responses.get(f"https://api.datadoghq.com/api/v2/error-tracking/issues/{ISSUE}", json=with_frame)
    responses.post("https://api.datadoghq.com/api/v2/spans/events/search", json={"data": []})
    event = source().latest_event(f"datadog-{ISSUE}")
    assert event.headline == "Error: HTTP\nerror"
    frame = event.exceptions[0].frames[0]
    assert (frame.abs_path, frame.function) == ("src/cart.js", "lineTotal")


@responses.activate
def test_add_comment__annotates_through_the_event_stream() -> None:
    responses.post("https://api.datadoghq.com/api/v1/events", json={"status": "ok"})
    source().add_comment(f"datadog-{ISSUE}", "[sentry-autofix:pr-opened] opened a pull request.")
    body = json.loads(responses.calls[0].request.body)
    assert f"error_tracking_issue:{ISSUE}" in body["tags"] and body["alert_type"] == "info"
    assert source().list_comments(f"datadog-{ISSUE}") == []


@responses.activate
def test_errors__name_the_settings() -> None:
    responses.get(
        f"https://api.datadoghq.com/api/v2/error-tracking/issues/{ISSUE}", status=403, json={"errors": ["Forbidden"]}
    )
    with pytest.raises(SourceAuthError, match=r"DD_APP_KEY.*DD_SITE"):
        source().get_issue(f"datadog-{ISSUE}")
    with pytest.raises(SourceNotFound, match="not a Datadog issue id"):
        source().get_issue("rollbar-1")
    with pytest.raises(ConfigError, match="DD_API_KEY and DD_APP_KEY"):
        DatadogSource(Settings(datadog_api_key="x"))
