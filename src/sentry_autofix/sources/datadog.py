"""Datadog as an error source: Error Tracking issues, their latest error with `error.stack`.

Calls: `POST /api/v2/error-tracking/issues/search?include=issue` (one call lists up to 100 issues
with their attributes), `GET /api/v2/error-tracking/issues/{id}` and one search for the newest log
or span of the issue (`@issue.id:<id>`, `POST /api/v2/logs/events/search` or
`/api/v2/spans/events/search` by SENTRY_AUTOFIX_DATADOG_TRACK) whose `error.stack` is parsed as
traceback text. Without a stack, the issue's own `error_type`/`error_message`/`file_path`/
`function_name` still give a one-frame event. Annotating back: Datadog has no issue comments, so
`add_comment` posts an event to the event stream (`POST /api/v1/events`) tagged with the issue id.

Auth: `DD-API-KEY` and `DD-APPLICATION-KEY` (scopes error_tracking_read, logs_read_data or
apm_read; events_write to annotate); the site (DD_SITE) picks the API host.

`event_from_datadog` is pure (a log/span record, or a monitor webhook body carrying
`error.stack`, → ErrorEvent), for the relay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import requests

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, InputError, SourceNotFound
from sentry_autofix.models import ErrorEvent, ExceptionValue, IssueInfo, StackFrame
from sentry_autofix.redact import redact_text
from sentry_autofix.sources import qualified_id, source_of
from sentry_autofix.sources._http import Advice, JsonApi
from sentry_autofix.sources.sentry import SentryComment
from sentry_autofix.sources.traceback_text import parse_traceback

_PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_STATE = {"OPEN": "unresolved", "ACKNOWLEDGED": "unresolved", "FOR_REVIEW": "unresolved", "REVIEWED": "unresolved"}
LATEST_WINDOW_DAYS = 30
"""How far back the latest occurrence of an issue is searched for."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _arr(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class DatadogSource:
    """Implements `sources.ErrorSource` against Datadog Error Tracking (and logs/spans for stacks)."""

    name = "datadog"
    org: str | None = None

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.datadog_api_key is None or settings.datadog_app_key is None:
            raise ConfigError(
                "Datadog needs two keys: set DD_API_KEY and DD_APP_KEY (inputs datadog-api-key, datadog-app-key)"
            )
        site = settings.datadog_site.strip().removeprefix("https://").removeprefix("app.").strip("/")
        base = settings.datadog_url or f"https://api.{site}"
        self.s = settings
        self._clock = clock
        self.api = JsonApi(
            base,
            {
                "DD-API-KEY": settings.datadog_api_key.get_secret_value(),
                "DD-APPLICATION-KEY": settings.datadog_app_key.get_secret_value(),
                "Content-Type": "application/json",
            },
            Advice(
                "Datadog",
                "check DD_API_KEY and DD_APP_KEY (scopes error_tracking_read, logs_read_data or apm_read; "
                "events_write to annotate) and that DD_SITE is your account's site",
                "check DD_SITE (or SENTRY_AUTOFIX_DATADOG_URL)",
            ),
            timeout=settings.source_timeout,
            session=session,
            sleep=sleep,
        )

    @property
    def calls(self) -> int:
        return self.api.calls

    # --- ErrorSource ---------------------------------------------------------------------------------

    def get_issue(self, issue_id: str) -> IssueInfo:
        native = _native(issue_id)
        body = self.api.request("GET", f"/api/v2/error-tracking/issues/{native}")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise SourceNotFound(f"Datadog has no Error Tracking issue {native}")
        return issue_from_datadog(data)

    def latest_event(self, issue_id: str) -> ErrorEvent:
        issue = self.get_issue(issue_id)
        native = _native(issue_id)
        now_ms = int(self._clock() * 1000)
        query = {
            "query": f"@issue.id:{native}",
            "from": str(now_ms - LATEST_WINDOW_DAYS * 86_400_000),
            "to": str(now_ms),
        }
        if self.s.datadog_track == "trace":
            body = self.api.request(
                "POST",
                "/api/v2/spans/events/search",
                json={
                    "data": {
                        "type": "search_request",
                        "attributes": {"filter": query, "sort": "-timestamp", "page": {"limit": 1}},
                    }
                },
            )
        else:
            body = self.api.request(
                "POST",
                "/api/v2/logs/events/search",
                json={"filter": query, "sort": "-timestamp", "page": {"limit": 1}},
            )
        records = body.get("data") if isinstance(body, dict) else None
        event: ErrorEvent | None = None
        if isinstance(records, list) and records and isinstance(records[0], dict):
            try:
                event = event_from_datadog(records[0])
            except InputError:
                event = None
        if event is None:
            event = _event_from_issue(issue)
        event.issue = issue
        event.issue_id = issue.id
        event.short_id = issue.short_id
        event.permalink = event.permalink or issue.permalink
        return event

    def list_issues(
        self,
        project: str | None = None,
        query: str = "is:unresolved",
        limit: int = 100,
        stats_period: str | None = None,
        *,
        projects: Sequence[str] = (),
        environments: Sequence[str] = (),
        sort: str | None = None,
    ) -> Iterator[IssueInfo]:
        """One search over poll's period (`projects` → `service:`, `environments` → `env:`)."""
        now_ms = int(self._clock() * 1000)
        terms = [self.s.datadog_query.strip()] if self.s.datadog_query.strip() else []
        services = list(projects) or ([project] if project else [])
        if services:
            terms.append("(" + " OR ".join(f"service:{s}" for s in services) + ")")
        if environments:
            terms.append("(" + " OR ".join(f"env:{e}" for e in environments) + ")")
        attributes: dict[str, Any] = {
            "query": " ".join(terms) or "*",
            "from": now_ms - _period_ms(stats_period or "24h"),
            "to": now_ms,
            "track": self.s.datadog_track,
        }
        # The API orders by TOTAL_COUNT, FIRST_SEEN, IMPACTED_SESSIONS or PRIORITY (no last-seen order).
        attributes["order_by"] = "FIRST_SEEN" if sort == "new" else "TOTAL_COUNT"
        body = self.api.request(
            "POST",
            "/api/v2/error-tracking/issues/search",
            params={"include": "issue"},
            json={"data": {"type": "search_request", "attributes": attributes}},
        )
        results = body.get("data") if isinstance(body, dict) else None
        included = {
            str(i.get("id")): i
            for i in (body.get("included") or [] if isinstance(body, dict) else [])
            if isinstance(i, dict) and i.get("type") == "issue"
        }
        for n, result in enumerate(results if isinstance(results, list) else []):
            if n >= limit or not isinstance(result, dict):
                return
            rel = ((result.get("relationships") or {}).get("issue") or {}).get("data") or {}
            issue_id = str(rel.get("id") or result.get("id") or "")
            if not issue_id:
                continue
            issue_obj = included.get(issue_id) or {"id": issue_id, "type": "issue", "attributes": {}}
            info = issue_from_datadog(issue_obj)
            total = (result.get("attributes") or {}).get("total_count")
            if isinstance(total, int) and not isinstance(total, bool):
                info.count = total
            yield info

    def list_comments(self, issue_id: str) -> list[SentryComment]:
        """Error Tracking keeps no comments: poll's claims and retry counts rely on GitHub alone."""
        return []

    def add_comment(self, issue_id: str, text: str) -> None:
        """Annotate: an event in the Datadog event stream, tagged with the issue id."""
        native = _native(issue_id)
        self.api.request(
            "POST",
            "/api/v1/events",
            json={
                "title": f"sentry-autofix: Error Tracking issue {native}",
                "text": text[:3900],
                "tags": [f"error_tracking_issue:{native}", "source:sentry-autofix"],
                "alert_type": "info",
                "aggregation_key": f"sentry-autofix-{native}"[:100],
            },
        )


# --- pure conversions --------------------------------------------------------------------------------


def _native(issue_id: str) -> str:
    source, native = source_of(issue_id)
    if source != "datadog" or not native.replace("-", "").isalnum():
        raise SourceNotFound(f"{issue_id} is not a Datadog issue id (datadog-<issue uuid>)")
    return native


def _period_ms(period: str) -> int:
    unit = period[-1:]
    number = period[:-1]
    if unit in _PERIOD_UNITS and number.isdigit():
        return int(number) * _PERIOD_UNITS[unit] * 1000
    return 86_400_000


def _time_ms(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _s(value: Any, cap: int = 1000) -> str | None:
    return value[:cap] if isinstance(value, str) and value else None


def issue_from_datadog(obj: dict[str, Any]) -> IssueInfo:
    """An Error Tracking `issue` resource (`{id, type, attributes}`) → IssueInfo (`datadog-<uuid>`)."""
    native = str(obj.get("id") or "")
    if not native or not native.replace("-", "").isalnum():
        raise InputError("a Datadog Error Tracking issue needs an `id`")
    attrs = _obj(obj.get("attributes"))
    issue_id = qualified_id("datadog", native)
    kind, message = _s(attrs.get("error_type"), 300), _s(attrs.get("error_message"))
    title = f"{kind}: {message}" if kind and message else (kind or message)
    file_path, function = _s(attrs.get("file_path"), 500), _s(attrs.get("function_name"), 300)
    languages = _arr(attrs.get("languages"))
    state = _s(attrs.get("state"), 40) or ""
    return IssueInfo(
        id=issue_id,
        short_id=issue_id,
        title=redact_text(title) if title else None,
        culprit=f"{file_path} in {function}" if file_path and function else (file_path or function),
        project=_s(attrs.get("service"), 200),
        level="error",
        status=_STATE.get(state, "resolved" if state in ("RESOLVED", "IGNORED", "EXCLUDED") else "unresolved"),
        platform=(str(languages[0]).lower() if languages else None) or _s(attrs.get("platform"), 50),
        first_seen=_time_ms(attrs.get("first_seen")),
        last_seen=_time_ms(attrs.get("last_seen")),
    )


def _error_fields(record: dict[str, Any]) -> dict[str, Any] | None:
    """`error` ({stack, kind|type, message}) wherever Datadog put it: a log's `attributes.attributes`,
    a span's `attributes.custom`, dotted keys, or a webhook body's top level."""
    candidates: list[Any] = [record]
    attrs = record.get("attributes")
    if isinstance(attrs, dict):
        candidates += [attrs, attrs.get("attributes"), attrs.get("custom")]
    for c in candidates:
        if not isinstance(c, dict):
            continue
        error = c.get("error")
        if isinstance(error, dict) and (error.get("stack") or error.get("message")):
            return error
        if c.get("error.stack") or c.get("error.message"):
            return {k.split(".", 1)[1]: v for k, v in c.items() if isinstance(k, str) and k.startswith("error.")}
    return None


def event_from_datadog(record: dict[str, Any]) -> ErrorEvent:
    """A log or span record (search API `data[]` item, or a webhook body with `error.*`) → ErrorEvent."""
    if not isinstance(record, dict):
        raise InputError("a Datadog record must be a JSON object")
    error = _error_fields(record)
    if error is None:
        raise InputError("the Datadog record carries no `error.stack` or `error.message`")
    stack = _s(error.get("stack"), 2_000_000)
    kind = _s(error.get("kind") or error.get("type"), 300)
    message = _s(error.get("message"), 4000)
    event: ErrorEvent | None = None
    if stack:
        try:
            event = parse_traceback(stack, "the Datadog error.stack")
        except InputError:
            event = None
    if event is None:
        event = ErrorEvent(exceptions=[ExceptionValue(type=kind, value=redact_text(message) if message else None)])
    crash = event.crashing_exception
    if crash is not None and not crash.type and kind:
        crash.type = kind
    attrs = _obj(record.get("attributes"))
    tags = _arr(attrs.get("tags"))
    env = next((t.split(":", 1)[1] for t in tags if isinstance(t, str) and t.startswith("env:")), None)
    version = next((t.split(":", 1)[1] for t in tags if isinstance(t, str) and t.startswith("version:")), None)
    event.event_id = _s(record.get("id"), 64) or event.event_id
    event.timestamp = _time_ms(attrs.get("timestamp") or attrs.get("start_timestamp"))
    event.environment = env[:200] if env else event.environment
    event.release = version[:200] if version else event.release
    event.server_name = _s(attrs.get("host"), 200)
    event.tags = [*event.tags, ("source", "datadog")] + (
        [("service", attrs["service"][:200])] if _s(attrs.get("service")) else []
    )
    event.title = event.headline[:1000]
    return event


def _event_from_issue(issue: IssueInfo) -> ErrorEvent:
    """No record with a stack: the issue's own error type, message and top frame still say where."""
    kind, _, message = (issue.title or "").partition(": ")
    frames = []
    if issue.culprit:
        path, _, function = issue.culprit.partition(" in ")
        frames.append(StackFrame(abs_path=path or None, function=function or None))
    event = ErrorEvent(
        platform=issue.platform,
        exceptions=[ExceptionValue(type=kind or None, value=message or None, frames=frames)],
        tags=[("source", "datadog")],
    )
    event.title = event.headline[:1000]
    return event
