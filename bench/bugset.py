"""Real bugs from a public dataset, scored for file localization (bench/suspect_recall.py).

The cases are built locally, not shipped (docs/triage.md, "Measured on real bugs", says how): the
bug list comes from a fetched public benchmark and the tracebacks from its bugs' public threads,
neither of which this repository redistributes. The file is `cases.jsonl` in `$SENTRY_AUTOFIX_BUGSET`
(default: `../bugset` beside this checkout), one JSON object per line: `id`, `repo`, `issue_url`,
`fix`, `fix_files`, `packages`, `truncated`, `traceback`, `split` (`tune` | `heldout`), and `dataset`
for a bug not from TypeBugs.

Each case is a traceback as its reporter posted it plus the files the human fix changed. There is no
checkout of each project here, so a frame is placed in the repository by the one approximation this
module makes: the path from the project's top-level package on (`.../site-packages/pandas/core/x.py`
and `/testing/salt/utils/http.py` both become `pandas/core/x.py`, `salt/utils/http.py`). Frames
outside the project's packages (the stdlib, other libraries, the reporter's script) stay unmapped,
as they would be in a workspace that does not hold them.

`rank_main` is the ranking as it was before issue 13 (frozen here) so `bench/suspect_recall.py`
and the tests can put both side by side.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sentry_autofix.errors import InputError
from sentry_autofix.models import ErrorEvent, MappedFrame, Suspect
from sentry_autofix.sources.traceback_text import parse_traceback

CASES_FILE = (
    Path(os.environ["SENTRY_AUTOFIX_BUGSET"])
    if os.environ.get("SENTRY_AUTOFIX_BUGSET")
    else Path(__file__).resolve().parent.parent.parent / "bugset"
) / "cases.jsonl"
Ranker = Callable[[ErrorEvent, list[MappedFrame]], list[Suspect]]


@dataclass(frozen=True)
class Case:
    id: str
    repo: str
    fix_files: tuple[str, ...]
    packages: tuple[str, ...]
    traceback: str
    split: str
    truncated: bool


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    cases = []
    for line in path.read_text().splitlines():
        raw = json.loads(line)
        cases.append(
            Case(
                id=raw["id"],
                repo=raw["repo"],
                fix_files=tuple(raw["fix_files"]),
                packages=tuple(raw["packages"]),
                traceback=raw["traceback"],
                split=raw["split"],
                truncated=raw["truncated"],
            )
        )
    return cases


def repo_path(path: str | None, packages: Iterable[str]) -> str | None:
    """`C:\\Python36\\lib\\site-packages\\pandas\\io\\json\\normalize.py` → `pandas/io/json/normalize.py`."""
    if not path:
        return None
    posix = "/" + path.replace("\\", "/").lstrip("/")
    best = -1
    for package in packages:
        best = max(best, posix.rfind(f"/{package}/"))
    return posix[best + 1 :] if best >= 0 else None


def map_frames(event: ErrorEvent, packages: Iterable[str]) -> list[MappedFrame]:
    frames = []
    for ei, exc in enumerate(event.exceptions):
        for fi, frame in enumerate(exc.frames):
            original = frame.abs_path or frame.filename
            path = repo_path(original, packages)
            frames.append(
                MappedFrame(
                    exception_index=ei,
                    frame_index=fi,
                    path=path,
                    line=frame.lineno,
                    function=frame.function,
                    in_app=path is not None,
                    original_path=original,
                    reason=None if path else "outside the project's packages",
                )
            )
    return frames


def parse(case: Case) -> ErrorEvent | None:
    try:
        return parse_traceback(case.traceback)
    except InputError:
        return None


@dataclass
class Score:
    cases: int = 0
    at1: int = 0
    at3: int = 0

    def line(self) -> str:
        if not self.cases:
            return "   -      -  "
        return f"{self.at1 / self.cases:>6.0%} {self.at3 / self.cases:>6.0%}"


def score(cases: Iterable[Case], ranker: Ranker) -> tuple[Score, dict[str, list[str]]]:
    """Recall@1/@3 of the fix's files among the suspects; a text the parser rejects is a miss."""
    total = Score()
    tops: dict[str, list[str]] = {}
    for case in cases:
        event = parse(case)
        top = [s.path for s in ranker(event, map_frames(event, case.packages))][:3] if event else []
        tops[case.id] = top
        total.cases += 1
        total.at1 += bool(top) and top[0] in case.fix_files
        total.at3 += any(path in case.fix_files for path in top)
    return total, tops


def rank_main(event: ErrorEvent, frames: list[MappedFrame]) -> list[Suspect]:
    """`workspace.suspects.rank` as on main before issue 13, without git (frozen for comparison)."""
    mapped = [f for f in frames if f.path and f.in_app] or [f for f in frames if f.path]
    n_exc = max((f.exception_index for f in frames), default=0) + 1
    by_exc: dict[int, list[MappedFrame]] = defaultdict(list)
    for f in mapped:
        by_exc[f.exception_index].append(f)
    scored: list[tuple[float, MappedFrame]] = []
    for ei, group in by_exc.items():
        base = 1.0 if n_exc == 1 or ei == 0 else 0.9 if ei == n_exc - 1 else 0.85
        for depth, frame in enumerate(sorted(group, key=lambda f: -f.frame_index)):
            value = base * 0.6**depth
            if frame.path and re.search(r"(^|/)(tests?|spec|__tests__)/|(^|/)test_[^/]*$", frame.path):
                value *= 0.5
            scored.append((value, frame))
    per_path: dict[str, list[tuple[float, MappedFrame]]] = defaultdict(list)
    for item in scored:
        per_path[str(item[1].path)].append(item)
    suspects = []
    for path, items in per_path.items():
        items.sort(key=lambda t: -t[0])
        functions = {item[1].function for item in items}
        value = items[0][0] + 0.03 * min(2, len(functions) - 1)
        best = items[0][1]
        suspects.append(Suspect(path=path, line=best.line, function=best.function, score=round(value, 3)))
    suspects.sort(key=lambda s: (-s.score, s.path))
    return suspects
