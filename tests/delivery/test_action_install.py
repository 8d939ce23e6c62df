"""scripts/action-install (action.yml's install step) builds a private venv whose python runs us.

Offline: uv resolves from its local cache (filled when this checkout's .venv was made with uv);
without such a cache the test is skipped, and bench/install_time.py covers the online path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def test_action_install__uv_path_installs_deps_and_puts_src_on_the_path(tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        pytest.skip("uv is not available")
    env = {**os.environ, "UV_OFFLINE": "1"}
    probe = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--dry-run",
            "--python",
            sys.executable,
            "--no-deps",
            "-r",
            str(REPO_ROOT / "requirements" / "action.txt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("uv's cache cannot satisfy the dependencies offline")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "uv").symlink_to(uv)
    env.update(
        PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
        ACTION_PATH=str(REPO_ROOT),
        VENV=str(tmp_path / "venv"),
        PYTHON=sys.executable,
    )
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "action-install")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    python = proc.stdout.strip()
    assert python == str(tmp_path / "venv" / "bin" / "python")
    assert "sentry-autofix" in proc.stderr  # the script's own `--version` check
    out = subprocess.run([python, "-m", "sentry_autofix", "run", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "GITHUB_EVENT_NAME" in out.stdout


def test_action_install__locked_requirements_match_uv_lock_and_carry_hashes() -> None:
    """The Action installs requirements/action*.txt: they must be uv.lock's export, every pin hashed
    (a stale export, or one without hashes, would install something other than what was locked)."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        pytest.skip("uv is not available")
    check = subprocess.run(
        [uv, "lock", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_OFFLINE": "1"},
    )
    assert check.returncode == 0, f"uv.lock does not match pyproject.toml: run `uv lock`\n{check.stderr}"
    for name, extra in (("action.txt", []), ("action-aws.txt", ["--extra", "aws"])):
        committed = (REPO_ROOT / "requirements" / name).read_text()
        proc = subprocess.run(
            [
                uv,
                "export",
                "--frozen",
                "--no-dev",
                "--no-emit-project",
                "--format",
                "requirements-txt",
                *extra,
                "--no-header",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "UV_OFFLINE": "1"},
        )
        assert proc.returncode == 0, proc.stderr
        body = "\n".join(line for line in committed.splitlines() if not line.startswith("#"))
        assert (
            body.strip() == "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("#")).strip()
        ), f"requirements/{name} is stale: re-export it from uv.lock (see .github/workflows/lock-update.yml)"
        pins = [line for line in committed.splitlines() if "==" in line and not line.startswith("#")]
        assert pins
        assert all(line.rstrip().endswith("\\") for line in pins), "every pin needs its --hash lines"
