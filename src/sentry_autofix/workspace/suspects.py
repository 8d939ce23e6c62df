"""Rank the files and functions to look at, and the commits that may have caused the error.

Ranking (per mapped, effectively in-app frame, then aggregated per file):
* the frame nearest the crash in each exception scores highest; callers decay by 0.6 per level;
* except when that frame is a helper that rejected its argument (a `check_*`/`validate_*`-style
  function, or a TypeError/ValueError about its input raised in a shared `utils`/`helpers`
  module): then its nearest in-app caller in another file takes the crash frame's score and the
  helper follows at 0.7 of it, since the fix usually goes where the bad value came from;
* in a chain, the root cause (oldest exception) weighs most, the surfaced exception next;
* lines changed shortly before the issue was first seen (git blame) get a bonus;
* frames whose context line no longer matches the workspace, and test files, weigh less.
A suspect names every function of its file on the stack; a `<lambda>` or comprehension frame is
named by the function around it in the workspace source.

Suspect commits: blame of the suspects' on-stack lines and nearby lines, plus `git log` of the
files, before the issue was first seen. The commits that last changed an on-stack line are kept
first; the rest fill the list up to MAX_COMMITS.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sentry_autofix.models import ErrorEvent, ExceptionValue, MappedFrame, Suspect, SuspectCommit
from sentry_autofix.workspace.git import has_commits, run_git
from sentry_autofix.workspace.symbols import bare_name, enclosing_function

_TEST_PATH = re.compile(r"(^|/)(tests?|spec|__tests__)/|(^|/)test_[^/]*$|_test\.\w+$|\.(spec|test)\.\w+$")
MAX_BLAME_FILES = 5
MAX_COMMITS = 5
HELPER_WEIGHT = 0.7
"""A helper that rejected its argument stays a suspect, behind the caller that passed it."""
_ANONYMOUS = frozenset({"<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>"})
_VALIDATOR = re.compile(r"^_*(?:assert|check|validate|verify|ensure|require)(?:_|[A-Z]|$)")
_SHARED_MODULE = re.compile(r"(?:^|/)_?(?:utils?|helpers?|common|compat)(?:/|\.\w+$)")
_ARGUMENT_ERRORS = frozenset({"TypeError", "ValueError", "AttributeError"})
_ARGUMENT_COMPLAINT = re.compile(
    r"NoneType|None\b|argument|expected|must be|not (?:iterable|callable|subscriptable)|has no len"
    r"|unsupported operand|object of type|invalid|undefined",
    re.IGNORECASE,
)


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


def _is_anonymous(function: str | None) -> bool:
    return function is not None and function.rsplit(".", 1)[-1] in _ANONYMOUS


def _blames_caller(crash: MappedFrame, exc: ExceptionValue | None) -> str | None:
    """Why the crash frame's caller, not the crash frame, is where a fix usually goes (or None):
    the crash is in a function whose job is to reject bad input, or a shared helper raised a
    type/value error about what it was given. Either way the helper did its job on a bad argument."""
    name = bare_name(crash.function)
    if name and _VALIDATOR.match(name):
        return f"{name}() rejects bad input"
    kind = (exc.type or "").rsplit(".", 1)[-1] if exc else ""
    if (
        crash.path
        and _SHARED_MODULE.search(crash.path)
        and kind in _ARGUMENT_ERRORS
        and _ARGUMENT_COMPLAINT.search((exc.value if exc else None) or "")
    ):
        return f"shared helper {name or crash.path}() raised {kind} about its argument"
    return None


def _caller_index(stack: list[MappedFrame], exc: ExceptionValue | None, last_frame: int) -> tuple[int, str] | None:
    """Index in `stack` (crash first) of the caller to blame instead of the crash frame: the
    nearest in-app frame in another file. Only when the in-app crash frame is where the
    exception was raised (a library below it means the app frame is the caller already)."""
    crash = stack[0]
    if crash.frame_index != last_frame:
        return None
    why = _blames_caller(crash, exc)
    if why is None:
        return None
    for i, frame in enumerate(stack[1:], 1):
        if frame.path != crash.path:
            return i, why
    return None


def rank(
    event: ErrorEvent,
    frames: list[MappedFrame],
    root: Path | None = None,
    source: Callable[[str], list[str] | None] | None = None,
) -> list[Suspect]:
    """Files to look at, best first; only paths that exist in the workspace. `source` reads a
    workspace file (through the guard) to name the function around a lambda or comprehension."""
    mapped = [f for f in frames if f.path and f.in_app]
    if not mapped:
        mapped = [f for f in frames if f.path]
    n_exc = max((f.exception_index for f in frames), default=0) + 1
    last_frame: dict[int, int] = defaultdict(int)
    for f in frames:
        last_frame[f.exception_index] = max(last_frame[f.exception_index], f.frame_index)
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
        stack = sorted(group, key=lambda f: -f.frame_index)
        exc = event.exceptions[ei] if ei < len(event.exceptions) else None
        caller_at, why = _caller_index(stack, exc, last_frame[ei]) or (0, "")
        for depth, frame in enumerate(stack):
            reasons = [f"{role} frame" if depth == 0 else f"caller ({depth} up) in {role}"]
            if depth < caller_at:
                score = base * HELPER_WEIGHT * (0.6**depth)
                reasons.append(why)
            else:
                score = base * (0.6 ** (depth - caller_at))
                if why and depth == caller_at:
                    reasons.append(f"called the helper that raised: {why}")
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
        on_stack = sorted((frame for _, frame, _ in items), key=lambda f: -f.frame_index)
        functions = list(dict.fromkeys(n for n in (_function_name(f, source) for f in on_stack) if n))
        items.sort(key=lambda t: -t[0])
        best_score, best, reasons = items[0]
        name = _function_name(best, source)
        if name != best.function:
            reasons = [*reasons, f"{best.function} is inside {name}()"]
        # Several distinct functions of one file on the stack nudge it up, but never past a file
        # that holds the root cause's crash frame on its own.
        bonus = 0.03 * min(2, len(functions) - 1) if functions else 0.0
        suspects.append(
            Suspect(
                path=path,
                line=best.line,
                function=name,
                score=round(best_score + bonus, 3),
                reasons=reasons + ([f"{len(items)} frames in this file"] if len(items) > 1 else []),
                functions=functions,
                lines=list(dict.fromkeys(f.line for f in on_stack if f.line is not None)),
            )
        )
    suspects.sort(key=lambda s: (-s.score, s.path))
    return suspects


def _function_name(frame: MappedFrame, source: Callable[[str], list[str] | None] | None) -> str | None:
    """The frame's function; for a lambda or comprehension, the named function around it when the
    workspace file says (Python prints only `<lambda>`, which a reader cannot search for)."""
    if not _is_anonymous(frame.function) or source is None or frame.path is None:
        return frame.function
    lines = source(frame.path)
    outer = enclosing_function(lines, frame.line) if lines else None
    return outer or frame.function


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

    on_line: set[str] = set()
    for suspect in suspects[:MAX_BLAME_FILES]:
        crash_lines = set(suspect.lines) or ({suspect.line} if suspect.line is not None else set())
        seen: set[int] = set()
        for target in sorted(crash_lines):
            near = 3 if target == suspect.line else 0
            for b in blame(root, suspect.path, max(1, target - near), target + near):
                if b.when > since or b.line in seen:
                    continue
                seen.add(b.line)
                if b.line in crash_lines:
                    on_line.add(b.sha)
                    weight, reason = 1.0, f"last changed {suspect.path}:{b.line}"
                else:
                    weight, reason = 0.25, f"changed lines near {suspect.path}:{suspect.line}"
                note(b.sha, b.author, b.when, b.summary, suspect.path, suspect.score * weight, reason)
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
    # The commit that last touched a crashing line is the best lead there is; a file's busy history
    # (many near-line and log hits) must not push it off the list.
    kept = [c for c in commits if c.sha in on_line][:MAX_COMMITS]
    kept += [c for c in commits if c.sha not in on_line][: MAX_COMMITS - len(kept)]
    return sorted(kept, key=lambda c: (-c.score, -c.date.timestamp()))
