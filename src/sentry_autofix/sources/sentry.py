"""Sentry REST API client (requests): the ErrorSource for sentry.io, region hosts and self-hosted.

Bearer auth; organization-scoped paths with the legacy `/api/0/issues/{id}/…` as fallback;
`Link`-cursor pagination; bounded retries on 429/5xx that honour `X-Sentry-Rate-Limit-Reset`
(epoch seconds; Sentry sends no Retry-After) — SPEC §10.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from sentry_autofix import __version__
from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceError, SourceNotFound
from sentry_autofix.models import ErrorEvent, IssueInfo
from sentry_autofix.retry import retry_after
from sentry_autofix.sources.sentry_event import parse_event, parse_issue

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
MAX_WAIT = 60.0
"""Longest single wait for a rate limit; beyond it we give up rather than stall the job."""
_SHORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*-[A-Za-z0-9]+$")
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_RESOLVED_ACTIVITIES = frozenset({"set_resolved_in_commit", "set_resolved_in_pull_request", "set_resolved"})
"""Activity types that mark the moment an issue was resolved (the newest one counts)."""


@dataclass(frozen=True)
class SentryComment:
    """One note on a Sentry issue (`GET /api/0/issues/{id}/comments/`)."""

    id: str
    text: str
    created: datetime | None
    user: str | None


@dataclass(frozen=True)
class CommitResolution:
    """An issue Sentry marks resolved by a commit (`statusDetails.inCommit`): a bug, and the commit
    a human fixed it with."""

    issue: IssueInfo
    commit: str
    """The fix commit's sha (`inCommit.id`), checked to be hex: it becomes a git argument."""
    repository: str | None
    """The repository Sentry knows the commit from (`inCommit.repository.name`, e.g. `acme/shop`)."""


def commit_resolution(raw: Any) -> CommitResolution | None:
    """The commit that resolved an issue, from an issue body (details or listing), if any.

    `GroupSerializer` puts the serialized Commit there (`id`, `repository{name,…}`, `dateCreated`);
    the bulk-update answer echoes the request's `{"commit", "repository"}`: both are read.
    """
    details = raw.get("statusDetails") if isinstance(raw, dict) else None
    commit = details.get("inCommit") if isinstance(details, dict) else None
    if not isinstance(commit, dict):
        return None
    sha = commit.get("id") or commit.get("commit")
    if not isinstance(sha, str) or not _SHA.match(sha):
        return None
    repo = commit.get("repository")
    name = repo.get("name") if isinstance(repo, dict) else repo
    return CommitResolution(
        issue=parse_issue(raw),
        commit=sha.lower(),
        repository=str(name)[:200] if isinstance(name, str) and name else None,
    )


class SentryClient:
    """Implements `sources.ErrorSource` against the Sentry API."""

    name = "sentry"

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.sentry_auth_token is None:
            raise ConfigError("Sentry access needs a token: set SENTRY_AUTH_TOKEN (input sentry-auth-token)")
        self.base = settings.sentry_url.rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            raise ConfigError(f"SENTRY_URL must start with https:// (got {settings.sentry_url!r})")
        self.org = settings.sentry_org
        self.timeout = settings.sentry_timeout
        self.session = session or requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {settings.sentry_auth_token.get_secret_value()}",
                "User-Agent": f"sentry-autofix/{__version__}",
                "Accept": "application/json",
            }
        )
        self._sleep = sleep
        self._clock = clock
        self._project_ids: dict[str, str] = {}

    # --- HTTP ---------------------------------------------------------------------------------

    def _wait_for(self, resp: requests.Response, attempt: int) -> float:
        reset = resp.headers.get("X-Sentry-Rate-Limit-Reset")  # epoch seconds
        try:
            if reset is not None:
                return max(0.0, float(reset) - self._clock()) + 0.1
        except ValueError:
            pass
        wait = retry_after(resp.headers.get("Retry-After"), self._clock())
        return wait if wait is not None else min(MAX_WAIT, 0.5 * float(2**attempt))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}{path}"
        last_problem = ""
        for attempt in range(MAX_ATTEMPTS):
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.Timeout:
                last_problem = f"timed out after {self.timeout:.0f}s"
                self._sleep(min(MAX_WAIT, 0.5 * 2**attempt))
                continue
            except requests.ConnectionError as exc:
                raise SourceError(
                    f"cannot reach Sentry at {self.base}: check SENTRY_URL ({type(exc).__name__})"
                ) from exc
            if resp.status_code == 429 or resp.status_code >= 500:
                wait = self._wait_for(resp, attempt)
                last_problem = f"HTTP {resp.status_code}"
                if wait > MAX_WAIT or attempt == MAX_ATTEMPTS - 1:
                    break
                log.info("Sentry answered %s; retrying in %.1fs", resp.status_code, wait)
                self._sleep(wait)
                continue
            self._raise_for(resp)
            return resp
        raise SourceError(f"Sentry API {method} {path} failed after retries: {last_problem}")

    def _raise_for(self, resp: requests.Response) -> None:
        if resp.status_code < 400:
            return
        detail = _detail(resp)
        if resp.status_code == 401:
            raise SourceAuthError(f"Sentry rejected the token (401 {detail}): check SENTRY_AUTH_TOKEN")
        if resp.status_code == 403:
            raise SourceAuthError(
                f"Sentry token lacks permission (403 {detail}): give the integration the scopes "
                "event:read and project:read (event:write to comment), or check SENTRY_ORG"
            )
        if resp.status_code == 404:
            raise SourceNotFound(f"not found in Sentry (404 {detail}): check the issue id and SENTRY_ORG")
        raise SourceError(f"Sentry API error {resp.status_code}: {detail}")

    def _get_json(self, *paths: str, params: dict[str, Any] | None = None) -> Any:
        """GET the first path that exists (org-scoped first, legacy after)."""
        for i, path in enumerate(paths):
            try:
                return self.request("GET", path, params=params).json()
            except SourceNotFound:
                if i == len(paths) - 1:
                    raise
            except ValueError as exc:
                raise SourceError(f"Sentry returned a body that is not JSON for {path}") from exc
        raise AssertionError("unreachable")

    def _issue_paths(self, issue_id: str, suffix: str = "") -> list[str]:
        paths = [f"/api/0/issues/{issue_id}/{suffix}"]
        if self.org:
            paths.insert(0, f"/api/0/organizations/{self.org}/issues/{issue_id}/{suffix}")
        return paths

    # --- ErrorSource ---------------------------------------------------------------------------

    def resolve_issue_id(self, issue: str) -> str:
        issue = issue.strip()
        if issue.isdigit():
            return issue
        if _SHORT_ID.match(issue):
            if not self.org:
                raise ConfigError(f"short id {issue} needs the organization: set SENTRY_ORG")
            data = self._get_json(f"/api/0/organizations/{self.org}/shortids/{issue.upper()}/")
            group_id = data.get("groupId") if isinstance(data, dict) else None
            if not group_id:
                raise SourceNotFound(f"Sentry has no issue with short id {issue}")
            return str(group_id)
        raise ConfigError(f"--issue {issue!r} is neither a numeric Sentry issue id nor a short id like APP-1F")

    def get_issue(self, issue_id: str) -> IssueInfo:
        issue_id = self.resolve_issue_id(issue_id)
        return parse_issue(self._get_json(*self._issue_paths(issue_id)))

    def latest_event(self, issue_id: str) -> ErrorEvent:
        issue = self.get_issue(issue_id)
        raw = self._get_json(*self._issue_paths(issue.id, "events/latest/"))
        event = parse_event(raw)
        event.issue = issue
        event.issue_id = issue.id
        event.short_id = issue.short_id
        event.permalink = event.permalink or issue.permalink
        return event

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
    ) -> Iterator[IssueInfo]:
        """Issues matching `query`, following `Link` cursors until `limit` issues were yielded.

        `project` alone uses the (deprecated) project endpoint; otherwise the organization endpoint
        with `project=<id>` per entry of `projects` (slugs are resolved to ids, one call each), or
        `project=-1` — every project the token can see — when none are given.
        """
        if not self.org:
            raise ConfigError("listing issues needs the organization: set SENTRY_ORG")
        params: dict[str, Any] = {"query": query, "limit": min(100, max(1, limit))}
        if stats_period:
            params["statsPeriod"] = stats_period
        if sort:
            params["sort"] = sort
        if environments:
            params["environment"] = list(environments)
        if project and not projects:
            path = f"/api/0/projects/{self.org}/{project}/issues/"
        else:
            path = f"/api/0/organizations/{self.org}/issues/"
            params["project"] = [self.project_id(p) for p in projects] or ["-1"]
        for item in self._pages(path, params, limit, "issue"):
            yield parse_issue(item)

    def _pages(self, path: str, params: dict[str, Any], limit: int, what: str) -> Iterator[Any]:
        """Up to `limit` raw items of a listing, following `Link` cursors (`results="true"`)."""
        url: str | None = path
        seen = 0
        while url and seen < limit:
            resp = self.request("GET", url, params=params if url == path else None)
            try:
                items = resp.json()
            except ValueError as exc:
                raise SourceError(f"Sentry returned a body that is not JSON while listing {what}s") from exc
            if not isinstance(items, list):
                raise SourceError(f"Sentry's {what} listing was not a list")
            for item in items:
                if seen >= limit:
                    return
                yield item
                seen += 1
            nxt = resp.links.get("next", {})
            url = nxt.get("url") if nxt.get("results") == "true" else None

    def resolved_in_commit(self, *, since: str, limit: int, projects: Sequence[str] = ()) -> Iterator[CommitResolution]:
        """Issues resolved by a commit whose last event is within `since` (`90d`, `12h`), newest first.

        Sentry's search cannot filter on the resolution kind, so resolved issues are scanned (at
        most 10 per wanted case) and those without `statusDetails.inCommit` skipped.
        """
        if not self.org:
            raise ConfigError("listing issues needs the organization: set SENTRY_ORG")
        params: dict[str, Any] = {
            "query": f"is:resolved lastSeen:-{since}",
            "limit": 100,
            "sort": "date",
            "project": [self.project_id(p) for p in projects] or ["-1"],
        }
        found = 0
        for raw in self._pages(f"/api/0/organizations/{self.org}/issues/", params, max(100, limit * 10), "issue"):
            resolution = commit_resolution(raw)
            if resolution is not None:
                yield resolution
                found += 1
                if found >= limit:
                    return

    def issue_resolution(self, issue_id: str) -> CommitResolution | None:
        """The commit that resolved one issue (None: not resolved by a commit)."""
        issue_id = self.resolve_issue_id(issue_id)
        return commit_resolution(self._get_json(*self._issue_paths(issue_id)))

    def event_before_resolution(self, issue_id: str) -> ErrorEvent:
        """The issue's newest event from before it was resolved: the crash the fix was for.

        The resolution time is the newest `set_resolved*` activity of the issue; without one, the
        latest event.
        """
        issue_id = self.resolve_issue_id(issue_id)
        raw = self._get_json(*self._issue_paths(issue_id))
        issue = parse_issue(raw)
        activities = raw.get("activity") if isinstance(raw, dict) else None
        times = [
            _parse_time(a.get("dateCreated"))
            for a in activities or []
            if isinstance(a, dict) and a.get("type") in _RESOLVED_ACTIVITIES
        ]
        resolved = max((t for t in times if t is not None), default=None)
        if resolved is None:
            return self.latest_event(issue_id)
        start = issue.first_seen or resolved - timedelta(days=90)
        listing = self._get_json(
            *self._issue_paths(issue_id, "events/"),
            params={"start": _iso(min(start, resolved)), "end": _iso(resolved), "per_page": 1},
        )
        first = listing[0] if isinstance(listing, list) and listing else None
        event_id = (first.get("eventID") or first.get("id")) if isinstance(first, dict) else None
        if not isinstance(event_id, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", event_id):
            raise SourceNotFound(f"Sentry issue {issue_id} has no event from before its resolution at {resolved}")
        event = parse_event(self._get_json(*self._issue_paths(issue_id, f"events/{event_id}/")))
        event.issue, event.issue_id, event.short_id = issue, issue.id, issue.short_id
        event.permalink = event.permalink or issue.permalink
        return event

    def project_id(self, project: str) -> str:
        """A project's numeric id (the organization issues endpoint filters by id, not slug)."""
        project = project.strip()
        if project.isdigit():
            return project
        if project not in self._project_ids:
            try:
                data = self._get_json(f"/api/0/projects/{self.org}/{project}/")
            except SourceNotFound as exc:
                raise SourceNotFound(
                    f"Sentry has no project {project!r} in organization {self.org!r}: check SENTRY_PROJECTS"
                ) from exc
            pid = data.get("id") if isinstance(data, dict) else None
            if pid is None or not str(pid).isdigit():
                raise SourceError(f"Sentry project {project!r} has no numeric id: check SENTRY_PROJECTS")
            self._project_ids[project] = str(pid)
        return self._project_ids[project]

    def list_comments(self, issue_id: str) -> list[SentryComment]:
        """The newest comments (notes) on an issue, newest first; one page (Sentry sends 100)."""
        raw = self._get_json(*self._issue_paths(issue_id, "comments/"))
        if not isinstance(raw, list):
            raise SourceError(f"Sentry's comment listing for issue {issue_id} was not a list")
        comments = []
        for item in raw:
            data = item.get("data") if isinstance(item, dict) else None
            text = data.get("text") if isinstance(data, dict) else None
            if not isinstance(text, str):
                continue
            user = item.get("user")
            comments.append(
                SentryComment(
                    id=str(item.get("id", "")),
                    text=text[:8000],
                    created=_parse_time(item.get("dateCreated")),
                    user=str(user.get("username") or user.get("email") or user.get("id") or "")[:200]
                    if isinstance(user, dict)
                    else None,
                )
            )
        return comments

    def add_comment(self, issue_id: str, text: str) -> None:
        paths = self._issue_paths(issue_id, "comments/")
        try:
            self.request("POST", paths[0], json={"text": text[:4000]})
        except SourceError as exc:
            # The same text twice within an hour is a 400 from Sentry ("You have already posted that
            # comment."): the comment is there already.
            text_of = str(exc).lower()
            if "400" in text_of and ("duplicate" in text_of or "already posted" in text_of):
                log.info("Sentry comment already present on issue %s", issue_id)
                return
            raise


def _detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or ""
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("message")
        if isinstance(detail, str):
            return detail[:300]
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            return str(detail["message"])[:300]
        return str(body)[:300]
    if isinstance(body, list) and body and isinstance(body[0], str):
        return body[0][:300]
    return resp.reason or ""


def _iso(when: datetime) -> str:
    """UTC ISO-8601 without offset, the form Sentry's `start`/`end` parameters document."""
    return when.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
