"""The path guard: every file the agent, triage or the model's context reads or writes passes here
(SPEC §6; docs/guard.md).

A path is accepted only when it names a file inside the workspace, without `..`, and resolves
(after following symlinks; a loop is a refusal, not a crash) inside the workspace too. Edits are
refused under blocked globs (`Settings.all_blocked_paths`); reads are refused under secret globs
(`config.SECRET_READ_PATHS`), inside `.git/` (actions/checkout may persist the job token in
`.git/config`), for anything but a regular file, and for files git does not track — a committed
symlink `config/settings.py -> ../.env` names a tracked file but resolves to an ignored one, and
ignored or untracked files are the user's and the runner's (`.env`, `gha-creds-*.json`), not the
repository's. Files the agent wrote itself stay readable, and `Settings.read_untracked` opens
untracked, not ignored files. Sizes are capped so a hostile or huge file cannot flood the model's
context. The final diff is checked again, independent of what the tools allowed, because running
tests executes code that may write anywhere.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from unidiff.patch import PatchSet

from sentry_autofix.config import SECRET_READ_PATHS, Settings
from sentry_autofix.errors import GuardViolation
from sentry_autofix.workspace.git import is_work_tree, run_git

ALWAYS_PRIVATE: tuple[str, ...] = (".git", ".git/**", "**/.git", "**/.git/**")
"""Never read nor written: the repository's own machinery (hooks would run code; config holds tokens)."""


class BlockedPath(GuardViolation):
    """An edit under a blocked glob (as opposed to a malformed or escaping path)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """gitignore-flavoured glob → regex: `**` spans folders, `*` stays within one, a trailing `/`
    means "everything below", and a pattern without `/` matches a name at any depth."""
    pat = pattern.strip().lstrip("/")
    if pat.endswith("/"):
        pat += "**"
    if "/" not in pat:
        pat = "**/" + pat
    out = []
    i = 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("/**", i) and i + 3 == len(pat):
            out.append("(?:/.*)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    # Case-insensitive: refusing `Migrations/` too costs nothing, and protects case-folding filesystems.
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def matches_any(rel_path: str, patterns: Iterable[str]) -> str | None:
    """The first glob that matches `rel_path` (or one of its parent folders), or None."""
    parts = PurePosixPath(rel_path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        rx = _glob_regex(pattern)
        if any(rx.match(c) for c in candidates):
            return pattern
    return None


_SKIP_WALK = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".tox"})
"""Folders never indexed when the workspace is a plain folder (no git to say what is tracked)."""


def resolve(path: Path, shown: str) -> Path:
    """`path` with every symlink followed, or GuardViolation when that is impossible: a symlink
    loop (RuntimeError from `Path.resolve()` up to Python 3.12; 3.13 leaves the looping link in
    the result) or a folder that cannot be searched."""
    try:
        resolved = path.resolve()
        looping = resolved.is_symlink()
    except (RuntimeError, OSError) as exc:
        raise GuardViolation(f"{shown}: cannot be resolved ({type(exc).__name__}: symlink loop?)") from None
    if looping:
        raise GuardViolation(f"{shown}: cannot be resolved (symlink loop)")
    return resolved


@dataclass(frozen=True)
class GuardLimits:
    max_read_bytes: int = 1_000_000
    """Files larger than this are refused for reading (minified bundles, dumps)."""
    max_read_lines: int = 400
    """Lines returned by one `read_file` call; the model pages with start_line/end_line."""
    max_read_chars: int = 40_000
    max_write_bytes: int = 400_000
    max_search_chars: int = 12_000
    max_list_entries: int = 400
    max_test_output_chars: int = 6_000


class PathGuard:
    """Decides, for one workspace, which paths the agent may read and which it may change."""

    def __init__(
        self,
        root: Path,
        blocked: Sequence[str],
        secret_reads: Sequence[str] = SECRET_READ_PATHS,
        limits: GuardLimits | None = None,
        *,
        read_untracked: bool = False,
    ) -> None:
        self.root = resolve(root, str(root))
        self.blocked = tuple(blocked)
        self.secret_reads = tuple(secret_reads)
        self.limits = limits or GuardLimits()
        self.read_untracked = read_untracked
        self._tracked: frozenset[str] | None = None
        self._readable: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, root: Path, settings: Settings) -> PathGuard:
        return cls(root, settings.all_blocked_paths, read_untracked=settings.read_untracked)

    # -- path normalisation -------------------------------------------------------------------

    def relative(self, path: str) -> str:
        """Validate a model-supplied path and return it repo-relative (POSIX), or raise."""
        if not isinstance(path, str) or not path.strip():
            raise GuardViolation("path is empty")
        if "\x00" in path:
            raise GuardViolation("path contains a NUL byte")
        raw = path.strip().replace("\\", "/")
        if raw.startswith("/"):
            # Absolute paths are tolerated only when they name a place inside the workspace.
            try:
                raw = PurePosixPath(raw).relative_to(self.root.as_posix()).as_posix()
            except ValueError:
                raise GuardViolation(f"{path}: absolute paths outside the workspace are refused") from None
        parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
        if any(p == ".." for p in parts):
            raise GuardViolation(f"{path}: '..' is not allowed; use a path relative to the repository root")
        rel = "/".join(parts)
        if not rel:
            return "."
        resolved = resolve(self.root / rel, rel)
        if resolved != self.root and self.root not in resolved.parents:
            raise GuardViolation(f"{path}: resolves (through a symlink) outside the workspace")
        return rel

    def resolved_rel(self, rel: str) -> str:
        """Where `rel` lands once every symlink is followed, repo-relative ("." for the root)."""
        resolved = resolve(self.root / rel, rel)
        return "." if resolved == self.root else resolved.relative_to(self.root).as_posix()

    # -- what the repository is ---------------------------------------------------------------

    def tracked(self) -> frozenset[str]:
        """Files git tracks (its index when the guard first asks: before the agent or any test ran).
        Outside a git work tree, every file found by walking the folder (minus `_SKIP_WALK`)."""
        if self._tracked is None:
            if is_work_tree(self.root):
                out = run_git(self.root, "-c", "core.quotePath=false", "ls-files", "-z", "--cached").stdout
                self._tracked = frozenset(p for p in out.split("\0") if p)
            else:
                self._tracked = frozenset(self._walk())
        return self._tracked

    def readable_files(self) -> frozenset[str]:
        """Files that may be read by name: tracked ones (plus untracked, not ignored ones with
        `read_untracked`), minus secret globs and `.git/`. A name in this set may still be refused
        when it resolves through a symlink to something that is not."""
        if self._readable is None:
            names = set(self.tracked())
            if self.read_untracked and is_work_tree(self.root):
                out = run_git(
                    self.root, "-c", "core.quotePath=false", "ls-files", "-z", "--others", "--exclude-standard"
                ).stdout
                names.update(p for p in out.split("\0") if p)
            hidden = (*self.secret_reads, *ALWAYS_PRIVATE)
            self._readable = frozenset(p for p in names if not matches_any(p, hidden))
        return self._readable

    def _walk(self) -> list[str]:
        files: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_WALK]
            rel = Path(dirpath).relative_to(self.root)
            files.extend((rel / name).as_posix() for name in filenames)
        return files

    # -- decisions ----------------------------------------------------------------------------

    def read_path(self, path: str, written: Collection[str] = (), max_bytes: int | None = None) -> Path:
        """A file the agent may read, unresolved (a missing path or a folder is returned as is, for
        the caller to explain). Refuses secrets, `.git/`, special files (FIFOs would block the
        reader), files git does not track unless in `written`, and oversize files."""
        rel = self.relative(path)
        target = self.resolved_rel(rel)
        for candidate in {rel, target}:
            hit = matches_any(candidate, (*self.secret_reads, *ALWAYS_PRIVATE))
            if hit:
                raise GuardViolation(
                    f"{rel}: reading this path is refused (matches {hit!r}; secrets never go to the model)"
                )
        full = self.root / rel
        try:
            info = os.stat(self.root / target)
        except FileNotFoundError:
            return full
        except OSError as exc:
            raise GuardViolation(f"{rel}: cannot be read ({exc.strerror})") from None
        if stat.S_ISDIR(info.st_mode):
            return full
        if not stat.S_ISREG(info.st_mode):
            raise GuardViolation(f"{rel}: not a regular file; refused")
        if target not in self.readable_files() and target not in written:
            via = f" (it resolves to {target})" if target != rel else ""
            extra = "" if self.read_untracked else "; SENTRY_AUTOFIX_READ_UNTRACKED=true opens untracked files"
            raise GuardViolation(
                f"{rel}: refused, git does not track this file{via}; only the repository's files and "
                f"files written during this fix are read (ignored files never are{extra})"
            )
        cap = self.limits.max_read_bytes if max_bytes is None else max_bytes
        if info.st_size > cap:
            raise GuardViolation(f"{rel}: file is {info.st_size} bytes, over the {cap}-byte read cap")
        return full

    def read_bytes(self, path: str, written: Collection[str] = (), max_bytes: int | None = None) -> bytes:
        """The content of a file `read_path` accepts, read from the resolved path without following
        a symlink swapped in since (O_NOFOLLOW) nor blocking on a FIFO (O_NONBLOCK); at most
        `max_bytes` (default: the read cap). Missing files and folders raise OSError."""
        rel = self.relative(path)
        self.read_path(rel, written, max_bytes)
        cap = self.limits.max_read_bytes if max_bytes is None else max_bytes
        target = self.root / self.resolved_rel(rel)
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise GuardViolation(f"{rel}: not a regular file; refused")
            if info.st_size > cap:
                raise GuardViolation(f"{rel}: file is {info.st_size} bytes, over the {cap}-byte read cap")
            chunks = []
            size = 0
            while size <= cap:
                chunk = os.read(fd, min(1 << 20, cap + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > cap:  # grew after fstat
            raise GuardViolation(f"{rel}: file is over the {cap}-byte read cap")
        return data

    def list_path(self, path: str) -> str:
        rel = self.relative(path)
        if matches_any(rel, ALWAYS_PRIVATE):
            raise GuardViolation(f"{rel}: listing this folder is refused")
        return rel

    def blocked_by(self, rel: str) -> str | None:
        return matches_any(rel, (*self.blocked, *ALWAYS_PRIVATE))

    def write_path(self, path: str, size: int) -> Path:
        """A file the agent may create or change; refuses blocked globs (also via symlinks)."""
        rel = self.relative(path)
        if rel == ".":
            raise GuardViolation("cannot write the repository root")
        for candidate in {rel, self.resolved_rel(rel)}:
            hit = self.blocked_by(candidate)
            if hit:
                raise BlockedPath(
                    f"{rel}: editing this path is refused (blocked path {hit!r}); "
                    "fix the error without touching it, or finish with low confidence",
                    rel,
                )
        if size > self.limits.max_write_bytes:
            raise GuardViolation(f"{rel}: {size} bytes is over the {self.limits.max_write_bytes}-byte write cap")
        folder = PurePosixPath(rel).parent.as_posix()
        if folder != "." and self.resolved_rel(folder) != folder:
            # git refuses paths "beyond a symbolic link": the change could not be committed.
            raise GuardViolation(
                f"{rel}: {folder} is a symlink to {self.resolved_rel(folder)}; write the file in that folder instead"
            )
        full = self.root / rel
        try:
            mode = os.stat(self.root / self.resolved_rel(rel)).st_mode
        except FileNotFoundError:
            return full
        except OSError as exc:
            raise GuardViolation(f"{rel}: cannot be written ({exc.strerror})") from None
        if stat.S_ISDIR(mode):
            raise GuardViolation(f"{rel}: is a folder")
        if not stat.S_ISREG(mode):
            raise GuardViolation(f"{rel}: not a regular file; refused")
        return full

    def write_bytes(self, path: str, data: bytes) -> Path:
        """Write a file `write_path` accepts, at its resolved location, without following a symlink
        swapped in since (O_NOFOLLOW) nor blocking on a FIFO (O_NONBLOCK): only a regular file is
        replaced. Returns the (unresolved) path written."""
        full = self.write_path(path, len(data))
        rel = self.relative(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        target = self.root / self.resolved_rel(rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(target, flags, 0o666)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise GuardViolation(f"{rel}: not a regular file; refused")
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return full

    # -- the final diff -----------------------------------------------------------------------

    def blocked_in_diff(self, diff_text: str) -> list[str]:
        """Every path the unified diff touches (either side) that is blocked; [] when clean."""
        touched = diff_paths(diff_text)
        return sorted(p for p in touched if self.blocked_by(p))


def _strip_prefix(name: str | None) -> str | None:
    if not name or name == "/dev/null":
        return None
    return name[2:] if name.startswith(("a/", "b/")) else name


def diff_paths(diff_text: str) -> set[str]:
    """Paths on both sides of every file in a unified diff (renames count twice)."""
    paths: set[str] = set()
    for patched in PatchSet(diff_text):
        for name in (patched.source_file, patched.target_file):
            clean = _strip_prefix(name)
            if clean:
                paths.add(clean)
    return paths
