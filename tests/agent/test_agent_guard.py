"""The path guard: inside the workspace, no `..`, no symlink escape, blocked and secret globs, caps."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sentry_autofix.config import DEFAULT_BLOCKED_PATHS
from sentry_autofix.errors import GuardViolation
from sentry_autofix.workspace.guard import GuardLimits, PathGuard, diff_paths, matches_any


@pytest.fixture
def guard(tmp_path: Path) -> PathGuard:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "models.py").write_text("x = 1\n")
    (tmp_path / ".env").write_text("SECRET=1\n")
    return PathGuard(tmp_path, [*DEFAULT_BLOCKED_PATHS, "vendor/", "*.pem"], limits=GuardLimits(max_read_bytes=100))


@pytest.mark.parametrize(
    ("path", "blocked"),
    [
        ("migrations/0001.py", True),
        ("app/migrations/0002_auto.py", True),
        ("Migrations/0001.py", True),  # case-folding filesystems
        ("auth/views.py", True),
        ("app/auth.py", False),
        ("payments/stripe.py", True),
        (".env", True),
        ("config/.env.production", True),
        (".github/workflows/ci.yml", True),
        (".github/dependabot.yml", True),  # everything GitHub runs or trusts from the repository
        (".github/actions/setup/action.yml", True),
        (".github/CODEOWNERS", True),
        ("CODEOWNERS", True),
        ("docs/CODEOWNERS", True),
        ("src/github/client.py", False),
        ("vendor/lib.js", True),  # user glob with a trailing slash
        ("deploy/keys/server.pem", True),  # user glob without a slash matches at any depth
        ("app/models.py", False),
        ("environment.py", False),
    ],
)
def test_matches_any__default_and_user_globs(path: str, blocked: bool) -> None:
    assert bool(matches_any(path, [*DEFAULT_BLOCKED_PATHS, "vendor/", "*.pem"])) is blocked


def test_relative__refuses_dotdot_and_outside_absolute_paths(guard: PathGuard) -> None:
    for bad in ("../x", "app/../../x", "/etc/passwd", "", "a\x00b"):
        with pytest.raises(GuardViolation):
            guard.relative(bad)
    assert guard.relative(str(guard.root / "app" / "models.py")) == "app/models.py"
    assert guard.relative("./app//models.py") == "app/models.py"


def test_relative__refuses_symlink_escape(guard: PathGuard, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("s")
    os.symlink(outside, guard.root / "link")
    with pytest.raises(GuardViolation, match="outside the workspace"):
        guard.read_path("link/secret.txt")


def test_write_path__symlink_into_blocked_folder_is_refused(guard: PathGuard) -> None:
    (guard.root / "migrations").mkdir()
    os.symlink(guard.root / "migrations", guard.root / "app" / "m")
    with pytest.raises(GuardViolation, match="blocked path"):
        guard.write_path("app/m/0001.py", 10)


def test_read_path__secrets_and_git_internals_are_refused(guard: PathGuard) -> None:
    (guard.root / ".git").mkdir()
    for path in (".env", "secrets/db.txt", "app/credentials/key", ".git/config"):
        with pytest.raises(GuardViolation, match="refused"):
            guard.read_path(path)
    assert guard.read_path("app/models.py").name == "models.py"


def test_read_path__size_cap(guard: PathGuard) -> None:
    (guard.root / "big.txt").write_text("x" * 101)
    with pytest.raises(GuardViolation, match="read cap"):
        guard.read_path("big.txt")


def test_write_path__size_cap_and_folder(guard: PathGuard) -> None:
    with pytest.raises(GuardViolation, match="write cap"):
        guard.write_path("app/new.py", guard.limits.max_write_bytes + 1)
    with pytest.raises(GuardViolation, match="folder"):
        guard.write_path("app", 1)


def test_blocked_in_diff__either_side_of_a_rename_counts(guard: PathGuard) -> None:
    diff = (
        "diff --git a/migrations/0001.py b/app/moved.py\n"
        "similarity index 100%\nrename from migrations/0001.py\nrename to app/moved.py\n"
        "diff --git a/app/models.py b/app/models.py\n--- a/app/models.py\n+++ b/app/models.py\n"
        "@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    )
    assert "app/models.py" in diff_paths(diff)
    assert guard.blocked_in_diff(diff) == ["migrations/0001.py"]


def _repo(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_read_path__symlink_loops_are_refusals_not_crashes(tmp_path: Path) -> None:
    """Issue 9: Path.resolve() raised RuntimeError on a committed symlink loop and the run crashed."""
    os.symlink("loop", tmp_path / "loop")
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    guard = PathGuard(tmp_path, [])
    for path in ("loop", "a", "a/x.py", "b/c/d"):
        with pytest.raises(GuardViolation, match="cannot be resolved"):
            guard.read_path(path)
        with pytest.raises(GuardViolation, match="cannot be resolved"):
            guard.write_path(path, 1)


def test_read_and_write__special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    guard = PathGuard(tmp_path, [])
    for action in (lambda: guard.read_bytes("pipe.py"), lambda: guard.write_bytes("pipe.py", b"x")):
        with pytest.raises(GuardViolation, match="not a regular file"):
            action()


def test_read_path__git_work_tree_reads_tracked_files_and_written_ones_only(tmp_path: Path) -> None:
    ws = _repo(tmp_path)
    (ws / ".gitignore").write_text("local.cfg\n")
    (ws / "local.cfg").write_text("PASSWORD=x\n")
    (ws / "app.py").write_text("x = 1\n")
    (ws / "new.py").write_text("y = 2\n")
    os.symlink("local.cfg", ws / "settings.py")
    os.symlink("app.py", ws / "alias.py")
    subprocess.run(["git", "-C", str(ws), "add", ".gitignore", "app.py", "settings.py", "alias.py"], check=True)
    guard = PathGuard(ws, [])
    assert guard.read_bytes("app.py") == b"x = 1\n"
    assert guard.read_bytes("alias.py") == b"x = 1\n"  # a tracked symlink onto a tracked file
    for path, why in (("new.py", "does not track"), ("local.cfg", "does not track"), ("settings.py", "local.cfg")):
        with pytest.raises(GuardViolation, match=why):
            guard.read_path(path)
    assert guard.read_bytes("new.py", written={"new.py"}) == b"y = 2\n"
    opened = PathGuard(ws, [], read_untracked=True)
    assert opened.read_bytes("new.py") == b"y = 2\n"
    with pytest.raises(GuardViolation, match="does not track"):
        opened.read_path("settings.py")  # ignored files stay closed
    assert sorted(guard.readable_files()) == [".gitignore", "alias.py", "app.py", "settings.py"]


def test_write_path__through_a_symlinked_folder_names_the_real_folder(tmp_path: Path) -> None:
    """git refuses to add a path beyond a symbolic link; the model is told where the file lives."""
    (tmp_path / "src" / "lib").mkdir(parents=True)
    os.symlink("src/lib", tmp_path / "lib")
    guard = PathGuard(tmp_path, [])
    with pytest.raises(GuardViolation, match="lib is a symlink to src/lib"):
        guard.write_path("lib/new.py", 1)
    assert guard.write_path("src/lib/new.py", 1) == tmp_path.resolve() / "src" / "lib" / "new.py"
