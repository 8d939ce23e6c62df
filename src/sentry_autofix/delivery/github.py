"""GitHub (and GitHub Enterprise Server): the CodeHost on PyGithub, and the `repository_dispatch` trigger.

Everything sentry-autofix does on GitHub is here: delivery (PRs, triage issues, labels), the
marker search `poll` uses to skip handled issues, the lifecycle's comments and closes, and the
relay's / `poll --dispatch`'s `repository_dispatch` with a token or GitHub App credentials.

Budget: a delivered PR costs about 6 REST calls (find by branch, find by marker, list labels,
maybe create a label, create the PR, label it); the GITHUB_TOKEN allows 1,000 per hour per
repository (SPEC §10). PyGithub's own throttling and retry are set deliberately here:
* no pause between reads (we make a handful), `github_write_interval` between writes (GitHub asks
  for >= 1 s between content-creating requests to stay clear of secondary limits);
* retries on 5xx, 429 and rate-limited 403s, honouring `retry-after` / `x-ratelimit-reset`,
  but the total time spent waiting in one run is capped by `github_max_wait`: beyond it the run
  gives up cleanly with RateLimited instead of sleeping for up to an hour.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import requests
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException

from sentry_autofix import __version__
from sentry_autofix.config import Settings
from sentry_autofix.delivery import DispatchOutcome, Existing, HostItem
from sentry_autofix.errors import CodeHostError, ConfigError, Conflict, Forbidden, NotFound, RateLimited
from sentry_autofix.markers import MARKER_PREFIX, MarkedItem, issue_ids_in
from sentry_autofix.retry import retry_after

log = logging.getLogger(__name__)

PR_CREATION_FORBIDDEN = (
    "GitHub refused to let this workflow open a pull request. Enable it in the repository: "
    "Settings → Actions → General → Workflow permissions → check 'Allow GitHub Actions to create and "
    "approve pull requests' (an organization setting may override it)."
)
LABEL_COLOUR = "6c5fc7"
"""Sentry purple, for the labels we create."""
MARKER_SCAN_PAGES = 3
"""Pages of 100 labelled issues/PRs scanned for the marker (newest first)."""
MAX_SEARCH_RESULTS = 1000
"""GitHub search returns at most 1,000 results (10 pages of 100)."""
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


class _WaitBudget:
    def __init__(self, seconds: float) -> None:
        self.remaining = seconds


class BoundedRetry(GithubRetry):
    """GithubRetry whose sleeps (retry-after, rate-limit reset, backoff) share one budget."""

    def __init__(self, budget: _WaitBudget | None = None, **kwargs: Any) -> None:
        self._budget = budget or _WaitBudget(60.0)
        # GithubRetry computes the wait (retry-after, x-ratelimit-reset, secondary_rate_wait);
        # sleep() below enforces the budget on every wait, whatever computed it.
        kwargs.setdefault("secondary_rate_wait", min(60.0, self._budget.remaining))
        # 429 is GitHub's other secondary-limit answer; GithubRetry covers 403 + 5xx only.
        kwargs.setdefault("status_forcelist", [*range(500, 600), 429])
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> BoundedRetry:
        kw["budget"] = self._budget
        return super().new(**kw)

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = self.get_backoff_time()
        if wait > self._budget.remaining:
            raise RateLimited(
                f"GitHub asks to wait {wait:.0f}s, over the remaining rate-limit budget of "
                f"{self._budget.remaining:.0f}s (SENTRY_AUTOFIX_GITHUB_MAX_WAIT); re-run later"
            )
        self._budget.remaining -= wait
        if wait > 0:
            time.sleep(wait)


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    msg = str(data.get("message") or exc.data or "")
    errors = data.get("errors")
    if isinstance(errors, list):
        details = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errors]
        msg += " (" + "; ".join(details) + ")"
    return msg.strip()


def translate(exc: Exception, action: str) -> Exception:
    """One place that turns PyGithub/requests failures into our errors, with the fix to apply."""
    if isinstance(exc, (CodeHostError, ConfigError)):
        return exc
    if isinstance(exc, RateLimitExceededException):
        return RateLimited(f"GitHub rate limit hit while trying to {action}; re-run after the reset")
    if isinstance(exc, GithubException):
        msg = _message(exc)
        if exc.status == 403 and "not permitted to create or approve pull requests" in msg:
            return Forbidden(PR_CREATION_FORBIDDEN)
        if exc.status == 401:
            return Forbidden(f"GitHub rejected the token while trying to {action}: check GITHUB_TOKEN (`github-token`)")
        if exc.status == 403:
            return Forbidden(
                f"GitHub forbade {action}: {msg}. Give the workflow job `permissions:` contents: write, "
                "pull-requests: write, issues: write (and actions: write for `ci-workflow`)"
            )
        if exc.status == 404:
            return NotFound(
                f"GitHub answered 404 while trying to {action}: check GITHUB_REPOSITORY / GITHUB_API_URL "
                "and that the token can see the repository"
            )
        if exc.status == 429:
            return RateLimited(f"GitHub rate limit hit while trying to {action}; re-run later")
        return CodeHostError(f"GitHub answered {exc.status} while trying to {action}: {msg}")
    if isinstance(exc, requests.exceptions.RetryError):
        return CodeHostError(f"GitHub kept failing while trying to {action}; gave up after retries")
    if isinstance(exc, requests.exceptions.RequestException):
        return CodeHostError(
            f"could not reach GitHub ({type(exc).__name__}) while trying to {action}: check GITHUB_API_URL"
        )
    return exc


@contextmanager
def _seam(action: str) -> Iterator[None]:
    try:
        yield
    except (GithubException, requests.exceptions.RequestException) as exc:
        raise translate(exc, action) from exc


class GitHubHost:
    """CodeHost on the GitHub REST API (GITHUB_API_URL makes it GHES or a loopback fake)."""

    noun = "pull request"

    def __init__(self, settings: Settings, *, client: Github | None = None) -> None:
        if not settings.github_repository or "/" not in settings.github_repository:
            raise ConfigError("set GITHUB_REPOSITORY to owner/repo (Actions sets it)")
        if client is None:
            if settings.github_token is None:
                raise ConfigError("set GITHUB_TOKEN (`github-token` input; the default is the job's token)")
            client = Github(
                auth=Auth.Token(settings.github_token.get_secret_value()),
                base_url=settings.github_api_url.rstrip("/"),
                timeout=30,
                user_agent=f"sentry-autofix/{__version__}",
                per_page=100,
                retry=BoundedRetry(
                    budget=_WaitBudget(settings.github_max_wait), total=4, backoff_factor=1.0, backoff_max=30
                ),
                seconds_between_requests=0.0,
                seconds_between_writes=settings.github_write_interval,
                # lazy: no `GET /repos/{owner}/{repo}` (or GET of a PR/issue before editing it) unless
                # an attribute we read needs it.
                lazy=True,
            )
        self._gh = client
        self._token = settings.github_token.get_secret_value() if settings.github_token else None
        self.full_name = settings.github_repository
        self._web = settings.github_server_url.rstrip("/")
        self.owner = self.full_name.split("/", 1)[0]
        self._repo = client.get_repo(self.full_name)
        self._marker_labels = list(
            dict.fromkeys([lbl for lbl in (settings.labels[:1] + settings.issue_labels[:1]) if lbl])
        )
        self._known_labels: set[str] | None = None

    def push_auth(self) -> tuple[str, str] | None:
        # The form actions/checkout uses for the job token.
        return ("x-access-token", self._token) if self._token else None

    def ref(self, kind: Literal["pr", "issue"], number: int) -> str:
        return f"{'PR' if kind == 'pr' else 'issue'} #{number}"

    # -- reads --------------------------------------------------------------------------------
    def default_branch(self) -> str:
        with _seam("read the repository"):
            return str(self._repo.default_branch)

    def find_existing(self, issue_id: str, branch: str) -> Existing:
        pr: HostItem | None = None
        issue: HostItem | None = None
        with _seam("look for an existing pull request"):
            # `head` must be `owner:branch`: without the owner GitHub ignores the filter and
            # returns every PR, a classic dedup bug (SPEC §10).
            for pull in self._repo.get_pulls(state="all", head=f"{self.owner}:{branch}"):
                # A fork of the same owner (forks may take another name) can carry our branch name.
                if pull.head.ref == branch and self._ours(pull):
                    pr = self._pr_item(pull)
                    if pull.state == "open":
                        break
        with _seam("look for an existing issue"):
            for label in self._marker_labels or [""]:
                kwargs: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "desc"}
                if label:
                    kwargs["labels"] = [label]
                items = self._repo.get_issues(**kwargs)
                for n, item in enumerate(items):
                    if n >= 100 * MARKER_SCAN_PAGES:
                        break
                    # Only a marker on its own line outside code, as we write it (markers.issue_ids_in).
                    if issue_id not in issue_ids_in(item.body):
                        continue
                    if item.pull_request is not None:
                        # The issues list does not say where the head lives: one GET of the pull,
                        # only for a marker match (a renamed branch), keeps a fork's PR out.
                        if pr is None and self._ours(pull := self._repo.get_pull(item.number)):
                            pr = self._pr_item(pull)
                    elif issue is None or (issue.state == "closed" and item.state == "open"):
                        issue = self._issue_item(item)
                if issue is not None and pr is not None:
                    break
        return Existing(pr=pr, issue=issue)

    # -- writes -------------------------------------------------------------------------------
    def open_pull_request(
        self, *, branch: str, base: str, title: str, body: str, draft: bool, labels: Sequence[str]
    ) -> HostItem:
        with _seam("open the pull request"):
            try:
                pull = self._repo.create_pull(
                    base=base, head=branch, title=title, body=body, draft=draft, maintainer_can_modify=True
                )
            except GithubException as exc:
                # Draft PRs are not available on every plan (422): retry once as a ready PR.
                if exc.status == 422 and draft and "draft" in _message(exc).lower():
                    pull = self._repo.create_pull(base=base, head=branch, title=title, body=body)
                elif exc.status == 422 and "pull request already exists" in _message(exc).lower():
                    raise Conflict(
                        f"GitHub answered 422 while trying to open the pull request: {_message(exc)}"
                    ) from exc
                else:
                    raise
        item = self._pr_item(pull)
        self._label(item.number, labels)
        return HostItem(**{**item.__dict__, "labels": tuple(labels)})

    def update_pull_request(self, number: int, *, title: str, body: str, labels: Sequence[str]) -> HostItem:
        with _seam("update the pull request"):
            pull = self._repo.get_pull(number)
            pull.edit(title=title, body=body)
        return self._pr_item(pull)

    def open_issue(self, *, title: str, body: str, labels: Sequence[str]) -> HostItem:
        self._ensure_labels(labels)
        with _seam("open the triage issue"):
            created = self._repo.create_issue(title=title, body=body, labels=list(labels))
        return self._issue_item(created)

    def reopen_issue(self, number: int, *, comment: str) -> HostItem:
        with _seam("reopen the triage issue"):
            item = self._repo.get_issue(number)
            item.create_comment(comment)
            if item.state != "open":
                item.edit(state="open")
        return self._issue_item(item)

    def dispatch_workflow(self, workflow: str, ref: str) -> None:
        with _seam(f"start workflow {workflow} on {ref}"):
            # get_workflow builds the URL without a request; create_dispatch is the one POST.
            self._repo.get_workflow(workflow).create_dispatch(ref=ref, throw=True)

    def blob_base(self, sha: str) -> str | None:
        return f"{self._web}/{self.full_name}/blob/{sha}"

    # -- poll and lifecycle -------------------------------------------------------------------
    def open_marked(self) -> list[MarkedItem]:
        """One search call per 100 open marked PRs/issues (SPEC §11)."""
        return self._search(f'repo:{self.full_name} "{MARKER_PREFIX}" in:body is:open', None)

    def find_by_marker(self, issue_id: str) -> list[MarkedItem]:
        return self._search(f'repo:{self.full_name} "{MARKER_PREFIX}={issue_id}" in:body', issue_id)

    def comment(self, kind: Literal["pr", "issue"], number: int, body: str) -> None:
        with _seam(f"comment on #{number}"):
            # PRs are issues for comments; the lazy issue costs no GET.
            self._repo.get_issue(number).create_comment(body)

    def close_issue(self, number: int) -> None:
        with _seam(f"close issue #{number}"):
            self._repo.get_issue(number).edit(state="closed", state_reason="completed")

    def _search(self, query: str, issue_id: str | None) -> list[MarkedItem]:
        """GitHub answers 422 to a query that mixes issues and PRs for some token types
        (user-to-server tokens per its API description; more widely since the 2025-26 search
        rework): then the same search runs once per kind."""
        try:
            with _seam("search for marked pull requests and issues"):
                return self._search_once(query, issue_id)
        except CodeHostError as exc:
            cause = exc.__cause__
            if not isinstance(cause, GithubException) or cause.status != 422 or "is:issue" not in str(cause.data):
                raise
            log.info("GitHub wants is:issue or is:pull-request in a search: searching twice")
        with _seam("search for marked pull requests and issues"):
            return self._search_once(query + " is:issue", issue_id) + self._search_once(
                query + " is:pull-request", issue_id
            )

    def _search_once(self, query: str, issue_id: str | None) -> list[MarkedItem]:
        items: list[MarkedItem] = []
        for n, result in enumerate(self._gh.search_issues(query)):
            if n >= MAX_SEARCH_RESULTS:
                break
            # Search matches words, not the marker: it must be there, alone on its line.
            ids = issue_ids_in(result.body)
            if not ids or (issue_id is not None and issue_id not in ids):
                continue
            items.append(
                MarkedItem(
                    number=int(result.number),
                    kind="pr" if result.pull_request is not None else "issue",
                    state="closed" if result.state == "closed" else "open",
                    url=str(result.html_url or ""),
                    issue_ids=frozenset(ids),
                )
            )
        return items

    # -- helpers ------------------------------------------------------------------------------
    def _ensure_labels(self, labels: Sequence[str]) -> None:
        if not labels:
            return
        with _seam("create labels"):
            if self._known_labels is None:
                self._known_labels = {lbl.name.lower() for lbl in self._repo.get_labels()}
            for name in labels:
                if name.lower() in self._known_labels:
                    continue
                try:
                    self._repo.create_label(name=name, color=LABEL_COLOUR, description="Opened by sentry-autofix")
                except GithubException as exc:
                    if exc.status != 422:  # 422 already_exists: a concurrent run made it
                        raise
                self._known_labels.add(name.lower())

    def _label(self, number: int, labels: Sequence[str]) -> None:
        if not labels:
            return
        self._ensure_labels(labels)
        with _seam("label the pull request"):
            # One POST; Repository.get_issue(n).add_to_labels() would first GET the issue.
            self._gh.requester.requestJsonAndCheck(
                "POST", f"{self._repo.url}/issues/{number}/labels", input={"labels": list(labels)}
            )

    def _ours(self, pull: Any) -> bool:
        """The PR's head branch lives in this repository (a deleted fork has no head repo)."""
        repo = pull.head.repo
        return repo is not None and str(repo.full_name).lower() == self.full_name.lower()

    @staticmethod
    def _pr_item(pull: Any) -> HostItem:
        return HostItem(
            kind="pr",
            number=int(pull.number),
            url=str(pull.html_url),
            state="open" if pull.state == "open" else "closed",
            merged=bool(pull.merged_at),
            draft=bool(getattr(pull, "draft", False)),
            branch=str(pull.head.ref),
            labels=tuple(lbl.name for lbl in pull.labels or []),
        )

    @staticmethod
    def _issue_item(item: Any) -> HostItem:
        return HostItem(
            kind="issue",
            number=int(item.number),
            url=str(item.html_url),
            state="open" if item.state == "open" else "closed",
            labels=tuple(lbl.name for lbl in item.labels or []),
        )


# --- repository_dispatch: the trigger of the relay and `poll --dispatch` -------------------------

USER_AGENT = f"sentry-autofix-relay/{__version__}"
API_VERSION = "2022-11-28"


class TokenProvider(Protocol):
    kind: str

    def token(self, repo: str) -> str: ...

    def invalidate(self, repo: str) -> None: ...


class StaticToken:
    """A personal access token or fine-grained token with `contents: write` on the target repos."""

    kind = "token"

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self, repo: str) -> str:
        return self._token

    def invalidate(self, repo: str) -> None:
        """A fixed token cannot be refreshed; a 401 is retried until the operator replaces it."""


def _load_private_key(value: str) -> str:
    text = value.strip()
    if "-----BEGIN" in text:
        # Env files and secret stores often flatten the PEM's newlines into literal "\n".
        return text.replace("\\n", "\n")
    path = Path(text).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY: neither a PEM private key nor a readable .pem file path") from exc


class GitHubAppAuth:
    """GitHub App credentials: a short JWT (RS256) buys an installation token per repository."""

    kind = "app"

    def __init__(
        self,
        app_id: str,
        private_key: str,
        *,
        api_url: str,
        session: requests.Session,
        installation_id: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        import jwt  # the `relay` extra: pyjwt[crypto]

        self._jwt = jwt
        self.app_id = app_id
        self._key = _load_private_key(private_key)
        self._api = api_url.rstrip("/")
        self._session = session
        self._fixed_installation = installation_id
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._installations: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        try:  # fail at start, not at the first webhook
            self.app_jwt()
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(f"GITHUB_APP_PRIVATE_KEY: not a usable RSA private key ({exc})") from exc

    def app_jwt(self) -> str:
        now = int(self._clock())
        # iat 60 s in the past absorbs clock drift; GitHub refuses exp more than 10 minutes ahead.
        claims = {"iat": now - 60, "exp": now + 540, "iss": str(self.app_id)}
        return str(self._jwt.encode(claims, self._key, algorithm="RS256"))

    def _headers(self, bearer: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }

    def _installation_id(self, repo: str) -> str:
        if self._fixed_installation:
            return self._fixed_installation
        if repo in self._installations:
            return self._installations[repo]
        resp = self._session.get(
            f"{self._api}/repos/{repo}/installation",
            headers=self._headers(self.app_jwt()),
            timeout=self._timeout,
        )
        if resp.status_code != 200:
            raise CodeHostError(
                f"GitHub App {self.app_id} is not installed on {repo} (HTTP {resp.status_code}): "
                "install the App on that repository or set GITHUB_APP_INSTALLATION_ID"
            )
        installation = str(resp.json()["id"])
        self._installations[repo] = installation
        return installation

    def token(self, repo: str) -> str:
        with self._lock:
            installation = self._installation_id(repo)
            cached = self._tokens.get(installation)
            if cached and cached[1] - 300 > self._clock():
                return cached[0]
            resp = self._session.post(
                f"{self._api}/app/installations/{installation}/access_tokens",
                headers=self._headers(self.app_jwt()),
                timeout=self._timeout,
            )
            if resp.status_code != 201:
                raise CodeHostError(
                    f"GitHub refused an installation token for App {self.app_id} (HTTP {resp.status_code}): "
                    "check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
                )
            body = resp.json()
            expires = _parse_time(body.get("expires_at")) or self._clock() + 3600
            self._tokens[installation] = (str(body["token"]), expires)
            return str(body["token"])

    def invalidate(self, repo: str) -> None:
        with self._lock:
            installation = self._installations.pop(repo, None) or self._fixed_installation
            if installation:
                self._tokens.pop(installation, None)


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _retry_after(resp: requests.Response, now: float) -> float | None:
    wait = retry_after(resp.headers.get("retry-after"), now)
    if wait is not None:
        return wait
    if resp.headers.get("x-ratelimit-remaining") == "0" and resp.headers.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(resp.headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return None
    return None


class GitHubTrigger:
    """`POST /repos/{repo}/dispatches` with the configured credentials: the relay's and `poll
    --dispatch`'s trigger.

    On `requests`, not PyGithub: the relay's outbox owns retries and pauses across processes, so
    every status and rate-limit header must reach it raw, without a client library's own sleeps;
    a GitHub App needs one installation token per repository."""

    def __init__(
        self,
        auth: TokenProvider,
        *,
        api_url: str,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth = auth
        self.kind = auth.kind
        self._api = api_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock

    def dispatch(self, repo: str, event_type: str, client_payload: dict[str, Any]) -> DispatchOutcome:
        repo = repo.removeprefix("github:")
        try:
            token = self.auth.token(repo)
        except CodeHostError as exc:
            return DispatchOutcome(False, True, None, str(exc))
        except requests.RequestException as exc:
            return DispatchOutcome(False, True, None, f"GitHub unreachable while getting a token: {type(exc).__name__}")
        try:
            resp = self._session.post(
                f"{self._api}/repos/{repo}/dispatches",
                json={"event_type": event_type, "client_payload": client_payload},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "User-Agent": USER_AGENT,
                },
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            return DispatchOutcome(False, True, None, f"GitHub unreachable: {type(exc).__name__}")
        status = resp.status_code
        now = self._clock()
        if status in (200, 204):
            # The last request of the hour's quota succeeded: stop before GitHub has to refuse.
            exhausted = resp.headers.get("x-ratelimit-remaining") == "0"
            return DispatchOutcome(
                True, False, status, "dispatched", _retry_after(resp, now) if exhausted else None, exhausted
            )
        detail = _http_message(resp)
        wait = _retry_after(resp, now)
        # GitHub's REST guidance: a 429, or a 403 with retry-after / x-ratelimit-remaining: 0 / a
        # "rate limit" message, means stop until the reset (or at least a minute) — every request
        # made meanwhile counts against the integration and may get it banned.
        if status == 429 or (
            status == 403
            and (wait is not None or resp.headers.get("x-ratelimit-remaining") == "0" or "rate limit" in detail.lower())
        ):
            return DispatchOutcome(False, True, status, f"{status} {detail}", wait, rate_limited=True)
        if status == 401:
            # An App token may have expired early or been revoked: get a fresh one next time.
            self.auth.invalidate(repo)
            return DispatchOutcome(False, True, status, f"401 {detail}: check GITHUB_TOKEN / GitHub App", wait)
        if status in (400, 422):
            # The request itself is wrong (payload or event type): retrying cannot help.
            return DispatchOutcome(False, False, status, f"{status} {detail}")
        if status == 403:
            return DispatchOutcome(False, True, status, f"403 {detail}: the token needs contents:write on {repo}", None)
        if status == 404:
            return DispatchOutcome(
                False, True, status, f"404 {detail}: {repo} does not exist or the token cannot see it", None
            )
        # 5xx, anything unexpected: keep it and try again later.
        return DispatchOutcome(False, True, status, f"{status} {detail}", wait)


def _http_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return resp.reason or ""


def build_trigger(settings: Settings) -> GitHubTrigger:
    """Token or App credentials from settings; refuses to start with neither (or with both half-set)."""
    session = requests.Session()
    api = settings.github_api_url
    auth: TokenProvider
    if settings.github_app_id or settings.github_app_private_key:
        if not (settings.github_app_id and settings.github_app_private_key):
            raise ConfigError("GitHub App auth needs both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")
        auth = GitHubAppAuth(
            settings.github_app_id,
            settings.github_app_private_key.get_secret_value(),
            api_url=api,
            session=session,
            installation_id=settings.github_app_installation_id,
        )
    elif settings.github_token:
        auth = StaticToken(settings.github_token.get_secret_value())
    else:
        raise ConfigError(
            "no GitHub credentials: set GITHUB_TOKEN (contents:write on the target repos) "
            "or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY"
        )
    return GitHubTrigger(auth, api_url=api, session=session)


def build_host(settings: Settings) -> GitHubHost:
    return GitHubHost(settings)


def parse_target(spec: str, settings: Settings, setting: str) -> str:
    """`owner/repo` (the event type is the route's business)."""
    if not REPO_RE.fullmatch(spec):
        raise ConfigError(f"{setting}: {spec!r} is not an owner/repo name")
    return spec


def default_target(settings: Settings) -> str:
    if not settings.github_repository or not REPO_RE.fullmatch(settings.github_repository):
        raise ConfigError("set GITHUB_REPOSITORY to owner/repo (Actions sets it)")
    return settings.github_repository
