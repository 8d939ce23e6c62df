"""Thin wrapper over the real `git` binary; every git call in the package goes through here.

Our git must never execute repository content (issue 9): the repository's tests, and the model
that writes them, are hostile, and our git holds the push credential. So every call runs with
hooks pointed at `/dev/null`, fsmonitor off, no credential helper, no pager or editor, no
system or global config, `ext::` and other unusual transports refused, and every filter / diff /
merge driver named in the repository's config emptied. Paths are always literal
(`GIT_LITERAL_PATHSPECS=1`): a file the model names `:(top)` or `*` is that file, not pathspec
magic.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from sentry_autofix.errors import GitError

SAFE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.attributesFile", "/dev/null"),
    ("core.askPass", ""),
    ("core.pager", "cat"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("credential.helper", ""),  # an empty value resets the list of helpers
    ("protocol.allow", "never"),
    ("protocol.file.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.https.allow", "always"),
    ("protocol.ssh.allow", "always"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("push.recurseSubmodules", "no"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    # Hooks and drivers are disabled, so a repository owned by another user is no danger.
    ("safe.directory", "*"),
)
"""Command-line config wins over every file, so these hold whatever `.git/config` says."""

_DRIVER_KEYS = r"^(filter\..+\.(clean|smudge|process|required)|diff\..+\.textconv)$"
"""Emptied on every call. `diff.external` and `diff.<driver>.command` are left alone (an empty
one makes git fail): every `git diff` we run gets `--no-ext-diff`, which disables both."""

_DROPPED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "SSH_ASKPASS",
    "GIT_TRACE",
    "GIT_TRACE2",
    "GIT_TRACE2_EVENT",
    "GIT_TRACE_PACKET",
    "GIT_TRACE_CURL",
)
"""Inherited variables that would point our git elsewhere or log what it sends."""


_PATHNAME_COMMANDS = frozenset({"check-ignore", "check-attr"})
"""Commands that take plain path names, never pathspec magic, and refuse to run under
`GIT_LITERAL_PATHSPECS` ("pathspec magic not supported by this command: 'literal'")."""


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",  # empty: no askpass program at all (not even SSH_ASKPASS)
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_LITERAL_PATHSPECS": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "LC_ALL": "C",
        }
    )
    return env


def _safe_args(extra: tuple[tuple[str, str], ...] = ()) -> list[str]:
    out: list[str] = []
    for key, value in (*SAFE_CONFIG, *extra):
        out += ["-c", f"{key}={value}"]
    return out


@functools.lru_cache(maxsize=256)
def _emptied_drivers(workspace: str, config_mtime: float) -> tuple[tuple[str, str], ...]:
    """Every filter/diff/merge driver the repository's config names, set to nothing: a driver is
    a command git runs on `add`, `status`, `diff` or `checkout`."""
    try:
        proc = subprocess.run(
            ["git", "-C", workspace, *_safe_args(), "config", "--name-only", "--get-regexp", _DRIVER_KEYS],
            capture_output=True,
            text=True,
            errors="replace",
            env=_base_env(),
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    emptied = []
    for name in sorted(set(proc.stdout.split())):
        # An empty textconv makes git fail; `cat` shows the file as it is.
        value = "false" if name.endswith(".required") else "cat" if name.endswith(".textconv") else ""
        emptied.append((name, value))
    return tuple(emptied)


def _config_mtime(workspace: Path) -> float:
    # Cheap cache key: the config of a normal checkout. Worktrees and odd layouts just miss the
    # cache when their config changes, which is harmless.
    try:
        return (workspace / ".git" / "config").stat().st_mtime
    except OSError:
        return 0.0


def run_git(
    workspace: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run `git -C workspace args…` hardened (see module doc) and return the completed process
    (text, errors replaced).

    `env` is added to the hardened environment with prompts disabled, so a missing credential
    fails fast instead of hanging the job.
    """
    full_env = {**_base_env(), **(env or {})}
    if args and args[0] in _PATHNAME_COMMANDS:
        del full_env["GIT_LITERAL_PATHSPECS"]
    if args and args[0] == "diff" and "--no-ext-diff" not in args:
        args = ("diff", "--no-ext-diff", *args[1:])
    drivers = _emptied_drivers(str(workspace), _config_mtime(workspace))
    try:
        # Bytes, decoded here: text mode's universal newlines would turn a lone `\r` inside a file
        # (model-written or the user's) into a line break, and the diff we show and parse would
        # no longer be the one git commits.
        raw = subprocess.run(
            ["git", "-C", str(workspace), *_safe_args(drivers), *args],
            capture_output=True,
            env=full_env,
            input=None if input_text is None else input_text.encode("utf-8", "surrogateescape"),
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0] if args else ''} timed out after {timeout:.0f}s") from exc
    proc = subprocess.CompletedProcess(
        raw.args, raw.returncode, raw.stdout.decode("utf-8", "replace"), raw.stderr.decode("utf-8", "replace")
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitError(f"git {args[0] if args else ''} failed: {detail[-1] if detail else proc.returncode}")
    return proc


def is_work_tree(path: Path) -> bool:
    proc = run_git(path, "rev-parse", "--is-inside-work-tree", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def has_commits(path: Path) -> bool:
    return run_git(path, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0
