"""Parse speed of the traceback text source on hostile lines (4,000 characters each, the most a line
is looked at) built to make backtracking regular expressions quadratic, next to a real traceback
wrapped in log lines. Prints seconds per MB for each; the goal is the same order of magnitude for both.

    .venv/bin/python bench/traceback_parse_speed.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.sources.test_traceback_text import PATHOLOGICAL  # noqa: E402
from tests.tracebacks_wrap import cloudwatch_tail  # noqa: E402

from sentry_autofix.sources.traceback_text import parse_all  # noqa: E402


def per_mb(text: str) -> float:
    start = time.perf_counter()
    parse_all(text)
    return (time.perf_counter() - start) / (len(text) / 1e6)


def main() -> None:
    real = cloudwatch_tail((ROOT / "tests/fixtures/tracebacks/raw/java_cause.txt").read_text())
    baseline = per_mb("\n".join([real] * (1_000_000 // len(real))))
    print(f"{'input':<48} {'s/MB':>8} {'ratio':>7}")
    print(f"{'real java trace in aws logs tail lines':<48} {baseline:>8.3f} {1.0:>7.1f}")
    for line in PATHOLOGICAL:
        cost = per_mb("\n".join([line] * 250))
        print(f"{line[:44]!r:<48} {cost:>8.3f} {cost / baseline:>7.1f}")


if __name__ == "__main__":
    main()
