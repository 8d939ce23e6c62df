"""SentryClient against `responses` (a faithful stand-in for Sentry's REST API at the HTTP layer)."""

from __future__ import annotations

import json

import pytest
import responses

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceError, SourceNotFound
from sentry_autofix.sources.sentry import SentryClient, commit_resolution

from .conftest import OWN_FIXTURES, load_shared

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


# --- issues resolved in a commit (sentry-autofix eval) ---------------------------------------------


def _commit_fixture(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((OWN_FIXTURES / "sentry_commit" / name).read_text(encoding="utf-8"))


def _resolved_issue(issue_id: str, in_commit: object) -> dict:  # type: ignore[type-arg]
    issue = load_shared("sentry/api/get-organization-issue.json")
    issue.update(id=issue_id, status="resolved", statusDetails={"inCommit": in_commit} if in_commit else {})
    return issue


def test_commit_resolution__reads_the_serialized_commit_and_the_update_echo() -> None:
    commit = _commit_fixture("release-last-commit.json")
    commit["id"] = "9F3C2B1A0E9D8C7B6A5F4E3D2C1B0A9F8E7D6C5B"
    got = commit_resolution(_resolved_issue("11", commit))
    assert got is not None
    assert (got.commit, got.repository, got.issue.id) == (commit["id"].lower(), "raj/raspberries", "11")
    # The bulk-update answer echoes the request: {"commit": sha, "repository": name}.
    echo = _commit_fixture("bulk-update-issues.json")["statusDetails"]["inCommit"]
    got = commit_resolution(_resolved_issue("12", echo))
    assert got is not None
    assert (got.commit, got.repository) == ("123def456abc", "getsentry/sentry")


def test_commit_resolution__refuses_ids_that_are_not_shas() -> None:
    # The schema's own example id `xyz123`, and an option smuggled in as a "sha": never a git argument.
    sample = _commit_fixture("release-last-commit.json")
    assert commit_resolution(_resolved_issue("13", sample)) is None
    assert commit_resolution(_resolved_issue("14", {**sample, "id": "--output=/tmp/x"})) is None
    assert commit_resolution(_resolved_issue("15", None)) is None


@responses.activate
def test_resolved_in_commit__scans_resolved_issues_and_keeps_commit_resolutions() -> None:
    commit = {**_commit_fixture("release-last-commit.json"), "id": "a" * 40}
    page = [_resolved_issue("21", None), _resolved_issue("22", commit), _resolved_issue("23", commit)]
    responses.get(f"{BASE}/api/0/organizations/acme/issues/", json=page)
    got = list(_client().resolved_in_commit(since="30d", limit=1))
    assert [r.issue.id for r in got] == ["22"]
    sent = responses.calls[0].request.url or ""
    assert "query=is%3Aresolved+lastSeen%3A-30d" in sent
    assert "project=-1" in sent


@responses.activate
def test_event_before_resolution__asks_for_events_up_to_the_resolution() -> None:
    issue = _resolved_issue("31", {**_commit_fixture("release-last-commit.json"), "id": "b" * 40})
    issue["activity"].append(
        {"data": {}, "dateCreated": "2018-12-01T10:00:00Z", "id": "9", "type": "set_resolved_in_commit", "user": None}
    )
    listing = load_shared("sentry/api/list-organization-issue-events.json")
    event = load_shared("sentry/api/get-organization-issue-event-latest.json")
    event_id = listing[0]["eventID"]
    responses.get(f"{BASE}/api/0/organizations/acme/issues/31/", json=issue)
    responses.get(f"{BASE}/api/0/organizations/acme/issues/31/events/", json=listing)
    responses.get(f"{BASE}/api/0/organizations/acme/issues/31/events/{event_id}/", json=event)
    got = _client().event_before_resolution("31")
    assert got.issue_id == "31"
    assert got.headline.startswith("ForbiddenError")
    listed = responses.calls[1].request.url or ""
    assert "end=2018-12-01T10%3A00%3A00" in listed
    assert "start=2018-11-06T21%3A19%3A55" in listed  # from firstSeen
