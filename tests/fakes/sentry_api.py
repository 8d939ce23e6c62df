"""A loopback fake of the Sentry REST API (issues, events, comments, issue lists).

Stands in for sentry.io / self-hosted at `SENTRY_URL`. Faithful where clients depend on it:
* bodies are Sentry's own examples (../shared/fixtures/sentry/api, from sentry-api-schema) with
  only the issue's fields replaced; events are served in the REST shape (camelCase, `entries[]`,
  `context` pairs) — `api_event_from_ingestion()` converts an SDK (ingestion-shape) event the way
  Sentry's API renders it;
* organization-scoped paths and the legacy `/api/0/issues/{id}/…` both route;
* `Authorization: Bearer` is checked (401 `{"detail": "Invalid token"}`), comments need a
  write-scoped token (403 otherwise), the same comment text twice is a 400;
* an issue's events list (`…/events/`, newest first, `start`/`end`/`per_page` honoured, summary
  items shaped like list-organization-issue-events.json) and one event by id (`…/events/{id}/`);
  the issues listing honours `is:resolved` / `is:unresolved` in `query`;
* lists paginate with `Link` headers carrying `results="true|false"` and `cursor`;
* every answer carries `X-Sentry-Rate-Limit-Limit/-Remaining/-Reset` (epoch seconds, no
  Retry-After), and `inject()` queues one-off 429/5xx answers.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._server import RoutedFake


@dataclass
class SentryCall:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int


def api_event_from_ingestion(ingest: dict[str, Any], template: dict[str, Any], group_id: str) -> dict[str, Any]:
    """Render an SDK event the way `GET …/events/latest/` returns it (REST shape)."""
    event = copy.deepcopy(template)
    values = []
    for exc in (ingest.get("exception") or {}).get("values", []):
        frames = []
        for f in (exc.get("stacktrace") or {}).get("frames", []):
            line = f.get("lineno")
            pre = f.get("pre_context") or []
            post = f.get("post_context") or []
            context = []
            if line is not None and f.get("context_line") is not None:
                context = [[line - len(pre) + i, text] for i, text in enumerate(pre)]
                context.append([line, f["context_line"]])
                context += [[line + 1 + i, text] for i, text in enumerate(post)]
            frames.append(
                {
                    "function": f.get("function"),
                    "module": f.get("module"),
                    "filename": f.get("filename"),
                    "absPath": f.get("abs_path"),
                    "lineNo": line,
                    "colNo": f.get("colno"),
                    "inApp": f.get("in_app", True),
                    "context": context,
                    "vars": f.get("vars"),
                    "package": None,
                    "platform": None,
                    "instructionAddr": None,
                    "symbol": None,
                    "symbolAddr": None,
                    "trust": None,
                    "errors": None,
                }
            )
        values.append(
            {
                "type": exc.get("type"),
                "value": exc.get("value"),
                "module": exc.get("module"),
                "mechanism": exc.get("mechanism"),
                "threadId": None,
                "rawStacktrace": None,
                "stacktrace": {"frames": frames, "framesOmitted": None, "registers": None, "hasSystemFrames": True},
            }
        )
    entries = [{"type": "exception", "data": {"values": values, "hasSystemFrames": True, "excOmitted": None}}]
    crumbs = (ingest.get("breadcrumbs") or {}).get("values", [])
    if crumbs:
        entries.append({"type": "breadcrumbs", "data": {"values": crumbs}})
    event["entries"] = entries
    event["groupID"] = group_id
    event["eventID"] = event["id"] = ingest.get("event_id", event["id"])
    event["platform"] = ingest.get("platform", event.get("platform"))
    event["release"] = None
    event["tags"] = [{"key": k, "value": v} for k, v in (ingest.get("tags") or {}).items()] + [
        {"key": "environment", "value": ingest.get("environment", "production")}
    ]
    last = values[-1] if values else {}
    event["title"] = f"{last.get('type')}: {last.get('value')}"
    event["metadata"] = {"type": last.get("type"), "value": last.get("value")}
    return event


class FakeSentry(RoutedFake):
    def __init__(
        self, fixtures: Path, *, org: str = "acme", token: str = "sntrys_faketoken", can_write: bool = True
    ) -> None:
        self.fx = fixtures
        self.org = org
        self.token = token
        self.can_write = can_write
        self.issues: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        """issue id -> (dateCreated, full event) of every event of the issue, by `add_event`."""
        self.comments: dict[str, list[str]] = {}
        self.comment_times: dict[str, list[str]] = {}
        self.calls: list[SentryCall] = []
        self.injected: list[tuple[str, str, int, Any]] = []
        self.remaining = 40
        self.max_page = 100
        """Sentry caps `limit` at 100 per page; tests lower it to force cursor pagination."""
        self._lock = threading.Lock()

    def _load(self, name: str) -> Any:
        return json.loads((self.fx / "api" / name).read_text(encoding="utf-8"))

    def add_issue(
        self,
        issue_id: str,
        *,
        short_id: str,
        title: str,
        project: str = "shop",
        priority: str = "high",
        event: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        issue = copy.deepcopy(self._load("get-organization-issue.json"))
        issue.update(
            id=issue_id,
            shortId=short_id,
            title=title,
            priority=priority,
            permalink=f"https://{self.org}.sentry.io/issues/{issue_id}/",
            **fields,
        )
        issue["project"].update(slug=project, name=project.title())
        issue["metadata"] = {"title": title}
        self.issues[issue_id] = issue
        ev = event or copy.deepcopy(self._load("get-organization-issue-event-latest.json"))
        ev["groupID"] = issue_id
        self.events[issue_id] = ev
        return issue

    def add_event(self, issue_id: str, event: dict[str, Any], date_created: str) -> None:
        """One more event of the issue (API shape), received at `date_created` (ISO-8601, UTC)."""
        ev = copy.deepcopy(event)
        ev["groupID"] = issue_id
        ev["dateCreated"] = date_created
        self.history.setdefault(issue_id, []).append((date_created, ev))

    def _event_list(self, issue_id: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        template = self._load("list-organization-issue-events.json")[0]
        start = query.get("start", [""])[0]
        end = query.get("end", ["9999"])[0]
        rows = []
        for when, ev in sorted(self.history.get(issue_id, []), key=lambda h: h[0], reverse=True):
            # ISO-8601 UTC strings compare in time order; `end` is inclusive as in Snuba's filter
            if not (start <= when.rstrip("Z") <= end):
                continue
            row = copy.deepcopy(template)
            row.update(eventID=ev["eventID"], id=ev["eventID"], dateCreated=when, groupID=issue_id, title=ev["title"])
            rows.append(row)
        return rows[: int(query.get("per_page", ["100"])[0])]

    def _note(self, issue_id: str, index: int) -> dict[str, Any]:
        return {
            "id": str(1000 + index),
            "type": "note",
            "data": {"text": self.comments[issue_id][index]},
            "dateCreated": self.comment_times[issue_id][index],
            "user": None,  # an internal integration's token posts as the integration, not a user
        }

    def inject(self, method: str, path_re: str, status: int, body: Any) -> None:
        self.injected.append((method, path_re, status, body))

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            status, out, extra = self._route(method, parts.path, query, headers, body)
            self.remaining = max(0, self.remaining - 1)
            hdrs = {
                "X-Sentry-Rate-Limit-Limit": "40",
                "X-Sentry-Rate-Limit-Remaining": str(self.remaining),
                "X-Sentry-Rate-Limit-Reset": str(int(time.time()) + 1),
                "X-Sentry-Rate-Limit-ConcurrentLimit": "25",
                "X-Sentry-Rate-Limit-ConcurrentRemaining": "24",
                **extra,
            }
            self.calls.append(SentryCall(method, parts.path, query, body, status))
        return status, out, hdrs

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        for inj in list(self.injected):
            if inj[0] == method and re.search(inj[1], path):
                self.injected.remove(inj)
                return inj[2], inj[3], {}
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Bearer {self.token}":
            return 401, {"detail": "Invalid token"}, {}
        m = re.fullmatch(rf"/api/0/(?:organizations/{re.escape(self.org)}/)?issues/([^/]+)/(.*)", path)
        if m:
            issue_id, rest = m.group(1), m.group(2)
            if issue_id not in self.issues:
                return 404, {"detail": "The requested resource does not exist"}, {}
            if method == "GET" and rest == "":
                return 200, self.issues[issue_id], {}
            if method == "GET" and rest == "events/latest/":
                return 200, self.events[issue_id], {}
            if method == "GET" and rest == "events/":
                return 200, self._event_list(issue_id, query), {}
            m_ev = re.fullmatch(r"events/([0-9a-f]{32})/", rest)
            if method == "GET" and m_ev:
                found = [ev for _, ev in self.history.get(issue_id, []) if ev["eventID"] == m_ev.group(1)]
                if not found:
                    return 404, {"detail": "Event not found"}, {}
                return 200, found[0], {}
            if method == "POST" and rest == "comments/":
                if not self.can_write:
                    return 403, {"detail": "You do not have permission to perform this action."}, {}
                text = (body or {}).get("text", "")
                if not text:
                    return 400, {"text": ["This field is required."]}, {}
                if text in self.comments.get(issue_id, []):
                    # getsentry/sentry GroupNotesEndpoint.post: same user, same text, within an hour
                    return 400, {"detail": "You have already posted that comment."}, {}
                self.comments.setdefault(issue_id, []).append(text)
                when = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
                self.comment_times.setdefault(issue_id, []).append(when)
                return 201, self._note(issue_id, len(self.comments[issue_id]) - 1), {}
            if method == "GET" and rest == "comments/":
                # GroupNotesEndpoint: newest first, Activity objects of type note
                n = len(self.comments.get(issue_id, []))
                return 200, [self._note(issue_id, i) for i in reversed(range(n))][:100], {}
        if method == "GET" and path == f"/api/0/organizations/{self.org}/issues/":
            rows = list(self.issues.values())
            terms = query.get("query", [""])[0].split()
            for status in ("resolved", "unresolved"):
                if f"is:{status}" in terms:
                    rows = [r for r in rows if r.get("status") == status]
            limit = min(int(query.get("limit", ["100"])[0]), self.max_page)
            start = int(query.get("cursor", ["0:0:0"])[0].split(":")[1])
            chunk = rows[start : start + limit]
            more = start + limit < len(rows)
            base = f"{self.url}{path}"
            link = (
                f'<{base}?cursor=0:{max(0, start - limit)}:1>; rel="previous"; results="{str(start > 0).lower()}"; '
                f'cursor="0:{max(0, start - limit)}:1", '
                f'<{base}?cursor=0:{start + limit}:0>; rel="next"; results="{str(more).lower()}"; '
                f'cursor="0:{start + limit}:0"'
            )
            return 200, chunk, {"Link": link}
        return 404, {"detail": "The requested resource does not exist"}, {}
