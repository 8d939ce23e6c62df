"""Agent pipeline overhead and initial context size, with a zero-latency scripted model.

    .venv/bin/python bench/agent_overhead.py [--repeat N]

For the demo app (examples/demo, real sentry-sdk event, its own pytest suite) and for every real
Sentry event in ../shared/fixtures/sentry/events (each against a small git workspace holding the
files its in-app frames name), it runs the real `run_fix` — event parsing, triage, context,
tool loop, guard, git diff, tests, reproduction check, restore — with a scripted model that
answers instantly, and reports:

* overhead = wall time − time inside the model − time inside the test command (goal ≤ 2 s/issue);
* the initial context (system prompt + first message) in estimated tokens (goal ≤ 6,000);
* for the demo, the same run through the real Anthropic SDK against the loopback fake API, to show
  what the HTTP provider path adds (ratio side by side).

Not a test: figures depend on the machine. Prints one table and the ratios to the goals.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the scripted turns and the loopback fake live with the tests

from tests.fakes.anthropic_api import FakeAnthropic  # noqa: E402
from tests.fakes.demo_fix import fix_steps  # noqa: E402
from tests.fakes.script import Reply, Step, finish, tool  # noqa: E402

from sentry_autofix.agent.anthropic import AnthropicLLM  # noqa: E402
from sentry_autofix.agent.llm import AssistantTurn, Message, ToolCall, ToolSpec, TurnUsage  # noqa: E402
from sentry_autofix.config import Settings  # noqa: E402
from sentry_autofix.fix import FixRun, run_fix  # noqa: E402
from sentry_autofix.models import ErrorEvent  # noqa: E402
from sentry_autofix.sources.sentry_event import load_event_file  # noqa: E402

SHARED = REPO.parent / "shared" / "fixtures" / "sentry" / "events"
GOAL_SECONDS = 2.0
GOAL_TOKENS = 6_000
ANCHOR = "// autofix-bench: the line the scripted model edits"


class ScriptedLLM:
    """In-process `LLM` replaying the same scripted steps the fakes serve, with zero latency."""

    model = "claude-sonnet-5-5"

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.n = 0

    def complete(self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantTurn:
        step = self.steps.pop(0)
        assert isinstance(step, Reply)
        calls = []
        for call in step.calls:
            self.n += 1
            assert isinstance(call.input, dict)
            calls.append(ToolCall(f"t{self.n}", call.name, call.input))
        size = sum(len(str(m)) for m in messages) // 4
        return AssistantTurn(text=step.text, tool_calls=tuple(calls), usage=TurnUsage(size, 50))


def _git(ws: Path, *args: str) -> None:
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@e",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@e",
        "PATH": "/usr/bin:/bin",
        "HOME": str(ws),
    }
    subprocess.run(["git", "-C", str(ws), *args], check=True, env=env, capture_output=True)


def demo_workspace(dest: Path) -> Path:
    spec = importlib.util.spec_from_file_location("demo_build", REPO / "examples" / "demo" / "build_workspace.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(dest)
    return dest


def fixture_workspace(event: ErrorEvent, dest: Path) -> tuple[Path, str]:
    """A repo holding a 60-line file at each in-app frame's relative path; returns the crash file."""
    dest.mkdir(parents=True)
    crash = "src/app.txt"
    for exc in event.exceptions:
        for frame in exc.frames:
            name = frame.filename or frame.abs_path or ""
            rel = PurePosixPath(name.lstrip("/").replace("\\", "/"))
            if frame.in_app is False or not rel.parts or ".." in rel.parts or rel.suffix == "":
                continue
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [f"// line {n}" for n in range(1, 61)]
            if frame.context_line and frame.lineno and frame.lineno <= 60:
                lines[frame.lineno - 1] = frame.context_line
            path.write_text("\n".join([*lines, ANCHOR]) + "\n")
            crash = rel.as_posix()
    if crash == "src/app.txt":
        (dest / "src").mkdir()
        (dest / crash).write_text(f"placeholder\n{ANCHOR}\n")
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-qm", "fixture workspace")
    return dest, crash


def fixture_steps(crash: str) -> list[Step]:
    return [
        tool("read_file", path=crash),
        tool("search_code", pattern="line 1[0-9]"),
        tool("edit_file", path=crash, old_text=ANCHOR, new_text=ANCHOR + " (guarded)"),
        tool("run_tests"),
        finish(confidence="medium"),
    ]


def measure(event_path: Path, ws: Path, settings: Settings, llm: Any) -> tuple[FixRun, float]:
    started = time.perf_counter()
    event = load_event_file(event_path)
    run = run_fix(event, ws, settings, llm, keep_changes=False)
    return run, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, float, int, str]] = []
    with tempfile.TemporaryDirectory(prefix="sentry-autofix-bench-") as tmp:
        root = Path(tmp)
        demo = demo_workspace(root / "demo")
        test_cmd = f"{sys.executable} -m pytest -q -p no:cacheprovider"
        settings = Settings(test_command=test_cmd, anthropic_api_key="sk-ant-bench-key-0123456789")

        def demo_case(label: str, make_llm: Any) -> None:
            samples = []
            for _ in range(args.repeat):
                llm, close = make_llm()
                try:
                    run, wall = measure(REPO / "examples" / "demo" / "event.json", demo, settings, llm)
                finally:
                    close()
                assert run.result.status == "fixed", run.result.error
                samples.append((wall - run.model_seconds - run.test_seconds, wall, run.test_seconds, run))
            samples.sort(key=lambda s: s[0])
            over, wall, tests, run = samples[len(samples) // 2]
            rows.append((label, over, wall, tests, run.context_tokens, run.result.status))

        measure(REPO / "examples" / "demo" / "event.json", demo, settings, ScriptedLLM(fix_steps()))  # warm-up
        demo_case("demo (scripted, in-process)", lambda: (ScriptedLLM(fix_steps()), lambda: None))
        fake_holder: dict[str, Any] = {}

        def via_fake() -> tuple[Any, Any]:
            fake = FakeAnthropic(fix_steps(), api_key="sk-ant-bench-key-0123456789").__enter__()
            llm = AnthropicLLM.from_settings(settings.model_copy(update={"anthropic_base_url": fake.url}))
            fake_holder["fake"] = fake

            def close() -> None:
                llm.close()
                fake.__exit__(None, None, None)

            return llm, close

        demo_case("demo (Anthropic SDK → loopback fake)", via_fake)

        for path in sorted(SHARED.glob("*.json")) if SHARED.is_dir() else []:
            event = load_event_file(path)
            samples = []
            for i in range(args.repeat):
                ws, crash = fixture_workspace(event, root / f"{path.stem}-{i}")
                run, wall = measure(path, ws, Settings(), ScriptedLLM(fixture_steps(crash)))
                samples.append((wall - run.model_seconds - run.test_seconds, wall, run.test_seconds, run))
            samples.sort(key=lambda s: s[0])
            over, wall, tests, run = samples[len(samples) // 2]
            rows.append((f"fixture {path.stem}", over, wall, tests, run.context_tokens, run.result.status))

    print(f"{'case':44} {'overhead s':>10} {'wall s':>8} {'tests s':>8} {'ctx tokens':>10}  status")
    for label, over, wall, tests, tokens, status in rows:
        print(f"{label:44} {over:10.3f} {wall:8.3f} {tests:8.3f} {tokens:10d}  {status}")
    overheads = [r[1] for r in rows]
    tokens = [r[4] for r in rows]
    print()
    print(
        f"overhead per issue: median {statistics.median(overheads):.3f} s, max {max(overheads):.3f} s "
        f"→ max/goal = {max(overheads) / GOAL_SECONDS:.2f} (goal ≤ {GOAL_SECONDS:.0f} s)"
    )
    print(
        f"initial context: median {statistics.median(tokens):.0f}, max {max(tokens)} tokens "
        f"→ max/goal = {max(tokens) / GOAL_TOKENS:.2f} (goal ≤ {GOAL_TOKENS})"
    )
    if len(rows) >= 2:
        print(f"SDK+HTTP path vs in-process overhead (demo): {rows[1][1] / max(rows[0][1], 1e-9):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
