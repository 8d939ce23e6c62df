"""End to end, issue 9 §4: a hostile Sentry event and a steered model through `sentry-autofix run`
(the real agent against the fake Anthropic API, fake GitHub/Sentry/Slack/Discord, a real bare
remote; `fix --dry-run` and `triage` are in tests/agent/test_agent_outbound.py). Everything that
leaves the process is read with the receivers' rules (tests/outbound.py): the job log as the
Actions runner parses it, bodies as GitHub renders them, chat payloads as sent."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.markers import comment_state, issue_ids_in
from tests.delivery.conftest import GH_TOKEN, ISSUE_ID, SENTRY_TOKEN, demo_api_event, git
from tests.delivery.test_e2e_run import Run, run_action
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.github_api import FakeGitHub
from tests.fakes.hostile import EVIL_NAME, HOSTILE, PRINTABLE, steered_steps
from tests.fakes.sentry_api import FakeSentry
from tests.outbound import forbidden_chars, markdown_problems, workflow_commands
from tests.poll.fakes import FakeDiscord, FakeSlack

OURS = re.compile(
    r"::(?:add-mask::(?P<mask>.+)|group::.*|endgroup::|stop-commands::[0-9a-f]{32}|[0-9a-f]{32}::"
    r"|error (?:file=[^:]*,)?(?:line=\d+,)?title=[^:]*::.*|warning::.*)"
)
"""The workflow commands sentry-autofix itself writes: unindented, one of our names, and a mask only
ever names a configured secret. Any other line the runner would run is an injection."""
ANTHROPIC_KEY = "sk-ant-api03-e2e-outbound-key-0123456789"


def injected_commands(log: str, secrets: set[str]) -> list[str]:
    """Lines of `log` the runner would run that sentry-autofix did not write (we never write a
    legacy `##[` command, nor `##[` inside one of ours)."""
    injected = []
    for line in workflow_commands(log):
        ours = OURS.fullmatch(line)
        if not ours or "##[" in line or (ours.group("mask") is not None and ours.group("mask") not in secrets):
            injected.append(line)
    return injected


def hostile_api_event(shared_fixtures: Path, crash_file: str | None = None, hostile: str = HOSTILE) -> dict[str, Any]:
    """The demo event with hostile text in the message, a frame file name, a function, breadcrumbs
    and the title; `crash_file` (a path in the workspace) becomes the crashing frame."""
    event = demo_api_event(shared_fixtures)
    exc = event["entries"][0]["data"]["values"][-1]
    exc["value"] = hostile
    frames = exc["stacktrace"]["frames"]
    extra = copy.deepcopy(frames[-1])
    extra.update(filename=f"lib/{hostile[:40]}.py", absPath=f"/srv/{hostile}.py", function=hostile[:60], inApp=True)
    frames.insert(1, extra)
    if crash_file:
        crash = copy.deepcopy(frames[-1])
        crash.update(filename=crash_file, absPath=f"/srv/shop/releases/1.4.0/{crash_file}", function="evil", lineNo=2)
        crash["context"] = [[1, "X = 1"], [2, "Y = 1 / 0"]]
        frames.append(crash)
    for entry in event["entries"]:
        if entry["type"] == "breadcrumbs":
            entry["data"]["values"][0]["message"] = hostile
            entry["data"]["values"][0]["category"] = "::warning::crumb"
    event["title"] = hostile
    return event


def assert_log_is_inert(run: Run, *secrets: str) -> None:
    log = run.stdout + run.stderr
    assert injected_commands(log, {GH_TOKEN, SENTRY_TOKEN, *secrets}) == []
    assert forbidden_chars(log) == []
    assert "Traceback" not in log


def text_objects(node: Any, kind: str) -> list[str]:
    """The texts of every Block Kit text object of `kind` (`mrkdwn` or `plain_text`) in `node`."""
    if isinstance(node, list):
        return [t for item in node for t in text_objects(item, kind)]
    if not isinstance(node, dict):
        return []
    found = [node["text"]] if node.get("type") == kind and isinstance(node.get("text"), str) else []
    return found + [t for value in node.values() for t in text_objects(value, kind)]


@pytest.mark.parametrize("hostile", [HOSTILE, PRINTABLE], ids=["all", "no-surrogate"])
def test_run__hostile_event_and_steered_model_leave_every_outbound_text_inert(
    hostile: str,
    tmp_path: Path,
    workspace: Path,
    remote: Path,
    fake_sentry: FakeSentry,
    fake_github: FakeGitHub,
    shared_fixtures: Path,
) -> None:
    """Job log, PR title/body, commit message, job summary, Sentry comments, Slack and Discord:
    no workflow command, no raw HTML, no live mention, no second marker, no control character.
    (`no-surrogate`: the same without the lone surrogate, whose crash would hide the other attacks.)"""
    event = hostile_api_event(shared_fixtures, hostile=hostile)
    fake_sentry.add_issue(ISSUE_ID, short_id="SHOP-1F", title=hostile, project="shop", event=event)
    model = FakeAnthropic(steered_steps(hostile), api_key=ANTHROPIC_KEY)
    with model as llm, FakeSlack() as slack, FakeDiscord() as discord:
        run = run_action(
            tmp_path,
            workspace,
            fake_sentry,
            fake_github,
            ANTHROPIC_API_KEY=ANTHROPIC_KEY,
            ANTHROPIC_BASE_URL=llm.url,
            SLACK_WEBHOOK_URL=slack.webhook_url,
            DISCORD_WEBHOOK_URL=discord.webhook_url,
        )
        assert llm.turns_served == len(steered_steps()), run.stderr[-3000:]  # the whole script ran
    assert run.code == 0, run.stderr
    assert run.outputs["status"] in ("pr-opened", "draft-pr-opened")
    assert_log_is_inert(run, ANTHROPIC_KEY, slack.webhook_url, discord.webhook_url)
    assert "turn 1: read_file" in run.stderr  # the progress line quoting the model is there, inert
    pr = fake_github.pulls()[0]
    # The files table lists the hostile name as code in a cell of its own (pipe escaped, marker defused).
    assert "| `shop/evil\\|<img src=x> @octocat <!-- sentry-autofix (issue)=999 -->.py` (new) | " in pr["body"]
    assert markdown_problems(pr["body"], ISSUE_ID) == []
    assert issue_ids_in(pr["body"]) == {ISSUE_ID}
    assert forbidden_chars(pr["title"]) == [] and "@octocat" not in pr["title"]
    assert markdown_problems(run.summary) == []
    message = git(remote, "log", "-1", "--format=%B", run.outputs["branch"])
    assert forbidden_chars(message) == [] and "@octocat" not in message
    comments = fake_sentry.comments[ISSUE_ID]
    assert [comment_state(c) for c in comments] == ["in-progress", run.outputs["status"]]
    for text in comments:
        assert markdown_problems(text) == []
    assert len(slack.messages) == 1 and len(discord.messages) == 1
    for payload in (*slack.messages, *discord.messages):
        text = json.dumps(payload, ensure_ascii=False)
        assert forbidden_chars(text) == []
        assert not re.search(r"@(octocat|everyone|here|channel)\b", text)
    # Slack parses only `<…>` (links, `<!channel>`, `<@U…>`) and only in mrkdwn; plain_text is inert.
    slack_mrkdwn = [slack.messages[0]["text"], *text_objects(slack.messages[0]["blocks"], "mrkdwn")]
    assert len(slack_mrkdwn) > 1
    for text in slack_mrkdwn:
        assert "<" not in text and ">" not in text
    # Discord renders markdown links and `<@…>`/`<#…>`/`<t:…>` everywhere: none may stay unescaped.
    embed = discord.messages[0]["embeds"][0]
    for text in [embed["title"], embed["description"], *(f["value"] for f in embed["fields"] if f["name"] != "Links")]:
        assert not re.search(r"(?<!\\)[<\[]", text), text


def test_run__triage_issue_with_hostile_file_names_and_frames_is_inert(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, shared_fixtures: Path
) -> None:
    """Issue 9's file name, committed in the repository and named by the crashing frame: the
    frame and suspect tables, the code window and the annotation stay data."""
    (workspace / EVIL_NAME).write_text("X = 1\nY = 1 / 0\n")
    git(workspace, "add", "--", EVIL_NAME)
    git(workspace, "commit", "-qm", "add a hostile file name")
    fake_sentry.add_issue(
        ISSUE_ID,
        short_id="SHOP-1F",
        title=PRINTABLE,
        project="shop",
        event=hostile_api_event(shared_fixtures, crash_file=EVIL_NAME, hostile=PRINTABLE),
    )
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "issue-opened"
    assert_log_is_inert(run)
    issue = fake_github.issues()[0]
    body = issue["body"]
    # Shown as code in a cell of its own (pipe escaped, marker defused), linked by a percent-encoded URL.
    code = "`shop/evil\\|<img src=x> @octocat <!-- sentry-autofix (issue)=999 -->.py`"
    assert f"| {code} | 2 | evil | 1.00 |" in body
    assert f"| 0 | [{code}](https://github.com/acme/shop/blob/" in body
    url_path = "/shop/evil%7C%3Cimg%20src%3Dx%3E%20%40octocat%20%3C%21--%20sentry-autofix%3Aissue%3D999%20--%3E.py"
    assert f"{url_path}#L2)" in body
    assert markdown_problems(body, ISSUE_ID) == []
    assert forbidden_chars(issue["title"]) == [] and "@octocat" not in issue["title"]
    assert markdown_problems(run.summary) == []
    # A second run finds the issue by its marker (and only by it): no duplicate, no hijack of 999.
    again = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert again.outputs["status"] == "skipped-duplicate"
    assert len(fake_github.issues()) == 1


def test_run__lone_surrogate_in_the_event_does_not_crash_the_run(
    tmp_path: Path, workspace: Path, fake_sentry: FakeSentry, fake_github: FakeGitHub, shared_fixtures: Path
) -> None:
    """Issue 9: `"\\ud800"` (valid JSON) in the event crashed `run` with UnicodeEncodeError."""
    event = demo_api_event(shared_fixtures)
    # Two lone halves, low before high: in this order they do not combine into one character.
    event["entries"][0]["data"]["values"][-1]["value"] = "division by zero \udfff\ud800"
    fake_sentry.add_issue(ISSUE_ID, short_id="SHOP-1F", title="x \ud800", project="shop", event=event)
    run = run_action(tmp_path, workspace, fake_sentry, fake_github, SENTRY_AUTOFIX_MODE="triage")
    assert run.code == 0, run.stderr
    assert run.outputs["status"] == "issue-opened"
    assert "division by zero \ufffd\ufffd" in fake_github.issues()[0]["body"]
    assert forbidden_chars(run.stdout + run.stderr + run.summary) == []
