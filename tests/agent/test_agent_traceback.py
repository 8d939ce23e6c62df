"""`fix --traceback`: the agent works from a traceback pasted from a log, no Sentry at all."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.demo_fix import fix_steps

from .conftest import ANTHROPIC_KEY, TEST_COMMAND, run_cli, status

LOGGED = Path(__file__).resolve().parents[1] / "fixtures" / "tracebacks" / "raw" / "demo_logging.txt"


def test_fix_cli__traceback_from_a_log_fixes_the_demo_without_sentry(demo_ws: Path) -> None:
    """The demo's real crash, as `logging.exception` printed it from /srv/shop/releases/1.4.0, is enough for
    the agent: the prompt carries the mapped workspace frame, and the dry run ends `status: dry-run`."""
    with FakeAnthropic(fix_steps(), api_key=ANTHROPIC_KEY) as fake:
        args = ["fix", "--traceback", str(LOGGED), "--workspace", str(demo_ws), "--dry-run"]
        proc = run_cli(
            [*args, "--test-command", TEST_COMMAND],
            {"ANTHROPIC_BASE_URL": fake.url, "SENTRY_AUTH_TOKEN": "", "SENTRY_URL": "http://127.0.0.1:9"},
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"
    assert "+++ b/shop/cart.py" in proc.stdout
    first_prompt = fake.requests[0].json()["messages"][0]["content"]
    text = first_prompt if isinstance(first_prompt, str) else " ".join(p.get("text", "") for p in first_prompt)
    assert "ZeroDivisionError: division by zero" in text
    assert "shop/cart.py" in text
    assert status(demo_ws) == ""
