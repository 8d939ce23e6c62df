"""Run the repository's own test command: `sh -c` in the workspace root, bounded, secrets scrubbed.

The agent's tests execute code the model wrote, so the environment they see carries no token that
could leave the job (SPEC §6): GitHub, Sentry and LLM credentials, the runner's `ACTIONS_*` tokens,
any variable the user names in `SENTRY_AUTOFIX_SCRUB_ENV`, and any variable whose value equals a
configured secret. `PATH` and the rest of the toolchain's environment are preserved (SPEC §11).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sentry_autofix.models import TestOutcome

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

TAIL_CHARS = 6_000


def scrubbed_env(
    base: Mapping[str, str],
    extra_names: Iterable[str] = (),
    secret_values: Iterable[str] = (),
) -> dict[str, str]:
    """A copy of `base` without credentials (by name, by prefix, and by value)."""
    names = SCRUBBED_NAMES | {n.strip() for n in extra_names if n.strip()}
    values = {v for v in secret_values if v and len(v) >= 6}
    return {k: v for k, v in base.items() if k not in names and not k.startswith(SCRUBBED_PREFIXES) and v not in values}


def redact(text: str, secret_values: Iterable[str]) -> str:
    for value in secret_values:
        if value and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    return text


def _tail(path: Path, limit: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size > limit * 4:
            fh.seek(size - limit * 4)
        data = fh.read().decode("utf-8", errors="replace")
    if len(data) > limit or size > limit * 4:
        return "[… output truncated …]\n" + data[-limit:]
    return data


def run_test_command(
    workspace: Path,
    command: str | None,
    *,
    timeout: float,
    scrub_names: Sequence[str] = (),
    secret_values: Sequence[str] = (),
    tail_chars: int = TAIL_CHARS,
    base_env: Mapping[str, str] | None = None,
) -> TestOutcome:
    """Run `command` with `sh -c` in `workspace`; `not-run` when there is no command."""
    if not command or not command.strip():
        return TestOutcome(status="not-run", command=None, output_tail="no test command configured")
    env = scrubbed_env(os.environ if base_env is None else base_env, scrub_names, secret_values)
    started = time.monotonic()
    # Output goes to a file, not a pipe: a test suite may print megabytes, we keep only the tail.
    with tempfile.NamedTemporaryFile(prefix="sentry-autofix-tests-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    try:
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                ["sh", "-c", command],
                cwd=workspace,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so a timeout kills the whole process group
            )
            timed_out = False
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                code = proc.wait()
        tail = redact(_tail(log_path, tail_chars), secret_values)
    finally:
        log_path.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    if timed_out:
        tail += f"\n[timed out after {timeout:.0f}s: set SENTRY_AUTOFIX_TEST_TIMEOUT to allow longer]"
        return TestOutcome(status="failed", command=command, exit_code=None, output_tail=tail, seconds=seconds)
    return TestOutcome(
        status="passed" if code == 0 else "failed",
        command=command,
        exit_code=code,
        output_tail=tail,
        seconds=seconds,
    )
