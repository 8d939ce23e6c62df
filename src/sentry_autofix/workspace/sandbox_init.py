"""The sandbox's first process: runs as root, builds the isolated view, then runs the test command
as an unprivileged user inside it. Standard library only, started as `python -I -S this_file`.

It is a separate script, not an import of the package, because it runs as root (directly or
through `sudo -n`) before any untrusted code: `-I -S` keeps the environment, the working folder
and site-packages from choosing what it imports. It is started once per fix and serves runs over
a socketpair on fd 0 (`serve`): each request is a `marshal`led plan plus the fd the command's
output goes to, each answer one status line; every run is forked from the server, so none pays
the interpreter's start-up.

What it builds (Linux namespaces, see `sandbox.py` for the why):

* a new mount namespace and a new PID namespace, in which a forked reaper is PID 1: when the
  command ends or times out the reaper exits and the kernel kills every process left in the
  namespace, `setsid` or not; `/proc` is mounted fresh, so no other process of the job is visible;
* optionally a new network namespace with only loopback (`test-network: none`);
* every mount read-only and nosuid; tmpfs over `/tmp`, `/var/tmp`, `/dev/shm` and over each
  hidden folder (the job's HOME, the runner's temp folder holding `GITHUB_ENV`/`GITHUB_OUTPUT`…);
* the repository mounted back writable at its own path, idmapped so that the sandbox user writes
  files as their owner (Linux >= 5.12 idmapped mounts); its git folder read-only, with a
  `config` that keeps only the repository format (no remote, no extraheader, no credential);
* the command as uid/gid `SANDBOX_ID` with no supplementary groups, no capabilities,
  `no_new_privs`, rlimits on processes, file size and core dumps, and only the environment given.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import resource
import select
import socket
import struct
import sys
from typing import Any

# Linux syscall numbers >= 424 are the same on every architecture (x86_64, aarch64…).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_IDMAP = 0x100000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

SETUP_FAILED = 125
"""Exit code when the sandbox could not be built (the command never ran)."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class SetupError(Exception):
    pass


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")
    return ret


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def open_tree(path: str, flags: int) -> int:
    return _check(int(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, _b(path), flags)), f"open_tree {path}")


def move_mount(fd: int, target: str) -> None:
    ret = _libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, _b(target), MOVE_MOUNT_F_EMPTY_PATH)
    _check(int(ret), f"move_mount {target}")


def mount_setattr(fd: int, path: str, flags: int, attr_set: int, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, 0, 0, userns_fd)
    ret = _libc.syscall(SYS_MOUNT_SETATTR, fd, _b(path), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(int(ret), f"mount_setattr {path or fd}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def idmap_userns(owner_uid: int, owner_gid: int, uid: int, gid: int) -> int:
    """A user namespace whose mapping shows files of `owner` as `uid` (for an idmapped mount)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(ready_r)
            os.close(done_w)
            _libc.unshare(CLONE_NEWUSER)
            os.write(ready_w, b"x")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"x":
            raise SetupError("the idmap helper did not start")
        with open(f"/proc/{pid}/uid_map", "w") as fh:
            fh.write(f"{owner_uid} {uid} 1\n")
        with open(f"/proc/{pid}/gid_map", "w") as fh:
            fh.write(f"{owner_gid} {gid} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def mkdirs(path: str) -> None:
    """Create the mount point `path` (inside a fresh tmpfs), root-owned and traversable."""
    os.makedirs(path, mode=0o755, exist_ok=True)


def loopback_up() -> None:
    """Bring `lo` up in a new network namespace (tests that bind 127.0.0.1 keep working)."""
    # Imported here, not at the top: only `test-network: none` needs it.
    import fcntl

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, siocgifflags, req))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def build_view(plan: dict[str, Any]) -> tuple[int, int]:
    """Everything between "new namespaces" and "drop privileges" (see module docstring); returns
    the uid and gid the command runs as."""
    root: str = plan["root"]
    uid, gid = int(plan["uid"]), int(plan["gid"])
    owner_uid, owner_gid = int(plan["owner_uid"]), int(plan["owner_gid"])
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    # Detached copies of what must stay visible, taken before tmpfs hides their parents.
    tree = open_tree(root, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
    if owner_uid != uid or owner_gid != gid:
        userns = idmap_userns(owner_uid, owner_gid, uid, gid)
        try:
            mount_setattr(tree, "", AT_EMPTY_PATH, MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, userns)
        except SetupError as exc:
            if owner_uid == 0:
                raise SetupError(
                    f"{exc}: the repository is owned by root and this kernel or filesystem has no idmapped "
                    "mounts (Linux >= 5.12 with ext4/xfs/btrfs), so no unprivileged user could write it"
                ) from None
            # Without an idmap the command runs as the repository's (non-root) owner: still no
            # capabilities, no other process, no secret, everything else read-only.
            uid, gid = owner_uid, owner_gid
        finally:
            os.close(userns)
    exposed = [(p, open_tree(p, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)) for p in plan["expose"]]

    # Everything read-only and nosuid, in one call for the whole tree.
    mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)

    tmp_opts = f"mode=1777,size={int(plan['tmp_bytes'])}"
    for path in plan["fresh_tmp"]:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    for path in plan["hide"]:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")

    mkdirs(root)
    move_mount(tree, root)
    os.close(tree)
    for path, fd in exposed:
        mkdirs(path)
        move_mount(fd, path)
        os.close(fd)
        mount_setattr(AT_FDCWD, path, AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)

    # The git folder: read-only, and a config without remotes or credentials.
    private = "/tmp/.sentry-autofix-sandbox"
    os.makedirs(private, mode=0o755, exist_ok=True)
    for n, (git_dir, config_text) in enumerate(plan["git_dirs"]):
        if not os.path.isdir(git_dir):
            continue
        mount(git_dir, git_dir, None, MS_BIND | MS_REC)
        mount(None, git_dir, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        config = os.path.join(git_dir, "config")
        if os.path.isfile(config):
            clean = os.path.join(private, f"gitconfig-{n}")
            with open(clean, "w", encoding="utf-8") as fh:
                fh.write(config_text)
            os.chmod(clean, 0o444)
            mount(clean, config, None, MS_BIND)
            mount(None, config, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)

    # Secret files of the repository (.env…): the model may not read them, so neither may the
    # tests it writes. /dev/null over a file, an empty read-only tmpfs over a folder.
    for path in plan.get("mask", []):
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=0555,size=4k")
        elif os.path.lexists(path):
            mount("/dev/null", path, None, MS_BIND)

    home = plan["env"].get("HOME")
    if home:
        os.makedirs(home, mode=0o700, exist_ok=True)
        os.chown(home, uid, gid)
    if plan["network"] == "none":
        loopback_up()
    return uid, gid


SIGKILL = 9
SIGPIPE = 13
SIG_DFL = 0


def run_command(plan: dict[str, Any], uid: int, gid: int, status_fd: int) -> int | None:
    """Fork the unprivileged command and wait for it until the deadline; its exit code, or None
    when it timed out. Orphans need no reaping: when we exit, the kernel kills the namespace."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the command's process
        try:
            os.close(status_fd)
            os.dup2(1, 2)  # one stream: the command's stdout and stderr, in order
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            for name, value in plan["rlimits"].items():
                limit = int(value)
                resource.setrlimit(getattr(resource, name), (limit, limit))
            os.chdir(plan["cwd"])
            os.closerange(3, 1 << 16)  # nothing of ours (sockets, pipes) reaches the command
            _libc.signal(SIGPIPE, SIG_DFL)  # Python ignores SIGPIPE, and exec would pass that on
            os.execve("/bin/sh", ["sh", "-c", plan["command"]], plan["env"])
        except BaseException as exc:
            os.write(2, f"sentry-autofix sandbox: cannot start the command: {exc}\n".encode())
        os._exit(127)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], max(0.01, float(plan["timeout"])))
    os.close(pidfd)
    if not ready:
        return None
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def report(fd: int, line: str) -> None:
    """One status line for the launcher: `ok <exit>|timeout <uid>` or `error <message>`."""
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
    except OSError:
        pass


def run_plan(plan: dict[str, Any], status_fd: int) -> int:
    """One sandboxed run: new namespaces, the reaper as their PID 1, the command under it. The
    command's output goes to fd 1; one status line goes to `status_fd`."""
    flags = CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWNET if plan["network"] == "none" else 0)
    try:
        unshare(flags)
    except SetupError as exc:
        report(status_fd, f"error {exc}")
        return SETUP_FAILED
    reaper = os.fork()
    if reaper == 0:  # pragma: no cover - PID 1 of the new namespace
        try:
            prctl(PR_SET_PDEATHSIG, SIGKILL)
            uid, gid = build_view(plan)
        except (SetupError, OSError) as exc:
            report(status_fd, f"error {exc}")
            os._exit(SETUP_FAILED)
        code = run_command(plan, uid, gid, status_fd)
        report(status_fd, f"ok {'timeout' if code is None else code} {uid}")
        os._exit(0)  # the kernel now kills whatever the command left behind
    os.close(status_fd)
    _, status = os.waitpid(reaper, 0)
    return os.waitstatus_to_exitcode(status)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve() -> int:
    """One root process per fix: each request on the socket (fd 0) is a marshalled plan plus the
    fd its output goes to; each is run in a child forked from here, so a run pays no interpreter
    start-up. Ends when the launcher closes the socket (or dies)."""
    prctl(PR_SET_PDEATHSIG, SIGKILL)  # through sudo our parent is sudo, which dies with the launcher
    sock = socket.socket(fileno=0)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 1)
    os.close(devnull)
    while True:
        try:
            head, fds, _flags, _addr = socket.recv_fds(sock, 4, 1)
            if len(head) < 4 or not fds:
                return 0
            plan = marshal.loads(_recv_exact(sock, int.from_bytes(head, "big")))
        except (OSError, EOFError, ValueError):
            return 0
        out_fd = fds[0]
        status_r, status_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - one run
            sock.close()
            os.close(status_r)
            prctl(PR_SET_PDEATHSIG, SIGKILL)
            os.dup2(out_fd, 1)
            os.dup2(out_fd, 2)
            os.close(out_fd)
            os._exit(run_plan(plan, status_w))
        os.close(out_fd)
        os.close(status_w)
        status = b""
        while chunk := os.read(status_r, 4096):
            status += chunk
        os.close(status_r)
        os.waitpid(pid, 0)
        lines = status.decode(errors="replace").strip().splitlines()
        reply = (lines[-1] if lines else "error the sandbox ended without a status").encode()
        try:
            sock.sendall(len(reply).to_bytes(4, "big") + reply)
        except OSError:
            return 0


if __name__ == "__main__":
    sys.exit(serve())
