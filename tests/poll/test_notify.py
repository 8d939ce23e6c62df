"""Slack and Discord notifications against loopback fakes that validate the message shape."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sentry_autofix.config import load_settings
from sentry_autofix.notify import REVIEW_WARNING, Notification, build_notifiers, notify_all
from sentry_autofix.notify.discord import DiscordNotifier, build_embed, embed_size
from sentry_autofix.notify.slack import SlackNotifier, build_message

from .fakes import FakeDiscord, FakeSlack, block_kit_problems, discord_problems

HOSTILE = (
    "<!channel> <!here|here> <@U024BE7LH> @everyone @here <https://evil.example|Click to fix> "
    "&lt;b&gt; [free money](https://evil.example) ```x``` # Heading *bold* _i_ ~s~ <#C123> <t:1:R>"
)


def note(kind: str = "pr-opened", **extra: Any) -> Notification:
    values: dict[str, Any] = {
        "kind": kind,
        "error_title": "ZeroDivisionError: division by zero",
        "short_id": "SHOP-1F",
        "project": "shop",
        "environment": "production",
        "sentry_url": "https://acme.sentry.io/issues/4242/",
        "pr_url": "https://github.com/acme/shop/pull/7",
        "branch": "sentry-autofix/SHOP-1F",
        "repository": "acme/shop",
        "tests": "passed",
        "confidence": "high",
    }
    values.update(extra)
    return Notification(**values)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as server:
        yield server


def _texts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every text object in a Block Kit message."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


@pytest.mark.parametrize("kind", ["pr-opened", "draft-pr-opened", "issue-opened", "fix-failed"])
def test_slack_webhook__every_kind_is_valid_block_kit(slack: FakeSlack, kind: str) -> None:
    extra: dict[str, Any] = {}
    if kind == "issue-opened":
        extra = {"pr_url": None, "issue_url": "https://github.com/acme/shop/issues/8", "branch": None}
    if kind == "fix-failed":
        extra = {
            "pr_url": None,
            "detail": "tests failed twice",
            "run_url": "https://github.com/acme/shop/actions/runs/1",
        }
    SlackNotifier(webhook_url=slack.webhook_url).send(note(kind, **extra))
    assert len(slack.messages) == 1
    msg = slack.messages[0]
    blocks = msg["blocks"]
    assert blocks[0]["type"] == "header"
    texts = " ".join(t["text"] for t in _texts(blocks))
    assert "ZeroDivisionError: division by zero" in texts
    assert "production" in texts
    buttons = {b["text"]["text"]: b["url"] for blk in blocks if blk["type"] == "actions" for b in blk["elements"]}
    assert buttons["View in Sentry"] == "https://acme.sentry.io/issues/4242/"
    if kind in ("pr-opened", "draft-pr-opened"):
        assert buttons["Pull request"] == "https://github.com/acme/shop/pull/7"
        assert "sentry-autofix/SHOP-1F" in texts
        assert REVIEW_WARNING in texts
    else:
        assert REVIEW_WARNING not in texts
    if kind == "issue-opened":
        assert buttons["Triage issue"].endswith("/issues/8")
    if kind == "fix-failed":
        assert "tests failed twice" in texts
        assert buttons["Workflow run"].endswith("/runs/1")


def test_slack__hostile_text_cannot_mention_or_link(slack: FakeSlack) -> None:
    hostile = note(
        error_title=HOSTILE,
        environment=HOSTILE,
        branch="<!channel>",
        sentry_url="javascript:alert(1)",
        pr_url="https://github.com/acme/shop/pull/7|<!channel>",
    )
    SlackNotifier(webhook_url=slack.webhook_url).send(hostile)
    msg = slack.messages[0]
    for obj in [*_texts(msg["blocks"]), {"type": "mrkdwn", "text": msg["text"]}]:
        if obj["type"] == "mrkdwn":
            # Slack only parses <…> sequences; none may survive in mrkdwn text.
            assert "<" not in obj["text"].replace(":warning:", "")
            assert ">" not in obj["text"]
        assert not re.search(r"@(everyone|here|channel)\b", obj["text"])
    buttons = [b for blk in msg["blocks"] if blk["type"] == "actions" for b in blk["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Pull request"]
    assert "|" not in buttons[0]["url"]
    assert "<" not in buttons[0]["url"]


def test_slack_bot__chat_post_message_with_token_and_channel(slack: FakeSlack) -> None:
    settings = load_settings(slack_bot_token="xoxb-1-test", slack_channel="#alerts", slack_api_url=slack.url + "/api")
    [notifier] = build_notifiers(settings)
    notifier.send(note())
    req = slack.calls("POST", "/api/chat.postMessage")[0]
    assert req.headers["authorization"] == "Bearer xoxb-1-test"
    assert req.headers["content-type"].startswith("application/json")
    assert slack.messages[0]["channel"] == "#alerts"
    assert not block_kit_problems(slack.messages[0])


def test_slack_bot__api_error_is_logged_never_raised(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SlackNotifier(bot_token="xoxb-1-test", channel="#nowhere", api_url=slack.url + "/api")
    with caplog.at_level(logging.WARNING):
        failed = notify_all([notifier], note())
    assert failed == ["slack"]
    assert "channel_not_found" in caplog.text
    assert "SLACK_CHANNEL" in caplog.text


def test_slack_webhook__rate_limit_waits_retry_after(slack: FakeSlack) -> None:
    slack.script.append((429, {"Retry-After": "2", "Content-Type": "text/plain"}, b"rate_limited"))
    sleeps: list[float] = []
    SlackNotifier(webhook_url=slack.webhook_url, sleep=sleeps.append).send(note())
    assert sleeps == [2.0]
    assert len(slack.messages) == 1


def test_slack_webhook__refusal_does_not_leak_the_url(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    bad = slack.url + "/services/T0001/B0001/wrong-secret"
    with caplog.at_level(logging.WARNING):
        assert notify_all([SlackNotifier(webhook_url=bad)], note()) == ["slack"]
    assert "404" in caplog.text
    assert "wrong-secret" not in caplog.text


def test_slack__long_texts_stay_within_block_limits() -> None:
    big = note(error_title="E" * 10_000, detail="D" * 10_000, environment="v" * 5000, short_id="S" * 400)
    assert block_kit_problems(build_message(big)) == []


@pytest.mark.parametrize("kind", ["pr-opened", "draft-pr-opened", "issue-opened", "fix-failed"])
def test_discord__every_kind_is_a_valid_embed_that_pings_nobody(discord: FakeDiscord, kind: str) -> None:
    DiscordNotifier(discord.webhook_url).send(note(kind, detail="why" if kind == "fix-failed" else None))
    msg = discord.messages[0]
    assert msg["allowed_mentions"] == {"parse": []}
    [embed] = msg["embeds"]
    assert "ZeroDivisionError: division by zero" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Environment"] == "production"
    assert "[Sentry](https://acme.sentry.io/issues/4242/)" in fields["Links"]
    assert (embed.get("footer", {}).get("text") == REVIEW_WARNING) == (kind in ("pr-opened", "draft-pr-opened"))
    assert discord.calls("POST")[0].query == {"wait": ["true"]}


def test_discord__hostile_text_is_escaped(discord: FakeDiscord) -> None:
    DiscordNotifier(discord.webhook_url).send(note(error_title=HOSTILE, environment="@everyone"))
    embed = discord.messages[0]["embeds"][0]
    desc = embed["description"]
    assert "@everyone" not in desc
    assert "@here" not in desc
    assert "[free money](https" not in desc
    assert "\\[free money\\]\\(https" in desc
    assert "<@U024BE7LH>" not in desc
    assert "<!channel>" not in desc
    assert "@everyone" not in json.dumps(embed["fields"])


def test_discord__oversized_texts_fit_the_6000_limit(discord: FakeDiscord) -> None:
    big = note(error_title="x" * 9000, detail="y" * 5000, environment="e" * 3000, branch="b" * 3000)
    DiscordNotifier(discord.webhook_url).send(big)
    assert embed_size(discord.messages[0]["embeds"][0]) <= 6000
    assert discord_problems(discord.messages[0]) == {}
    assert embed_size(build_embed(big)) <= 6000


def test_discord__unknown_webhook_is_logged_never_raised(
    discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = discord.webhook_url.replace(FakeDiscord.WEBHOOK_TOKEN, "other-token-value")
    with caplog.at_level(logging.WARNING):
        failed = notify_all([DiscordNotifier(wrong)], note())
    assert failed == ["discord"]
    assert "Unknown Webhook" in caplog.text
    assert "other-token-value" not in caplog.text


def test_discord__rate_limit_waits_retry_after_seconds(discord: FakeDiscord) -> None:
    body = b'{"message": "You are being rate limited.", "retry_after": 0.25, "global": false}'
    discord.script.append((429, {"Content-Type": "application/json"}, body))
    sleeps: list[float] = []
    DiscordNotifier(discord.webhook_url, sleep=sleeps.append).send(note())
    assert sleeps == [0.25]
    assert len(discord.messages) == 1


def test_notify_all__unreachable_and_buggy_notifiers_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        name = "broken"

        def send(self, note: Notification) -> None:
            raise RuntimeError("bug in a notifier")

    dead = DiscordNotifier("http://127.0.0.1:9/api/webhooks/1/secret-token-here", timeout=1)
    with caplog.at_level(logging.WARNING):
        assert notify_all([Broken(), dead], note()) == ["broken", "discord"]
    assert "bug in a notifier" in caplog.text
    assert "secret-token-here" not in caplog.text


def test_build_notifiers__one_per_configured_target() -> None:
    assert build_notifiers(load_settings()) == []
    both = build_notifiers(
        load_settings(slack_webhook_url="https://hooks.slack.com/services/x", discord_webhook_url="https://d/x")
    )
    assert [n.name for n in both] == ["slack", "discord"]
