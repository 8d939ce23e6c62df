"""Map stack frames (deployed paths) onto files of the checked-out workspace.

The deployed path rarely equals the repo path: `/srv/app/shop/cart.py`, `/usr/lib/python3.11/
site-packages/shop/cart.py` (a src-layout package installed), `webpack:///./src/App.tsx`,
`app:///main.js`, `C:\\build\\Web\\Controllers\\Home.cs`, Java `module` + `filename`, Go module paths.
So each frame yields candidate paths, and a tracked file matches by its longest common suffix of path
components. Ties are broken by the frame's `context_line`, then configured source roots; what is
still ambiguous, or matches on the file name alone without confirmation, is reported unmapped rather
than guessed.

Which files exist, and every byte read from them (context-line checks, code windows), is decided by
the path guard: tracked files only by default, secret globs and symlinks resolved — a frame naming
a committed `config/settings.py -> ../.env` maps, but its code is never read.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sentry_autofix.errors import GuardViolation
from sentry_autofix.models import ErrorEvent, MappedFrame, StackFrame
from sentry_autofix.workspace.guard import PathGuard
from sentry_autofix.workspace.symbols import function_verdict

VENDOR_PARTS = frozenset(
    {
        "node_modules",
        "vendor",
        "site-packages",
        "dist-packages",
        ".venv",
        "venv",
        "third_party",
        "bower_components",
    }
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_FILE_READ = 4 * 1024 * 1024
_DRIFT_WINDOW = 40


def normalize(raw: str) -> list[str]:
    """A deployed path or URL → its path components (no scheme, host, drive, `.` or query)."""
    text = raw.strip().replace("\\", "/")
    text = text.split("?", 1)[0].split("#", 1)[0]
    match = _SCHEME.match(text)
    if match:
        scheme = match.group(0).lower()
        rest = text[match.end() :]
        if scheme in ("http://", "https://"):
            rest = rest.split("/", 1)[1] if "/" in rest else ""
        text = rest
    text = _DRIVE.sub("", text)
    if text.startswith("~/"):
        text = text[2:]
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


@dataclass
class WorkspaceIndex:
    """The workspace's readable files (`PathGuard.readable_files`), indexed by base name."""

    root: Path
    files: list[str]
    by_name: dict[str, list[str]] = field(default_factory=dict)
    go_module: str | None = None
    guard: PathGuard | None = None
    """Reads go through it; None only for an index built by hand (a default guard is made)."""
    _lines: dict[str, list[str] | None] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: Path, guard: PathGuard | None = None) -> WorkspaceIndex:
        guard = guard or PathGuard(root, ())
        files = sorted(guard.readable_files())
        by_name: dict[str, list[str]] = defaultdict(list)
        for f in files:
            by_name[f.rsplit("/", 1)[-1]].append(f)
        index = cls(root=guard.root, files=files, by_name=dict(by_name), guard=guard)
        if "go.mod" in files:
            for line in index.lines("go.mod") or []:
                if line.startswith("module "):
                    index.go_module = line.split()[1].strip() if len(line.split()) > 1 else None
                    break
        return index

    def lines(self, path: str) -> list[str] | None:
        """The file's lines, or None when the guard refuses it or it cannot be read."""
        if path not in self._lines:
            if self.guard is None:
                self.guard = PathGuard(self.root, ())
            try:
                data = self.guard.read_bytes(path, max_bytes=_MAX_FILE_READ)
                self._lines[path] = data.decode("utf-8", errors="replace").splitlines()
            except (GuardViolation, OSError):
                self._lines[path] = None
        return self._lines[path]

    def window(self, path: str, line: int, before: int = 6, after: int = 4) -> str:
        """Numbered source lines around `line`, read from the workspace (not Sentry's copy)."""
        lines = self.lines(path) or []
        start, end = max(1, line - before), min(len(lines), line + after)
        width = len(str(end))
        return "\n".join(f"{'>' if n == line else ' '} {n:>{width}} | {lines[n - 1]}" for n in range(start, end + 1))


@dataclass(frozen=True)
class MapOptions:
    source_roots: tuple[str, ...] = ()
    prefix_map: tuple[tuple[str, str], ...] = ()


def _candidates(
    frame: StackFrame, index: WorkspaceIndex, options: MapOptions, platform: str | None = None
) -> list[list[str]]:
    out: list[list[str]] = []
    raw_paths = [p for p in (frame.abs_path, frame.filename) if p]
    for raw in raw_paths:
        for src, dst in options.prefix_map:
            if raw.replace("\\", "/").startswith(src.replace("\\", "/")):
                out.append(normalize(dst + raw.replace("\\", "/")[len(src.replace("\\", "/")) :]))
        out.append(normalize(raw))
    basename = normalize(frame.filename or frame.abs_path or "")[-1:] or []
    module = frame.module or ""
    if basename and module and "." in module and basename[0].endswith((".java", ".kt", ".scala", ".groovy")):
        # JVM: package path from the module (class name), file name from `filename`.
        out.append([*module.split("$", 1)[0].split(".")[:-1], basename[0]])
    if basename and module and basename[0].endswith(".go") and "/" in module:
        mod_parts = module.split("/")
        if index.go_module and module.startswith(index.go_module):
            rel = module[len(index.go_module) :].strip("/")
            out.append([*(rel.split("/") if rel else []), basename[0]])
        out.append([*mod_parts, basename[0]])
    python = (frame.platform or platform) == "python"
    if python and module and not basename and re.fullmatch(r"[A-Za-z_][\w.]*", module):
        out.append([*module.split(".")[:-1], module.split(".")[-1] + ".py"])
    seen: set[tuple[str, ...]] = set()
    unique = []
    for cand in out:
        key = tuple(cand)
        if cand and key not in seen:
            seen.add(key)
            unique.append(cand)
    return unique


def _suffix_len(a: list[str], b: list[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _verify(index: WorkspaceIndex, path: str, frame: StackFrame) -> tuple[bool | None, int | None, str | None]:
    """Check `context_line` against the workspace file; find the line if the code moved."""
    line = frame.lineno
    wanted = (frame.context_line or "").strip()
    lines = index.lines(path)
    if lines is None:
        return None, line, None
    if not wanted:
        return function_verdict(lines, line, frame.function)
    if line is None:
        return None, line, None
    if 1 <= line <= len(lines) and lines[line - 1].strip() == wanted:
        return True, line, None
    if len(wanted) < 4:
        return False, line, None
    lo, hi = max(1, line - _DRIFT_WINDOW), min(len(lines), line + _DRIFT_WINDOW)
    hits = [n for n in range(lo, hi + 1) if lines[n - 1].strip() == wanted]
    if len(hits) == 1:
        return True, hits[0], f"line moved from {line} to {hits[0]} in the workspace"
    if not (1 <= line <= len(lines)):
        return False, None, f"line {line} is past the end of the workspace file"
    return False, line, "context line differs from the workspace (code changed since this release?)"


def is_vendor(path: str) -> bool:
    return any(part in VENDOR_PARTS for part in PurePosixPath(path).parts)


def map_frame(
    frame: StackFrame,
    index: WorkspaceIndex,
    options: MapOptions,
    exception_index: int = 0,
    frame_index: int = 0,
    platform: str | None = None,
) -> MappedFrame:
    original = frame.abs_path or frame.filename or frame.module

    def result(
        path: str | None, line: int | None, in_app: bool, verified: bool | None, reason: str | None
    ) -> MappedFrame:
        return MappedFrame(
            exception_index=exception_index,
            frame_index=frame_index,
            path=path,
            line=line,
            function=frame.function,
            in_app=in_app,
            original_path=original,
            verified=verified,
            reason=reason,
        )

    candidates = _candidates(frame, index, options, platform)
    if not candidates:
        return result(None, frame.lineno, bool(frame.in_app), None, "frame has no file name")
    best: dict[str, tuple[int, int]] = {}
    for cand in candidates:
        exact = "/".join(cand)
        for path in index.by_name.get(cand[-1], []):
            parts = path.split("/")
            k = _suffix_len(cand, parts)
            whole = k == len(parts) or path == exact
            score = (k, 1 if whole else 0)
            if score > best.get(path, (0, 0)):
                best[path] = score
    if not best:
        return result(
            None,
            frame.lineno,
            bool(frame.in_app),
            None,
            f"no file named {candidates[0][-1]} in the workspace",
        )
    top = max(best.values())
    tied = sorted(p for p, s in best.items() if s == top)
    verdicts = {p: _verify(index, p, frame) for p in tied}
    if len(tied) > 1:
        confirmed = [p for p in tied if verdicts[p][0]]
        if len(confirmed) >= 1:
            tied = confirmed
    if len(tied) > 1 and options.source_roots:
        roots = [r.strip("/") + "/" for r in options.source_roots]
        rooted = [p for p in tied if any(p.startswith(r) for r in roots)]
        if rooted:
            tied = rooted
    if len(tied) > 1:
        non_vendor = [p for p in tied if not is_vendor(p)]
        if non_vendor:
            tied = non_vendor
    if len(tied) > 1:
        shown = ", ".join(tied[:4]) + (" …" if len(tied) > 4 else "")
        return result(None, frame.lineno, bool(frame.in_app), None, f"ambiguous: {shown}")
    path = tied[0]
    k, whole_match = top
    verified, line, note = verdicts[path]
    if k == 1 and verified is not True:
        # Only the file name matched. That is right when the repo root was deployed under some
        # prefix (`/app/main.py` → `main.py`), but a library frame (`site-packages/flask/app.py`)
        # must not land on the repo's own `app.py`: without the code to confirm it, no guess.
        from_library = frame.in_app is False or any(is_vendor("/".join(c)) for c in candidates)
        if not whole_match or from_library:
            return result(
                None,
                frame.lineno,
                bool(frame.in_app),
                None,
                f"only the file name matches {path}; not confirmed",
            )
    vendored = is_vendor(path)
    # An SDK marks a src-layout package installed into site-packages as not in-app; a frame that
    # lands on the repo's own (non-vendored) file by directory + name is the app's code all the same.
    in_app = not vendored and (frame.in_app is not False or k >= 2)
    return result(path, line, in_app, verified, note)


def map_event(event: ErrorEvent, index: WorkspaceIndex, options: MapOptions) -> list[MappedFrame]:
    """Every frame of every exception in the chain, in Sentry's order."""
    mapped = []
    for ei, exc in enumerate(event.exceptions):
        for fi, frame in enumerate(exc.frames):
            mapped.append(map_frame(frame, index, options, ei, fi, event.platform))
    return mapped
