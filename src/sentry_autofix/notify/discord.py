"""Discord: an execute-webhook call with one embed.

`allowed_mentions: {"parse": []}` makes Discord ping nobody, whatever the text says; on top of
that, untrusted text has its markdown escaped (no forged masked links `[x](url)`, no headings)
and `@everyone`/`@here` broken, so the message also *reads* as data.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import requests

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError
from sentry_autofix.neutral import break_mentions, clean, safe_url
from sentry_autofix.notify import REVIEW_WARNING, Notification, cap, post_json

log = logging.getLogger(__name__)

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
FACT_MAX = 300
"""Short facts are capped hard so that the description always keeps room within 6,000 chars."""
EMBED_TOTAL_MAX = 6000
COLORS = {"pr-opened": 0x2DA44E, "draft-pr-opened": 0xBF8700, "issue-opened": 0x0969DA, "fix-failed": 0xCF222E}
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#<])")


class DiscordError(Exception):
    pass


def escape_markdown(text: str) -> str:
    """`neutral.clean`, Discord's markdown escaped, and a zero-width space after `@`."""
    return break_mentions(_MARKDOWN.sub(r"\\\1", clean(text)))


def build_embed(note: Notification) -> dict[str, Any]:
    title = f"{note.headline}: {note.short_id}" if note.short_id else note.headline
    embed: dict[str, Any] = {
        "title": cap(escape_markdown(title), TITLE_MAX),
        "description": cap(escape_markdown(note.error_title), DESCRIPTION_MAX),
        "color": COLORS[note.kind],
    }
    url = safe_url(note.pr_url) or safe_url(note.issue_url) or safe_url(note.sentry_url)
    if url:
        embed["url"] = url
    fields = []
    for name, value in (
        ("Project", note.project),
        ("Environment", note.environment),
        ("Repository", note.repository),
        ("Branch", note.branch),
        ("Tests", note.tests),
        ("Confidence", note.confidence),
    ):
        if value:
            fields.append({"name": name, "value": cap(escape_markdown(value), FACT_MAX), "inline": True})
    links = [
        f"[{label}]({link})"
        for label, link in (
            ("Pull request", safe_url(note.pr_url)),
            ("Triage issue", safe_url(note.issue_url)),
            ("Sentry", safe_url(note.sentry_url)),
            ("Workflow run", safe_url(note.run_url)),
        )
        if link
    ]
    if links:
        fields.append({"name": "Links", "value": cap(" · ".join(links), FIELD_VALUE_MAX), "inline": False})
    if note.detail:
        fields.append({"name": "Detail", "value": cap(escape_markdown(note.detail), FIELD_VALUE_MAX), "inline": False})
    embed["fields"] = fields[:25]
    if note.needs_review_warning:
        embed["footer"] = {"text": cap(REVIEW_WARNING, FOOTER_MAX)}
    return _fit(embed)


def _fit(embed: dict[str, Any]) -> dict[str, Any]:
    """Discord refuses an embed whose texts add up to more than 6,000 characters."""
    while embed_size(embed) > EMBED_TOTAL_MAX and len(embed["description"]) > 1:
        over = embed_size(embed) - EMBED_TOTAL_MAX
        embed["description"] = cap(embed["description"], max(1, len(embed["description"]) - over - 1))
    return embed


def embed_size(embed: dict[str, Any]) -> int:
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return size + len(embed.get("footer", {}).get("text", ""))


def build_message(note: Notification) -> dict[str, Any]:
    return {
        "username": "sentry-autofix",
        "embeds": [build_embed(note)],
        "allowed_mentions": {"parse": []},
    }


class DiscordNotifier:
    """Implements `notify.Notifier`."""

    name = "discord"

    def __init__(
        self,
        webhook_url: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not webhook_url.startswith(("https://", "http://")):
            raise ConfigError("DISCORD_WEBHOOK_URL must be the webhook's https:// URL")
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.session = session or requests.Session()
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordNotifier:
        assert settings.discord_webhook_url is not None
        return cls(settings.discord_webhook_url.get_secret_value(), timeout=settings.notify_timeout)

    def send(self, note: Notification) -> None:
        # wait=true: Discord answers 200 with the message (or an error body) instead of a bare 204.
        url = self.webhook_url + ("&" if "?" in self.webhook_url else "?") + "wait=true"
        resp = post_json(
            self.session,
            url,
            build_message(note),
            service="Discord",
            error=DiscordError,
            timeout=self.timeout,
            sleep=self._sleep,
        )
        if resp.status_code in (200, 204):
            return
        raise DiscordError(f"Discord webhook answered {resp.status_code}: {_message(resp)} (check DISCORD_WEBHOOK_URL)")


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or ""
    return str(body.get("message", ""))[:200] if isinstance(body, dict) else ""
