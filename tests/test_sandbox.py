"""The sandbox every test command runs in (workspace/sandbox.py, sandbox_init.py), tried as the
hostile code it exists for would try it: real namespaces, real processes, real files.

These need root (as here and in CI) or passwordless sudo (GitHub-hosted runners); elsewhere they
skip, and `test_executor__*` show what a user without either gets.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentry_autofix.workspace import sandbox
from sentry_autofix.workspace.testrunner import TestExecutor
from tests.conftest import INTERPRETER_EXPOSE

ISOLATION = sandbox.probe()
needs_sandbox = pytest.mark.skipif(ISOLATION.kind != "sandbox", reason=f"no sandbox here: {ISOLATION.reason}")


def run(ws: Path, command: str, *, timeout: float = 30, **kw: object) -> sandbox.Ran:
    env = kw.pop("env", None) or sandbox.sandbox_env(os.environ)
    target = sandbox.prepare(ws, job_env=kw.pop("job_env", None), expose=INTERPRETER_EXPOSE)  # type: ignore[arg-type]
    return sandbox.run_sandboxed(ISOLATION, target, command, timeout=timeout, env=env, **kw)  # type: ignore[arg-type]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "T"],
        ["config", "http.https://github.com/.extraheader", "AUTHORIZATION: basic Z2hzX3NlY3JldA=="],
        ["remote", "add", "origin", "https://x-access-token:ghs_inurl@github.com/acme/shop.git"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    (repo / "app.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True, env=env)
    return repo


def alive(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if marker in line]


@needs_sandbox
def test_sandbox__sees_no_process_of_ours_and_pid_1_is_its_reaper(ws: Path) -> None:
    outside = subprocess.Popen(["sleep", "4240.11"])
    try:
        ran = run(ws, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; grep '^Uid' /proc/1/status; cat /proc/1/environ")
    finally:
        outside.kill()
        outside.wait()
    assert ran.exit_code != 0  # reading PID 1's environment is refused
    assert "4240.11" not in ran.output
    assert "pytest" not in ran.output
    assert "Uid:\t0" in ran.output  # root's reaper: not ptrace-able, not signalable by the command
    assert "Permission denied" in ran.output


@needs_sandbox
def test_sandbox__runs_unprivileged_without_capabilities_or_new_privileges(ws: Path) -> None:
    ran = run(ws, "id -u; id -G; grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; kill -9 1; echo kill=$?")
    assert ran.output.splitlines()[0] == str(sandbox.SANDBOX_ID)
    assert "CapEff:\t0000000000000000" in ran.output
    assert "CapPrm:\t0000000000000000" in ran.output
    assert "NoNewPrivs:\t1" in ran.output
    assert "kill=1" in ran.output.replace(" ", "")


@needs_sandbox
def test_sandbox__environment_holds_only_the_toolchain_and_named_variables(ws: Path) -> None:
    base = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "GITHUB_TOKEN": "ghs_tokenvalue123",
        "ACTIONS_RUNTIME_TOKEN": "rt_value_123456",
        "DATABASE_URL": "postgres://u:pw@db/x",
        "MY_SERVICE_TOKEN": "named-but-secret-looking",
        "FEATURE_FLAGS": "a,b",
        "PYTHON_TOKEN": "looks-like-toolchain-but-secret",
        "JAVA_HOME": "/opt/java",
        "PIP_INDEX_URL": "https://user:pip-index-secret@pypi.example/simple",
        "BUNDLE_GEMS__EXAMPLE__COM": "user:bundle-secret-value",
    }
    env = sandbox.sandbox_env(base, passthrough=["FEATURE_FLAGS"], secret_values=["ghs_tokenvalue123"])
    ran = run(ws, "env | sort", env=env)
    assert ran.exit_code == 0
    assert "LANG=C.UTF-8" in ran.output
    assert "JAVA_HOME=/opt/java" in ran.output
    assert "FEATURE_FLAGS=a,b" in ran.output
    assert "HOME=/tmp/home" in ran.output
    for leaked in (
        "ghs_tokenvalue123",
        "rt_value_123456",
        "postgres://",
        "named-but-secret",
        "looks-like-toolchain",
        "pip-index-secret",  # red team: credentials inside kept toolchain variables
        "bundle-secret-value",
    ):
        assert leaked not in ran.output


@needs_sandbox
def test_sandbox__git_folder_is_read_only_and_its_config_holds_no_credential(ws: Path) -> None:
    ran = run(
        ws,
        "cat .git/config; touch .git/hooks/pre-push; echo hook=$?; git config core.fsmonitor x; echo cfg=$?; "
        "git log --oneline | wc -l; touch new.txt; echo new=$?",
    )
    assert "extraheader" not in ran.output
    assert "Z2hzX3NlY3JldA" not in ran.output
    assert "ghs_inurl" not in ran.output
    assert "hook=1" in ran.output
    assert "cfg=255" in ran.output
    assert "new=0" in ran.output  # the work tree itself is writable
    assert "\n1\n" in ran.output  # git still works inside, read-only
    assert not (ws / ".git" / "hooks" / "pre-push").exists()
    assert "fsmonitor" not in (ws / ".git" / "config").read_text()


@needs_sandbox
def test_sandbox__secret_files_of_the_repository_read_as_empty(ws: Path) -> None:
    """What the model may not read (`.env*`, `secrets/`, `credentials/`), the tests it writes may
    not either: their output goes back to the model."""
    (ws / ".gitignore").write_text(".env\n")
    (ws / ".env").write_text("DB_PASSWORD=dotenv-secret-1\n")
    (ws / ".env.local").write_text("API=dotenv-secret-2\n")
    (ws / "config" / "secrets").mkdir(parents=True)
    (ws / "config" / "secrets" / "key.pem").write_text("dotenv-secret-3\n")
    ran = run(ws, "cat .env .env.local config/secrets/key.pem; ls config/secrets | wc -l; cat app.py")
    for n in (1, 2, 3):
        assert f"dotenv-secret-{n}" not in ran.output
    assert "x = 1" in ran.output  # everything else is there
    assert (ws / ".env").read_text() == "DB_PASSWORD=dotenv-secret-1\n"  # and untouched outside


@needs_sandbox
def test_sandbox__files_it_writes_belong_to_the_workspace_owner(ws: Path) -> None:
    ran = run(ws, "id -u; mkdir -p out && echo data > out/result.txt && ls -n out/result.txt")
    assert ran.exit_code == 0, ran.output
    st = (ws / "out" / "result.txt").stat()
    assert (st.st_uid, st.st_gid) == (ws.stat().st_uid, ws.stat().st_gid)
    assert (ws / "out" / "result.txt").read_text() == "data\n"


@needs_sandbox
def test_sandbox__hides_home_runner_temp_and_the_runner_command_files(ws: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".git-credentials").write_text("https://x-access-token:ghs_home@github.com\n")
    runner_temp = tmp_path / "runner-temp"
    (runner_temp / "_runner_file_commands").mkdir(parents=True)
    github_env = runner_temp / "_runner_file_commands" / "set_env_1"
    github_env.write_text("")
    job = {"HOME": str(home), "RUNNER_TEMP": str(runner_temp), "GITHUB_ENV": str(github_env), "PATH": "/usr/bin:/bin"}
    hidden = [Path(h) for h in sandbox.hidden_paths(ws, job)]
    for secret_place in (home, runner_temp, github_env.parent):
        assert any(h == secret_place or h in secret_place.parents for h in hidden), secret_place
    assert ws not in hidden  # the repository itself is mounted back, never hidden
    ran = run(
        ws,
        f"cat {home}/.git-credentials; echo pwn >> {github_env}; echo env=$?; ls -A {home} | wc -l",
        job_env=job,
    )
    assert "ghs_home" not in ran.output
    assert "env=1" in ran.output or "env=2" in ran.output
    assert github_env.read_text() == ""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user can traverse, as `/opt` is, and outside /tmp (pytest's tmp_path sits
    below a 0700 folder in /tmp, both of which the sandbox hides whole — hiding too much would
    prove nothing here): next to this checkout."""
    parent = Path(__file__).resolve().parent.parent
    closed = [str(a) for a in (parent, *parent.parents) if not os.stat(a).st_mode & 0o001]
    if closed:
        pytest.skip(f"this checkout is below folders others cannot traverse ({closed[0]}): no open folder to test in")
    path = Path(tempfile.mkdtemp(prefix=".sandbox-open-", dir=parent))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_sandbox
def test_sandbox__self_hosted_runner_folders_are_hidden_its_tool_cache_shown(open_dir: Path) -> None:
    """A self-hosted runner installed outside HOME (`/opt/actions-runner`, red team's untried
    layout): its credentials files, the `_diag` logs of every job it ran and the other checkouts
    in `_work` are out of reach; `_work/_tool` (setup-python's toolchains) stays readable."""
    tmp_path = open_dir
    runner = tmp_path / "actions-runner"
    work = runner / "_work"
    (runner / "_diag").mkdir(parents=True)
    (runner / ".runner").write_text('{"agentName": "self-hosted-1"}\n')
    (runner / ".credentials").write_text('{"scheme": "OAuth", "data": {"clientId": "cred-SELFHOSTED-0001"}}\n')
    (runner / "_diag" / "Worker_20261205.log").write_text("token ghs_DIAGLOG_0123456789abcdef\n")
    (work / "_temp").mkdir(parents=True)
    (work / "_tool" / "Python" / "3.11.9" / "x64").mkdir(parents=True)
    (work / "_tool" / "Python" / "3.11.9" / "x64" / "marker").write_text("toolchain\n")
    (work / "other" / "other").mkdir(parents=True)
    (work / "other" / "other" / "leaked.cfg").write_text("extraheader = AUTHORIZATION: basic OTHERJOB-SECRET\n")
    repo = work / "shop" / "shop"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.py").write_text("print('app')\n")
    job = {
        "HOME": str(tmp_path / "home"),
        "RUNNER_TEMP": str(work / "_temp"),
        "RUNNER_TOOL_CACHE": str(work / "_tool"),
        "PATH": "/usr/bin:/bin",
    }
    ran = run(
        repo,
        f"cat {runner}/.credentials {runner}/_diag/*.log {work}/other/other/leaked.cfg; "
        f"cat {work}/_tool/Python/3.11.9/x64/marker; cat app.py; echo pwn > {work}/_tool/x; echo tool-write=$?",
        job_env=job,
    )
    for secret in ("cred-SELFHOSTED", "ghs_DIAGLOG", "OTHERJOB-SECRET"):
        assert secret not in ran.output
    assert "toolchain" in ran.output, ran.output
    assert "print('app')" in ran.output
    assert "tool-write=0" not in ran.output  # shown read-only
    assert not (work / "_tool" / "x").exists()


@needs_sandbox
def test_sandbox__a_linked_worktree_sees_its_git_folder_but_not_the_main_checkout(open_dir: Path) -> None:
    """Red team: `eval` runs in a throwaway worktree of the user's checkout; the masks covered the
    worktree's `.env`, not the main checkout's, which a hostile test read at its real path and
    the model then received. The main checkout is hidden; its git folder stays visible, with a
    config holding no remote or credential."""
    main = open_dir / "main"
    subprocess.run(["git", "init", "-q", "-b", "main", str(main)], check=True)
    (main / "app.py").write_text("x = 1\n")
    (main / ".env").write_text("TOPSECRET_DOTENV=abc\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["add", "app.py"], ["-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(main), *args], check=True, env=env)
    worktree = open_dir / "wt"
    subprocess.run(["git", "-C", str(main), "worktree", "add", "-q", "--detach", str(worktree)], check=True, env=env)
    subprocess.run(["git", "-C", str(main), "config", "remote.origin.url", "https://ghs_INURL@x/y"], check=True)
    ran = run(worktree, f"cat {main}/.env {main}/app.py; cat {main}/.git/HEAD {main}/.git/config; cat app.py")
    assert "TOPSECRET_DOTENV" not in ran.output
    assert "No such file or directory" in ran.output  # the main checkout's files are gone
    assert "ref: refs/heads/main" in ran.output  # its git folder is not
    assert "ghs_INURL" not in ran.output
    assert ran.output.rstrip().endswith("x = 1")  # the worktree's own files


def test_runner_dirs__finds_the_install_folder_of_the_runner_that_started_us(tmp_path: Path) -> None:
    """The install folder may not be next to the work folder (`--work /data/work`): the runner
    binary among the ancestor processes names it."""
    runner = tmp_path / "opt" / "actions-runner"
    (runner / "bin").mkdir(parents=True)
    fake = runner / "bin" / "Runner.Worker"
    fake.write_bytes(Path("/bin/sh").read_bytes())
    fake.chmod(0o755)
    worker = subprocess.Popen([str(fake), "-c", "sleep 30; true"])  # `; true`: sh must not exec sleep
    try:
        assert sandbox.runner_dirs({}, pid=worker.pid) == [str(runner)]
        assert sandbox.runner_dirs({}, pid=os.getpid()) == []  # pytest was not started by a runner
    finally:
        worker.kill()
        worker.wait()
    # RUNNER_TEMP names the work folder only in the runner's own layout (`<work>/_temp`).
    assert sandbox.runner_dirs({"RUNNER_TEMP": "/opt/some/tmp"}, pid=1) == []
    assert sandbox.runner_dirs({"RUNNER_TEMP": "/data/work/_temp"}, pid=1) == ["/data/work"]


@needs_sandbox
def test_sandbox__cannot_write_outside_the_workspace_nor_into_the_product(ws: Path) -> None:
    package = Path(sandbox.__file__).parent
    ran = run(ws, f"touch {package}/evil.py; echo pkg=$?; touch {sys.executable}.evil; echo py=$?")
    assert "pkg=1" in ran.output
    assert "py=1" in ran.output
    assert not (package / "evil.py").exists()


@needs_sandbox
def test_sandbox__setsid_children_die_with_the_command(ws: Path) -> None:
    ran = run(ws, "setsid sh -c 'sleep 4241.12' & (setsid sleep 4241.12 &); echo started")
    assert ran.exit_code == 0
    time.sleep(0.2)
    assert alive("4241.12") == []


@needs_sandbox
def test_sandbox__timeout_kills_the_whole_namespace(ws: Path) -> None:
    started = time.monotonic()
    ran = run(ws, "(setsid sleep 4242.13 &); trap '' TERM; sleep 4242.13", timeout=1)
    assert ran.exit_code is None
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert alive("4242.13") == []


@needs_sandbox
def test_sandbox__output_is_head_and_tail_within_a_fixed_size(ws: Path) -> None:
    ran = run(ws, "echo FIRST-LINE; head -c 30000000 /dev/zero | tr '\\0' 'x'; echo; echo LAST-LINE")
    assert ran.exit_code == 0
    assert ran.output.startswith("FIRST-LINE")
    assert ran.output.rstrip().endswith("LAST-LINE")
    assert "bytes of output omitted" in ran.output
    assert len(ran.output) < sandbox.HEAD_CHARS + sandbox.TAIL_CHARS + 200


@needs_sandbox
def test_sandbox__file_size_and_process_limits_hold(ws: Path) -> None:
    ran = sandbox._launch(
        ISOLATION,
        ws,
        "head -c 3000000 /dev/zero > big.bin; echo dd=$?; for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo forks",
        timeout=20,
        env=sandbox.sandbox_env(os.environ),
        network="host",
        hide=[],
        expose=[],
        git_dirs=[],
        rlimits={"RLIMIT_FSIZE": 1_000_000, "RLIMIT_NPROC": 4, "RLIMIT_CORE": 0},
    )
    assert (ws / "big.bin").stat().st_size <= 1_000_000
    assert "dd=0" not in ran.output
    assert "fork" in ran.output.lower() or "resource" in ran.output.lower()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@needs_sandbox
def test_sandbox__network_none_reaches_only_its_own_loopback(ws: Path, loopback_server: int) -> None:
    probe = (
        f"{sys.executable} -c \"import urllib.request as u; print('got', u.urlopen('http://127.0.0.1:{loopback_server}',"
        ' timeout=3).read())"; '
        f"{sys.executable} -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print('bound')\""
    )
    host = run(ws, probe, network="host")
    assert "got b'hello'" in host.output
    isolated = sandbox.run_sandboxed(
        sandbox.probe("none"),
        sandbox.prepare(ws, expose=INTERPRETER_EXPOSE),
        probe,
        timeout=30,
        env=sandbox.sandbox_env(os.environ),
        network="none",
    )
    assert "got b'hello'" not in isolated.output
    assert "bound" in isolated.output


def test_executor__without_a_sandbox_tests_do_not_run_unless_the_user_opts_out(tmp_path: Path) -> None:
    none = sandbox.Isolation("none", reason="not root and `sudo -n` needs a password")
    refused = TestExecutor(tmp_path, "echo ran", timeout=10, budget=60, probe=lambda _n: none)()
    assert refused.status == "not-run"
    assert "sudo -n" in refused.output_tail
    assert "SENTRY_AUTOFIX_ALLOW_UNSANDBOXED_TESTS" in refused.output_tail
    assert refused.sandboxed is None
    allowed = TestExecutor(
        tmp_path,
        "echo ran; echo ${GITHUB_TOKEN:-none}",
        timeout=10,
        budget=60,
        allow_unsandboxed=True,
        base_env={"PATH": "/usr/bin:/bin", "GITHUB_TOKEN": "ghs_x123456"},
        probe=lambda _n: none,
    )()
    assert allowed.status == "passed"
    assert allowed.sandboxed is False
    assert "ran\nnone" in allowed.output_tail


@needs_sandbox
def test_executor__all_runs_of_a_fix_share_one_time_budget(ws: Path) -> None:
    executor = TestExecutor(ws, "sleep 1.2", timeout=60, budget=2.5)
    first, second, third = executor(), executor(), executor()
    assert first.status == "passed" and first.sandboxed is True
    assert second.status in ("passed", "failed")  # cut at the budget's end, or just in time
    assert third.status == "not-run"
    assert "SENTRY_AUTOFIX_TEST_BUDGET" in third.output_tail
