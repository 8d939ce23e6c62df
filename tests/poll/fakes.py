"""Loopback fakes of the APIs poll, notify and lifecycle talk to: real HTTP on 127.0.0.1, port 0.

Each fake stands in for one vendor API and behaves like it where our code can tell: status codes,
error bodies, `Link`/cursor pagination and `X-Sentry-Rate-Limit-*` headers (Sentry), the search and
dispatch contract (GitHub), Block Kit validation (Slack), embed limits (Discord). Every request is
recorded so tests can count API calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

Response = tuple[int, dict[str, str], bytes]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


class LoopbackServer:
    """A threaded HTTP server whose requests go to `self.handle(method, path, query, headers, body)`."""

    def __init__(self) -> None:
        owner = self
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms each.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(
                    self.command,
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with owner.lock:
                    owner.requests.append(rec)
                    status, headers, payload = owner.handle(rec)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, rec: Recorded) -> Response:  # pragma: no cover - overridden
        raise NotImplementedError

    def calls(self, method: str | None = None, path_re: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and re.search(path_re, r.path)]


# --- Sentry -------------------------------------------------------------------------------------

SENTRY_ISSUE_KEYS = (
    "annotations assignedTo count culprit firstSeen filtered inbox hasSeen id isBookmarked isPublic "
    "isSubscribed lastSeen level logger metadata numComments permalink project shareId shortId stats "
    "priority priorityLockedAt owners platform lifetime status substatus statusDetails subscriptionDetails "
    "title type userCount integrationIssues sentryAppIssues isUnhandled issueCategory issueType"
).split()
"""Keys of an issue in `GET /api/0/organizations/{org}/issues/` (checked against the real fixture)."""


@dataclass
class FakeIssue:
    id: int
    project_slug: str
    project_id: int
    title: str
    level: str = "error"
    priority: str = "high"
    status: str = "unresolved"
    substatus: str = "ongoing"
    period_counts: dict[str, int] = field(default_factory=dict)
    """Events per statsPeriod (`24h`, `14d`); the lifetime count is the largest of them."""
    environments: tuple[str, ...] = ("production",)
    last_seen: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc))
    short_id: str | None = None

    def count(self, period: str | None) -> int:
        if period and period in self.period_counts:
            return self.period_counts[period]
        return max(self.period_counts.values(), default=0)

    def api(self, base: str, org: str, period: str | None) -> dict[str, Any]:
        short = self.short_id or f"{self.project_slug.upper()}-{self.id:X}"
        seen = self.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ")
        lifetime = str(self.count(None))
        return {
            "annotations": [],
            "assignedTo": None,
            "count": str(self.count(period)),
            "culprit": "app.views in handler",
            "firstSeen": "2026-10-01T00:00:00Z",
            "filtered": None,
            "inbox": None,
            "hasSeen": False,
            "id": str(self.id),
            "isBookmarked": False,
            "isPublic": False,
            "isSubscribed": False,
            "lastSeen": seen,
            "level": self.level,
            "logger": None,
            "metadata": {"title": self.title},
            "numComments": 0,
            "permalink": f"{base}/organizations/{org}/issues/{self.id}/",
            "project": {
                "id": str(self.project_id),
                "name": self.project_slug,
                "slug": self.project_slug,
                "platform": "python",
            },
            "shareId": None,
            "shortId": short,
            "stats": {"24h": []},
            "priority": self.priority,
            "priorityLockedAt": None,
            "owners": None,
            "platform": "python",
            "lifetime": {"count": lifetime, "userCount": 3, "firstSeen": "2026-10-01T00:00:00Z", "lastSeen": seen},
            "status": self.status,
            "substatus": self.substatus,
            "statusDetails": {},
            "subscriptionDetails": None,
            "title": self.title,
            "type": "error",
            "userCount": 3,
            "integrationIssues": [],
            "sentryAppIssues": [],
            "isUnhandled": True,
            "issueCategory": "error",
            "issueType": "error",
        }


@dataclass
class FakeComment:
    id: int
    text: str
    created: datetime
    user_id: str = "1"


_TERM = re.compile(r'(!?)([\w.]+):(\[[^\]]*\]|"[^"]*"|\S+)')


class FakeSentry(LoopbackServer):
    """Sentry's REST API for one organization: issues listing (search, sort, cursors), projects,
    comments. Search terms it does not know answer 400 like Sentry's parser does."""

    def __init__(self, org: str = "acme", token: str = "sntrys-test-token", page_limit_cap: int = 100) -> None:
        super().__init__()
        self.org = org
        self.token = token
        self.page_limit_cap = page_limit_cap
        self.issues: list[FakeIssue] = []
        self.comments: dict[int, list[FakeComment]] = {}
        self.projects: dict[str, int] = {}
        self.script: list[Response] = []
        """Responses served before normal handling (e.g. a 429), consumed in order."""
        self.now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        self._next_comment = 1000

    def add_issue(self, issue: FakeIssue) -> FakeIssue:
        self.issues.append(issue)
        self.projects.setdefault(issue.project_slug, issue.project_id)
        return issue

    def add_comment(self, issue_id: int, text: str, age: timedelta) -> None:
        self._next_comment += 1
        self.comments.setdefault(issue_id, []).append(FakeComment(self._next_comment, text, self.now() - age))

    def rate_headers(self, remaining: int = 39) -> dict[str, str]:
        return {
            "X-Sentry-Rate-Limit-Limit": "40",
            "X-Sentry-Rate-Limit-Remaining": str(remaining),
            "X-Sentry-Rate-Limit-Reset": str(int(time.time()) + 1),
            "X-Sentry-Rate-Limit-ConcurrentLimit": "25",
            "X-Sentry-Rate-Limit-ConcurrentRemaining": "24",
        }

    def handle(self, rec: Recorded) -> Response:
        if rec.headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, {"detail": "Invalid token"})
        if self.script:
            return self.script.pop(0)
        org = re.escape(self.org)
        if rec.method == "GET" and re.fullmatch(rf"/api/0/organizations/{org}/issues/", rec.path):
            return self._list(rec)
        m = re.fullmatch(rf"/api/0/projects/{org}/([^/]+)/", rec.path)
        if m and rec.method == "GET":
            if m.group(1) not in self.projects:
                return _json(404, {"detail": "The requested resource does not exist"})
            return _json(200, {"id": str(self.projects[m.group(1)]), "slug": m.group(1)}, self.rate_headers())
        m = re.fullmatch(rf"/api/0/(?:organizations/{org}/)?issues/(\d+)/comments/", rec.path)
        if m:
            issue_id = int(m.group(1))
            if not any(i.id == issue_id for i in self.issues):
                return _json(404, {"detail": "The requested resource does not exist"})
            return self._comments(rec, issue_id)
        return _json(404, {"detail": "The requested resource does not exist"})

    def _comments(self, rec: Recorded, issue_id: int) -> Response:
        notes = self.comments.setdefault(issue_id, [])
        if rec.method == "GET":
            newest = sorted(notes, key=lambda c: c.created, reverse=True)[:100]
            body = [
                {
                    "id": str(c.id),
                    "user": {"id": c.user_id, "username": "autofix-bot", "email": "bot@example.com"},
                    "type": "note",
                    "data": {"text": c.text},
                    "dateCreated": c.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
                for c in newest
            ]
            return _json(200, body, self.rate_headers())
        if rec.method == "POST":
            text = rec.json().get("text")
            if not isinstance(text, str) or not text:
                return _json(400, {"text": ["This field is required."]})
            if any(c.text == text and self.now() - c.created < timedelta(hours=1) for c in notes):
                return _json(400, {"detail": "You have already posted that comment."})
            self.add_comment(issue_id, text, timedelta(0))
            return _json(201, {"id": str(self._next_comment), "type": "note", "data": {"text": text}})
        return _json(405, {"detail": f'Method "{rec.method}" not allowed.'})

    def _matches(self, issue: FakeIssue, query: str, period: str | None, envs: list[str]) -> bool | str:
        for neg, key, raw in _TERM.findall(query):
            values = raw.strip("[]").split(",") if raw.startswith("[") else [raw.strip('"')]
            if key == "is":
                ok = issue.status == values[0]
            elif key == "level":
                ok = issue.level in values
            elif key == "issue.priority":
                ok = issue.priority in values
            elif key == "times_seen":
                m = re.fullmatch(r"(>=|>|<=|<)?(\d+)", values[0])
                if not m:
                    return f"Invalid number for times_seen: {values[0]}"
                op, n, c = m.group(1) or "=", int(m.group(2)), issue.count(period)
                ok = {"=": c == n, ">": c > n, ">=": c >= n, "<": c < n, "<=": c <= n}[op]
            elif key == "environment":
                ok = any(e in issue.environments for e in values)
            else:
                return f"Invalid search query: unknown key {key}"
            if bool(neg) == ok:
                return False
        return not envs or any(e in issue.environments for e in envs)

    def _list(self, rec: Recorded) -> Response:
        q = rec.query
        query = q.get("query", ["is:unresolved"])[0]
        period = q.get("statsPeriod", [None])[0]
        envs = q.get("environment", [])
        project_ids = [int(p) for p in q.get("project", []) if p.lstrip("-").isdigit()]
        try:
            limit = min(self.page_limit_cap, int(q.get("limit", ["100"])[0]))
        except ValueError:
            return _json(400, {"detail": "Invalid limit"})
        cursor = q.get("cursor", ["0:0:0"])[0]
        m = re.fullmatch(r"(\d+):(\d+):([01])", cursor)
        if not m:
            return _json(400, {"detail": "Invalid cursor parameter."})
        offset = int(m.group(2))
        hits = []
        for issue in self.issues:
            if project_ids and -1 not in project_ids and issue.project_id not in project_ids:
                continue
            if period and issue.count(period) == 0:
                continue  # the period bounds the search: an issue without events in it is not listed
            verdict = self._matches(issue, query, period, envs)
            if isinstance(verdict, str):
                return _json(400, {"detail": verdict})
            if verdict:
                hits.append(issue)
        sort = q.get("sort", ["date"])[0]
        if sort == "freq":
            hits.sort(key=lambda i: (-i.count(period), i.id))
        else:
            hits.sort(key=lambda i: (i.last_seen, i.id), reverse=True)
        page = hits[offset : offset + limit]
        base = f"{self.url}{rec.path}"
        params = {k: v for k, v in q.items() if k != "cursor"}

        def link(rel: str, cur: str, results: bool) -> str:
            url = f"{base}?{urlencode({**params, 'cursor': [cur]}, doseq=True)}"
            return f'<{url}>; rel="{rel}"; results="{"true" if results else "false"}"; cursor="{cur}"'

        prev_cur = f"0:{max(0, offset - limit)}:1"
        next_cur = f"0:{offset + limit}:0"
        headers = {
            "Link": ", ".join(
                [link("previous", prev_cur, offset > 0), link("next", next_cur, offset + limit < len(hits))]
            ),
            **self.rate_headers(),
        }
        return _json(200, [i.api(self.url, self.org, period) for i in page], headers)


# --- GitHub -------------------------------------------------------------------------------------

GITHUB_SEARCH_ITEM_KEYS = (
    "url repository_url labels_url comments_url events_url html_url id node_id number title user labels "
    "state assignee milestone comments created_at updated_at closed_at body score locked author_association "
    "state_reason"
).split()
"""Keys of a `GET /search/issues` item (checked against the real fixture); PRs add `pull_request`."""


@dataclass
class FakeGitItem:
    number: int
    body: str
    kind: str = "issue"
    state: str = "open"
    title: str = "sentry-autofix item"
    state_reason: str | None = None
    comments: list[str] = field(default_factory=list)


class FakeGitHub(LoopbackServer):
    """GitHub's REST API for one repository: issue search, repository_dispatch, issue comments and
    state (PRs are issues there too)."""

    def __init__(self, repository: str = "acme/shop", token: str = "ghs_testtoken") -> None:
        super().__init__()
        self.repository = repository
        self.token = token
        self.items: dict[int, FakeGitItem] = {}
        self.dispatches: list[dict[str, Any]] = []
        self.script: list[Response] = []
        self.require_type_qualifier = False
        """Answer 422 to searches without `is:issue`/`is:pull-request`, as GitHub does for some
        token types (user-to-server, per its API description; more widely since 2025)."""

    def add(self, item: FakeGitItem) -> FakeGitItem:
        self.items[item.number] = item
        return item

    def _error(self, status: int, message: str) -> Response:
        return _json(status, {"message": message, "documentation_url": "https://docs.github.com/rest"})

    def issue_json(self, item: FakeGitItem) -> dict[str, Any]:
        api = f"{self.url}/repos/{self.repository}"
        kind = "pull" if item.kind == "pr" else "issues"
        data: dict[str, Any] = {
            "url": f"{api}/issues/{item.number}",
            "repository_url": api,
            "labels_url": f"{api}/issues/{item.number}/labels{{/name}}",
            "comments_url": f"{api}/issues/{item.number}/comments",
            "events_url": f"{api}/issues/{item.number}/events",
            "html_url": f"https://github.com/{self.repository}/{kind}/{item.number}",
            "id": 1000 + item.number,
            "node_id": f"I_{item.number}",
            "number": item.number,
            "title": item.title,
            "user": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "labels": [{"id": 1, "name": "sentry-autofix", "color": "ff0000"}],
            "state": item.state,
            "assignee": None,
            "milestone": None,
            "comments": len(item.comments),
            "created_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-21T10:00:00Z",
            "closed_at": "2026-11-21T10:00:00Z" if item.state == "closed" else None,
            "body": item.body,
            "score": 1.0,
            "locked": False,
            "author_association": "NONE",
            "state_reason": item.state_reason,
        }
        if item.kind == "pr":
            data["pull_request"] = {
                "url": f"{api}/pulls/{item.number}",
                "html_url": data["html_url"],
                "diff_url": data["html_url"] + ".diff",
                "patch_url": data["html_url"] + ".patch",
            }
        return data

    def handle(self, rec: Recorded) -> Response:
        if rec.headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            return self._error(401, "Bad credentials")
        if self.script:
            return self.script.pop(0)
        repo = re.escape(self.repository)
        if rec.method == "GET" and rec.path == "/search/issues":
            return self._search(rec)
        if rec.method == "POST" and re.fullmatch(rf"/repos/{repo}/dispatches", rec.path):
            return self._dispatch(rec)
        m = re.fullmatch(rf"/repos/{repo}/issues/(\d+)(/comments)?", rec.path)
        if m and int(m.group(1)) in self.items:
            item = self.items[int(m.group(1))]
            if m.group(2) and rec.method == "POST":
                body = rec.json().get("body")
                if not isinstance(body, str) or not body:
                    return self._error(422, "Validation Failed")
                item.comments.append(body)
                return _json(201, {"id": len(item.comments), "body": body, "html_url": "https://github.com/c"})
            if not m.group(2) and rec.method == "PATCH":
                patch = rec.json()
                if patch.get("state") not in (None, "open", "closed"):
                    return self._error(422, "Validation Failed")
                item.state = patch.get("state", item.state)
                item.state_reason = patch.get("state_reason", "reopened" if item.state == "open" else None)
                return _json(200, self.issue_json(item))
            if not m.group(2) and rec.method == "GET":
                return _json(200, self.issue_json(item))
        return self._error(404, "Not Found")

    def _search(self, rec: Recorded) -> Response:
        q = rec.query.get("q", [""])[0]
        if not q:
            return self._error(422, "Validation Failed")
        repo = re.search(r"\brepo:(\S+)", q)
        phrase = re.search(r'"([^"]+)"', q)
        if not repo or repo.group(1) != self.repository:
            return _json(200, {"total_count": 0, "incomplete_results": False, "items": []})
        want = _words(phrase.group(1)) if phrase else []
        kinds = set()
        if re.search(r"\b(is|type):issue\b", q):
            kinds.add("issue")
        if re.search(r"\b(is|type):(pr|pull-request)\b", q):
            kinds.add("pr")
        if self.require_type_qualifier and not kinds:
            return self._error(422, "Query must include 'is:issue' or 'is:pull-request'")
        hits = []
        for item in sorted(self.items.values(), key=lambda i: i.number, reverse=True):
            if len(kinds) == 1 and item.kind not in kinds:
                continue
            if "is:open" in q and item.state != "open":
                continue
            if "is:closed" in q and item.state != "closed":
                continue
            words = _words(item.body)
            if want and not any(words[i : i + len(want)] == want for i in range(len(words))):
                continue
            hits.append(item)
        per_page = min(100, int(rec.query.get("per_page", ["30"])[0]))
        page = int(rec.query.get("page", ["1"])[0])
        chunk = hits[(page - 1) * per_page : page * per_page]
        body = {
            "total_count": len(hits),
            "incomplete_results": False,
            "search_type": "lexical",
            "lexical_fallback_reason": ["quoted_text"],
            "items": [self.issue_json(i) for i in chunk],
        }
        headers = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "29", "X-RateLimit-Resource": "search"}
        if page * per_page < len(hits):
            # GitHub paginates search with a `Link` header (docs.github.com/rest/using-the-rest-api/
            # using-pagination-in-the-rest-api); PyGithub follows rel="next".
            nxt = urlencode({"q": q, "per_page": per_page, "page": page + 1})
            headers["Link"] = f'<{self.url}/search/issues?{nxt}>; rel="next"'
        return _json(200, body, headers)

    def _dispatch(self, rec: Recorded) -> Response:
        body = rec.json()
        event_type = body.get("event_type")
        payload = body.get("client_payload", {})
        if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
            return self._error(422, "Invalid request.\n\nFor 'properties/event_type', nil is not a string.")
        if not isinstance(payload, dict) or len(payload) > 10:
            return self._error(422, "Invalid request.\n\nNo more than 10 properties are allowed; 11 were supplied.")
        if len(json.dumps(payload).encode()) >= 64 * 1024:
            return self._error(422, "client_payload is too large")
        self.dispatches.append(body)
        return 204, {}, b""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


# --- Slack --------------------------------------------------------------------------------------


def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """What Slack would refuse (`invalid_blocks`) in a message: the Block Kit limits we rely on."""
    problems: list[str] = []
    blocks = message.get("blocks")
    if not isinstance(message.get("text"), str) and not blocks:
        problems.append("no_text")
    if blocks is None:
        return problems
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [*problems, "blocks must be a list of 1-50"]

    def text_obj(obj: Any, where: str, limit: int, plain_only: bool = False) -> None:
        if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
            problems.append(f"{where}: not a text object")
            return
        if plain_only and obj["type"] != "plain_text":
            problems.append(f"{where}: must be plain_text")
        text = obj.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= limit:
            problems.append(f"{where}: text length must be 1-{limit}")
        if obj["type"] == "mrkdwn" and "emoji" in obj:
            problems.append(f"{where}: emoji is only valid on plain_text")
        if set(obj) - {"type", "text", "emoji", "verbatim"}:
            problems.append(f"{where}: unknown keys {sorted(set(obj) - {'type', 'text', 'emoji', 'verbatim'})}")

    for n, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"blocks[{n}]"
        if kind == "header":
            text_obj(block.get("text"), where + ".text", 150, plain_only=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: section needs text or fields")
            if "text" in block:
                text_obj(block["text"], where + ".text", 3000)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                problems.append(f"{where}: at most 10 fields")
            for i, f in enumerate(fields):
                text_obj(f, f"{where}.fields[{i}]", 2000)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                problems.append(f"{where}: actions need 1-25 elements")
                continue
            for i, el in enumerate(elements):
                if el.get("type") != "button":
                    problems.append(f"{where}.elements[{i}]: only buttons expected")
                text_obj(el.get("text"), f"{where}.elements[{i}].text", 75, plain_only=True)
                url = el.get("url")
                if url is not None and (not isinstance(url, str) or len(url) > 3000 or not url.startswith("http")):
                    problems.append(f"{where}.elements[{i}].url invalid")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}: context needs 1-10 elements")
                continue
            for i, el in enumerate(elements):
                text_obj(el, f"{where}.elements[{i}]", 3000)
        elif kind == "divider":
            pass
        else:
            problems.append(f"{where}: unsupported block type {kind!r}")
    return problems


class FakeSlack(LoopbackServer):
    """Slack's incoming webhooks (`/services/...`: 200 `ok` or 400 `invalid_blocks`) and the Web API
    `chat.postMessage` (always HTTP 200 with `{"ok": …}`, errors by name)."""

    WEBHOOK_PATH = "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX"

    def __init__(self, bot_token: str = "xoxb-1-test", channels: tuple[str, ...] = ("C0001", "#alerts")) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.channels = channels
        self.messages: list[dict[str, Any]] = []
        self.script: list[Response] = []

    @property
    def webhook_url(self) -> str:
        return self.url + self.WEBHOOK_PATH

    def handle(self, rec: Recorded) -> Response:
        if self.script:
            return self.script.pop(0)
        if rec.method != "POST":
            return 405, {}, b"method_not_allowed"
        try:
            message = rec.json()
        except ValueError:
            return 400, {"Content-Type": "text/plain"}, b"invalid_payload"
        if rec.path == self.WEBHOOK_PATH:
            if block_kit_problems(message):
                return 400, {"Content-Type": "text/plain"}, b"invalid_blocks"
            self.messages.append(message)
            return 200, {"Content-Type": "text/plain"}, b"ok"
        if rec.path.startswith("/services/"):
            return 404, {"Content-Type": "text/plain"}, b"no_service"
        if rec.path == "/api/chat.postMessage":
            if rec.headers.get("authorization") != f"Bearer {self.bot_token}":
                return _json(200, {"ok": False, "error": "not_authed"})
            if message.get("channel") not in self.channels:
                return _json(200, {"ok": False, "error": "channel_not_found"})
            if block_kit_problems(message):
                return _json(200, {"ok": False, "error": "invalid_blocks", "errors": block_kit_problems(message)})
            self.messages.append(message)
            return _json(200, {"ok": True, "channel": "C0001", "ts": "1700000000.000100", "message": message})
        return 404, {}, b"unknown_method"


# --- Discord ------------------------------------------------------------------------------------


def discord_problems(message: dict[str, Any]) -> dict[str, str]:
    """Discord's `Invalid Form Body` checks for the fields we send."""
    problems: dict[str, str] = {}
    embeds = message.get("embeds", [])
    if not message.get("content") and not embeds:
        problems["content"] = "Cannot send an empty message"
    if len(message.get("content", "")) > 2000:
        problems["content"] = "Must be 2000 or fewer in length."
    if not isinstance(embeds, list) or len(embeds) > 10:
        problems["embeds"] = "Must be 10 or fewer in length."
        return problems
    limits = {"title": 256, "description": 4096}
    for n, embed in enumerate(embeds):
        total = 0
        for key, limit in limits.items():
            value = embed.get(key, "")
            total += len(value)
            if len(value) > limit:
                problems[f"embeds.{n}.{key}"] = f"Must be {limit} or fewer in length."
        fields = embed.get("fields", [])
        if len(fields) > 25:
            problems[f"embeds.{n}.fields"] = "Must be 25 or fewer in length."
        for i, f in enumerate(fields):
            if not f.get("name") or len(f["name"]) > 256:
                problems[f"embeds.{n}.fields.{i}.name"] = "Must be between 1 and 256 in length."
            if not f.get("value") or len(f["value"]) > 1024:
                problems[f"embeds.{n}.fields.{i}.value"] = "Must be between 1 and 1024 in length."
            total += len(f.get("name", "")) + len(f.get("value", ""))
        footer = embed.get("footer", {}).get("text", "")
        if len(footer) > 2048:
            problems[f"embeds.{n}.footer.text"] = "Must be 2048 or fewer in length."
        total += len(footer)
        if total > 6000:
            problems[f"embeds.{n}"] = "Embed size exceeds maximum size of 6000"
        color = embed.get("color")
        if color is not None and not (isinstance(color, int) and 0 <= color <= 0xFFFFFF):
            problems[f"embeds.{n}.color"] = "Int value should be less than or equal to 16777215."
    allowed = message.get("allowed_mentions")
    if allowed is not None and (not isinstance(allowed, dict) or not isinstance(allowed.get("parse", []), list)):
        problems["allowed_mentions"] = "Invalid allowed_mentions"
    return problems


class FakeDiscord(LoopbackServer):
    """Discord's execute-webhook: 204 (or 200 with `wait=true`), 400 `Invalid Form Body` (50035),
    404 `Unknown Webhook` (10015), 429 with `retry_after` seconds."""

    WEBHOOK_ID = "1234567890"
    WEBHOOK_TOKEN = "discord-webhook-token-secret"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.script: list[Response] = []

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{self.WEBHOOK_ID}/{self.WEBHOOK_TOKEN}"

    def handle(self, rec: Recorded) -> Response:
        if self.script:
            return self.script.pop(0)
        if rec.path != f"/api/webhooks/{self.WEBHOOK_ID}/{self.WEBHOOK_TOKEN}":
            return _json(404, {"message": "Unknown Webhook", "code": 10015})
        if rec.method != "POST":
            return _json(405, {"message": "405: Method Not Allowed", "code": 0})
        message = rec.json()
        problems = discord_problems(message)
        if problems:
            return _json(400, {"code": 50035, "message": "Invalid Form Body", "errors": problems})
        self.messages.append(message)
        if rec.query.get("wait") == ["true"]:
            return _json(200, {"id": "1", "type": 0, "content": "", "embeds": message.get("embeds", [])})
        return 204, {}, b""
