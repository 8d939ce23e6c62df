"""End to end through `sentry-autofix fix` (issue 9), a scripted model replaying an attacker's
tool calls: ignored files are never written, restored or deleted on the model's account; file
names are never pathspec magic; run_tests refuses smuggled options; `.github/**` is blocked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.demo_fix import NEW, OLD, REGRESSION_TEST, REGRESSION_TEST_PATH, fix_steps
from tests.fakes.script import finish, tool

from .conftest import ANTHROPIC_KEY, DEMO, ENV_SECRET, TEST_COMMAND, git, run_cli, status
from .test_agent_e2e import fix_dry_run, tool_results

LOCAL_SETTINGS = "DEBUG = True\nDB_PASSWORD = 'local-only-password'\n"


def add_ignored_user_files(ws: Path) -> None:
    """The developer's ignored files beside the demo's `.env`: local settings and node_modules."""
    (ws / ".gitignore").write_text(".env\n__pycache__/\nlocal_settings.py\nnode_modules/\n")
    git(ws, "add", ".gitignore")
    git(ws, "commit", "-qm", "ignore local files")
    (ws / "local_settings.py").write_text(LOCAL_SETTINGS)
    (ws / "node_modules" / "left-pad").mkdir(parents=True)
    (ws / "node_modules" / "left-pad" / "index.js").write_text("module.exports = s => s\n")
    assert status(ws) == ""


def ignored_files_intact(ws: Path) -> None:
    assert (ws / ".env").read_text() == f"SECRET_KEY={ENV_SECRET}\n"
    assert (ws / "local_settings.py").read_text() == LOCAL_SETTINGS
    assert (ws / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = s => s\n"


def test_fix_cli__rewriting_gitignore_first_never_lets_the_model_write_or_delete_an_ignored_file(
    demo_ws: Path,
) -> None:
    """Issue 9: the model empties `.gitignore`, then writes `local_settings.py` (the user's ignored
    file); the dry run's restore then deleted it. Now the write is refused by the baseline's rules."""
    add_ignored_user_files(demo_ws)
    script = [
        tool("write_file", path=".gitignore", content="# nothing is ignored\n"),
        tool("write_file", path="local_settings.py", content="DEBUG = False\n"),
        tool("write_file", path="node_modules/left-pad/index.js", content="steal()\n"),
        tool("edit_file", path="local_settings.py", old_text="True", new_text="False"),
        *fix_steps(),
    ]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as fake:
        proc = fix_dry_run(fake, demo_ws)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"
    refused = [tool_results(fake, i)[0] for i in (2, 3, 4)]
    assert all(r["is_error"] for r in refused), refused
    assert all("git ignores this path" in r["content"] for r in refused), refused
    assert "local-only-password" not in fake.all_bodies()
    ignored_files_intact(demo_ws)
    assert status(demo_ws) == ""


def test_fix_cli__test_that_rewrites_gitignore_does_not_get_dotenv_deleted_with_the_artifacts(
    demo_ws: Path,
) -> None:
    """A model-written test (repository code, run by run_tests) rewrites `.gitignore` so `.env`
    looks like a new untracked artifact. The fix is kept (no --dry-run): the artifact cleanup used
    to delete `.env`; it judges by the baseline's ignore rules now."""
    add_ignored_user_files(demo_ws)
    rewrite = (
        "from pathlib import Path\n\n\ndef test_unignore():\n"
        "    Path('.gitignore').write_text('__pycache__/\\n')\n"
        "    Path('junit-artifact.xml').write_text('<x/>')\n"
    )
    script = [
        tool("write_file", path="tests/test_unignore.py", content=rewrite),
        tool("write_file", path=REGRESSION_TEST_PATH, content=REGRESSION_TEST),
        tool("edit_file", path="shop/cart.py", old_text=OLD, new_text=NEW),
        tool("run_tests"),
        finish(),
    ]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as fake:
        proc = run_cli(
            [
                *("fix", "--event-file", str(DEMO / "event.json")),
                *("--workspace", str(demo_ws), "--test-command", TEST_COMMAND),
            ],
            {"ANTHROPIC_BASE_URL": fake.url},
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"  # no delivery configured: left in place
    assert "+++ b/.gitignore" in proc.stdout  # the tracked file the test changed is part of the change
    ignored_files_intact(demo_ws)
    assert not (demo_ws / "junit-artifact.xml").exists()  # a real artifact is still removed


def test_fix_cli__dry_run_restore_never_deletes_ignored_files_for_magic_file_names(demo_ws: Path) -> None:
    """Issue 9 reproduction 3: a model-written file named `:(top)` (or `*`) was passed to git as a
    pathspec: the snapshot took in every ignored file and the dry run's restore deleted `.env`,
    `node_modules/` and the rest."""
    add_ignored_user_files(demo_ws)
    script = [
        tool("write_file", path=":(top)", content="x\n"),
        tool("write_file", path="*", content="x\n"),
        tool("write_file", path="shop/:(glob)**", content="x\n"),
        *fix_steps(),
    ]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as fake:
        proc = fix_dry_run(fake, demo_ws)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"
    assert ENV_SECRET not in proc.stdout  # `.env` was never part of the diff
    ignored_files_intact(demo_ws)
    assert status(demo_ws) == ""
    assert not (demo_ws / ":(top)").exists()


def test_fix_cli__run_tests_refuses_an_argsfile_that_smuggles_basetemp(demo_ws: Path, tmp_path: Path) -> None:
    """Issue 9: pytest reads options from `@file`; `--basetemp` names a folder pytest empties first.
    The filter allowed `@`, so the model could wipe any folder the job can write."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    script = [
        tool("write_file", path="tests/pytest-args.txt", content=f"--basetemp={victim}\n"),
        tool("run_tests", command=f"{TEST_COMMAND} @tests/pytest-args.txt"),
        tool("run_tests", command=f"{TEST_COMMAND} tests/@pytest-args.txt"),
        tool("run_tests", command=f"{TEST_COMMAND} --basetemp={victim}"),
        tool("run_tests", command=f"{TEST_COMMAND} basetemp={victim}"),
        *fix_steps(),
    ]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as fake:
        proc = fix_dry_run(fake, demo_ws)
    assert proc.returncode == 0, proc.stderr
    refused = [tool_results(fake, i)[0] for i in (2, 3, 4, 5)]
    assert all(r["is_error"] for r in refused), refused
    assert all("refused" in r["content"] for r in refused), refused
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert proc.stdout.rstrip().splitlines()[-1] == "status: dry-run"


def test_fix_cli__github_folder_is_blocked_by_default(demo_ws: Path) -> None:
    """Issue 9: `.github/actions/**`, CODEOWNERS and dependabot were not blocked; a fix branch that
    edits them changes what CI runs (with `ci-workflow`, with the workflow's secrets) or who must
    review. Tools refuse them, and a test that writes one makes the final diff skip."""
    (demo_ws / ".github").mkdir()
    (demo_ws / ".github" / "dependabot.yml").write_text("version: 2\nupdates: []\n")
    git(demo_ws, "add", ".github")
    git(demo_ws, "commit", "-qm", "dependabot")
    sneaky = (
        "from pathlib import Path\n\n\ndef test_sneaky():\n"
        "    Path('.github/dependabot.yml').write_text('version: 2\\nregistries: {evil: {}}\\n')\n"
    )
    script = [
        tool("write_file", path=".github/actions/setup/action.yml", content="runs: {using: node20, main: x.js}\n"),
        tool("write_file", path=".github/CODEOWNERS", content="* @attacker\n"),
        tool("write_file", path=".github/dependabot.yml", content="version: 2\n"),
        tool("write_file", path="CODEOWNERS", content="* @attacker\n"),
        tool("write_file", path="tests/test_sneaky.py", content=sneaky),
        tool("run_tests"),
        finish(confidence="low"),
    ]
    with FakeAnthropic(script, api_key=ANTHROPIC_KEY) as fake:
        proc = fix_dry_run(fake, demo_ws)
    assert proc.returncode == 0, proc.stderr
    results = [tool_results(fake, i)[0] for i in (1, 2, 3, 4)]
    assert all(r["is_error"] and "blocked path" in r["content"] for r in results), json.dumps(results)
    assert proc.stdout.rstrip().splitlines()[-1] == "status: skipped-blocked-path"
    assert ".github/dependabot.yml" in proc.stderr
    assert (demo_ws / ".github" / "dependabot.yml").read_text() == "version: 2\nupdates: []\n"
    assert not (demo_ws / ".github" / "actions").exists()
    assert not (demo_ws / "CODEOWNERS").exists()
    assert status(demo_ws) == ""
