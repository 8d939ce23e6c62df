"""The one place that orders the steps: fetch → locate → (fix → test → deliver → notify).

Commands receive their collaborators (error source, code host, LLM) so every path is testable with
fakes; only `cli.main()` builds the real ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, InputError
from sentry_autofix.models import ErrorEvent
from sentry_autofix.sources import ErrorSource
from sentry_autofix.sources.sentry_event import load_document
from sentry_autofix.triage import build_triage, render_markdown, to_json


def resolve_workspace(raw: str | None) -> Path:
    path = Path(raw or ".")
    if not path.is_dir():
        raise InputError(f"--workspace {raw}: no such directory")
    return path.resolve()


def fetch_event(args: argparse.Namespace, settings: Settings, source: ErrorSource | None) -> ErrorEvent:
    """The event to work on: from `--event-file` offline, or from Sentry by `--issue`."""
    if getattr(args, "event_file", None):
        doc = load_document(args.event_file)
        if doc.event is not None:
            return doc.event
        if doc.issue is None:
            raise InputError(f"{args.event_file} is a `{doc.kind}` document, which carries no error event")
        if source is None:
            raise InputError(
                f"{args.event_file} describes Sentry issue {doc.issue.id} but holds no stack trace; "
                "set SENTRY_AUTH_TOKEN and SENTRY_ORG to fetch its latest event"
            )
        return source.latest_event(doc.issue.id)
    if source is None:
        raise ConfigError("--issue needs Sentry access: set SENTRY_AUTH_TOKEN (and SENTRY_ORG)")
    return source.latest_event(str(args.issue))


def make_source(settings: Settings) -> ErrorSource | None:
    if settings.sentry_auth_token is None:
        return None
    from sentry_autofix.sources.sentry import SentryClient

    return SentryClient(settings)


def triage_command(args: argparse.Namespace, settings: Settings, source: ErrorSource | None = None) -> int:
    workspace = resolve_workspace(args.workspace)
    source = source or make_source(settings)
    event = fetch_event(args, settings, source)
    print(f"sentry-autofix: mapping {event.headline[:120]!r} onto {workspace}", file=sys.stderr)
    report = build_triage(event, workspace, settings)
    mapped = sum(1 for f in report.frames if f.path)
    print(
        f"sentry-autofix: {mapped}/{len(report.frames)} frames mapped, {len(report.suspects)} suspect files, "
        f"{len(report.suspect_commits)} suspect commits",
        file=sys.stderr,
    )
    text = json.dumps(to_json(report), indent=2) + "\n" if args.format == "json" else render_markdown(report)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write --out {args.out}: {exc.strerror}") from exc
        print(f"sentry-autofix: report written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
