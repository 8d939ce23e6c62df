"""Lay out the demo app as a git repository with its own history (two commits, fixed dates).

    python examples/demo/build_workspace.py DEST

Commit 1 "Initial shop" (2026-10-01) guards the empty cart; commit 2 "Simplify cart statistics"
(2026-11-18) drops the guard — the bug in `event.json`. Rebuilds DEST if it is an earlier demo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKER = "sentry-autofix-demo"


def git(dest: Path, *args: str, date: str | None = None, author: str | None = None) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    if author:
        name, email = author.rsplit(" ", 1)
        env.update(
            GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email.strip("<>"),
            GIT_COMMITTER_NAME=name,
            GIT_COMMITTER_EMAIL=email.strip("<>"),
        )
    subprocess.run(["git", "-C", str(dest), *args], check=True, env=env, stdout=subprocess.DEVNULL)


def build(dest: Path) -> Path:
    if dest.exists():
        if not (dest / ".git" / MARKER).exists():
            sys.exit(f"{dest} exists and is not a demo workspace built by this script; choose another path")
        shutil.rmtree(dest)
    shutil.copytree(HERE / "app", dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    git(dest, "init", "-q", "-b", "main")
    (dest / ".git" / MARKER).write_text("built by examples/demo/build_workspace.py\n")
    final_cart = (dest / "shop" / "cart.py").read_text()
    shutil.copy(HERE / "history" / "cart_v1.py", dest / "shop" / "cart.py")
    git(dest, "add", "-A")
    git(
        dest,
        "commit",
        "-q",
        "-m",
        "Initial shop",
        date="2026-10-01T09:00:00+00:00",
        author="Ada Lovelace <ada@shop.example>",
    )
    (dest / "shop" / "cart.py").write_text(final_cart)
    git(
        dest,
        "commit",
        "-q",
        "-am",
        "Simplify cart statistics",
        date="2026-11-18T16:30:00+00:00",
        author="Bob Quick <bob@shop.example>",
    )
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"demo workspace: {build(Path(sys.argv[1]))}", file=sys.stderr)
