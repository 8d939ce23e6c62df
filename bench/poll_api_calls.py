"""API calls one `sentry-autofix poll` makes for N picked issues, counted against the loopback
Sentry and GitHub fakes of tests/poll (no network). Not a timed test: it prints counts and ratios.

    .venv/bin/python bench/poll_api_calls.py

Setup per row: 600 Sentry issues over 3 projects (2 configured), of which ~1 in 8 candidates is
already handled by an open PR (found by the one GitHub search) and ~1 in 10 carries a fresh
`in progress` comment; claims on. "per-candidate search" is what a poll that looked each
candidate up on GitHub separately would have needed for the same selection.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.poll.fakes import FakeGitHub, FakeGitItem, FakeIssue, FakeSentry

from sentry_autofix.config import load_settings
from sentry_autofix.delivery.github import GitHubHost
from sentry_autofix.markers import marker_for, state_comment
from sentry_autofix.poll import Filters, select_issues
from sentry_autofix.sources.sentry import SentryClient

PROJECTS = {"backend": 11, "frontend": 12, "worker": 13}


def one_poll(n: int) -> dict[str, int]:
    with FakeSentry() as sentry, FakeGitHub() as github:
        slugs = list(PROJECTS)
        for i in range(600):
            slug = slugs[i % 3]
            sentry.add_issue(FakeIssue(8000 + i, slug, PROJECTS[slug], f"E{i}", period_counts={"24h": 1000 - i}))
        candidates = [8000 + i for i in range(600) if slugs[i % 3] != "frontend"]
        for k, issue_id in enumerate(candidates):
            if k % 8 == 3:
                github.add(FakeGitItem(k + 1, marker_for(str(issue_id)), kind="pr"))
            elif k % 10 == 5:
                sentry.add_comment(issue_id, state_comment("in-progress"), timedelta(minutes=5))
        settings = load_settings(sentry_url=sentry.url, sentry_auth_token=sentry.token, sentry_org=sentry.org)
        source = SentryClient(settings, sleep=lambda _s: None)
        gh = GitHubHost(
            load_settings(
                github_api_url=github.url,
                github_token=github.token,
                github_repository=github.repository,
                github_write_interval=0.0,
            )
        )
        filters = Filters(projects=("backend", "worker"), max_issues=n, scan_limit=1000)
        result = select_issues(source, gh, filters)
        assert len(result.selected) == n
        return {
            "picked": n,
            "looked_at": result.scanned,
            "sentry_lookups": len(sentry.calls("GET", r"^/api/0/projects/")),
            "sentry_pages": len(sentry.calls("GET", r"/organizations/acme/issues/$")),
            "sentry_comment_reads": len(sentry.calls("GET", r"/comments/$")),
            "sentry_claims": len(sentry.calls("POST", r"/comments/$")),
            "github": len(github.requests),
            "total": len(sentry.requests) + len(github.requests),
        }


def main() -> None:
    cols = ["picked", "looked_at", "sentry_lookups", "sentry_pages", "sentry_comment_reads", "sentry_claims", "github"]
    print(" | ".join(f"{c:>20}" for c in [*cols, "total", "calls/issue", "vs per-candidate search"]))
    for n in (1, 5, 20, 100, 256):
        row = one_poll(n)
        naive = row["total"] - row["github"] + row["looked_at"]
        ratio = row["total"] / naive
        cells = [str(row[c]) for c in cols] + [str(row["total"]), f"{row['total'] / n:.2f}", f"{ratio:.2f}x"]
        print(" | ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
