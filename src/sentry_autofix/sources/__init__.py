"""Error sources: turn a vendor's issue into an ErrorEvent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from sentry_autofix.models import ErrorEvent, IssueInfo


class ErrorSource(Protocol):
    """Where production errors come from (Sentry first)."""

    def get_issue(self, issue_id: str) -> IssueInfo: ...

    def latest_event(self, issue_id: str) -> ErrorEvent:
        """The issue's most recent event, with its `issue` filled in."""
        ...

    def list_issues(
        self,
        project: str | None = None,
        query: str = "is:unresolved",
        limit: int = 100,
        stats_period: str | None = None,
    ) -> Iterator[IssueInfo]: ...

    def add_comment(self, issue_id: str, text: str) -> None: ...
