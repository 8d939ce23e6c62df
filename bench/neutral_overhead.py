"""What neutralising outbound text costs: the job-log stream and the PR body, side by side.

    .venv/bin/python bench/neutral_overhead.py [--mb N]

* log: N MB of test-output-like lines (ANSI colours, `::` and `##[` here and there) written line
  by line through `neutral.NeutralStream` vs straight to the same sink;
* clean: `neutral.clean` on one N MB string (what the parse edge and the summary pay);
* body: rendering the largest PR body GitHub accepts (`delivery.body.render_pr_body`, 64 KB).

Not a test: figures depend on the machine. Prints MB/s and the per-line cost.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sentry_autofix import neutral
from sentry_autofix.delivery import body
from sentry_autofix.models import ErrorEvent, ExceptionValue, FileChange, FixResult, TestOutcome

LINES = [
    "tests/test_cart.py::test_average_item_price_of_empty_cart \x1b[32mPASSED\x1b[0m      [ 50%]",
    "E       ZeroDivisionError: division by zero",
    "    ::std::vector<int> v;  // C++ scope in a diff context line",
    "turn 4: edit_file shop/cart.py",
    "##[group]not a command once written",
    "=================== 1 failed, 41 passed in 0.52s ===================",
]


def timed(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=8.0)
    mb = parser.parse_args().mb
    unit = "\n".join(LINES) + "\n"
    lines = (unit * int(mb * 1e6 / len(unit))).splitlines(keepends=True)
    size = sum(len(line) for line in lines) / 1e6

    def raw() -> None:
        sink = io.StringIO()
        for line in lines:
            sink.write(line)

    def neutral_stream() -> None:
        sink = neutral.NeutralStream(io.StringIO())
        for line in lines:
            sink.write(line)

    text = "".join(lines)
    t_raw, t_neutral = timed(raw), timed(neutral_stream)
    t_clean = timed(lambda: neutral.clean(text))
    fix = FixResult(
        status="fixed",
        root_cause="x" * 3000,
        analysis="y\n" * 4000,
        summary="z" * 3000,
        diff=("+" + "w" * 79 + "\n") * 3000,
        files=[FileChange(path=f"src/pkg/module_{i}.py", added=i, removed=1) for i in range(50)],
        tests=TestOutcome(status="failed", command="pytest", exit_code=1, output_tail=text[:20_000]),
    )
    event = ErrorEvent(exceptions=[ExceptionValue(type="ZeroDivisionError", value="division by zero " * 50)])
    t_body = timed(lambda: body.render_pr_body(event, fix, issue_id="4242"), repeat=5)
    per_line = (t_neutral - t_raw) / len(lines) * 1e6
    print(f"log    {size:6.1f} MB, {len(lines):,} lines: raw {size / t_raw:7.1f} MB/s, "
          f"neutral {size / t_neutral:6.1f} MB/s ({t_neutral / t_raw:.1f}x), +{per_line:.2f} µs per line")  # fmt: skip
    print(f"clean  {size:6.1f} MB in one string: {size / t_clean:6.1f} MB/s")
    print(f"body   64 KB PR body rendered in {t_body * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
