"""GitHubHost (PyGithub) against the loopback GitHub fake: dedup, labels, errors, rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.delivery.github import PR_CREATION_FORBIDDEN, GitHubHost
from sentry_autofix.errors import Conflict, Forbidden, NotFound, RateLimited
from sentry_autofix.markers import marker_for as marker
from tests.fakes.github_api import SECONDARY_LIMIT_BODY, FakeGitHub

TOKEN = "ghs_hosttest_token_0123456789"


@pytest.fixture
def gh(shared_fixtures: Path) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(shared_fixtures / "github", repo="acme/shop", token=TOKEN).start()
    yield fake
    fake.stop()


def host(gh: FakeGitHub, **over: Any) -> GitHubHost:
    values: dict[str, Any] = {
        "github_api_url": gh.url,
        "github_token": TOKEN,
        "github_repository": "acme/shop",
        "github_write_interval": 0.0,
        "github_max_wait": 3.0,
    }
    values.update(over)
    return GitHubHost(Settings(**values))


def open_pr(h: GitHubHost, branch: str, issue_id: str, draft: bool = False) -> Any:
    return h.open_pull_request(
        branch=branch,
        base="main",
        title=f"Fix {issue_id}",
        body=f"x\n\n{marker(issue_id)}\n",
        draft=draft,
        labels=["sentry-autofix"],
    )


def test_find_existing__by_owner_qualified_branch_among_many(gh: FakeGitHub) -> None:
    h = host(gh)
    for n in range(3):
        open_pr(h, f"feature/{n}", str(100 + n))
    mine = open_pr(h, "sentry-autofix/SHOP-1F", "4242")
    found = h.find_existing("4242", "sentry-autofix/SHOP-1F")
    assert found.pr is not None
    assert found.pr.number == mine.number
    assert found.issue is None
    pulls_call = next(c for c in gh.calls if c.path.endswith("/pulls") and c.method == "GET")
    assert pulls_call.query["head"] == ["acme:sentry-autofix/SHOP-1F"]
    assert host(gh).find_existing("9999", "sentry-autofix/OTHER").pr is None


def test_find_existing__a_fork_pr_with_our_branch_name_is_not_ours(gh: FakeGitHub) -> None:
    """A fork of the same owner (another name) whose head branch is `sentry-autofix/<id>`: the
    `owner:branch` filter returns it, but its head repository is not ours, so it is neither
    skipped as our fix nor updated with our text; our own PR then opens beside it."""
    h = host(gh)
    gh.add_fork_pull("sentry-autofix/SHOP-1F", "acme/shop-fork")
    assert h.find_existing("4242", "sentry-autofix/SHOP-1F").pr is None
    mine = open_pr(h, "sentry-autofix/SHOP-1F", "4242")
    found = h.find_existing("4242", "sentry-autofix/SHOP-1F").pr
    assert found is not None and found.number == mine.number


def test_find_existing__a_fork_pr_carrying_our_marker_is_not_ours(gh: FakeGitHub) -> None:
    """Found by the marker alone (no label filter configured, another branch name): a PR whose
    head lives in a fork is still not ours to skip or to rewrite."""
    h = host(gh, labels=[], issue_labels=[])
    gh.add_fork_pull("feature/mine", "acme/shop-fork", body=f"mine\n\n{marker('4242')}\n")
    assert h.find_existing("4242", "sentry-autofix/SHOP-1F").pr is None
    renamed = open_pr(h, "sentry-autofix/OLD-NAME", "4242")
    found = h.find_existing("4242", "sentry-autofix/SHOP-1F").pr
    assert found is not None and found.number == renamed.number and found.branch == "sentry-autofix/OLD-NAME"


def test_open_pull_request__existing_pr_for_the_branch_is_a_conflict(gh: FakeGitHub) -> None:
    """GitHub's 422 "A pull request already exists" (an overlapping run opened it) is `Conflict`,
    which the pipeline answers by updating that PR."""
    h = host(gh)
    open_pr(h, "sentry-autofix/SHOP-1F", "4242")
    with pytest.raises(Conflict, match="A pull request already exists for acme:sentry-autofix/SHOP-1F"):
        open_pr(h, "sentry-autofix/SHOP-1F", "4242")


def test_find_existing__marker_must_be_ours_not_quoted_text(gh: FakeGitHub) -> None:
    h = host(gh)
    forged = h.open_issue(title="other", body=f"quoted: {marker('4242')} in a sentence", labels=["sentry-autofix"])
    real = h.open_issue(title="[shop] boom", body=f"report\n\n{marker('4242')}\n", labels=["sentry-autofix"])
    found = h.find_existing("4242", "sentry-autofix/SHOP-1F")
    assert found.issue is not None
    assert found.issue.number == real.number != forged.number


def test_find_existing__pr_found_by_marker_when_branch_was_renamed(gh: FakeGitHub) -> None:
    h = host(gh)
    pr = open_pr(h, "renamed-branch", "4242")
    found = h.find_existing("4242", "sentry-autofix/SHOP-1F")
    assert found.pr is not None
    assert found.pr.number == pr.number
    assert found.pr.kind == "pr"


def test_open_pull_request__creates_missing_labels_once(gh: FakeGitHub) -> None:
    h = host(gh)
    open_pr(h, "sentry-autofix/A", "1")
    open_pr(h, "sentry-autofix/B", "2")
    creates = [c for c in gh.calls if c.method == "POST" and c.path.endswith("/labels") and "/issues/" not in c.path]
    assert len(creates) == 1
    assert creates[0].body["name"] == "sentry-autofix"
    assert all([lbl["name"] for lbl in p["labels"]] == ["sentry-autofix"] for p in gh.pulls())


def test_open_pull_request__forbidden_names_the_setting(gh: FakeGitHub) -> None:
    gh.forbid_pr_creation = True
    with pytest.raises(Forbidden) as err:
        open_pr(host(gh), "sentry-autofix/A", "1")
    assert str(err.value) == PR_CREATION_FORBIDDEN
    assert "Settings → Actions → General → Workflow permissions" in str(err.value)


def test_open_pull_request__draft_unsupported_falls_back_to_ready(gh: FakeGitHub) -> None:
    gh.inject(
        "POST",
        r"/pulls$",
        422,
        {
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": "Draft pull requests are not supported in this repository.",
                }
            ],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        },
    )
    pr = open_pr(host(gh), "sentry-autofix/A", "1", draft=True)
    assert pr.draft is False
    assert len(gh.pulls()) == 1


def test_secondary_rate_limit__waits_retry_after_then_succeeds(gh: FakeGitHub) -> None:
    gh.inject("POST", r"/issues$", 403, SECONDARY_LIMIT_BODY, {"retry-after": "1"})
    start = time.monotonic()
    item = host(gh).open_issue(title="t", body="b", labels=[])
    assert time.monotonic() - start >= 0.9
    assert item.number == 1
    assert [c.status for c in gh.calls if c.path.endswith("/issues")] == [403, 201]


def test_429__is_retried_too(gh: FakeGitHub) -> None:
    gh.inject("GET", r"/pulls$", 429, {"message": "Too Many Requests"}, {"retry-after": "0"})
    assert host(gh).find_existing("1", "sentry-autofix/X").pr is None


def test_rate_limit__wait_over_budget_gives_up_at_once(gh: FakeGitHub) -> None:
    gh.inject("POST", r"/issues$", 403, SECONDARY_LIMIT_BODY, {"retry-after": "3600"})
    start = time.monotonic()
    with pytest.raises(RateLimited, match="SENTRY_AUTOFIX_GITHUB_MAX_WAIT"):
        host(gh).open_issue(title="t", body="b", labels=[])
    assert time.monotonic() - start < 2


def test_primary_rate_limit__reset_far_away_gives_up(gh: FakeGitHub) -> None:
    gh.inject(
        "GET",
        r"/pulls$",
        403,
        {
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits",
        },
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3000)},
    )
    with pytest.raises(RateLimited):
        host(gh).find_existing("1", "sentry-autofix/X")


def test_errors__bad_token_and_unknown_repo_name_the_setting(gh: FakeGitHub) -> None:
    with pytest.raises(Forbidden, match="GITHUB_TOKEN"):
        host(gh, github_token="ghs_wrong").find_existing("1", "b")
    with pytest.raises(NotFound, match="GITHUB_REPOSITORY"):
        host(gh, github_repository="acme/nope").find_existing("1", "b")


def test_reopen_issue__comments_then_reopens(gh: FakeGitHub) -> None:
    h = host(gh)
    item = h.open_issue(title="t", body="b", labels=["triage"])
    gh.items[item.number]["state"] = "closed"
    again = h.reopen_issue(item.number, comment="back again")
    assert again.state == "open"
    assert gh.comments[item.number] == ["back again"]


def test_dispatch_workflow__one_post_with_the_ref(gh: FakeGitHub) -> None:
    host(gh).dispatch_workflow("ci.yml", "sentry-autofix/A")
    assert gh.dispatches == [("ci.yml", {"ref": "sentry-autofix/A", "inputs": {}})]
    assert len(gh.calls) == 1


def test_ghes__api_v3_prefix_works(gh: FakeGitHub) -> None:
    h = host(gh, github_api_url=gh.url + "/api/v3")
    assert h.open_issue(title="t", body="b", labels=[]).number == 1
    assert h.default_branch() == "main"
