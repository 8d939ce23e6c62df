"""Lifecycle: Sentry resolved / regressed / escalating → GitHub, through GitHubHost (PyGithub) against the fake."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.delivery.github import GitHubHost
from sentry_autofix.lifecycle import (
    LifecycleEvent,
    event_from_payload,
    handle_lifecycle,
    lifecycle_event,
)
from sentry_autofix.markers import issue_ids_in, marker_for
from sentry_autofix.models import IssueInfo

from ..conftest import load_shared
from .fakes import FakeGitHub, FakeGitItem

ISSUE = IssueInfo(
    id="4242",
    short_id="SHOP-1F",
    title="ZeroDivisionError: @octocat <img src=x> `boom` <!-- sentry-autofix:issue=1 -->",
    permalink="https://acme.sentry.io/issues/4242/",
    count=1234,
    user_count=56,
    last_seen=datetime(2026, 11, 22, 6, 30, tzinfo=timezone.utc),
)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def tracker(github: FakeGitHub) -> GitHubHost:
    return GitHubHost(
        Settings(
            github_api_url=github.url,
            github_token=github.token,
            github_repository=github.repository,
            github_write_interval=0.0,
        )
    )


def seed(github: FakeGitHub) -> None:
    github.add(FakeGitItem(10, f"Triage\n\n{marker_for('4242')}", kind="issue", state="open"))
    github.add(FakeGitItem(11, f"Fix\n\n{marker_for('4242')}", kind="pr", state="open"))
    github.add(FakeGitItem(12, f"Old fix\n\n{marker_for('4242')}", kind="pr", state="closed"))
    github.add(FakeGitItem(13, f"Other\n\n{marker_for('42420')}", kind="issue", state="open"))


def test_lifecycle__resolved_closes_the_issue_and_comments_on_the_open_pr(github: FakeGitHub) -> None:
    seed(github)
    outcome = handle_lifecycle(LifecycleEvent("resolved", ISSUE), tracker(github))
    assert outcome.actions == ["closed issue #10", "commented on PR #11"]
    assert github.items[10].state == "closed"
    assert github.items[10].state_reason == "completed"
    assert "resolved" in github.items[10].comments[0]
    assert github.items[11].state == "open"
    assert "review before merging" in github.items[11].comments[0]
    assert github.items[12].comments == []
    assert github.items[13].comments == []
    assert len(github.calls("GET", "/search/issues")) == 1
    # Twice is a no-op for the closed issue (only the still-open PR is told again).
    again = handle_lifecycle(LifecycleEvent("resolved", ISSUE), tracker(github))
    assert again.actions == ["commented on PR #11"]
    assert len(github.items[10].comments) == 1


def test_lifecycle__regression_reopens_the_closed_issue_with_a_comment(github: FakeGitHub) -> None:
    github.add(FakeGitItem(20, marker_for("4242"), kind="issue", state="closed", state_reason="completed"))
    outcome = handle_lifecycle(LifecycleEvent("regressed", ISSUE), tracker(github))
    assert outcome.actions == ["reopened issue #20"]
    assert github.items[20].state == "open"
    assert "regression" in github.items[20].comments[0]
    patch = github.calls("PATCH", "/issues/20$")[0].json()
    assert patch == {"state": "open"}


def test_lifecycle__escalating_comments_the_new_counts(github: FakeGitHub) -> None:
    seed(github)
    outcome = handle_lifecycle(LifecycleEvent("escalating", ISSUE), tracker(github))
    assert outcome.actions == ["commented on issue #10", "commented on PR #11"]
    text = github.items[10].comments[0]
    assert "1,234 events" in text
    assert "56 users" in text
    assert "2026-11-22 06:30" in text
    assert github.items[10].state == "open"


def test_lifecycle__untrusted_title_is_inert_in_comments(github: FakeGitHub) -> None:
    seed(github)
    handle_lifecycle(LifecycleEvent("escalating", ISSUE), tracker(github))
    text = github.items[10].comments[0]
    # The title sits inside one inline code span: no mention, no HTML, no second marker.
    title_line = next(line for line in text.splitlines() if line.startswith("Error:"))
    span = re.fullmatch(r"Error: (`+)(.*)\1", title_line)
    assert span, title_line
    assert span.group(1) not in span.group(2)  # the fence is longer than any backtick run inside
    assert "<img src=x>" in span.group(2)
    assert "sentry-autofix:issue" not in text
    assert issue_ids_in(text) == set()


def test_lifecycle__nothing_marked_does_nothing(github: FakeGitHub) -> None:
    outcome = handle_lifecycle(LifecycleEvent("resolved", ISSUE), tracker(github))
    assert outcome.actions == []
    assert not github.calls("POST")
    assert not github.calls("PATCH")


def test_lifecycle__search_word_matches_without_the_exact_marker_are_ignored(github: FakeGitHub) -> None:
    github.add(FakeGitItem(30, "we talked about sentry-autofix:issue=4242 in prose", kind="issue"))
    assert handle_lifecycle(LifecycleEvent("resolved", ISSUE), tracker(github)).actions == []


def test_lifecycle__forbidden_names_the_permission(github: FakeGitHub) -> None:
    from sentry_autofix.errors import Forbidden

    github.add(FakeGitItem(10, marker_for("4242"), kind="issue"))
    github.script.extend(
        [
            (200, {"Content-Type": "application/json"}, _search_body(github, 10)),
            (403, {"Content-Type": "application/json"}, b'{"message": "Resource not accessible by integration"}'),
        ]
    )
    with pytest.raises(Forbidden, match="issues: write"):
        handle_lifecycle(LifecycleEvent("resolved", ISSUE), tracker(github))


def _search_body(github: FakeGitHub, number: int) -> bytes:
    import json

    item = github.issue_json(github.items[number])
    return json.dumps({"total_count": 1, "incomplete_results": False, "items": [item]}).encode()


def test_event_from_payload__real_issue_webhook_and_relay_payload() -> None:
    body = load_shared("sentry/webhooks/issue.created.json")
    assert event_from_payload(body) is None  # `created` is not a lifecycle transition
    resolved = copy.deepcopy(body)
    resolved["action"] = "resolved"
    event = event_from_payload(resolved)
    assert event is not None
    assert event.transition == "resolved"
    assert event.issue.id == body["data"]["issue"]["id"]
    regressed = copy.deepcopy(body)
    regressed["action"] = "unresolved"
    regressed["data"]["issue"]["substatus"] = "regressed"
    assert event_from_payload(regressed).transition == "regressed"  # type: ignore[union-attr]
    relay = {"issue_id": "4242", "short_id": "SHOP-1F", "action": "unresolved", "substatus": "escalating"}
    event = event_from_payload(relay)
    assert event is not None
    assert event.transition == "escalating"
    assert event.issue.short_id == "SHOP-1F"
    assert event_from_payload({"issue_id": "../../etc", "action": "resolved"}) is None


@pytest.mark.parametrize(
    ("action", "substatus", "expected"),
    [
        ("resolved", None, "resolved"),
        ("unresolved", "regressed", "regressed"),
        ("unresolved", "escalating", "escalating"),
        ("unresolved", "ongoing", None),
        ("ignored", "archived_forever", None),
        ("assigned", None, None),
    ],
)
def test_lifecycle_event__maps_sentry_actions(action: str, substatus: str | None, expected: str | None) -> None:
    event = lifecycle_event(action, substatus, ISSUE)
    assert (event.transition if event else None) == expected


def test_lifecycle__search_type_422_falls_back_to_two_searches(github: FakeGitHub) -> None:
    github.require_type_qualifier = True
    seed(github)
    outcome = handle_lifecycle(LifecycleEvent("resolved", ISSUE), tracker(github))
    assert outcome.actions == ["closed issue #10", "commented on PR #11"]
    assert len(github.calls("GET", "/search/issues")) == 3
