"""Run the repository's own test command: `sh -c` in the workspace root, in the sandbox, bounded.

The agent's tests execute code the model wrote, and the model may have been steered by the
Sentry event, so every run goes through `sandbox.py` (SPEC §6): no secret in its environment or
within its reach, no process of ours visible, `.git` read-only, killed whole at its timeout, its
output kept as head + tail. All runs of one fix share a time budget (`test-budget`).

Where no sandbox can be built the tests are not run, unless the user set
`allow-unsandboxed-tests`; then the environment is scrubbed by name, prefix and value, as before
the sandbox existed, and the outcome says `sandboxed=False` so the PR can say so.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sentry_autofix.config import Settings
from sentry_autofix.models import TestOutcome
from sentry_autofix.workspace import diff as wsdiff
from sentry_autofix.workspace import sandbox
from sentry_autofix.workspace.git import is_work_tree
from sentry_autofix.workspace.testids import with_failures

log = logging.getLogger(__name__)

SCRUBBED_NAMES: frozenset[str] = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "SENTRY_AUTH_TOKEN",
        "SENTRY_WEBHOOK_SECRET",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "OPENAI_API_KEY",
        "SLACK_WEBHOOK_URL",
        "SLACK_BOT_TOKEN",
        "DISCORD_WEBHOOK_URL",
        "GITHUB_APP_PRIVATE_KEY",
        "INPUT_GITHUB-TOKEN",
        "INPUT_GITHUB_TOKEN",
    }
)
SCRUBBED_PREFIXES: tuple[str, ...] = ("ACTIONS_",)
"""`ACTIONS_RUNTIME_TOKEN`, `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, cache and results URLs…"""


def scrubbed_env(
    base: Mapping[str, str],
    extra_names: Iterable[str] = (),
    secret_values: Iterable[str] = (),
) -> dict[str, str]:
    """A copy of `base` without credentials (by name, by prefix, and by value): the unsandboxed
    opt-out's environment."""
    names = SCRUBBED_NAMES | {n.strip() for n in extra_names if n.strip()}
    values = {v for v in secret_values if v and len(v) >= 6}
    return {
        k: v
        for k, v in base.items()
        if k not in names and not k.startswith(SCRUBBED_PREFIXES) and not any(s in v for s in values)
    }


def redact(text: str, secret_values: Iterable[str]) -> str:
    for value in secret_values:
        if value and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    return text


@dataclass
class TestExecutor:
    """Runs test commands for one fix: the `TestRunner` the agent's tools and the pipeline call.

    `__call__(command)` → `TestOutcome`; `None` means the configured command.
    """

    __test__ = False  # not a pytest class

    workspace: Path
    command: str | None
    timeout: float
    budget: float
    network: Literal["host", "none"] = "host"
    allow_unsandboxed: bool = False
    passthrough: Sequence[str] = ()
    scrub_names: Sequence[str] = ()
    secret_values: Sequence[str] = ()
    expose: Sequence[str] = ()
    base_env: Mapping[str, str] | None = None
    probe: Callable[[Literal["host", "none"]], sandbox.Isolation] = sandbox.probe
    spent: float = field(default=0.0)
    """Seconds of test time used so far, counted against `budget`."""
    _target: sandbox.Target | None = field(default=None, repr=False)
    _server: sandbox.SandboxServer | None = field(default=None, repr=False)
    _git_tree: bool | None = field(default=None, repr=False)
    """Whether the workspace is a git work tree (asked once per fix, not per run)."""

    def close(self) -> None:
        """Stop the sandbox server of this fix (idempotent)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def __call__(self, command: str | None = None) -> TestOutcome:
        command = command or self.command
        if not command or not command.strip():
            return TestOutcome(status="not-run", command=None, output_tail="no test command configured")
        left = self.budget - self.spent
        if left <= 1:
            return TestOutcome(
                status="not-run",
                command=command,
                output_tail=f"tests not run: the test time budget of {self.budget:.0f}s for this fix is used up "
                "(set SENTRY_AUTOFIX_TEST_BUDGET to allow more)",
            )
        timeout = min(self.timeout, left)
        env_base = os.environ if self.base_env is None else self.base_env
        isolation = self.probe(self.network)
        if isolation.kind != "sandbox" and not self.allow_unsandboxed:
            return self._not_isolated(command, isolation)
        if self._git_tree is None:
            self._git_tree = is_work_tree(self.workspace)
        nested_before = wsdiff.nested_repos(self.workspace) if self._git_tree else None
        try:
            ran = self._run(isolation, command, timeout, env_base)
        finally:
            # A repository a test made (`git init` in a folder) would hide the files below it from
            # every later snapshot and make the commit fail: only its `.git` goes, the files stay.
            if nested_before is not None:
                for folder in wsdiff.drop_new_nested_repos(self.workspace, nested_before):
                    log.info("removed %s/.git, made by the tests", folder)
        self.spent += ran.seconds
        return with_failures(self._outcome(command, ran, timeout))

    def _run(
        self, isolation: sandbox.Isolation, command: str, timeout: float, env_base: Mapping[str, str]
    ) -> sandbox.Ran:
        if isolation.kind == "sandbox":
            names = [n for n in self.passthrough if n not in set(self.scrub_names) | SCRUBBED_NAMES]
            env = sandbox.sandbox_env(env_base, passthrough=names, secret_values=self.secret_values)
            if self._target is None:
                self._target = sandbox.prepare(
                    self.workspace, job_env=env_base, expose=[os.path.expanduser(p) for p in self.expose]
                )
            if self._server is None:
                self._server = sandbox.SandboxServer(isolation)
                # The server is a root process: it must not outlive this executor.
                weakref.finalize(self, self._server.close)
            return sandbox.run_sandboxed(
                isolation, self._target, command, timeout=timeout, env=env, network=self.network, server=self._server
            )
        log.warning("tests run UNISOLATED (allow-unsandboxed-tests): %s", isolation.reason)
        env = scrubbed_env(env_base, self.scrub_names, self.secret_values)
        return sandbox.run_unsandboxed(self.workspace, command, timeout=timeout, env=env)

    @staticmethod
    def _not_isolated(command: str, isolation: sandbox.Isolation) -> TestOutcome:
        return TestOutcome(
            status="not-run",
            command=command,
            output_tail=(
                f"tests not run: no sandbox can be built on this runner ({isolation.reason}). Tests run "
                "model-written code, so they need root or passwordless sudo for Linux namespaces; or set "
                "SENTRY_AUTOFIX_ALLOW_UNSANDBOXED_TESTS=true (input allow-unsandboxed-tests) to run them "
                "without isolation"
            ),
        )

    def _outcome(self, command: str, ran: sandbox.Ran, timeout: float) -> TestOutcome:
        tail = redact(ran.output, self.secret_values)
        if ran.setup_error:
            return TestOutcome(
                status="not-run",
                command=command,
                output_tail=f"tests not run: the sandbox could not be built: {ran.setup_error}",
                seconds=ran.seconds,
            )
        if ran.exit_code is None:
            limit = "SENTRY_AUTOFIX_TEST_TIMEOUT" if timeout >= self.timeout else "SENTRY_AUTOFIX_TEST_BUDGET"
            tail += f"\n[timed out after {timeout:.0f}s: set {limit} to allow longer]"
            return TestOutcome(
                status="failed",
                command=command,
                exit_code=None,
                output_tail=tail,
                seconds=ran.seconds,
                sandboxed=ran.sandboxed,
            )
        return TestOutcome(
            status="passed" if ran.exit_code == 0 else "failed",
            command=command,
            exit_code=ran.exit_code,
            output_tail=tail,
            seconds=ran.seconds,
            sandboxed=ran.sandboxed,
        )


def executor_for(workspace: Path, settings: Settings) -> TestExecutor:
    """The executor a real run uses, from the user's settings."""
    return TestExecutor(
        workspace=workspace,
        command=settings.test_command,
        timeout=settings.test_timeout,
        budget=settings.test_budget,
        network=settings.test_network,
        allow_unsandboxed=settings.allow_unsandboxed_tests,
        passthrough=settings.test_env,
        scrub_names=settings.scrub_env,
        secret_values=settings.secret_values(),
        expose=settings.sandbox_expose,
    )
