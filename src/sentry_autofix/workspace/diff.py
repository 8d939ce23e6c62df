"""What changed in the workspace, as git sees it, and how to put it back.

The change the agent made is always computed here, from git, never taken from the model's word
(SPEC §5). Snapshots are tree objects written through a *temporary* index (`GIT_INDEX_FILE`), so
the user's real index is never touched and `git status --porcelain` is exactly as we found it
after `restore()`. A baseline is taken before the agent starts: it includes files that were
already modified or untracked, so a dirty checkout is neither blamed on the model nor lost.

Ignored files are the user's (`.env`, `node_modules/`): nothing here deletes one, and "ignored" is
judged by the ignore rules the baseline tree holds, not by the work tree's `.gitignore`, which the
model or a test may have rewritten first. Paths are literal (`--literal-pathspecs`): a file named
`:(top)` or `*` is that file, never "everything". Removal is linear in the number of files.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
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
    nested: frozenset[str] = frozenset()
    """Folders that held their own `.git` at the start (the user's; left alone)."""


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
    # --literal-pathspecs: model-chosen file names reach `git add` here (issue 9: `:(top)` added
    # every ignored file to the snapshot, and the restore then deleted them).
    return run_git(
        workspace, "--literal-pathspecs", "-c", "core.quotePath=false", *args, env=env, input_text=input_text
    ).stdout


def untracked_files(workspace: Path) -> frozenset[str]:
    """Untracked, not-ignored files; a nested repository shows as one `folder/` entry."""
    out = _git(workspace, "ls-files", "-z", "--others", "--exclude-standard")
    return frozenset(p for p in out.split("\0") if p)


def nested_repos(workspace: Path, untracked: Iterable[str] | None = None) -> frozenset[str]:
    """Folders below the root that hold a `.git` of their own (folder or file), outside ignored
    places: what git treats as a repository boundary.

    A test can `git init` anywhere it may write. git then stops at that folder: `git add -A`
    fails on it ("does not have a commit checked out") or records it as an embedded repository,
    and files the fix wrote below it silently drop out of every snapshot (red team, issue 9).
    Found without walking the tree: git lists an untracked nested repository as `folder/`, and a
    folder that holds tracked files is checked with one `lstat`.
    """
    entries = untracked_files(workspace) if untracked is None else untracked
    found = {e.rstrip("/") for e in entries if e.endswith("/")}
    tracked = _git(workspace, "ls-files", "-z").split("\0")
    folders: set[str] = set()
    for path in tracked:
        folder = posixpath.dirname(path)
        while folder and folder not in folders:
            folders.add(folder)
            folder = posixpath.dirname(folder)
    found |= {f for f in folders if os.path.lexists(workspace / f / ".git")}
    return frozenset(found)


def drop_new_nested_repos(workspace: Path, known: Iterable[str]) -> list[str]:
    """Delete the `.git` of every nested repository not in `known` (the files stay, and become
    plain untracked files again: the fix's if a tool wrote them, test artifacts otherwise)."""
    keep = set(known)
    real: dict[str, bool] = {"": True}
    dropped = []
    for folder in sorted(nested_repos(workspace) - keep):
        if not _real_dir(workspace, folder, real):
            continue  # reached through a symlink: not ours to delete through
        target = workspace / folder / ".git"
        try:
            if stat.S_ISDIR(os.lstat(target).st_mode):
                shutil.rmtree(target)
            else:
                os.unlink(target)
        except OSError:
            continue
        dropped.append(folder)
    return dropped


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
    untracked = untracked_files(workspace)
    with _temp_index(workspace) as env:
        _seed_index(workspace, env, "HEAD" if has_commits(workspace) else None)
        # Not `add -A`: it fails on a nested repository without commits and records one with
        # commits as an embedded repo. Tracked changes, then the untracked files git lists (a
        # nested repository's `folder/` entry is not a file, so it stays out, untouched).
        _git(workspace, "add", "-u", "--", ".", env=env)
        _add_paths(workspace, env, untracked)
        tree = _git(workspace, "write-tree", env=env).strip()
    return Baseline(tree=tree, untracked=untracked, nested=nested_repos(workspace, untracked))


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
    optionally for the paths in `only`. A file `target`'s ignore rules ignore is never deleted."""
    keep = None if only is None else set(only)
    to_write: list[str] = []
    to_remove: list[str] = []
    for status, path in changed_paths(workspace, current, target):
        if keep is not None and path not in keep:
            continue
        if status == "D":  # in current, not in target
            to_remove.append(path)
        else:
            to_write.append(path)
    ignored = ignored_by_tree(workspace, target, to_remove)
    _remove_paths(workspace, (p for p in to_remove if p not in ignored))
    checkout_tree(workspace, target, to_write)


# -- ignore rules as the baseline had them ---------------------------------------------------------


@lru_cache(maxsize=16)
def _ignore_files(workspace: Path, tree: str) -> tuple[tuple[str, str], ...]:
    """Every `.gitignore` a tree holds, with its text (a tree id names its content: cacheable)."""
    files: list[tuple[str, str]] = []
    for entry in _git(workspace, "ls-tree", "-r", "-z", "--full-tree", tree).split("\0"):
        meta, _, path = entry.partition("\t")
        fields = meta.split()
        # git does not follow a symlinked .gitignore either (2.32+), so neither do we.
        if (
            len(fields) == 3
            and fields[0] in ("100644", "100755")
            and fields[1] == "blob"
            and posixpath.basename(path) == ".gitignore"
        ):
            files.append((path, _git(workspace, "cat-file", "blob", fields[2])))
    return tuple(files)


_EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def ignored_by_tree(workspace: Path, tree: str, paths: Iterable[str]) -> set[str]:
    """The subset of `paths` ignored under the rules `tree` holds (its `.gitignore` files) plus
    `.git/info/exclude` — whatever the work tree's `.gitignore` files say now. Tracked or not is
    not considered: callers ask about files outside the index, existing or not.

    How, exactly as git decides and with no file created per path: a scratch work tree holds only
    the tree's `.gitignore` files, a temporary index lists `paths` (as empty blobs; no object is
    written), and `ls-files --cached --ignored` names those the rules ignore. `check-ignore`
    would be simpler, but it refuses to run with literal pathspecs, which every git call uses.
    """
    wanted = {p for p in paths if p}
    # A `.git` component cannot enter an index; such a path is private anyway: treat as ignored.
    odd = {p for p in wanted if ".git" in (part.lower() for part in p.split("/"))}
    wanted -= odd
    if not wanted:
        return odd
    git_dir = _git(workspace, "rev-parse", "--absolute-git-dir").strip()
    with tempfile.TemporaryDirectory(prefix="sentry-autofix-ignores-") as scratch, _temp_index(workspace) as env:
        for rel, content in _ignore_files(workspace, tree):
            dest = Path(scratch, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(content, encoding="utf-8")
        where = ("--git-dir", git_dir, "--work-tree", scratch)
        entries = "".join(f"100644 {_EMPTY_BLOB}\t{p}\0" for p in sorted(wanted))
        listed = run_git(
            Path(scratch), *where, "update-index", "-z", "--index-info", env=env, input_text=entries, check=False
        )
        if listed.returncode != 0:
            # Paths git cannot index together (a file and a folder of one name): when in doubt, a
            # path counts as ignored — kept by the cleanup, refused to the model.
            return odd | wanted
        out = run_git(
            Path(scratch),
            *where,
            "-c",
            "core.quotePath=false",
            "ls-files",
            "-z",
            "--cached",
            "--ignored",
            "--exclude-standard",
            env=env,
        ).stdout
    return odd | {p for p in out.split("\0") if p in wanted}


def ignored_at_baseline(workspace: Path, baseline: Baseline, paths: Iterable[str]) -> set[str]:
    """`paths` the ignore rules in force when the baseline was taken ignore."""
    return ignored_by_tree(workspace, baseline.tree, paths)


# -- removal ---------------------------------------------------------------------------------------


def _real_dir(workspace: Path, rel_dir: str, seen: dict[str, bool]) -> bool:
    """Whether `rel_dir` is a folder of the workspace reached without any symlink (memoised)."""
    if rel_dir not in seen:
        ok = _real_dir(workspace, posixpath.dirname(rel_dir), seen)
        if ok:
            try:
                ok = stat.S_ISDIR(os.lstat(workspace / rel_dir).st_mode)
            except OSError:
                ok = False
        seen[rel_dir] = ok
    return seen[rel_dir]


def _remove_paths(workspace: Path, rels: Iterable[str]) -> None:
    """Delete files (a symlink itself, never its target), then the folders that left empty.

    Linear in the number of paths: each file is unlinked once and each folder tried once, deepest
    first (listing the folder after every file was quadratic: 100,000 test artifacts in one folder
    took over 10 minutes). A path below a symlinked folder is skipped — git never lists one, so
    it appeared since, and deleting through it could reach outside the workspace.
    """
    real: dict[str, bool] = {"": True}
    parents: set[str] = set()
    for rel in rels:
        parent = posixpath.dirname(rel)
        if not _real_dir(workspace, parent, real):
            continue
        try:
            os.unlink(workspace / rel)
        except OSError:
            continue  # gone already, or a folder now: not a file we can remove
        parents.add(parent)
    folders: set[str] = set()
    for folder in parents:
        while folder and folder not in folders:
            folders.add(folder)
            folder = posixpath.dirname(folder)
    for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        try:
            os.rmdir(workspace / folder)
        except OSError:
            pass  # not empty (or not ours): kept


def remove_artifacts(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> None:
    """Delete untracked files that appeared since the baseline and no tool wrote — except those
    the baseline's ignore rules ignore (a test may have rewritten `.gitignore` to expose `.env`)."""
    drop_new_nested_repos(workspace, baseline.nested)
    _remove_new_untracked(workspace, baseline, written)


def _remove_new_untracked(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> None:
    candidates = untracked_files(workspace) - baseline.untracked - set(written)
    ignored = ignored_at_baseline(workspace, baseline, candidates)
    _remove_paths(workspace, sorted(candidates - ignored))


def restore(workspace: Path, baseline: Baseline, written: Iterable[str] = ()) -> None:
    """Put the workspace back as `take_baseline` found it (files the agent or its tests made go;
    files the baseline's rules ignore stay, whoever touched them)."""
    drop_new_nested_repos(workspace, baseline.nested)  # first: files below one are then seen
    current = snapshot(workspace, baseline, written)
    move_to_tree(workspace, current, baseline.tree)
    _remove_new_untracked(workspace, baseline)
