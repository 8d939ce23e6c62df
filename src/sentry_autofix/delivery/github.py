"""GitHub (and GitHub Enterprise Server) behind the CodeHost protocol, on PyGithub.

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

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException

from sentry_autofix import __version__
from sentry_autofix.config import Settings
from sentry_autofix.delivery import Existing, HostItem
from sentry_autofix.errors import CodeHostError, ConfigError, Forbidden, NotFound, RateLimited
from sentry_autofix.markers import issue_ids_in

PR_CREATION_FORBIDDEN = (
    "GitHub refused to let this workflow open a pull request. Enable it in the repository: "
    "Settings → Actions → General → Workflow permissions → check 'Allow GitHub Actions to create and "
    "approve pull requests' (an organization setting may override it)."
)
LABEL_COLOUR = "6c5fc7"
"""Sentry purple, for the labels we create."""
MARKER_SCAN_PAGES = 3
"""Pages of 100 labelled issues/PRs scanned for the marker (newest first)."""


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
        self.owner = self.full_name.split("/", 1)[0]
        self._repo = client.get_repo(self.full_name)
        self._marker_labels = list(
            dict.fromkeys([lbl for lbl in (settings.labels[:1] + settings.issue_labels[:1]) if lbl])
        )
        self._known_labels: set[str] | None = None

    def push_auth(self) -> tuple[str, str] | None:
        # The form actions/checkout uses for the job token.
        return ("x-access-token", self._token) if self._token else None

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
                if pull.head.ref == branch:
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
                        if pr is None:
                            pr = self._pr_from_issue(item)
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
    def _pr_from_issue(item: Any) -> HostItem:
        # The issues list describes PRs too; no extra GET for the pull itself.
        merged_at = getattr(item.pull_request, "merged_at", None)
        return HostItem(
            kind="pr",
            number=int(item.number),
            url=str(item.html_url),
            state="open" if item.state == "open" else "closed",
            merged=bool(merged_at),
            labels=tuple(lbl.name for lbl in item.labels or []),
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
