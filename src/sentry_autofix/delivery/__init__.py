"""Code hosts: where a fix or a triage report ends up, and how a run is started there.

One module per code host (`github.py`, `gitlab.py`), each the only place that talks to its host.
Two small protocols:
* `CodeHost`: pull requests (GitLab: merge requests), issues, labels, notes — what the pipeline
  delivers, what `poll` checks for already-handled issues, what the lifecycle comments on and closes;
* `Trigger`: start a run of sentry-autofix on the host (GitHub: `repository_dispatch`, GitLab: the
  pipeline trigger API) — what the relay and `poll --dispatch` send.

`HOSTS` names the modules, imported lazily so the `gitlab` extra stays optional. A trigger target
is a string kept in the relay's outbox: `owner/repo` for GitHub, `<host>:<spec>` for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import import_module
from types import ModuleType
from typing import Any, Literal, Protocol

from sentry_autofix.config import Settings
from sentry_autofix.errors import CodeHostError, ConfigError, Forbidden, NotFound, RateLimited
from sentry_autofix.markers import MarkedItem

__all__ = [
    "HOSTS",
    "CodeHost",
    "DispatchOutcome",
    "Existing",
    "HostItem",
    "MarkedItem",
    "Trigger",
    "build_host",
    "build_trigger",
    "host_of",
    "parse_target",
    "raise_for",
]


@dataclass(frozen=True)
class HostItem:
    """A pull request or issue on the code host that we opened for a Sentry issue."""

    kind: Literal["pr", "issue"]
    number: int
    url: str
    state: Literal["open", "closed"]
    merged: bool = False
    draft: bool = False
    branch: str | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Existing:
    """What is already there for one Sentry issue (found by branch name and body marker)."""

    pr: HostItem | None = None
    issue: HostItem | None = None


@dataclass(frozen=True)
class DispatchOutcome:
    """What the host said to a trigger, reduced to what the relay's dispatcher needs."""

    ok: bool
    retry: bool
    status: int | None
    detail: str
    retry_after: float | None = None
    rate_limited: bool = False
    """The host asked us to stop (429, GitHub's 403 rate-limit answer, or no requests left even on
    a success): every dispatcher of the store pauses, for `retry_after` when the host said."""


HOSTS = {
    "github": "sentry_autofix.delivery.github",
    "gitlab": "sentry_autofix.delivery.gitlab",
}
"""Code host name (Settings.host_name, a relay route's `<host>:` prefix) → its module. Each module
has `build_host(settings)`, `build_trigger(settings)`, `parse_target(spec, settings, setting)` and
`default_target(settings)`."""

DEFAULT_HOST = "github"
"""A route without a `<host>:` prefix (`owner/repo`, what every relay outbox row held before GitLab)."""


class CodeHost(Protocol):
    """The SCM seam: PRs (GitLab: merge requests), issues, labels, notes, CI runs."""

    noun: str
    """What the host calls a pull request, for logs and comments (`merge request` on GitLab)."""
    full_name: str
    """The repository as the host names it (`owner/repo`; GitLab's `group/project`), for chat."""

    def ref(self, kind: Literal["pr", "issue"], number: int) -> str:
        """How the host writes a PR or issue reference (`PR #12`, GitLab's `MR !12`, `issue #3`)."""
        ...

    # -- what the pipeline delivers ---------------------------------------------------------------
    def push_auth(self) -> tuple[str, str] | None:
        """(user name, token) for `git push` over HTTPS, or None to push with git's own credentials."""
        ...

    def default_branch(self) -> str: ...

    def find_existing(self, issue_id: str, branch: str) -> Existing:
        """The PR whose head is `branch` (or whose body has our marker) and the triage issue."""
        ...

    def open_pull_request(
        self, *, branch: str, base: str, title: str, body: str, draft: bool, labels: Sequence[str]
    ) -> HostItem: ...

    def update_pull_request(self, number: int, *, title: str, body: str, labels: Sequence[str]) -> HostItem: ...

    def open_issue(self, *, title: str, body: str, labels: Sequence[str]) -> HostItem: ...

    def reopen_issue(self, number: int, *, comment: str) -> HostItem:
        """Comment on a closed issue and reopen it (a regression)."""
        ...

    def dispatch_workflow(self, workflow: str, ref: str) -> None:
        """Start `workflow` (file name or id) on `ref` (GitHub: workflow_dispatch; GitLab: a pipeline)."""
        ...

    def blob_base(self, sha: str) -> str | None:
        """The web URL of the repository's files at `sha` (permalinks to mapped lines)."""
        ...

    # -- what poll and the lifecycle read and write -----------------------------------------------
    def open_marked(self) -> list[MarkedItem]:
        """Open PRs and issues whose body carries a marker: their Sentry issues are handled."""
        ...

    def find_by_marker(self, issue_id: str) -> list[MarkedItem]:
        """PRs and issues, open or closed, whose body carries the marker of `issue_id`."""
        ...

    def comment(self, kind: Literal["pr", "issue"], number: int, body: str) -> None: ...

    def close_issue(self, number: int) -> None:
        """Close a triage issue as completed (PRs are never closed: a human decides)."""
        ...


class Trigger(Protocol):
    """Starts a sentry-autofix run on a host; answers every HTTP outcome, never raises for one."""

    kind: str
    """The credential kind, for the relay's health endpoint (`token`, `app`, `trigger-token`)."""

    def dispatch(self, target: str, event_type: str, payload: dict[str, Any]) -> DispatchOutcome: ...


def host_of(target: str) -> str:
    """The host a trigger target (a relay outbox row's `repo`) belongs to."""
    prefix, sep, _ = target.partition(":")
    return prefix if sep and prefix in HOSTS else DEFAULT_HOST


def _module(name: str) -> ModuleType:
    if name not in HOSTS:
        raise ConfigError(f"unknown code host {name!r}: SENTRY_AUTOFIX_CODE_HOST is one of {', '.join(HOSTS)}")
    try:
        return import_module(HOSTS[name])
    except ImportError as exc:
        raise ConfigError(f"the {name} code host needs an extra: pip install 'sentry-autofix[{name}]'") from exc


def build_host(settings: Settings) -> CodeHost:
    """The configured code host (SENTRY_AUTOFIX_CODE_HOST; GitLab inside GitLab CI)."""
    host: CodeHost = _module(settings.host_name).build_host(settings)
    return host


def build_trigger(settings: Settings, hosts: Sequence[str] = ()) -> Trigger:
    """A trigger for every host in `hosts` (default: the configured one), credentials checked now."""
    names = list(dict.fromkeys(hosts or [settings.host_name]))
    triggers: dict[str, Trigger] = {name: _module(name).build_trigger(settings) for name in names}
    return triggers[names[0]] if len(triggers) == 1 else _Routed(triggers)


def parse_target(value: str, settings: Settings, *, setting: str) -> str:
    """A route's target as written by the operator → the canonical string kept in the outbox."""
    name = host_of(value)
    spec = value.partition(":")[2] if name != DEFAULT_HOST or value.startswith(f"{DEFAULT_HOST}:") else value
    target: str = _module(name).parse_target(spec.strip(), settings, setting)
    return target


def default_target(settings: Settings) -> str:
    """Where `poll --dispatch` starts runs: the configured repository or project."""
    target: str = _module(settings.host_name).default_target(settings)
    return target


def raise_for(outcome: DispatchOutcome) -> None:
    """For a one-shot trigger (`poll --dispatch`): a failed outcome as our exception."""
    if outcome.ok:
        return
    if outcome.rate_limited:
        raise RateLimited(outcome.detail)
    if outcome.status in (401, 403):
        raise Forbidden(outcome.detail)
    if outcome.status == 404:
        raise NotFound(outcome.detail)
    raise CodeHostError(outcome.detail)


class _Routed:
    """Relay routes to several hosts: each outbox row goes to its target's host."""

    def __init__(self, triggers: dict[str, Trigger]) -> None:
        self._triggers = triggers
        self.kind = "+".join(t.kind for t in triggers.values())

    def dispatch(self, target: str, event_type: str, payload: dict[str, Any]) -> DispatchOutcome:
        trigger = self._triggers.get(host_of(target))
        if trigger is None:  # a row written under another configuration
            return DispatchOutcome(False, False, None, f"no route to {host_of(target)} is configured any more")
        return trigger.dispatch(target, event_type, payload)
