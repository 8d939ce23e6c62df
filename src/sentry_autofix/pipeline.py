"""The one place that orders the steps: fetch → locate → fix → test → deliver → notify.

`triage_command` is the first two (no LLM); `Pipeline.run` is all of them for one issue. Both
receive their collaborators (error source, code host, fixer, runner), so every path is testable
with fakes; only the commands (`run.run_command`, `cli`) build the real ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from sentry_autofix.actions import Runner, scrub
from sentry_autofix.config import Settings
from sentry_autofix.delivery import CodeHost, Existing, HostItem
from sentry_autofix.delivery import body as bodies
from sentry_autofix.errors import AutofixError, ConfigError, Conflict, InputError
from sentry_autofix.markers import CommentState
from sentry_autofix.models import ErrorEvent, FixResult, RunStatus, TestOutcome, TriageReport
from sentry_autofix.notify import Notification, NotificationKind, Notifier, notify_all
from sentry_autofix.sources import ErrorSource
from sentry_autofix.sources.sentry import SentryClient
from sentry_autofix.sources.sentry_event import load_document
from sentry_autofix.sources.traceback_text import load_traceback
from sentry_autofix.triage import build_triage, render_markdown, to_json
from sentry_autofix.workspace import branch as git_branch
from sentry_autofix.workspace.testids import caused_failure
from sentry_autofix.workspace.testrunner import executor_for

_CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


def resolve_workspace(raw: str | None) -> Path:
    path = Path(raw or ".")
    if not path.is_dir():
        raise InputError(f"--workspace {raw}: no such directory")
    return path.resolve()


def fetch_event(args: argparse.Namespace, settings: Settings, source: ErrorSource | None) -> ErrorEvent:
    """The event to work on: from `--event-file` or `--traceback` offline, or from Sentry by `--issue`."""
    if getattr(args, "traceback", None):
        return load_traceback(args.traceback)
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


class Fixer(Protocol):
    """Produces a fix in the workspace files (the agent); the change is what `git diff` says."""

    def fix(self, report: TriageReport, workspace: Path, settings: Settings) -> FixResult: ...


Locator = Callable[[ErrorEvent, Path, Settings], TriageReport]
"""Maps the error onto the workspace: `sentry_autofix.triage.build_triage`."""


@dataclass
class Outcome:
    """What the run did; becomes the outputs, the summary and the final `status:` line."""

    status: RunStatus
    message: str = ""
    pr: HostItem | None = None
    issue: HostItem | None = None
    branch: str | None = None
    fix: FixResult | None = None
    event: ErrorEvent | None = None
    exit_code: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def outputs(self) -> dict[str, str]:
        return {
            "status": self.status,
            "pr-url": self.pr.url if self.pr else "",
            "pr-number": str(self.pr.number) if self.pr else "",
            "branch": self.branch or "",
            "issue-url": self.issue.url if self.issue else "",
            "confidence": (self.fix.confidence or "") if self.fix else "",
        }


# --- tests ---------------------------------------------------------------------------------------


def run_test_command(command: str, workspace: Path, settings: Settings) -> TestOutcome:
    """SPEC §11: `sh -c` in the workspace root, in the sandbox (workspace/sandbox.py)."""
    executor = executor_for(workspace, settings)
    try:
        return executor(command)
    finally:
        executor.close()


# --- the pipeline --------------------------------------------------------------------------------


@dataclass
class Collaborators:
    source: ErrorSource
    host: CodeHost | None
    """None in dry-run: nothing remote is touched."""
    locate: Locator
    fixer: Fixer | None
    """None when the agent is not available: fix mode falls back to a triage issue."""
    runner: Runner
    notifiers: Sequence[Notifier] = ()
    """Slack/Discord targets (notify step); a failing one never fails the run."""


def draft_reasons(fix: FixResult, settings: Settings) -> list[str]:
    reasons = []
    # A failure every failing test of which already failed before the change is not the fix's.
    if settings.draft_on_test_failure and caused_failure(fix.baseline_tests, fix.tests) is not False:
        reasons.append("tests failed")
    if settings.draft_on_test_failure and fix.tests.status == "not-run":
        reasons.append("tests were not run")
    if _CONFIDENCE_RANK.get(fix.confidence or "low", 0) < _CONFIDENCE_RANK[settings.min_confidence]:
        reasons.append(f"confidence {fix.confidence or 'unknown'} is below {settings.min_confidence}")
    return reasons


class Pipeline:
    def __init__(self, settings: Settings, workspace: Path, c: Collaborators) -> None:
        self.s = settings
        self.ws = workspace
        self.c = c
        self.run_url = settings.run_url
        self.noun = c.host.noun if c.host is not None else "pull request"
        """What the host calls a pull request (GitLab: merge request), for logs and comments."""

    # notify: best effort, never fails the run (SPEC §7 and issue 4 §5)
    def comment(self, issue_id: str, state: CommentState, url: str | None = None, detail: str | None = None) -> None:
        if not self.s.sentry_comments or self.s.dry_run:
            return
        text = scrub(
            bodies.sentry_comment(
                state,
                url=url,
                run_url=self.run_url,
                detail=detail,
                noun=self.noun,
            ),
            self.s.secret_values(),
        )
        try:
            self.c.source.add_comment(issue_id, text)
        except Exception as exc:  # a comment must never fail the run
            self.c.runner.warning(f"could not comment on the Sentry issue ({type(exc).__name__}: {exc}); continuing")

    def run(self, issue_ref: str) -> Outcome:
        r = self.c.runner
        # fetch
        with r.group(f"Sentry issue {issue_ref}"):
            event = self.c.source.latest_event(issue_ref)
            if event.issue is None:
                event.issue = self.c.source.get_issue(issue_ref)
            issue_id = event.issue.id if event.issue else issue_ref
            r.log_untrusted("Error:", event.headline)
        try:
            return self._run(issue_id, event)
        except AutofixError as exc:
            self.comment(issue_id, "failed", detail=str(exc))
            raise

    def _run(self, issue_id: str, event: ErrorEvent) -> Outcome:
        r = self.c.runner
        # locate
        with r.group("Map the error onto the repository"):
            report = self.c.locate(event, self.ws, self.s)
            crash = bodies.crash_location(report)
            if crash:
                # Annotations are relative to GITHUB_WORKSPACE; the repo may be a folder inside it.
                # Escaped by the runner's command encoding; no newline can start a new command.
                r.annotate(
                    " ".join(event.headline.split())[:500],
                    file=self._annotation_path(crash[0]),
                    line=crash[1],
                    title="Sentry error",
                )
            for s in report.suspects[:5]:
                r.log(f"suspect {s.path}:{s.line or '?'} score {s.score:.2f}")
        short = event.short_id or (event.issue.short_id if event.issue else None)
        branch = git_branch.branch_name(self.s.branch_prefix, short, issue_id)
        existing = Existing()
        if self.c.host is not None and not self.s.dry_run:
            with r.group(f"Look for an existing {self.c.host.noun} or issue"):
                existing = self.c.host.find_existing(issue_id, branch)
                r.log(
                    f"existing {self.c.host.noun}: {existing.pr.url if existing.pr else 'none'}; "
                    f"issue: {existing.issue.url if existing.issue else 'none'}"
                )
        if self.s.mode == "triage":
            return self._triage(issue_id, event, report, existing, reason=None)
        if self.c.fixer is None:
            r.warning("no fix agent in this build: opening a triage issue instead (mode: triage)")
            return self._triage(issue_id, event, report, existing, reason="No fix was attempted.")
        pr = existing.pr
        regression_of = None
        noun = self.noun
        if pr is not None and pr.state == "open" and self.s.on_existing == "skip":
            return Outcome(
                "skipped-duplicate",
                f"fix {noun} already open: {pr.url}",
                pr=pr,
                branch=pr.branch or branch,
                event=event,
            )
        if pr is not None and pr.state == "closed" and not pr.merged:
            return Outcome(
                "skipped-duplicate",
                f"a fix {noun} for this issue was closed without merging: {pr.url}",
                pr=pr,
                branch=branch,
                event=event,
            )
        if pr is not None and pr.merged:
            regression_of = pr.url
            pr = None
        # fix (only now: a duplicate run must not announce itself on the Sentry issue)
        self.comment(issue_id, "in-progress")
        with r.group("Fix"):
            # What was already dirty (build output, the workflow's own steps) is not the fix's.
            before = git_branch.dirty_snapshot(self.ws)
            fix = self.c.fixer.fix(report, self.ws, self.s)
            if fix.root_cause:
                r.log_untrusted("Root cause:", fix.root_cause)
        if fix.status == "error":
            raise AutofixError(f"the fix agent failed: {fix.error or 'no detail'}")
        changed = git_branch.touched_since(self.ws, before)
        # What would be pushed is what is checked: the commit holds exactly `changed`.
        blocked = git_branch.blocked_paths(changed, self.s.all_blocked_paths)
        if fix.status == "skipped-blocked-path" or blocked:
            where = ", ".join(sorted(set(blocked))) or "see log"
            msg = f"the fix touches blocked paths ({where}); nothing pushed"
            r.warning(msg)
            self.comment(issue_id, "skipped", detail=msg)
            return Outcome("skipped-blocked-path", msg, fix=fix, event=event)
        if fix.status == "no-fix" or not changed:
            if self.s.triage_on_no_fix:
                return self._triage(issue_id, event, report, existing, reason="The agent found no fix it trusts.")
            self.comment(issue_id, "no-fix")
            return Outcome("no-fix", "the agent found no fix", fix=fix, event=event)
        # test
        if fix.tests.status == "not-run" and self.s.test_command:
            with r.group("Tests"):
                fix.tests = run_test_command(self.s.test_command, self.ws, self.s)
                r.log(f"tests {fix.tests.status} (exit {fix.tests.exit_code})")
        # SPEC §5: the change is what git says, never the model's description of it.
        fix.diff, fix.files = git_branch.diff_of(self.ws, changed)
        reasons = draft_reasons(fix, self.s)
        title = self._clean(bodies.pr_title(event, fix))
        body = self._clean(
            bodies.render_pr_body(
                event,
                fix,
                issue_id=issue_id,
                draft_reasons=reasons,
                run_url=self.run_url,
                regression_of=regression_of,
            )
        )
        if self.s.dry_run or self.c.host is None:
            r.log_untrusted("Diff:", fix.diff or "(see git diff)")
            r.log_untrusted("Pull request:", f"{title}\n\n{body}")
            return Outcome("dry-run", "dry run: nothing pushed", branch=branch, fix=fix, event=event)
        # deliver
        with r.group(f"Push {branch}"):
            base = self._base()
            git_branch.commit_fix(
                self.ws,
                branch=branch,
                base=base,
                message=title,
                author=self.s.commit_author,
                issue_id=issue_id,
                prefix=self.s.branch_prefix,
                paths=changed,
            )
            user, token = self.c.host.push_auth() or ("", None)
            pushed = git_branch.push_branch(
                self.ws,
                branch=branch,
                base=base,
                prefix=self.s.branch_prefix,
                issue_id=issue_id,
                author=self.s.commit_author,
                token=token,
                user=user,
            )
            r.log(f"branch {branch}: {pushed.outcome} at {pushed.sha[:12]}")
        if pr is not None and pr.state == "open":
            if pushed.outcome == "unchanged":
                return Outcome(
                    "skipped-duplicate",
                    f"same fix already proposed: {pr.url}",
                    pr=pr,
                    branch=branch,
                    fix=fix,
                    event=event,
                )
            return self._update(self.c.host, issue_id, pr.number, title, body, branch, fix, event)
        with r.group(f"Open the {self.c.host.noun}"):
            try:
                item = self.c.host.open_pull_request(
                    branch=branch, base=base, title=title, body=body, draft=bool(reasons), labels=self.s.labels
                )
            except Conflict as exc:
                # An overlapping run opened it after our lookup, and our push just replaced its
                # branch: the text must describe the code that is there now.
                number = exc.number
                if number is None:
                    pr = self.c.host.find_existing(issue_id, branch).pr
                    if pr is None or pr.state != "open":
                        raise
                    number = pr.number
                return self._update(self.c.host, issue_id, number, title, body, branch, fix, event)
            if reasons:
                r.log(f"draft because {', '.join(reasons)}")
        if self.s.ci_workflow:
            try:
                self.c.host.dispatch_workflow(self.s.ci_workflow, branch)
            except AutofixError as exc:
                r.warning(f"could not start {self.s.ci_workflow} on {branch}: {exc}")
        draft = item.draft or bool(reasons)
        self.comment(issue_id, "draft-pr-opened" if draft else "pr-opened", url=item.url)
        status: RunStatus = "draft-pr-opened" if draft else "pr-opened"
        return Outcome(status, f"opened {item.url}", pr=item, branch=branch, fix=fix, event=event)

    def _update(
        self,
        host: CodeHost,
        issue_id: str,
        number: int,
        title: str,
        body: str,
        branch: str,
        fix: FixResult,
        event: ErrorEvent,
    ) -> Outcome:
        item = host.update_pull_request(number, title=title, body=body, labels=self.s.labels)
        self.comment(issue_id, "draft-pr-opened" if item.draft else "pr-opened", url=item.url, detail="updated")
        return Outcome("pr-updated", f"updated {item.url}", pr=item, branch=branch, fix=fix, event=event)

    def _annotation_path(self, path: str) -> str:
        root = self.s.github_workspace
        if not root:
            return path
        try:
            prefix = self.ws.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return path
        return path if prefix in ("", ".") else f"{prefix}/{path}"

    def _clean(self, text: str) -> str:
        """Configured secrets never reach GitHub, whatever the model or Sentry put in the text."""
        return scrub(text, self.s.secret_values())

    def _base(self) -> str:
        base = self.s.base_branch or git_branch.current_branch(self.ws)
        if not base and self.c.host is not None:
            base = self.c.host.default_branch()
        if not base:
            raise ConfigError("cannot tell the base branch: set the base-branch input (SENTRY_AUTOFIX_BASE_BRANCH)")
        return base

    def _triage(
        self, issue_id: str, event: ErrorEvent, report: TriageReport, existing: Existing, reason: str | None
    ) -> Outcome:
        r = self.c.runner
        head = git_branch.head_sha(self.ws)
        blob_base = self.c.host.blob_base(head) if head and self.c.host is not None else None
        title = self._clean(bodies.issue_title(event))
        body = self._clean(
            bodies.render_issue_body(
                report, issue_id=issue_id, blob_base=blob_base, run_url=self.run_url, reason=reason
            )
        )
        if self.s.dry_run or self.c.host is None:
            r.log_untrusted("Triage issue:", f"{title}\n\n{body}")
            return Outcome("dry-run", "dry run: no issue opened", event=event)
        issue = existing.issue
        if issue is not None and issue.state == "open":
            return Outcome("skipped-duplicate", f"triage issue already open: {issue.url}", issue=issue, event=event)
        with r.group("Triage issue"):
            if issue is not None:
                item = self.c.host.reopen_issue(
                    issue.number,
                    comment=self._clean(bodies.render_regression_comment(event, run_url=self.run_url)),
                )
                message = f"regression: reopened {item.url}"
            else:
                priority = event.issue.priority if event.issue else None
                labels = [*self.s.issue_labels, bodies.priority_label(priority)]
                item = self.c.host.open_issue(title=title, body=body, labels=labels)
                message = f"opened {item.url}"
        self.comment(issue_id, "issue-opened", url=item.url)
        return Outcome("issue-opened", message, issue=item, event=event)


def finish(outcome: Outcome, runner: Runner, out: TextIO | None = None) -> int:
    """Outputs, job summary and the final `status: <status>` line (SPEC §3, §11)."""
    runner.set_outputs(outcome.outputs())
    url = outcome.pr.url if outcome.pr else outcome.issue.url if outcome.issue else None
    runner.add_summary(
        bodies.render_summary(
            status=outcome.status,
            event=outcome.event,
            fix=outcome.fix,
            url=url,
            branch=outcome.branch,
            message=outcome.message,
        )
    )
    if outcome.message and outcome.status != "error":  # errors were already printed as ::error::
        runner.log(outcome.message)
    stream = out if out is not None else sys.stdout
    print(f"status: {outcome.status}", file=stream, flush=True)
    return outcome.exit_code


_NOTIFY_KINDS: dict[str, NotificationKind] = {
    "pr-opened": "pr-opened",
    "pr-updated": "pr-opened",
    "draft-pr-opened": "draft-pr-opened",
    "issue-opened": "issue-opened",
    "error": "fix-failed",
}


def notify(outcome: Outcome, settings: Settings, c: Collaborators, issue_ref: str) -> None:
    """The pipeline's last step: tell the team's chat what happened (never fails the run)."""
    kind = _NOTIFY_KINDS.get(outcome.status)
    if kind is None or not c.notifiers:
        return
    event, fix = outcome.event, outcome.fix
    note = Notification(
        kind=kind,
        error_title=event.headline if event else f"Sentry issue {issue_ref}",
        short_id=(event.short_id if event else None),
        project=(event.issue.project if event and event.issue else None),
        environment=(event.environment if event else None),
        sentry_url=(event.permalink if event else None),
        pr_url=outcome.pr.url if outcome.pr else None,
        issue_url=outcome.issue.url if outcome.issue else None,
        branch=outcome.branch,
        repository=c.host.full_name if c.host is not None else None,
        tests=fix.tests.status if fix else None,
        confidence=fix.confidence if fix else None,
        detail=scrub(
            (fix.root_cause if fix and kind != "fix-failed" else outcome.message)[:500], settings.secret_values()
        )
        or None,
        run_url=settings.run_url,
    )
    for name in notify_all(c.notifiers, note):
        c.runner.warning(f"{name} notification failed; continuing")


def run_one(issue_ref: str, settings: Settings, workspace: Path, c: Collaborators) -> Outcome:
    """fetch → locate → fix → test → deliver (Pipeline), then notify; errors become an outcome."""
    try:
        outcome = Pipeline(settings, workspace, c).run(issue_ref)
    except AutofixError as exc:
        message = scrub(str(exc), settings.secret_values())
        c.runner.error(message, title="sentry-autofix")
        outcome = Outcome("error", message, exit_code=exc.exit_code)
    notify(outcome, settings, c, issue_ref)
    return outcome


def deliver_issue(issue_ref: str, settings: Settings, workspace: Path, c: Collaborators) -> int:
    """Run the pipeline for one issue and finish the step (outputs, summary, status, exit code)."""
    return finish(run_one(issue_ref, settings, workspace, c), c.runner)
