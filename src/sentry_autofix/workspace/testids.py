"""Which tests failed, read from a test run's output, and which of them the fix caused.

The baseline run (the test command on the untouched workspace, before the agent starts) keeps
its failing test ids; after the fix, a failing test is a regression only if it passed before.
That only holds when the ids can be read, so the parser is honest: `None` means "could not
tell" (no recognised runner line, a count that does not add up, output cut in the middle) and
the caller falls back to treating any failure as the fix's.

Recognised: pytest (`FAILED path::id`, `ERROR path`), unittest (`FAIL: name (mod.Class)`),
go test (`--- FAIL: Name`), jest/vitest (`✕ name`, `FAIL file`), rspec (`rspec ./spec/x:N`),
maven surefire (`[ERROR]   Class.method:N`), gradle (`Class > method FAILED`), cargo
(`test x ... FAILED`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sentry_autofix.models import TestOutcome

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_OMITTED = re.compile(r"^\[… \d+ bytes of output omitted …\]$", re.MULTILINE)
"""The sandbox's head+tail cut (sandbox.Captured): ids in the cut-out middle are unknown."""

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$"),  # pytest short summary
    re.compile(r"^(?:FAIL|ERROR): (\S+ \([\w.]+\))"),  # unittest
    re.compile(r"^\s*--- FAIL: (\S+)"),  # go test
    re.compile(r"^\s*[✕×] (.+?)(?: \(\d+(?:\.\d+)?\s*m?s\))?$"),  # jest --verbose / vitest
    re.compile(r"^\s*FAIL\s+(\S.*?)\s*$"),  # jest/vitest file lines, go package lines
    re.compile(r"^rspec (\./\S+:\d+)"),  # rspec "Failed examples"
    re.compile(r"^\[ERROR\]\s{2,}([\w$.]+\.[\w$]+)(?::\d+)?(?:\s|$)"),  # maven surefire summary
    re.compile(r"^(\S+ > .+?) FAILED$"),  # gradle
    re.compile(r"^test (\S+) \.\.\. FAILED$"),  # cargo
)
_DURATION = re.compile(r"\s+\(?\d+(?:\.\d+)?\s*m?s\)?$")
"""A run's timing after an id (`FAIL\tpkg\t0.01s`, `FAIL src/a.test.js (5.2 s)`): not part of it."""
_PYTEST_COUNTS = re.compile(r"\b(\d+) (failed|errors?)\b")
_PYTEST_LAST = re.compile(
    r"^=*\s*\d+ (?:failed|passed|errors?|skipped|xfailed|xpassed|deselected|warnings?)"
    r"(?:, \d+ \w+)* in [\d.]+s\b"
)
"""pytest's last line (`1 failed, 3 passed in 0.12s`, `==== 2 failed in 1.0s ====`); not cargo's `;` list."""


def failed_test_ids(output: str) -> list[str] | None:
    """The failing test ids in a failed run's `output`, or None when they cannot be read."""
    text = _ANSI.sub("", output)
    ids: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        for pattern in _PATTERNS:
            m = pattern.match(line)
            if m:
                test_id = _DURATION.sub("", m.group(1)).strip()
                if test_id and test_id not in ids:
                    ids.append(test_id)
                break
    if not ids:
        return None
    pytest_total = _pytest_failures(text)
    if pytest_total is not None:
        # pytest prints the summary last, so a cut in the middle does not lose it; the count
        # still has to match, or a truncated/short summary would hide a failure.
        pytest_ids = [i for i in ids if "::" in i or i.endswith(".py")]
        return pytest_ids if len(pytest_ids) >= pytest_total else None
    if _OMITTED.search(text):
        return None
    return ids


def _pytest_failures(text: str) -> int | None:
    last = next((ln for ln in reversed(text.splitlines()) if _PYTEST_LAST.search(ln)), None)
    if last is None:
        return None
    return sum(int(n) for n, _ in _PYTEST_COUNTS.findall(last))


def with_failures(outcome: TestOutcome) -> TestOutcome:
    """`outcome` with `failed_tests` filled: [] when it passed, the parsed ids (or None) when it
    failed with an exit code; None after a timeout (a killed run says nothing about the rest)."""
    if outcome.status == "passed":
        return outcome.model_copy(update={"failed_tests": []})
    if outcome.status == "failed" and outcome.exit_code is not None:
        return outcome.model_copy(update={"failed_tests": failed_test_ids(outcome.output_tail)})
    return outcome


def new_failures(before: TestOutcome | None, after: TestOutcome) -> list[str] | None:
    """The tests failing in `after` that did not fail in `before` (the baseline run).

    None when that cannot be told: no baseline, either run's failures unreadable, or a different
    command (a narrowed run is not comparable with the full suite).
    """
    if after.status != "failed":
        return []
    if before is None or before.status == "not-run" or before.command != after.command:
        return None
    if before.failed_tests is None or after.failed_tests is None:
        return None
    known = set(before.failed_tests)
    return [t for t in after.failed_tests if t not in known]


def caused_failure(before: TestOutcome | None, after: TestOutcome) -> bool | None:
    """Whether `after` fails in a way the baseline run did not; None when that cannot be told
    (the baseline failed too, and either run's failures are unreadable).

    Without a baseline (skipped, or not run) any failure counts, as before baselines existed.
    """
    new = new_failures(before, after)
    if new is not None:
        return bool(new)
    if before is None or before.status != "failed":
        return after.status == "failed"
    return None


def preexisting(before: TestOutcome | None, after: TestOutcome) -> Sequence[str]:
    """The tests failing in `after` that already failed in the baseline run."""
    if new_failures(before, after) is None or after.failed_tests is None or before is None:
        return ()
    known = set(before.failed_tests or ())
    return [t for t in after.failed_tests if t in known]


def compare(before: TestOutcome | None, after: TestOutcome) -> str:
    """One plain sentence comparing a failed run with the baseline run, or "" when there is nothing
    to say: "2 tests fail, both failed before this change"."""
    new, old = new_failures(before, after), preexisting(before, after)
    if after.status != "failed" or new is None:
        return ""
    if not new:
        n = len(old)
        if n == 1:
            return "1 test fails, it failed before this change"
        return f"{n} tests fail, {'both' if n == 2 else 'all'} failed before this change"
    s = "" if len(new) == 1 else "s"
    return f"{len(new)} test{s} newly failing" + (f", {len(old)} failed before this change" if old else "")
