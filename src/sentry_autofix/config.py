"""Settings: one model, read once from the environment (Action inputs arrive as env) and flags.

Only `load_settings()` reads `os.environ`; everything else receives a `Settings`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sentry_autofix.errors import ConfigError

DEFAULT_BLOCKED_PATHS: tuple[str, ...] = (
    "migrations/**",
    "**/migrations/**",
    "auth/**",
    "authentication/**",
    "billing/**",
    "payment/**",
    "payments/**",
    "stripe/**",
    "secrets/**",
    "credentials/**",
    ".env*",
    "**/.env*",
    # Everything GitHub executes or trusts from the repository: workflows, composite actions,
    # CODEOWNERS (who must review), dependabot. A fix branch runs workflows; it must not edit them.
    ".github/**",
    "CODEOWNERS",
)
"""SPEC §6. User globs are added to these, never replace them."""

SECRET_READ_PATHS: tuple[str, ...] = (
    ".env*",
    "**/.env*",
    "secrets/**",
    "**/secrets/**",
    "credentials/**",
    "**/credentials/**",
)
"""Paths the agent may not even read: nothing secret goes to the LLM."""

DEFAULT_MODELS = {"anthropic": "claude-sonnet-5-5", "openai": "gpt-4.1"}
"""Current Sonnet (claude-sonnet-4-5 reaches end-of-life on 2026-11-30, per the SDK's deprecation table)."""
DEFAULT_CLOUDWATCH_PATTERN = '?Traceback ?Exception ?Error ?panic ?"Fatal error" ?FATAL ?Unhandled'
"""CloudWatch filter pattern (case-sensitive terms, `?` = or) matching the first line of a traceback in
every language sources/traceback_text.py parses."""
RELAY_DEFAULT_ACTIONS = ("issue.created", "issue.unresolved", "event_alert.triggered", "error.created")
"""Webhooks the relay forwards unless SENTRY_AUTOFIX_RELAY_ACTIONS says otherwise (SPEC §8)."""


CommaList = Annotated[list[str], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _env(name: str, *more: str) -> Any:
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    """Every knob of sentry-autofix. Env names are the Action's contract; see README."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", env_ignore_empty=True)

    # --- Sentry -------------------------------------------------------------------------------
    sentry_url: str = Field("https://sentry.io", validation_alias=_env("SENTRY_URL", "sentry_url"))
    """Base URL of Sentry: sentry.io, a region host (us.sentry.io) or self-hosted."""
    sentry_auth_token: SecretStr | None = Field(None, validation_alias=_env("SENTRY_AUTH_TOKEN", "sentry_auth_token"))
    """Internal-integration or user auth token (scopes: event:read, project:read; event:write to comment)."""
    sentry_org: str | None = Field(None, validation_alias=_env("SENTRY_ORG", "sentry_org"))
    sentry_projects: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_PROJECTS", "sentry_projects")
    )
    """Project slugs to poll; empty means every project of the organization."""
    sentry_timeout: float = Field(20.0, validation_alias=_env("SENTRY_AUTOFIX_SENTRY_TIMEOUT", "sentry_timeout"))

    # --- GitHub -------------------------------------------------------------------------------
    github_api_url: str = Field("https://api.github.com", validation_alias=_env("GITHUB_API_URL", "github_api_url"))
    github_token: SecretStr | None = Field(None, validation_alias=_env("GITHUB_TOKEN", "github_token"))
    github_repository: str | None = Field(None, validation_alias=_env("GITHUB_REPOSITORY", "github_repository"))
    base_branch: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_BASE_BRANCH", "base_branch"))
    """Branch to fix against and open PRs into; default: the checked-out branch (the workflow's or
    pipeline's ref, CI_COMMIT_REF_NAME under GitLab CI), else the repository's default branch."""
    branch_prefix: str = Field(
        "sentry-autofix/", validation_alias=_env("SENTRY_AUTOFIX_BRANCH_PREFIX", "branch_prefix")
    )
    labels: CommaList = Field(
        default_factory=lambda: ["sentry-autofix"], validation_alias=_env("SENTRY_AUTOFIX_LABELS", "labels")
    )
    min_confidence: Literal["low", "medium", "high"] = Field(
        "high", validation_alias=_env("SENTRY_AUTOFIX_MIN_CONFIDENCE", "min_confidence")
    )
    """Below this confidence the PR is opened as a draft."""

    # --- LLM ----------------------------------------------------------------------------------
    llm: Literal["anthropic", "openai"] = Field("anthropic", validation_alias=_env("SENTRY_AUTOFIX_LLM", "llm"))
    model: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_MODEL", "model"))
    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_env("ANTHROPIC_API_KEY", "anthropic_api_key"))
    anthropic_base_url: str | None = Field(None, validation_alias=_env("ANTHROPIC_BASE_URL", "anthropic_base_url"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY", "openai_api_key"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL", "openai_base_url"))
    max_turns: int = Field(30, ge=1, validation_alias=_env("SENTRY_AUTOFIX_MAX_TURNS", "max_turns"))
    max_tokens: int = Field(400_000, ge=1000, validation_alias=_env("SENTRY_AUTOFIX_MAX_TOKENS", "max_tokens"))
    """Total input+output token budget for one fix."""
    max_cost_usd: float = Field(2.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_MAX_COST", "max_cost_usd"))

    # --- Workspace ----------------------------------------------------------------------------
    test_command: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_TEST_COMMAND", "test_command"))
    test_timeout: float = Field(600.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_TEST_TIMEOUT", "test_timeout"))
    blocked_paths: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_BLOCKED_PATHS", "blocked_paths")
    )
    """Extra globs, added to DEFAULT_BLOCKED_PATHS."""
    read_untracked: bool = Field(False, validation_alias=_env("SENTRY_AUTOFIX_READ_UNTRACKED", "read_untracked"))
    """Let triage and the agent read untracked (not ignored) files too; by default only files git
    tracks, plus those the agent writes, are read. Ignored files and secret globs are never read."""
    scrub_env: CommaList = Field(default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_SCRUB_ENV", "scrub_env"))
    """Extra environment variable names removed before running tests."""
    test_env: CommaList = Field(default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_TEST_ENV", "test_env"))
    """Names of further environment variables the tests may see (the sandbox passes only the
    toolchain's: PATH, LANG, JAVA_HOME, VIRTUAL_ENV…). Never a secret: tests run model-written code."""
    test_budget: float = Field(1800.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_TEST_BUDGET", "test_budget"))
    """Total seconds all test runs of one fix may take (each run is also capped by test_timeout)."""
    baseline_tests: bool = Field(True, validation_alias=_env("SENTRY_AUTOFIX_BASELINE_TESTS", "baseline_tests"))
    """Run the test command once on the untouched workspace before the agent starts (within
    test_budget) so tests that already failed do not count against the fix (docs/baseline-tests.md)."""
    test_network: Literal["host", "none"] = Field(
        "host", validation_alias=_env("SENTRY_AUTOFIX_TEST_NETWORK", "test_network")
    )
    """`host`: tests reach the network as the job does; `none`: only their own loopback."""
    allow_unsandboxed_tests: bool = Field(
        False, validation_alias=_env("SENTRY_AUTOFIX_ALLOW_UNSANDBOXED_TESTS", "allow_unsandboxed_tests")
    )
    """Run tests even where no sandbox can be built (no root, no passwordless sudo): they then run
    as the job's user with a scrubbed environment, can read its files and processes, and the PR
    says so. Off by default: without a sandbox, tests are not run."""
    sandbox_expose: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_SANDBOX_EXPOSE", "sandbox_expose")
    )
    """Folders inside hidden places (the job's HOME) that tests may read, e.g. `~/.cargo,~/.rustup`."""
    source_roots: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_SOURCE_ROOTS", "source_roots")
    )
    """Repo folders preferred when a frame's file could be in several places (monorepos)."""
    path_map: CommaList = Field(default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_PATH_MAP", "path_map"))
    """`deployed_prefix=repo_prefix` pairs, e.g. `/srv/app/=services/api/`."""

    # --- Agent (issue 3: the fix agent) --------------------------------------------------------
    llm_timeout: float = Field(120.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_LLM_TIMEOUT", "llm_timeout"))
    """Seconds one model request may take."""
    llm_max_retries: int = Field(4, ge=0, validation_alias=_env("SENTRY_AUTOFIX_LLM_MAX_RETRIES", "llm_max_retries"))
    """Retries on 408/409/429/5xx (529 overloaded included), honouring retry-after."""
    llm_max_output_tokens: int = Field(
        8192,
        ge=256,
        le=20_000,
        validation_alias=_env("SENTRY_AUTOFIX_LLM_MAX_OUTPUT_TOKENS", "llm_max_output_tokens"),
    )
    """`max_tokens` of one model reply (kept under the SDK's non-streaming limit)."""
    price_input_per_mtok: float | None = Field(
        None, ge=0, validation_alias=_env("SENTRY_AUTOFIX_PRICE_INPUT", "price_input_per_mtok")
    )
    """USD per million input tokens, overriding the built-in price table (e.g. 0 for a local model)."""
    price_output_per_mtok: float | None = Field(
        None, ge=0, validation_alias=_env("SENTRY_AUTOFIX_PRICE_OUTPUT", "price_output_per_mtok")
    )
    max_repairs: int = Field(2, ge=0, validation_alias=_env("SENTRY_AUTOFIX_MAX_REPAIRS", "max_repairs"))
    """How many times failing tests after `finish` are fed back to the model for another attempt."""

    # --- Notifications ------------------------------------------------------------------------
    slack_webhook_url: SecretStr | None = Field(None, validation_alias=_env("SLACK_WEBHOOK_URL", "slack_webhook_url"))
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN", "slack_bot_token"))
    slack_channel: str | None = Field(None, validation_alias=_env("SLACK_CHANNEL", "slack_channel"))
    discord_webhook_url: SecretStr | None = Field(
        None, validation_alias=_env("DISCORD_WEBHOOK_URL", "discord_webhook_url")
    )

    # --- Delivery / the Action's `run` (issue 4) ---------------------------------------------
    mode: Literal["fix", "triage"] = Field("fix", validation_alias=_env("SENTRY_AUTOFIX_MODE", "mode"))
    """`fix`: try a fix and open a PR (triage issue when no fix); `triage`: only open a triage issue."""
    sentry_issue_id: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_ISSUE_ID", "sentry_issue_id"))
    """Explicit Sentry issue id; wins over the one in the triggering event."""
    dry_run: bool = Field(False, validation_alias=_env("SENTRY_AUTOFIX_DRY_RUN", "dry_run"))
    """Do everything locally, print the diff and the PR text, touch no remote."""
    on_existing: Literal["skip", "update"] = Field(
        "skip", validation_alias=_env("SENTRY_AUTOFIX_ON_EXISTING", "on_existing")
    )
    """An open PR already exists for the issue: `skip` (no LLM spend) or `update` (re-fix, push, edit)."""
    commit_author: str = Field(
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>",
        validation_alias=_env("SENTRY_AUTOFIX_COMMIT_AUTHOR", "commit_author"),
    )
    """`Name <email>` of the one commit on the fix branch; our branches are recognised by it. Under
    GitLab CI the default is `sentry-autofix <sentry-autofix@noreply.<CI_SERVER_URL's host>>`."""
    draft_on_test_failure: bool = Field(
        True, validation_alias=_env("SENTRY_AUTOFIX_DRAFT_ON_TEST_FAILURE", "draft_on_test_failure")
    )
    """Open the PR as a draft when tests failed or were not run."""
    triage_on_no_fix: bool = Field(True, validation_alias=_env("SENTRY_AUTOFIX_TRIAGE_ON_NO_FIX", "triage_on_no_fix"))
    """Open a triage issue when the agent finds no fix (else the status is `no-fix`)."""
    issue_labels: CommaList = Field(
        default_factory=lambda: ["sentry-autofix", "triage"],
        validation_alias=_env("SENTRY_AUTOFIX_ISSUE_LABELS", "issue_labels"),
    )
    """Labels of triage issues; a priority label P1–P4 is added from Sentry's priority."""
    ci_workflow: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_CI_WORKFLOW", "ci_workflow"))
    """Workflow file (e.g. `ci.yml`) started on the fix branch by workflow_dispatch (`actions: write`)."""
    sentry_comments: bool = Field(True, validation_alias=_env("SENTRY_AUTOFIX_SENTRY_COMMENTS", "sentry_comments"))
    """Comment on the Sentry issue at each milestone (needs a token with event:write)."""
    github_max_wait: float = Field(
        60.0, ge=0, validation_alias=_env("SENTRY_AUTOFIX_GITHUB_MAX_WAIT", "github_max_wait")
    )
    """Most seconds spent waiting on GitHub rate limits in one run; beyond it the run gives up."""
    github_write_interval: float = Field(
        1.0, ge=0, validation_alias=_env("SENTRY_AUTOFIX_GITHUB_WRITE_INTERVAL", "github_write_interval")
    )
    """Seconds between GitHub writes (GitHub asks for >= 1 s between content-creating requests)."""
    github_event_name: str | None = Field(None, validation_alias=_env("GITHUB_EVENT_NAME", "github_event_name"))
    github_event_path: str | None = Field(None, validation_alias=_env("GITHUB_EVENT_PATH", "github_event_path"))
    github_step_summary: str | None = Field(None, validation_alias=_env("GITHUB_STEP_SUMMARY", "github_step_summary"))
    github_workspace: str | None = Field(None, validation_alias=_env("GITHUB_WORKSPACE", "github_workspace"))

    # --- Poll, notifications, lifecycle (issue 6: poll.py, notify/, lifecycle.py) ----------------
    poll_query: str = Field("", validation_alias=_env("SENTRY_AUTOFIX_POLL_QUERY", "poll_query"))
    """Extra Sentry search terms added to `is:unresolved`, e.g. `release:1.2.0 !user.email:*@test`."""
    poll_period: str = Field("24h", validation_alias=_env("SENTRY_AUTOFIX_POLL_PERIOD", "poll_period"))
    """Window for `poll_min_events` (Sentry `statsPeriod`: a number and s/m/h/d/w, e.g. 24h, 14d)."""
    poll_min_events: int = Field(1, ge=0, validation_alias=_env("SENTRY_AUTOFIX_POLL_MIN_EVENTS", "poll_min_events"))
    """Only issues seen at least this many times within `poll_period` (0: no count filter)."""
    poll_levels: CommaList = Field(
        default_factory=lambda: ["error", "fatal"], validation_alias=_env("SENTRY_AUTOFIX_POLL_LEVELS", "poll_levels")
    )
    """Sentry levels to pick (`error,fatal`); empty: any level."""
    poll_priorities: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_POLL_PRIORITIES", "poll_priorities")
    )
    """Sentry issue priorities to pick (`high`, `medium`, `low`); empty: any priority."""
    poll_environments: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_POLL_ENVIRONMENTS", "poll_environments")
    )
    """Sentry environments to count events in (e.g. `production`); empty: all."""
    poll_sort: Literal["freq", "date", "new", "user", "trends"] = Field(
        "freq", validation_alias=_env("SENTRY_AUTOFIX_POLL_SORT", "poll_sort")
    )
    """Order in which issues are picked: most events (`freq`), last seen (`date`), newest, most users."""
    poll_max_issues: int = Field(
        5, ge=1, le=256, validation_alias=_env("SENTRY_AUTOFIX_POLL_MAX_ISSUES", "poll_max_issues")
    )
    """Issues picked per poll (a matrix holds at most 256 jobs)."""
    poll_scan_limit: int = Field(
        300, ge=1, le=5000, validation_alias=_env("SENTRY_AUTOFIX_POLL_SCAN_LIMIT", "poll_scan_limit")
    )
    """Most Sentry issues looked at per poll (bounds the pages read when many are skipped)."""
    poll_max_failures: int = Field(
        3, ge=1, validation_alias=_env("SENTRY_AUTOFIX_POLL_MAX_FAILURES", "poll_max_failures")
    )
    """After this many `failed` comments of ours on a Sentry issue, poll stops picking it."""
    poll_stale_minutes: int = Field(
        120, ge=1, validation_alias=_env("SENTRY_AUTOFIX_POLL_STALE_MINUTES", "poll_stale_minutes")
    )
    """An `in progress` comment of ours older than this is stale: the issue is taken over."""
    poll_claim: bool = Field(True, validation_alias=_env("SENTRY_AUTOFIX_POLL_CLAIM", "poll_claim"))
    """Post an `in progress` comment on each picked issue, so an overlapping poll skips it."""
    poll_event_type: str = Field(
        "sentry-issue",
        max_length=100,
        validation_alias=_env("SENTRY_AUTOFIX_POLL_EVENT_TYPE", "SENTRY_AUTOFIX_EVENT_TYPE", "poll_event_type"),
    )
    """`repository_dispatch` event type sent by `poll --dispatch`."""
    github_output: str | None = Field(None, validation_alias=_env("GITHUB_OUTPUT", "github_output"))
    """Set by Actions: the file step outputs are appended to (poll writes `matrix` and `count`)."""
    github_server_url: str = Field(
        "https://github.com", validation_alias=_env("GITHUB_SERVER_URL", "github_server_url")
    )
    github_run_id: str | None = Field(None, validation_alias=_env("GITHUB_RUN_ID", "github_run_id"))
    """Set by Actions; links a Sentry `in progress` comment to the run that claimed the issue."""
    github_actions: bool = Field(False, validation_alias=_env("GITHUB_ACTIONS", "github_actions"))
    """True inside a GitHub Actions runner: workflow commands (::group:: …) are emitted."""

    # --- GitLab (delivery/gitlab.py, gitlab_ci.py; docs/gitlab.md) ------------------------------
    code_host: Literal["github", "gitlab"] | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_CODE_HOST", "code_host")
    )
    """Where fixes are delivered; default: gitlab inside GitLab CI (GITLAB_CI), else github."""
    gitlab_ci: bool = Field(False, validation_alias=_env("GITLAB_CI", "gitlab_ci"))
    """Set by GitLab Runner: logs use collapsible sections, outputs go to a dotenv report."""
    gitlab_token: SecretStr | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_GITLAB_TOKEN", "GITLAB_TOKEN", "gitlab_token")
    )
    """Token with scope `api` (includes pushing) and role Developer: a project/group access token or
    a bot user's personal access token. The CI job token cannot open merge requests."""
    gitlab_url: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_GITLAB_URL", "CI_SERVER_URL", "gitlab_url")
    )
    """GitLab base URL (https://gitlab.com or self-managed); GitLab CI sets CI_SERVER_URL."""
    gitlab_project: str | None = Field(
        None,
        validation_alias=_env("SENTRY_AUTOFIX_GITLAB_PROJECT", "CI_PROJECT_ID", "CI_PROJECT_PATH", "gitlab_project"),
    )
    """Project id or `group/project` path; GitLab CI sets CI_PROJECT_ID."""
    gitlab_project_url: str | None = Field(None, validation_alias=_env("CI_PROJECT_URL", "gitlab_project_url"))
    ci_pipeline_url: str | None = Field(None, validation_alias=_env("CI_PIPELINE_URL", "ci_pipeline_url"))
    """Set by GitLab CI: linked from Sentry comments and MR descriptions."""
    ci_pipeline_source: str | None = Field(None, validation_alias=_env("CI_PIPELINE_SOURCE", "ci_pipeline_source"))
    """Set by GitLab CI: trigger/api/web/schedule/… (gitlab_ci.event_name maps it)."""
    ci_project_dir: str | None = Field(None, validation_alias=_env("CI_PROJECT_DIR", "ci_project_dir"))
    gitlab_dotenv: str = Field("sentry-autofix.env", validation_alias=_env("SENTRY_AUTOFIX_DOTENV", "gitlab_dotenv"))
    """Under GitLab CI: the `artifacts:reports:dotenv` file the outputs are written to."""
    gitlab_summary: str = Field(
        "sentry-autofix-summary.md", validation_alias=_env("SENTRY_AUTOFIX_SUMMARY_FILE", "gitlab_summary")
    )
    """Under GitLab CI: the markdown summary file (keep it as a job artifact)."""
    gitlab_trigger_token: SecretStr | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN", "gitlab_trigger_token")
    )
    """Pipeline trigger token used by `poll --dispatch` and the relay to start GitLab pipelines. A
    trigger token belongs to one project: for a relay routing to several, give one per project as
    `group/app=glptt-…,42=glptt-…` (the project as the route names it, path or id)."""
    ci_project_path: str | None = Field(None, validation_alias=_env("CI_PROJECT_PATH", "ci_project_path"))
    """Set by GitLab CI: the project's `group/project` path (how chat notifications name it)."""
    ci_default_branch: str | None = Field(None, validation_alias=_env("CI_DEFAULT_BRANCH", "ci_default_branch"))
    """Set by GitLab CI: the project's default branch, where `poll --dispatch` starts pipelines
    unless SENTRY_AUTOFIX_BASE_BRANCH names another."""
    # GitLab Runner's own credentials: never used, only scrubbed (`***`) from everything we send or
    # write, like every secret (the job token is also in the checkout's origin URL).
    ci_job_token: SecretStr | None = Field(None, validation_alias=_env("CI_JOB_TOKEN", "ci_job_token"))
    """Set by GitLab CI: the job token; scrubbed from model requests, MRs, comments, logs."""
    ci_registry_password: SecretStr | None = Field(
        None, validation_alias=_env("CI_REGISTRY_PASSWORD", "ci_registry_password")
    )
    """Set by GitLab CI when the container registry is on; scrubbed like every secret."""
    ci_dependency_proxy_password: SecretStr | None = Field(
        None, validation_alias=_env("CI_DEPENDENCY_PROXY_PASSWORD", "ci_dependency_proxy_password")
    )
    """Set by GitLab CI when the dependency proxy is on; scrubbed like every secret."""
    ci_deploy_password: SecretStr | None = Field(
        None, validation_alias=_env("CI_DEPLOY_PASSWORD", "ci_deploy_password")
    )
    """Set by GitLab CI when a `gitlab-deploy-token` exists; scrubbed like every secret."""
    gitlab_payload: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_PAYLOAD", "gitlab_payload"))
    """Set by the relay / `poll --dispatch` on a triggered GitLab pipeline: their context as JSON
    (what `client_payload` carries on GitHub)."""

    @property
    def host_name(self) -> Literal["github", "gitlab"]:
        return self.code_host or ("gitlab" if self.gitlab_ci else "github")

    @property
    def run_url(self) -> str | None:
        """This CI run's page (a GitLab pipeline, an Actions run), linked from comments and bodies."""
        if self.gitlab_ci:
            url = self.ci_pipeline_url or ""
            return url if url.startswith(("https://", "http://")) else None
        server, repo, run = self.github_server_url, self.github_repository, self.github_run_id
        if server.startswith(("https://", "http://")) and repo and run and run.isdigit():
            return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"
        return None

    slack_api_url: str = Field("https://slack.com/api", validation_alias=_env("SLACK_API_URL", "slack_api_url"))
    """Slack Web API base, for `chat.postMessage` with SLACK_BOT_TOKEN."""
    notify_timeout: float = Field(10.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_NOTIFY_TIMEOUT", "notify_timeout"))
    """Seconds a Slack/Discord request may take; a notifier never fails the run."""

    @field_validator("gitlab_trigger_token")
    @classmethod
    def _trigger_tokens_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            trigger_tokens(value.get_secret_value())  # raises with the setting's name
        return value

    def gitlab_trigger_tokens(self) -> dict[str, str]:
        """SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN as project → token (`""`: any project)."""
        return trigger_tokens(self.gitlab_trigger_token.get_secret_value()) if self.gitlab_trigger_token else {}

    @field_validator("poll_period")
    @classmethod
    def _check_poll_period(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]{0,4}[smhdw]", value):
            raise ValueError(f"expected a number and s/m/h/d/w such as 24h or 14d, got {value!r}")
        return value

    @field_validator("poll_priorities", "poll_levels")
    @classmethod
    def _check_poll_words(cls, value: list[str]) -> list[str]:
        for word in value:
            if not re.fullmatch(r"[a-z]{1,20}", word):
                raise ValueError(f"expected lowercase words such as error or high, got {word!r}")
        return value

    # --- end of the poll block -------------------------------------------------------------------
    # --- Relay (sentry_autofix.relay; issue 5) ---------------------------------------------------
    sentry_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("SENTRY_WEBHOOK_SECRET", "sentry_webhook_secret")
    )
    """Client secret of the Sentry integration; it signs every webhook (Sentry-Hook-Signature)."""
    relay_routes: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_ROUTES", "relay_routes")
    )
    """`project=owner/repo[:event-type]` pairs; project is a Sentry project slug or numeric id."""
    relay_default_repo: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_DEFAULT_REPO", "relay_default_repo")
    )
    """`owner/repo[:event-type]` for projects without a route; unset: such webhooks are ignored."""
    relay_config_file: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_RELAY_CONFIG", "relay_config_file")
    )
    """Optional JSON (or TOML on Python 3.11+) file adding routes and relay settings."""
    relay_db: str = Field("sentry-autofix-relay.sqlite3", validation_alias=_env("SENTRY_AUTOFIX_RELAY_DB", "relay_db"))
    """The outbox: a SQLite file (WAL mode) on a persistent volume, or a `postgresql://` URL that
    several replicas share (the `relay` extra brings psycopg)."""
    relay_db_sync: Literal["normal", "full"] = Field(
        "normal", validation_alias=_env("SENTRY_AUTOFIX_RELAY_DB_SYNC", "relay_db_sync")
    )
    """`normal` survives a crash of the process; `full` also a power loss (one fsync per webhook)."""
    relay_event_type: str = Field(
        "sentry-issue",
        min_length=1,
        max_length=100,
        validation_alias=_env("SENTRY_AUTOFIX_EVENT_TYPE", "relay_event_type"),
    )
    relay_actions: CommaList = Field(
        default_factory=lambda: list(RELAY_DEFAULT_ACTIONS),
        validation_alias=_env("SENTRY_AUTOFIX_RELAY_ACTIONS", "relay_actions"),
    )
    """`resource.action` pairs to forward; add issue.resolved / issue.ignored to annotate or close."""
    relay_levels: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_RELAY_LEVELS", "relay_levels")
    )
    """Only forward these Sentry levels (e.g. `error,fatal`); empty: every level."""
    relay_dedup_window: float = Field(
        3600.0, ge=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_DEDUP_WINDOW", "relay_dedup_window")
    )
    """Seconds during which a second webhook of the same kind for the same issue is a duplicate."""
    relay_rate_limit: int = Field(5, ge=1, validation_alias=_env("SENTRY_AUTOFIX_RELAY_RATE_LIMIT", "relay_rate_limit"))
    """At most this many dispatches per issue within SENTRY_AUTOFIX_RELAY_RATE_WINDOW."""
    relay_rate_window: float = Field(
        86400.0, ge=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_RATE_WINDOW", "relay_rate_window")
    )
    relay_max_body: int = Field(
        1_048_576, ge=1024, validation_alias=_env("SENTRY_AUTOFIX_RELAY_MAX_BODY", "relay_max_body")
    )
    """Bytes; larger webhook bodies are refused with 413."""
    relay_max_retry_age: float = Field(
        86400.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_MAX_RETRY_AGE", "relay_max_retry_age")
    )
    """Seconds a refused dispatch is retried (with backoff) before it is marked failed."""
    relay_replay_window: float = Field(
        3600.0, ge=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_REPLAY_WINDOW", "relay_replay_window")
    )
    """Seconds: a fix-starting webhook whose signed issue/event time is older is ignored (a replay);
    keep it at most SENTRY_AUTOFIX_RELAY_DEDUP_WINDOW. 0 switches the bound off."""
    relay_retry_base: float = Field(
        1.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_RETRY_BASE", "relay_retry_base")
    )
    """Seconds before the first retry of a refused dispatch; doubles each time (with jitter)."""
    relay_retry_cap: float = Field(
        30.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_RETRY_CAP", "relay_retry_cap")
    )
    """Longest wait between two retries, in seconds (a longer `retry-after` from GitHub still wins)."""
    relay_dispatch_rate: float = Field(
        1.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_RELAY_DISPATCH_RATE", "relay_dispatch_rate")
    )
    """Dispatches per second at most, all repos together: stays under GitHub's secondary limits (80/min)."""
    relay_dispatch_burst: int = Field(
        20, ge=1, validation_alias=_env("SENTRY_AUTOFIX_RELAY_DISPATCH_BURST", "relay_dispatch_burst")
    )
    """Dispatches sent at once before SENTRY_AUTOFIX_RELAY_DISPATCH_RATE applies (a token bucket)."""
    relay_server: Literal["waitress", "gunicorn"] = Field(
        "waitress", validation_alias=_env("SENTRY_AUTOFIX_RELAY_SERVER", "relay_server")
    )
    """WSGI server: waitress (slow clients cannot starve it) or gunicorn (only behind a buffering proxy)."""
    relay_workers: int = Field(2, ge=1, validation_alias=_env("SENTRY_AUTOFIX_RELAY_WORKERS", "relay_workers"))
    """Worker processes; they share the listening port and the outbox."""
    relay_threads: int = Field(8, ge=1, validation_alias=_env("SENTRY_AUTOFIX_RELAY_THREADS", "relay_threads"))
    """Threads per worker process."""
    relay_log_format: Literal["json", "text"] = Field(
        "json", validation_alias=_env("SENTRY_AUTOFIX_RELAY_LOG_FORMAT", "relay_log_format")
    )
    github_app_id: str | None = Field(None, validation_alias=_env("GITHUB_APP_ID", "github_app_id"))
    github_app_private_key: SecretStr | None = Field(
        None, validation_alias=_env("GITHUB_APP_PRIVATE_KEY", "github_app_private_key")
    )
    """PEM text of the GitHub App's private key, or the path of the .pem file."""
    github_app_installation_id: str | None = Field(
        None, validation_alias=_env("GITHUB_APP_INSTALLATION_ID", "github_app_installation_id")
    )
    """Optional; by default the App's installation is looked up per repository."""

    # --- Error sources beyond Sentry (issue 12: sources/cloudwatch.py, rollbar.py, datadog.py) ----
    error_source: Literal["sentry", "cloudwatch", "rollbar", "datadog"] = Field(
        "sentry", validation_alias=_env("SENTRY_AUTOFIX_SOURCE", "error_source")
    )
    """Where `poll` looks for errors. `run` needs no setting: the issue id names its source
    (`cloudwatch-…`, `rollbar-…`, `datadog-…`; a number is Sentry's)."""
    source_timeout: float = Field(20.0, gt=0, validation_alias=_env("SENTRY_AUTOFIX_SOURCE_TIMEOUT", "source_timeout"))
    """Seconds one Rollbar or Datadog API request may take."""
    cloudwatch_log_groups: CommaList = Field(
        default_factory=list, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_LOG_GROUPS", "cloudwatch_log_groups")
    )
    """Log group names or ARNs to scan (`poll --project` overrides); IAM: logs:FilterLogEvents on each."""
    cloudwatch_filter_pattern: str = Field(
        DEFAULT_CLOUDWATCH_PATTERN,
        validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_FILTER_PATTERN", "cloudwatch_filter_pattern"),
    )
    """CloudWatch filter pattern selecting the lines that start or name an error; the lines around
    each match are read too, so a traceback logged one line per event is assembled whole."""
    cloudwatch_window_minutes: int = Field(
        60, ge=1, le=20160, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_WINDOW", "cloudwatch_window_minutes")
    )
    """How far back to scan, in minutes (the seed's "errors in the last 60 minutes")."""
    cloudwatch_region: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_REGION", "cloudwatch_region")
    )
    """AWS region; default: the standard chain (AWS_REGION, AWS_DEFAULT_REGION, the profile's)."""
    cloudwatch_profile: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_PROFILE", "cloudwatch_profile")
    )
    """Named AWS profile; default: the standard chain (AWS_PROFILE, env keys, web identity / OIDC role)."""
    cloudwatch_endpoint_url: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_ENDPOINT_URL", "cloudwatch_endpoint_url")
    )
    """Another CloudWatch Logs endpoint (a VPC endpoint, LocalStack)."""
    cloudwatch_max_pages: int = Field(
        10, ge=1, le=100, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_MAX_PAGES", "cloudwatch_max_pages")
    )
    """FilterLogEvents pages (nextToken) read per log group for the matching lines."""
    cloudwatch_context_fetches: int = Field(
        20, ge=0, le=200, validation_alias=_env("SENTRY_AUTOFIX_CLOUDWATCH_CONTEXT", "cloudwatch_context_fetches")
    )
    """Most extra FilterLogEvents calls per scan that read the lines around a match (one per burst
    of matches in a stream); 0 uses the matching lines alone."""
    rollbar_access_token: SecretStr | None = Field(
        None, validation_alias=_env("ROLLBAR_ACCESS_TOKEN", "rollbar_access_token")
    )
    """Rollbar project access token with the `read` scope (`write` to comment back)."""
    rollbar_url: str = Field("https://api.rollbar.com", validation_alias=_env("ROLLBAR_URL", "rollbar_url"))
    """Rollbar API base URL."""
    rollbar_environment: str | None = Field(
        None, validation_alias=_env("SENTRY_AUTOFIX_ROLLBAR_ENVIRONMENT", "rollbar_environment")
    )
    """Only list items of this Rollbar environment (e.g. `production`); empty: all."""
    datadog_api_key: SecretStr | None = Field(None, validation_alias=_env("DD_API_KEY", "datadog_api_key"))
    """Datadog API key."""
    datadog_app_key: SecretStr | None = Field(None, validation_alias=_env("DD_APP_KEY", "datadog_app_key"))
    """Datadog application key; scopes error_tracking_read and logs_read_data (events_write to annotate)."""
    datadog_site: str = Field("datadoghq.com", validation_alias=_env("DD_SITE", "datadog_site"))
    """Datadog site: datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, …"""
    datadog_url: str | None = Field(None, validation_alias=_env("SENTRY_AUTOFIX_DATADOG_URL", "datadog_url"))
    """Full API base URL, overriding DD_SITE (a proxy)."""
    datadog_query: str = Field("", validation_alias=_env("SENTRY_AUTOFIX_DATADOG_QUERY", "datadog_query"))
    """Extra Error Tracking search terms, e.g. `service:orders env:prod`."""
    datadog_track: Literal["trace", "logs", "rum"] = Field(
        "trace", validation_alias=_env("SENTRY_AUTOFIX_DATADOG_TRACK", "datadog_track")
    )
    """Error Tracking track to search: APM traces, logs or RUM."""

    _split_source_lists = field_validator("cloudwatch_log_groups", mode="before")(_split)
    # --- end of the sources block ----------------------------------------------------------------
    _split_relay_lists = field_validator("relay_routes", "relay_actions", "relay_levels", mode="before")(_split)

    _split_lists = field_validator(
        "sentry_projects",
        "labels",
        "blocked_paths",
        "scrub_env",
        "test_env",
        "sandbox_expose",
        "source_roots",
        "path_map",
        "issue_labels",
        "poll_levels",
        "poll_priorities",
        "poll_environments",
        mode="before",
    )(_split)

    @field_validator("path_map")
    @classmethod
    def _check_path_map(cls, value: list[str]) -> list[str]:
        for pair in value:
            if "=" not in pair:
                raise ValueError(f"expected deployed_prefix=repo_prefix, got {pair!r}")
        return value

    @property
    def all_blocked_paths(self) -> list[str]:
        return [*DEFAULT_BLOCKED_PATHS, *self.blocked_paths]

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS[self.llm]

    @property
    def prefix_map(self) -> list[tuple[str, str]]:
        return [tuple(pair.split("=", 1)) for pair in self.path_map]  # type: ignore[misc]

    @model_validator(mode="after")
    def _gitlab_commit_author(self) -> Settings:
        # A GitLab commit should not claim to be GitHub's bot. The address stays the same for every
        # run on one instance: the push recognises our own branch by it.
        if self.gitlab_ci and "commit_author" not in self.model_fields_set:
            host = urlsplit(self.gitlab_url or "").hostname or "gitlab"
            self.commit_author = f"sentry-autofix <sentry-autofix@noreply.{host}>"
        return self

    def secret_values(self) -> list[str]:
        """Every configured secret, for masking in logs and scrubbing from output."""
        secrets = [
            self.sentry_auth_token,
            self.github_token,
            self.anthropic_api_key,
            self.openai_api_key,
            self.slack_webhook_url,
            self.slack_bot_token,
            self.discord_webhook_url,
            self.sentry_webhook_secret,
            self.github_app_private_key,
            self.rollbar_access_token,
            self.datadog_api_key,
            self.datadog_app_key,
            self.gitlab_token,
            self.gitlab_trigger_token,
            *(SecretStr(t) for t in self.gitlab_trigger_tokens().values()),
            self.ci_job_token,
            self.ci_registry_password,
            self.ci_dependency_proxy_password,
            self.ci_deploy_password,
        ]
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]


def trigger_tokens(raw: str) -> dict[str, str]:
    """`glptt-…` (every project) or `group/app=glptt-…,42=glptt-…` (one per project) → project →
    token, `""` for every project. Trigger tokens hold neither `=` nor `,`; project paths neither."""
    raw = raw.strip()
    if "=" not in raw:
        return {"": raw} if raw else {}
    tokens: dict[str, str] = {}
    for pair in raw.split(","):
        project, sep, token = (part.strip() for part in pair.partition("="))
        if not sep or not project or not token:
            raise ValueError(
                "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN: write one token, or `project=token` pairs separated by "
                "commas (e.g. `group/app=glptt-…,42=glptt-…`)"
            )
        tokens[project] = token
    return tokens


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from env plus explicit overrides (CLI flags); errors name the setting."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid setting — " + "; ".join(problems)) from exc


class RunnerEnv(BaseSettings):
    """Just where the Actions runner wants our outputs (issue 4): enough to report a settings error
    as `status: error` in GITHUB_OUTPUT even when the full Settings cannot be built."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", env_ignore_empty=True)

    github_output: str | None = Field(None, validation_alias=_env("GITHUB_OUTPUT", "github_output"))
    github_step_summary: str | None = Field(None, validation_alias=_env("GITHUB_STEP_SUMMARY", "github_step_summary"))
    github_actions: bool = Field(False, validation_alias=_env("GITHUB_ACTIONS", "github_actions"))


def load_runner_env() -> RunnerEnv:
    try:
        return RunnerEnv()
    except ValidationError:
        return RunnerEnv.model_construct(github_output=None, github_step_summary=None, github_actions=False)
