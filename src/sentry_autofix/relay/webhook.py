"""Pure webhook logic: verify, parse, filter, route and shape the dispatch. No I/O, no clock.

Sentry signs the exact bytes it sends (SPEC §10), so the signature is checked over the raw body
before anything is parsed; everything after that still treats the body as attacker-controlled
(a leaked secret must not turn into oversized or malformed dispatches).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from sentry_autofix.relay.config import RelayConfig, Route

SIGNATURE_HEADER = "sentry-hook-signature"
RESOURCE_HEADER = "sentry-hook-resource"
REQUEST_ID_HEADER = "request-id"

MAX_PAYLOAD_BYTES = 60_000
"""GitHub refuses a client_payload of 64 KB or more (SPEC §10); we stay well under it."""
_TEXT_LIMITS = {"title": 1000, "web_url": 2000, "culprit": 500, "rule": 200}

_ISSUE_ID_RE = re.compile(r"^[0-9]{1,20}$")
_SLUG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_ORG_PATH_RE = re.compile(r"/organizations/([A-Za-z0-9_.-]{1,100})/")
_PROJECT_PATH_RE = re.compile(r"/projects/([A-Za-z0-9_.-]{1,100})/([A-Za-z0-9_.-]{1,100})/")
_REQUEST_ID_JUNK = re.compile(r"[^\x21-\x7e]")

# Which webhooks are the same "kind" for dedup: a new issue, an alert on it and its error events
# ask for one fix run; a regression / escalation (unresolved) is news of its own and gets one run
# per window too; resolving and archiving are separate annotations.
_DEDUP_GROUP = {
    "issue.created": "fix",
    "issue.unresolved": "regression",
    "event_alert.triggered": "fix",
    "error.created": "fix",
    "issue.resolved": "resolved",
    "issue.ignored": "ignored",
    "issue.archived": "ignored",
}


@dataclass(frozen=True)
class Reject:
    """The request is refused: 400, 401 or 413."""

    status: int
    error: str


@dataclass(frozen=True)
class Ignore:
    """A valid webhook we do not forward (answered 200 so Sentry keeps the subscription healthy)."""

    reason: str
    resource: str
    action: str
    issue_id: str | None = None
    project: str | None = None


@dataclass(frozen=True)
class Forward:
    """A webhook to turn into one `repository_dispatch`, once dedup and rate limit agree."""

    issue_id: str
    dedup_group: str
    repo: str
    event_type: str
    client_payload: dict[str, Any]
    resource: str
    action: str
    request_id: str | None
    occurred_at: float | None = None
    """When Sentry saw what this webhook reports (epoch seconds), read from the signed body: the
    issue's `lastSeen`, or the event's `received` time. The relay's replay bound compares it with
    its clock (app.py); Sentry signs only the body, so its timestamp header cannot serve."""


Decision = Reject | Ignore | Forward

REPLAY_BOUND_GROUPS = frozenset({"fix", "regression"})
"""Dedup groups whose webhooks start a fix run and therefore carry the replay bound. A resolve or
archive annotation reports a user's action on an issue whose `lastSeen` may be weeks old; its
replays are bounded by dedup and the per-issue rate limit only."""


def normalize_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """Lower-cased header names; HTTP headers are case-insensitive and WSGI/Lambda spell them differently."""
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def sign(secret: bytes, body: bytes) -> str:
    """Sentry's signature: lowercase hex HMAC-SHA256 of the raw body with the client secret."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Constant-time comparison over bytes (compare_digest on str refuses non-ASCII input)."""
    if not secret or not signature:
        return False
    expected = sign(secret, body).encode("ascii")
    given = signature.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def _text(value: Any, limit: int = 300) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _epoch(value: Any) -> float | None:
    """An epoch number or an ISO 8601 string (Sentry writes both) → epoch seconds; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if number == number and abs(number) < 1e11 else None  # not NaN, not ms
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))  # 3.10 does not read "Z"
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None


def _first_epoch(*values: Any) -> float | None:
    for value in values:
        epoch = _epoch(value)
        if epoch is not None:
            return epoch
    return None


def _org_from_urls(*urls: Any) -> str | None:
    for url in urls:
        if not isinstance(url, str):
            continue
        match = _ORG_PATH_RE.search(url) or _PROJECT_PATH_RE.search(url)
        if match:
            return match.group(1)
        host = urlsplit(url).hostname or ""
        # SaaS web links look like https://<org>.sentry.io/issues/…
        if host.endswith(".sentry.io") and host.count(".") == 2:
            sub = host.split(".", 1)[0]
            if sub not in {"us", "de", "www", "o1"} and _SLUG_RE.match(sub):
                return sub
    return None


def _project_slug_from_url(url: Any) -> str | None:
    if isinstance(url, str):
        match = _PROJECT_PATH_RE.search(url)
        if match:
            return match.group(2)
    return None


@dataclass(frozen=True)
class _Fields:
    issue_id: Any
    short_id: Any
    project_slug: str | None
    project_id: str | None
    org: str | None
    substatus: Any
    level: Any
    title: Any
    web_url: Any
    extra: dict[str, Any]
    occurred_at: float | None = None


def _issue_fields(data: dict[str, Any], config: RelayConfig) -> _Fields | str:
    issue = data.get("issue")
    if not isinstance(issue, dict):
        return "issue webhook without data.issue"
    project = issue.get("project") if isinstance(issue.get("project"), dict) else {}
    assert isinstance(project, dict)
    slug = project.get("slug")
    pid = project.get("id")
    return _Fields(
        issue_id=issue.get("id"),
        short_id=issue.get("shortId"),
        project_slug=slug if isinstance(slug, str) and _SLUG_RE.match(slug) else None,
        project_id=str(pid) if isinstance(pid, (str, int)) and str(pid).isdigit() else None,
        org=_org_from_urls(issue.get("url"), issue.get("web_url"), issue.get("permalink")) or config.org,
        substatus=issue.get("substatus"),
        level=issue.get("level"),
        title=issue.get("title"),
        web_url=issue.get("web_url") or issue.get("permalink"),
        extra={"status": _text(issue.get("status"), 40), "culprit": _text(issue.get("culprit"), 500)},
        occurred_at=_first_epoch(issue.get("lastSeen"), issue.get("firstSeen")),
    )


def _event_fields(data: dict[str, Any], key: str, config: RelayConfig) -> _Fields | str:
    event = data.get(key)
    if not isinstance(event, dict):
        return f"webhook without data.{key}"
    pid = event.get("project")
    extra: dict[str, Any] = {
        "event_id": _text(event.get("event_id"), 64),
        "culprit": _text(event.get("culprit"), 500),
        "platform": _text(event.get("platform"), 40),
    }
    if isinstance(data.get("triggered_rule"), str):
        extra["rule"] = _text(data["triggered_rule"], 200)
    return _Fields(
        issue_id=event.get("issue_id"),
        short_id=None,  # event webhooks carry no short id; the Action reads it from Sentry's API
        project_slug=_project_slug_from_url(event.get("url")),
        project_id=str(pid)
        if isinstance(pid, (str, int)) and not isinstance(pid, bool) and str(pid).isdigit()
        else None,
        org=_org_from_urls(event.get("url"), event.get("web_url"), event.get("issue_url")) or config.org,
        substatus=None,
        level=event.get("level"),
        title=event.get("title"),
        web_url=event.get("web_url"),
        extra=extra,
        # `received` is stamped by Sentry's ingestion; `timestamp` comes from the SDK.
        occurred_at=_first_epoch(event.get("received"), event.get("timestamp"), event.get("datetime")),
    )


def build_client_payload(fields: _Fields, *, resource: str, action: str, request_id: str | None) -> dict[str, Any]:
    """≤ 10 top-level keys (GitHub's limit); the nested `sentry` object carries the rest."""
    context = {k: v for k, v in fields.extra.items() if v is not None}
    context.update(
        {
            "resource": resource,
            "project_id": fields.project_id,
            "request_id": _text(request_id, 100),
        }
    )
    payload: dict[str, Any] = {
        "issue_id": str(fields.issue_id),
        "short_id": _text(fields.short_id, 100),
        "project": fields.project_slug or fields.project_id,
        "org": fields.org,
        "action": action,
        "substatus": _text(fields.substatus, 40),
        "level": _text(fields.level, 20),
        "title": _text(fields.title, _TEXT_LIMITS["title"]),
        "web_url": _text(fields.web_url, _TEXT_LIMITS["web_url"]) if _is_http_url(fields.web_url) else None,
        "sentry": {k: v for k, v in context.items() if v is not None},
    }
    return payload


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def decide(headers: Mapping[str, str], body: bytes, config: RelayConfig) -> Decision:
    """Everything about one webhook that needs no store: the whole pure half of `handle`."""
    h = normalize_headers(headers)
    if len(body) > config.max_body:
        return Reject(413, f"body larger than {config.max_body} bytes")
    if not verify_signature(config.secret, body, h.get(SIGNATURE_HEADER)):
        return Reject(401, "missing or invalid Sentry-Hook-Signature")
    resource = h.get(RESOURCE_HEADER, "").strip()
    if not resource:
        return Reject(400, "missing Sentry-Hook-Resource header")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Reject(400, "body is not JSON")
    except RecursionError:
        # Validly signed and nested deeper than Python's parser recurses: it will never parse,
        # so 400 (a 503 would invite Sentry to send it again and again).
        return Reject(400, "body is not JSON the relay can read (nested too deeply)")
    if not isinstance(doc, dict) or not isinstance(doc.get("action"), str) or not isinstance(doc.get("data"), dict):
        return Reject(400, "body is not a Sentry webhook (needs an object with 'action' and 'data')")
    action: str = doc["action"]
    data: dict[str, Any] = doc["data"]
    resource = resource[:50]
    action = action[:50]
    key = f"{resource}.{action}"
    actor = doc.get("actor") if isinstance(doc.get("actor"), dict) else {}
    assert isinstance(actor, dict)

    if resource == "comment":
        # Our own comments on the Sentry issue come back as comment webhooks (SPEC §10).
        own = actor.get("type") == "application"
        return Ignore("own comment" if own else "comment", resource, action)
    if resource == "installation":
        return Ignore("installation", resource, action)
    if resource == "issue":
        fields = _issue_fields(data, config)
    elif resource == "event_alert":
        fields = _event_fields(data, "event", config)
    elif resource == "error":
        fields = _event_fields(data, "error", config)
    else:
        return Ignore("resource not handled", resource, action)
    if key not in _DEDUP_GROUP:
        return Ignore("action not handled", resource, action)
    if isinstance(fields, str):
        return Reject(400, fields)
    if not isinstance(fields.issue_id, (str, int)) or isinstance(fields.issue_id, bool):
        return Reject(400, f"{resource} webhook without an issue id")
    issue_id = str(fields.issue_id)
    if not _ISSUE_ID_RE.match(issue_id):
        return Reject(400, f"{resource} webhook with a non-numeric issue id")
    project = fields.project_slug or fields.project_id
    if key not in config.actions:
        return Ignore("action not enabled", resource, action, issue_id, project)
    level = fields.level.lower() if isinstance(fields.level, str) else None
    if config.levels and level not in config.levels:
        return Ignore("level filtered", resource, action, issue_id, project)
    route: Route | None = config.route_for(fields.project_slug, fields.project_id)
    if route is None:
        return Ignore("unknown project", resource, action, issue_id, project)

    # The header is not signed: only printable ASCII, capped, goes into the store and the logs.
    request_id = _REQUEST_ID_JUNK.sub("", h.get(REQUEST_ID_HEADER, ""))[:100] or None
    # Every value is capped (_text), so the payload stays far below MAX_PAYLOAD_BYTES by
    # construction; tests/relay check the worst case instead of paying a json.dumps per webhook.
    payload = build_client_payload(fields, resource=resource, action=action, request_id=request_id)
    return Forward(
        issue_id=issue_id,
        dedup_group=_DEDUP_GROUP[key],
        repo=route.repo,
        event_type=route.event_type,
        client_payload=payload,
        resource=resource,
        action=action,
        request_id=request_id,
        occurred_at=fields.occurred_at,
    )
