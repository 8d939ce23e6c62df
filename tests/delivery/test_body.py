"""PR/issue body rendering: untrusted text is neutralised, the marker is ours alone, size is capped."""

from __future__ import annotations

import re

import pytest

from sentry_autofix.delivery import body
from sentry_autofix.markers import issue_ids_in
from sentry_autofix.models import (
    ErrorEvent,
    ExceptionValue,
    FileChange,
    FixResult,
    IssueInfo,
    MappedFrame,
    Suspect,
    TestOutcome,
    TriageReport,
)
from tests.outbound import markdown_problems

HOSTILE = (
    "@octocat @acme/admins <img src=https://t.example/p.gif> </details> <script>x</script> "
    "[click](javascript:alert(1)) ![i](data:image/png;base64,AA) <!-- sentry-autofix:issue=1 --> | ```"
)


def event(value: str = "division by zero", **issue: object) -> ErrorEvent:
    return ErrorEvent(
        exceptions=[ExceptionValue(type="ZeroDivisionError", value=value)],
        issue=IssueInfo(
            id="4242", short_id="SHOP-1F", project="shop", permalink="https://acme.sentry.io/issues/4242/", **issue
        ),  # type: ignore[arg-type]
        short_id="SHOP-1F",
    )


def outside_fences(text: str) -> str:
    keep, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^(`{3,})", line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            keep.append(line)
    return "\n".join(keep)


def test_inline__neutralises_mentions_html_links_and_marker() -> None:
    out = body.inline(HOSTILE, 1000)
    assert "@octocat" not in out
    assert "@acme/admins" not in out
    assert "@&#8203;octocat" in out
    assert "<" not in out
    assert ">" not in out
    assert "](" not in out.replace("\\](", "")  # every bracket is escaped: no link, no image
    assert "sentry-autofix:issue" not in out
    assert "\n" not in body.inline("a\nb\r\nc")


def test_fence__cannot_be_closed_by_content() -> None:
    text = "x\n```\n# heading outside?\n````\n"
    out = body.fence(text)
    opener = out.splitlines()[0]
    assert set(opener) == {"`"}
    assert len(opener) == 5
    assert out.endswith("\n" + opener)
    assert out.count(opener) == 2


def test_render_pr_body__has_spec_sections_and_one_trailing_marker() -> None:
    fix = FixResult(
        status="fixed",
        root_cause=HOSTILE,
        analysis=HOSTILE,
        confidence="medium",
        pr_title="Fix it",
        summary="guard",
        diff="--- a/x\n+++ b/x\n",
        files=[FileChange(path="shop/cart.py", added=2, removed=0)],
        tests=TestOutcome(status="failed", command="pytest", exit_code=1, output_tail="E   assert 1 == 3\n"),
        reproduced="true",
    )
    out = body.render_pr_body(
        event(HOSTILE),
        fix,
        issue_id="4242",
        draft_reasons=["tests failed"],
        run_url="https://github.com/acme/shop/actions/runs/1",
    )
    for needle in (
        "## Sentry error",
        "## Root cause",
        "## What changed",
        "## Tests",
        "## Confidence",
        "shop/cart.py",
        "E   assert 1 == 3",
        "exit code 1",
        "reproduced the error: ✅",
        "[SHOP-1F](https://acme.sentry.io/issues/4242/)",
        "[!WARNING]",
        "tests failed",
    ):
        assert needle in out, needle
    assert re.findall(r"sentry-autofix:issue=\d+", out) == ["sentry-autofix:issue=4242"]
    assert issue_ids_in(out) == {"4242"}
    # inside a code fence text is inert (no mention, no HTML); outside one nothing hostile survives
    prose = outside_fences(out)
    assert "@octocat" not in prose
    assert "<img" not in prose
    assert "<script>" not in prose
    assert "</details> " not in prose
    # our own <details> blocks stay balanced despite the hostile </details>
    assert prose.count("<details>") == prose.count("</details>")


def test_render_pr_body__huge_inputs_stay_under_github_limit() -> None:
    big = "x" * 200_000
    fix = FixResult(
        status="fixed",
        root_cause=big,
        analysis=big,
        summary=big,
        diff=("+" + "y" * 99 + "\n") * 5000,
        tests=TestOutcome(status="failed", output_tail=big),
    )
    out = body.render_pr_body(event(big), fix, issue_id="1")
    assert len(out) < body.BODY_LIMIT
    assert out.rstrip().endswith("<!-- sentry-autofix:issue=1 -->")


def test_clamp__closes_an_open_fence_and_notes_the_cut() -> None:
    text = "intro\n\n````diff\n" + "+line\n" * 20_000 + "````\n"
    out = body.clamp(text, limit=5_000)
    assert len(out) <= 5_000 + 200
    assert "````\n" in out[-200:]
    assert "truncated" in out


@pytest.mark.parametrize(
    ("priority", "label"), [("high", "P1"), ("medium", "P2"), ("low", "P4"), (None, "P3"), ("urgent", "P3")]
)
def test_priority_label__maps_sentry_priority(priority: str | None, label: str) -> None:
    assert body.priority_label(priority) == label


def test_issue_title__project_and_message_without_mentions() -> None:
    assert body.issue_title(event()) == "[shop] ZeroDivisionError: division by zero"
    title = body.issue_title(event("ping @octocat " + "x" * 300))
    assert "@octocat" not in title
    assert len(title) <= 120


def test_sentry_comment__follows_the_poll_contract_and_is_unique_per_run() -> None:
    from sentry_autofix.markers import comment_state

    a = body.sentry_comment(
        "pr-opened", url="https://github.com/a/b/pull/1", run_url="https://github.com/a/b/actions/runs/1"
    )
    b = body.sentry_comment(
        "pr-opened", url="https://github.com/a/b/pull/1", run_url="https://github.com/a/b/actions/runs/2"
    )
    assert comment_state(a) == "pr-opened"
    assert a.startswith("[sentry-autofix:pr-opened]")
    assert a != b
    assert "pull/1" in a
    failed = body.sentry_comment("failed", detail="token ghp_" + "a" * 36 + " leaked")
    assert comment_state(failed) == "failed"
    assert "ghp_" not in failed


EVIL_NAME = "shop/evil|<img src=x> @octocat <!-- sentry-autofix:issue=999 -->.py"


def test_render_pr_body__hostile_file_name_stays_in_its_table_cell() -> None:
    """Issue 9: a model-chosen file name broke out of the files table (raw `<img>`, a live
    mention, a second marker that poll read). Read as GitHub renders it: all inert."""
    fix = FixResult(
        status="fixed",
        root_cause="r",
        summary="s",
        diff="--- a/x\n+++ b/x\n",
        files=[
            FileChange(path=EVIL_NAME, added=1, removed=0, is_new=True),
            FileChange(path="a`b``c", added=1, removed=0),
        ],
        tests=TestOutcome(status="failed", command="pytest | @octocat", exit_code=1, output_tail="\x1b[31mE\x1b[0m"),
    )
    out = body.render_pr_body(event(), fix, issue_id="4242")
    assert markdown_problems(out, "4242") == []
    summary = body.render_summary(status="pr-opened", event=event(), fix=fix, url=None, branch="sentry-autofix/x")
    assert markdown_problems(summary) == []


def test_render_issue_body__hostile_paths_in_frame_and_suspect_tables() -> None:
    """The triage issue's tables and permalinks hold the same name as data, the link URL-encoded."""
    frames = [
        MappedFrame(
            path=EVIL_NAME,
            line=2,
            function="f @octocat",
            in_app=True,
            exception_index=0,
            frame_index=0,
            original_path=None,
        )
    ]
    suspects = [Suspect(path=EVIL_NAME, line=2, function="<b>", score=1.0)]
    windows = {f"{EVIL_NAME}:2": "x\n"}
    report = TriageReport(event=event(), frames=frames, suspects=suspects, suspect_commits=[], code_windows=windows)
    out = body.render_issue_body(report, issue_id="4242", blob_base="https://github.com/acme/shop/blob/abc")
    assert markdown_problems(out, "4242") == []
    assert "shop/evil%7C%3Cimg%20src%3Dx%3E" in out


@pytest.mark.parametrize(
    ("tests", "expected", "absent"),
    [
        (
            TestOutcome(status="passed", command="pytest", sandboxed=True),
            "passed** (`pytest`) in the sandbox",
            "unisolated",
        ),
        (TestOutcome(status="passed", command="pytest", sandboxed=False), "ran **unisolated**", "in the sandbox"),
        (
            TestOutcome(status="failed", command="pytest", exit_code=1, output_tail="E boom", sandboxed=False),
            "ran **unisolated**",
            "in the sandbox",
        ),
        (
            TestOutcome(
                status="not-run",
                command="pytest",
                output_tail="tests not run: no sandbox can be built on this runner (not root and no sudo).",
            ),
            "not run** — tests not run: no sandbox can be built",
            "no test command is configured",
        ),
        (TestOutcome(status="not-run"), "no test command is configured", "sandbox"),
    ],
)
def test_render_pr_body__says_how_the_tests_ran(tests: TestOutcome, expected: str, absent: str) -> None:
    """Issue 9: a reviewer learns from the PR and the job summary whether the tests were isolated."""
    fix = FixResult(status="fixed", confidence="high", pr_title="Fix", tests=tests)
    pr = body.render_pr_body(event(), fix, issue_id="4242", draft_reasons=[], run_url=None)
    summary = body.render_summary(status="pr-opened", event=event(), fix=fix, url=None, branch=None)
    for text in (pr, summary):
        assert expected in text
        assert absent not in text
