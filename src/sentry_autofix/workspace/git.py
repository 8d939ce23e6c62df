"""Thin wrapper over the real `git` binary; every git call in the package goes through here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from sentry_autofix.errors import GitError


def run_git(
    workspace: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run `git -C workspace args…` and return the completed process (text, errors replaced).

    `env` is added to a copy of the current environment with prompts disabled, so a missing
    credential fails fast instead of hanging the job.
    """
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    try:
        proc = subprocess.run(
            ["git", "-C", str(workspace), *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=full_env,
            input=input_text,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0] if args else ''} timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitError(f"git {args[0] if args else ''} failed: {detail[-1] if detail else proc.returncode}")
    return proc


def is_work_tree(path: Path) -> bool:
    proc = run_git(path, "rev-parse", "--is-inside-work-tree", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def has_commits(path: Path) -> bool:
    return run_git(path, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0
