"""GitHub REST calls per delivered PR (goal <= 8; a GITHUB_TOKEN allows 1,000 per hour per repo).

Runs the real pipeline (SentryClient, GitHubHost on PyGithub, real git with a bare remote) against
the loopback fakes, with the scripted fixer standing in for the agent, and counts the requests the
fake GitHub received for each scenario. Usage: .venv/bin/python bench/github_calls.py
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "demo"))

import build_workspace  # noqa: E402
from tests.delivery.conftest import GH_TOKEN, ISSUE_ID, SENTRY_TOKEN, SHORT_ID, demo_api_event  # noqa: E402
from tests.fakes.github_api import FakeGitHub  # noqa: E402
from tests.fakes.scripted_fixer import GOOD_FIX, ScriptedFixer  # noqa: E402
from tests.fakes.sentry_api import FakeSentry  # noqa: E402

from sentry_autofix.actions import Runner  # noqa: E402
from sentry_autofix.config import Settings  # noqa: E402
from sentry_autofix.delivery.github import GitHubHost  # noqa: E402
from sentry_autofix.pipeline import Collaborators, Fixer, deliver_issue  # noqa: E402
from sentry_autofix.sources.sentry import SentryClient  # noqa: E402
from sentry_autofix.triage import build_triage  # noqa: E402

FIXTURES = Path(os.environ.get("SENTRY_AUTOFIX_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
GOAL = 8
HOURLY = 1000


def run(ws: Path, sentry: FakeSentry, gh: FakeGitHub, fixer: Fixer | None, **over: object) -> str:
    settings = Settings(
        sentry_url=sentry.url,
        sentry_auth_token=SENTRY_TOKEN,
        sentry_org="acme",
        github_api_url=gh.url,
        github_token=GH_TOKEN,
        github_repository="acme/shop",
        github_write_interval=0.0,
        test_command=f"{sys.executable} -m pytest -q -p no:cacheprovider",
        **over,  # type: ignore[arg-type]
    )
    out = io.StringIO()
    runner = Runner(enabled=False, secret_values=settings.secret_values(), stream=out, log=out)
    c = Collaborators(SentryClient(settings), GitHubHost(settings), build_triage, fixer, runner)
    with contextlib.redirect_stdout(out):
        deliver_issue(ISSUE_ID, settings, ws, c)
    subprocess.run(["git", "-C", str(ws), "checkout", "-q", "-f", "main"], check=True)
    return out.getvalue().strip().splitlines()[-1]


def main() -> None:
    if not FIXTURES.is_dir():
        sys.exit(f"shared fixtures not found at {FIXTURES}")
    os.environ.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        remote = tmpdir / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        ws = build_workspace.build(tmpdir / "ws")
        subprocess.run(["git", "-C", str(ws), "remote", "add", "origin", str(remote)], check=True)
        subprocess.run(["git", "-C", str(ws), "push", "-q", "origin", "main"], check=True)
        sentry = FakeSentry(FIXTURES / "sentry", token=SENTRY_TOKEN).start()
        sentry.add_issue(
            ISSUE_ID, short_id=SHORT_ID, title="ZeroDivisionError: division by zero", event=demo_api_event(FIXTURES)
        )
        gh = FakeGitHub(FIXTURES / "github", token=GH_TOKEN, git_remote=remote).start()
        try:
            scenarios = [
                ("PR delivered (first run, labels created)", ScriptedFixer(GOOD_FIX), {}),
                ("re-run, PR open -> skipped-duplicate", ScriptedFixer(GOOD_FIX), {}),
                ("re-run with on-existing=update, same fix", ScriptedFixer(GOOD_FIX), {"on_existing": "update"}),
                ("triage issue (creates triage + P1 labels)", None, {"mode": "triage", "sentry_issue_id": None}),
                ("PR delivered + ci-workflow dispatch", ScriptedFixer(GOOD_FIX), {"ci_workflow": "ci.yml"}),
            ]
            for name, fixer, over in scenarios:
                if name.startswith("PR delivered + ci"):
                    gh.items.clear()  # a fresh issue's PR, labels already exist
                before = len(gh.calls)
                status = run(ws, sentry, gh, fixer, **{k: v for k, v in over.items() if v is not None})
                calls = gh.calls[before:]
                kinds = Counter(f"{c.method} {c.path.split('/acme/shop', 1)[-1] or '/'}" for c in calls)
                rows.append((name, status, len(calls), kinds))
        finally:
            gh.stop()
            sentry.stop()
    print(f"{'scenario':45} {'status':32} {'calls':>5} {'vs goal 8':>9}")
    for name, status, n, kinds in rows:
        print(f"{name:45} {status:32} {n:5d} {n / GOAL:9.2f}x")
        for kind, count in sorted(kinds.items()):
            print(f"    {count} x {kind}")
    first = rows[0][2]
    print(
        f"\nREST calls per delivered PR: {first} (goal <= {GOAL}: {'met' if first <= GOAL else 'MISSED'}); "
        f"{HOURLY // max(first, 1)} PRs/hour fit in the GITHUB_TOKEN's {HOURLY} requests/hour per repository"
    )


if __name__ == "__main__":
    main()
