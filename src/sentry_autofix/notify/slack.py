"""Slack: an incoming webhook, or a bot token + channel through `chat.postMessage`; Block Kit.

Untrusted text (the error title, the failure detail) goes into `plain_text` objects, which Slack
never parses for links or mentions, or — where mrkdwn is needed — is escaped (`&`, `<`, `>`: the
only characters Slack's mrkdwn treats as control, so `<!channel>`, `<@U…>` and `<url|label>`
cannot be forged) and has its `@` words broken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError
from sentry_autofix.neutral import break_mentions, clean, safe_url
from sentry_autofix.notify import REVIEW_WARNING, Notification, cap, post_json

log = logging.getLogger(__name__)

HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000
BUTTON_TEXT_MAX = 75


class SlackError(Exception):
    pass


def escape_mrkdwn(text: str) -> str:
    """`neutral.clean`, Slack's own escaping rule, and a zero-width space after `@` against bare mentions."""
    text = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return break_mentions(text)


def plain(text: str, limit: int) -> dict[str, Any]:
    # plain_text is not parsed for mentions or links; still break `@here` so a client that shows
    # the raw text (notifications, the fallback) cannot be read as one.
    return {"type": "plain_text", "text": cap(break_mentions(clean(text)) or " ", limit), "emoji": False}


def build_blocks(note: Notification) -> list[dict[str, Any]]:
    """The Block Kit message: header, error, facts, link buttons, detail, review warning."""
    title = f"{note.headline}: {note.short_id}" if note.short_id else note.headline
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(title, HEADER_MAX)},
        {"type": "section", "text": plain(note.error_title, TEXT_MAX)},
    ]
    facts = [
        ("Project", note.project),
        ("Environment", note.environment),
        ("Repository", note.repository),
        ("Branch", note.branch),
        ("Tests", note.tests),
        ("Confidence", note.confidence),
    ]
    fields = [
        {"type": "mrkdwn", "text": cap(f"*{label}*\n{escape_mrkdwn(value)}", FIELD_MAX)}
        for label, value in facts
        if value
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    buttons = []
    for label, url in (
        ("Pull request", note.pr_url),
        ("Triage issue", note.issue_url),
        ("View in Sentry", note.sentry_url),
        ("Workflow run", note.run_url),
    ):
        link = safe_url(url)
        if link:
            buttons.append({"type": "button", "text": plain(label, BUTTON_TEXT_MAX), "url": link})
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if note.detail:
        blocks.append({"type": "section", "text": plain(note.detail, TEXT_MAX)})
    if note.needs_review_warning:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f":warning: {REVIEW_WARNING}"}]})
    return blocks


def fallback_text(note: Notification) -> str:
    """The `text` shown in notifications and by clients without Block Kit (mrkdwn, escaped)."""
    text = f"{note.headline}: {note.short_id or ''} {note.error_title}".strip()
    return cap(escape_mrkdwn(text), TEXT_MAX)


def build_message(note: Notification, channel: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "text": fallback_text(note),
        "blocks": build_blocks(note),
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if channel:
        message["channel"] = channel
    return message


class SlackNotifier:
    """Implements `notify.Notifier`."""

    name = "slack"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        channel: str | None = None,
        api_url: str = "https://slack.com/api",
        timeout: float = 10.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not webhook_url and not (bot_token and channel):
            raise ConfigError("Slack needs SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN together with SLACK_CHANNEL")
        self.webhook_url = webhook_url
        self.bot_token = bot_token
        self.channel = channel
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackNotifier:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        hook = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
        # A bot token with a channel wins: chat.postMessage reports errors a webhook cannot.
        if token and settings.slack_channel:
            hook = None
        return cls(
            webhook_url=hook,
            bot_token=token,
            channel=settings.slack_channel,
            api_url=settings.slack_api_url,
            timeout=settings.notify_timeout,
        )

    def send(self, note: Notification) -> None:
        if self.bot_token and self.channel:
            resp = self._post(
                f"{self.api_url}/chat.postMessage",
                build_message(note, self.channel),
                {"Authorization": f"Bearer {self.bot_token}"},
            )
            try:
                body = resp.json()
            except ValueError as exc:
                raise SlackError(f"chat.postMessage answered {resp.status_code} without JSON") from exc
            if not isinstance(body, dict) or body.get("ok") is not True:
                error = body.get("error") if isinstance(body, dict) else None
                raise SlackError(
                    f"chat.postMessage refused the message: {error} (check SLACK_CHANNEL and the bot's scopes)"
                )
            return
        assert self.webhook_url is not None
        resp = self._post(self.webhook_url, build_message(note), {})
        if resp.status_code != 200:
            raise SlackError(f"Slack webhook answered {resp.status_code} {resp.text[:100]!r} (check SLACK_WEBHOOK_URL)")

    def _post(self, url: str, message: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        resp = post_json(
            self.session,
            url,
            message,
            service="Slack",
            error=SlackError,
            timeout=self.timeout,
            sleep=self._sleep,
            headers=headers,
        )
        if resp.status_code >= 400 and self.bot_token and self.channel:
            raise SlackError(f"chat.postMessage answered HTTP {resp.status_code}")
        return resp
