"""Rollbar as an error source: items (issues) and their occurrences (events), REST API v1.

Calls: `GET /api/1/items` (pages) to list, `GET /api/1/item/{id}` + `GET /api/1/instance/{last
occurrence id}` for the latest event with frames, `GET/POST /api/1/item/{id}/comments` to read and
leave the state comments poll and the pipeline use. Auth: `X-Rollbar-Access-Token` (a project
access token with the `read` scope; posting comments needs `write`, and Rollbar attributes them to
a user token's owner).

`event_from_rollbar` and `event_from_webhook` are pure (payload → ErrorEvent), so the relay can hand
a Rollbar webhook straight to them: `body.trace` (one exception), `body.trace_chain` (outermost
first, as every Rollbar SDK sends it), `body.message` and `body.crash_report` (parsed as
traceback text when they hold one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import requests

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, InputError, SourceError, SourceNotFound
from sentry_autofix.models import ErrorEvent, ExceptionValue, IssueInfo, RequestInfo, StackFrame
from sentry_autofix.redact import REDACTED, is_secret_header, redact_text
from sentry_autofix.sources import qualified_id, source_of
from sentry_autofix.sources._http import Advice, JsonApi
from sentry_autofix.sources.sentry import SentryComment
from sentry_autofix.sources.traceback_text import MAX_FRAMES, parse_traceback

MAX_PAGES = 10
_STATUS = {"active": "unresolved", "resolved": "resolved", "muted": "ignored", "archived": "ignored"}
_LEVEL = {"critical": "fatal"}
"""Rollbar's levels in Sentry's words (poll's level filter speaks Sentry)."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _arr(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class RollbarSource:
    """Implements `sources.ErrorSource` against the Rollbar API."""

    name = "rollbar"
    org: str | None = None

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.rollbar_access_token is None:
            raise ConfigError(
                "Rollbar needs a token: set ROLLBAR_ACCESS_TOKEN (input rollbar-access-token), a project "
                "access token with the read scope"
            )
        self.s = settings
        self.api = JsonApi(
            settings.rollbar_url.rstrip("/") + "/api/1",
            {"X-Rollbar-Access-Token": settings.rollbar_access_token.get_secret_value()},
            Advice(
                "Rollbar",
                "check ROLLBAR_ACCESS_TOKEN (a project access token with the read scope; write to comment)",
                "check ROLLBAR_URL",
            ),
            timeout=settings.source_timeout,
            session=session,
            sleep=sleep,
        )

    @property
    def calls(self) -> int:
        return self.api.calls

    def _result(self, method: str, path: str, **kwargs: Any) -> Any:
        body = self.api.request(method, path, **kwargs)
        if not isinstance(body, dict) or body.get("err") not in (0, None):
            message = body.get("message") if isinstance(body, dict) else None
            raise SourceError(f"Rollbar API {method} {path.split('?')[0]}: {str(message)[:300]}")
        return body.get("result")

    # --- ErrorSource ---------------------------------------------------------------------------------

    def get_issue(self, issue_id: str) -> IssueInfo:
        return issue_from_item(self._item(issue_id))

    def _item(self, issue_id: str) -> dict[str, Any]:
        native = _native(issue_id)
        item = self._result("GET", f"/item/{native}")
        if not isinstance(item, dict):
            raise SourceNotFound(f"Rollbar has no item {native}: check the id and ROLLBAR_ACCESS_TOKEN's project")
        return item

    def latest_event(self, issue_id: str) -> ErrorEvent:
        item = self._item(issue_id)
        issue = issue_from_item(item)
        occurrence: Any = None
        last = item.get("last_occurrence_id")
        if isinstance(last, int) and not isinstance(last, bool):
            occurrence = self._result("GET", f"/instance/{last}")
        else:
            page = self._result("GET", f"/item/{_native(issue_id)}/instances", params={"page": 1})
            instances = page.get("instances") if isinstance(page, dict) else None
            occurrence = instances[0] if isinstance(instances, list) and instances else None
        if not isinstance(occurrence, dict) or not isinstance(occurrence.get("data"), dict):
            raise SourceNotFound(f"Rollbar item {issue.id} has no occurrence to read")
        event = event_from_rollbar(occurrence["data"])
        event.issue = issue
        event.issue_id = issue.id
        event.short_id = issue.short_id
        event.event_id = str(occurrence.get("id") or event.event_id or "")[:64] or None
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
        """Active items, page by page (`GET /api/1/items?status=active`), most frequent first."""
        params: dict[str, Any] = {"status": "active"}
        environment = self.s.rollbar_environment or (environments[0] if environments else None)
        if environment:
            params["environment"] = environment
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            result = self._result("GET", "/items", params={**params, "page": page})
            batch = result.get("items") if isinstance(result, dict) else None
            if not isinstance(batch, list) or not batch:
                break
            items.extend(i for i in batch if isinstance(i, dict))
            total = result.get("total_count") if isinstance(result, dict) else None
            if len(items) >= limit or (isinstance(total, int) and len(items) >= total):
                break
        if sort in ("date", "new"):
            key = "last_occurrence_timestamp" if sort == "date" else "first_occurrence_timestamp"
            items.sort(key=lambda i: -_num(i.get(key)))
        else:
            items.sort(key=lambda i: (-_num(i.get("total_occurrences")), -_num(i.get("last_occurrence_timestamp"))))
        for item in items[:limit]:
            yield issue_from_item(item)

    def list_comments(self, issue_id: str) -> list[SentryComment]:
        result = self._result("GET", f"/item/{_native(issue_id)}/comments", params={"page": 1, "limit": 100})
        raw = result.get("comments") if isinstance(result, dict) else None
        comments = []
        for c in raw if isinstance(raw, list) else []:
            if not isinstance(c, dict):
                continue
            text = c.get("text") if isinstance(c.get("text"), str) else c.get("comment")
            if not isinstance(text, str):
                continue
            comments.append(
                SentryComment(
                    id=str(c.get("id", "")),
                    text=text[:8000],
                    created=_time(c.get("timestamp") or c.get("date_created")),
                    user=str(c.get("user_id") or "")[:200] or None,
                )
            )
        # Rollbar lists them oldest first; poll reads newest first, as Sentry answers.
        comments.sort(key=lambda c: c.created or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
        return comments

    def add_comment(self, issue_id: str, text: str) -> None:
        self._result("POST", f"/item/{_native(issue_id)}/comments", json={"comment": text[:60000]})


# --- pure conversions (also what a relay route calls with a webhook body) ----------------------------


def _native(issue_id: str) -> str:
    source, native = source_of(issue_id)
    if source not in ("rollbar", "sentry") or not native.isdigit():
        raise SourceNotFound(f"{issue_id} is not a Rollbar item id (rollbar-<item id>)")
    return native


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _str(value: Any, cap: int = 2000) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        return text[:cap] if text else None
    return None


def issue_from_item(item: dict[str, Any]) -> IssueInfo:
    """A Rollbar item (API or webhook `data.item`) → IssueInfo with a `rollbar-<id>` id."""
    native = item.get("id")
    if not isinstance(native, int) or isinstance(native, bool):
        raise InputError("a Rollbar item needs a numeric `id`")
    issue_id = qualified_id("rollbar", str(native))
    level = _str(item.get("level"), 20)
    return IssueInfo(
        id=issue_id,
        short_id=issue_id,
        title=redact_text(_str(item.get("title"), 1000) or ""),
        project=_str(item.get("project_id"), 40),
        level=_LEVEL.get(level or "", level),
        status=_STATUS.get(_str(item.get("status"), 20) or "", "unresolved"),
        platform=_str(item.get("language") or item.get("framework") or item.get("platform"), 50),
        count=int(_num(item.get("total_occurrences"))) if item.get("total_occurrences") is not None else None,
        first_seen=_time(item.get("first_occurrence_timestamp")),
        last_seen=_time(item.get("last_occurrence_timestamp")),
    )


def _frame(raw: Any, platform: str | None) -> StackFrame | None:
    if not isinstance(raw, dict):
        return None
    context = _obj(raw.get("context"))

    def lines(value: Any) -> list[str]:
        return [redact_text(v[:500]) for v in value[-10:] if isinstance(v, str)] if isinstance(value, list) else []

    filename = _str(raw.get("filename"), 500)
    method = _str(raw.get("method"), 300)
    class_name = _str(raw.get("class_name"), 300)
    lineno, colno = raw.get("lineno"), raw.get("colno")
    return StackFrame(
        filename=filename.replace("\\", "/").rsplit("/", 1)[-1] if filename else None,
        abs_path=filename,
        module=class_name,
        function=method,
        lineno=lineno if isinstance(lineno, int) and not isinstance(lineno, bool) else None,
        colno=colno if isinstance(colno, int) and not isinstance(colno, bool) else None,
        platform=platform,
        context_line=redact_text(_str(raw.get("code"), 500) or "") or None,
        pre_context=lines(context.get("pre")),
        post_context=lines(context.get("post")),
    )


def _trace(raw: Any, platform: str | None) -> ExceptionValue | None:
    if not isinstance(raw, dict):
        return None
    exc = _obj(raw.get("exception"))
    frames = _arr(raw.get("frames"))
    return ExceptionValue(
        type=_str(exc.get("class"), 300),
        value=redact_text(_str(exc.get("message")) or "") or _str(exc.get("description")),
        frames=[f for f in (_frame(r, platform) for r in frames[-MAX_FRAMES:]) if f is not None],
    )


def event_from_rollbar(data: dict[str, Any]) -> ErrorEvent:
    """One occurrence's `data` (API instance, webhook `data.occurrence`, or what an SDK posts) → ErrorEvent."""
    if not isinstance(data, dict):
        raise InputError("a Rollbar occurrence must be a JSON object")
    if isinstance(data.get("data"), dict) and "body" not in data:
        data = data["data"]
    body = _obj(data.get("body"))
    language = (_str(data.get("language"), 50) or "").split(" ")[0].lower() or None
    platform = {"javascript": "node" if data.get("platform") == "server" else "javascript"}.get(
        language or "", language
    )
    exceptions: list[ExceptionValue] = []
    if isinstance(body.get("trace_chain"), list):
        # Rollbar SDKs send the outermost exception first; the event wants the root cause first.
        chain = [e for e in (_trace(t, platform) for t in body["trace_chain"][:20]) if e is not None]
        exceptions = list(reversed(chain))
    elif isinstance(body.get("trace"), dict):
        trace = _trace(body["trace"], platform)
        exceptions = [trace] if trace else []
    text = None
    if not exceptions:
        message = body.get("message")
        crash = body.get("crash_report")
        text = _str(message.get("body") if isinstance(message, dict) else None, 200_000) or _str(
            crash.get("raw") if isinstance(crash, dict) else None, 200_000
        )
        if text:
            try:
                parsed = parse_traceback(text, "the Rollbar message")
                exceptions = parsed.exceptions
                platform = platform or parsed.platform
            except InputError:
                exceptions = [ExceptionValue(value=redact_text(text[:2000]))]
    if not exceptions:
        raise InputError("the Rollbar occurrence holds no trace, trace_chain, message or crash_report")
    server = _obj(data.get("server"))
    event = ErrorEvent(
        event_id=_str(data.get("uuid"), 64),
        level=_LEVEL.get(_str(data.get("level"), 20) or "", _str(data.get("level"), 20)),
        platform=platform,
        timestamp=_time(data.get("timestamp")),
        release=_str(data.get("code_version"), 200),
        environment=_str(data.get("environment"), 200),
        server_name=_str(server.get("host"), 200),
        permalink=f"https://rollbar.com/instance/uuid?uuid={data['uuid']}"
        if isinstance(data.get("uuid"), str) and data["uuid"].replace("-", "").isalnum()
        else None,
        tags=[("source", "rollbar")],
        exceptions=exceptions,
        request=_request(data.get("request")),
    )
    event.title = event.headline[:1000]
    return event


def _request(raw: Any) -> RequestInfo | None:
    if not isinstance(raw, dict):
        return None
    headers = []
    raw_headers = _obj(raw.get("headers"))
    for name, value in list(raw_headers.items())[:50]:
        if isinstance(name, str) and isinstance(value, str):
            headers.append((name[:200], REDACTED if is_secret_header(name) else redact_text(value[:500])))
    return RequestInfo(
        method=_str(raw.get("method"), 20),
        url=redact_text(_str(raw.get("url"), 2000) or "") or None,
        headers=headers,
        has_cookies=any(n.lower() == "cookie" for n, _ in headers),
    )


def event_from_webhook(payload: dict[str, Any]) -> ErrorEvent:
    """A Rollbar webhook body (`event_name` + `data.item` / `data.occurrence`) → ErrorEvent with its issue."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise InputError("a Rollbar webhook carries a `data` object")
    occurrence = data.get("occurrence")
    if not isinstance(occurrence, dict):
        raise InputError("this Rollbar webhook carries no occurrence (only new_item/occurrence events do)")
    event = event_from_rollbar(occurrence)
    item = data.get("item")
    if isinstance(item, dict) and isinstance(item.get("id"), int):
        event.issue = issue_from_item(item)
        event.issue_id = event.short_id = event.issue.id
    return event
