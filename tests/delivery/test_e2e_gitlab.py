"""End to end under GitLab CI: `sentry-autofix run` as a subprocess with the GitLab CI environment,
the fake Sentry, the scripted Anthropic model, the fake GitLab API v4 and a real bare remote served
over smart HTTP that requires the project access token (user `oauth2`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sentry_autofix.markers import comment_state
from tests.conftest import REPO_ROOT, forwarded_env
from tests.delivery.conftest import ISSUE_ID, SENTRY_TOKEN, git
from tests.fakes.git_http import GitHTTPServer
from tests.fakes.gitlab_api import FakeGitLab
from tests.fakes.sentry_api import FakeSentry

CLI = str(Path(sys.executable).with_name("sentry-autofix"))
GL_TOKEN = "glpat-e2e-project-token-0123456789"
TRIGGER_TOKEN = "glptt-e2e-trigger-token-abcdef0123"
ANTHROPIC_KEY = "sk-ant-api03-gitlab-e2e-key-0123456789abcdef"
BRANCH = "sentry-autofix/SHOP-1F"
SECRETS = (GL_TOKEN, SENTRY_TOKEN, ANTHROPIC_KEY, TRIGGER_TOKEN)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    dotenv: dict[str, str]
    summary: str

    def everything(self) -> str:
        return self.stdout + self.stderr + repr(self.dotenv) + self.summary


@pytest.fixture
def http_remote(workspace: Path, remote: Path) -> Iterator[GitHTTPServer]:
    """origin over HTTPS-like smart HTTP, accepting only `oauth2:<project access token>`."""
    server = GitHTTPServer(remote.parent, GL_TOKEN, user="oauth2").start()
    git(workspace, "remote", "set-url", "origin", server.url(remote.name))
    yield server
    server.stop()


@pytest.fixture
def fake_gitlab(remote: Path) -> Iterator[FakeGitLab]:
    fake = FakeGitLab(
        project="acme/shop", project_id=42, token=GL_TOKEN, trigger_token=TRIGGER_TOKEN, git_remote=remote
    )
    fake.start()
    yield fake
    fake.stop()


def run_job(
    tmp_path: Path,
    workspace: Path,
    sentry: FakeSentry,
    gitlab: FakeGitLab,
    *,
    source: str = "trigger",
    command: list[str] | None = None,
    **env: str,
) -> Run:
    """One GitLab CI job running the component's script: the variables GitLab Runner sets."""
    n = len(list(tmp_path.glob("job-*.env")))
    dotenv, summary = tmp_path / f"job-{n}.env", tmp_path / f"job-{n}-summary.md"
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(REPO_ROOT),
        **forwarded_env(),
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": gitlab.url,
        "CI_API_V4_URL": f"{gitlab.url}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_PATH": "acme/shop",
        "CI_PROJECT_URL": "https://gitlab.example.com/acme/shop",
        "CI_PROJECT_DIR": str(workspace),
        "CI_PIPELINE_SOURCE": source,
        "CI_PIPELINE_URL": "https://gitlab.example.com/acme/shop/-/pipelines/77",
        "CI_JOB_TOKEN": "job-token-that-cannot-open-mrs",
        "SENTRY_AUTOFIX_GITLAB_TOKEN": GL_TOKEN,
        "SENTRY_AUTOFIX_DOTENV": str(dotenv),
        "SENTRY_AUTOFIX_SUMMARY_FILE": str(summary),
        "SENTRY_URL": sentry.url,
        "SENTRY_AUTH_TOKEN": SENTRY_TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_AUTOFIX_TEST_COMMAND": f"{sys.executable} -m pytest -q -p no:cacheprovider",
        **env,
    }
    # bytes, not text=True: universal newlines would turn the section markers' `\r` into `\n`.
    proc = subprocess.run(
        command or [CLI, "run"], env=full_env, cwd=tmp_path, capture_output=True, timeout=180, check=False
    )
    values: dict[str, str] = {}
    if dotenv.exists():
        for line in dotenv.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value
    return Run(
        proc.returncode,
        proc.stdout.decode(),
        proc.stderr.decode(),
        values,
        summary.read_text() if summary.exists() else "",
    )


def no_secret_anywhere(run: Run, gitlab: FakeGitLab, workspace: Path) -> None:
    """No secret in the job log, the dotenv report, the summary, .git/config, or any API body
    (the access token only in its PRIVATE-TOKEN header)."""
    text = run.everything() + (workspace / ".git" / "config").read_text()
    for secret in SECRETS:
        assert secret not in text
    for method, path, headers, raw in gitlab.raw:
        body = raw.decode("utf-8", "replace")
        for secret in SECRETS:
            assert secret not in path and secret not in body, (method, path)
        others = {k: v for k, v in headers.items() if k.lower() != "private-token"}
        assert GL_TOKEN not in repr(others)


def test_gitlab_run__agent_fix_opens_one_mr_and_rerun_is_deduplicated(
    tmp_path: Path,
    workspace: Path,
    remote: Path,
    http_remote: GitHTTPServer,
    fake_sentry: FakeSentry,
    fake_gitlab: FakeGitLab,
) -> None:
    """Sentry → agent → tests → branch pushed with the token → one MR; the rerun changes nothing;
    the base branch never moves; GitLab log sections and the dotenv report are written."""
    from tests.fakes.anthropic_api import FakeAnthropic
    from tests.fakes.demo_fix import REGRESSION_TEST_PATH, fix_steps

    base_before = git(remote, "rev-parse", "main").strip()
    with FakeAnthropic(fix_steps() + fix_steps(), api_key=ANTHROPIC_KEY) as llm:
        first = run_job(
            tmp_path,
            workspace,
            fake_sentry,
            fake_gitlab,
            SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
            ANTHROPIC_API_KEY=ANTHROPIC_KEY,
            ANTHROPIC_BASE_URL=llm.url,
        )
        calls_first = [(c.method, c.path.rsplit("/42", 1)[-1]) for c in fake_gitlab.api_calls()]
        git(workspace, "checkout", "-q", "-f", "main")
        second = run_job(
            tmp_path,
            workspace,
            fake_sentry,
            fake_gitlab,
            SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
            ANTHROPIC_API_KEY=ANTHROPIC_KEY,
            ANTHROPIC_BASE_URL=llm.url,
        )
        llm_bodies = llm.all_bodies()
    assert first.code == 0, first.stderr
    assert first.stdout == "status: pr-opened\n"
    assert len(fake_gitlab.mrs) == 1
    mr = fake_gitlab.mrs[0]
    assert mr["source_branch"] == BRANCH and mr["target_branch"] == "main"
    assert not mr["draft"]
    assert f"<!-- sentry-autofix:issue={ISSUE_ID} -->" in mr["description"]
    assert first.dotenv["SENTRY_AUTOFIX_STATUS"] == "pr-opened"
    assert first.dotenv["SENTRY_AUTOFIX_PR_URL"] == mr["web_url"]
    assert mr["web_url"] in first.summary
    files = git(remote, "diff", "--name-only", "main", BRANCH).split()
    assert sorted(files) == sorted(["shop/cart.py", REGRESSION_TEST_PATH])
    # Not GitHub's bot: GitLab CI's default author, stable per instance (the rerun recognises it).
    host = fake_gitlab.url.split("//")[1].split(":")[0]
    assert (
        git(remote, "log", "-1", "--format=%an <%ae>", BRANCH).strip()
        == f"sentry-autofix <sentry-autofix@noreply.{host}>"
    )
    # GitLab's collapsible sections, and no GitHub workflow command in a GitLab log.
    assert re.search(
        r"\x1b\[0Ksection_start:\d+:sentry_autofix_[0-9a-f]{8}\[collapsed=true\]\r\x1b\[0KSentry issue", first.stderr
    )
    assert "::group::" not in first.stderr and "::add-mask::" not in first.stderr
    # GitLab's words: merge request, and the crash location is a plain line, not an `ERROR:`.
    assert "Open the merge request" in first.stderr and "pull request" not in first.stderr
    assert "Sentry error at shop/cart.py:" in first.stderr and "ERROR:" not in first.stderr
    assert "opened a merge request" in fake_sentry.comments[ISSUE_ID][1]
    # Every push carried exactly the oauth2 credentials the remote asks for.
    assert any(h.lower().startswith("basic ") for h in http_remote.auth_headers)
    # Rerun: same fix, nothing new.
    assert second.code == 0, second.stderr
    assert second.stdout.rstrip().endswith("status: skipped-duplicate")
    assert "pull request" not in second.stderr
    assert len(fake_gitlab.mrs) == 1
    assert [comment_state(t) for t in fake_sentry.comments[ISSUE_ID]][:2] == ["in-progress", "pr-opened"]
    assert git(remote, "rev-parse", "main").strip() == base_before
    for call in fake_gitlab.calls:
        assert not call.path.endswith(("/merge", "/approve")), call
    no_secret_anywhere(first, fake_gitlab, workspace)
    no_secret_anywhere(second, fake_gitlab, workspace)
    for secret in (GL_TOKEN, SENTRY_TOKEN, TRIGGER_TOKEN):
        assert secret not in llm_bodies
    # The budget docs/gitlab.md states: 5 REST calls for one delivered MR, +1 per missing label.
    assert [c.query.get("search") for c in fake_gitlab.api_calls()[1:3]] == [[f"sentry-autofix:issue={ISSUE_ID}"]] * 2
    assert calls_first == [
        ("GET", "/merge_requests"),  # by source branch
        ("GET", "/merge_requests"),  # labelled, searched for the description marker
        ("GET", "/issues"),  # labelled, searched for the marker (triage issue of the same error)
        ("GET", "/labels"),
        ("POST", "/labels"),  # `sentry-autofix` did not exist yet
        ("POST", "/merge_requests"),
    ]


def test_gitlab_run__triage_opens_labelled_issue_then_dedups_and_reopens_on_regression(
    tmp_path: Path, workspace: Path, http_remote: GitHTTPServer, fake_sentry: FakeSentry, fake_gitlab: FakeGitLab
) -> None:
    """mode triage from a web pipeline: one GitLab issue with the priority label (created when
    missing); a rerun is skipped; once closed, the next run reopens it with a note."""
    first = run_job(
        tmp_path,
        workspace,
        fake_sentry,
        fake_gitlab,
        source="web",
        SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
        SENTRY_AUTOFIX_MODE="triage",
    )
    assert first.code == 0, first.stderr
    assert first.stdout == "status: issue-opened\n"
    assert len(fake_gitlab.issues) == 1
    issue = fake_gitlab.issues[0]
    assert f"<!-- sentry-autofix:issue={ISSUE_ID} -->" in issue["description"]
    names = {lbl["name"] for lbl in fake_gitlab.labels}
    assert set(issue["labels"]) <= names
    assert issue["labels"] == ["sentry-autofix", "triage", "P1"]  # Sentry priority high → P1
    assert first.dotenv["SENTRY_AUTOFIX_ISSUE_URL"] == issue["web_url"]
    second = run_job(
        tmp_path,
        workspace,
        fake_sentry,
        fake_gitlab,
        source="web",
        SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
        SENTRY_AUTOFIX_MODE="triage",
    )
    assert second.stdout.rstrip().endswith("status: skipped-duplicate")
    assert len(fake_gitlab.issues) == 1
    issue["state"] = "closed"
    third = run_job(
        tmp_path,
        workspace,
        fake_sentry,
        fake_gitlab,
        source="web",
        SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
        SENTRY_AUTOFIX_MODE="triage",
    )
    assert third.code == 0, third.stderr
    assert issue["state"] == "opened"
    assert len(fake_gitlab.issues) == 1
    assert [n["noteable_iid"] for n in fake_gitlab.notes] == [issue["iid"]]
    no_secret_anywhere(first, fake_gitlab, workspace)


def test_gitlab_run__rejected_token_names_the_scopes_to_fix(
    tmp_path: Path, workspace: Path, http_remote: GitHTTPServer, fake_sentry: FakeSentry, fake_gitlab: FakeGitLab
) -> None:
    """A wrong or job token: exit 1, one line naming the token and the scopes, token never printed."""
    run = run_job(
        tmp_path,
        workspace,
        fake_sentry,
        fake_gitlab,
        SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
        SENTRY_AUTOFIX_MODE="triage",
        SENTRY_AUTOFIX_GITLAB_TOKEN="glpat-wrong-token-value-000",
    )
    assert run.code == 1
    assert run.dotenv["SENTRY_AUTOFIX_STATUS"] == "error"
    assert "SENTRY_AUTOFIX_GITLAB_TOKEN" in run.stderr and "scope `api`" in run.stderr
    assert "glpat-wrong-token-value-000" not in run.everything()


def test_gitlab_run__no_issue_id_outside_a_schedule_is_a_usage_error(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_gitlab: FakeGitLab
) -> None:
    run = run_job(tmp_path, workspace, fake_sentry, fake_gitlab, source="web", SENTRY_AUTOFIX_MODE="triage")
    assert run.code == 2
    assert "SENTRY_AUTOFIX_ISSUE_ID" in run.stderr
    assert run.dotenv["SENTRY_AUTOFIX_STATUS"] == "error"


def fixer(name: str) -> list[str]:
    """`sentry-autofix run` with the scripted fixer `name` (tests/fakes/run_with_fixer.py)."""
    return [sys.executable, "-m", "tests.fakes.run_with_fixer", name]


@pytest.mark.parametrize("on_existing", ["skip", "update"])
def test_gitlab_run__a_fork_mr_with_our_branch_name_is_neither_skipped_nor_taken_over(
    tmp_path: Path,
    workspace: Path,
    remote: Path,
    http_remote: GitHTTPServer,
    fake_sentry: FakeSentry,
    fake_gitlab: FakeGitLab,
    on_existing: str,
) -> None:
    """Someone's MR from a fork whose source branch is `sentry-autofix/SHOP-1F`: with `skip` it
    must not suppress the fix, with `update` its title and description must not be replaced. Our
    own MR opens from our project's branch beside it."""
    theirs = fake_gitlab.add_fork_mr(source_branch=BRANCH, description="hand written, no marker")
    before = dict(theirs)
    run = run_job(
        tmp_path,
        workspace,
        fake_sentry,
        fake_gitlab,
        command=fixer("good"),
        SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
        SENTRY_AUTOFIX_ON_EXISTING=on_existing,
    )
    assert run.code == 0, run.stderr
    assert run.stdout.rstrip().endswith("status: pr-opened")
    assert theirs == before
    assert not [c for c in fake_gitlab.calls if c.method == "PUT"]
    ours = fake_gitlab.mrs[1]
    assert ours["source_project_id"] == ours["target_project_id"] == 42
    assert ours["source_branch"] == BRANCH
    assert f"<!-- sentry-autofix:issue={ISSUE_ID} -->" in ours["description"]
    assert run.dotenv["SENTRY_AUTOFIX_PR_URL"] == ours["web_url"]


def test_gitlab_run__an_overlapping_job_updates_the_mr_the_other_opened(
    tmp_path: Path,
    workspace: Path,
    remote: Path,
    http_remote: GitHTTPServer,
    fake_sentry: FakeSentry,
    fake_gitlab: FakeGitLab,
) -> None:
    """Two jobs for one issue: job 2 looked before job 1 opened the MR, then replaced job 1's
    branch with its own fix and got GitLab's 409 for the MR. It updates that MR (`pr-updated`),
    so the description describes the code on the branch; the error text is never a Python list."""
    first = run_job(
        tmp_path, workspace, fake_sentry, fake_gitlab, command=fixer("good"), SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID
    )
    assert first.stdout.rstrip().endswith("status: pr-opened"), first.stderr
    git(workspace, "checkout", "-q", "-f", "main")
    # Job 2's two reads (by branch, marker search) ran before job 1's POST: they saw no MR.
    fake_gitlab.inject("GET", "/merge_requests", 200, [])
    fake_gitlab.inject("GET", "/merge_requests", 200, [])
    second = run_job(
        tmp_path, workspace, fake_sentry, fake_gitlab, command=fixer("good2"), SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID
    )
    assert second.code == 0, second.stderr
    assert second.stdout.rstrip().endswith("status: pr-updated")
    assert second.dotenv["SENTRY_AUTOFIX_STATUS"] == "pr-updated"
    assert [c.status for c in fake_gitlab.calls if c.method == "POST" and c.path.endswith("/merge_requests")] == [
        201,
        409,
    ]
    # GitLab's 409 names the MR (`!1`; it counts only MRs from this project, same branches): no
    # further lookup, which a lagging list could still answer without it.
    after = [(c.method, c.path.rsplit("/42", 1)[-1]) for c in fake_gitlab.calls][-2:]
    assert after == [("GET", "/merge_requests/1"), ("PUT", "/merge_requests/1")]
    assert len(fake_gitlab.mrs) == 1
    mr = fake_gitlab.mrs[0]
    on_branch = git(remote, "show", f"{BRANCH}:shop/cart.py")
    assert "if not units:" in on_branch and "if units == 0" not in on_branch
    assert "if not units:" in mr["description"] and "if units == 0" not in mr["description"]
    assert second.dotenv["SENTRY_AUTOFIX_PR_URL"] == mr["web_url"]
    assert "['" not in second.everything()


def test_gitlab_run__the_job_token_in_the_sentry_event_reaches_no_one(
    tmp_path: Path,
    workspace: Path,
    remote: Path,
    http_remote: GitHTTPServer,
    fake_sentry: FakeSentry,
    fake_gitlab: FakeGitLab,
    shared_fixtures: Path,
) -> None:
    """GitLab Runner's own credentials (CI_JOB_TOKEN, CI_REGISTRY_PASSWORD, …) are secrets too: a
    job token quoted by the Sentry event (a prefix-less one, which no token pattern recognises)
    is cut from the model's request, the MR, the Sentry comments, the log and the artifacts."""
    from tests.delivery.conftest import demo_api_event
    from tests.fakes.anthropic_api import FakeAnthropic
    from tests.fakes.demo_fix import fix_steps

    job_token = "Jt7xQ2mVb9LkR4sW8nP3"
    registry_password = "Rg5hT1qZc8YwN2dK6vB0"
    event = demo_api_event(shared_fixtures)
    value = event["entries"][0]["data"]["values"][-1]["value"]
    event["entries"][0]["data"]["values"][-1]["value"] = f"{value} (job {job_token}, registry {registry_password})"
    fake_sentry.events[ISSUE_ID] = event
    with FakeAnthropic(fix_steps(), api_key=ANTHROPIC_KEY) as llm:
        run = run_job(
            tmp_path,
            workspace,
            fake_sentry,
            fake_gitlab,
            SENTRY_AUTOFIX_ISSUE_ID=ISSUE_ID,
            ANTHROPIC_API_KEY=ANTHROPIC_KEY,
            ANTHROPIC_BASE_URL=llm.url,
            CI_JOB_TOKEN=job_token,
            CI_REGISTRY_PASSWORD=registry_password,
        )
        llm_bodies = llm.all_bodies()
    assert run.code == 0, run.stderr
    assert run.stdout == "status: pr-opened\n"
    assert "(job " in llm_bodies  # the planted text did reach the model, without the values
    sent = llm_bodies + fake_gitlab.everything() + run.everything() + repr(fake_sentry.comments)
    assert job_token not in sent
    assert registry_password not in sent
    no_secret_anywhere(run, fake_gitlab, workspace)
