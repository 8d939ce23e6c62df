"""GitLab (gitlab.com or self-managed): the CodeHost on python-gitlab, and the pipeline trigger.

Everything sentry-autofix does on GitLab is here: delivery (merge requests, triage issues,
labels), the marker search `poll` uses to skip handled issues, the lifecycle's notes and closes, and
the relay's / `poll --dispatch`'s pipeline trigger (`POST /projects/:id/trigger/pipeline`).

Authentication is a token with scope `api` (which includes read/write access to the repository)
and role Developer: a project or group access token, or a bot user's personal access token on
GitLab.com Free. The CI job token cannot create merge requests
(docs.gitlab.com/ci/jobs/ci_job_token/ — it reaches only a short list of endpoints, none of them
`POST /projects/:id/merge_requests`). The same token pushes the fix branch over HTTPS as user
`oauth2` (docs.gitlab.com/user/profile/personal_access_tokens/ — "any non-blank value" is accepted as
the user name for token auth), given only to that one `git push` through the environment.

Budget: a delivered MR costs 5 REST calls, counted in tests/delivery/test_e2e_gitlab.py: MRs by
source branch, labelled MRs searched for the marker, labelled issues searched for the marker, the
project's labels, create the MR (labels go with it); +1 per label that must be created.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import quote

import gitlab
import requests
from gitlab.exceptions import GitlabError

from sentry_autofix import __version__
from sentry_autofix.config import Settings
from sentry_autofix.delivery import DispatchOutcome, Existing, HostItem
from sentry_autofix.errors import CodeHostError, ConfigError, Conflict, Forbidden, NotFound, RateLimited
from sentry_autofix.markers import MARKER_PREFIX, MarkedItem, issue_ids_in
from sentry_autofix.retry import retry_after

log = logging.getLogger(__name__)

LABEL_COLOUR = "#6c5fc7"
"""Sentry purple, for the labels we create."""
MARKER_SCAN = 300
"""Fallback when the marker search is refused: labelled MRs/issues (newest first) read for the marker."""
MAX_SEARCH = 1000
"""Search results read at most (every one carries a marker; open ones are what `poll` needs)."""
DRAFT_PREFIX = "Draft: "
"""A title starting with `Draft:` makes a draft MR (docs.gitlab.com/user/project/merge_requests/drafts/)."""
TOKEN_HELP = (
    "set SENTRY_AUTOFIX_GITLAB_TOKEN (a masked CI/CD variable) to a token with scope `api` and at least "
    "the Developer role on the project: a project or group access token, or a bot user's personal "
    "access token (docs/gitlab.md); the CI job token cannot create merge requests"
)


def translate(exc: Exception, action: str) -> Exception:
    """One place that turns python-gitlab/requests failures into our errors, with the fix to apply."""
    if isinstance(exc, (CodeHostError, ConfigError)):
        return exc
    if isinstance(exc, GitlabError):
        code = exc.response_code
        msg = _text(exc.error_message)[:300]
        if code == 401:
            return Forbidden(f"GitLab rejected the token (401) while trying to {action}: {TOKEN_HELP}")
        if code == 403:
            return Forbidden(
                f"GitLab forbade {action} (403: {msg}): the token needs scope `api` (it includes pushing) "
                "and at least the Developer role on the project"
            )
        if code == 404:
            return NotFound(
                f"GitLab answered 404 while trying to {action}: check SENTRY_AUTOFIX_GITLAB_PROJECT / "
                "CI_PROJECT_ID and that the token's project or group includes this project"
            )
        if code == 429:
            return RateLimited(f"GitLab rate limit hit while trying to {action}; re-run later")
        if code == 409:
            # "Another open merge request already exists for this source branch: !12": GitLab
            # counts only MRs from the same project with the same source and target branch.
            existing = re.search(r"already exists for this source branch: !(\d+)", msg)
            number = int(existing.group(1)) if existing else None
            return Conflict(f"GitLab answered 409 while trying to {action}: {msg}", number)
        return CodeHostError(f"GitLab answered {code} while trying to {action}: {msg}")
    if isinstance(exc, requests.exceptions.RequestException):
        return CodeHostError(
            f"could not reach GitLab ({type(exc).__name__}) while trying to {action}: check CI_SERVER_URL "
            "(SENTRY_AUTOFIX_GITLAB_URL)"
        )
    return exc


def _text(message: Any) -> str:
    """GitLab's `message` is a string, a list (`["Another open merge request already exists …"]`)
    or a dict of field → list: as one line of text, not a Python repr."""
    if isinstance(message, list):
        return "; ".join(_text(m) for m in message)
    if isinstance(message, dict):
        return "; ".join(f"{k} {_text(v)}" for k, v in message.items())
    return str(message or "")


@contextmanager
def _seam(action: str) -> Iterator[None]:
    try:
        yield
    except (GitlabError, requests.exceptions.RequestException) as exc:
        raise translate(exc, action) from exc


def _ours(data: dict[str, Any]) -> bool:
    """An issue, or an MR whose source branch lives in this project: the project's MR list also
    holds MRs from forks, whose branch names and descriptions anyone can choose."""
    source = data.get("source_project_id")
    return source is None or source == data.get("target_project_id")


class GitLabHost:
    """CodeHost on the GitLab REST API v4. Merge requests are the `pr` items, GitLab issues the
    triage issues; `number` is the project-scoped `iid`."""

    noun = "merge request"

    def __init__(self, settings: Settings, *, client: gitlab.Gitlab | None = None) -> None:
        if not settings.gitlab_project:
            raise ConfigError(
                "set SENTRY_AUTOFIX_GITLAB_PROJECT to the project id or path (GitLab CI sets CI_PROJECT_ID)"
            )
        if settings.gitlab_token is None:
            raise ConfigError(TOKEN_HELP)
        self._token = settings.gitlab_token.get_secret_value()
        if client is None:
            if not settings.gitlab_url:
                raise ConfigError("set SENTRY_AUTOFIX_GITLAB_URL to the GitLab base URL (GitLab CI sets CI_SERVER_URL)")
            client = gitlab.Gitlab(
                url=settings.gitlab_url.rstrip("/"),
                private_token=self._token,
                timeout=30,
                user_agent=f"sentry-autofix/{__version__}",
                per_page=100,
                # 429 and 5xx are retried, honouring Retry-After (python-gitlab's http_request).
                retry_transient_errors=True,
            )
        self._gl = client
        # lazy: no GET /projects/:id until an attribute is read (default_branch only).
        self._project_ref = settings.gitlab_project
        # CI_PROJECT_URL under GitLab CI; else built from the base URL when the project is a path.
        path_url = f"{settings.gitlab_url.rstrip('/')}/{self._project_ref}" if settings.gitlab_url else None
        self._web = settings.gitlab_project_url or (None if self._project_ref.isdigit() else path_url)
        self._project = client.projects.get(settings.gitlab_project, lazy=True)
        self.full_name = settings.ci_project_path or str(settings.gitlab_project)
        self._mr_label = settings.labels[0] if settings.labels else None
        self._issue_label = settings.issue_labels[0] if settings.issue_labels else None
        self._known_labels: set[str] | None = None
        self._drafts: dict[int, bool] = {}

    def push_auth(self) -> tuple[str, str]:
        return ("oauth2", self._token)

    def ref(self, kind: Literal["pr", "issue"], number: int) -> str:
        return f"MR !{number}" if kind == "pr" else f"issue #{number}"

    # -- reads --------------------------------------------------------------------------------
    def default_branch(self) -> str:
        with _seam("read the project"):
            return str(self._gl.projects.get(self._project_ref).default_branch)

    def find_existing(self, issue_id: str, branch: str) -> Existing:
        pr: HostItem | None = None
        issue: HostItem | None = None
        with _seam("look for an existing merge request"):
            for mr in self._project.mergerequests.list(source_branch=branch, state="all", get_all=False):
                # The project's list holds MRs from forks too: a fork's branch may carry our name.
                if mr.source_branch == branch and _ours(mr.attributes):
                    pr = self._mr_item(mr.attributes)
                    if pr.state == "open":
                        break
        if pr is None:
            found = self._marked("pr", "all", issue_id)
            best = next((obj for obj in found if obj.state == "opened"), found[0] if found else None)
            pr = self._mr_item(best.attributes) if best is not None else None
        for item in self._marked("issue", "all", issue_id):
            if issue is None or (issue.state == "closed" and item.state == "opened"):
                issue = self._issue_item(item.attributes)
        return Existing(pr=pr, issue=issue)

    # -- writes -------------------------------------------------------------------------------
    def open_pull_request(
        self, *, branch: str, base: str, title: str, body: str, draft: bool, labels: Sequence[str]
    ) -> HostItem:
        self._ensure_labels(labels)
        with _seam("open the merge request"):
            mr = self._project.mergerequests.create(
                {
                    "source_branch": branch,
                    "target_branch": base,
                    "title": (DRAFT_PREFIX + title) if draft else title,
                    "description": body,
                    "labels": ",".join(labels),
                    "remove_source_branch": True,
                }
            )
        return self._mr_item(mr.attributes)

    def update_pull_request(self, number: int, *, title: str, body: str, labels: Sequence[str]) -> HostItem:
        with _seam("update the merge request"):
            draft = self._drafts.get(number)
            if draft is None:  # an MR we have not listed: named by a 409
                current = self._project.mergerequests.get(number).attributes
                if not _ours(current):
                    raise CodeHostError(f"merge request !{number} comes from a fork: not updating it")
                draft = bool(current.get("draft"))
            # A title without the `Draft:` prefix would mark a draft MR ready: keep what it was.
            data = self._project.mergerequests.update(
                number, {"title": (DRAFT_PREFIX + title) if draft else title, "description": body}
            )
        return self._mr_item(data)

    def open_issue(self, *, title: str, body: str, labels: Sequence[str]) -> HostItem:
        self._ensure_labels(labels)
        with _seam("open the triage issue"):
            created = self._project.issues.create({"title": title, "description": body, "labels": ",".join(labels)})
        return self._issue_item(created.attributes)

    def reopen_issue(self, number: int, *, comment: str) -> HostItem:
        with _seam("reopen the triage issue"):
            self._project.issues.get(number, lazy=True).notes.create({"body": comment})
            data = self._project.issues.update(number, {"state_event": "reopen"})
        return self._issue_item(data)

    def blob_base(self, sha: str) -> str | None:
        return f"{self._web.rstrip('/')}/-/blob/{sha}" if self._web else None

    # -- poll and lifecycle -------------------------------------------------------------------
    def open_marked(self) -> list[MarkedItem]:
        """Open MRs and issues with our labels, scanned for markers: one call per 100 of each."""
        return self._scan("opened", None)

    def find_by_marker(self, issue_id: str) -> list[MarkedItem]:
        return self._scan("all", issue_id)

    def comment(self, kind: Literal["pr", "issue"], number: int, body: str) -> None:
        """A note on an MR or issue (the lifecycle's `resolved in Sentry`)."""
        with _seam(f"comment on {self.ref(kind, number)}"):
            manager: Any = self._project.mergerequests if kind == "pr" else self._project.issues
            manager.get(number, lazy=True).notes.create({"body": body})

    def close_issue(self, number: int) -> None:
        with _seam(f"close issue #{number}"):
            self._project.issues.update(number, {"state_event": "close"})

    def _scan(self, state: str, issue_id: str | None) -> list[MarkedItem]:
        return [
            MarkedItem(
                number=int(obj.iid),
                kind=kind,
                state="open" if obj.state == "opened" else "closed",
                url=str(obj.web_url or ""),
                issue_ids=frozenset(issue_ids_in(obj.description)),
            )
            for kind in ("pr", "issue")
            for obj in self._marked(kind, state, issue_id)
        ]

    def _marked(self, kind: Literal["pr", "issue"], state: str, issue_id: str | None) -> list[Any]:
        """Our MRs (or issues) carrying the marker of `issue_id` (None: any marker), newest first.

        One server-side search of descriptions for the marker text (`search` + `in=description`,
        docs.gitlab.com/api/merge_requests/#list-project-merge-requests, …/api/issues/#list-project-issues),
        so the project's history size does not matter; with the first label when one is set, so
        only members (who can label) mark items. The search matches words or substrings, not our
        marker line: `issue_ids_in` decides. An instance that refuses the search gets the old
        scan of the newest `MARKER_SCAN` labelled items.
        """
        manager: Any = self._project.mergerequests if kind == "pr" else self._project.issues
        label = self._mr_label if kind == "pr" else self._issue_label
        what = "merge requests" if kind == "pr" else "issues"
        base: dict[str, Any] = {"state": state, "order_by": "updated_at", "sort": "desc", "iterator": True}
        if label:
            base["labels"] = [label]
        text = f"{MARKER_PREFIX}={issue_id}" if issue_id else f"{MARKER_PREFIX}="
        try:
            with _seam(f"search {what} for our marker"):
                return self._keep(manager.list(**base, search=text, **{"in": "description"}), issue_id, MAX_SEARCH)
        except CodeHostError as exc:
            cause = exc.__cause__
            if not isinstance(cause, GitlabError) or cause.response_code in (401, 403, 404):
                raise
            log.info("GitLab refused the marker search (%s): scanning the newest %d %s", exc, MARKER_SCAN, what)
        with _seam(f"look for marked {what}"):
            return self._keep(manager.list(**base), issue_id, MARKER_SCAN)

    @staticmethod
    def _keep(items: Iterable[Any], issue_id: str | None, limit: int) -> list[Any]:
        kept = []
        for n, obj in enumerate(items):
            if n >= limit:
                break
            ids = issue_ids_in(obj.description)
            if ids and (issue_id is None or issue_id in ids) and _ours(obj.attributes):
                kept.append(obj)
        return kept

    def dispatch_workflow(self, workflow: str, ref: str) -> None:
        """GitLab runs the branch pipeline on push by itself; `ci-workflow` starts one more on `ref`."""
        with _seam(f"start a pipeline on {ref}"):
            self._project.pipelines.create({"ref": ref})

    # -- helpers ------------------------------------------------------------------------------
    def _ensure_labels(self, labels: Sequence[str]) -> None:
        if not labels:
            return
        with _seam("create labels"):
            if self._known_labels is None:
                self._known_labels = {
                    str(lbl.name).lower()
                    for lbl in self._project.labels.list(iterator=True, include_ancestor_groups=True)
                }
            for name in labels:
                if name.lower() in self._known_labels:
                    continue
                try:
                    self._project.labels.create(
                        {"name": name, "color": LABEL_COLOUR, "description": "Opened by sentry-autofix"}
                    )
                except GitlabError as exc:
                    if exc.response_code != 409:  # 409 already exists: a concurrent run made it
                        raise
                self._known_labels.add(name.lower())

    def _mr_item(self, data: dict[str, Any]) -> HostItem:
        number = int(data["iid"])
        draft = bool(data.get("draft") or data.get("work_in_progress"))
        self._drafts[number] = draft
        state = str(data.get("state"))
        return HostItem(
            kind="pr",
            number=number,
            url=str(data.get("web_url")),
            state="open" if state == "opened" else "closed",
            merged=state == "merged",
            draft=draft,
            branch=str(data.get("source_branch") or "") or None,
            labels=tuple(str(lbl) for lbl in data.get("labels") or []),
        )

    @staticmethod
    def _issue_item(data: dict[str, Any]) -> HostItem:
        return HostItem(
            kind="issue",
            number=int(data["iid"]),
            url=str(data.get("web_url")),
            state="open" if data.get("state") == "opened" else "closed",
            labels=tuple(str(lbl) for lbl in data.get("labels") or []),
        )


# --- the pipeline trigger: the relay's and `poll --dispatch`'s ---------------------------------

TRIGGER_TOKEN_HELP = (
    "check SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN: a pipeline trigger token of the target project "
    "(Settings → CI/CD → Pipeline trigger tokens)"
)
VARIABLES_HELP = (
    "the project refuses pipeline variables: Settings → CI/CD → Variables → Minimum role to use "
    "pipeline variables must allow the trigger token owner's role (gitlab.com defaults new projects "
    "to 'No one allowed')"
)
PAYLOAD_VARIABLE = "SENTRY_AUTOFIX_PAYLOAD"
"""The pipeline variable carrying the relay's context (JSON: action, substatus, short id, …)."""
_PROJECT_RE = re.compile(r"^(?:[0-9]{1,20}|[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+)$")
_REF_RE = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9_./-]{1,200}$")
DEFAULT_URL = "https://gitlab.com"
DEFAULT_REF = "main"


def parse_target(spec: str, settings: Settings, setting: str) -> str:
    """`[<base URL>#]<project id or path>[@<ref>]` → `gitlab:<base URL>#<project>@<ref>`.

    The base URL defaults to SENTRY_AUTOFIX_GITLAB_URL (else gitlab.com), the ref to `main`: the
    trigger API needs a branch, and reading the default branch would need an access token.
    """
    url, sep, rest = spec.rpartition("#")
    if not sep:
        url = settings.gitlab_url or DEFAULT_URL
    url = url.rstrip("/")
    project, _, ref = rest.partition("@")
    ref = ref or DEFAULT_REF
    if not url.startswith(("https://", "http://")) or any(c in url for c in "#@ \t"):
        raise ConfigError(f"{setting}: {url!r} is not a GitLab base URL (https://gitlab.example.com)")
    if not _PROJECT_RE.fullmatch(project):
        raise ConfigError(f"{setting}: {project!r} is not a GitLab project id or group/project path")
    if not _REF_RE.fullmatch(ref):
        raise ConfigError(f"{setting}: {ref!r} is not a branch name")
    return f"gitlab:{url}#{project}@{ref}"


def default_target(settings: Settings) -> str:
    if not settings.gitlab_project:
        raise ConfigError("set SENTRY_AUTOFIX_GITLAB_PROJECT to the project id or path (GitLab CI sets CI_PROJECT_ID)")
    ref = settings.base_branch or settings.ci_default_branch or DEFAULT_REF
    return parse_target(f"{settings.gitlab_project}@{ref}", settings, "SENTRY_AUTOFIX_GITLAB_PROJECT")


def _retry_after(resp: requests.Response, now: float) -> float | None:
    wait = retry_after(resp.headers.get("retry-after"), now)
    if wait is not None:
        return wait
    # docs.gitlab.com/security/rate_limits/: RateLimit-Reset is the epoch second the window resets.
    if resp.headers.get("ratelimit-remaining") == "0" and resp.headers.get("ratelimit-reset", "").isdigit():
        return max(0.0, float(resp.headers["ratelimit-reset"]) - now)
    return None


def _http_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or ""
    if isinstance(body, dict):
        msg = body.get("message", body.get("error"))
        if msg is not None:
            return json.dumps(msg)[:300] if not isinstance(msg, str) else msg[:300]
    return resp.reason or ""


class GitLabTrigger:
    """`POST /projects/:id/trigger/pipeline` with the trigger token, the Sentry issue id and the
    relay's context as pipeline variables (docs.gitlab.com/api/pipeline_triggers/).

    Plain `requests` (python-gitlab's own transport) so the relay's outbox sees every status and
    rate-limit header and owns the retries. The token goes in the form body, never in the URL:
    URLs end up in access logs and in our error messages; bodies do not.
    """

    kind = "trigger-token"

    def __init__(
        self,
        token: str | dict[str, str],
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # One token for every project, or one per project (`Settings.gitlab_trigger_tokens`).
        self._tokens = {"": token} if isinstance(token, str) else dict(token)
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock

    def dispatch(self, target: str, event_type: str, payload: dict[str, Any]) -> DispatchOutcome:
        url, _, rest = target.removeprefix("gitlab:").rpartition("#")
        project, _, ref = rest.partition("@")
        where = f"{url}/{project}"
        token = self._tokens.get(project) or self._tokens.get("")
        if not token:
            # Kept for retry, as a refused token is: once the operator adds it, the run goes out.
            return DispatchOutcome(
                False,
                True,
                None,
                f"no trigger token for GitLab project {project}: add `{project}=<token>` to "
                "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN",
            )
        form = {
            "token": token,
            "ref": ref,
            "variables[SENTRY_AUTOFIX_ISSUE_ID]": str(payload.get("issue_id") or ""),
            "variables[SENTRY_AUTOFIX_EVENT_TYPE]": event_type,
            f"variables[{PAYLOAD_VARIABLE}]": json.dumps(payload, separators=(",", ":")),
        }
        try:
            resp = self._session.post(
                f"{url}/api/v4/projects/{quote(project, safe='')}/trigger/pipeline",
                data=form,
                headers={"User-Agent": f"sentry-autofix/{__version__}"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            return DispatchOutcome(False, True, None, f"GitLab unreachable at {url}: {type(exc).__name__}")
        status, now = resp.status_code, self._clock()
        wait = _retry_after(resp, now)
        if status in (200, 201):
            exhausted = resp.headers.get("ratelimit-remaining") == "0"
            return DispatchOutcome(True, False, status, "pipeline created", wait if exhausted else None, exhausted)
        detail = _http_message(resp).replace(token, "***")
        if status == 429:
            return DispatchOutcome(False, True, status, f"429 {detail}", wait, rate_limited=True)
        if status in (401, 403):
            return DispatchOutcome(False, True, status, f"{status} {detail}: {TRIGGER_TOKEN_HELP} of {where}", wait)
        if status == 404:
            # GitLab answers 404 both for an unknown project and for a token it does not know.
            return DispatchOutcome(
                False, True, status, f"404 {detail}: {where} does not exist, or {TRIGGER_TOKEN_HELP}", None
            )
        if status in (400, 422):
            # Bad ref or variables: the same request will fail again.
            hint = VARIABLES_HELP if "variables" in detail.lower() else f"route ref {ref!r} on {where}"
            return DispatchOutcome(False, False, status, f"{status} {detail} ({hint})")
        return DispatchOutcome(False, True, status, f"{status} {detail}", wait)


def build_host(settings: Settings) -> GitLabHost:
    return GitLabHost(settings)


def build_trigger(settings: Settings) -> GitLabTrigger:
    if settings.gitlab_trigger_token is None:
        raise ConfigError(
            "set SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN to a pipeline trigger token of the target project "
            "(Settings → CI/CD → Pipeline trigger tokens → Add new token)"
        )
    return GitLabTrigger(settings.gitlab_trigger_tokens())
