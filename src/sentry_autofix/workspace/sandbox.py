"""Run repository code — the repo's tests, and any test the model wrote — away from every secret.

The Sentry event is attacker-controlled, so the model may be steered, so whatever the tests run
is hostile. The process that runs them must not be able to read the job's secrets (environment,
`/proc/<pid>/environ` of our process or the runner's, `.git/config`'s extraheader,
`~/.git-credentials`), write the runner's command files (`GITHUB_ENV`, `GITHUB_OUTPUT`,
`GITHUB_PATH`…), plant anything our own git runs (hooks, config), outlive its time, or fill the
disk or the log. `sandbox_init.py` builds that view with Linux namespaces as root; this module
decides how to get root (already root, or `sudo -n` as on GitHub-hosted runners), what the
command may see, and reads its output within a fixed size.

Where no mechanism works (no root, no passwordless sudo, or a container without the needed
capabilities) tests do not run, unless the user opts out with
`allow-unsandboxed-tests: true`; then they run with a scrubbed environment only and the PR
says so.
"""

from __future__ import annotations

import functools
import marshal
import os
import pwd
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sentry_autofix.config import SECRET_READ_PATHS
from sentry_autofix.workspace.git import run_git
from sentry_autofix.workspace.guard import matches_any

INIT_SCRIPT = Path(__file__).with_name("sandbox_init.py")
SANDBOX_ID = 64911
"""uid and gid of the command inside the sandbox: unprivileged, owns nothing outside it."""

HEAD_CHARS = 2_000
TAIL_CHARS = 6_000

DEFAULT_RLIMITS: Mapping[str, int] = {
    "RLIMIT_NPROC": 4096,
    "RLIMIT_FSIZE": 1 << 30,
    "RLIMIT_CORE": 0,
}
"""Processes (of the sandbox uid), the largest file one process may write, no core dumps."""

TMP_BYTES = 2 << 30
"""Size of each fresh tmpfs (/tmp, /var/tmp, /dev/shm) inside the sandbox."""

_KEEP_ENV = re.compile(
    r"^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|TERM|SHELL|CI|GITHUB_ACTIONS|RUNNER_OS|RUNNER_ARCH"
    r"|JAVA_HOME(_[0-9A-Z_]+)?|GOROOT(_[0-9A-Z_]+)?|GOPATH|GOFLAGS|CGO_ENABLED|DOTNET_ROOT|DOTNET_[A-Z_]+"
    r"|ANDROID_(HOME|SDK_ROOT|NDK_HOME)|ANT_HOME|GRADLE_HOME|M2_HOME|MAVEN_HOME|CHROME_BIN|CHROMEWEBDRIVER"
    r"|PYTHON[A-Z_]*|Python[0-9]?_ROOT_DIR|pythonLocation|VIRTUAL_ENV|CONDA|CONDA_[A-Z_]+|PIP_[A-Z_]+"
    r"|UV_[A-Z_]+|NODE_OPTIONS|NODE_ENV|NODE_PATH|NVM_DIR|npm_config_[a-z_]+|RUSTUP_HOME|CARGO_HOME"
    r"|PKG_CONFIG_PATH|LD_LIBRARY_PATH|LIBRARY_PATH|CPATH|CC|CXX|CFLAGS|CXXFLAGS|LDFLAGS|MAKEFLAGS"
    r"|DEBIAN_FRONTEND|XDG_[A-Z_]+|RAILS_ENV|RACK_ENV|APP_ENV|DJANGO_SETTINGS_MODULE|GEM_HOME|GEM_PATH"
    r"|BUNDLE_[A-Z_]+|PHP_[A-Z_]+|COMPOSER_HOME)$"
)
"""Variables a toolchain needs; anything else (a workflow's own secrets too) is left out."""

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PRIVATE|CREDENTIAL|API_?KEY|AUTH|COOKIE|SESSION|_KEY$", re.IGNORECASE)

TOOLCHAINS_IN_HOME: tuple[str, ...] = (
    ".pyenv",
    ".rbenv",
    ".nvm",
    ".volta",
    ".rustup",
    ".cargo/bin",
    ".sdkman/candidates",
    ".asdf/installs",
    ".asdf/shims",
    ".local/share/uv/python",
    ".local/share/mise/installs",
    ".dotnet",
    ".bun/bin",
    ".deno/bin",
    "go/bin",
    "sdk",
)
"""Interpreters and compilers installed under the job's HOME (pyenv, nvm, rustup…): visible,
read-only, though HOME itself is hidden; folders that hold credentials (`.cargo` itself, `.m2`,
`.gradle`, `.npmrc`, `.docker`, `.config`) are not. More with `sandbox-expose`."""

_CREDENTIAL_VALUE = re.compile(r"://[^/@\s]+:[^/@\s]*@|^[^:/\s]+:[^@\s]+$")
"""A toolchain variable holding credentials (`https://user:pw@index/`, Bundler's `user:pw`)."""
_CREDENTIAL_NAME = re.compile(r"^(BUNDLE_[A-Z0-9_]*__[A-Z0-9_]+|(PIP|UV)_(EXTRA_)?INDEX_URL|UV_INDEX_[A-Z0-9_]+)$")
"""Per-host package-index credentials: passed only when named in `test-env`."""

_RUNNER_FILE_VARS = ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STEP_SUMMARY", "GITHUB_STATE")


def sandbox_env(
    base: Mapping[str, str],
    *,
    passthrough: Iterable[str] = (),
    secret_values: Iterable[str] = (),
    home: str = "/tmp/home",
) -> dict[str, str]:
    """The command's environment: the toolchain's variables, the names the user passes through
    (`test-env`), never a name that looks secret nor a value equal to a configured secret."""
    extra = {n.strip() for n in passthrough if n.strip()}
    values = {v for v in secret_values if v and len(v) >= 6}
    env = {
        k: v
        for k, v in base.items()
        if (k in extra or (_KEEP_ENV.match(k) and not _SECRET_NAME.search(k) and not _CREDENTIAL_VALUE.search(v)))
        and not (k not in extra and _CREDENTIAL_NAME.match(k))
        and not any(s in v for s in values)
    }
    env.update({"HOME": home, "TMPDIR": "/tmp", "USER": "sandbox", "LOGNAME": "sandbox"})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


@dataclass(frozen=True)
class Isolation:
    """How repository code runs on this machine (probed once per process)."""

    kind: Literal["sandbox", "none"]
    prefix: tuple[str, ...] = ()
    """`()` when we are root, `("sudo", "-n")` otherwise."""
    reason: str = ""
    """Why there is no sandbox (for `kind == "none"`), naming what to fix."""


@dataclass
class Captured:
    """A command's output, kept as head + tail within a fixed size however much it printed."""

    head_limit: int = HEAD_CHARS
    tail_limit: int = TAIL_CHARS
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_limit * 2:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        tail = bytes(self.tail[-self.tail_limit :])
        head = bytes(self.head).decode("utf-8", errors="replace")
        omitted = self.total - len(self.head) - len(tail)
        if omitted <= 0:
            return head + bytes(self.tail).decode("utf-8", errors="replace")
        return f"{head}\n[… {omitted} bytes of output omitted …]\n" + tail.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Ran:
    exit_code: int | None
    """None when it timed out."""
    output: str
    seconds: float
    sandboxed: bool
    setup_error: str | None = None
    """Set when the sandbox could not be built: the command did not run."""


def _drain(fd: int, captured: Captured, deadline: float) -> bool:
    """Read `fd` until EOF or the deadline; True when the deadline passed first."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        captured.feed(chunk)


class SandboxServer:
    """The root side of the sandbox for one fix: `sandbox_init.py --serve` started once (as root,
    or through `sudo -n` once), forking a fresh sandbox per run — so a run costs a fork and a few
    mounts, not an interpreter start-up. Closed with `close()` (or when this process ends: the
    server exits when its socket closes)."""

    def __init__(self, isolation: Isolation) -> None:
        self._sock, theirs = socket.socketpair()
        self._errors = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [*isolation.prefix, sys.executable, "-I", "-S", str(INIT_SCRIPT)],
            stdin=theirs.fileno(),
            stdout=subprocess.DEVNULL,
            stderr=self._errors,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},  # no secret reaches root
            start_new_session=True,
        )
        theirs.close()

    def run(self, plan: Mapping[str, object], timeout: float) -> Ran:
        with self._lock:
            return self._run(plan, timeout)

    def _run(self, plan: Mapping[str, object], timeout: float) -> Ran:
        started = time.monotonic()
        captured = Captured()
        data = marshal.dumps(dict(plan))
        out_r, out_w = os.pipe()
        try:
            try:
                socket.send_fds(self._sock, [len(data).to_bytes(4, "big") + data], [out_w])
            except OSError as exc:
                return Ran(None, "", time.monotonic() - started, True, setup_error=self._gone(exc))
            finally:
                os.close(out_w)
            # The reaper enforces `timeout` inside; ours is the backstop should the sandbox hang.
            late = _drain(out_r, captured, started + timeout + 15)
        finally:
            os.close(out_r)
        if late:
            self.close()
            return Ran(None, captured.text(), time.monotonic() - started, True)
        try:
            self._sock.settimeout(15)
            size = int.from_bytes(self._recv(4), "big")
            last = self._recv(size).decode("utf-8", errors="replace")
        except (OSError, EOFError) as exc:
            return Ran(None, captured.text(), time.monotonic() - started, True, setup_error=self._gone(exc))
        seconds = time.monotonic() - started
        word, _, rest = last.partition(" ")
        if word == "error":
            return Ran(None, captured.text(), seconds, True, setup_error=rest)
        if word != "ok":
            return Ran(None, captured.text(), seconds, True, setup_error=f"sandbox did not start: {last[:300]}")
        code_text = rest.split()[0] if rest.split() else "timeout"
        code = None if not code_text.lstrip("-").isdigit() else int(code_text)
        return Ran(code, captured.text(), seconds, True)

    def _recv(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise EOFError("the sandbox server closed its socket")
            data += chunk
        return data

    def _gone(self, exc: BaseException) -> str:
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._errors.seek(0)
        said = self._errors.read().decode("utf-8", errors="replace").strip().splitlines()
        return f"sandbox did not start: {(said[-1] if said else str(exc) or type(exc).__name__)[:300]}"

    def close(self) -> None:
        if self._sock.fileno() < 0:
            return
        self._sock.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _stop(self._proc)
        self._errors.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _traversable(path: Path, uid: int, gid: int) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def homes(env: Mapping[str, str]) -> list[str]:
    """The job's HOME and our user's home folder from the password database (they differ when a
    workflow sets HOME; both may hold credentials)."""
    found = [env.get("HOME") or "", os.path.expanduser("~")]
    try:
        found.append(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:
        pass
    return sorted({h for h in found if h and h != "/"})


_RUNNER_BINARIES = ("Runner.Worker", "Runner.Listener")


def runner_dirs(env: Mapping[str, str], pid: int | None = None) -> list[str]:
    """A self-hosted runner's own folders, which may sit outside HOME (`/opt/actions-runner`):
    its install folder (`.credentials`, `.runner`, the `_diag` logs of every job it ran) and its
    work folder (`_work`: other repositories' checkouts, `_actions`, `_temp`).

    The install folder is the one holding the `bin/Runner.Worker` among our ancestor processes
    (the runner starts each job's steps), or the work folder's parent when it holds `.runner`.
    The work folder is RUNNER_TEMP's parent when RUNNER_TEMP is the runner's `<work>/_temp`.
    """
    found: list[str] = []
    temp = env.get("RUNNER_TEMP")
    if temp and Path(temp).name == "_temp":
        work = Path(temp).parent
        found.append(str(work))
        if (work.parent / ".runner").is_file():
            found.append(str(work.parent))
    current = os.getppid() if pid is None else pid
    for _ in range(64):  # up the process tree to the runner, if it started us
        if current <= 1:
            break
        try:
            exe = Path(os.readlink(f"/proc/{current}/exe"))
            with open(f"/proc/{current}/stat", encoding="utf-8", errors="replace") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if exe.name in _RUNNER_BINARIES and exe.parent.name == "bin":
            found.append(str(exe.parent.parent))
            break
        current = parent
    return found


def hidden_paths(root: Path, env: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Folders replaced by an empty tmpfs: the job's HOME, the runner's temp folder and command
    files, a self-hosted runner's install and work folders, container-action folders, and any
    ancestor of the repository the sandbox user could not traverse (the repository is mounted
    back inside it)."""
    candidates: set[Path] = set()
    container_dirs = ("/github/home", "/github/workflow", "/github/file_commands")
    for raw in (*homes(env), env.get("RUNNER_TEMP"), *runner_dirs(env), *container_dirs, *extra):
        if raw:
            candidates.add(Path(raw))
    for name in _RUNNER_FILE_VARS:
        if env.get(name):
            candidates.add(Path(env[name]).parent)
    owner = root.stat()
    for ancestor in reversed(root.parents):
        if ancestor != Path("/") and not _traversable(ancestor, SANDBOX_ID, SANDBOX_ID):
            candidates.add(ancestor)
            break
        if owner.st_uid != 0 and not _traversable(ancestor, owner.st_uid, owner.st_gid):
            break
    hide: list[str] = []
    for path in sorted(candidates, key=lambda p: len(p.parts)):
        path = Path(os.path.abspath(path))
        if path == Path("/") or path == root or root in path.parents or not path.is_dir():
            continue  # never hide the repository itself, nor everything
        if any(Path(h) in path.parents for h in hide):
            continue
        hide.append(str(path))
    return hide


def _git_dirs(root: Path) -> list[tuple[str, str]]:
    """The repository's git folders with the config the sandbox sees: format settings only."""
    proc = run_git(root, "rev-parse", "--absolute-git-dir", "--git-common-dir", check=False)
    if proc.returncode != 0:
        return []
    dirs: list[str] = []
    for line in proc.stdout.splitlines():
        path = Path(line.strip())
        path = path if path.is_absolute() else root / path
        if str(path.resolve()) not in dirs:
            dirs.append(str(path.resolve()))
    out = []
    for git_dir in dirs:
        keep = run_git(
            root,
            "config",
            "--file",
            os.path.join(git_dir, "config"),
            "--get-regexp",
            r"^(core\.(repositoryformatversion|bare|filemode|ignorecase|precomposeunicode|symlinks|logallrefupdates)"
            r"|extensions\..*)$",
            check=False,
        ).stdout
        lines = ["# sentry-autofix sandbox: remotes, credentials and hooks are not visible here"]
        section = None
        for entry in keep.splitlines():
            name, _, value = entry.partition(" ")
            sect, _, key = name.rpartition(".")
            if sect != section:
                lines.append(f"[{sect}]")
                section = sect
            lines.append(f"\t{key} = {value}")
        out.append((git_dir, "\n".join(lines) + "\n"))
    return out


def _root_prefix() -> tuple[tuple[str, ...] | None, str]:
    if os.geteuid() == 0:
        return (), ""
    if shutil.which("sudo") is None:
        return None, "not root and no sudo"
    try:
        ok = subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        return None, "not root and `sudo -n` needs a password"
    return ("sudo", "-n"), ""


@functools.lru_cache(maxsize=4)
def probe(network: Literal["host", "none"] = "host") -> Isolation:
    """Find out once whether a sandbox can be built here: run `true` in one."""
    if not sys.platform.startswith("linux"):
        return Isolation("none", reason=f"sandboxing needs Linux namespaces (this is {sys.platform})")
    prefix, why = _root_prefix()
    if prefix is None:
        return Isolation("none", reason=why)
    with tempfile.TemporaryDirectory(prefix="sentry-autofix-probe-") as tmp:
        os.chmod(tmp, 0o755)
        ran = _launch(
            Isolation("sandbox", prefix),
            Path(tmp),
            "true",
            timeout=20,
            env={"PATH": "/usr/bin:/bin"},
            network=network,
            hide=[],
            expose=[],
            git_dirs=[],
        )
    if ran.setup_error or ran.exit_code != 0:
        return Isolation("none", reason=ran.setup_error or f"the probe exited {ran.exit_code}: {ran.output[-300:]}")
    return Isolation("sandbox", prefix)


def _launch(
    isolation: Isolation,
    root: Path,
    command: str,
    *,
    timeout: float,
    env: Mapping[str, str],
    network: Literal["host", "none"],
    hide: Sequence[str],
    expose: Sequence[str],
    git_dirs: Sequence[tuple[str, str]],
    cwd: Path | None = None,
    rlimits: Mapping[str, int] = DEFAULT_RLIMITS,
    mask: Sequence[str] = (),
    server: SandboxServer | None = None,
) -> Ran:
    owner = root.stat()
    plan = {
        "root": str(root),
        "cwd": str(cwd or root),
        "command": command,
        "env": dict(env),
        "timeout": timeout,
        "network": network,
        "uid": SANDBOX_ID,
        "gid": SANDBOX_ID,
        "owner_uid": owner.st_uid,
        "owner_gid": owner.st_gid,
        "hide": list(hide),
        "expose": [p for p in expose if os.path.isdir(p)],
        "fresh_tmp": ["/tmp", "/var/tmp", "/dev/shm"],
        "tmp_bytes": TMP_BYTES,
        "git_dirs": [list(g) for g in git_dirs],  # marshal: plain lists, str and int only
        "rlimits": dict(rlimits),
        "mask": list(mask),
    }
    if server is not None:
        return server.run(plan, timeout)
    with SandboxServer(isolation) as once:
        return once.run(plan, timeout)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Through sudo we may not SIGKILL the root process; sudo relays SIGTERM, and the reaper dies
    # with its parent (PDEATHSIG), which kills the whole namespace.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def secret_paths(root: Path) -> list[str]:
    """Files and folders of the repository that match the secret globs (`.env*`, `secrets/`,
    `credentials/`): the model may not read them, so neither may the tests it writes (their
    output goes back to the model). Tracked, untracked and ignored ones alike."""
    listings = (
        ("ls-files", "-z", "--cached", "--others", "--exclude-standard"),
        ("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"),
    )
    found: set[str] = set()
    for args in listings:
        out = run_git(root, "-c", "core.quotePath=false", *args, check=False).stdout
        for rel in out.split("\0"):
            rel = rel.rstrip("/")
            if rel and matches_any(rel, SECRET_READ_PATHS):
                # The outermost matching folder covers what is below it.
                parts = rel.split("/")
                top = next(
                    (
                        "/".join(parts[: n + 1])
                        for n in range(len(parts))
                        if matches_any("/".join(parts[: n + 1]), SECRET_READ_PATHS)
                    ),
                    rel,
                )
                found.add(top)
    return sorted(str(root / rel) for rel in found if not any(rel.startswith(o + "/") for o in found))


@dataclass(frozen=True)
class Target:
    """What the sandbox mounts for one workspace; computed once per fix (git calls cost time)."""

    root: Path
    """The repository's top level, mounted writable (the workspace may be a folder inside it)."""
    cwd: Path
    git_dirs: tuple[tuple[str, str], ...]
    hide: tuple[str, ...]
    expose: tuple[str, ...]
    mask: tuple[str, ...] = ()
    """Secret files and folders inside the repository, replaced by empty ones."""


def prepare(
    workspace: Path,
    *,
    job_env: Mapping[str, str] | None = None,
    hide_extra: Iterable[str] = (),
    expose: Iterable[str] = (),
) -> Target:
    top = run_git(workspace, "rev-parse", "--show-toplevel", check=False).stdout.strip()
    root = Path(top).resolve() if top else workspace.resolve()
    job = os.environ if job_env is None else job_env
    shown = [os.path.join(h, p) for h in homes(job) for p in TOOLCHAINS_IN_HOME if os.path.isdir(os.path.join(h, p))]
    git_dirs = _git_dirs(root)
    # A linked worktree (`eval`'s throwaway checkouts, `git worktree add`): its main checkout is
    # another working tree, with its own `.env` and secrets the masks below do not cover — hidden
    # whole; only the git folder is shown again (read-only, its config sanitised like ours).
    outside = [Path(g) for g, _ in git_dirs if not Path(g).is_relative_to(root)]
    common = [g for g in outside if not any(o in g.parents for o in outside)]
    main_checkouts = [str(g.parent) for g in common if g.name == ".git"]
    shown += [str(g) for g in common]
    hide = hidden_paths(root, job, [*hide_extra, *main_checkouts])
    # A self-hosted runner keeps `setup-python` & co.'s toolchains in `<work>/_tool`, inside the
    # hidden work folder: shown again, read-only, like the toolchains in HOME.
    tools = job.get("RUNNER_TOOL_CACHE")
    if tools and os.path.isdir(tools) and any(Path(h) in Path(tools).parents for h in hide):
        shown.append(tools)
    return Target(
        root=root,
        cwd=workspace.resolve(),
        git_dirs=tuple(git_dirs),
        hide=tuple(hide),
        expose=(*shown, *expose),
        mask=tuple(secret_paths(root)),
    )


def run_sandboxed(
    isolation: Isolation,
    workspace: Path | Target,
    command: str,
    *,
    timeout: float,
    env: Mapping[str, str],
    network: Literal["host", "none"] = "host",
    job_env: Mapping[str, str] | None = None,
    rlimits: Mapping[str, int] = DEFAULT_RLIMITS,
    server: SandboxServer | None = None,
) -> Ran:
    """Run `sh -c command` in `workspace` inside the sandbox (see `sandbox_init`); through
    `server` when given (one per fix), else through a server started for this run alone."""
    target = workspace if isinstance(workspace, Target) else prepare(workspace, job_env=job_env)
    return _launch(
        isolation,
        target.root,
        command,
        timeout=timeout,
        env=env,
        network=network,
        hide=target.hide,
        expose=target.expose,
        git_dirs=target.git_dirs,
        cwd=target.cwd,
        rlimits=rlimits,
        mask=target.mask,
        server=server,
    )


def run_unsandboxed(workspace: Path, command: str, *, timeout: float, env: Mapping[str, str]) -> Ran:
    """The explicit opt-out (`allow-unsandboxed-tests`): same user, scrubbed environment only."""
    started = time.monotonic()
    captured = Captured()
    with subprocess.Popen(
        ["sh", "-c", command],
        cwd=workspace,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so a timeout kills the whole process group
    ) as proc:
        assert proc.stdout is not None
        late = _drain(proc.stdout.fileno(), captured, started + timeout)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = proc.wait()
    return Ran(None if late else code, captured.text(), time.monotonic() - started, False)
