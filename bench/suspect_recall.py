"""File localization on real bugs: is the file the human fix changed the first / among the top 3 suspects?

    .venv/bin/python bench/suspect_recall.py [--verbose]

Cases: `cases.jsonl` in $SENTRY_AUTOFIX_BUGSET (default ../bugset beside the checkout), built
locally as docs/triage.md describes (TypeBugs of PyTER, one BugsInPy bug; tracebacks from each bug's GitHub thread;
not redistributed here), split once by a hash of the case id into `tune` (rules were developed on
these) and `heldout` (never looked at while tuning). Each traceback is parsed by the product's own
parser, its frames placed in the project by the approximation in bench/bugset.py, and ranked twice:
BEFORE is the ranking as on main before issue 13 (frozen in bench/bugset.py), AFTER is
`workspace.suspects.rank` now. No git history is used (there is no checkout of each project), so
blame-based bonuses play no part in these figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.bugset import CASES_FILE, load_cases, rank_main, score  # noqa: E402

from sentry_autofix.models import ErrorEvent, MappedFrame, Suspect  # noqa: E402
from sentry_autofix.workspace.suspects import rank  # noqa: E402


def rank_now(event: ErrorEvent, frames: list[MappedFrame]) -> list[Suspect]:
    return rank(event, frames)


def main() -> None:
    verbose = "--verbose" in sys.argv
    if not CASES_FILE.is_file():
        raise SystemExit(f"no cases at {CASES_FILE}: build them as docs/triage.md says, or set SENTRY_AUTOFIX_BUGSET")
    cases = load_cases()
    print(f"{'split':<22} {'cases':>5}   BEFORE @1 @3    AFTER @1 @3")
    groups = {
        "tune": [c for c in cases if c.split == "tune"],
        "heldout": [c for c in cases if c.split == "heldout"],
        "tune, complete text": [c for c in cases if c.split == "tune" and not c.truncated],
        "heldout, complete text": [c for c in cases if c.split == "heldout" and not c.truncated],
        "all": cases,
    }
    for name, group in groups.items():
        before, tops_before = score(group, rank_main)
        after, tops_after = score(group, rank_now)
        print(f"{name:<22} {before.cases:>5}   {before.line()}    {after.line()}")
        if verbose and name == "tune":  # never print heldout results while tuning
            for case in group:
                flag = "" if tops_after[case.id][:1] == tops_before[case.id][:1] else "  (changed)"
                print(f"  {case.id:<16} [{case.split}] fix {list(case.fix_files)}{flag}")
                print(f"      before {tops_before[case.id]}\n      after  {tops_after[case.id]}")


if __name__ == "__main__":
    main()
