"""The marks sentry-autofix leaves so that later runs recognise its own work.

* On GitHub: the hidden body marker `<!-- sentry-autofix:issue=<numeric id> -->` in PR and issue
  bodies (SPEC §6, §11). Poll finds every open one with a single search call.
* On Sentry: comments whose first line carries a state tag `[sentry-autofix:<state>]`. Poll reads
  them to skip issues another run is working on (`in-progress`, fresh) and to stop retrying an
  issue after N `failed` attempts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sentry_autofix.sources import ISSUE_REF, is_issue_ref

MARKER_PREFIX = "sentry-autofix:issue"
"""What a GitHub search for marked bodies looks for (the tokens of the marker before the id)."""
_MARKER_LINE = re.compile(rf" {{0,3}}<!--[ \t]*sentry-autofix:issue=({ISSUE_REF})[ \t]*-->\s*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


def marker_for(issue_id: str) -> str:
    if not is_issue_ref(issue_id):
        raise ValueError(f"the marker takes a resolved issue id (numeric, or <source>-<id>), got {issue_id!r}")
    return f"<!-- sentry-autofix:issue={issue_id} -->"


def issue_ids_in(body: str | None) -> set[str]:
    """Sentry issue ids of the markers in a PR/issue body, read only where we write them.

    A marker counts only alone on its line and outside a fenced code block. Untrusted text in our
    bodies is either inline (one line, `<` escaped) or fenced (and defused, `neutral.md_fence`),
    so a marker-looking string in an error message, a file name or the model's summary is never
    read as ours — even if an escaping step were missed. A human editing the body elsewhere keeps it.
    """
    ids: set[str] = set()
    fence: str | None = None
    for line in (body or "").splitlines():
        found = _FENCE.fullmatch(line)
        ticks, info = (found.group(1), found.group(2)) if found else ("", "")
        if fence is None:
            # CommonMark: a backtick fence's info string holds no backtick (else it is inline code).
            if ticks and not (ticks[0] == "`" and "`" in info):
                fence = ticks
            elif match := _MARKER_LINE.fullmatch(line):
                ids.add(match.group(1))
        elif ticks[:1] == fence[0] and len(ticks) >= len(fence) and not info.strip():
            fence = None
    return ids


@dataclass(frozen=True)
class MarkedItem:
    """A GitHub issue or pull request whose body carries our marker."""

    number: int
    kind: Literal["issue", "pr"]
    state: Literal["open", "closed"]
    url: str
    issue_ids: frozenset[str]


CommentState = Literal["in-progress", "failed", "pr-opened", "draft-pr-opened", "issue-opened", "no-fix", "skipped"]
COMMENT_STATES: tuple[str, ...] = (
    "in-progress",
    "failed",
    "pr-opened",
    "draft-pr-opened",
    "issue-opened",
    "no-fix",
    "skipped",
)
DELIVERED_STATES = frozenset({"pr-opened", "draft-pr-opened", "issue-opened"})
_STATE_TAG = re.compile(r"^\s*\[sentry-autofix:([a-z-]{1,30})\]")

_STATE_WORDS = {
    "in-progress": "working on a fix",
    "failed": "the fix attempt failed",
    "pr-opened": "opened a pull request",
    "draft-pr-opened": "opened a draft pull request",
    "issue-opened": "opened a triage issue",
    "no-fix": "found no fix it trusts",
    "skipped": "skipped this issue",
}


def state_comment(state: CommentState, detail: str = "", link: str | None = None, noun: str = "pull request") -> str:
    """Text of a Sentry comment that poll can read back: the tag comes first, on its own line.

    `detail` must already be free of secrets; it is cut short because Sentry comments are read by
    humans and a duplicate text within an hour is refused (the timestamp-free tag line is not).
    """
    # `noun`: the code host's word (`merge request` on GitLab).
    lines = [f"[sentry-autofix:{state}] sentry-autofix {_STATE_WORDS[state].replace('pull request', noun)}."]
    if detail:
        lines.append(detail.strip()[:1500])
    if link and link.startswith(("https://", "http://")):
        lines.append(link)
    return "\n".join(lines)


def comment_state(text: str) -> str | None:
    """The state tag a comment starts with, or None for any other comment."""
    match = _STATE_TAG.match(text or "")
    if match and match.group(1) in COMMENT_STATES:
        return match.group(1)
    return None
