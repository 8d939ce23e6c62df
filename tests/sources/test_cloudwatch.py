"""The CloudWatch Logs source against botocore's Stubber (no network): FilterLogEvents over the window,
nextToken pagination, tracebacks assembled per stream, grouped by fingerprint, API calls counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceNotFound
from sentry_autofix.sources.cloudwatch import CloudWatchSource
from sentry_autofix.sources.traceback_text import parse_traceback

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RAW = FIXTURES / "tracebacks" / "raw"
NOW = 1_780_000_000.0
END_MS = int(NOW * 1000)
START_MS = END_MS - 60 * 60_000
GROUP = "/ecs/shop-web"
PATTERN = Settings().cloudwatch_filter_pattern


def client() -> Any:
    return boto3.client(
        "logs", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example-secret"
    )


def event(stream: str, ts: int, message: str, n: int = 0) -> dict[str, Any]:
    """One FilteredLogEvent, shaped like the AWS CLI's documented output (see PROVENANCE.md)."""
    return {
        "logStreamName": stream,
        "timestamp": ts,
        "message": message,
        "ingestionTime": ts + 995,
        "eventId": f"{ts:020d}{n:036d}",
    }


def per_line(stream: str, ts: int, text: str) -> list[dict[str, Any]]:
    """A container's stderr through the awslogs driver: one event per line, a millisecond apart."""
    lines = ["GET /health 200", *text.rstrip("\n").split("\n"), "GET /health 200"]
    return [event(stream, ts + i, line, i) for i, line in enumerate(lines)]


def source(stub_client: Any, **settings: Any) -> CloudWatchSource:
    s = Settings(cloudwatch_log_groups=[GROUP], **settings)
    return CloudWatchSource(s, client=stub_client, clock=lambda: NOW)


def matches_params(token: str | None = None, group: str = GROUP) -> dict[str, Any]:
    params: dict[str, Any] = {
        "logGroupName": group,
        "startTime": START_MS,
        "endTime": END_MS,
        "filterPattern": PATTERN,
        "limit": 10_000,
    }
    if token:
        params["nextToken"] = token
    return params


def test_cli_example_response__parses_and_holds_no_error() -> None:
    """The AWS CLI's documented FilterLogEvents output goes through; plain messages are no errors."""
    c = client()
    doc = json.loads((FIXTURES / "cloudwatch" / "filter_log_events_cli_example.json").read_text())
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", doc, matches_params())
        cw = source(c)
        assert list(cw.list_issues()) == []
        stub.assert_no_pending_responses()
    assert cw.calls == 1


def test_scan__per_line_traceback_paginated_then_context_read_and_grouped() -> None:
    """ECS-style logs: the pattern matches two lines of one Python traceback across two pages
    (nextToken); one more call reads the stream around them; the same error in a second stream
    later is the same group (count 2); a Node error is another group."""
    py = (RAW / "python_zero.txt").read_text()
    node = (RAW / "node_total.txt").read_text()
    s1, s2, s3 = "web/app/1111", "web/app/2222", "web/app/3333"
    t1, t2, t3 = END_MS - 50 * 60_000, END_MS - 20 * 60_000, END_MS - 10 * 60_000
    lines1, lines2 = per_line(s1, t1, py), per_line(s2, t2, py)
    header1 = next(e for e in lines1 if e["message"].startswith("Traceback"))
    last1 = next(e for e in lines1 if e["message"].startswith("ZeroDivisionError"))
    header2 = next(e for e in lines2 if e["message"].startswith("Traceback"))
    lambda_event = event(s3, t3, "2026-05-04T10:15:02.120Z\tc0f5a1d2\tERROR\t" + node)
    c = client()
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", {"events": [header1], "nextToken": "page-2"}, matches_params())
        stub.add_response("filter_log_events", {"events": [last1, header2, lambda_event]}, matches_params("page-2"))
        for stream, ts, lines in ((s1, t1, lines1), (s2, t2, lines2)):
            start = (header1 if stream == s1 else header2)["timestamp"]
            end = (last1 if stream == s1 else header2)["timestamp"]
            assert start >= ts
            stub.add_response(
                "filter_log_events",
                {"events": lines},
                {
                    "logGroupName": GROUP,
                    "logStreamNames": [stream],
                    "startTime": start - 2000,
                    "endTime": end + 5000,
                    "limit": 10_000,
                },
            )
        cw = source(c)
        issues = list(cw.list_issues())
        stub.assert_no_pending_responses()
    assert cw.calls == 4, "2 pages of matches + 2 context reads; the Lambda event was whole already"
    assert [(i.title, i.count) for i in issues] == [
        ("ZeroDivisionError: division by zero", 2),
        ("TypeError: Cannot read properties of undefined (reading 'price')", 1),
    ]
    zero = issues[0]
    assert zero.id.startswith("cloudwatch-") and zero.id == cw.list_issues().__next__().id
    assert zero.project == GROUP and zero.platform == "python"
    assert zero.first_seen is not None and zero.last_seen is not None and zero.first_seen < zero.last_seen
    assert zero.culprit == "/srv/app/releases/3/python/shop/cart.py in average_item_price"
    assert zero.permalink is not None and zero.permalink.startswith("https://eu-west-1.console.aws.amazon.com/")
    assert "$252Fecs$252Fshop-web" in zero.permalink
    latest = cw.latest_event(zero.id)
    assert latest.issue is not None and latest.issue.id == zero.id and latest.issue_id == zero.id
    assert ("log_stream", s2) in latest.tags, "the latest occurrence is the later one"
    assert latest.exceptions[0].frames[-1].function == "average_item_price"
    assert cw.calls == 4, "latest_event reuses this process's scan"


def test_scan__id_is_the_fingerprint_of_the_text_source() -> None:
    """The issue id is the traceback's own fingerprint: a `triage --traceback` of the same crash and a
    later poll agree, so markers dedup across runs and processes."""
    node = (RAW / "node_esm_async.txt").read_text()
    c = client()
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", {"events": [event("s", END_MS - 1000, node)]}, matches_params())
        issue = next(source(c).list_issues())
    assert issue.id == "cloudwatch-" + parse_traceback(node).event_id[:20]  # type: ignore[index]


def test_scan__more_pages_than_allowed_stops_at_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    c = client()
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", {"events": [], "nextToken": "t1"}, matches_params())
        stub.add_response("filter_log_events", {"events": [], "nextToken": "t2"}, matches_params("t1"))
        cw = source(c, cloudwatch_max_pages=2)
        assert list(cw.list_issues()) == []
        stub.assert_no_pending_responses()
    assert cw.calls == 2
    assert "SENTRY_AUTOFIX_CLOUDWATCH_MAX_PAGES" in caplog.text


def test_scan__context_budget_zero_uses_matched_lines_only() -> None:
    """With SENTRY_AUTOFIX_CLOUDWATCH_CONTEXT=0 no extra call is made: header lines without their frames
    are not an error anyone can place, so nothing is reported rather than a frameless guess."""
    lines = per_line("s", END_MS - 5000, (RAW / "java_cause.txt").read_text())
    hits = [e for e in lines if "Exception" in e["message"]]
    c = client()
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", {"events": hits}, matches_params())
        cw = source(c, cloudwatch_context_fetches=0)
        issues = list(cw.list_issues())
    assert cw.calls == 1
    assert issues == []


def test_scan__log_group_arn_and_project_override() -> None:
    """ARNs go in logGroupIdentifier; poll's --project names the log groups for this scan."""
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/checkout"
    c = client()
    params = {**matches_params(), "logGroupIdentifier": arn}
    del params["logGroupName"]
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", {"events": []}, params)
        assert list(source(c).list_issues(projects=[arn])) == []
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "error", "needle"),
    [
        ("AccessDeniedException", SourceAuthError, "logs:FilterLogEvents"),
        ("ResourceNotFoundException", SourceNotFound, "SENTRY_AUTOFIX_CLOUDWATCH_LOG_GROUPS"),
        ("InvalidParameterException", ConfigError, "SENTRY_AUTOFIX_CLOUDWATCH_FILTER_PATTERN"),
    ],
)
def test_errors__name_what_to_fix(code: str, error: type[Exception], needle: str) -> None:
    c = client()
    with Stubber(c) as stub:
        stub.add_client_error(
            "filter_log_events", service_error_code=code, service_message="nope", http_status_code=400
        )
        with pytest.raises(error, match=needle):
            list(source(c).list_issues())


def test_errors__no_log_groups_and_unknown_issue() -> None:
    with pytest.raises(ConfigError, match="SENTRY_AUTOFIX_CLOUDWATCH_LOG_GROUPS"):
        list(CloudWatchSource(Settings(), client=client()).list_issues())
    c = client()
    with Stubber(c) as stub:
        stub.add_response("filter_log_events", {"events": []}, matches_params())
        with pytest.raises(SourceNotFound, match="SENTRY_AUTOFIX_CLOUDWATCH_WINDOW"):
            source(c).latest_event("cloudwatch-0123456789abcdef0123")
    with pytest.raises(SourceNotFound, match="not a CloudWatch issue id"):
        source(client()).get_issue("12345")


def test_comments__cloudwatch_has_none() -> None:
    cw = source(client())
    cw.add_comment("cloudwatch-x", "hello")
    assert cw.list_comments("cloudwatch-x") == []
    assert cw.calls == 0
