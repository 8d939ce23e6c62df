"""The fix branch with real git and a real bare remote: one bot commit, safe pushes, token only in env."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sentry_autofix.config import DEFAULT_BLOCKED_PATHS
from sentry_autofix.errors import GitError, GuardViolation
from sentry_autofix.workspace import branch as b
from tests.delivery.conftest import git

BOT = "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"
PREFIX = "sentry-autofix/"


def commit_and_push(ws: Path, text: str, issue: str = "4242") -> b.PushResult:
    (ws / "shop" / "cart.py").write_text(text)
    b.commit_fix(
        ws, branch="sentry-autofix/SHOP-1F", base="main", message="Fix", author=BOT, issue_id=issue, prefix=PREFIX
    )
    return b.push_branch(
        ws,
        branch="sentry-autofix/SHOP-1F",
        base="main",
        prefix=PREFIX,
        issue_id=issue,
        author=BOT,
        token="ghs_secret_token_value",
    )


@pytest.mark.parametrize(
    ("short", "expected"),
    [
        ("SHOP-1F", "sentry-autofix/SHOP-1F"),
        ("a b/../c~^:?*[", "sentry-autofix/a-b-.-c"),
        (None, "sentry-autofix/4242"),
    ],
)
def test_branch_name__is_a_valid_ref(short: str | None, expected: str) -> None:
    assert b.branch_name(PREFIX, short, "4242") == expected


@pytest.mark.parametrize(
    ("path", "blocked"),
    [
        ("migrations/0001.py", True),
        ("app/migrations/0002.py", True),
        ("billing/x.py", True),
        (".env", True),
        ("config/.env.prod", True),
        (".github/workflows/ci.yml", True),
        ("Auth/login.py", True),
        ("shop/cart.py", False),
        ("docs/authoring.md", False),
        ("payments_test.py", False),
    ],
)
def test_blocked_paths__default_globs(path: str, blocked: bool) -> None:
    assert bool(b.blocked_paths([path], DEFAULT_BLOCKED_PATHS)) is blocked


def test_changed_paths__lists_modified_new_and_deleted(workspace: Path) -> None:
    (workspace / "shop" / "cart.py").write_text("x\n")
    (workspace / "shop" / "new module.py").write_text("y\n")
    (workspace / "README.md").unlink()
    assert b.changed_paths(workspace) == ["README.md", "shop/cart.py", "shop/new module.py"]


def test_push_branch__created_then_unchanged_then_updated(workspace: Path, remote: Path) -> None:
    first = commit_and_push(workspace, "fixed = 1\n")
    assert first.outcome == "created"
    assert git(remote, "log", "-1", "--format=%an|%ce|%B", "sentry-autofix/SHOP-1F").startswith(
        "github-actions[bot]|41898282+github-actions[bot]@users.noreply.github.com|Fix\n\nSentry-Autofix-Issue: 4242"
    )
    git(workspace, "checkout", "-q", "-f", "main")
    assert commit_and_push(workspace, "fixed = 1\n").outcome == "unchanged"
    git(workspace, "checkout", "-q", "-f", "main")
    third = commit_and_push(workspace, "fixed = 2\n")
    assert third.outcome == "updated"
    assert git(remote, "rev-parse", "sentry-autofix/SHOP-1F").strip() == third.sha
    assert git(remote, "rev-list", "--count", "main..sentry-autofix/SHOP-1F").strip() == "1"


def test_push_branch__never_forces_over_someone_elses_commit(workspace: Path, remote: Path, tmp_path: Path) -> None:
    commit_and_push(workspace, "fixed = 1\n")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", "sentry-autofix/SHOP-1F", str(remote), str(other))
    (other / "note.txt").write_text("human fixup\n")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "human fixup")
    git(other, "push", "-q", "origin", "sentry-autofix/SHOP-1F")
    human = git(remote, "rev-parse", "sentry-autofix/SHOP-1F")
    git(workspace, "checkout", "-q", "-f", "main")
    with pytest.raises(GuardViolation, match="did not make"):
        commit_and_push(workspace, "fixed = 3\n")
    assert git(remote, "rev-parse", "sentry-autofix/SHOP-1F") == human


def test_push_branch__refuses_a_branch_of_another_issue(workspace: Path, remote: Path) -> None:
    commit_and_push(workspace, "fixed = 1\n", issue="1111")
    git(workspace, "checkout", "-q", "-f", "main")
    with pytest.raises(GuardViolation):
        commit_and_push(workspace, "fixed = 2\n", issue="2222")


@pytest.mark.parametrize("branch", ["main", "feature/x"])
def test_commit_fix__refuses_base_or_foreign_branch(workspace: Path, remote: Path, branch: str) -> None:
    with pytest.raises(GuardViolation, match="refusing"):
        b.commit_fix(workspace, branch=branch, base="main", message="m", author=BOT, issue_id="1", prefix=PREFIX)
    assert git(workspace, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_auth_env__token_only_in_env_of_https_remotes() -> None:
    env = b.auth_env("https://github.com/acme/shop.git", "ghs_abc")
    assert env["GIT_CONFIG_KEY_2"] == "http.https://github.com/.extraheader"
    assert env["GIT_CONFIG_VALUE_2"].startswith("AUTHORIZATION: basic ")
    assert env["GIT_CONFIG_KEY_0"] == "http.extraheader"
    assert env["GIT_CONFIG_VALUE_0"] == ""
    assert "ghs_abc" not in str(env)  # base64, never raw in argv or logs
    assert b.auth_env("/tmp/remote.git", "ghs_abc") == {}
    assert b.auth_env("https://x/y", None) == {}


def test_push_branch__leaves_no_credential_in_git_config(workspace: Path, remote: Path) -> None:
    commit_and_push(workspace, "fixed = 1\n")
    config = git(workspace, "config", "--list", "--show-origin")
    assert "extraheader" not in config
    assert "ghs_secret" not in config


def test_push_branch__over_http_sends_the_token_only_to_that_push(workspace: Path, remote: Path) -> None:
    from tests.fakes.git_http import GitHTTPServer

    server = GitHTTPServer(remote.parent, "ghs_secret_token_value").start()
    try:
        git(workspace, "remote", "set-url", "origin", server.url(remote.name))
        # what actions/checkout leaves behind with persist-credentials: true — a stale header we must replace
        git(
            workspace, "config", f"http.{server.url('')}".rstrip("/") + "/.extraheader", "AUTHORIZATION: basic c3RhbGU="
        )
        result = commit_and_push(workspace, "fixed = 1\n")
        assert result.outcome == "created"
        assert git(remote, "rev-parse", "sentry-autofix/SHOP-1F").strip() == result.sha
        assert server.auth_headers
        assert all(h.lower() == server.expected.lower() for h in server.auth_headers)
        # without our env the same remote refuses: the token was never stored
        git(workspace, "config", "--unset-all", f"http.{server.url('')}".rstrip("/") + "/.extraheader")
        with pytest.raises(subprocess.CalledProcessError):
            git(workspace, "ls-remote", "origin")
    finally:
        server.stop()


def test_push_branch__a_refused_push_says_the_servers_reason_and_what_to_check(workspace: Path, remote: Path) -> None:
    """A protected `sentry-autofix/*` pattern on GitLab: the server explains on `remote:` lines and
    git's own last line says only "failed to push some refs" — the error keeps the server's words
    and names what to check (outside review of the GitLab flow)."""
    from tests.fakes.git_http import GitHTTPServer

    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "echo 'GitLab: You are not allowed to push code to protected branches on this project.' >&2\n"
        "exit 1\n"
    )
    hook.chmod(0o755)
    server = GitHTTPServer(remote.parent, "ghs_secret_token_value").start()
    try:
        git(workspace, "remote", "set-url", "origin", server.url(remote.name))
        with pytest.raises(GitError) as caught:
            commit_and_push(workspace, "fixed = 1\n")
    finally:
        server.stop()
    message = str(caught.value)
    assert "You are not allowed to push code to protected branches on this project" in message
    assert "refs/heads/sentry-autofix/SHOP-1F" in message
    assert "SENTRY_AUTOFIX_BRANCH_PREFIX" in message and "write_repository" in message
    assert "ghs_secret_token_value" not in message
    assert git(remote, "branch", "--list", "sentry-autofix/*") == ""


def test_diff_of__is_what_git_says_including_new_and_deleted_files(workspace: Path) -> None:
    (workspace / "shop" / "cart.py").write_text((workspace / "shop" / "cart.py").read_text() + "# tail\n")
    (workspace / "shop" / "guard.py").write_text("GUARD = 1\n")
    (workspace / "README.md").unlink()
    diff, files = b.diff_of(workspace, ["README.md", "shop/cart.py", "shop/guard.py"])
    assert "+# tail" in diff
    assert "+GUARD = 1" in diff
    by_path = {f.path: f for f in files}
    assert by_path["shop/cart.py"].added == 1
    assert by_path["shop/guard.py"].is_new is True
    assert by_path["README.md"].is_deleted is True
    assert git(workspace, "diff", "--cached", "--name-only") == ""  # the index is left as it was


def test_push_branch__works_from_a_shallow_checkout(workspace: Path, remote: Path, tmp_path: Path) -> None:
    """actions/checkout fetches with depth 1 by default: create, then replace our branch from such clones."""
    commit_and_push(workspace, "fixed = 1\n")
    # main moves on, as it does between two runs
    (workspace / "NEWS").write_text("later\n")
    git(workspace, "checkout", "-q", "-f", "main")
    git(workspace, "add", "NEWS")
    git(workspace, "commit", "-qm", "later")
    git(workspace, "push", "-q", "origin", "main")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", "-b", "main", f"file://{remote}", str(shallow))
    assert git(shallow, "rev-parse", "--is-shallow-repository").strip() == "true"
    result = commit_and_push(shallow, "fixed = 2\n")
    assert result.outcome == "updated"
    assert git(remote, "rev-parse", "sentry-autofix/SHOP-1F^").strip() == git(remote, "rev-parse", "main").strip()
