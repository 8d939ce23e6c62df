"""The Rollbar source with `responses` (no network): real pyrollbar payloads wrapped in the API's
envelopes from Rollbar's own test fixtures (tests/fixtures/rollbar/PROVENANCE.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import responses

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceNotFound
from sentry_autofix.markers import state_comment
from sentry_autofix.sources.rollbar import RollbarSource, event_from_rollbar, event_from_webhook
from sentry_autofix.triage import build_triage

from ..gitrepo import make_repo

FIX = Path(__file__).resolve().parents[1] / "fixtures"
API = "https://api.rollbar.com/api/1"
TOKEN = "rollbar-read-token-0123456789abcdef"


def load(name: str) -> Any:
    return json.loads((FIX / "rollbar" / name).read_text())


def source() -> RollbarSource:
    return RollbarSource(Settings(rollbar_access_token=TOKEN), sleep=lambda _s: None)


def instance(payload: str, occurrence_id: int, item_id: int) -> dict[str, Any]:
    """The API's instance envelope (Rollbar's fixture) around a real SDK payload's `data`."""
    envelope = load("mcp_occurrence.json")
    envelope["result"].update(id=occurrence_id, item_id=item_id, data=load(payload)["data"])
    return envelope


def test_event_from_rollbar__trace_chain_root_cause_first_with_code_lines() -> None:
    """pyrollbar's trace_chain lists PricingError then its cause KeyError; the event puts the cause first,
    and each frame's `code` is the context line mapping verifies against the workspace."""
    event = event_from_rollbar(load("payload_trace_chain.json")["data"])
    assert [e.type for e in event.exceptions] == ["KeyError", "PricingError"]
    crash = event.exceptions[0].frames[-1]
    assert (crash.abs_path, crash.lineno, crash.function) == (
        "/srv/app/releases/3/python/shop/pricing.py",
        8,
        "convert",
    )
    assert crash.context_line == "return amount * RATES[currency]"
    assert event.platform == "python" and event.environment == "production" and event.release == "3"
    assert event.permalink is not None and event.permalink.startswith("https://rollbar.com/instance/uuid?uuid=")


def test_event_from_rollbar__sdk_payload_maps_onto_the_repo(tmp_path: Path) -> None:
    """A real Rollbar occurrence from /srv/app/releases/3 lands on the repo's shop/pricing.py."""
    repo = tmp_path / "repo"
    shutil.copytree(FIX / "tracebacks" / "apps" / "python", repo)
    make_repo(repo, {})
    report = build_triage(event_from_rollbar(load("payload_trace_chain.json")["data"]), repo, Settings())
    assert report.suspects[0].path == "shop/pricing.py"
    assert any(f.verified for f in report.frames if f.path == "shop/pricing.py")


def test_event_from_rollbar__message_holding_a_traceback_and_vendor_fixture() -> None:
    data = {"body": {"message": {"body": (FIX / "tracebacks" / "raw" / "go_divide.txt").read_text()}}}
    event = event_from_rollbar(data)
    assert event.platform == "go" and event.exceptions[0].frames[-1].function == "(*Cart).Average"
    vendor = event_from_rollbar(load("mcp_occurrence.json")["result"]["data"])
    assert vendor.headline == "TypeError: Cannot read property 'foo' of undefined"
    assert vendor.platform == "node"


def test_event_from_webhook__occurrence_with_item() -> None:
    body = {
        "event_name": "occurrence",
        "data": {"item": load("mcp_item.json")["result"], "occurrence": load("payload_trace.json")["data"]},
    }
    event = event_from_webhook(body)
    assert event.issue is not None and event.issue.id == "rollbar-1" and event.issue_id == "rollbar-1"
    assert event.headline == "ZeroDivisionError: division by zero"


@responses.activate
def test_latest_event__item_then_its_last_occurrence_two_calls() -> None:
    item = load("mcp_item.json")
    responses.get(f"{API}/item/1", json=item)
    responses.get(f"{API}/instance/999", json=instance("payload_trace.json", 999, 1))
    rb = source()
    event = rb.latest_event("rollbar-1")
    assert rb.calls == 2
    assert event.issue is not None and event.issue.id == "rollbar-1" and event.event_id == "999"
    assert event.exceptions[0].frames[-1].function == "average_item_price"
    assert responses.calls[0].request.headers["X-Rollbar-Access-Token"] == TOKEN


@responses.activate
def test_list_issues__pages_until_total_count_most_frequent_first() -> None:
    listing = load("mcp_list_items.json")
    base_item = listing["result"]["items"][0]
    page1 = {
        **listing,
        "result": {
            **listing["result"],
            "total_count": 3,
            "items": [base_item, {**base_item, "id": 2, "total_occurrences": 500, "level": "critical"}],
        },
    }
    page2 = {
        **listing,
        "result": {
            **listing["result"],
            "page": 2,
            "total_count": 3,
            "items": [{**base_item, "id": 3, "total_occurrences": 5}],
        },
    }
    responses.get(
        f"{API}/items", json=page1, match=[responses.matchers.query_param_matcher({"status": "active", "page": "1"})]
    )
    responses.get(
        f"{API}/items", json=page2, match=[responses.matchers.query_param_matcher({"status": "active", "page": "2"})]
    )
    rb = source()
    issues = list(rb.list_issues())
    assert [(i.id, i.count, i.level) for i in issues] == [
        ("rollbar-2", 500, "fatal"),
        ("rollbar-1", 50, "error"),
        ("rollbar-3", 5, "error"),
    ]
    assert rb.calls == 2
    assert issues[0].status == "unresolved" and issues[0].first_seen is not None


@responses.activate
def test_comments__posted_and_read_back_for_poll_claims() -> None:
    text = state_comment("in-progress", "Picked by a scheduled poll.")
    responses.post(f"{API}/item/1/comments", json={"err": 0, "result": {"id": 77, "text": text}})
    responses.get(
        f"{API}/item/1/comments",
        json={
            "err": 0,
            "result": {
                "comments": [
                    {"id": 76, "text": "old", "timestamp": 1700000000},
                    {"id": 77, "text": text, "timestamp": 1700000100},
                ]
            },
        },
    )
    rb = source()
    rb.add_comment("rollbar-1", text)
    assert json.loads(responses.calls[0].request.body) == {"comment": text}
    comments = rb.list_comments("rollbar-1")
    assert [c.id for c in comments] == ["77", "76"], "newest first, as poll reads Sentry's"


@responses.activate
def test_errors__name_the_setting() -> None:
    responses.get(f"{API}/item/1", status=401, json=load("mcp_error.json"))
    with pytest.raises(SourceAuthError, match="ROLLBAR_ACCESS_TOKEN"):
        source().get_issue("rollbar-1")
    responses.get(f"{API}/item/2", status=404, json={"err": 1, "message": "Item not found"})
    with pytest.raises(SourceNotFound, match="ROLLBAR_URL"):
        source().get_issue("rollbar-2")
    with pytest.raises(SourceNotFound, match="not a Rollbar item id"):
        source().get_issue("datadog-abc")
    with pytest.raises(ConfigError, match="ROLLBAR_ACCESS_TOKEN"):
        RollbarSource(Settings())


@responses.activate
def test_retries__a_429_is_waited_out_once() -> None:
    responses.get(f"{API}/item/1", status=429, headers={"Retry-After": "2"}, json={"err": 1, "message": "rate limited"})
    responses.get(f"{API}/item/1", json=load("mcp_item.json"))
    waits: list[float] = []
    rb = RollbarSource(Settings(rollbar_access_token=TOKEN), sleep=waits.append)
    assert rb.get_issue("rollbar-1").title == "TypeError: Cannot read property 'foo' of undefined"
    assert waits == [2.0] and rb.calls == 2
