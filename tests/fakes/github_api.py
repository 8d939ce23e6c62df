"""A loopback fake of the GitHub REST API, for the operations sentry-autofix uses.

Stands in for api.github.com / GHES at `GITHUB_API_URL`. Faithful where our code depends on it:
* response bodies are GitHub's own examples from ../shared/fixtures/github (OpenAPI
  `components/examples`) with only the fields of the object at hand replaced;
* status codes per `operations.json` (201 on create, 204 on dispatch, 404/422 bodies shaped like
  `basic-error` / `validation-error`), the real 403 "GitHub Actions is not permitted to create or
  approve pull requests." body (github/docs#36525) when PR creation is forbidden;
* `GET /pulls?head=` without the `owner:` prefix is ignored, as GitHub does (returns every PR);
* `GET /issues` lists PRs too (with a `pull_request` key), paginated with a `Link` header;
* every answer carries `x-ratelimit-*` headers of a GITHUB_TOKEN (1,000/hour per repository);
  `inject()` queues one-off failures (secondary limits with `retry-after`, 5xx…);
* `POST /pulls` checks the head branch exists in the real bare git remote, like GitHub does.
It records every request so tests and bench/github_calls.py can count calls and grep bodies.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._server import RoutedFake

PR_FORBIDDEN_BODY = {
    "message": "GitHub Actions is not permitted to create or approve pull requests.",
    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    "status": "403",
}
SECONDARY_LIMIT_BODY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID ABCD:1234.",
    "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
    "status": "403",
}


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
    path_re: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeGitHub(RoutedFake):
    def __init__(
        self,
        fixtures: Path,
        *,
        repo: str = "acme/shop",
        token: str = "ghs_faketoken",
        git_remote: Path | None = None,
        default_branch: str = "main",
    ) -> None:
        self.fx = fixtures
        self.repo = repo
        self.owner = repo.split("/")[0]
        self.token = token
        self.git_remote = git_remote
        self.default_branch = default_branch
        self.forbid_pr_creation = False
        self.calls: list[Call] = []
        self.items: dict[int, dict[str, Any]] = {}  # issues and PRs share GitHub's number space
        self.comments: dict[int, list[str]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.dispatches: list[tuple[str, dict[str, Any]]] = []
        self.injected: list[Injected] = []
        self.rate_remaining = 1000
        self.reset_at = int(time.time()) + 3600
        self._next_number = 1
        self._lock = threading.Lock()
        self.label_template = self._load("issues__create-label.response.json")

    def inject(self, method: str, path_re: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer the next matching request with this (once)."""
        self.injected.append(Injected(method, path_re, status, body, headers or {}))

    def add_fork_pull(self, branch: str, fork: str, body: str = "Their own work.") -> dict[str, Any]:
        """An open PR from `fork` (another repository of the same owner, as GitHub allows under
        another name) whose head branch has `branch`'s name."""
        pr = self._new_pr({"head": branch, "base": self.default_branch, "title": "Their own work", "body": body})
        pr["head"]["repo"]["full_name"] = fork
        pr["head"]["repo"]["name"] = fork.split("/")[1]
        pr["user"]["login"] = "forker"
        return pr

    # -- helpers -------------------------------------------------------------------------------
    def _load(self, name: str) -> Any:
        return json.loads((self.fx / name).read_text(encoding="utf-8"))

    def _rate_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "1000",
            "x-ratelimit-remaining": str(max(self.rate_remaining, 0)),
            "x-ratelimit-reset": str(self.reset_at),
            "x-ratelimit-used": str(1000 - max(self.rate_remaining, 0)),
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": "2022-11-28",
            "x-github-request-id": f"FAKE:{len(self.calls):04d}",
        }

    def _error(self, status: int, message: str, errors: list[dict[str, str]] | None = None) -> tuple[int, Any]:
        doc = "https://docs.github.com/rest"
        body: dict[str, Any] = {"message": message, "documentation_url": doc, "status": str(status)}
        if errors is not None:
            body["errors"] = errors
        return status, body

    def pulls(self) -> list[dict[str, Any]]:
        return [i for i in self.items.values() if "head" in i]

    def issues(self) -> list[dict[str, Any]]:
        return [i for i in self.items.values() if "head" not in i]

    def _label_obj(self, name: str) -> dict[str, Any]:
        if name not in self.labels:
            obj = copy.deepcopy(self.label_template)
            obj.update(
                id=1000 + len(self.labels),
                name=name,
                color="ededed",
                default=False,
                description=None,
                url=f"{self.url}/repos/{self.repo}/labels/{name}",
            )
            self.labels[name] = obj
        return self.labels[name]

    def _branch_exists(self, branch: str) -> bool:
        if self.git_remote is None:
            return True
        proc = subprocess.run(
            ["git", "-C", str(self.git_remote), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def _issue_view(self, item: dict[str, Any]) -> dict[str, Any]:
        """A PR as the issues API shows it (with `pull_request`), or the issue itself."""
        if "head" not in item:
            return item
        view = copy.deepcopy(self._load("issues__get.response.json"))
        for key in ("number", "title", "body", "state", "labels", "html_url", "user", "created_at", "updated_at"):
            view[key] = copy.deepcopy(item[key])
        view["id"] = item["id"]
        view["url"] = f"{self.url}/repos/{self.repo}/issues/{item['number']}"
        view["pull_request"] = {
            "url": item["url"],
            "html_url": item["html_url"],
            "diff_url": item["diff_url"],
            "patch_url": item["patch_url"],
            "merged_at": item["merged_at"],
        }
        return view

    def _new_pr(self, data: dict[str, Any]) -> dict[str, Any]:
        n = self._next_number
        self._next_number += 1
        pr = copy.deepcopy(self._load("pulls__create.response.json"))
        base_url = f"{self.url}/repos/{self.repo}"
        html = f"https://github.com/{self.repo}/pull/{n}"
        pr.update(
            id=5000 + n,
            number=n,
            title=data["title"],
            body=data.get("body"),
            state="open",
            draft=bool(data.get("draft", False)),
            labels=[],
            merged=False,
            merged_at=None,
            closed_at=None,
            url=f"{base_url}/pulls/{n}",
            html_url=html,
            diff_url=html + ".diff",
            patch_url=html + ".patch",
            issue_url=f"{base_url}/issues/{n}",
            comments_url=f"{base_url}/issues/{n}/comments",
            maintainer_can_modify=bool(data.get("maintainer_can_modify", False)),
        )
        pr["head"]["ref"] = data["head"].split(":")[-1]
        pr["head"]["label"] = f"{self.owner}:{pr['head']['ref']}"
        pr["base"]["ref"] = data["base"]
        for side in ("head", "base"):
            if pr[side].get("repo"):
                pr[side]["repo"]["full_name"] = self.repo
                pr[side]["repo"]["name"] = self.repo.split("/")[1]
                pr[side]["repo"]["url"] = base_url
        pr["user"]["login"] = "github-actions[bot]"
        self.items[n] = pr
        return pr

    def _new_issue(self, data: dict[str, Any]) -> dict[str, Any]:
        n = self._next_number
        self._next_number += 1
        issue = copy.deepcopy(self._load("issues__create.response.json"))
        issue.update(
            id=7000 + n,
            number=n,
            title=data["title"],
            body=data.get("body"),
            state="open",
            state_reason=None,
            labels=[self._label_obj(name) for name in data.get("labels") or []],
            pull_request=None,
            url=f"{self.url}/repos/{self.repo}/issues/{n}",
            html_url=f"https://github.com/{self.repo}/issues/{n}",
            comments=0,
            closed_at=None,
        )
        issue["user"]["login"] = "github-actions[bot]"
        self.items[n] = issue
        return issue

    def _page(self, rows: list[Any], path: str, query: dict[str, list[str]]) -> tuple[list[Any], dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        chunk = rows[(page - 1) * per_page : page * per_page]
        links = []
        if page * per_page < len(rows):
            q = "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "page")
            links.append(f'<{self.url}{path}?{q}&page={page + 1}>; rel="next"')
            last = (len(rows) + per_page - 1) // per_page
            links.append(f'<{self.url}{path}?{q}&page={last}>; rel="last"')
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- routing -------------------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        path = parts.path
        query = parse_qs(parts.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            status, out, extra = self._route(method, path, query, headers, body)
            self.rate_remaining -= 1
            hdrs = {**self._rate_headers(), **extra}
            self.calls.append(Call(method, path, query, body, status, hdrs))
        return status, out, hdrs

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        for inj in list(self.injected):
            if inj.method == method and re.search(inj.path_re, path):
                self.injected.remove(inj)
                return inj.status, inj.body, inj.headers
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return (*self._error(401, "Bad credentials"), {})
        prefix = f"/repos/{self.repo}"
        if path.startswith("/api/v3/"):  # GHES layout
            path = path[len("/api/v3") :]
        if method == "GET" and path == "/search/issues":
            return self._search(query, path)
        if not path.startswith(prefix):
            return (*self._error(404, "Not Found"), {})
        rest = path[len(prefix) :]
        m = re.fullmatch
        if method == "GET" and rest == "":
            repo = copy.deepcopy(self._load("repos__get.response.json"))
            repo.update(
                full_name=self.repo,
                name=self.repo.split("/")[1],
                default_branch=self.default_branch,
                url=f"{self.url}{prefix}",
            )
            return 200, repo, {}
        if method == "GET" and rest == "/pulls":
            rows = self.pulls()
            state = query.get("state", ["open"])[0]
            if state != "all":
                rows = [p for p in rows if p["state"] == state]
            head = query.get("head", [None])[0]
            if head and ":" in head:  # without `owner:` GitHub ignores the filter (SPEC §10)
                # `owner:ref` is the head's label: a fork owned by the same account has the same one.
                rows = [p for p in rows if p["head"]["label"] == head]
            chunk, links = self._page(rows, path, query)
            return 200, chunk, links
        if method == "POST" and rest == "/pulls":
            if self.forbid_pr_creation:
                return 403, PR_FORBIDDEN_BODY, {}
            if not body or not body.get("head") or not body.get("base") or not body.get("title"):
                return (
                    *self._error(422, "Validation Failed", [{"resource": "PullRequest", "code": "missing_field"}]),
                    {},
                )
            ref = body["head"].split(":")[-1]
            if not self._branch_exists(ref):
                return (
                    *self._error(
                        422, "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
                    ),
                    {},
                )
            if any(
                p["head"]["ref"] == ref and p["head"]["repo"]["full_name"] == self.repo and p["state"] == "open"
                for p in self.pulls()
            ):
                return (
                    *self._error(
                        422,
                        "Validation Failed",
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {self.owner}:{ref}.",
                            }
                        ],
                    ),
                    {},
                )
            if body.get("body") and len(body["body"]) > 65536:
                return (
                    *self._error(
                        422,
                        "Validation Failed",
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "field": "body",
                                "message": "body is too long (maximum is 65536 characters)",
                            }
                        ],
                    ),
                    {},
                )
            return 201, self._new_pr(body), {}
        if (mm := m(r"/pulls/(\d+)", rest)) and int(mm.group(1)) in self.items:
            pr = self.items[int(mm.group(1))]
            if method == "GET":
                return 200, pr, {}
            if method == "PATCH":
                for key in ("title", "body", "state"):
                    if body and key in body:
                        pr[key] = body[key]
                return 200, pr, {}
        if method == "GET" and rest == "/issues":
            rows = list(self.items.values())
            state = query.get("state", ["open"])[0]
            if state != "all":
                rows = [i for i in rows if i["state"] == state]
            if "labels" in query:
                wanted = set(query["labels"][0].split(","))
                rows = [i for i in rows if wanted <= {lbl["name"] for lbl in i["labels"]}]
            rows = sorted(rows, key=lambda i: i["number"], reverse=query.get("direction", ["desc"])[0] == "desc")
            chunk, links = self._page([self._issue_view(i) for i in rows], path, query)
            return 200, chunk, links
        if method == "POST" and rest == "/issues":
            if not body or not body.get("title"):
                return (
                    *self._error(
                        422, "Validation Failed", [{"resource": "Issue", "code": "missing_field", "field": "title"}]
                    ),
                    {},
                )
            if body.get("body") and len(body["body"]) > 65536:
                return (
                    *self._error(
                        422,
                        "Validation Failed",
                        [
                            {
                                "resource": "Issue",
                                "code": "custom",
                                "field": "body",
                                "message": "body is too long (maximum is 65536 characters)",
                            }
                        ],
                    ),
                    {},
                )
            return 201, self._new_issue(body), {}
        if mm := m(r"/issues/(\d+)(/comments|/labels)?", rest):
            n = int(mm.group(1))
            if n not in self.items:
                return (*self._error(404, "Not Found"), {})
            item = self.items[n]
            if mm.group(2) is None and method == "GET":
                return 200, self._issue_view(item), {}
            if mm.group(2) is None and method == "PATCH":
                for key in ("title", "body", "state"):
                    if body and key in body:
                        item[key] = body[key]
                return 200, self._issue_view(item), {}
            if mm.group(2) == "/comments" and method == "POST":
                self.comments.setdefault(n, []).append(body["body"])
                comment = copy.deepcopy(self._load("issues__create-comment.response.json"))
                comment.update(body=body["body"], id=9000 + sum(len(c) for c in self.comments.values()))
                return 201, comment, {}
            if mm.group(2) == "/labels" and method == "POST":
                names = body.get("labels", []) if isinstance(body, dict) else body
                for name in names:
                    if name not in {lbl["name"] for lbl in item["labels"]}:
                        item["labels"].append(self._label_obj(name))
                return 200, item["labels"], {}
        if rest == "/labels":
            if method == "GET":
                chunk, links = self._page(list(self.labels.values()), path, query)
                return 200, chunk, links
            if method == "POST":
                if body["name"] in self.labels:
                    return (
                        *self._error(
                            422, "Validation Failed", [{"resource": "Label", "code": "already_exists", "field": "name"}]
                        ),
                        {},
                    )
                obj = self._label_obj(body["name"])
                obj.update(color=body.get("color", "ededed"), description=body.get("description"))
                return 201, obj, {}
        if method == "POST" and (mm := m(r"/actions/workflows/([^/]+)/dispatches", rest)):
            if not body or "ref" not in body:
                return (*self._error(422, 'Invalid request.\n\n"ref" wasn\'t supplied.'), {})
            self.dispatches.append((mm.group(1), body))
            return 204, None, {}
        return (*self._error(404, "Not Found"), {})

    def _search(self, query: dict[str, list[str]], path: str) -> tuple[int, Any, dict[str, str]]:
        """`GET /search/issues` for the qualifiers our code uses: repo:, "phrase" in:body, is:open|closed,
        is:issue|is:pull-request. Body matching is by words, as GitHub's search (the marker itself
        must then be checked by the caller)."""
        q = query.get("q", [""])[0]
        phrases = re.findall(r'"([^"]+)"', q)
        words = q.split()
        repo = next((w.split(":", 1)[1] for w in words if w.startswith("repo:")), None)
        if repo != self.repo:
            return (
                *self._error(422, "Validation Failed", [{"resource": "Search", "field": "q", "code": "invalid"}]),
                {},
            )
        rows = [self._issue_view(i) for i in sorted(self.items.values(), key=lambda i: i["number"])]
        for phrase in phrases:
            rows = [r for r in rows if phrase.replace("=", " ") in re.sub(r"[^\w:-]+", " ", r["body"] or "")]
        if "is:open" in words:
            rows = [r for r in rows if r["state"] == "open"]
        if "is:closed" in words:
            rows = [r for r in rows if r["state"] == "closed"]
        if "is:issue" in words:
            rows = [r for r in rows if not r.get("pull_request")]
        if "is:pull-request" in words or "is:pr" in words:
            rows = [r for r in rows if r.get("pull_request")]
        template = self._load("search__issues-and-pull-requests.response.json")
        chunk, links = self._page(rows, path, query)
        body = {
            "total_count": len(rows),
            "incomplete_results": False,
            "search_type": template.get("search_type", "lexical"),
            "items": chunk,
        }
        return 200, body, links

    # -- helpers for tests ----------------------------------------------------------------------
    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]
