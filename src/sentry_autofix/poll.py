"""`sentry-autofix poll`: pick the Sentry issues worth fixing now, and fan them out.

Selection (SPEC §3, §4, §11):
1. the code host lists the open PRs/MRs/issues carrying our body marker (already handled; GitHub:
   one search call);
2. Sentry's organization issues endpoint lists unresolved issues matching the filters, sorted by
   impact, across the configured projects, page by page (`Link` cursors) until enough are picked;
3. per remaining candidate, one comment listing: a fresh `in-progress` comment of ours means
   another run has it (a stale one is taken over); N `failed` comments mean we stop retrying;
4. optionally a claim (`in-progress` comment) on each pick, so an overlapping poll skips it.

Outputs: a `strategy.matrix` JSON (stdout, and the `matrix` output under Actions), one triggered
run per issue (`repository_dispatch`, a GitLab pipeline), or a plain listing (one issue per line)
for sequential processing.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from sentry_autofix import delivery, neutral
from sentry_autofix.config import Settings
from sentry_autofix.delivery import CodeHost, Trigger
from sentry_autofix.errors import AutofixError, ConfigError, SourceAuthError, SourceError
from sentry_autofix.markers import DELIVERED_STATES, comment_state, state_comment
from sentry_autofix.models import IssueInfo
from sentry_autofix.sources import build_source, is_issue_ref
from sentry_autofix.sources.sentry import SentryComment

log = logging.getLogger(__name__)

MAX_MATRIX_JOBS = 256
"""GitHub Actions runs at most 256 jobs per matrix."""
MAX_OUTPUT_BYTES = 1024 * 1024
"""One step output may hold at most 1 MiB."""
MAX_DISPATCH_KEYS = 10
MAX_DISPATCH_BYTES = 64 * 1024
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SHORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


# --- the seams poll needs ----------------------------------------------------------------------


class PollSource(Protocol):
    """The part of the Sentry client poll uses (`sources.sentry.SentryClient` implements it)."""

    org: str | None

    def list_issues(
        self,
        project: str | None = None,
        query: str = "is:unresolved",
        limit: int = 100,
        stats_period: str | None = None,
        *,
        projects: Sequence[str] = (),
        environments: Sequence[str] = (),
        sort: str | None = None,
    ) -> Iterator[IssueInfo]: ...

    def list_comments(self, issue_id: str) -> list[SentryComment]: ...

    def add_comment(self, issue_id: str, text: str) -> None: ...


# --- selection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What makes an issue worth picking; defaults come from Settings (SENTRY_AUTOFIX_POLL_*)."""

    projects: tuple[str, ...] = ()
    min_events: int = 1
    period: str = "24h"
    levels: tuple[str, ...] = ("error", "fatal")
    priorities: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    query: str = ""
    sort: str = "freq"
    max_issues: int = 5
    scan_limit: int = 300
    max_failures: int = 3
    stale_after: timedelta = timedelta(hours=2)
    claim: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Filters:
        values: dict[str, Any] = {
            "projects": tuple(settings.sentry_projects),
            "min_events": settings.poll_min_events,
            "period": settings.poll_period,
            "levels": tuple(settings.poll_levels),
            "priorities": tuple(settings.poll_priorities),
            "environments": tuple(settings.poll_environments),
            "query": settings.poll_query,
            "sort": settings.poll_sort,
            "max_issues": settings.poll_max_issues,
            "scan_limit": settings.poll_scan_limit,
            "max_failures": settings.poll_max_failures,
            "stale_after": timedelta(minutes=settings.poll_stale_minutes),
            "claim": settings.poll_claim,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        filters = cls(**values)
        if not re.fullmatch(r"[1-9][0-9]{0,4}[smhdw]", filters.period):
            raise ConfigError(
                f"--period / SENTRY_AUTOFIX_POLL_PERIOD: expected e.g. 24h or 14d, got {filters.period!r}"
            )
        if filters.min_events < 0:
            raise ConfigError("--min-events / SENTRY_AUTOFIX_POLL_MIN_EVENTS must be 0 or more")
        for word in (*filters.levels, *filters.priorities):
            if not re.fullmatch(r"[a-z]{1,20}", word):
                raise ConfigError(f"--level / --priority: {word!r} is not a Sentry level or priority")
        if not 1 <= filters.max_issues <= MAX_MATRIX_JOBS:
            raise ConfigError(f"--max-issues must be between 1 and {MAX_MATRIX_JOBS} (a matrix holds 256 jobs)")
        for project in filters.projects:
            if not _SLUG.match(project):
                raise ConfigError(f"SENTRY_PROJECTS / --project: {project!r} is not a project slug or id")
        return filters

    def sentry_query(self) -> str:
        """The Sentry search string: the server does the filtering, we re-check what we can."""
        terms = ["is:unresolved"]
        if self.levels:
            terms.append(_one_or_list("level", self.levels))
        if self.priorities:
            terms.append(_one_or_list("issue.priority", self.priorities))
        if self.min_events > 0:
            terms.append(f"times_seen:>={self.min_events}")
        if self.query.strip():
            terms.append(self.query.strip())
        return " ".join(terms)


def _one_or_list(key: str, values: Sequence[str]) -> str:
    return f"{key}:{values[0]}" if len(values) == 1 else f"{key}:[{','.join(values)}]"


@dataclass(frozen=True)
class Skip:
    issue_id: str
    short_id: str | None
    reason: str


@dataclass
class PollResult:
    selected: list[IssueInfo] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    scanned: int = 0
    taken_over: list[str] = field(default_factory=list)
    """Issues picked although an `in-progress` comment existed, because it was stale."""


def select_issues(
    source: PollSource,
    handled: CodeHost | None,
    filters: Filters,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    run_link: str | None = None,
) -> PollResult:
    """Pick up to `filters.max_issues` issues; every decision is recorded in the result."""
    result = PollResult()
    open_ids: dict[str, str] = {}
    """Sentry issue id → the open PR/MR or issue that handles it, as the host writes it."""
    if handled is None:
        log.warning("no code host configured: open PRs and issues are not checked")
    else:
        for item in handled.open_marked():
            if item.state == "open":
                for issue_id in item.issue_ids:
                    open_ids[issue_id] = handled.ref(item.kind, item.number)
    claim = filters.claim
    listing = source.list_issues(
        query=filters.sentry_query(),
        limit=filters.scan_limit,
        stats_period=filters.period,
        projects=filters.projects,
        environments=filters.environments,
        sort=filters.sort,
    )
    seen: set[str] = set()
    for issue in listing:
        # Sorting by frequency while counts move can repeat an issue on the next page.
        if issue.id in seen:
            continue
        seen.add(issue.id)
        result.scanned += 1
        reason = _filter_reason(issue, filters)
        if reason is None and not is_issue_ref(issue.id):
            reason = "issue id is neither numeric nor <source>-<id>"
        if reason is None and issue.id in open_ids:
            reason = f"open {open_ids[issue.id]}"
        if reason is None:
            reason, stale = _comment_reason(source, issue.id, filters, now())
            if reason is None and stale:
                result.taken_over.append(issue.id)
        if reason is not None:
            result.skipped.append(Skip(issue.id, issue.short_id, reason))
            continue
        result.selected.append(issue)
        if claim:
            claim = _claim(source, issue.id, run_link, now())
        if len(result.selected) >= filters.max_issues:
            break
    return result


def _filter_reason(issue: IssueInfo, f: Filters) -> str | None:
    """Re-check what Sentry should already have filtered (self-hosted versions differ)."""
    if issue.status not in (None, "unresolved"):
        return f"status {issue.status}"
    if f.levels and issue.level and issue.level not in f.levels:
        return f"level {issue.level}"
    if f.priorities and issue.priority and issue.priority not in f.priorities:
        return f"priority {issue.priority}"
    # `count` is the lifetime count or the period's count: never lower than the period's, so this
    # check can only drop an issue Sentry should not have returned.
    if f.min_events > 0 and issue.count is not None and issue.count < f.min_events:
        return f"{issue.count} events < {f.min_events}"
    return None


def _comment_reason(source: PollSource, issue_id: str, f: Filters, now: datetime) -> tuple[str | None, bool]:
    """(skip reason or None, whether a stale claim is being taken over)."""
    try:
        comments = source.list_comments(issue_id)
    except SourceAuthError:
        raise
    except SourceError as exc:
        return f"comments unreadable ({exc})", False
    failures = 0
    latest: tuple[str, datetime | None] | None = None
    for comment in comments:  # newest first
        state = comment_state(comment.text)
        if state is None:
            continue
        if state == "failed":
            failures += 1
        if latest is None:
            latest = (state, comment.created)
    if failures >= f.max_failures:
        return f"gave up after {failures} failed attempts", False
    if latest is None:
        return None, False
    state, created = latest
    age = now - created if created else None
    fresh = age is not None and age < f.stale_after
    if state == "in-progress":
        if fresh:
            return f"in progress since {created:%Y-%m-%d %H:%M} UTC", False
        return None, True
    if state in DELIVERED_STATES and fresh:
        # Search results lag a freshly opened PR by up to a minute or so; trust our own comment.
        return f"{state} recently (search may lag)", False
    return None, False


def _claim(source: PollSource, issue_id: str, run_link: str | None, when: datetime) -> bool:
    """Post the `in-progress` comment; False stops claiming (the token may lack event:write).

    The time makes each claim's text unique: Sentry refuses the same text twice within an hour,
    which would leave a stale claim in place when one is taken over.
    """
    detail = f"Picked by a scheduled poll at {when:%Y-%m-%d %H:%M:%S} UTC."
    try:
        source.add_comment(issue_id, state_comment("in-progress", detail, run_link))
    except SourceAuthError as exc:
        log.warning("cannot comment on Sentry issues (%s): claims disabled for this poll", exc)
        return False
    except SourceError as exc:
        log.warning("could not claim Sentry issue %s: %s", issue_id, exc)
    return True


# --- outputs -----------------------------------------------------------------------------------


def matrix_entry(issue: IssueInfo) -> dict[str, str]:
    """Only ids and slugs go into the matrix: never titles or other text an attacker can choose
    (a workflow might paste `${{ matrix.* }}` into a script)."""
    entry = {"issue_id": issue.id}
    if issue.short_id and _SHORT_ID.match(issue.short_id):
        entry["short_id"] = issue.short_id
    else:
        entry["short_id"] = issue.id
    entry["project"] = issue.project if issue.project and _SLUG.match(issue.project) else ""
    return entry


def build_matrix(issues: Sequence[IssueInfo]) -> dict[str, list[dict[str, str]]]:
    if len(issues) > MAX_MATRIX_JOBS:
        raise ConfigError(f"a matrix holds at most {MAX_MATRIX_JOBS} jobs: lower SENTRY_AUTOFIX_POLL_MAX_ISSUES")
    return {"include": [matrix_entry(issue) for issue in issues]}


def matrix_json(issues: Sequence[IssueInfo]) -> str:
    text = json.dumps(build_matrix(issues), separators=(",", ":"))
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise ConfigError("the matrix exceeds GitHub's 1 MiB output limit: lower SENTRY_AUTOFIX_POLL_MAX_ISSUES")
    return text


def write_output(path: str | Path, name: str, value: str) -> None:
    """Append `name` to $GITHUB_OUTPUT with a random heredoc delimiter (safe for any value)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"bad output name {name!r}")
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    while delimiter in value:  # pragma: no cover - a uuid in the value is practically impossible
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def dispatch_payload(issue: IssueInfo, org: str | None) -> dict[str, Any]:
    """`client_payload` for one issue: ≤ 10 keys, < 64 KB, the relay's keys (SPEC §8, §11)."""
    payload: dict[str, Any] = {
        "issue_id": issue.id,
        "short_id": issue.short_id,
        "project": issue.project,
        "org": org,
        "action": "poll",
        "substatus": issue.substatus,
        "level": issue.level,
        "title": _one_line(issue.title or "")[:256],
        "web_url": issue.permalink if (issue.permalink or "").startswith(("https://", "http://")) else None,
        "source": "poll",
    }
    assert len(payload) <= MAX_DISPATCH_KEYS
    assert len(json.dumps(payload).encode()) < MAX_DISPATCH_BYTES
    return payload


def _one_line(text: str) -> str:
    return neutral.one_line(text)


def listing_line(issue: IssueInfo) -> str:
    """One issue per line, tab-separated; the id comes first so no line can start a workflow
    command (`::…`) whatever the title says."""
    return "\t".join(
        [
            issue.id,
            _one_line(issue.short_id or ""),
            _one_line(issue.project or ""),
            str(issue.count if issue.count is not None else ""),
            _one_line(issue.title or "")[:200],
        ]
    )


def process_sequentially(issues: Sequence[IssueInfo], handle: Callable[[IssueInfo], str]) -> dict[str, str]:
    """Fix picked issues one after another in this job (`run` on `schedule` without a matrix).

    `handle` fixes and delivers one issue and returns its status (SPEC §3); one issue's failure
    is recorded as `error` and does not stop the others.
    """
    statuses: dict[str, str] = {}
    for issue in issues:
        try:
            statuses[issue.id] = handle(issue)
        except AutofixError as exc:
            log.error("issue %s failed: %s", issue.short_id or issue.id, exc)
            statuses[issue.id] = "error"
    return statuses


# --- the command -------------------------------------------------------------------------------


def make_host(settings: Settings) -> CodeHost | None:
    """The configured code host, or None (with a warning) when its credentials are not set."""
    try:
        return delivery.build_host(settings)
    except ConfigError as exc:
        log.warning("open PRs and issues are not checked: %s", exc)
        return None


def trigger_once(
    trigger: Trigger,
    target: str,
    event_type: str,
    payload: dict[str, Any],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """One run started, or an exception naming the fix. Unlike the relay, poll has no outbox to
    come back to: a 5xx or a short `Retry-After` (≤ 30 s) is retried once here; a long wait is not
    waited out (the next poll picks the issue again)."""
    outcome = trigger.dispatch(target, event_type, payload)
    if not outcome.ok and outcome.retry:
        wait = outcome.retry_after
        if wait is None and not outcome.rate_limited and (outcome.status is None or outcome.status >= 500):
            wait = 2.0
        if wait is not None and wait <= 30:
            log.info("the code host answered %s; retrying in %.0fs", outcome.status, wait)
            sleep(wait)
            outcome = trigger.dispatch(target, event_type, payload)
    delivery.raise_for(outcome)


def poll_command(
    args: argparse.Namespace,
    settings: Settings,
    source: PollSource | None = None,
    host: CodeHost | None = None,
    trigger: Trigger | None = None,
) -> int:
    """The `poll` subcommand; collaborators may be passed in (tests), else built from settings."""
    filters = Filters.from_settings(
        settings,
        projects=tuple(args.project) if args.project else None,
        max_issues=args.max_issues,
        min_events=args.min_events,
        period=args.period,
        levels=tuple(_split(args.level)) if args.level else None,
        priorities=tuple(_split(args.priority)) if args.priority else None,
        environments=tuple(_split(args.environment)) if args.environment else None,
        query=args.query,
        claim=False if args.no_claim else None,
    )
    if source is None:
        # SENTRY_AUTOFIX_SOURCE (or --source) picks the module; every one lists issues the same way.
        source = build_source(settings)  # type: ignore[assignment]
        assert source is not None
    target = None
    if args.dispatch:
        # Credentials are checked before Sentry is asked anything.
        trigger = trigger or delivery.build_trigger(settings)
        target = delivery.default_target(settings)
    if host is None:
        host = make_host(settings)
    where = getattr(source, "name", "sentry")
    print(f"sentry-autofix: polling {where}: {filters.sentry_query()} (period {filters.period})", file=sys.stderr)
    result = select_issues(source, host, filters, run_link=settings.run_url)
    for skip in result.skipped:
        print(
            f"sentry-autofix: skip {skip.short_id or skip.issue_id} ({skip.issue_id}): {skip.reason}", file=sys.stderr
        )
    for issue_id in result.taken_over:
        print(f"sentry-autofix: taking over stale claim on {issue_id}", file=sys.stderr)
    print(
        f"sentry-autofix: picked {len(result.selected)} of {result.scanned} issues looked at",
        file=sys.stderr,
    )
    if trigger is not None and target is not None:
        for issue in result.selected:
            trigger_once(trigger, target, settings.poll_event_type, dispatch_payload(issue, source.org))
            print(f"sentry-autofix: dispatched {settings.poll_event_type} for {issue.short_id}", file=sys.stderr)
    if args.matrix:
        text = matrix_json(result.selected)
        sys.stdout.write(text + "\n")
        if settings.github_output:
            write_output(settings.github_output, "matrix", text)
            write_output(settings.github_output, "count", str(len(result.selected)))
    elif not args.dispatch:
        for issue in result.selected:
            sys.stdout.write(listing_line(issue) + "\n")
        if settings.github_output:
            write_output(settings.github_output, "count", str(len(result.selected)))
    return 0


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
