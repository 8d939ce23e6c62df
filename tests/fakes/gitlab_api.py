"""A loopback fake of the GitLab REST API v4, for the operations sentry-autofix uses.

Stands in for gitlab.com / a self-managed GitLab at `CI_SERVER_URL`. Faithful where our code
depends on it (sources in tests/fixtures/gitlab/PROVENANCE.md):
* merge request and issue bodies are GitLab's documented examples (`merge_requests-list.json`,
  `issues-list.json`) with only the object's own fields replaced; the trigger answer is the
  documented `POST /projects/:id/trigger/pipeline` example;
* auth: `PRIVATE-TOKEN` (or `Authorization: Bearer`) must be the project access token, else
  401 `{"message": "401 Unauthorized"}` (docs.gitlab.com/api/rest/authentication/); a token without
  the api scope can be simulated (`scopes`), answering 403 `{"error": "insufficient_scope", …}`;
* the project is addressed by id or URL-encoded path (docs.gitlab.com/api/rest/#namespaced-paths);
* lists are paginated as docs.gitlab.com/api/rest/#pagination describes: `page`/`per_page`,
  `x-page`, `x-per-page`, `x-next-page`, `x-total`, `x-total-pages` and a `Link` header;
* every answer carries `RateLimit-Limit/-Remaining/-Reset` (docs.gitlab.com/security/rate_limits/);
  `inject()` queues one-off failures (429 with `Retry-After`, 5xx…);
* a title starting with `Draft:` makes a draft MR; `POST /merge_requests` answers 409 (GitLab's
  `{"message": ["Another open merge request already exists for this source branch: !1"]}`) when
  an open MR from this project has the same source and target branch (MergeRequest#validate_branches),
  and 400 when the source branch is not in the real git remote; `add_fork_mr()` adds an MR whose
  source is another project (the project's MR list includes them, as GitLab's does);
* `search` (+ `in=title|description`) on the MR and issue lists: a case-insensitive substring
  match, which is what GitLab's MR search does (ILIKE per word) and what its issue full-text
  search (prefix match of the marker's words) answers for our marker; `search_refused=True`
  makes the lists answer 400 to a search (an instance that does not take it);
* `POST /projects/:id/trigger/pipeline` takes the trigger token (form or JSON) and `variables`.
It records every request so tests can count calls and grep bodies for secrets.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.fakes._server import RoutedFake

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gitlab"
SOURCES = {
    "merge_request": "docs.gitlab.com/api/merge_requests/#list-merge-requests (Example response)",
    "issue": "docs.gitlab.com/api/issues/#list-all-issues (Example response)",
    "trigger": "docs.gitlab.com/api/pipeline_triggers/#trigger-a-pipeline-with-a-token (Example response)",
    "label": "docs.gitlab.com/api/labels/#create-a-new-label (attributes)",
    "note": "docs.gitlab.com/api/notes/#create-new-issue-note (attributes)",
}
"""Where each kind of answer body comes from."""


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    headers: dict[str, str]


@dataclass
class Injected:
    method: str
    path_part: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeGitLab(RoutedFake):
    def __init__(
        self,
        *,
        project: str = "acme/shop",
        project_id: int = 42,
        token: str = "glpat-fake",
        trigger_token: str = "glptt-fake",
        git_remote: Path | None = None,
        default_branch: str = "main",
        scopes: tuple[str, ...] = ("api", "write_repository"),
        per_page_max: int = 100,
        search_refused: bool = False,
    ) -> None:
        self.search_refused = search_refused
        self.project = project
        self.project_id = project_id
        self.token = token
        self.trigger_token = trigger_token
        self.git_remote = git_remote
        self.default_branch = default_branch
        self.scopes = scopes
        self.per_page_max = per_page_max
        self.web = "https://gitlab.example.com"
        self.calls: list[Call] = []
        self.raw: list[tuple[str, str, dict[str, str], bytes]] = []
        self.mrs: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = [{"id": 1, "name": "bug", "color": "#d9534f", "description": None}]
        self.notes: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.injected: list[Injected] = []
        self._lock = threading.Lock()
        self._mr_tpl = json.loads((FIXTURES / "merge_requests-list.json").read_text())[0]
        self._issue_tpl = json.loads((FIXTURES / "issues-list.json").read_text())[0]
        self._trigger_tpl = json.loads((FIXTURES / "trigger-pipeline.json").read_text())
        self._next_id = 1000

    # -- test helpers --------------------------------------------------------------------------
    def inject(
        self, method: str, path_part: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        self.injected.append(Injected(method, path_part, status, body, headers or {}))

    def add_fork_mr(self, *, source_branch: str, description: str, labels: list[str] | None = None) -> dict[str, Any]:
        """An open MR into this project from a fork (another `source_project_id`), by someone else."""
        status, mr, _ = self._create_mr(
            {"source_branch": source_branch, "target_branch": self.default_branch, "title": "Their own work"},
            fork_id=self.project_id + 1000,
        )
        assert status == 201, mr
        stored = self.mrs[-1]
        stored.update(
            description=description,
            labels=labels or [],
            author={"id": 99, "username": "forker", "name": "Fork Owner"},
        )
        return stored

    def api_calls(self) -> list[Call]:
        """Calls to the REST API with the access token (not the trigger endpoint)."""
        return [c for c in self.calls if "/trigger/pipeline" not in c.path]

    def everything(self) -> str:
        """Every byte received (paths, headers, bodies), for secret checks."""
        return "\n".join(f"{m} {p} {json.dumps(h)} {b.decode('utf-8', 'replace')}" for m, p, h, b in self.raw)

    # -- server --------------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.raw.append((method, path, headers, raw))
            parts = urlsplit(path)
            query = parse_qs(parts.query)
            body = self._body(headers, raw)
            status, out, extra = self._route(method, parts.path, query, headers, body)
            extra = {
                "RateLimit-Limit": "2000",
                "RateLimit-Remaining": str(max(0, 2000 - len(self.calls) - 1)),
                "RateLimit-Reset": "1767225600",
                **extra,
            }
            self.calls.append(Call(method, parts.path, query, body, status, headers))
            return status, out, extra

    @staticmethod
    def _body(headers: dict[str, str], raw: bytes) -> Any:
        if not raw:
            return None
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if "json" in ctype:
            return json.loads(raw)
        form = parse_qs(raw.decode())
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        for inj in list(self.injected):
            if inj.method == method and inj.path_part in path:
                self.injected.remove(inj)
                return inj.status, inj.body, inj.headers
        segs = path.split("/")
        if segs[:4] != ["", "api", "v4", "projects"] or len(segs) < 5:
            return 404, {"message": "404 Not Found"}, {}
        pid = unquote(segs[4])
        if pid not in (str(self.project_id), self.project):
            return 404, {"message": "404 Project Not Found"}, {}
        rest = segs[5:]
        if rest == ["trigger", "pipeline"] and method == "POST":
            return self._trigger(query, body)
        lower = {k.lower(): v for k, v in headers.items()}
        given = lower.get("private-token") or lower.get("authorization", "").removeprefix("Bearer ")
        if given != self.token:
            return 401, {"message": "401 Unauthorized"}, {}
        if method != "GET" and "api" not in self.scopes:
            return (
                403,
                {
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than provided by the access token.",
                    "scope": "api",
                },
                {},
            )
        data = body if isinstance(body, dict) else {}
        if not rest and method == "GET":
            return 200, self._project_body(), {}
        kind = rest[0] if rest else ""
        if kind == "merge_requests":
            return self._mr_route(method, rest[1:], query, data)
        if kind == "issues":
            return self._issue_route(method, rest[1:], query, data)
        if kind == "labels":
            if method == "GET":
                self._current_path = f"/api/v4/projects/{self.project_id}/labels"
                return self._page(self.labels, query)
            if any(lbl["name"].lower() == str(data.get("name", "")).lower() for lbl in self.labels):
                return 409, {"message": "Label already exists"}, {}
            label = {
                "id": self._id(),
                "name": data["name"],
                "color": data.get("color"),
                "description": data.get("description"),
            }
            self.labels.append(label)
            return 201, label, {}
        if kind == "pipeline" and method == "POST":
            ref = data.get("ref") or (query.get("ref") or [""])[0]
            return 201, self._pipeline(str(ref), "api", {}), {}
        return 404, {"message": "404 Not Found"}, {}

    # -- resources -----------------------------------------------------------------------------
    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _project_body(self) -> dict[str, Any]:
        return {
            "id": self.project_id,
            "path_with_namespace": self.project,
            "default_branch": self.default_branch,
            "web_url": f"{self.web}/{self.project}",
        }

    def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        page = int((query.get("page") or ["1"])[0])
        per_page = min(int((query.get("per_page") or ["20"])[0]), self.per_page_max)
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-total": str(total),
            "x-total-pages": str(pages),
            "x-next-page": str(page + 1) if page < pages else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        if page < pages:
            q = {k: v[0] for k, v in query.items()}
            q.update(page=str(page + 1), per_page=str(per_page))
            headers["Link"] = "<" + self._next_link(q) + '>; rel="next"'
        return 200, copy.deepcopy(chunk), headers

    def _next_link(self, q: dict[str, str]) -> str:
        path = self._current_path
        return f"{self.url}{path}?" + "&".join(f"{k}={quote(v)}" for k, v in q.items())

    _current_path = ""

    @staticmethod
    def _filter(items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
        out = items
        state = (query.get("state") or ["all"])[0]
        if state != "all":
            out = [i for i in out if i["state"] == state]
        if "source_branch" in query:
            out = [i for i in out if i.get("source_branch") == query["source_branch"][0]]
        if "search" in query:
            term = query["search"][0].lower()
            fields = (query.get("in") or ["title,description"])[0].split(",")
            out = [i for i in out if any(term in str(i.get(f) or "").lower() for f in fields)]
        if "labels" in query:
            wanted = {w.lower() for w in query["labels"][0].split(",") if w}
            out = [i for i in out if wanted <= {lbl.lower() for lbl in i["labels"]}]
        if (query.get("order_by") or [""])[0] == "updated_at":
            out = sorted(out, key=lambda i: i["updated_at"], reverse=True)
        return out

    def _mr_route(
        self, method: str, rest: list[str], query: dict[str, list[str]], data: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        if not rest:
            if method == "GET" and self.search_refused and "search" in query:
                return 400, {"error": "search is invalid"}, {}
            if method == "GET":
                self._current_path = f"/api/v4/projects/{self.project_id}/merge_requests"
                return self._page(self._filter(self.mrs, query), query)
            return self._create_mr(data)
        mr = next((m for m in self.mrs if str(m["iid"]) == rest[0]), None)
        if mr is None:
            return 404, {"message": "404 Not found"}, {}
        if len(rest) == 1 and method == "GET":
            return 200, copy.deepcopy(mr), {}
        if len(rest) == 1 and method == "PUT":
            if "title" in data:
                mr["title"] = data["title"]
                mr["draft"] = mr["work_in_progress"] = (
                    data["title"].lower().startswith(("draft:", "[draft]", "(draft)"))
                )
            if "description" in data:
                mr["description"] = data["description"]
            self._tick(mr)
            return 200, copy.deepcopy(mr), {}
        if rest[1:] == ["notes"] and method == "POST":
            return 201, self._note(mr, "MergeRequest", data), {}
        return 405, {"message": "405 Method Not Allowed"}, {}

    def _create_mr(self, data: dict[str, Any], fork_id: int | None = None) -> tuple[int, Any, dict[str, str]]:
        """`fork_id`: the MR comes from that fork, whose branches are not in our remote."""
        source, target = data.get("source_branch"), data.get("target_branch")
        if not source or not target or not data.get("title"):
            return 400, {"message": "400 Bad request - title, source_branch, target_branch are missing"}, {}
        if fork_id is None and self.git_remote is not None and not _branch_exists(self.git_remote, str(source)):
            return 400, {"message": ["Source branch does not exist"]}, {}
        clash = next(
            (
                m
                for m in self.mrs
                if (m["source_branch"], m["target_branch"], m["source_project_id"]) == (source, target, self.project_id)
                and m["state"] == "opened"
            ),
            None,
        )
        if clash is not None:
            return (
                409,
                {"message": [f"Another open merge request already exists for this source branch: !{clash['iid']}"]},
                {},
            )
        mr = copy.deepcopy(self._mr_tpl)
        iid = len(self.mrs) + 1
        title = str(data["title"])
        labels = [lbl for lbl in str(data.get("labels") or "").split(",") if lbl]
        for name in labels:  # GitLab creates unknown labels on assignment
            if not any(lbl["name"].lower() == name.lower() for lbl in self.labels):
                self.labels.append({"id": self._id(), "name": name, "color": "#6699cc", "description": None})
        mr.update(
            id=self._id(),
            iid=iid,
            project_id=self.project_id,
            title=title,
            description=data.get("description"),
            state="opened",
            merged_by=None,
            merge_user=None,
            merged_at=None,
            merge_after=None,
            source_branch=source,
            target_branch=target,
            source_project_id=fork_id or self.project_id,
            target_project_id=self.project_id,
            labels=labels,
            draft=title.lower().startswith(("draft:", "[draft]", "(draft)")),
            merge_when_pipeline_succeeds=False,
            detailed_merge_status="mergeable",
            should_remove_source_branch=bool(data.get("remove_source_branch")),
            web_url=f"{self.web}/{self.project}/-/merge_requests/{iid}",
            references={"short": f"!{iid}", "relative": f"!{iid}", "full": f"{self.project}!{iid}"},
            user_notes_count=0,
        )
        mr["work_in_progress"] = mr["draft"]
        self._tick(mr)
        self.mrs.append(mr)
        return 201, copy.deepcopy(mr), {}

    def _issue_route(
        self, method: str, rest: list[str], query: dict[str, list[str]], data: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        if not rest:
            if method == "GET" and self.search_refused and "search" in query:
                return 400, {"error": "search is invalid"}, {}
            if method == "GET":
                self._current_path = f"/api/v4/projects/{self.project_id}/issues"
                return self._page(self._filter(self.issues, query), query)
            if not data.get("title"):
                return 400, {"message": "400 Bad request - title is missing"}, {}
            issue = copy.deepcopy(self._issue_tpl)
            iid = len(self.issues) + 1
            labels = [lbl for lbl in str(data.get("labels") or "").split(",") if lbl]
            issue.update(
                id=self._id(),
                iid=iid,
                project_id=self.project_id,
                title=data["title"],
                description=data.get("description"),
                state="opened",
                labels=labels,
                assignees=[],
                assignee=None,
                milestone=None,
                user_notes_count=0,
                web_url=f"{self.web}/{self.project}/-/issues/{iid}",
                references={"short": f"#{iid}", "relative": f"#{iid}", "full": f"{self.project}#{iid}"},
            )
            self._tick(issue)
            self.issues.append(issue)
            return 201, copy.deepcopy(issue), {}
        issue = next((i for i in self.issues if str(i["iid"]) == rest[0]), None)
        if issue is None:
            return 404, {"message": "404 Not found"}, {}
        if len(rest) == 1 and method == "GET":
            return 200, copy.deepcopy(issue), {}
        if len(rest) == 1 and method == "PUT":
            event = data.get("state_event")
            if event == "reopen":
                issue["state"], issue["closed_at"] = "opened", None
            elif event == "close":
                issue["state"], issue["closed_at"] = "closed", "2026-01-01T00:00:00Z"
            self._tick(issue)
            return 200, copy.deepcopy(issue), {}
        if rest[1:] == ["notes"] and method == "POST":
            return 201, self._note(issue, "Issue", data), {}
        return 405, {"message": "405 Method Not Allowed"}, {}

    def _note(self, target: dict[str, Any], kind: str, data: dict[str, Any]) -> dict[str, Any]:
        note = {
            "id": self._id(),
            "body": data.get("body"),
            "author": {"id": 1, "username": "project_42_bot", "name": "sentry-autofix"},
            "created_at": "2026-01-01T00:00:00Z",
            "system": False,
            "noteable_id": target["id"],
            "noteable_type": kind,
            "noteable_iid": target["iid"],
        }
        self.notes.append(note)
        target["user_notes_count"] = target.get("user_notes_count", 0) + 1
        return note

    def _tick(self, item: dict[str, Any]) -> None:
        self._next_id += 1
        item["updated_at"] = f"2026-01-01T00:{self._next_id // 60 % 60:02d}:{self._next_id % 60:02d}Z"

    def _trigger(self, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        data = body if isinstance(body, dict) else {}
        token = data.get("token") or (query.get("token") or [None])[0]
        ref = data.get("ref") or (query.get("ref") or [None])[0]
        if token != self.trigger_token:
            return 404, {"message": "404 Not Found"}, {}
        if not ref:
            return 400, {"message": "400 Bad request - ref is missing"}, {}
        variables = data.get("variables") or {}
        if not isinstance(variables, dict):  # form: variables[KEY]=value
            variables = {}
        for key, value in data.items():
            if key.startswith("variables[") and key.endswith("]"):
                variables[key[10:-1]] = value
        return 201, self._pipeline(str(ref), "trigger", variables), {}

    def _pipeline(self, ref: str, source: str, variables: dict[str, Any]) -> dict[str, Any]:
        pipe = copy.deepcopy(self._trigger_tpl)
        pid = self._id()
        pipe.update(id=pid, iid=len(self.pipelines) + 1, project_id=self.project_id, ref=ref, source=source)
        pipe["web_url"] = f"{self.web}/{self.project}/-/pipelines/{pid}"
        self.pipelines.append({**pipe, "variables": dict(variables)})
        return pipe


def _branch_exists(remote: Path, branch: str) -> bool:
    out = subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True,
        check=False,
    )
    return out.returncode == 0
