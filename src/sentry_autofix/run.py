"""`sentry-autofix run`: the Action's entry point.

Reads which Sentry issue to work on from the triggering event (or polls on `schedule`, or follows a
resolved issue's lifecycle), builds the real collaborators and hands one issue at a time to
`pipeline.deliver_issue`, where the order of the steps lives.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from sentry_autofix import delivery, gitlab_ci, neutral, notify, sources
from sentry_autofix.actions import Runner, scrub
from sentry_autofix.agent.llm import LLM, build_llm
from sentry_autofix.config import Settings, load_runner_env
from sentry_autofix.delivery import CodeHost
from sentry_autofix.delivery import body as bodies
from sentry_autofix.errors import AutofixError, ConfigError, InputError
from sentry_autofix.fix import run_fix
from sentry_autofix.lifecycle import event_from_payload, handle_lifecycle
from sentry_autofix.models import FixResult, TriageReport
from sentry_autofix.notify import Notifier
from sentry_autofix.pipeline import Collaborators, Fixer, Locator, Outcome, deliver_issue, finish, run_one
from sentry_autofix.poll import Filters, select_issues
from sentry_autofix.sources import ErrorSource, source_of
from sentry_autofix.triage import build_triage
from sentry_autofix.workspace import branch as git_branch
from sentry_autofix.workspace.git import run_git

_ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# --- which issue ---------------------------------------------------------------------------------


def resolve_issue_id(settings: Settings) -> str | None:
    """The Sentry issue id for this run; None for `schedule` (poll's job).

    An explicit `sentry-issue-id` input wins; else `repository_dispatch` `client_payload.issue_id`
    (sent by the relay) or `workflow_dispatch` `inputs.issue_id`.
    """
    if settings.sentry_issue_id:
        return _check_id(settings.sentry_issue_id, "the sentry-issue-id input (SENTRY_AUTOFIX_ISSUE_ID)")
    if settings.gitlab_ci:
        # GitLab passes the id only as a pipeline variable (read above); a scheduled pipeline polls.
        if gitlab_ci.event_name(settings.ci_pipeline_source) == "schedule":
            return None
        raise ConfigError(
            f"no Sentry issue id for pipeline source {settings.ci_pipeline_source or '(none)'}: pass the "
            "SENTRY_AUTOFIX_ISSUE_ID pipeline variable (the component's issue-id input), or run on a schedule"
        )
    name = settings.github_event_name
    if name == "schedule":
        return None
    payload: dict[str, object] = {}
    if settings.github_event_path:
        try:
            loaded = json.loads(Path(settings.github_event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot read the event file GITHUB_EVENT_PATH={settings.github_event_path}: {exc}"
            ) from exc
        payload = loaded if isinstance(loaded, dict) else {}
    if name == "repository_dispatch":
        client = payload.get("client_payload")
        value = client.get("issue_id") if isinstance(client, dict) else None
        if value in (None, "") and isinstance(client, dict) and isinstance(client.get("issue"), dict):
            value = client["issue"].get("id")
        if value in (None, ""):
            raise InputError("the repository_dispatch client_payload has no issue_id (the relay sends one)")
        return _check_id(str(value), "client_payload.issue_id")
    if name == "workflow_dispatch":
        inputs = payload.get("inputs")
        value = None
        if isinstance(inputs, dict):
            value = inputs.get("issue_id") or inputs.get("issue-id") or inputs.get("sentry-issue-id")
        if value in (None, ""):
            raise ConfigError("workflow_dispatch needs an `issue_id` input (or set the sentry-issue-id input)")
        return _check_id(str(value), "inputs.issue_id")
    raise ConfigError(
        f"no Sentry issue id for event {name or '(none)'}: set the sentry-issue-id input "
        "(SENTRY_AUTOFIX_ISSUE_ID), or run from repository_dispatch / workflow_dispatch"
    )


_CLOSING_ACTIONS = frozenset({"resolved", "ignored", "archived"})
"""Relay `client_payload.action`s that say the issue needs no fix (SPEC §8: forwarded to annotate)."""


def client_payload(settings: Settings) -> dict[str, object]:
    """The relay's context of a triggered run: `client_payload` of a repository_dispatch, the
    SENTRY_AUTOFIX_PAYLOAD variable of a triggered GitLab pipeline (empty otherwise)."""
    try:
        if settings.gitlab_ci:
            if (
                gitlab_ci.event_name(settings.ci_pipeline_source) != "repository_dispatch"
                or not settings.gitlab_payload
            ):
                return {}
            client = json.loads(settings.gitlab_payload)
        else:
            if settings.github_event_name != "repository_dispatch" or not settings.github_event_path:
                return {}
            loaded = json.loads(Path(settings.github_event_path).read_text(encoding="utf-8"))
            client = loaded.get("client_payload") if isinstance(loaded, dict) else None
    except (OSError, ValueError):
        return {}
    return client if isinstance(client, dict) else {}


def dispatch_action(settings: Settings) -> str | None:
    """The Sentry webhook action the relay forwarded (`created`, `unresolved`, `resolved`…), if any."""
    action = client_payload(settings).get("action")
    return action if isinstance(action, str) else None


def _check_id(value: str, where: str) -> str:
    value = value.strip()
    if not _ISSUE_ID.match(value):
        raise InputError(f"{where} is not a Sentry issue id (numeric, or a short id like APP-1F): {value[:80]!r}")
    return value


# --- real collaborators --------------------------------------------------------------------------


class AgentFixer:
    """The LLM agent (`fix.run_fix`: context → tool loop → guard → tests → reproduction) behind
    the Fixer protocol. Its progress lines quote the model's tool arguments: they go through the
    neutral stream, so none can start a workflow command."""

    def __init__(self, llm: LLM, log: TextIO | None = None) -> None:
        self.llm = llm
        self.log = neutral.stream(log if log is not None else sys.stderr)

    def _progress(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()

    def fix(self, report: TriageReport, workspace: Path, settings: Settings) -> FixResult:
        try:
            run = run_fix(report.event, workspace, settings, self.llm, triage=report, progress=self._progress)
        finally:
            close = getattr(self.llm, "close", None)
            if callable(close):
                close()
        return run.result


def build_fixer(settings: Settings) -> Fixer | None:
    """The real agent for `mode: fix`: the configured LLM provider (SENTRY_AUTOFIX_LLM) in `fix.run_fix`.

    Contract the pipeline relies on: `fix(report, workspace, settings) -> FixResult` edits files in
    `workspace` and leaves them uncommitted (the pipeline commits exactly the paths it touched and
    reads the diff from git); it may run the tests itself (`FixResult.tests`; when it reports
    `not-run` and a test command is set, the pipeline runs them); `status="no-fix"` opens a triage
    issue, `status="error"` fails the run. A missing API key is a ConfigError naming the setting.
    """
    return AgentFixer(build_llm(settings))


def build_source(settings: Settings, issue_ref: str | None = None) -> ErrorSource:
    """The issue's own source (`cloudwatch-…`, `rollbar-…`, `datadog-…`; a number is Sentry's), or
    SENTRY_AUTOFIX_SOURCE for a scheduled poll."""

    return sources.build_source(settings, source_of(issue_ref)[0] if issue_ref else None)


def build_locator() -> Locator:
    return build_triage


def build_host(settings: Settings) -> CodeHost:
    """The configured code host (delivery.HOSTS), imported only when used."""
    return delivery.build_host(settings)


def build_runner(settings: Settings) -> Runner:
    """The CI's log/outputs/summary channel: GitLab's under GITLAB_CI, else the Actions one."""
    if settings.gitlab_ci:
        return gitlab_ci.GitLabRunner(
            dotenv_path=settings.gitlab_dotenv,
            summary_path=settings.gitlab_summary,
            secret_values=settings.secret_values(),
        )
    return Runner(
        enabled=settings.github_actions,
        output_path=settings.github_output,
        summary_path=settings.github_step_summary,
        secret_values=settings.secret_values(),
    )


def settings_error(exc: AutofixError) -> int:
    """A setting is wrong before Settings exists: still an `::error::`, outputs and `status: error`."""
    env = load_runner_env()
    runner = Runner(enabled=env.github_actions, output_path=env.github_output, summary_path=env.github_step_summary)
    runner.error(str(exc), title="sentry-autofix")
    return finish(Outcome("error", str(exc), exit_code=exc.exit_code), runner)


def run_command(
    args: object, settings: Settings, *, fixer_factory: Callable[[Settings], Fixer | None] = build_fixer
) -> int:
    """`sentry-autofix run`: build the real collaborators from settings and run one issue.

    `fixer_factory` is the seam where the agent is built (tests pass a scripted one).
    """
    runner = build_runner(settings)
    runner.mask_secrets()
    try:
        issue_ref = resolve_issue_id(settings)
        action = dispatch_action(settings)
        # A closing action annotates the issue the trigger was about; an explicit other id is a fix run.
        if issue_ref is not None and action in _CLOSING_ACTIONS and _triggered_for(issue_ref, settings):
            return finish(follow_lifecycle(issue_ref, action, settings, runner), runner)
        workspace = Path(
            getattr(args, "workspace", None) or settings.github_workspace or settings.ci_project_dir or "."
        ).resolve()
        collaborators = Collaborators(
            source=build_source(settings, issue_ref),
            host=None if settings.dry_run else build_host(settings),
            locate=build_locator(),
            fixer=fixer_factory(settings) if settings.mode == "fix" else None,
            runner=runner,
            notifiers=build_notifiers(settings),
        )
        if issue_ref is None:
            return run_scheduled(settings, workspace, collaborators)
    except AutofixError as exc:
        runner.error(scrub(str(exc), settings.secret_values()), title="sentry-autofix")
        return finish(Outcome("error", str(exc), exit_code=exc.exit_code), runner)
    return deliver_issue(issue_ref, settings, workspace, collaborators)


def _triggered_for(issue_ref: str, settings: Settings) -> bool:
    """Whether this run is the one the relay triggered for `issue_ref` (GitLab passes the id as the
    SENTRY_AUTOFIX_ISSUE_ID variable, which on GitHub is the explicit `sentry-issue-id` input)."""
    if not settings.sentry_issue_id:
        return True
    return str(client_payload(settings).get("issue_id") or "") == issue_ref


def build_notifiers(settings: Settings) -> list[Notifier]:
    return notify.build_notifiers(settings)


def follow_lifecycle(issue_ref: str, action: str, settings: Settings, runner: Runner) -> Outcome:
    """A resolved (or ignored/archived) issue forwarded by the relay: nothing to fix; a resolved
    one closes its triage issue and gets a comment on its PR or MR (sentry_autofix.lifecycle)."""
    nothing = Outcome("skipped-filtered", f"Sentry issue {issue_ref} was {action}: nothing to fix")
    if action != "resolved" or settings.dry_run:
        return nothing
    event = event_from_payload(client_payload(settings))
    if event is None:
        return nothing
    try:
        host = build_host(settings)
    except ConfigError as exc:
        runner.warning(f"cannot update the PR or issue of Sentry issue {issue_ref}: {exc}")
        return nothing
    with runner.group(f"Sentry issue {issue_ref} was resolved"):
        done = handle_lifecycle(event, host)
        for line in done.actions:
            runner.log(line)
    summary = "; ".join(done.actions) or "no PR or issue of ours to update"
    return Outcome("skipped-filtered", f"Sentry issue {issue_ref} was resolved: {summary}")


def run_scheduled(settings: Settings, workspace: Path, c: Collaborators) -> int:
    """`schedule`: poll Sentry for the issues worth fixing now (sentry_autofix.poll) and run them
    one after another in this job; the outputs describe the last one, the status is `error` if any
    failed. For parallel runs use `poll --matrix` (README: scheduled polling)."""

    with c.runner.group("Poll Sentry"):
        picked = select_issues(
            c.source,  # type: ignore[arg-type]
            c.host,
            Filters.from_settings(settings),
            run_link=settings.run_url,
        )
        for skip in picked.skipped:
            c.runner.log(f"skip {skip.short_id or skip.issue_id}: {skip.reason}")
        c.runner.log(f"picked {len(picked.selected)} of {picked.scanned} issues looked at")
    if not picked.selected:
        return finish(Outcome("skipped-filtered", "schedule: no Sentry issue matches the poll filters"), c.runner)
    base = settings.base_branch or git_branch.current_branch(workspace)
    outcomes = []
    for issue in picked.selected:
        if base:  # back to the base branch for the next issue (tracked files only)
            run_git(workspace, "checkout", "-q", "-f", base)
        outcome = run_one(issue.id, settings, workspace, c)
        c.runner.add_summary(
            bodies.render_summary(
                status=outcome.status,
                event=outcome.event,
                fix=outcome.fix,
                url=outcome.pr.url if outcome.pr else outcome.issue.url if outcome.issue else None,
                branch=outcome.branch,
                message=outcome.message,
            )
        )
        outcomes.append(outcome)
    last = outcomes[-1]
    failed = [o for o in outcomes if o.status == "error"]
    final = Outcome(
        "error" if failed else last.status,
        f"schedule: {len(outcomes)} issue(s): " + ", ".join(o.status for o in outcomes),
        pr=last.pr,
        issue=last.issue,
        branch=last.branch,
        fix=last.fix,
        exit_code=max(o.exit_code for o in outcomes),
    )
    c.runner.set_outputs(final.outputs())
    print(f"status: {final.status}", flush=True)
    if final.message:
        c.runner.log(final.message)
    return final.exit_code
