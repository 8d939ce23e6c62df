"""PR, issue, job-summary and Sentry-comment text (SPEC §7), with untrusted text neutralised.

Everything that came from Sentry or from the model is attacker-controllable: an error message
can be chosen by whoever can make the app throw. Before it reaches a GitHub body it is either
escaped for inline use (`inline`) or fenced (`fence`), so it cannot
* notify people (`@user`, `@org/team`),
* inject HTML (`<img src=…>` trackers, `</details>` that breaks our layout),
* link to non-http(s) schemes (`javascript:`, `data:`),
* forge our dedup marker (`<!-- sentry-autofix:issue=… -->`), which would hijack another issue.
Bodies stay under GitHub's 65,536-character limit: long parts are cut with a note, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from sentry_autofix.markers import CommentState, state_comment
from sentry_autofix.models import ErrorEvent, FixResult, TriageReport
from sentry_autofix.redact import redact_text
from sentry_autofix.sources import ISSUE_REF

BODY_LIMIT = 65_536
"""GitHub rejects issue/PR bodies longer than this (422 `body is too long`)."""
_BODY_BUDGET = BODY_LIMIT - 2_000
"""Room kept for the truncation note, the marker and multi-byte surprises."""

MARKER_RE = re.compile(rf"<!--\s*sentry-autofix:issue=({ISSUE_REF})\s*-->")
_MARKERISH = re.compile(r"sentry-autofix\s*:\s*issue", re.IGNORECASE)
_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def marker(issue_id: str) -> str:
    """The hidden dedup marker (SPEC §11); the only place it is spelled."""
    return f"<!-- sentry-autofix:issue={issue_id} -->"


def find_marker(body: str | None) -> str | None:
    """The Sentry issue id named by the marker in a body we wrote, if any."""
    match = MARKER_RE.search(body or "")
    return match.group(1) if match else None


def _defuse_marker(text: str) -> str:
    return _MARKERISH.sub("sentry-autofix (issue)", text)


def safe_url(url: str | None) -> str | None:
    """The URL if it is a plain http(s) link we can put in markdown, else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if any(c in url for c in " <>\"'`()[]\\\n\r\t"):
        return None
    return url


def inline(text: str | None, limit: int = 300) -> str:
    """Untrusted text for a single line of markdown: escaped, mention-proof, one line, capped."""
    if not text:
        return ""
    text = redact_text(_CONTROL.sub("", text))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _defuse_marker(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Backslash-escape markdown that could make links/images/tables/code out of data.
    text = re.sub(r"([\\`*_\[\]|!#~])", r"\\\1", text)
    # A zero-width joiner after @ keeps the text readable but stops GitHub from notifying.
    return _MENTION.sub("@&#8203;", text)


def fence(text: str | None, lang: str = "", limit: int = 8_000) -> str:
    """Untrusted multi-line text inside a code fence no content can close."""
    text = redact_text(_CONTROL.sub("", text or ""))
    if len(text) > limit:
        text = "…(cut)…\n" + text[-limit:]
    text = _defuse_marker(text)
    longest = max((len(m) for m in re.findall(r"`+|~+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


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
    return clamp(body).rstrip("\n") + "\n\n" + marker(issue_id) + "\n"


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


def _tests_block(fix: FixResult) -> str:
    t = fix.tests
    if t.status == "not-run":
        return "⚪ **not run** — no test command is configured (`test-command`)."
    cmd = f" (`{inline(t.command, 200).replace('`', '')}`)" if t.command else ""
    if t.status == "passed":
        return f"✅ **passed**{cmd} in {t.seconds:.0f}s."
    tail = fence(t.output_tail, limit=4_000) if t.output_tail else ""
    return f"❌ **failed**{cmd}, exit code {t.exit_code}. Last lines:\n\n{tail}"


def _files_table(fix: FixResult) -> str:
    if not fix.files:
        return "_no file changed_"
    rows = ["| file | + | − |", "|---|---:|---:|"]
    for f in fix.files:
        note = " (new)" if f.is_new else " (deleted)" if f.is_deleted else ""
        rows.append(f"| `{f.path.replace('`', '')}`{note} | {f.added} | {f.removed} |")
    return "\n".join(rows)


# --- PR -----------------------------------------------------------------------------------------


def pr_title(event: ErrorEvent, fix: FixResult) -> str:
    title = fix.pr_title or f"Fix {event.headline}"
    # Titles are plain text on GitHub (no markdown), but still carry mentions into notifications.
    title = _MENTION.sub("@\u200b", _defuse_marker(" ".join(_CONTROL.sub("", title).split())))
    return (title[:117] + "…") if len(title) > 120 else title


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
    text = f"[{project}] {event.headline}"
    text = _MENTION.sub("@\u200b", _defuse_marker(" ".join(_CONTROL.sub("", text).split())))
    return (text[:117] + "…") if len(text) > 120 else text


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
            path = (f.path or "").replace("`", "")
            loc = f"`{path}`"
            if blob_base and f.line:
                loc = f"[`{path}`]({blob_base}/{path}#L{f.line})"
            rows.append(f"| {i} | {loc} | {f.line or ''} | {inline(f.function, 80)} | {'yes' if f.in_app else ''} |")
        parts += ["## Where it happens (crashing frame first)", "\n".join(rows)]
    if report.suspects:
        rows = ["| file | line | function | score |", "|---|---:|---|---:|"]
        for s in report.suspects[:10]:
            rows.append(f"| `{s.path.replace('`', '')}` | {s.line or ''} | {inline(s.function, 80)} | {s.score:.2f} |")
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
                f"| {c.short_sha} | {inline(c.author, 60)} | {c.date.date().isoformat()} | {inline(c.summary, 120)} |"
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
    return text


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
        lines.append(f"**Branch**: `{branch}`")
    if url:
        lines.append(f"**Link**: {url}")
    return "\n\n".join(lines) + "\n"


def sentry_comment(
    state: CommentState, *, url: str | None = None, run_url: str | None = None, detail: str | None = None
) -> str:
    """A Sentry comment in the contract poll reads back (`markers.state_comment`: the
    `[sentry-autofix:<state>]` tag first). The run URL keeps each one unique (Sentry refuses an
    identical comment within an hour)."""
    lines = []
    if url and safe_url(url):
        lines.append(url)
    if detail:
        lines.append(" ".join(redact_text(detail).split())[:300])
    return state_comment(state, "\n".join(lines), link=run_url)
