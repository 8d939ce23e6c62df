"""Triage: the error mapped onto the workspace, suspects and suspect commits — no LLM.

`build_triage` is what the agent's context and the triage issue stand on; `render_markdown` and
`to_json` are the two report formats of `sentry-autofix triage` (JSON per SPEC §3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentry_autofix.config import Settings
from sentry_autofix.models import ErrorEvent, TriageReport
from sentry_autofix.neutral import clean, md_code, md_fence, md_text, safe_url
from sentry_autofix.workspace.guard import PathGuard
from sentry_autofix.workspace.mapping import MapOptions, WorkspaceIndex, map_event
from sentry_autofix.workspace.suspects import rank, suspect_commits

CODE_WINDOWS = 3


def build_triage(
    event: ErrorEvent, workspace: Path, settings: Settings, index: WorkspaceIndex | None = None
) -> TriageReport:
    # Every byte of code in the report is read through the guard (tracked files, secret globs,
    # symlinks resolved): the report becomes a GitHub issue and the model's context.
    index = index or WorkspaceIndex.scan(workspace, PathGuard.from_settings(workspace, settings))
    options = MapOptions(source_roots=tuple(settings.source_roots), prefix_map=tuple(settings.prefix_map))
    frames = map_event(event, index, options)
    suspects = rank(event, frames, index.root, index.lines)
    commits = suspect_commits(index.root, event, suspects)
    windows = {
        f"{s.path}:{s.line}": index.window(s.path, s.line)
        for s in suspects[:CODE_WINDOWS]
        if s.line is not None and index.lines(s.path)
    }
    return TriageReport(event=event, frames=frames, suspects=suspects, suspect_commits=commits, code_windows=windows)


def issue_summary(event: ErrorEvent) -> dict[str, Any]:
    issue = event.issue
    return {
        "id": (issue.id if issue else None) or event.issue_id,
        "short_id": (issue.short_id if issue else None) or event.short_id,
        "title": (issue.title if issue else None) or event.title or event.headline,
        "permalink": (issue.permalink if issue else None) or event.permalink,
        "project": issue.project if issue else None,
        "level": (issue.level if issue else None) or event.level,
        "status": issue.status if issue else None,
        "substatus": issue.substatus if issue else None,
        "priority": issue.priority if issue else None,
        "count": issue.count if issue else None,
        "user_count": issue.user_count if issue else None,
        "first_seen": issue.first_seen.isoformat() if issue and issue.first_seen else None,
        "last_seen": issue.last_seen.isoformat() if issue and issue.last_seen else None,
        "platform": event.platform or (issue.platform if issue else None),
        "environment": event.environment,
        "release": event.release,
        "event_id": event.event_id,
    }


def to_json(report: TriageReport) -> dict[str, Any]:
    event = report.event
    return {
        "issue": issue_summary(event),
        "error": {
            "headline": event.headline,
            "type": event.crashing_exception.type if event.crashing_exception else None,
            "value": event.crashing_exception.value if event.crashing_exception else event.message,
        },
        "exceptions": [
            {"type": e.type, "value": e.value, "mechanism": e.mechanism.type if e.mechanism else None}
            for e in event.exceptions
        ],
        "frames": [
            {
                "path": f.path,
                "line": f.line,
                "function": f.function,
                "in_app": f.in_app,
                "original_path": f.original_path,
                "exception_index": f.exception_index,
                "verified": f.verified,
                "reason": f.reason,
            }
            for f in report.frames
        ],
        "suspects": [s.model_dump() for s in report.suspects],
        "suspect_commits": [c.model_dump(mode="json") for c in report.suspect_commits],
    }


def _code(text: str | None) -> str:
    """Inline code that untrusted text cannot break out of (nor out of a table cell)."""
    return md_code(text, 500)


def _lang(path: str) -> str:
    return {
        ".py": "python",
        ".js": "javascript",
        ".ts": "typescript",
        ".tsx": "tsx",
        ".jsx": "jsx",
        ".java": "java",
        ".kt": "kotlin",
        ".go": "go",
        ".rb": "ruby",
        ".php": "php",
        ".cs": "csharp",
    }.get(Path(path).suffix, "")


def render_markdown(report: TriageReport) -> str:
    """The report as markdown. Sentry data, file names and code are untrusted: inline code,
    escaped text or fences only (`sentry_autofix.neutral`), and the result is `clean`."""
    event = report.event
    info = issue_summary(event)
    out: list[str] = [f"# {_code(event.headline)}", ""]
    facts = []
    if info["short_id"] or info["id"]:
        label = md_text(info["short_id"] or info["id"], 100)
        link = safe_url(info["permalink"])
        facts.append(f"Sentry issue [{label}]({link})" if link else f"Sentry issue {label}")
    for key in ("project", "level", "environment", "release", "platform"):
        if info[key]:
            facts.append(f"{key}: {_code(str(info[key]))}")
    if info["count"] is not None:
        facts.append(f"{info['count']} events" + (f", {info['user_count']} users" if info["user_count"] else ""))
    if info["first_seen"]:
        facts.append(f"first seen {info['first_seen']}")
    if info["last_seen"]:
        facts.append(f"last seen {info['last_seen']}")
    if facts:
        out += [" · ".join(facts), ""]

    if len(event.exceptions) > 1:
        out += ["## Exception chain (root cause first)", ""]
        for i, exc in enumerate(event.exceptions):
            role = " — root cause" if i == 0 else (" — surfaced" if i == len(event.exceptions) - 1 else "")
            out.append(f"{i + 1}. {_code(f'{exc.type}: {exc.value}' if exc.value else exc.type)}{role}")
        out.append("")

    out += ["## Where to look", ""]
    if report.suspects:
        out += ["| # | file | line | function | score | why |", "|---|---|---|---|---|---|"]
        for i, s in enumerate(report.suspects[:10], 1):
            out.append(
                f"| {i} | {_code(s.path)} | {s.line or ''} | {_code(', '.join(s.functions) or s.function)} | "
                f"{s.score:.2f} | {md_text('; '.join(s.reasons), 500)} |"
            )
        out.append("")
        for key, window in report.code_windows.items():
            path = key.rsplit(":", 1)[0]
            out += [f"### {_code(key)}", "", md_fence(window, _lang(path), 20_000), ""]
    else:
        out += ["No frame of this error maps onto a file of the workspace.", ""]

    crash_idx = len(event.exceptions) - 1
    frames = [f for f in report.frames if f.exception_index == crash_idx]
    if frames:
        out += ["## Stack of the surfaced exception (newest call last)", ""]
        out += ["| function | reported path | workspace | in app |", "|---|---|---|---|"]
        for f in frames[-25:]:
            where = _code(f"{f.path}:{f.line}") if f.path else f"unmapped ({md_text(f.reason, 300)})"
            reported = _code(f.original_path) if f.original_path else ""
            out.append(f"| {_code(f.function)} | {reported} | {where} | {'yes' if f.in_app else ''} |")
        out.append("")

    out += ["## Suspect commits", ""]
    if report.suspect_commits:
        out += ["| commit | author | date | summary | why |", "|---|---|---|---|---|"]
        for c in report.suspect_commits:
            out.append(
                f"| {_code(c.short_sha)} | {_code(c.author)} | {c.date.date().isoformat()} | {_code(c.summary)} | "
                f"{md_text('; '.join(c.reasons), 500)} |"
            )
    else:
        out.append("None found (no history before the issue was first seen, or no mapped lines).")
    out.append("")

    if event.breadcrumbs:
        out += ["## Last breadcrumbs", ""]
        for b in event.breadcrumbs[-10:]:
            label = md_text(" ".join(x for x in (b.timestamp, b.category, b.level) if x), 200)
            out.append(f"- {label}: {_code(b.message or ', '.join(f'{k}={v}' for k, v in b.data.items()))}")
        out.append("")
    if event.request and (event.request.method or event.request.url):
        line = " ".join(x for x in (event.request.method, event.request.url) if x)
        out += ["## Request", "", _code(line), ""]

    unmapped = [f for f in report.frames if f.path is None]
    out.append(
        f"_{len(report.frames) - len(unmapped)} of {len(report.frames)} frames mapped onto the workspace; "
        f"unmapped frames are reported, never guessed._"
    )
    return clean("\n".join(out)) + "\n"
