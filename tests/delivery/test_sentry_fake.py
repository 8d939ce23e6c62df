"""The Sentry fake behaves like Sentry for the real client: Link-cursor pagination, auth, comments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.errors import SourceAuthError
from sentry_autofix.sources.sentry import SentryClient
from tests.fakes.sentry_api import FakeSentry

TOKEN = "sntrys_fake_pagination_token_123"


@pytest.fixture
def sentry(shared_fixtures: Path) -> Iterator[FakeSentry]:
    fake = FakeSentry(shared_fixtures / "sentry", token=TOKEN).start()
    for n in range(1, 6):
        fake.add_issue(str(n), short_id=f"SHOP-{n}", title=f"Error {n}")
    yield fake
    fake.stop()


def client(fake: FakeSentry, token: str = TOKEN) -> SentryClient:
    return SentryClient(Settings(sentry_url=fake.url, sentry_auth_token=token, sentry_org="acme"))


def test_fake_sentry__link_cursor_pagination_walks_every_page(sentry: FakeSentry) -> None:
    sentry.max_page = 2
    ids = [i.id for i in client(sentry).list_issues(limit=100)]
    assert ids == ["1", "2", "3", "4", "5"]
    assert len([c for c in sentry.calls if c.path.endswith("/issues/")]) == 3
    # a page size of 2 takes three requests, following rel="next"; results="false" ends it
    page = sentry.handle("GET", "/api/0/organizations/acme/issues/?limit=2", {"Authorization": f"Bearer {TOKEN}"}, b"")
    assert 'rel="next"; results="true"' in page[2]["Link"]
    last = sentry.handle(
        "GET", "/api/0/organizations/acme/issues/?limit=2&cursor=0:4:0", {"Authorization": f"Bearer {TOKEN}"}, b""
    )
    assert 'rel="next"; results="false"' in last[2]["Link"]
    assert [i["id"] for i in last[1]] == ["5"]


def test_fake_sentry__rate_limit_headers_and_auth(sentry: FakeSentry) -> None:
    status, _, headers = sentry.handle("GET", "/api/0/issues/1/", {"Authorization": f"Bearer {TOKEN}"}, b"")
    assert status == 200
    assert {"X-Sentry-Rate-Limit-Limit", "X-Sentry-Rate-Limit-Remaining", "X-Sentry-Rate-Limit-Reset"} <= set(headers)
    with pytest.raises(SourceAuthError):
        client(sentry, token="sntrys_wrong").get_issue("1")


def test_fake_sentry__comments_and_latest_event_through_the_client(sentry: FakeSentry) -> None:
    c = client(sentry)
    event = c.latest_event("3")
    assert event.issue is not None
    assert event.issue.short_id == "SHOP-3"
    c.add_comment("3", "hello")
    assert sentry.comments["3"] == ["hello"]
    # the same text again within the hour: Sentry's own 400
    status, body, _ = sentry.handle(
        "POST", "/api/0/issues/3/comments/", {"Authorization": f"Bearer {TOKEN}"}, b'{"text": "hello"}'
    )
    assert (status, body) == (400, {"detail": "You have already posted that comment."})
