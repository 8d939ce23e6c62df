"""Slack alert messages as an error source: the traceback text a message carries, no vendor API.

`event_from_slack` is pure (an Events API body or its `event` → ErrorEvent), for a relay route that
has already verified the signature: it gathers the message's text, its attachments' text and the
code blocks of its rich-text blocks, and parses them as traceback text (Slack's `&lt;` escapes,
`<url|label>` links and code fences are undone by the parser).
"""

from __future__ import annotations

from typing import Any

from sentry_autofix.errors import InputError
from sentry_autofix.models import ErrorEvent
from sentry_autofix.sources.traceback_text import MAX_BYTES, parse_traceback

MAX_ATTACHMENTS = 20
MAX_BLOCKS = 50


def _rich_text(element: Any, out: list[str], depth: int = 0) -> None:
    """Text of rich_text elements; a preformatted section (a code block) stays one piece."""
    if depth > 6 or not isinstance(element, dict):
        return
    if isinstance(element.get("text"), str):
        out.append(element["text"])
    children = element.get("elements")
    if isinstance(children, list):
        parts: list[str] = []
        for child in children[:500]:
            _rich_text(child, parts, depth + 1)
        joined = "".join(parts)
        if joined:
            out.append(joined)


def message_text(payload: dict[str, Any]) -> str:
    """All the text of a Slack message event (`event_callback` body or the `event` itself)."""
    event = payload.get("event") if isinstance(payload.get("event"), dict) else payload
    if not isinstance(event, dict):
        raise InputError("a Slack message event must be a JSON object")
    parts: list[str] = []
    if isinstance(event.get("text"), str):
        parts.append(event["text"])
    attachments = event.get("attachments")
    for att in attachments[:MAX_ATTACHMENTS] if isinstance(attachments, list) else []:
        if isinstance(att, dict):
            parts += [att[k] for k in ("pretext", "text") if isinstance(att.get(k), str)]
            if not isinstance(att.get("text"), str) and isinstance(att.get("fallback"), str):
                parts.append(att["fallback"])
    blocks = event.get("blocks")
    for block in blocks[:MAX_BLOCKS] if isinstance(blocks, list) else []:
        if isinstance(block, dict) and block.get("type") == "rich_text":
            texts: list[str] = []
            _rich_text(block, texts)
            # `text` already holds the same words when Slack sent both; a code block may only be here.
            parts += [t for t in texts if t not in " ".join(parts)]
    text = "\n".join(parts)
    if len(text) > MAX_BYTES:
        raise InputError(f"the Slack message holds {len(text) / 1e6:.1f} MB of text; the limit is 5 MiB")
    return text


def event_from_slack(payload: dict[str, Any]) -> ErrorEvent:
    """A Slack alert (Events API `message`) → the last traceback it carries, as an ErrorEvent."""
    event = parse_traceback(message_text(payload), "the Slack message")
    event.tags = [*event.tags, ("source", "slack")]
    event_obj = payload.get("event")
    inner: dict[str, Any] = event_obj if isinstance(event_obj, dict) else payload
    channel, ts = inner.get("channel"), inner.get("ts")
    if isinstance(channel, str) and isinstance(ts, str):
        event.tags.append(("slack_message", f"{channel[:40]}/{ts[:40]}"))
    return event
