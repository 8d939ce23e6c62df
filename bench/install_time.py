"""The Action's install time from cold caches, side by side with `npm install @anthropic-ai/claude-code`.

Runs action.yml's own install script (scripts/action-install) on a clean copy of the action, each
case in a fresh temporary directory with empty package caches, in one run:
  1. uv on the runner         — locked, hash-checked deps (requirements/action.txt), src/ on the path
  2. no uv on the runner      — pip bootstraps uv, then as 1
  3. plain pip                — SENTRY_AUTOFIX_INSTALL=pip (pip installs the same locked files)
  4. npm install @anthropic-ai/claude-code (the reference)
and prints seconds and ratios against 4. Goal: case 1 <= 0.25x the reference and <= 5 s.
Needs the package registries (PyPI, npm). Usage: .venv/bin/python bench/install_time.py [--skip-pip]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PATH = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if Path(p).is_dir())


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def clean_copy(tmp: Path) -> Path:
    """The action's path as `uses:` checks it out (tracked files only, no venv or caches)."""
    dest = tmp / "action"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for rel in filter(None, archive.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def main() -> None:
    skip_pip = "--skip-pip" in sys.argv
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    npm = shutil.which("npm")
    # A real Python (not this venv's) as the runner has; `python3` from the system path.
    python = shutil.which("python3", path=SYSTEM_PATH) or sys.executable
    base = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "npm_", "NPM_", "VIRTUAL_ENV"))}
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        action = clean_copy(tmp)
        script = str(action / "scripts" / "action-install")
        uv_dir = tmp / "uv-on-path"
        uv_dir.mkdir()
        (uv_dir / "uv").symlink_to(uv)
        cases = [
            ("action install, uv on the runner", f"{uv_dir}{os.pathsep}{SYSTEM_PATH}", "auto"),
            ("action install, no uv (pip fetches uv first)", SYSTEM_PATH, "auto"),
        ]
        if not skip_pip:
            cases.append(("action install, plain pip", SYSTEM_PATH, "pip"))
        for n, (name, path, how) in enumerate(cases):
            env = {
                **base,
                "PATH": path,
                "ACTION_PATH": str(action),
                "VENV": str(tmp / f"venv{n}"),
                "PYTHON": python,
                "SENTRY_AUTOFIX_INSTALL": how,
                "UV_CACHE_DIR": str(tmp / f"uv-cache{n}"),
                "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            }
            results[name] = timed(["bash", script], env, tmp)
        if npm:
            proj = tmp / "npm"
            proj.mkdir()
            env = {
                **base,
                "npm_config_cache": str(tmp / "npm-cache"),
                "npm_config_update_notifier": "false",
                "npm_config_fund": "false",
                "npm_config_audit": "false",
            }
            subprocess.run([npm, "init", "-y"], env=env, cwd=proj, capture_output=True, check=True)
            results["npm install @anthropic-ai/claude-code"] = timed(
                [npm, "install", "--silent", "@anthropic-ai/claude-code"], env, proj
            )
    ref = results.get("npm install @anthropic-ai/claude-code")
    print(f"{'install (cold caches)':45} {'seconds':>8} {'vs claude-code':>15}")
    for name, secs in results.items():
        ratio = f"{secs / ref:14.2f}x" if ref else "             -"
        print(f"{name:45} {secs:8.2f} {ratio}")
    ours = results["action install, uv on the runner"]
    if ref:
        print(f"\nours (uv) / claude-code = {ours / ref:.2f} (goal <= 0.25); ours = {ours:.2f} s (goal <= 5 s)")


if __name__ == "__main__":
    main()
