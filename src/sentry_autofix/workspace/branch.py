"""The fix branch: `sentry-autofix/<short-id>` from the base branch, one commit, one push.

Guardrails (SPEC §6): never push the base branch; never force over a branch we did not create
(the remote branch may be replaced only when it is exactly one commit of ours, with our trailer,
on top of the base); the token reaches git only through the environment of the one `git push`
(and `ls-remote`/`fetch` of that branch), so it works with `actions/checkout`'s
`persist-credentials: false` and nothing is left in `.git/config`.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from unidiff.patch import PatchSet

from sentry_autofix.errors import GitError, GuardViolation
from sentry_autofix.models import FileChange
from sentry_autofix.workspace.git import run_git
from sentry_autofix.workspace.guard import matches_any

TRAILER = "Sentry-Autofix-Issue"


def branch_name(prefix: str, short_id: str | None, issue_id: str) -> str:
    """`sentry-autofix/<short-id>`, reduced to characters every git host accepts in a ref."""
    raw = (short_id or issue_id).strip()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip(".-") or issue_id
    safe = re.sub(r"\.{2,}", ".", safe).removesuffix(".lock")
    return f"{prefix}{safe}"


def parse_author(author: str) -> tuple[str, str]:
    """`Name <email>` → (name, email)."""
    match = re.fullmatch(r"\s*(.+?)\s*<([^<>\s]+)>\s*", author)
    if not match:
        raise GuardViolation(f"SENTRY_AUTOFIX_COMMIT_AUTHOR must look like 'Name <email>', got {author!r}")
    return match.group(1), match.group(2)


# --- which files changed, and are any blocked ------------------------------------------------------


def changed_paths(workspace: Path) -> list[str]:
    """Every path the fix touched (modified, added, deleted, untracked), repo-relative POSIX."""
    out = run_git(workspace, "status", "--porcelain=v1", "-z", "--untracked-files=all").stdout
    paths: list[str] = []
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        paths.append(path)
        if "R" in status or "C" in status:  # renames carry the old path as the next entry
            if i < len(entries) and entries[i]:
                paths.append(entries[i])
            i += 1
    return sorted(set(paths))


def dirty_snapshot(workspace: Path) -> dict[str, str | None]:
    """Changed paths with a cheap fingerprint (size + mtime; None when deleted), to tell the fix's
    edits from dirt left by earlier workflow steps. A stat, not a hash: an unignored
    `node_modules/` may hold 100k files."""
    snap: dict[str, str | None] = {}
    for path in changed_paths(workspace):
        try:
            st = (workspace / path).stat()
        except OSError:
            snap[path] = None
            continue
        snap[path] = f"{st.st_size}:{st.st_mtime_ns}"
    return snap


def touched_since(workspace: Path, before: dict[str, str | None]) -> list[str]:
    """Paths whose content changed after `before` was taken (new dirt, or dirt edited again)."""
    now = dirty_snapshot(workspace)
    return sorted(p for p, digest in now.items() if p not in before or before[p] != digest)


def diff_of(workspace: Path, paths: Sequence[str]) -> tuple[str, list[FileChange]]:
    """Unified diff of `paths` against HEAD (new files included), and per-file counts via unidiff."""
    if not paths:
        return "", []
    run_git(workspace, "add", "--intent-to-add", "--", *paths, check=False)
    try:
        diff = run_git(workspace, "diff", "--no-color", "--no-ext-diff", "HEAD", "--", *paths).stdout
    finally:
        run_git(workspace, "reset", "-q", "--", *paths, check=False)
    files = [
        FileChange(path=p.path, added=p.added, removed=p.removed, is_new=p.is_added_file, is_deleted=p.is_removed_file)
        for p in PatchSet(diff)
    ]
    return diff, files


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    # `**` spans folders, `*`/`?` stay inside one; a pattern without `/` matches the basename anywhere
    # only when it is written `**/x` (we keep gitignore-like but explicit semantics).
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif c == "*":
            out += "[^/]*"
            i += 1
        elif c == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(c)
            i += 1
    return re.compile(out + r"\Z", re.IGNORECASE)


def blocked_paths(paths: Sequence[str], globs: Sequence[str]) -> list[str]:
    """Paths that match a blocked glob (SPEC §6). Case-insensitive: `Migrations/` is still blocked."""
    compiled = [_glob_to_regex(g.strip().lstrip("/")) for g in globs if g.strip()]
    hits = []
    for path in paths:
        posix = path.replace("\\", "/").lstrip("/")
        # The agent's guard decides the same way (so a path its tools refused is refused here too);
        # our own matcher and fnmatch only add hits: a final check can afford to be stricter.
        if (
            matches_any(posix, globs)
            or any(rx.match(posix) for rx in compiled)
            or any(fnmatchcase(posix, g) for g in globs)
        ):
            hits.append(path)
    return hits


# --- commit and push --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    branch: str
    sha: str
    outcome: Literal["created", "updated", "unchanged"]


def auth_env(remote_url: str, token: str | None, user: str = "x-access-token") -> dict[str, str]:
    """Git config for one command, through the environment (never argv, never .git/config).

    Resets any `extraheader` actions/checkout persisted, so GitHub does not see two
    Authorization headers, then adds ours in the form actions/checkout uses (`user` is
    `x-access-token` there; GitLab takes `oauth2` with an access token).
    """
    if not token:
        return {}
    parts = urlsplit(remote_url)
    if parts.scheme not in ("http", "https"):
        return {}
    basic = base64.b64encode(f"{user}:{token}".encode()).decode()
    scoped = f"http.{parts.scheme}://{parts.netloc}/.extraheader"
    entries = [
        ("http.extraheader", ""),
        (scoped, ""),
        (scoped, f"AUTHORIZATION: basic {basic}"),
    ]
    env = {"GIT_CONFIG_COUNT": str(len(entries))}
    for n, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def current_branch(workspace: Path) -> str | None:
    proc = run_git(workspace, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    return proc.stdout.strip() or None


def commit_fix(
    workspace: Path,
    *,
    branch: str,
    base: str,
    message: str,
    author: str,
    issue_id: str,
    prefix: str,
    paths: Sequence[str] | None = None,
) -> str:
    """Create `branch` at the workspace's HEAD with the fix as one commit; return its sha.

    `paths`: only these are committed (what the fix touched, as checked for blocked paths) —
    build output, files earlier workflow steps left or staged, stay out of the PR. The commit is
    built in a temporary index from HEAD plus exactly these paths (literal, never pathspec
    magic), so nothing already staged in the real index can ride along. None commits every change.
    """
    _check_branch(branch, base, prefix)
    name, email = parse_author(author)
    ident = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    if paths is not None and not paths:
        raise GuardViolation("nothing to commit: the fix changed no file")
    parent = run_git(workspace, "rev-parse", "--verify", "HEAD").stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sentry-autofix-commit-") as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        run_git(workspace, "read-tree", parent, env=index)
        if paths is None:
            run_git(workspace, "add", "-A", "--", ".", env=index)
        else:
            run_git(
                workspace,
                "add",
                "-A",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                env=index,
                input_text="\0".join(paths),
            )
        tree = run_git(workspace, "write-tree", env=index).stdout.strip()
    full = f"{message.strip()}\n\n{TRAILER}: {issue_id}\n"
    sha = run_git(workspace, "commit-tree", tree, "-p", parent, "-F", "-", env=ident, input_text=full).stdout.strip()
    # The work tree already holds the fix: point the branch at the commit and HEAD at the branch,
    # and refresh the real index for the committed paths only.
    run_git(workspace, "update-ref", "-m", "sentry-autofix: fix commit", f"refs/heads/{branch}", sha)
    run_git(workspace, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    if paths is None:
        run_git(workspace, "reset", "-q", "--", ".", check=False)
    else:
        run_git(
            workspace,
            "reset",
            "-q",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            input_text="\0".join(paths),
            check=False,
        )
    return sha


def push_branch(
    workspace: Path,
    *,
    branch: str,
    base: str,
    prefix: str,
    issue_id: str,
    author: str,
    token: str | None,
    remote: str = "origin",
    user: str = "x-access-token",
) -> PushResult:
    """Push the fix commit; replace the remote branch only when it is ours (see module doc)."""
    _check_branch(branch, base, prefix)
    ref = f"refs/heads/{branch}"
    sha = run_git(workspace, "rev-parse", "--verify", f"{ref}^{{commit}}").stdout.strip()
    url = run_git(workspace, "remote", "get-url", remote).stdout.strip()
    env = auth_env(url, token, user)
    listed = run_git(workspace, "ls-remote", *_UPLOAD, "--heads", url, ref, env=env).stdout.split()
    if not listed:
        _push(workspace, url, f"{sha}:{ref}", env)
        return PushResult(branch, sha, "created")
    remote_sha = listed[0]
    tracking = f"refs/sentry-autofix/remote/{branch}"
    run_git(workspace, "fetch", "-q", "--no-tags", *_UPLOAD, url, f"+{ref}:{tracking}", env=env)
    _check_ours(workspace, remote_sha, issue_id, author)
    parent = run_git(workspace, "rev-parse", f"{sha}^").stdout.strip()
    remote_parent = run_git(workspace, "rev-parse", f"{remote_sha}^").stdout.strip()
    same_tree = _tree(workspace, sha) == _tree(workspace, remote_sha)
    if same_tree and parent == remote_parent:
        return PushResult(branch, remote_sha, "unchanged")
    # Ours: replace it, but only if nobody moved it since we looked.
    _push(workspace, url, f"{sha}:{ref}", env, lease=f"--force-with-lease={ref}:{remote_sha}")
    return PushResult(branch, sha, "updated")


_UPLOAD = ("--upload-pack=git-upload-pack",)
"""Never a `remote.*.uploadpack` command from config (it runs for local and ssh remotes)."""


def _push(workspace: Path, url: str, refspec: str, env: dict[str, str], lease: str | None = None) -> None:
    """Push exactly one refspec to `url` (the URL, not the remote's name: no configured push
    refspecs, mirror mode or push options apply), hooks off, no tags, no submodules."""
    if not refspec.partition(":")[2].startswith("refs/heads/") or refspec.count(":") != 1:
        raise GuardViolation(f"refusing to push {refspec!r}: one fix branch ref only")
    args = ["push", "-q", "--no-verify", "--no-follow-tags", "--receive-pack=git-receive-pack"]
    if lease:
        args.append(lease)
    proc = run_git(workspace, *args, url, refspec, env=env, check=False)
    if proc.returncode != 0:
        raise GitError(push_failure(proc.stderr, refspec.partition(":")[2]))


def push_failure(stderr: str, ref: str) -> str:
    """What a refused push says, with the server's own reason (its `remote:` lines: GitLab's "You
    are not allowed to push code to protected branches", GitHub's rule violations) and what to
    check — git's last line alone ("failed to push some refs") names neither."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    remote = [line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:")]
    remote = [line for line in remote if line][:5]
    last = next((line for line in reversed(lines) if not line.startswith(("remote:", "hint:"))), "no detail")
    reason = "; ".join([*remote, last]) if remote else last
    return (
        f"git push of {ref} failed: {reason}. Check that the token can push branches (GitHub: "
        "`contents: write`; GitLab: a project access token with Developer role and `write_repository` "
        "or `api` scope) and that the fix branch prefix (SENTRY_AUTOFIX_BRANCH_PREFIX) is not protected"
    )


def _tree(workspace: Path, commit: str) -> str:
    return run_git(workspace, "rev-parse", f"{commit}^{{tree}}").stdout.strip()


def _check_branch(branch: str, base: str, prefix: str) -> None:
    if not prefix or not branch.startswith(prefix) or branch == base or branch in ("main", "master"):
        raise GuardViolation(f"refusing to push {branch!r}: only {prefix}* branches, never the base branch {base!r}")


def _check_ours(workspace: Path, remote_sha: str, issue_id: str, author: str) -> None:
    """The remote branch is ours when its tip is our single commit for this issue on a base commit."""
    _, email = parse_author(author)
    fmt = run_git(workspace, "log", "-1", "--format=%ce%x00%B", remote_sha).stdout
    committer, _, body = fmt.partition("\0")
    ours = committer.strip() == email and re.search(rf"^{TRAILER}: {re.escape(issue_id)}$", body, re.MULTILINE)
    parent_is_ours = run_git(workspace, "log", "-1", "--format=%B", f"{remote_sha}^", check=False).stdout
    if not ours or re.search(rf"^{TRAILER}:", parent_is_ours, re.MULTILINE):
        raise GuardViolation(
            "the remote branch has commits sentry-autofix did not make (someone pushed to it); "
            "not overwriting it. Delete the branch or merge/close its PR, then re-run"
        )


def head_sha(workspace: Path) -> str | None:
    proc = run_git(workspace, "rev-parse", "-q", "--verify", "HEAD", check=False)
    return proc.stdout.strip() or None


__all__ = [
    "GitError",
    "PushResult",
    "auth_env",
    "blocked_paths",
    "branch_name",
    "changed_paths",
    "commit_fix",
    "current_branch",
    "head_sha",
    "push_branch",
]
