"""Follow a Sentry issue's life on the code host: resolved, regressed, escalating (SPEC §7, §8, §10).

A forwarded Sentry `issue` webhook (via the relay's trigger, or a webhook body) is turned into a
`LifecycleEvent`; `handle_lifecycle` then acts on the PRs/MRs/issues carrying the issue's marker
through the `CodeHost` seam (delivery/):

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
from typing import Any, Literal

from sentry_autofix import neutral
from sentry_autofix.delivery import CodeHost
from sentry_autofix.errors import SourceError
from sentry_autofix.models import IssueInfo
from sentry_autofix.sources import ErrorSource
from sentry_autofix.sources.sentry_event import parse_issue

log = logging.getLogger(__name__)

Transition = Literal["resolved", "regressed", "escalating"]


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


def handle_lifecycle(event: LifecycleEvent, host: CodeHost, source: ErrorSource | None = None) -> LifecycleOutcome:
    """Act on the marked PRs/issues of `event.issue`; `source` refreshes the counts if given."""
    issue = event.issue
    if event.transition == "escalating" and source is not None:
        try:
            issue = source.get_issue(issue.id)
        except SourceError as exc:
            log.warning("could not refresh counts of Sentry issue %s: %s", issue.id, exc)
    outcome = LifecycleOutcome(event.transition)
    items = sorted(
        (item for item in host.find_by_marker(issue.id) if issue.id in item.issue_ids),
        key=lambda i: i.number,
    )
    if not items:
        log.info("no PR or issue carries the marker of Sentry issue %s: nothing to do", issue.id)
    for item in items:
        what = host.ref(item.kind, item.number)
        if event.transition == "resolved":
            if item.state != "open":
                continue
            if item.kind == "issue":
                host.comment(item.kind, item.number, resolved_text(issue, pr=False))
                host.close_issue(item.number)
                outcome.actions.append(f"closed {what}")
            else:
                host.comment(item.kind, item.number, resolved_text(issue, pr=True, noun=host.noun))
                outcome.actions.append(f"commented on {what}")
        elif event.transition == "regressed":
            if item.kind == "issue" and item.state == "closed":
                host.reopen_issue(item.number, comment=regressed_text(issue))
                outcome.actions.append(f"reopened {what}")
            elif item.state == "open":
                host.comment(item.kind, item.number, regressed_text(issue))
                outcome.actions.append(f"commented on {what}")
        elif item.state == "open":
            host.comment(item.kind, item.number, escalating_text(issue))
            outcome.actions.append(f"commented on {what}")
    return outcome


# --- comment texts: untrusted text only as inline code ------------------------------------------


def _label(issue: IssueInfo) -> str:
    name = _code(issue.short_id or issue.id)
    link = neutral.safe_url(issue.permalink) if (issue.permalink or "").startswith("https://") else None
    return f"[{name}]({link})" if link else name


def _code(text: str, limit: int = 200) -> str:
    """Inline code: no mention, HTML, link or marker inside it is interpreted by GitHub or GitLab."""
    return neutral.md_code(text, limit) or "`(no title)`"


def _title_line(issue: IssueInfo) -> str:
    return f"\n\nError: {_code(issue.title)}" if issue.title else ""


def resolved_text(issue: IssueInfo, pr: bool, noun: str = "pull request") -> str:
    if pr:
        return (
            f"Sentry marked {_label(issue)} as **resolved**.{_title_line(issue)}\n\n"
            f"If the fix landed elsewhere, this {noun} may no longer be needed; review before merging "
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
