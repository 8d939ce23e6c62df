"""PR, issue, job-summary and Sentry-comment text (SPEC §7), with untrusted text neutralised.

Everything that came from Sentry or from the model is attacker-controllable: an error message
can be chosen by whoever can make the app throw, and the model writes file names. Before it
reaches a GitHub body it is redacted and then escaped for running text (`inline`), inline code
such as file names in table cells (`neutral.md_code`), or fenced (`fence`) — the rules live in
`sentry_autofix.neutral` — so it cannot
* notify people (`@user`, `@org/team`) or cross-reference issues (`#12`),
* inject HTML (`<img src=…>` trackers, `</details>` that breaks our layout) or break a table,
* link to non-http(s) schemes (`javascript:`, `data:`),
* forge our dedup marker (`<!-- sentry-autofix:issue=… -->`), which would hijack another issue,
* carry terminal escapes, bidi overrides or lone surrogates (`neutral.clean` on every body).
Bodies stay under GitHub's 65,536-character limit: long parts are cut with a note, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from sentry_autofix import neutral
from sentry_autofix.markers import CommentState, marker_for, state_comment
from sentry_autofix.models import ErrorEvent, FixResult, TriageReport
from sentry_autofix.neutral import md_code, safe_url
from sentry_autofix.redact import redact_text
from sentry_autofix.workspace.testids import compare, new_failures, preexisting

BODY_LIMIT = 65_536
"""GitHub rejects issue/PR bodies longer than this (422 `body is too long`)."""
_BODY_BUDGET = BODY_LIMIT - 2_000
"""Room kept for the truncation note, the marker and multi-byte surprises."""


def inline(text: str | None, limit: int = 300) -> str:
    """Untrusted text for a single line of markdown: redacted, then `neutral.md_text`."""
    return neutral.md_text(redact_text(text or ""), limit)


def fence(text: str | None, lang: str = "", limit: int = 8_000) -> str:
    """Untrusted multi-line text: redacted, then in a code fence no content can close."""
    return neutral.md_fence(redact_text(text or ""), lang, limit)


def clamp(body: str, limit: int = _BODY_BUDGET) -> str:
    """Cut a body to fit GitHub's limit on a line boundary, closing an open fence, with a note."""
    if len(body) <= limit:
        return body
    out: list[str] = []
    size = 0
    open_fence: str | None = None
    for line in body.splitlines(keepends=True):
        if size + len(line) > limit - 200:
            break
        out.append(line)
        size += len(line)
        stripped = line.strip()
        if open_fence is None and re.fullmatch(r"(`{3,}|~{3,}).*", stripped):
            open_fence = re.match(r"`+|~+", stripped).group(0)  # type: ignore[union-attr]
        elif open_fence is not None and stripped == open_fence:
            open_fence = None
    text = "".join(out)
    if open_fence:
        text = text.rstrip("\n") + f"\n{open_fence}\n"
    return text + "\n_(truncated: GitHub limits a body to 65,536 characters; the full text is in the run log)_\n"


def _with_marker(body: str, issue_id: str) -> str:
    """The body, cleaned, with our marker last on a line of its own (where `markers.issue_ids_in`
    looks for it). Only Sentry's numeric ids have a marker: nothing else could be read back."""
    text = neutral.clean(clamp(body)).rstrip("\n")
    return text + ("\n\n" + marker_for(issue_id) if issue_id.isdigit() else "") + "\n"


# --- shared pieces ------------------------------------------------------------------------------


def priority_label(priority: str | None) -> str:
    """Sentry priority → label (SPEC §7): high→P1, medium→P2, low→P4, anything else P3."""
    return {"high": "P1", "medium": "P2", "low": "P4"}.get((priority or "").lower(), "P3")


def _sentry_link(event: ErrorEvent) -> str:
    url = safe_url(event.permalink or (event.issue.permalink if event.issue else None))
    label = inline(event.short_id or (event.issue.short_id if event.issue else None) or "Sentry issue", 60)
    return f"[{label}]({url})" if url else label


def _crash_frame(report: TriageReport) -> tuple[str, int | None] | None:
    for frame in reversed(report.frames):
        if frame.in_app and frame.path:
            return frame.path, frame.line
    return None


def crash_location(report: TriageReport) -> tuple[str, int | None] | None:
    """The crashing in-app frame in the workspace, for the `::error file=…,line=…::` annotation."""
    return _crash_frame(report)


def _usage_line(fix: FixResult) -> str:
    u = fix.usage
    tokens = u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens
    return (
        f"{tokens:,} tokens ({u.input_tokens:,} in, {u.output_tokens:,} out, "
        f"{u.cache_read_tokens:,} cache read, {u.cache_write_tokens:,} cache write), "
        f"≈ ${u.cost_usd:.2f}, {u.turns} turns"
    )


UNISOLATED = (
    "⚠️ The tests ran **unisolated**: no sandbox could be built on this runner and "
    "`allow-unsandboxed-tests` is on, so the code they ran (including tests the model wrote) could "
    "read this job's files and processes."
)


def _tests_block(fix: FixResult) -> str:
    t = fix.tests
    if t.status == "not-run":
        if t.command and t.output_tail:  # configured, but the sandbox or the time budget said no
            return f"⚪ **not run** — {inline(t.output_tail, 600)}"
        return "⚪ **not run** — no test command is configured (`test-command`)."
    cmd = f" ({md_code(redact_text(t.command), 200)})" if t.command else ""
    where = "" if t.sandboxed is False else " in the sandbox"
    warning = f"\n\n{UNISOLATED}" if t.sandboxed is False else ""
    if t.status == "passed":
        return f"✅ **passed**{cmd}{where} in {t.seconds:.0f}s.{warning}"
    tail = fence(t.output_tail, limit=4_000) if t.output_tail else ""
    return f"{_failed_head(fix)}{cmd}{where}, exit code {t.exit_code}. Last lines:\n\n{tail}{warning}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _failed_head(fix: FixResult) -> str:
    """How the failure compares with the baseline run (the tests before the change), in words."""
    t, before = fix.tests, fix.baseline_tests
    new = new_failures(before, t)
    if new is None:
        if before is not None and before.status == "failed":
            return "❌ **failed** (the tests failed before this change too; which tests could not be read)"
        return "❌ **failed**"
    old = preexisting(before, t)
    names = ", ".join(md_code(redact_text(n), 120) for n in (new or old)[:10])
    more = f" and {len(new or old) - 10} more" if len(new or old) > 10 else ""
    if not new:
        return f"⚠️ **{compare(before, t)}** (not caused by the fix: {names}{more})"
    also = f"; {len(old)} more failed before this change too" if old else ""
    return f"❌ **failed**: {_plural(len(new), 'test')} newly failing ({names}{more}){also}"


def _files_table(fix: FixResult) -> str:
    if not fix.files:
        return "_no file changed_"
    rows = ["| file | + | − |", "|---|---:|---:|"]
    for f in fix.files:
        note = " (new)" if f.is_new else " (deleted)" if f.is_deleted else ""
        # The model names files: a path is data in a code span that cannot leave its table cell.
        rows.append(f"| {md_code(f.path)}{note} | {f.added} | {f.removed} |")
    return "\n".join(rows)


# --- PR -----------------------------------------------------------------------------------------


def pr_title(event: ErrorEvent, fix: FixResult) -> str:
    # Titles are plain text on GitHub (no markdown), but still carry mentions into notifications.
    return neutral.plain_line(redact_text(fix.pr_title or f"Fix {event.headline}"), 120)


def render_pr_body(
    event: ErrorEvent,
    fix: FixResult,
    *,
    issue_id: str,
    draft_reasons: Sequence[str] = (),
    run_url: str | None = None,
    regression_of: str | None = None,
) -> str:
    exc = event.crashing_exception
    err_type = inline(exc.type if exc else None, 120) or "Error"
    err_value = inline(exc.value if exc else event.headline, 500)
    reproduced = {
        "true": "✅ yes — a regression test fails without the fix and passes with it",
        "false": "❌ no — no test reproduced the error",
        "unknown": "⚪ not verified",
    }[fix.reproduced]
    parts = [
        "## Sentry error",
        f"**{err_type}**: {err_value}",
        f"Sentry: {_sentry_link(event)}"
        + (f" · {inline(str(event.issue.count), 20)} events" if event.issue and event.issue.count else ""),
    ]
    if regression_of:
        parts.append(f"This error came back after {inline(regression_of, 80)}.")
    parts += [
        "## Root cause",
        inline(fix.root_cause, 2_000) or "_not stated_",
    ]
    if fix.analysis:
        parts += [
            "<details><summary>Analysis</summary>",
            "",
            fence(fix.analysis, limit=6_000),
            "",
            "</details>",
        ]
    parts += [
        "## What changed",
        inline(fix.summary, 2_000) if fix.summary else "",
        _files_table(fix),
        "<details><summary>Diff</summary>",
        "",
        fence(fix.diff, "diff", limit=30_000),
        "",
        "</details>",
        "## Tests",
        _tests_block(fix),
        f"Regression test reproduced the error: {reproduced}",
        "## Confidence",
        f"**{fix.confidence or 'unknown'}**"
        + (f" — opened as a draft because {', '.join(draft_reasons)}." if draft_reasons else ""),
        f"Usage: {_usage_line(fix)}",
    ]
    if run_url:
        parts.append(f"Run: {run_url}")
    parts.append(
        "> [!WARNING]\n> Generated by sentry-autofix from production error data and an LLM. "
        "Review it like any other contribution before merging; it is never merged automatically."
    )
    return _with_marker("\n\n".join(p for p in parts if p), issue_id)


# --- triage issue --------------------------------------------------------------------------------


def issue_title(event: ErrorEvent) -> str:
    project = (event.issue.project if event.issue else None) or "sentry"
    return neutral.plain_line(redact_text(f"[{project}] {event.headline}"), 120)


def render_issue_body(
    report: TriageReport,
    *,
    issue_id: str,
    blob_base: str | None = None,
    run_url: str | None = None,
    reason: str | None = None,
) -> str:
    """Triage issue: the error mapped onto files and lines, suspect commits, impact, links.

    `blob_base` is `https://github.com/owner/repo/blob/<sha>` for permalinks to mapped lines.
    """
    event = report.event
    issue = event.issue
    exc = event.crashing_exception
    parts = [
        "## Error",
        f"**{inline(exc.type if exc else None, 120) or 'Error'}**: {inline(exc.value if exc else event.headline, 500)}",
        f"Sentry: {_sentry_link(event)}",
    ]
    if reason:
        parts.append(f"_{inline(reason, 300)}_")
    impact = []
    if issue is not None:
        for label, value in (
            ("events", issue.count),
            ("users", issue.user_count),
            ("level", issue.level or event.level),
            ("priority", issue.priority),
            ("first seen", issue.first_seen.isoformat() if issue.first_seen else None),
            ("last seen", issue.last_seen.isoformat() if issue.last_seen else None),
        ):
            if value not in (None, ""):
                impact.append(f"| {label} | {inline(str(value), 60)} |")
    for label, value in (("release", event.release), ("environment", event.environment)):
        if value:
            impact.append(f"| {label} | {inline(value, 80)} |")
    if impact:
        parts += ["## Impact", "| | |\n|---|---|\n" + "\n".join(impact)]
    frames = [f for f in report.frames if f.path]
    if frames:
        rows = ["| # | file | line | function | in app |", "|---:|---|---:|---|---|"]
        for i, f in enumerate(reversed(frames[-15:])):
            loc = md_code(f.path)
            link = safe_url(f"{blob_base}/{quote(f.path or '')}#L{f.line}") if blob_base and f.line else None
            if link:
                loc = f"[{loc}]({link})"
            rows.append(f"| {i} | {loc} | {f.line or ''} | {inline(f.function, 80)} | {'yes' if f.in_app else ''} |")
        parts += ["## Where it happens (crashing frame first)", "\n".join(rows)]
    if report.suspects:
        rows = ["| file | line | function | score |", "|---|---:|---|---:|"]
        for s in report.suspects[:10]:
            rows.append(f"| {md_code(s.path)} | {s.line or ''} | {inline(s.function, 80)} | {s.score:.2f} |")
        parts += ["## Suspect code", "\n".join(rows)]
    windows = list(report.code_windows.items())[:3]
    for where, code in windows:
        parts += [
            f"<details><summary>{inline(where, 200)}</summary>",
            "",
            fence(code, limit=4_000),
            "",
            "</details>",
        ]
    if report.suspect_commits:
        rows = ["| commit | author | date | summary |", "|---|---|---|---|"]
        for c in report.suspect_commits[:5]:
            rows.append(
                f"| {inline(c.short_sha, 12)} | {inline(c.author, 60)} | {c.date.date().isoformat()} "
                f"| {inline(c.summary, 120)} |"
            )
        parts += ["## Suspect commits", "\n".join(rows)]
    crumbs = event.breadcrumbs[-10:]
    if crumbs:
        lines = [
            f"{c.timestamp or ''} {c.category or c.type or ''} {c.level or ''} {c.message or ''}".strip()
            for c in crumbs
        ]
        parts += [
            "<details><summary>Last breadcrumbs</summary>",
            "",
            fence("\n".join(lines)),
            "",
            "</details>",
        ]
    if run_url:
        parts.append(f"Run: {run_url}")
    parts.append("_Opened by sentry-autofix. Sentry data is shown as reported; treat it as untrusted._")
    return _with_marker("\n\n".join(parts), issue_id)


def render_regression_comment(event: ErrorEvent, *, run_url: str | None = None) -> str:
    last = event.issue.last_seen.isoformat() if event.issue and event.issue.last_seen else "recently"
    text = f"This error is happening again (last seen {inline(last, 40)}): {_sentry_link(event)}."
    if run_url:
        text += f"\n\nRun: {run_url}"
    return neutral.clean(text)


# --- job summary and Sentry comments -------------------------------------------------------------


def render_summary(
    *,
    status: str,
    event: ErrorEvent | None,
    fix: FixResult | None,
    url: str | None,
    branch: str | None,
    message: str | None = None,
) -> str:
    lines = [f"## sentry-autofix: `{status}`"]
    if message:
        lines.append(inline(message, 1_000))
    if event is not None:
        lines.append(f"**Error**: {inline(event.headline, 500)} — {_sentry_link(event)}")
    if fix is not None:
        if fix.root_cause:
            lines.append(f"**Root cause**: {inline(fix.root_cause, 1_000)}")
        if fix.files:
            added = sum(f.added for f in fix.files)
            removed = sum(f.removed for f in fix.files)
            lines.append(f"**Diff**: {len(fix.files)} file(s), +{added} −{removed}")
            lines.append(_files_table(fix))
        lines.append(f"**Tests**: {_tests_block(fix)}")
        lines.append(f"**Confidence**: {fix.confidence or 'unknown'}")
        lines.append(f"**Usage**: {_usage_line(fix)}")
    if branch:
        lines.append(f"**Branch**: {md_code(branch, 200)}")
    if url:
        lines.append(f"**Link**: {safe_url(url) or inline(url, 300)}")
    return neutral.clean("\n\n".join(lines)) + "\n"


def sentry_comment(
    state: CommentState,
    *,
    url: str | None = None,
    run_url: str | None = None,
    detail: str | None = None,
    noun: str = "pull request",
) -> str:
    """A Sentry comment in the contract poll reads back (`markers.state_comment`: the
    `[sentry-autofix:<state>]` tag first). The run URL keeps each one unique (Sentry refuses an
    identical comment within an hour)."""
    lines = []
    link = safe_url(url)
    if link:
        lines.append(link)
    if detail:
        # Sentry renders notes as markdown and notifies `@member`s: the same escaping as GitHub.
        lines.append(inline(detail, 300))
    return neutral.clean(state_comment(state, "\n".join(lines), link=safe_url(run_url), noun=noun))
