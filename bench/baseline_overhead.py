"""What the baseline test run (`baseline-tests`) adds to one fix, measured side by side.

    .venv/bin/python bench/baseline_overhead.py [--repeat N]

The demo shop (examples/demo, its own pytest suite) fixed by the scripted model through the real
`sentry-autofix fix --dry-run` CLI against the loopback Anthropic fake, with the baseline run on and
off. The baseline is one more run of the test command in the sandbox, so its cost is the suite's
own run time (plus the sandbox's start-up); it is charged to the same `test-budget`.

Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.anthropic_api import FakeAnthropic  # noqa: E402
from tests.fakes.demo_fix import fix_steps  # noqa: E402

DEMO = REPO / "examples" / "demo"
KEY = "sk-ant-bench-key-0123456789"
TEST_COMMAND = f"{sys.executable} -m pytest -q -p no:cacheprovider"


def _workspace(dest: Path) -> Path:
    spec = importlib.util.spec_from_file_location("demo_build", DEMO / "build_workspace.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.build(dest))


def one(baseline: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(fix_steps(), api_key=KEY) as fake:
        ws = _workspace(Path(tmp) / "shop")
        env = {
            "PATH": "/usr/bin:/bin",
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": fake.url,
            "SENTRY_AUTOFIX_BASELINE_TESTS": str(baseline).lower(),
            "PYTHONPATH": str(REPO / "src"),
        }
        args = ["fix", "--event-file", str(DEMO / "event.json"), "--workspace", str(ws), "--dry-run"]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "sentry_autofix", *args, "--test-command", TEST_COMMAND],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - t0
        assert proc.stdout.rstrip().endswith("status: dry-run"), proc.stderr
        return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    n = parser.parse_args().repeat
    off = [one(False) for _ in range(n)]
    on = [one(True) for _ in range(n)]
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"demo fix, median of {n}: baseline off {m_off:.2f}s, on {m_on:.2f}s")
    print(f"baseline run adds {m_on - m_off:.2f}s per fix (ratio on/off {m_on / m_off:.2f})")


if __name__ == "__main__":
    main()
