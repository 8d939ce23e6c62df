"""API calls per poll, per error source, counted against local fakes (no network).

    .venv/bin/python bench/source_api_calls.py

For each source, `poll` (poll.select_issues, claims on) picks 5 of 30 candidate errors; then `run`
fetches the latest event of one of them. CloudWatch is measured twice: Lambda-style events (a whole
traceback per event) and container-style logs (one line per event, 30 tracebacks in 30 bursts).
Sentry's figures are bench/poll_api_calls.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import boto3
import responses
from botocore.stub import Stubber

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sentry_autofix.config import Settings  # noqa: E402
from sentry_autofix.poll import Filters, select_issues  # noqa: E402
from sentry_autofix.sources.cloudwatch import CloudWatchSource  # noqa: E402
from sentry_autofix.sources.datadog import DatadogSource  # noqa: E402
from sentry_autofix.sources.rollbar import RollbarSource  # noqa: E402

RAW = ROOT / "tests" / "fixtures" / "tracebacks" / "raw"
N, PICK = 30, 5
NOW = 1_780_000_000.0


def filters(settings: Settings) -> Filters:
    return Filters.from_settings(settings, max_issues=PICK, min_events=0, levels=())


def rollbar() -> tuple[int, int]:
    item = {
        "id": 0,
        "title": "E",
        "level": "error",
        "status": "active",
        "total_occurrences": 9,
        "last_occurrence_id": 5,
    }
    items = [{**item, "id": i + 1, "total_occurrences": 100 - i} for i in range(N)]
    api = "https://api.rollbar.com/api/1"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{api}/items", json={"err": 0, "result": {"items": items, "page": 1, "total_count": N}})
        for i in range(N):
            mock.get(f"{api}/item/{i + 1}/comments", json={"err": 0, "result": {"comments": []}})
            mock.post(f"{api}/item/{i + 1}/comments", json={"err": 0, "result": {"id": 1}})
        mock.get(f"{api}/item/1", json={"err": 0, "result": items[0]})
        data = {"body": {"message": {"body": (RAW / "python_zero.txt").read_text()}}}
        mock.get(f"{api}/instance/5", json={"err": 0, "result": {"id": 5, "data": data}})
        settings = Settings(rollbar_access_token="t")
        src = RollbarSource(settings, sleep=lambda _s: None)
        picked = select_issues(src, None, filters(settings))  # type: ignore[arg-type]
        poll_calls = src.calls
        src.latest_event(picked.selected[0].id)
        return poll_calls, src.calls - poll_calls


def datadog() -> tuple[int, int]:
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(N)]
    search = {
        "data": [
            {
                "id": i,
                "type": "error_tracking_search_result",
                "attributes": {"total_count": 10},
                "relationships": {"issue": {"data": {"id": i, "type": "issue"}}},
            }
            for i in ids
        ],
        "included": [{"id": i, "type": "issue", "attributes": {"error_type": "Error", "state": "OPEN"}} for i in ids],
    }
    api = "https://api.datadoghq.com"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{api}/api/v2/error-tracking/issues/search", json=search)
        mock.post(f"{api}/api/v1/events", json={"status": "ok"})
        mock.get(f"{api}/api/v2/error-tracking/issues/{ids[0]}", json={"data": search["included"][0]})
        record = {"id": "r", "attributes": {"custom": {"error": {"stack": (RAW / "go_divide.txt").read_text()}}}}
        mock.post(f"{api}/api/v2/spans/events/search", json={"data": [record]})
        settings = Settings(datadog_api_key="a", datadog_app_key="b")
        src = DatadogSource(settings, sleep=lambda _s: None, clock=lambda: NOW)
        picked = select_issues(src, None, filters(settings))  # type: ignore[arg-type]
        poll_calls = src.calls
        src.latest_event(picked.selected[0].id)
        return poll_calls, src.calls - poll_calls


def cloudwatch(per_line: bool) -> tuple[int, int]:
    texts = sorted(RAW.glob("*.txt"))
    events: list[dict[str, Any]] = []
    bursts: list[list[dict[str, Any]]] = []
    end = int(NOW * 1000)
    for i in range(N):
        text = texts[i % len(texts)].read_text()
        ts = end - (i + 1) * 60_000
        if per_line:
            lines = [
                {"logStreamName": f"s{i}", "timestamp": ts + n, "message": line, "eventId": f"{ts + n}"}
                for n, line in enumerate(text.rstrip("\n").split("\n"))
                if line  # CloudWatch has no empty events (the API refuses them)
            ]
            bursts.append(lines)
            events.append(
                next(
                    e
                    for e in lines
                    if "Error" in e["message"] or "panic" in e["message"] or "Exception" in e["message"]
                )
            )
        else:
            events.append({"logStreamName": f"s{i}", "timestamp": ts, "message": text, "eventId": f"{ts}"})
    client = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    settings = Settings(cloudwatch_log_groups=["/ecs/web"], cloudwatch_context_fetches=N)
    with Stubber(client) as stub:
        for _round in range(2):  # poll, then run's own scan
            stub.add_response("filter_log_events", {"events": events})
            for lines in bursts:
                stub.add_response("filter_log_events", {"events": lines})
        src = CloudWatchSource(settings, client=client, clock=lambda: NOW)
        picked = select_issues(src, None, filters(settings))  # type: ignore[arg-type]
        poll_calls = src.calls
        run_src = CloudWatchSource(settings, client=client, clock=lambda: NOW)
        run_src.latest_event(picked.selected[0].id)
        return poll_calls, run_src.calls


def main() -> None:
    print(f"{'source':<28} {'poll (pick ' + str(PICK) + ' of ' + str(N) + ')':>20} {'run (latest event)':>20}")
    for name, fn in (
        ("rollbar", rollbar),
        ("datadog", datadog),
        ("cloudwatch, lambda events", lambda: cloudwatch(False)),
        ("cloudwatch, line per event", lambda: cloudwatch(True)),
    ):
        poll_calls, run_calls = fn()
        print(f"{name:<28} {poll_calls:>20} {run_calls:>20}")


if __name__ == "__main__":
    main()
