"""Artifact cleanup time: linear `remove_artifacts` side by side with the old per-file folder listing.

A test may leave 100,000 files (issue 9). The cleanup deletes each untracked file no tool wrote
and then the folders left empty. The old code listed the parent folder after every deletion
(`any(parent.iterdir())`, which reads the whole folder): quadratic. This script builds a real git
workspace, lets "a test" create N files in one folder, and times, in one run:

  1. `remove_artifacts` as shipped (workspace/diff.py), for N = 10,000 and 100,000;
  2. the old per-file algorithm (re-implemented below, deletion only) for N = 5,000 and 10,000.

It prints seconds, seconds per 1,000 files, and the growth ratio when N grows tenfold (10 means
linear, 100 quadratic). Goal: 100,000 files in seconds (<= 15 s). Not a test: figures depend on
the machine and its filesystem. Usage: .venv/bin/python bench/artifact_cleanup.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sentry_autofix.workspace import diff as wsdiff  # noqa: E402

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@example.com",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@example.com",
}


def workspace(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=GIT_ENV)
    (root / "app.py").write_text("x = 1\n")
    (root / ".gitignore").write_text("*.log\n")
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "init"], check=True, env=GIT_ENV)
    return root


def make_artifacts(root: Path, n: int) -> None:
    out = root / "out"
    out.mkdir()
    for i in range(n):
        (out / f"artifact-{i}.txt").touch()


def shipped(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = workspace(Path(tmp))
        base = wsdiff.take_baseline(root)
        make_artifacts(root, n)
        start = time.perf_counter()
        wsdiff.remove_artifacts(root, base)
        elapsed = time.perf_counter() - start
        assert not (root / "out").exists()
        return elapsed


def old_per_file(n: int) -> float:
    """The previous `_remove`: unlink, then list the parent to see whether it is empty."""
    with tempfile.TemporaryDirectory() as tmp:
        root = workspace(Path(tmp))
        base = wsdiff.take_baseline(root)
        make_artifacts(root, n)
        start = time.perf_counter()
        for rel in wsdiff.untracked_files(root) - base.untracked:
            full = root / rel
            full.unlink()
            parent = full.parent
            while parent != root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        return time.perf_counter() - start


def main() -> None:
    rows = [
        ("remove_artifacts (shipped)", 10_000, shipped(10_000)),
        ("remove_artifacts (shipped)", 100_000, shipped(100_000)),
        ("old per-file listing", 5_000, old_per_file(5_000)),
        ("old per-file listing", 10_000, old_per_file(10_000)),
    ]
    print(f"{'algorithm':<30} {'files':>8} {'seconds':>9} {'s per 1k':>9}")
    for name, n, secs in rows:
        print(f"{name:<30} {n:>8,} {secs:>9.2f} {secs / n * 1000:>9.3f}")
    growth_new = rows[1][2] / rows[0][2]
    growth_old = rows[3][2] / rows[2][2]
    print(f"\nshipped: 10x the files -> {growth_new:.1f}x the time (10 = linear)")
    print(f"old:      2x the files -> {growth_old:.1f}x the time (2 = linear, 4 = quadratic)")
    print(f"at 10,000 files the shipped cleanup is {rows[3][2] / rows[0][2]:.0f}x faster than the old one")
    print(f"100,000 files: {rows[1][2]:.1f} s (goal <= 15 s: {rows[1][2] / 15:.2f}x the goal)")


if __name__ == "__main__":
    main()
