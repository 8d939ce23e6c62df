"""SentryClient against `responses` (a faithful stand-in for Sentry's REST API at the HTTP layer)."""

from __future__ import annotations

import json

import pytest
import responses

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceError, SourceNotFound
from sentry_autofix.sources.sentry import SentryClient

from .conftest import load_shared

BASE = "https://de.sentry.io"
TOKEN = "sntrys_test_token_value_1234567890"


def _client(org: str | None = "acme", sleeps: list[float] | None = None, now: float = 1_000.0) -> SentryClient:
    settings = Settings(sentry_url=BASE + "/", sentry_auth_token=TOKEN, sentry_org=org)
    log = sleeps if sleeps is not None else []
    return SentryClient(settings, sleep=log.append, clock=lambda: now)


@responses.activate
def test_latest_event__org_scoped_paths_bearer_auth_and_issue_attached() -> None:
    issue = load_shared("sentry/api/get-organization-issue.json")
    event = load_shared("sentry/api/get-organization-issue-event-latest.json")
    responses.get(f"{BASE}/api/0/organizations/acme/issues/1/", json=issue)
    responses.get(f"{BASE}/api/0/organizations/acme/issues/1/events/latest/", json=event)
    result = _client().latest_event("1")
    assert result.issue is not None and result.issue.short_id == issue["shortId"]
    assert result.issue_id == "1" and result.permalink == issue["permalink"]
    assert result.headline.startswith("ForbiddenError")
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)


@responses.activate
def test_latest_event__falls_back_to_legacy_issue_paths() -> None:
    responses.get(
        f"{BASE}/api/0/organizations/acme/issues/7/",
        status=404,
        json={"detail": "The requested resource does not exist"},
    )
    responses.get(f"{BASE}/api/0/issues/7/", json=load_shared("sentry/api/get-organization-issue.json"))
    responses.get(f"{BASE}/api/0/organizations/acme/issues/1/events/latest/", status=404, json={"detail": "nope"})
    responses.get(f"{BASE}/api/0/issues/1/events/latest/", json=load_shared("sentry/events/python-modern.json"))
    result = _client().latest_event("7")
    assert result.headline == "Exception: This is an example Python exception"


@responses.activate
def test_get_issue__short_id_is_resolved_through_the_org() -> None:
    responses.get(
        f"{BASE}/api/0/organizations/acme/shortids/PUMP-STATION-1/", json={"groupId": "1", "shortId": "PUMP-STATION-1"}
    )
    responses.get(
        f"{BASE}/api/0/organizations/acme/issues/1/", json=load_shared("sentry/api/get-organization-issue.json")
    )
    assert _client().get_issue("pump-station-1").id == "1"


@pytest.mark.parametrize(
    ("status", "error", "needle"),
    [
        (401, SourceAuthError, "SENTRY_AUTH_TOKEN"),
        (403, SourceAuthError, "event:read"),
        (404, SourceNotFound, "SENTRY_ORG"),
        (400, SourceError, "Invalid query"),
    ],
)
@responses.activate
def test_request__errors_name_the_fix(status: int, error: type[Exception], needle: str) -> None:
    responses.get(f"{BASE}/api/0/organizations/acme/issues/1/", status=status, json={"detail": "Invalid query"})
    responses.get(f"{BASE}/api/0/issues/1/", status=status, json={"detail": "Invalid query"})
    with pytest.raises(error, match=needle) as info:
        _client().get_issue("1")
    assert TOKEN not in str(info.value)


@responses.activate
def test_request__429_waits_until_the_rate_limit_reset_then_succeeds() -> None:
    url = f"{BASE}/api/0/organizations/acme/issues/1/"
    responses.get(url, status=429, headers={"X-Sentry-Rate-Limit-Reset": "1003", "X-Sentry-Rate-Limit-Remaining": "0"})
    responses.get(url, status=503)
    responses.get(url, json=load_shared("sentry/api/get-organization-issue.json"))
    sleeps: list[float] = []
    assert _client(sleeps=sleeps, now=1000.0).get_issue("1").id == "1"
    assert sleeps[0] == pytest.approx(3.1) and len(sleeps) == 2


@responses.activate
def test_request__gives_up_after_bounded_retries_or_an_absurd_reset() -> None:
    url = f"{BASE}/api/0/organizations/acme/issues/1/"
    responses.get(url, status=502)
    sleeps: list[float] = []
    with pytest.raises(SourceError, match="after retries: HTTP 502"):
        _client(sleeps=sleeps).get_issue("1")
    assert len(sleeps) == 3 and sum(sleeps) < 10
    responses.replace(responses.GET, url, status=429, headers={"X-Sentry-Rate-Limit-Reset": str(10**9)})
    with pytest.raises(SourceError, match="429"):
        _client().get_issue("1")


@responses.activate
def test_list_issues__follows_link_cursors_until_results_false() -> None:
    page = load_shared("sentry/api/list-organization-issues.json")
    first = f"{BASE}/api/0/projects/acme/web/issues/"

    def link(cursor: str, results: str) -> str:
        return (
            f'<{first}?cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", '
            f'<{first}?cursor={cursor}>; rel="next"; results="{results}"; cursor="{cursor}"'
        )

    responses.get(
        first,
        json=page,
        headers={"Link": link("0:100:0", "true")},
        match=[responses.matchers.query_param_matcher({"query": "is:unresolved", "limit": "100"})],
    )
    responses.get(
        first,
        json=page,
        headers={"Link": link("0:200:0", "false")},
        match=[responses.matchers.query_param_matcher({"cursor": "0:100:0"})],
    )
    issues = list(_client().list_issues(project="web"))
    assert len(issues) == 2 * len(page)
    assert len(responses.calls) == 2
    responses.reset()
    responses.get(first, json=page, headers={"Link": link("0:100:0", "true")})
    limited = list(_client().list_issues(project="web", limit=1))
    assert len(limited) == 1


@responses.activate
def test_add_comment__posts_text_and_tolerates_sentrys_duplicate_400() -> None:
    url = f"{BASE}/api/0/organizations/acme/issues/1/comments/"
    responses.post(url, status=201, json={"id": "9"})
    _client().add_comment("1", "sentry-autofix: investigating")
    assert json.loads(responses.calls[0].request.body or b"{}") == {"text": "sentry-autofix: investigating"}
    responses.replace(responses.POST, url, status=400, json={"detail": "Duplicate comment"})
    _client().add_comment("1", "sentry-autofix: investigating")


def test_client__configuration_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="SENTRY_AUTH_TOKEN"):
        SentryClient(Settings())
    with pytest.raises(ConfigError, match="SENTRY_URL"):
        SentryClient(Settings(sentry_url="sentry.example.com", sentry_auth_token="x"))
    with pytest.raises(ConfigError, match="SENTRY_ORG"):
        _client(org=None).resolve_issue_id("APP-1F")
    with pytest.raises(ConfigError, match="neither"):
        _client().resolve_issue_id("not an id!")
