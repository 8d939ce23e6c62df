"""Unit tests of `sentry_autofix.eval`'s pure parts: case folders, failure attribution, rendering.
(The command end to end, with a real repository and the scripted model: tests/agent/test_agent_eval.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sentry_autofix.errors import ConfigError, InputError
from sentry_autofix.eval import CaseResult, fails_in, folder_cases, parse_since, read_results, render_summary
from sentry_autofix.models import TestOutcome


def test_parse_since__hours_days_weeks_and_a_clear_error() -> None:
    assert parse_since("12h").total_seconds() == 12 * 3600
    assert parse_since("90d").days == 90
    assert parse_since("2w").days == 14
    with pytest.raises(ConfigError, match=r"e\.g\. 90d"):
        parse_since("3 months")


def _case(root: Path, name: str, spec: object) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "case.json").write_text(json.dumps(spec))
    (root / name / "event.json").write_text("{}")


def test_folder_cases__sorted_ids_optional_base_and_folders_without_case_json_ignored(tmp_path: Path) -> None:
    _case(tmp_path, "b-2", {"fix_commit": "abc1234", "base_commit": "abc1234~2"})
    _case(tmp_path, "a-1", {"fix_commit": "main~3"})
    (tmp_path / "notes").mkdir()
    cases = folder_cases(tmp_path)
    assert [(c.id, c.fix_commit, c.base_commit) for c in cases] == [
        ("a-1", "main~3", None),
        ("b-2", "abc1234", "abc1234~2"),
    ]
    assert cases[0].event_file == tmp_path / "a-1" / "event.json"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fix_commit": "--output=/tmp/pwned"}, "is not a commit"),  # would be a git option
        ({"fix_commit": "a..b"}, "is not a commit"),
        ({"base_commit": "abc1234"}, "fix_commit"),
        ({"fix_commit": "abc1234", "extra": 1}, "extra"),
    ],
)
def test_folder_cases__refuses_what_git_must_not_see(tmp_path: Path, spec: object, message: str) -> None:
    _case(tmp_path, "case", spec)
    with pytest.raises(InputError, match=message):
        folder_cases(tmp_path)


def test_fails_in__attributes_failures_to_the_human_test_files() -> None:
    human = ["tests/test_stats.py"]
    failed = TestOutcome(status="failed", failed_tests=["tests/test_stats.py::test_mean_of_no_orders_is_zero"])
    other = TestOutcome(status="failed", failed_tests=["tests/test_io.py::test_disk"])
    unittest = TestOutcome(status="failed", failed_tests=["test_zero (tests.test_stats.StatsTest)"])
    unreadable = TestOutcome(status="failed", failed_tests=None)
    assert fails_in(failed, human) is True
    assert fails_in(other, human) is False  # an unrelated failure does not count against the patch
    assert fails_in(unittest, human) is True
    assert fails_in(unreadable, human) is True  # cannot tell: counted as failing
    assert fails_in(TestOutcome(status="passed", failed_tests=[]), human) is False
    assert fails_in(TestOutcome(status="not-run"), human) is None


def test_render_summary__untrusted_error_text_stays_in_its_cell() -> None:
    rows = [
        CaseResult(id="1", status="error", llm="openai", model="gpt-x", error="boom | <img src=x> @admin\n## heading"),
        CaseResult(
            id="2",
            status="fixed",
            llm="openai",
            model="gpt-x",
            localized_at_1=True,
            localized_at_3=True,
            resolved=True,
            cost_usd=0.5,
        ),
        CaseResult(id="3", status="skipped", error="commit gone"),
    ]
    text = render_summary(rows)
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) == 3
    assert all(len(re.split(r"(?<!\\)\|", line)) == 14 for line in table)  # 12 cells each: no `|` broke out
    assert "\n## heading" not in text
    assert text.startswith("## sentry-autofix eval: openai/gpt-x\n")  # the model measured, from the lines
    assert "* cases: 2 run, 1 skipped; fixed 1" in text
    assert "@1 1/1 (100 %)" in text
    assert "$0.5000 total, $0.2500 per case" in text


def test_folder_cases__a_case_folder_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    """Red team: `$` also matches before a final newline, so a folder `x\n` passed as a case id
    and broke the table and the matrix; ids are matched whole."""
    folder = tmp_path / "case-1\n"
    folder.mkdir()
    (folder / "case.json").write_text('{"fix_commit": "abc1234"}')
    (folder / "event.json").write_text("{}")
    with pytest.raises(InputError, match="is not a case id"):
        folder_cases(tmp_path)


@pytest.mark.parametrize(
    "field", ['"turns": -3', '"cost_usd": 1e308', '"input_tokens": -1', '"id": "x\\n"', '"id": "../../etc"']
)
def test_read_results__forged_lines_are_refused_not_totalled(tmp_path: Path, field: str) -> None:
    """Red team: `--report` totalled whatever a results line said (negative turns, 1e308 dollars)."""
    out = tmp_path / "eval-results.jsonl"
    out.write_text('{"id": "case-1", "status": "fixed", ' + field + "}\n")
    with pytest.raises(InputError, match="line 1 is not an eval result"):
        read_results(out)
