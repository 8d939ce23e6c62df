"""What changed in the workspace, as git sees it, and how to put it back.

The change the agent made is always computed here, from git, never taken from the model's word
(SPEC §5). Snapshots are tree objects written through a *temporary* index (`GIT_INDEX_FILE`), so
the user's real index is never touched and `git status --porcelain` is exactly as we found it
after `restore()`. A baseline is taken before the agent starts: it includes files that were
already modified or untracked, so a dirty checkout is neither blamed on the model nor lost.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from unidiff.patch import PatchSet

from sentry_autofix.models import FileChange
from sentry_autofix.workspace.git import has_commits, run_git

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""The well-known id of git's empty tree (a workspace with no commits yet starts here)."""

_DIFF_FLAGS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",  # both sides of a move are then visible to the blocked-path check
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


@dataclass(frozen=True)
class Baseline:
    """The workspace as the agent found it."""

    tree: str
    untracked: frozenset[str]
    """Untracked, not-ignored files present at the start (kept by restore)."""


@contextmanager
def _temp_index(workspace: Path) -> Iterator[dict[str, str]]:
    fd, name = tempfile.mkstemp(prefix="sentry-autofix-index-")
    os.close(fd)
    os.unlink(name)  # git wants to create it itself
    try:
        yield {"GIT_INDEX_FILE": name}
    finally:
        for leftover in (name, name + ".lock"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _git(workspace: Path, *args: str, env: dict[str, str] | None = None, input_text: str | None = None) -> str:
    return run_git(workspace, "-c", "core.quotePath=false", *args, env=env, input_text=input_text).stdout


def untracked_files(workspace: Path) -> frozenset[str]:
    out = _git(workspace, "ls-files", "-z", "--others", "--exclude-standard")
    return frozenset(p for p in out.split("\0") if p)


def _seed_index(workspace: Path, env: dict[str, str], fallback_tree: str | None) -> None:
    """Start the temporary index from a copy of the real one: its stat data lets `git add` skip
    unchanged files instead of hashing the whole repository (seconds on a large checkout)."""
    real = Path(_git(workspace, "rev-parse", "--git-path", "index").strip())
    real = real if real.is_absolute() else workspace / real
    if real.is_file():
        # copy2 keeps the index's mtime: git's racy-entry check compares it with each file's, and a
        # fresh mtime would let a same-size edit made in the same second pass as unchanged.
        shutil.copy2(real, env["GIT_INDEX_FILE"])
    elif fallback_tree:
        _git(workspace, "read-tree", fallback_tree, env=env)


def _add_paths(workspace: Path, env: dict[str, str], paths: Iterable[str]) -> None:
    present = sorted(p for p in set(paths) if (workspace / p).is_file() or (workspace / p).is_symlink())
    if present:
        # --force: tools refuse ignored paths, but the model may later edit .gitignore itself.
        _git(
            workspace,
            "add",
            "--force",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            env=env,
            input_text="\0".join(present),
        )


def take_baseline(workspace: Path) -> Baseline:
    """Snapshot tracked files (with uncommitted edits) and untracked files into a tree object."""
    with _temp_index(workspace) as env:
        _seed_index(workspace, env, "HEAD" if has_commits(workspace) else None)
        _git(workspace, "add", "-A", "--", ".", env=env)
        tree = _git(workspace, "write-tree", env=env).strip()
    return Baseline(tree=tree, untracked=untracked_files(workspace))


def snapshot(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> str:
    """A tree of the current state: baseline files as they are now, plus the new files in `written`.

    New untracked files that no tool wrote (coverage data, junit reports…) are test artifacts,
    not part of the fix; changes to files the baseline knows are always included, whoever made them.
    """
    with _temp_index(workspace) as env:
        _seed_index(workspace, env, baseline.tree)
        _git(workspace, "add", "-u", "--", ".", env=env)
        # Files that were untracked at the start belong to the baseline, and written ones to the fix.
        _add_paths(workspace, env, baseline.untracked | set(written))
        return _git(workspace, "write-tree", env=env).strip()


def diff_trees(workspace: Path, old: str, new: str) -> str:
    return _git(workspace, "diff", *_DIFF_FLAGS, old, new)


def workspace_diff(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> str:
    """Unified diff from the baseline to the current workspace."""
    return diff_trees(workspace, baseline.tree, snapshot(workspace, baseline, written))


def file_changes(diff_text: str) -> list[FileChange]:
    """Per-file line counts, from the diff itself (unidiff)."""
    changes = []
    for patched in PatchSet(diff_text):
        changes.append(
            FileChange(
                path=patched.path,
                added=patched.added,
                removed=patched.removed,
                is_new=patched.is_added_file,
                is_deleted=patched.is_removed_file,
            )
        )
    return changes


def changed_paths(workspace: Path, old: str, new: str) -> list[tuple[str, str]]:
    """(status letter, path) between two trees: A added, D deleted, M modified…"""
    out = _git(workspace, "diff", "--no-renames", "--name-status", "-z", old, new)
    fields = [f for f in out.split("\0") if f]
    return [(fields[i][0], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def checkout_tree(workspace: Path, tree: str, paths: Iterable[str]) -> None:
    """Write `paths` as they are in `tree` into the work tree (real index untouched)."""
    wanted = sorted(set(paths))
    if not wanted:
        return
    with _temp_index(workspace) as env:
        _git(workspace, "read-tree", tree, env=env)
        _git(workspace, "checkout-index", "-f", "-z", "--stdin", env=env, input_text="\0".join(wanted))


def move_to_tree(workspace: Path, current: str, target: str, only: Iterable[str] | None = None) -> None:
    """Make the work tree match `target` wherever it differs from `current` (both snapshots),
    optionally for the paths in `only`."""
    keep = None if only is None else set(only)
    to_write: list[str] = []
    for status, path in changed_paths(workspace, current, target):
        if keep is not None and path not in keep:
            continue
        if status == "D":  # in current, not in target
            _remove(workspace, path)
        else:
            to_write.append(path)
    checkout_tree(workspace, target, to_write)


def _remove(workspace: Path, rel: str) -> None:
    full = workspace / rel
    if full.is_symlink() or full.is_file():
        full.unlink()
    # Drop folders the change created and left empty, never above the workspace root.
    parent = full.parent
    while parent != workspace and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def remove_artifacts(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> None:
    """Delete untracked, not-ignored files that appeared since the baseline and no tool wrote."""
    for rel in untracked_files(workspace) - baseline.untracked - set(written):
        _remove(workspace, rel)


def restore(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> None:
    """Put the workspace back as `take_baseline` found it (files the agent or its tests made go)."""
    current = snapshot(workspace, baseline, written)
    move_to_tree(workspace, current, baseline.tree)
    remove_artifacts(workspace, baseline)
