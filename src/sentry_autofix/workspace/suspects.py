"""Rank the files and functions to look at, and the commits that may have caused the error.

Ranking (per mapped, effectively in-app frame, then aggregated per file):
* the frame nearest the crash in each exception scores highest; callers decay by 0.6 per level;
* in a chain, the root cause (oldest exception) weighs most, the surfaced exception next;
* lines changed shortly before the issue was first seen (git blame) get a bonus;
* frames whose context line no longer matches the workspace, and test files, weigh less.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sentry_autofix.models import ErrorEvent, MappedFrame, Suspect, SuspectCommit
from sentry_autofix.workspace.git import has_commits, run_git

_TEST_PATH = re.compile(r"(^|/)(tests?|spec|__tests__)/|(^|/)test_[^/]*$|_test\.\w+$|\.(spec|test)\.\w+$")
MAX_BLAME_FILES = 5
MAX_COMMITS = 5


@dataclass(frozen=True)
class BlameLine:
    sha: str
    author: str
    when: datetime
    summary: str
    line: int


def blame(root: Path, path: str, first: int, last: int) -> list[BlameLine]:
    """`git blame --porcelain` of a line range at HEAD; uncommitted lines are left out."""
    proc = run_git(root, "blame", "--porcelain", "-L", f"{first},{last}", "HEAD", "--", path, check=False)
    if proc.returncode != 0:
        return []
    out: list[BlameLine] = []
    meta: dict[str, dict[str, str]] = {}
    sha, final_line = "", 0
    for raw in proc.stdout.splitlines():
        if raw.startswith("\t"):
            info = meta.get(sha, {})
            if sha.strip("0") and "author-time" in info:
                out.append(
                    BlameLine(
                        sha=sha,
                        author=info.get("author", "?"),
                        when=datetime.fromtimestamp(int(info["author-time"]), tz=timezone.utc),
                        summary=info.get("summary", ""),
                        line=final_line,
                    )
                )
            continue
        parts = raw.split(" ")
        if len(parts) >= 3 and re.fullmatch(r"[0-9a-f]{40}", parts[0]):
            sha, final_line = parts[0], int(parts[2])
            meta.setdefault(sha, {})
        elif parts and sha:
            key, _, value = raw.partition(" ")
            meta[sha][key] = value
    return out


def _is_test(path: str) -> bool:
    return bool(_TEST_PATH.search(path))


def _reference_time(event: ErrorEvent) -> datetime:
    if event.issue and event.issue.first_seen:
        return event.issue.first_seen
    return event.timestamp or datetime.now(timezone.utc)


def rank(event: ErrorEvent, frames: list[MappedFrame], root: Path | None = None) -> list[Suspect]:
    """Files to look at, best first; only paths that exist in the workspace."""
    mapped = [f for f in frames if f.path and f.in_app]
    if not mapped:
        mapped = [f for f in frames if f.path]
    n_exc = max((f.exception_index for f in frames), default=0) + 1
    by_exc: dict[int, list[MappedFrame]] = defaultdict(list)
    for f in mapped:
        by_exc[f.exception_index].append(f)

    scored: list[tuple[float, MappedFrame, list[str]]] = []
    for ei, group in by_exc.items():
        if n_exc == 1:
            base, role = 1.0, "crash"
        elif ei == 0:
            base, role = 1.0, "root cause"
        elif ei == n_exc - 1:
            base, role = 0.9, "surfaced exception"
        else:
            base, role = 0.85, "chained exception"
        for depth, frame in enumerate(reversed(sorted(group, key=lambda f: f.frame_index))):
            score = base * (0.6**depth)
            reasons = [f"{role} frame" if depth == 0 else f"caller ({depth} up) in {role}"]
            if frame.verified is False:
                score *= 0.9
                reasons.append("context line differs from the workspace")
            if frame.path and _is_test(frame.path):
                score *= 0.5
                reasons.append("test file")
            scored.append((score, frame, reasons))

    if root is not None and has_commits(root):
        since = _reference_time(event)
        scored.sort(key=lambda t: -t[0])
        for i, (score, frame, reasons) in enumerate(scored[:8]):
            if frame.path is None or frame.line is None:
                continue
            lines = blame(root, frame.path, max(1, frame.line - 2), frame.line + 2)
            recent = [b for b in lines if b.when <= since + timedelta(minutes=5)]
            if not recent:
                continue
            age = since - max(b.when for b in recent)
            if age <= timedelta(days=14):
                scored[i] = (score + 0.15, frame, [*reasons, "changed within 14 days before first seen"])
            elif age <= timedelta(days=60):
                scored[i] = (score + 0.07, frame, [*reasons, "changed within 60 days before first seen"])

    per_path: dict[str, list[tuple[float, MappedFrame, list[str]]]] = defaultdict(list)
    for item in scored:
        assert item[1].path is not None
        per_path[item[1].path].append(item)
    suspects = []
    for path, items in per_path.items():
        items.sort(key=lambda t: -t[0])
        best_score, best, reasons = items[0]
        # Several distinct functions of one file on the stack nudge it up, but never past a file
        # that holds the root cause's crash frame on its own.
        functions = {item[1].function for item in items}
        bonus = 0.03 * min(2, len(functions) - 1)
        suspects.append(
            Suspect(
                path=path,
                line=best.line,
                function=best.function,
                score=round(best_score + bonus, 3),
                reasons=reasons + ([f"{len(items)} frames in this file"] if len(items) > 1 else []),
            )
        )
    suspects.sort(key=lambda s: (-s.score, s.path))
    return suspects


@dataclass
class _Candidate:
    author: str
    when: datetime
    summary: str
    paths: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    contributions: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        # The strongest evidence decides; more of it only nudges (an initial commit that touched
        # everything must not outrank the one that last changed the crashing line).
        best = max(self.contributions, default=0.0)
        return best + 0.1 * (sum(self.contributions) - best)


def suspect_commits(root: Path, event: ErrorEvent, suspects: list[Suspect]) -> list[SuspectCommit]:
    """Commits that touched the suspect lines or files before the issue was first seen."""
    if not has_commits(root):
        return []
    since = _reference_time(event) + timedelta(minutes=5)
    found: dict[str, _Candidate] = {}

    def note(sha: str, author: str, when: datetime, summary: str, path: str, score: float, reason: str) -> None:
        entry = found.setdefault(sha, _Candidate(author, when, summary))
        if path not in entry.paths:
            entry.paths.append(path)
        if reason not in entry.reasons:
            entry.reasons.append(reason)
        entry.contributions.append(score)

    for suspect in suspects[:MAX_BLAME_FILES]:
        if suspect.line is not None:
            for b in blame(root, suspect.path, max(1, suspect.line - 3), suspect.line + 3):
                if b.when > since:
                    continue
                on_line = b.line == suspect.line
                note(
                    b.sha,
                    b.author,
                    b.when,
                    b.summary,
                    suspect.path,
                    suspect.score * (1.0 if on_line else 0.25),
                    f"last changed {suspect.path}:{b.line}"
                    if on_line
                    else f"changed lines near {suspect.path}:{suspect.line}",
                )
        log = run_git(
            root,
            "log",
            "-n",
            "5",
            f"--until={since.isoformat()}",
            "--format=%H%x1f%an%x1f%at%x1f%s",
            "--",
            suspect.path,
            check=False,
        )
        for rank_no, line in enumerate(log.stdout.splitlines()):
            parts = line.split("\x1f")
            if len(parts) != 4:
                continue
            sha, author, at, summary = parts
            when = datetime.fromtimestamp(int(at), tz=timezone.utc)
            note(
                sha,
                author,
                when,
                summary,
                suspect.path,
                suspect.score * 0.2 * (0.7**rank_no),
                f"touched {suspect.path}",
            )

    commits = [
        SuspectCommit(
            sha=sha,
            short_sha=sha[:12],
            author=c.author,
            date=c.when,
            summary=c.summary,
            paths=c.paths,
            score=round(c.score, 3),
            reasons=c.reasons,
        )
        for sha, c in found.items()
    ]
    commits.sort(key=lambda c: (-c.score, -c.date.timestamp()))
    return commits[:MAX_COMMITS]
