"""The `sentry-autofix` command: parse flags, build settings and collaborators, call the pipeline.

Machine-readable output goes to stdout; logs and progress to stderr. Exit codes: 0 ok, 1 error,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO, cast

from sentry_autofix import __version__, neutral
from sentry_autofix.errors import AutofixError

if TYPE_CHECKING:  # the settings module is imported lazily: `--help` and `--version` stay instant
    from sentry_autofix.config import Settings


def _add_event_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--issue", metavar="ID", help="Sentry issue id (numeric, or a short id like APP-1F)")
    src.add_argument(
        "--event-file",
        metavar="FILE",
        help="a Sentry event JSON (API 'latest event', ingestion/webhook shape) or a whole webhook body; "
        "'-' reads stdin",
    )
    src.add_argument(
        "--traceback",
        metavar="FILE",
        help="a stack trace as the program printed it ('-' reads stdin): Python, Node, Java/Kotlin, Go, Ruby, "
        "PHP or .NET, raw or inside log lines (CloudWatch, Docker, journald), JSON log records or a Slack "
        "message; the last traceback in the text is used. E.g. `docker logs web 2>&1 | tail -n 200 | "
        "sentry-autofix triage --traceback -`",
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
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    triage = sub.add_parser("triage", help="map an error onto the workspace and report (no LLM)")
    _add_event_args(triage)
    triage.add_argument("--format", choices=["markdown", "json"], default="markdown")
    triage.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    triage.set_defaults(handler=_triage)

    run = sub.add_parser(
        "run",
        help="the GitHub Action's / GitLab component's entry: fix-and-deliver or triage the issue named by the "
        "triggering event",
        description="Reads GITHUB_EVENT_NAME/GITHUB_EVENT_PATH (repository_dispatch "
        "client_payload.issue_id, workflow_dispatch inputs.issue_id) or SENTRY_AUTOFIX_ISSUE_ID (under GitLab CI: "
        "the pipeline variable, CI_PIPELINE_SOURCE), then opens a fix PR/MR or a triage issue. Ends with "
        "`status: <status>`.",
    )
    run.add_argument("--workspace", metavar="DIR", help="the checked-out repository (default: GITHUB_WORKSPACE or .)")
    run.add_argument("--issue", metavar="ID", help="Sentry issue id; wins over the event (env SENTRY_AUTOFIX_ISSUE_ID)")
    run.add_argument("--mode", choices=["fix", "triage"], help="env SENTRY_AUTOFIX_MODE (default fix)")
    run.add_argument(
        "--dry-run", action="store_true", default=None, help="touch no remote (env SENTRY_AUTOFIX_DRY_RUN)"
    )
    run.set_defaults(handler=_run)

    # --- fix (issue 3: the fix agent) ---
    fix = sub.add_parser("fix", help="let the agent fix the error in the workspace and run the tests")
    _add_event_args(fix)
    fix.add_argument("--dry-run", action="store_true", help="print the diff and PR text; leave the workspace as found")
    fix.add_argument(
        "--test-command",
        metavar="CMD",
        help="shell command running the tests (env SENTRY_AUTOFIX_TEST_COMMAND)",
    )
    fix.add_argument("--test-timeout", type=float, metavar="S", help="seconds before the tests are killed")
    fix.add_argument("--llm", choices=["anthropic", "openai"], help="model provider (env SENTRY_AUTOFIX_LLM)")
    fix.add_argument("--model", metavar="NAME", help="model name (env SENTRY_AUTOFIX_MODEL)")
    fix.add_argument("--max-turns", type=int, metavar="N", help="agent turn cap (env SENTRY_AUTOFIX_MAX_TURNS)")
    fix.add_argument("--max-tokens", type=int, metavar="N", help="token budget (env SENTRY_AUTOFIX_MAX_TOKENS)")
    fix.add_argument("--max-cost", type=float, metavar="USD", help="cost budget (env SENTRY_AUTOFIX_MAX_COST)")
    fix.add_argument(
        "--blocked-path",
        action="append",
        metavar="GLOB",
        help="extra path the agent may not edit (repeatable)",
    )
    fix.set_defaults(handler=_fix)

    ev = sub.add_parser(
        "eval",
        help="backtest the fix on your own resolved errors: table, JSONL and job summary of the scores",
        description="Replays errors a human fixed (Sentry issues resolved in a commit, or a --cases folder): "
        "per case a throwaway worktree at the fix's parent, `fix --dry-run` with the configured model, then "
        "scores: suspects vs the human fix's files, the human fix's tests on the agent's patch, tests, "
        "turns, tokens, cost, time. Resumable: cases already in --out are skipped. See docs/eval.md.",
    )
    ev.add_argument("--cases", metavar="DIR", help="case folders (<id>/event.json + case.json) instead of Sentry")
    ev.add_argument("--workspace", metavar="DIR", default=".", help="the repository, with its history (default: .)")
    ev.add_argument(
        "--out", metavar="FILE", default="eval-results.jsonl", help="per-case JSON lines (default: %(default)s)"
    )
    ev.add_argument("--summary", metavar="FILE", help="append the markdown summary here (default: GITHUB_STEP_SUMMARY)")
    ev.add_argument(
        "--since", metavar="PERIOD", default="90d", help="Sentry issues seen within, e.g. 30d, 12w (default: 90d)"
    )
    ev.add_argument("--limit", type=int, metavar="N", default=20, help="at most N cases (default: 20)")
    ev.add_argument("--case", action="append", metavar="ID", help="run only this case (repeatable; a --matrix entry)")
    ev_mode = ev.add_mutually_exclusive_group()
    ev_mode.add_argument("--matrix", action="store_true", help='print {"include": [{"case": ID}, ...]} and exit')
    ev_mode.add_argument("--report", action="store_true", help="run nothing: table and summary of --out (fan-in)")
    ev.add_argument("--llm", choices=["anthropic", "openai"], help="model provider (env SENTRY_AUTOFIX_LLM)")
    ev.add_argument("--model", metavar="NAME", help="model name (env SENTRY_AUTOFIX_MODEL)")
    ev.add_argument(
        "--test-command", metavar="CMD", help="shell command running the tests (env SENTRY_AUTOFIX_TEST_COMMAND)"
    )
    ev.add_argument("--max-cost", type=float, metavar="USD", help="cost budget per case (env SENTRY_AUTOFIX_MAX_COST)")
    ev.add_argument("--sentry-url", metavar="URL", help="Sentry base URL (env SENTRY_URL)")
    ev.add_argument("--org", metavar="SLUG", help="Sentry organization slug (env SENTRY_ORG)")
    ev.add_argument(
        "--project", action="append", metavar="SLUG", help="Sentry project (repeatable; env SENTRY_PROJECTS)"
    )
    ev.set_defaults(handler=_eval)

    poll = sub.add_parser(
        "poll",
        help="list Sentry issues worth fixing now; print a matrix or start one run per issue",
        description="Pick unresolved Sentry issues that match the filters and are not handled yet. "
        "Flags override the SENTRY_AUTOFIX_POLL_* settings.",
    )
    out = poll.add_mutually_exclusive_group()
    out.add_argument(
        "--matrix",
        action="store_true",
        help='print {"include": [...]} for strategy.matrix (and set the `matrix` output under Actions)',
    )
    out.add_argument(
        "--dispatch",
        action="store_true",
        help="start one run per issue: repository_dispatch on GitHub, a triggered pipeline on GitLab",
    )
    poll.add_argument(
        "--project", action="append", metavar="SLUG", help="Sentry project slug or id (repeatable; env SENTRY_PROJECTS)"
    )
    poll.add_argument("--max-issues", type=int, metavar="N", help="issues to pick (1-256; default 5)")
    poll.add_argument("--min-events", type=int, metavar="N", help="at least N events within --period (default 1)")
    poll.add_argument("--period", metavar="PERIOD", help="window for --min-events, e.g. 24h, 14d (default 24h)")
    poll.add_argument("--level", action="append", metavar="LEVEL", help="error, fatal, ... (repeatable or comma list)")
    poll.add_argument("--priority", action="append", metavar="P", help="high, medium, low (repeatable or comma list)")
    poll.add_argument("--environment", action="append", metavar="ENV", help="count events in this environment only")
    poll.add_argument("--query", metavar="TERMS", help="extra Sentry search terms, e.g. 'release:1.2.0'")
    poll.add_argument("--no-claim", action="store_true", help="do not post an `in progress` comment on picked issues")
    poll.add_argument(
        "--source",
        choices=["sentry", "cloudwatch", "rollbar", "datadog"],
        help="where to look for errors (env SENTRY_AUTOFIX_SOURCE, default sentry); see docs/sources.md",
    )
    poll.add_argument("--sentry-url", metavar="URL", help="Sentry base URL (env SENTRY_URL)")
    poll.add_argument("--org", metavar="SLUG", help="Sentry organization slug (env SENTRY_ORG)")
    poll.set_defaults(handler=_poll)
    relay = sub.add_parser("relay", help="the Sentry webhook → repository_dispatch / GitLab pipeline relay")
    relay_sub = relay.add_subparsers(dest="relay_command", metavar="RELAY_COMMAND")
    relay_serve = relay_sub.add_parser(
        "serve",
        help="serve POST /webhooks/sentry and GET /health (waitress worker processes; SIGTERM stops gracefully)",
    )
    relay_serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    relay_serve.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: 8080)")
    relay_serve.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads per worker process (env SENTRY_AUTOFIX_RELAY_THREADS, default 8)",
    )
    relay_serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes (env SENTRY_AUTOFIX_RELAY_WORKERS, default 2)",
    )
    relay_serve.add_argument(
        "--server", choices=["gunicorn", "waitress"], help="WSGI server (env SENTRY_AUTOFIX_RELAY_SERVER)"
    )
    relay_serve.add_argument(
        "--db", metavar="FILE|URL", help="SQLite outbox file or postgresql:// URL (env SENTRY_AUTOFIX_RELAY_DB)"
    )
    relay_serve.set_defaults(handler=_relay_serve)

    return parser


def _run(args: argparse.Namespace) -> int:
    from sentry_autofix.config import load_settings
    from sentry_autofix.errors import ConfigError
    from sentry_autofix.run import run_command, settings_error

    try:
        settings = load_settings(sentry_issue_id=args.issue, mode=args.mode, dry_run=args.dry_run)
    except ConfigError as exc:
        return settings_error(exc)
    return run_command(args, settings)


def _settings_from(args: argparse.Namespace) -> Settings:
    from sentry_autofix.config import load_settings

    return load_settings(
        sentry_url=getattr(args, "sentry_url", None),
        sentry_org=getattr(args, "org", None),
        source_roots=getattr(args, "source_root", None),
        path_map=getattr(args, "path_map", None),
        error_source=getattr(args, "source", None),
    )


def _triage(args: argparse.Namespace) -> int:
    from sentry_autofix.pipeline import triage_command

    return triage_command(args, _settings_from(args))


def _fix(args: argparse.Namespace) -> int:
    from sentry_autofix.config import load_settings
    from sentry_autofix.fix import fix_command

    settings = load_settings(
        sentry_url=args.sentry_url,
        sentry_org=args.org,
        source_roots=args.source_root,
        path_map=args.path_map,
        test_command=args.test_command,
        test_timeout=args.test_timeout,
        llm=args.llm,
        model=args.model,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        max_cost_usd=args.max_cost,
        blocked_paths=args.blocked_path,
    )
    return fix_command(args, settings)


def _eval(args: argparse.Namespace) -> int:
    from sentry_autofix.config import load_settings
    from sentry_autofix.eval import eval_command

    settings = load_settings(
        sentry_url=args.sentry_url,
        sentry_org=args.org,
        sentry_projects=args.project,
        test_command=args.test_command,
        llm=args.llm,
        model=args.model,
        max_cost_usd=args.max_cost,
    )
    return eval_command(args, settings)


def _poll(args: argparse.Namespace) -> int:
    from sentry_autofix.poll import poll_command

    return poll_command(args, _settings_from(args))


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


def _neutral_std_streams() -> None:
    """Put stdout and stderr behind `neutral.NeutralStream`, once, for the whole process.

    The one choke point per stream: our prints, the logging module's handlers, warnings, a
    library's chatter and a `--debug` traceback all quote hostile text (Sentry data, model output)
    and all end up here, so no line of the job log can start a workflow command or carry
    terminal escapes, and a lone surrogate cannot crash a print. Only `actions.Runner` writes
    commands, through `NeutralStream.command`.
    """
    sys.stdout = cast(TextIO, neutral.stream(sys.stdout))
    sys.stderr = cast(TextIO, neutral.stream(sys.stderr))


def main(argv: Sequence[str] | None = None) -> int:
    _neutral_std_streams()
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
    except Exception as exc:  # the edge: a bug of ours becomes one line, not a traceback
        if args.debug:
            raise
        print(
            f"sentry-autofix: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            file=sys.stderr,
        )
        return 1
