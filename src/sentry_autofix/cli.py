"""The `sentry-autofix` command: parse flags, build settings and collaborators, call the pipeline.

Machine-readable output goes to stdout; logs and progress to stderr. Exit codes: 0 ok, 1 error,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sentry_autofix import __version__
from sentry_autofix.errors import AutofixError


def _add_event_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--issue", metavar="ID", help="Sentry issue id (numeric, or a short id like APP-1F)")
    src.add_argument(
        "--event-file",
        metavar="FILE",
        help="a Sentry event JSON (API 'latest event', ingestion/webhook shape) or a whole webhook body; "
        "'-' reads stdin",
    )
    p.add_argument("--workspace", metavar="DIR", default=".", help="the checked-out repository (default: .)")
    p.add_argument("--sentry-url", metavar="URL", help="Sentry base URL (env SENTRY_URL)")
    p.add_argument("--org", metavar="SLUG", help="Sentry organization slug (env SENTRY_ORG)")
    p.add_argument(
        "--source-root",
        action="append",
        metavar="DIR",
        help="repo folder preferred when a file could be in several places (repeatable)",
    )
    p.add_argument(
        "--path-map",
        action="append",
        metavar="FROM=TO",
        help="map a deployed path prefix onto a repo prefix, e.g. /srv/app/=services/api/ (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentry-autofix",
        description="Turn Sentry production errors into reviewed fix pull requests, in your own CI.",
    )
    parser.add_argument("--version", action="version", version=f"sentry-autofix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    triage = sub.add_parser("triage", help="map an error onto the workspace and report (no LLM)")
    _add_event_args(triage)
    triage.add_argument("--format", choices=["markdown", "json"], default="markdown")
    triage.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    triage.set_defaults(handler=_triage)

    relay = sub.add_parser("relay", help="the Sentry webhook → repository_dispatch relay")
    relay_sub = relay.add_subparsers(dest="relay_command", metavar="RELAY_COMMAND")
    relay_serve = relay_sub.add_parser(
        "serve",
        help="serve POST /webhooks/sentry and GET /health (waitress, threads; SIGTERM stops gracefully)",
    )
    relay_serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    relay_serve.add_argument(
        "--port", type=int, default=8080, help="port; 0 picks a free one (default: 8080)"
    )
    relay_serve.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="worker threads (env SENTRY_AUTOFIX_RELAY_THREADS, default 8)",
    )
    relay_serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes, gunicorn only (env SENTRY_AUTOFIX_RELAY_WORKERS)",
    )
    relay_serve.add_argument(
        "--server", choices=["gunicorn", "waitress"], help="WSGI server (env SENTRY_AUTOFIX_RELAY_SERVER)"
    )
    relay_serve.add_argument("--db", metavar="FILE", help="SQLite outbox file (env SENTRY_AUTOFIX_RELAY_DB)")
    relay_serve.set_defaults(handler=_relay_serve)

    return parser


def _settings_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sentry_autofix.config import load_settings

    return load_settings(
        sentry_url=getattr(args, "sentry_url", None),
        sentry_org=getattr(args, "org", None),
        source_roots=getattr(args, "source_root", None),
        path_map=getattr(args, "path_map", None),
    )


def _triage(args: argparse.Namespace) -> int:
    from sentry_autofix.pipeline import triage_command

    return triage_command(args, _settings_from(args))


def _relay_serve(args: argparse.Namespace) -> int:
    from sentry_autofix.config import load_settings
    from sentry_autofix.relay.logs import configure_logging
    from sentry_autofix.relay.server import serve

    settings = load_settings(
        relay_db=args.db, relay_threads=args.threads, relay_workers=args.workers, relay_server=args.server
    )
    configure_logging(settings.relay_log_format)
    return serve(
        settings,
        host=args.host,
        port=args.port,
        threads=settings.relay_threads,
        workers=settings.relay_workers,
        server=settings.relay_server,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except AutofixError as exc:
        print(f"sentry-autofix: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sentry-autofix: interrupted", file=sys.stderr)
        return 130
