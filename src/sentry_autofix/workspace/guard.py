"""The path guard: every file the agent reads or writes passes through here (SPEC §6).

A path is accepted only when it names a file inside the workspace, without `..`, and resolves
(after following symlinks) inside the workspace too. Edits are refused under blocked globs
(`Settings.all_blocked_paths`); reads are refused under secret globs (`config.SECRET_READ_PATHS`)
and inside `.git/` (actions/checkout may persist the job token in `.git/config`). Sizes are capped
so a hostile or huge file cannot flood the model's context. The final diff is checked again,
independent of what the tools allowed, because running tests executes code that may write anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from unidiff.patch import PatchSet

from sentry_autofix.config import SECRET_READ_PATHS
from sentry_autofix.errors import GuardViolation

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
    ) -> None:
        self.root = root.resolve()
        self.blocked = tuple(blocked)
        self.secret_reads = tuple(secret_reads)
        self.limits = limits or GuardLimits()

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
        resolved = (self.root / rel).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise GuardViolation(f"{path}: resolves (through a symlink) outside the workspace")
        return rel

    def _resolved_rel(self, rel: str) -> str:
        resolved = (self.root / rel).resolve()
        return "." if resolved == self.root else resolved.relative_to(self.root).as_posix()

    # -- decisions ----------------------------------------------------------------------------

    def read_path(self, path: str) -> Path:
        """A file the agent may read; refuses secrets, `.git/` and oversize files."""
        rel = self.relative(path)
        for candidate in {rel, self._resolved_rel(rel)}:
            hit = matches_any(candidate, (*self.secret_reads, *ALWAYS_PRIVATE))
            if hit:
                raise GuardViolation(
                    f"{rel}: reading this path is refused (matches {hit!r}; secrets never go to the model)"
                )
        full = self.root / rel
        if full.is_file() and full.stat().st_size > self.limits.max_read_bytes:
            raise GuardViolation(
                f"{rel}: file is {full.stat().st_size} bytes, over the {self.limits.max_read_bytes}-byte read cap"
            )
        return full

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
        for candidate in {rel, self._resolved_rel(rel)}:
            hit = self.blocked_by(candidate)
            if hit:
                raise BlockedPath(
                    f"{rel}: editing this path is refused (blocked path {hit!r}); "
                    "fix the error without touching it, or finish with low confidence",
                    rel,
                )
        if size > self.limits.max_write_bytes:
            raise GuardViolation(f"{rel}: {size} bytes is over the {self.limits.max_write_bytes}-byte write cap")
        full = self.root / rel
        if full.is_dir():
            raise GuardViolation(f"{rel}: is a folder")
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
