"""A real, throwaway PostgreSQL server for the relay's PostgresStore tests.

Started from the distribution's binaries (`/usr/lib/postgresql/<version>/bin`, or `initdb` on
PATH; `SENTRY_AUTOFIX_TEST_PG_BINDIR` overrides): `initdb` into a fresh directory, `postgres`
listening on a Unix socket in that directory only (no TCP port to collide with), fsync off. As
root, it runs as `nobody` (PostgreSQL refuses to run as root). Without the binaries or psycopg
the tests that need it are skipped, with the reason; under `CI=true` they fail instead, because
`.ci/run` (scripts/test) provisions them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def find_bindir() -> Path | None:
    override = os.environ.get("SENTRY_AUTOFIX_TEST_PG_BINDIR")
    if override:
        return Path(override)

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name  # /usr/lib/postgresql/<15 or 9.6>/bin/initdb
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def unavailable(reason: str) -> None:
    """Skip, or fail under CI where the server is provisioned (scripts/test)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


class PostgresServer:
    """`initdb` + `postgres` in a temporary directory; `url(db)` for psycopg / the relay."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="sentry-autofix-pg-"))
        self.data = self.root / "data"
        self.port = 5432  # only names the socket file: nothing listens on TCP
        self.user = "autofix"
        self._names = itertools.count(1)
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C"}
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"],
            env=env,
            check=True,
            capture_output=True,
            **self._as,  # type: ignore[arg-type]
        )
        self.log = self.root / "postgres.log"
        with open(self.log, "w") as log:
            if self._as:
                os.chown(self.log, int(self._as["user"]), int(self._as["group"]))  # type: ignore[call-overload]
            self.proc = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-k",
                    str(self.root),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as,  # type: ignore[arg-type]
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("postgres did not start:\n" + self.log.read_text()) from None
                time.sleep(0.1)

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@/{db}?host={self.root}&port={self.port}"

    def create_database(self) -> str:
        import psycopg

        name = f"relay_test_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[call-overload]
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[call-overload]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
