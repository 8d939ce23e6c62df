"""What the test sandbox costs per run, measured side by side with an unsandboxed run.

    .venv/bin/python bench/sandbox_overhead.py [--rounds N]

Each round runs, in alternation (so machine noise hits both alike):

* `true` unsandboxed (`sandbox.run_unsandboxed`: `sh -c` with a scrubbed environment, the
  opt-out's path); sandboxed through the fix's fork server (`SandboxServer`, as `TestExecutor`
  runs every test of a fix: namespaces, idmapped workspace, read-only tree, fresh /proc and
  /tmp, dropped privileges — forked, no interpreter start-up); and sandboxed one-shot (a server
  started for that run alone, what the first run of a fix also pays). The server's difference
  from unsandboxed is the overhead a user pays per test run (goal: ≤ 50 ms);
* the demo app's real pytest suite (examples/demo) the same three ways — the ratio a real run sees.

Needs root or passwordless sudo (as the sandbox does). Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from sentry_autofix.workspace import sandbox  # noqa: E402

GOAL_MS = 50.0


def build_demo(dest: Path) -> Path:
    spec = importlib.util.spec_from_file_location("demo_build", REPO / "examples" / "demo" / "build_workspace.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(dest)
    return dest


def timed(fn: Callable[[], sandbox.Ran]) -> float:
    started = time.perf_counter()
    ran = fn()
    elapsed = time.perf_counter() - started
    if ran.setup_error or ran.exit_code not in (0, 1):
        raise SystemExit(f"run failed: {ran.setup_error or ran.exit_code}: {ran.output[-500:]}")
    return elapsed * 1000


def summary(name: str, plain: list[float], boxed: list[float]) -> tuple[float, float]:
    p, b = statistics.median(plain), statistics.median(boxed)
    print(
        f"{name:<34} unsandboxed median {p:8.1f} ms   sandboxed median {b:8.1f} ms   "
        f"overhead {b - p:7.1f} ms   ratio {b / p:5.2f}x   "
        f"(sandboxed p90 {sorted(boxed)[int(len(boxed) * 0.9)]:.1f} ms)"
    )
    return p, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    isolation = sandbox.probe()
    if isolation.kind != "sandbox":
        print(f"no sandbox on this machine: {isolation.reason}")
        return 1
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        ws = build_demo(Path(tmp) / "shop")
        env = sandbox.sandbox_env(os.environ)
        target = sandbox.prepare(ws)  # once per fix, as TestExecutor does
        pytest_cmd = f"{sys.executable} -m pytest -q -p no:cacheprovider"
        server = sandbox.SandboxServer(isolation)  # once per fix, as TestExecutor does
        names = ("true", "demo pytest suite")
        results: dict[str, tuple[list[float], list[float], list[float]]] = {n: ([], [], []) for n in names}
        try:
            for _ in range(args.rounds):
                for name, cmd in zip(names, ("true", pytest_cmd), strict=True):
                    plain, served, oneshot = results[name]
                    plain.append(timed(lambda c=cmd: sandbox.run_unsandboxed(ws, c, timeout=120, env=env)))  # type: ignore[misc]
                    served.append(
                        timed(
                            lambda c=cmd: sandbox.run_sandboxed(
                                isolation, target, c, timeout=120, env=env, server=server
                            )
                        )  # type: ignore[misc]
                    )
                    oneshot.append(
                        timed(lambda c=cmd: sandbox.run_sandboxed(isolation, target, c, timeout=120, env=env))
                    )  # type: ignore[misc]
        finally:
            server.close()
        print(
            f"{args.rounds} rounds, alternating, on {os.cpu_count()} cores "
            f"({'root' if not isolation.prefix else 'sudo -n'}, load average {os.getloadavg()[0]:.1f})"
        )
        for name in names:
            plain, served, oneshot = results[name]
            summary(f"{name} (fork server)", plain, served)
            summary(f"{name} (one-shot)", plain, oneshot)
        overhead = statistics.median(results["true"][1]) - statistics.median(results["true"][0])
        print(
            f"per-run sandbox overhead (fork server, every run of a fix): {overhead:.1f} ms — goal ≤ {GOAL_MS:.0f} ms: "
            f"{'met' if overhead <= GOAL_MS else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
