"""`sentry-autofix run` inside a GitLab CI/CD job: log sections, dotenv outputs, summary file.

GitLab Runner has no workflow commands (nothing in the job log is obeyed), so there is no mask
command to send: masked CI/CD variables are hidden by GitLab itself, and every configured secret is
also scrubbed (`***`) from everything we print or write. Logs still go through
`neutral.NeutralStream`: ANSI and control characters are stripped from every line, so Sentry or
model text can neither colour the log nor forge a collapsible section (a section marker needs `\\r`
and ESC, which only `NeutralStream.section` writes).

Which run this is comes from `CI_PIPELINE_SOURCE`
(docs.gitlab.com/ci/jobs/job_rules/#ci_pipeline_source-predefined-variable):
`trigger`/`api`/`pipeline` (the relay, `poll --dispatch`) behave like `repository_dispatch`,
`web`/`chat` like `workflow_dispatch`, `schedule` polls Sentry. The issue id is the
`SENTRY_AUTOFIX_ISSUE_ID` pipeline variable (the component's `issue-id` input sets it).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from sentry_autofix import neutral
from sentry_autofix.actions import Runner, scrub

SOURCE_TO_EVENT = {
    "trigger": "repository_dispatch",
    "api": "repository_dispatch",
    "pipeline": "repository_dispatch",
    "web": "workflow_dispatch",
    "chat": "workflow_dispatch",
    "schedule": "schedule",
}
"""CI_PIPELINE_SOURCE → the GitHub event whose behaviour the run takes."""

_DOTENV_KEY = re.compile(r"[^A-Za-z0-9_]")


def event_name(pipeline_source: str | None) -> str | None:
    return SOURCE_TO_EVENT.get(pipeline_source or "")


def dotenv_key(name: str) -> str:
    """`pr-url` → `SENTRY_AUTOFIX_PR_URL`: dotenv report keys are variable names."""
    return "SENTRY_AUTOFIX_" + _DOTENV_KEY.sub("_", name).upper()


def dotenv_value(value: str) -> str:
    """One line, no quotes to unbalance: GitLab's dotenv report takes `KEY=value` lines only
    (docs.gitlab.com/ci/yaml/artifacts_reports/#artifactsreportsdotenv); multi-line values are cut
    to their first line."""
    first = neutral.one_line(value)
    return first.replace("\n", " ")


class GitLabRunner(Runner):
    """The `Runner` for GitLab CI: same calls as the Actions one, GitLab's log and file formats."""

    def __init__(
        self,
        *,
        dotenv_path: str | None,
        summary_path: str | None,
        secret_values: Sequence[str] = (),
        stream: TextIO | None = None,
        log: TextIO | None = None,
    ) -> None:
        super().__init__(
            enabled=True,
            output_path=None,
            summary_path=summary_path,
            secret_values=secret_values,
            stream=stream,
            log=log,
        )
        self.dotenv_path = Path(dotenv_path) if dotenv_path else None

    def mask_secrets(self) -> None:
        """Nothing to send: GitLab masks CI/CD variables marked Masked; we scrub the rest."""

    def log_untrusted(self, title: str, text: str) -> None:
        # No command channel to stop; NeutralStream still strips escapes and control characters.
        self.log(f"{title}\n{text}")

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        name = "sentry_autofix_" + secrets.token_hex(4)
        header = neutral.one_line(scrub(title, self.secret_values), 200)
        self.log_stream.section(f"\x1b[0Ksection_start:{int(time.time())}:{name}[collapsed=true]\r\x1b[0K{header}")
        try:
            yield
        finally:
            self.log_stream.section(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K")

    def error(
        self, message: str, *, file: str | None = None, line: int | None = None, title: str | None = None
    ) -> None:
        message = scrub(message, self.secret_values)
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        self.log(f"ERROR: {title + ': ' if title else ''}{where}{message}")

    def annotate(self, message: str, *, file: str, line: int | None, title: str) -> None:
        """GitLab has no annotations: a plain line, not `ERROR:` (the run itself is fine)."""
        where = f"{file}:{line}" if line else file
        self.log(f"{title} at {where}: {scrub(message, self.secret_values)}")

    def warning(self, message: str) -> None:
        self.log(f"WARNING: {scrub(message, self.secret_values)}")

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """`artifacts:reports:dotenv`: later jobs read `SENTRY_AUTOFIX_STATUS`, `…_PR_URL`, …"""
        if self.dotenv_path is None:
            return
        lines = [f"{dotenv_key(k)}={dotenv_value(scrub(v, self.secret_values))}\n" for k, v in outputs.items()]
        with self.dotenv_path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
