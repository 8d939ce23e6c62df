"""End to end through `sentry-autofix run` (issue 9): what triage and the agent read goes through
the path guard. A committed symlink onto `.env` never puts the secret into the GitHub triage
issue or the model's context, and a committed symlink loop is a tool error, not a crashed run."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from tests.delivery.conftest import ISSUE_ID, demo_api_event, git
from tests.delivery.test_e2e_run import run_action
from tests.fakes.github_api import FakeGitHub
from tests.fakes.sentry_api import FakeSentry

DOTENV_SECRET = "hunter2-DOTENV-via-symlink-0123456789"
ANTHROPIC_KEY = "sk-ant-api03-e2e-guard-key-0123456789abcdef"


def commit_hostile_links(workspace: Path) -> None:
    """What an attacker with a merged PR (or a careless commit) leaves in the repository: a
    settings module that is a symlink onto the ignored `.env`, and a symlink loop."""
    (workspace / ".gitignore").write_text(".env\n__pycache__/\n")
    (workspace / "config").mkdir()
    os.symlink("../.env", workspace / "config" / "settings.py")
    os.symlink("loop.py", workspace / "shop" / "loop.py")
    git(workspace, "add", ".gitignore", "config/settings.py", "shop/loop.py")
    git(workspace, "commit", "-qm", "settings from .env; a loop")
    git(workspace, "push", "-q", "origin", "main")
    (workspace / ".env").write_text(f"SECRET_KEY={DOTENV_SECRET}\nDATABASE_URL=postgres://u:{DOTENV_SECRET}@db/x\n")


def frame(path: str, function: str, line: int) -> dict[str, Any]:
    return {
        "function": function,
        "module": path.removesuffix(".py").replace("/", "."),
        "filename": path,
        "absPath": f"/srv/shop/releases/1.4.0/{path}",
        "lineNo": line,
        "inApp": True,
        "context": [[line, "x = 1"]],
    }


def event_naming(fake_sentry: FakeSentry, shared_fixtures: Path, *callers: dict[str, Any], crash: bool) -> None:
    """The demo event with `callers` added to the stack; `crash`: the last one is the crash frame."""
    event = demo_api_event(shared_fixtures)
    frames = event["entries"][0]["data"]["values"][-1]["stacktrace"]["frames"]
    if crash:
        frames.extend(callers)
    else:
        frames[-1:-1] = [copy.deepcopy(c) for c in callers]
    fake_sentry.events[ISSUE_ID] = event


def test_run__triage_issue_never_shows_a_symlinked_dotenv(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, shared_fixtures: Path
) -> None:
    """Issue 9 reproduction 4: the crash frame names `config/settings.py -> ../.env`; the code
    window of the triage issue used to print the `.env` secrets."""
    commit_hostile_links(workspace)
    event_naming(fake_sentry, shared_fixtures, frame("config/settings.py", "load", 1), crash=True)
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "issue-opened"
    body = fake_github.issues()[0]["body"]
    assert "config/settings.py" in body  # the frame is mapped and reported…
    assert DOTENV_SECRET not in body  # …but its target is never read
    assert DOTENV_SECRET not in run.everything()
    assert all(DOTENV_SECRET not in str(c.body) for c in fake_github.calls)
    assert DOTENV_SECRET not in "".join(fake_sentry.comments.get(ISSUE_ID, []))
    assert (workspace / ".env").read_text().startswith("SECRET_KEY=")


def test_run__symlink_loop_and_dotenv_link_in_the_stack_reach_neither_a_crash_nor_the_model(
    tmp_path: Path,
    workspace: Path,
    remote: Path,
    fake_sentry: FakeSentry,
    fake_github: FakeGitHub,
    shared_fixtures: Path,
) -> None:
    """Issue 9: a committed symlink loop crashed the run (RuntimeError from Path.resolve() while
    building the model's context, and again in read_file). Both links are on the stack, and the
    model asks for them: tool errors, then the fix goes on to a PR. The `.env` behind the other
    link reaches neither the model nor GitHub."""
    from tests.fakes.anthropic_api import FakeAnthropic
    from tests.fakes.demo_fix import fix_steps
    from tests.fakes.script import tool

    commit_hostile_links(workspace)
    event_naming(
        fake_sentry,
        shared_fixtures,
        frame("shop/loop.py", "spin", 3),
        frame("config/settings.py", "load", 1),
        crash=False,
    )
    script = [
        tool("read_file", path="shop/loop.py"),
        tool("read_file", path="config/settings.py"),
        tool("write_file", path="shop/loop.py", content="x = 1\n"),
        tool("search_code", pattern="SECRET_KEY|DATABASE_URL"),
        tool("list_files", path="shop"),
        *fix_steps(),
    ]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as llm:
        run = run_action(
            tmp_path, workspace, fake_sentry, fake_github, ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=llm.url
        )
        bodies = llm.all_bodies()
        results = [llm.requests[i].json()["messages"][-1]["content"][0] for i in range(1, 5)]
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert run.outputs["status"] == "pr-opened"
    assert [r["is_error"] for r in results] == [True, True, True, False]
    assert "cannot be resolved" in results[0]["content"]
    assert "cannot be resolved" in results[2]["content"]
    assert results[3]["content"] == "no matches"
    assert DOTENV_SECRET not in bodies
    assert DOTENV_SECRET not in run.everything()
    assert all(DOTENV_SECRET not in str(c.body) for c in fake_github.calls)
    assert DOTENV_SECRET not in "".join(fake_sentry.comments.get(ISSUE_ID, []))
    assert DOTENV_SECRET not in git(remote, "log", "-p", "--all")
    files = git(remote, "diff", "--name-only", "main", "sentry-autofix/SHOP-1F").split()
    assert "shop/loop.py" not in files


def test_triage_cli__markdown_and_json_never_show_a_symlinked_dotenv(
    tmp_path: Path, workspace: Path, shared_fixtures: Path
) -> None:
    """`sentry-autofix triage` (markdown, the issue body's source; and JSON) on the same repository."""
    commit_hostile_links(workspace)
    raw = json.loads((REPO_ROOT / "examples" / "demo" / "event.json").read_text())
    crash = raw["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    crash.update(
        abs_path="/srv/shop/releases/1.4.0/config/settings.py",
        filename="config/settings.py",
        module="config.settings",
        function="load",
        lineno=1,
        context_line="SECRET_KEY=...",
    )
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(raw))
    for fmt in ("markdown", "json"):
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "sentry_autofix", "triage", "--event-file", str(event_file)),
                *("--workspace", str(workspace), "--format", fmt),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "config/settings.py" in proc.stdout
        assert DOTENV_SECRET not in proc.stdout + proc.stderr
