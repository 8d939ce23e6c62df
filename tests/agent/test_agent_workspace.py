"""Test runner (scrubbed env, timeout, not-run) and workspace diff/restore against real git."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentry_autofix.workspace import diff as wsdiff
from sentry_autofix.workspace.testrunner import TestExecutor, scrubbed_env
from tests.conftest import INTERPRETER_EXPOSE


def test_scrubbed_env__names_prefixes_extra_names_and_secret_values() -> None:
    base = {
        "PATH": "/usr/bin",
        "GITHUB_TOKEN": "g",
        "ANTHROPIC_API_KEY": "a",
        "OPENAI_API_KEY": "o",
        "SENTRY_AUTH_TOKEN": "s",
        "ACTIONS_RUNTIME_TOKEN": "r",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "u",
        "MY_DB_PASSWORD": "p",
        "COPY_OF_TOKEN": "supersecretvalue",
        "HOME": "/root",
    }
    env = scrubbed_env(base, ["MY_DB_PASSWORD"], ["supersecretvalue"])
    assert env == {"PATH": "/usr/bin", "HOME": "/root"}


def test_run_test_command__scrubbed_env_reaches_the_command(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin:/bin", "GITHUB_TOKEN": "ghs_x", "KEEP": "yes", "LANG": "C.UTF-8"}
    out = TestExecutor(tmp_path, None, timeout=20, budget=60, base_env=base, passthrough=["KEEP"])(
        'echo "token=${GITHUB_TOKEN:-none} keep=$KEEP lang=$LANG"'
    )
    assert out.status == "passed"
    assert out.exit_code == 0
    assert "token=none keep=yes lang=C.UTF-8" in out.output_tail


def test_run_test_command__head_tail_and_secret_redaction(tmp_path: Path) -> None:
    out = TestExecutor(tmp_path, None, timeout=20, budget=60, secret_values=["leaked-SECRETVALUE"])(
        "seq 1 50000; echo leaked-SECRETVALUE; exit 3"
    )
    assert out.status == "failed"
    assert out.exit_code == 3
    assert out.output_tail.startswith("1\n2\n3\n")  # the head: where most tools print the first error
    assert "bytes of output omitted" in out.output_tail
    assert "[redacted]" in out.output_tail
    assert "SECRETVALUE" not in out.output_tail
    assert "49999" in out.output_tail
    assert "\n25000\n" not in out.output_tail
    assert len(out.output_tail) < 9_000


def test_run_test_command__timeout_kills_the_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    out = TestExecutor(tmp_path, None, timeout=0.5, budget=60)("sleep 30 & sleep 30; echo never")
    assert time.monotonic() - started < 10
    assert out.status == "failed"
    assert out.exit_code is None
    assert "timed out" in out.output_tail
    assert "SENTRY_AUTOFIX_TEST_TIMEOUT" in out.output_tail


def test_run_test_command__no_command_is_not_run_never_passed(tmp_path: Path) -> None:
    for cmd in (None, "  "):
        assert TestExecutor(tmp_path, None, timeout=1, budget=60)(cmd).status == "not-run"


def _git(ws: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "PATH": "/usr/bin:/bin",
        "HOME": str(ws),
    }
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_workspace_diff__includes_written_new_files_not_test_artifacts(repo: Path) -> None:
    base = wsdiff.take_baseline(repo)
    (repo / "a.py").write_text("a = 2\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text("def test(): pass\n")
    (repo / "junit.xml").write_text("<x/>")  # written by the test run, not by a tool
    text = wsdiff.workspace_diff(repo, base, written={"tests/test_a.py"})
    changes = {c.path: (c.added, c.removed, c.is_new) for c in wsdiff.file_changes(text)}
    assert changes == {"a.py": (1, 1, False), "tests/test_a.py": (1, 0, True)}
    assert _git(repo, "diff", "--cached", "--name-only") == ""  # the real index was not touched


def test_restore__puts_back_exactly_what_was_there(repo: Path) -> None:
    (repo / "notes.txt").write_text("user's own untracked file\n")
    (repo / "a.py").write_text("a = 'dirty before we started'\n")
    before = _git(repo, "status", "--porcelain")
    base = wsdiff.take_baseline(repo)
    (repo / "a.py").write_text("a = 3\n")
    (repo / "new" / "deep").mkdir(parents=True)
    (repo / "new" / "deep" / "b.py").write_text("b\n")
    (repo / "artifact.txt").write_text("x")
    (repo / "run.log").write_text("ignored")
    wsdiff.restore(repo, base, written={"new/deep/b.py"})
    assert _git(repo, "status", "--porcelain") == before
    assert (repo / "a.py").read_text() == "a = 'dirty before we started'\n"
    assert not (repo / "new").exists()
    assert (repo / "notes.txt").exists()


def test_workspace_diff__lone_carriage_returns_stay_inside_their_line(repo: Path) -> None:
    """A file holding a bare `\r` (model-written, or the user's Windows-era file): the diff is
    the bytes git commits, and unidiff can count it (text mode turned the `\r` into a line break,
    showing a different change and failing to parse: "Hunk diff line expected")."""
    base = wsdiff.take_baseline(repo)
    (repo / "a.py").write_bytes(b"a = 1\rb = 2\n")
    (repo / "crlf.py").write_bytes(b"x = 1\r\ny = 2\r\n")
    text = wsdiff.workspace_diff(repo, base, written={"crlf.py"})
    assert "+a = 1\rb = 2\n" in text
    assert "+x = 1\r\n+y = 2\r\n" in text
    changes = {c.path: (c.added, c.removed) for c in wsdiff.file_changes(text)}
    assert changes == {"a.py": (1, 1), "crlf.py": (2, 0)}


def test_nested_repos__a_repository_made_inside_the_checkout_is_found_and_dropped(repo: Path) -> None:
    """`git init` in a tracked folder and in a new one: both found without walking the tree; only
    the `.git` of the new ones goes, files stay; one that was known before stays."""
    (repo / "pkg").mkdir()
    (repo / "pkg" / "m.py").write_text("m\n")
    _git(repo, "add", "pkg/m.py")
    _git(repo, "commit", "-qm", "pkg")
    _git(repo, "init", "-q", "users")
    known = wsdiff.nested_repos(repo)
    assert known == {"users"}
    _git(repo, "init", "-q", "pkg")
    _git(repo, "init", "-q", "new/deep")
    (repo / "new" / "deep" / "f.py").write_text("f\n")
    assert wsdiff.nested_repos(repo) == {"users", "pkg", "new/deep"}
    assert sorted(wsdiff.drop_new_nested_repos(repo, known)) == ["new/deep", "pkg"]
    assert wsdiff.nested_repos(repo) == {"users"}
    assert (repo / "new" / "deep" / "f.py").read_text() == "f\n"
    assert (repo / "users" / ".git").is_dir()


def test_take_baseline__workspace_without_commits(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "x.py").write_text("x = 1\n")
    base = wsdiff.take_baseline(tmp_path)
    (tmp_path / "x.py").write_text("x = 2\n")
    text = wsdiff.workspace_diff(tmp_path, base)
    assert "-x = 1\n+x = 2" in text
    wsdiff.restore(tmp_path, base)
    assert (tmp_path / "x.py").read_text() == "x = 1\n"


def test_run_test_command__uses_sh_in_workspace_root(tmp_path: Path) -> None:
    (tmp_path / "marker").write_text("here")
    executor = TestExecutor(tmp_path, None, timeout=20, budget=60, expose=INTERPRETER_EXPOSE)
    out = executor(f"{sys.executable} -c \"print(open('marker').read())\"")
    assert out.status == "passed"
    assert "here" in out.output_tail


_CLEANUP = """
import sys, time
from pathlib import Path
from sentry_autofix.workspace import diff as wsdiff
repo = Path(sys.argv[1])
base = wsdiff.take_baseline(repo)
out = repo / "out"
out.mkdir()
for i in range(int(sys.argv[2])):
    (out / f"artifact-{i}.txt").touch()
started = time.monotonic()
wsdiff.remove_artifacts(repo, base)
print(f"{time.monotonic() - started:.2f}")
"""


def test_remove_artifacts__100k_files_from_a_test_are_removed_in_linear_time(repo: Path) -> None:
    """Issue 9: listing the folder after each deleted file made cleanup quadratic (100,000 artifacts
    of one test kept it busy for over 10 minutes). The 120 s limit is a hang guard, not a benchmark
    (bench/artifact_cleanup.py measures); linear cleanup takes a few seconds."""
    proc = subprocess.run(
        [sys.executable, "-c", _CLEANUP, str(repo), "100000"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert not (repo / "out").exists()
    assert _git(repo, "status", "--porcelain") == ""


def test_remove_artifacts__keeps_ignored_files_after_a_test_rewrote_gitignore(repo: Path) -> None:
    """A test (running repository code) can rewrite `.gitignore` so the user's `.env` looks like a
    new artifact; the cleanup judges by the baseline's rules and keeps it."""
    (repo / ".gitignore").write_text("*.log\n.env\nnode_modules/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-qm", "ignore")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "node_modules" / "dep").mkdir(parents=True)
    (repo / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
    base = wsdiff.take_baseline(repo)
    (repo / ".gitignore").write_text("# emptied by a test\n")  # tracked: stays in the fix's diff
    (repo / "sub").mkdir()
    (repo / "sub" / ".gitignore").write_text("!.env\n")  # and a new one un-ignoring more
    (repo / "sub" / ".env").write_text("not the user's: made by the test\n")
    (repo / "coverage.xml").write_text("<x/>")
    wsdiff.remove_artifacts(repo, base, written=set())
    assert (repo / ".env").read_text() == "SECRET=1\n"
    assert (repo / "node_modules" / "dep" / "index.js").exists()
    assert not (repo / "coverage.xml").exists()
    assert not (repo / "sub" / ".gitignore").exists()  # not ignored by the baseline's rules: an artifact
    assert (repo / "sub" / ".env").exists()  # ignored by them (`.env` at any depth): never deleted


def test_restore__pathspec_magic_file_names_never_reach_ignored_files(repo: Path) -> None:
    """Issue 9 reproduction 3: a written file named `:(top)` became pathspec magic, the snapshot
    took in every ignored file and the restore deleted them (`.env`, `node_modules/`)."""
    (repo / ".gitignore").write_text("*.log\n.env\nnode_modules/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-qm", "ignore")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "dep.js").write_text("x\n")
    (repo / "build.log").write_text("log\n")
    before = _git(repo, "status", "--porcelain", "--ignored")
    base = wsdiff.take_baseline(repo)
    for name in (":(top)", "*", ":(glob)**"):
        (repo / name).write_text("written by the model\n")
    written = {":(top)", "*", ":(glob)**"}
    diff = wsdiff.workspace_diff(repo, base, written)
    assert sorted(c.path for c in wsdiff.file_changes(diff)) == ["*", ":(glob)**", ":(top)"]
    wsdiff.restore(repo, base, written)
    assert _git(repo, "status", "--porcelain", "--ignored") == before
    assert (repo / ".env").read_text() == "SECRET=1\n"
    assert (repo / "node_modules" / "dep.js").exists()


def test_remove_paths__never_deletes_through_a_symlinked_folder(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "precious.txt").write_text("keep\n")
    base = wsdiff.take_baseline(repo)
    (repo / "gen").mkdir()
    (repo / "gen" / "precious.txt").write_text("artifact\n")
    listed = wsdiff.untracked_files(repo)
    # Between the listing and the deletion the folder becomes a symlink out of the workspace.
    (repo / "gen" / "precious.txt").unlink()
    (repo / "gen").rmdir()
    os.symlink(outside, repo / "gen")
    wsdiff._remove_paths(repo, listed - base.untracked)
    assert (outside / "precious.txt").read_text() == "keep\n"
