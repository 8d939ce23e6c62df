"""Delivery: where a fix or a triage report ends up, behind one small protocol.

One module per code host (`github.py`, `gitlab.py`); `HOSTS` names them, imported lazily so the
`gitlab` extra stays optional.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol


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


HOSTS = {
    "github": "sentry_autofix.delivery.github:GitHubHost",
    "gitlab": "sentry_autofix.delivery.gitlab:GitLabHost",
}
"""Code host name (Settings.host_name) → `module:class` implementing CodeHost."""


class CodeHost(Protocol):
    """The SCM seam: PRs (GitLab: merge requests), issues, labels, CI dispatch."""

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
        """Start `workflow` (file name or id) on `ref` with workflow_dispatch."""
        ...
