"""Follow a Sentry issue's life on GitHub: resolved, regressed, escalating (SPEC §7, §8, §10).

A forwarded Sentry `issue` webhook (via the relay's `repository_dispatch`, or a webhook body) is
turned into a `LifecycleEvent`; `handle_lifecycle` then acts on the PRs/issues carrying the
issue's marker through a small `IssueTracker` protocol:

| Sentry                           | triage issue                    | open autofix PR |
|----------------------------------|---------------------------------|-----------------|
| `resolved`                       | closed (completed), with a comment | comment       |
| `unresolved`, substatus `regressed` | reopened, with a comment (comment if open) | comment |
| `unresolved`, substatus `escalating` | comment with the new counts  | comment         |

PRs are never closed or merged: a human decides. Every step is idempotent (a closed issue is not
closed again, an open one not reopened).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sentry_autofix import neutral
from sentry_autofix.errors import CodeHostError, Forbidden, NotFound, RateLimited, SourceError
from sentry_autofix.markers import MARKER_PREFIX, MarkedItem, issue_ids_in
from sentry_autofix.models import IssueInfo
from sentry_autofix.sources import ErrorSource

log = logging.getLogger(__name__)

Transition = Literal["resolved", "regressed", "escalating"]


class IssueTracker(Protocol):
    """The GitHub operations the lifecycle needs (PRs are issues for comments and state)."""

    def find_by_marker(self, issue_id: str) -> list[MarkedItem]:
        """PRs and issues, open or closed, whose body carries the issue's marker."""
        ...

    def comment(self, number: int, body: str) -> None: ...

    def close(self, number: int) -> None: ...

    def reopen(self, number: int) -> None: ...


@dataclass(frozen=True)
class LifecycleEvent:
    transition: Transition
    issue: IssueInfo


@dataclass
class LifecycleOutcome:
    transition: Transition
    actions: list[str] = field(default_factory=list)
    """What was done, e.g. `closed issue #12`, `commented on PR #13`."""


def lifecycle_event(action: str | None, substatus: str | None, issue: IssueInfo) -> LifecycleEvent | None:
    """Which transition a Sentry `issue` webhook action means, if any we act on."""
    if action == "resolved":
        return LifecycleEvent("resolved", issue)
    if action == "unresolved" and substatus == "regressed":
        return LifecycleEvent("regressed", issue)
    if action == "unresolved" and substatus == "escalating":
        return LifecycleEvent("escalating", issue)
    return None


def event_from_payload(payload: Mapping[str, Any]) -> LifecycleEvent | None:
    """From the relay's `client_payload` (flat: issue_id, action, substatus, …) or a whole Sentry
    `issue` webhook body (`action` + `data.issue`)."""
    from sentry_autofix.sources.sentry_event import parse_issue

    data = payload.get("data")
    if isinstance(data, dict) and isinstance(data.get("issue"), dict):
        issue = parse_issue(data["issue"])
        action = payload.get("action")
        return lifecycle_event(action if isinstance(action, str) else None, issue.substatus, issue)
    issue_id = str(payload.get("issue_id") or "")
    if not issue_id.isdigit():
        return None
    issue = IssueInfo(
        id=issue_id,
        short_id=_opt_str(payload.get("short_id")),
        project=_opt_str(payload.get("project")),
        title=_opt_str(payload.get("title")),
        permalink=_opt_str(payload.get("web_url")),
        level=_opt_str(payload.get("level")),
        substatus=_opt_str(payload.get("substatus")),
    )
    action = payload.get("action")
    return lifecycle_event(action if isinstance(action, str) else None, issue.substatus, issue)


def _opt_str(value: Any) -> str | None:
    return str(value)[:1000] if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def handle_lifecycle(
    event: LifecycleEvent, tracker: IssueTracker, source: ErrorSource | None = None
) -> LifecycleOutcome:
    """Act on the marked PRs/issues of `event.issue`; `source` refreshes the counts if given."""
    issue = event.issue
    if event.transition == "escalating" and source is not None:
        try:
            issue = source.get_issue(issue.id)
        except SourceError as exc:
            log.warning("could not refresh counts of Sentry issue %s: %s", issue.id, exc)
    outcome = LifecycleOutcome(event.transition)
    items = sorted(
        (item for item in tracker.find_by_marker(issue.id) if issue.id in item.issue_ids), key=lambda i: i.number
    )
    if not items:
        log.info("no PR or issue carries the marker of Sentry issue %s: nothing to do", issue.id)
    for item in items:
        what = f"{'PR' if item.kind == 'pr' else 'issue'} #{item.number}"
        if event.transition == "resolved":
            if item.state != "open":
                continue
            if item.kind == "issue":
                tracker.comment(item.number, resolved_text(issue, pr=False))
                tracker.close(item.number)
                outcome.actions.append(f"closed {what}")
            else:
                tracker.comment(item.number, resolved_text(issue, pr=True))
                outcome.actions.append(f"commented on {what}")
        elif event.transition == "regressed":
            if item.kind == "issue" and item.state == "closed":
                tracker.reopen(item.number)
                tracker.comment(item.number, regressed_text(issue))
                outcome.actions.append(f"reopened {what}")
            elif item.state == "open":
                tracker.comment(item.number, regressed_text(issue))
                outcome.actions.append(f"commented on {what}")
        elif item.state == "open":
            tracker.comment(item.number, escalating_text(issue))
            outcome.actions.append(f"commented on {what}")
    return outcome


# --- comment texts: untrusted text only as inline code ------------------------------------------


def _label(issue: IssueInfo) -> str:
    name = _code(issue.short_id or issue.id)
    link = neutral.safe_url(issue.permalink) if (issue.permalink or "").startswith("https://") else None
    return f"[{name}]({link})" if link else name


def _code(text: str, limit: int = 200) -> str:
    """Inline code: no mention, HTML, link or marker inside it is interpreted by GitHub."""
    return neutral.md_code(text, limit) or "`(no title)`"


def _title_line(issue: IssueInfo) -> str:
    return f"\n\nError: {_code(issue.title)}" if issue.title else ""


def resolved_text(issue: IssueInfo, pr: bool) -> str:
    if pr:
        return (
            f"Sentry marked {_label(issue)} as **resolved**.{_title_line(issue)}\n\n"
            "If the fix landed elsewhere, this pull request may no longer be needed; review before merging "
            "or close it."
        )
    return f"Sentry marked {_label(issue)} as **resolved**: closing this issue.{_title_line(issue)}"


def regressed_text(issue: IssueInfo) -> str:
    return (
        f"Sentry reports a **regression** of {_label(issue)}: the error is back after being resolved."
        f"{_title_line(issue)}"
    )


def escalating_text(issue: IssueInfo) -> str:
    counts = []
    if issue.count is not None:
        counts.append(f"{issue.count:,} events")
    if issue.user_count is not None:
        counts.append(f"{issue.user_count:,} users affected")
    if issue.last_seen is not None:
        counts.append(f"last seen {issue.last_seen:%Y-%m-%d %H:%M} UTC")
    tail = f": {', '.join(counts)}." if counts else "."
    return f"Sentry marks {_label(issue)} as **escalating**{tail}{_title_line(issue)}"


# --- GitHub through PyGithub --------------------------------------------------------------------


class PyGithubTracker:
    """`IssueTracker` over PyGithub: one search call finds the marked items (open and closed)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        repository: str,
        seconds_between_writes: float | None = 1.0,
        gh: Any = None,
    ) -> None:
        from github import Auth, Github

        self.repository = repository
        # PyGithub throttles and retries on its own (SPEC §10): keep the waits short and bounded.
        self.gh = gh or Github(
            auth=Auth.Token(token),
            base_url=api_url.rstrip("/"),
            retry=2,
            timeout=20,
            seconds_between_requests=None,
            seconds_between_writes=seconds_between_writes,
        )
        self._objects: dict[int, Any] = {}

    def find_by_marker(self, issue_id: str) -> list[MarkedItem]:
        from github import GithubException

        query = f'repo:{self.repository} "{MARKER_PREFIX}={issue_id}" in:body'
        try:
            with _translated("search"):
                return self._search(query, issue_id)
        except CodeHostError as exc:
            # Some tokens may not mix issues and PRs in one search (422): search each kind.
            cause = exc.__cause__
            if not isinstance(cause, GithubException) or cause.status != 422 or "is:issue" not in str(cause.data):
                raise
        with _translated("search"):
            return self._search(query + " is:issue", issue_id) + self._search(query + " is:pull-request", issue_id)

    def _search(self, query: str, issue_id: str) -> list[MarkedItem]:
        items = []
        for number, result in enumerate(self.gh.search_issues(query)):
            if number >= 100:
                break
            ids = issue_ids_in(result.body)
            if issue_id not in ids:
                continue  # search matches words; the marker itself must be there
            self._objects[result.number] = result
            items.append(
                MarkedItem(
                    number=result.number,
                    kind="pr" if result.pull_request is not None else "issue",
                    state="closed" if result.state == "closed" else "open",
                    url=result.html_url,
                    issue_ids=frozenset(ids),
                )
            )
        return items

    def _issue(self, number: int) -> Any:
        if number not in self._objects:
            with _translated("get issue"):
                self._objects[number] = self.gh.get_repo(self.repository, lazy=True).get_issue(number)
        return self._objects[number]

    def comment(self, number: int, body: str) -> None:
        with _translated("comment"):
            self._issue(number).create_comment(body)

    def close(self, number: int) -> None:
        with _translated("close"):
            self._issue(number).edit(state="closed", state_reason="completed")

    def reopen(self, number: int) -> None:
        with _translated("reopen"):
            self._issue(number).edit(state="open")


class _translated:
    """Translate PyGithub's exceptions once, at the seam."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc is None:
            return False
        from github import GithubException, RateLimitExceededException

        if isinstance(exc, RateLimitExceededException):
            raise RateLimited(f"GitHub rate limit during {self.what}: try again later") from exc
        if isinstance(exc, GithubException):
            message = f"GitHub {self.what} failed: {exc.status} {str(exc.data)[:200] if exc.data else ''}"
            if exc.status == 404:
                raise NotFound(message + " — check GITHUB_REPOSITORY") from exc
            if exc.status in (401, 403):
                raise Forbidden(message + " — the workflow needs `issues: write` and `pull-requests: write`") from exc
            raise CodeHostError(message) from exc
        return False
