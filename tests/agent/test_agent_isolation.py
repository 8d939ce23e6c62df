"""Issue 9 through `sentry-autofix fix --dry-run`: the hunting test a steered model writes leaves
the user's checkout as it was — no hook, no fsmonitor in `.git/config`, no secret (the `.env`
the checkout holds included) in what the model received or what the command printed."""

from __future__ import annotations

from pathlib import Path

from tests.delivery.test_e2e_isolation import attack_script, encodings
from tests.fakes.anthropic_api import FakeAnthropic

from .conftest import ANTHROPIC_KEY, ENV_SECRET, GITHUB_TOKEN, SENTRY_TOKEN
from .test_agent_e2e import fix_dry_run, status


def test_fix_dry_run__hostile_test_changes_nothing_in_git_and_reads_no_secret(demo_ws: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    paths = {
        "markers": str(markers),
        "git_config": str(demo_ws / ".git" / "config"),
        "git_credentials": str(Path.home() / ".git-credentials"),
        "home_credentials": str(Path.home() / ".git-credentials"),
        "event": str(tmp_path / "event.json"),
        "dotenv": str(demo_ws / ".env"),
        "github_env": str(tmp_path / "github-env"),
        "github_output": str(tmp_path / "github-output"),
        "github_path": str(tmp_path / "github-path"),
        "summary": str(tmp_path / "summary.md"),
    }
    config_before = (demo_ws / ".git" / "config").read_text()
    hooks_before = sorted(p.name for p in (demo_ws / ".git" / "hooks").iterdir())
    with FakeAnthropic(attack_script(paths), api_key=ANTHROPIC_KEY) as fake:
        proc = fix_dry_run(fake, demo_ws)
        model_saw = fake.all_bodies()
    assert proc.stdout.rstrip().splitlines()[-1].startswith("status: "), proc.stderr
    assert (demo_ws / ".git" / "config").read_text() == config_before
    assert sorted(p.name for p in (demo_ws / ".git" / "hooks").iterdir()) == hooks_before
    assert list(markers.iterdir()) == []
    assert status(demo_ws) == ""  # dry run: the checkout is as it was
    assert (demo_ws / ".env").read_text() == f"SECRET_KEY={ENV_SECRET}\n"  # the user's ignored file survives
    for secret in (ENV_SECRET, GITHUB_TOKEN, SENTRY_TOKEN, ANTHROPIC_KEY):
        for form in encodings(secret):
            assert form not in model_saw
            assert form not in proc.stdout + proc.stderr
