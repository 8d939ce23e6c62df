"""Parse every shape Sentry produces into one ErrorEvent.

Shapes handled (SPEC §10; see shared/fixtures/sentry/PROVENANCE.md):
* REST API event: camelCase, `entries[]` of {type, data}, frames with `absPath`/`lineNo`/`inApp` and
  `context: [[lineno, line], …]`, tags as `{key, value}` objects.
* Ingestion / webhook event: snake_case, top-level `exception.values[]`, `pre_context`/`context_line`.
* Legacy SDK shapes: `sentry.interfaces.*` keys, `exception`/`breadcrumbs` as bare lists, tags and
  headers as dicts, ISO timestamps.
* Whole webhook bodies (`event_alert`, `error`, `issue`, …) and API issue objects.

Sentry data is attacker-controlled: nothing here trusts a type, every string is capped, cleaned
(`neutral.clean`: no terminal escapes, control or bidi characters, no lone surrogate — valid JSON
`"\ud800"` would crash any later print or UTF-8 encode) and redacted, and a malformed document
becomes an InputError with one readable line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sentry_autofix.errors import InputError
from sentry_autofix.models import (
    Breadcrumb,
    ErrorEvent,
    ExceptionValue,
    IssueInfo,
    Mechanism,
    RequestInfo,
    StackFrame,
)
from sentry_autofix.neutral import clean
from sentry_autofix.redact import REDACTED, is_secret_header, redact_text

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_TEXT = 4000
MAX_LINE = 500
MAX_CONTEXT_LINES = 10
MAX_FRAMES = 250
MAX_EXCEPTIONS = 20
MAX_BREADCRUMBS = 100
MAX_TAGS = 100
MAX_HEADERS = 50


# --- small, type-distrusting accessors -------------------------------------------------------


def _get(d: Any, *keys: str) -> Any:
    if not isinstance(d, dict):
        return None
    for key in keys:
        if key in d and d[key] is not None:
            return d[key]
    return None


def _str(value: Any, cap: int = MAX_TEXT) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = value if isinstance(value, str) else str(value)
    return clean(text[:cap]) + ("…" if len(text) > cap else "")


def _text(value: Any, cap: int = MAX_TEXT) -> str | None:
    text = _str(value, cap)
    return redact_text(text) if text else text


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _time(value: Any) -> datetime | None:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        if isinstance(value, str) and value:
            text = value.strip().replace("Z", "+00:00")
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _values(container: Any) -> list[Any]:
    """`{"values": [...]}`, a bare list, or a single object: always a list."""
    if isinstance(container, list):
        return container
    if isinstance(container, dict):
        values = container.get("values")
        if isinstance(values, list):
            return values
        if values is None and ("type" in container or "value" in container or "stacktrace" in container):
            return [container]
    return []


def _pairs(value: Any, cap: int) -> list[tuple[str, str]]:
    """Tags/headers as `[[k, v]]`, `[{key, value}]` or `{k: v}` → list of string pairs."""
    out: list[tuple[str, str]] = []
    items: Iterable[Any]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = value
    else:
        return out
    for item in items:
        if isinstance(item, dict):
            k, v = item.get("key"), item.get("value")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            k, v = item
        else:
            continue
        ks, vs = _str(k, 200), _str(v, MAX_LINE)
        if ks is None or vs is None:
            continue
        out.append((ks, vs))
        if len(out) >= cap:
            break
    return out


# --- pieces ----------------------------------------------------------------------------------


def _frame(raw: Any) -> StackFrame | None:
    if not isinstance(raw, dict):
        return None
    pre = _get(raw, "pre_context")
    ctx_line = _get(raw, "context_line")
    post = _get(raw, "post_context")
    lineno = _int(_get(raw, "lineno", "lineNo"))
    context = _get(raw, "context")
    if ctx_line is None and isinstance(context, list) and lineno is not None:
        # REST shape: [[lineno, line], ...] around the frame's line.
        pre, post = [], []
        for pair in context:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                continue
            n, line = _int(pair[0]), _str(pair[1], MAX_LINE)
            if n is None or line is None:
                continue
            if n < lineno:
                pre.append(line)
            elif n == lineno:
                ctx_line = line
            else:
                post.append(line)

    def lines(value: Any) -> list[str]:
        if not isinstance(value, list):
            return []
        return [s for s in (_str(v, MAX_LINE) for v in value) if s is not None]

    return StackFrame(
        filename=_str(_get(raw, "filename"), MAX_LINE),
        abs_path=_str(_get(raw, "abs_path", "absPath"), MAX_LINE),
        module=_str(_get(raw, "module"), MAX_LINE),
        package=_str(_get(raw, "package"), MAX_LINE),
        function=_str(_get(raw, "function"), MAX_LINE),
        lineno=lineno,
        colno=_int(_get(raw, "colno", "colNo")),
        in_app=_bool(_get(raw, "in_app", "inApp")),
        platform=_str(_get(raw, "platform"), 50),
        pre_context=[redact_text(s) for s in lines(pre)[-MAX_CONTEXT_LINES:]],
        context_line=_text(ctx_line, MAX_LINE),
        post_context=[redact_text(s) for s in lines(post)[:MAX_CONTEXT_LINES]],
    )


def _frames(stacktrace: Any) -> list[StackFrame]:
    raw = _get(stacktrace, "frames")
    if not isinstance(raw, list):
        return []
    return [f for f in (_frame(r) for r in raw[-MAX_FRAMES:]) if f is not None]


def _mechanism(raw: Any) -> Mechanism | None:
    if not isinstance(raw, dict):
        return None
    return Mechanism(
        type=_str(raw.get("type"), 100),
        handled=_bool(raw.get("handled")),
        exception_id=_int(raw.get("exception_id")),
        parent_id=_int(raw.get("parent_id")),
        source=_str(raw.get("source"), 200),
    )


def _exception(raw: Any) -> ExceptionValue | None:
    if not isinstance(raw, dict):
        return None
    stacktrace = _get(raw, "stacktrace", "rawStacktrace", "raw_stacktrace")
    return ExceptionValue(
        type=_text(_get(raw, "type"), 300),
        value=_text(_get(raw, "value")),
        module=_str(_get(raw, "module"), 300),
        mechanism=_mechanism(_get(raw, "mechanism")),
        frames=_frames(stacktrace),
    )


def _breadcrumb(raw: Any) -> Breadcrumb | None:
    if not isinstance(raw, dict):
        return None
    ts = raw.get("timestamp")
    when = _time(ts)
    data: dict[str, str] = {}
    raw_data = raw.get("data")
    if isinstance(raw_data, dict):
        for k, v in list(raw_data.items())[:20]:
            key = _str(k, 100) or ""
            if is_secret_header(key):
                data[key] = REDACTED
                continue
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            data[key] = redact_text(clean(text[:MAX_LINE]))
    return Breadcrumb(
        timestamp=when.isoformat() if when else _str(ts, 60),
        type=_str(raw.get("type"), 50),
        category=_str(raw.get("category"), 100),
        level=_str(raw.get("level"), 20),
        message=_text(raw.get("message"), 1000),
        data=data,
    )


def _request(raw: Any) -> RequestInfo | None:
    if not isinstance(raw, dict):
        return None
    headers = []
    for name, value in _pairs(raw.get("headers"), MAX_HEADERS):
        headers.append((name, REDACTED if is_secret_header(name) else redact_text(value)))
    query = raw.get("query_string", raw.get("query"))
    if isinstance(query, list):
        query = "&".join(f"{k}={v}" for k, v in _pairs(query, 50))
    elif isinstance(query, dict):
        query = "&".join(f"{k}={v}" for k, v in _pairs(query, 50))
    cookies = raw.get("cookies")
    has_cookies = bool(cookies) or any(n.lower() == "cookie" for n, _ in headers)
    return RequestInfo(
        method=_str(raw.get("method"), 20),
        url=_text(raw.get("url"), 2000),
        query_string=_text(query, 2000),
        headers=headers,
        has_cookies=has_cookies,
    )


def _entries(raw: dict[str, Any]) -> dict[str, Any]:
    """REST `entries[]` → {type: data} (first of each type)."""
    out: dict[str, Any] = {}
    entries = raw.get("entries")
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                out.setdefault(entry["type"], entry.get("data"))
    return out


def _message(raw: dict[str, Any], entries: dict[str, Any]) -> str | None:
    for candidate in (
        _get(raw.get("logentry"), "formatted", "message"),
        _get(raw.get("sentry.interfaces.Message"), "formatted", "message"),
        _get(entries.get("message"), "formatted", "message"),
        raw.get("message") if isinstance(raw.get("message"), str) else None,
        _get(raw.get("message"), "formatted", "message"),
    ):
        text = _text(candidate)
        if text:
            return text
    return None


def _thread_stack_fallback(raw: dict[str, Any], entries: dict[str, Any]) -> list[StackFrame]:
    """Events without an exception stack (ANRs, captured messages) may carry the crashed thread's."""
    threads = _values(raw.get("threads")) or _values(entries.get("threads"))
    ordered = sorted(
        (t for t in threads if isinstance(t, dict)),
        key=lambda t: not (t.get("crashed") or t.get("current")),
    )
    for thread in ordered:
        frames = _frames(thread.get("stacktrace"))
        if frames:
            return frames
    return _frames(raw.get("stacktrace") or raw.get("sentry.interfaces.Stacktrace") or entries.get("stacktrace"))


def parse_event(raw: Any) -> ErrorEvent:
    """One Sentry event (any generation of its shape) → ErrorEvent."""
    if not isinstance(raw, dict):
        raise InputError(f"expected a JSON object for a Sentry event, got {type(raw).__name__}")
    entries = _entries(raw)

    exc_container = raw.get("exception")
    if exc_container is None:
        exc_container = raw.get("sentry.interfaces.Exception")
    if exc_container is None:
        exc_container = entries.get("exception")
    raw_excs = _values(exc_container)
    if len(raw_excs) > MAX_EXCEPTIONS:
        # Keep both ends of a long chain: the root cause and the exception that surfaced.
        half = MAX_EXCEPTIONS // 2
        raw_excs = raw_excs[:half] + raw_excs[-half:]
    exceptions = [e for e in (_exception(r) for r in raw_excs) if e is not None]

    message = _message(raw, entries)
    if exceptions and not any(e.frames for e in exceptions):
        frames = _thread_stack_fallback(raw, entries)
        if frames:
            exceptions[-1].frames = frames
    elif not exceptions:
        frames = _thread_stack_fallback(raw, entries)
        if frames or message:
            exceptions = [ExceptionValue(type=None, value=message, frames=frames)]

    crumbs_container = raw.get("breadcrumbs")
    if crumbs_container is None:
        crumbs_container = raw.get("sentry.interfaces.Breadcrumbs")
    if crumbs_container is None:
        crumbs_container = entries.get("breadcrumbs")
    breadcrumbs = [b for b in (_breadcrumb(r) for r in _values(crumbs_container)[-MAX_BREADCRUMBS:]) if b]

    req = raw.get("request") or raw.get("sentry.interfaces.Http") or entries.get("request")
    tags = _pairs(raw.get("tags"), MAX_TAGS)
    tag = dict(tags)

    release = raw.get("release")
    if isinstance(release, dict):
        release = release.get("version") or release.get("shortVersion")

    issue_id = _str(_get(raw, "issue_id", "groupID", "group_id"), 40)
    event = ErrorEvent(
        event_id=_str(_get(raw, "event_id", "eventID", "id"), 64),
        issue_id=issue_id,
        title=_text(raw.get("title"), 1000),
        message=message,
        level=_str(raw.get("level"), 20) or tag.get("level"),
        platform=_str(raw.get("platform"), 50),
        timestamp=_time(_get(raw, "timestamp", "dateCreated", "datetime", "received")),
        release=_str(release, 200) or tag.get("release") or tag.get("sentry:release"),
        environment=_str(raw.get("environment"), 200) or tag.get("environment"),
        transaction=_text(raw.get("transaction"), 500) or tag.get("transaction"),
        culprit=_text(raw.get("culprit"), 500),
        server_name=_str(raw.get("server_name"), 200) or tag.get("server_name"),
        permalink=_str(_get(raw, "web_url", "permalink"), 2000),
        tags=[(k, redact_text(v)) for k, v in tags],
        exceptions=exceptions,
        breadcrumbs=breadcrumbs,
        request=_request(req),
    )
    if not event.exceptions and not event.message and not event.title:
        raise InputError("the JSON parsed, but it holds no error: no exception, stack trace or message found")
    return event


def parse_issue(raw: Any) -> IssueInfo:
    """A Sentry issue (API object or `data.issue` of an issue webhook) → IssueInfo."""
    if not isinstance(raw, dict) or _str(raw.get("id"), 40) is None:
        raise InputError("expected a Sentry issue object with an `id`")
    project = raw.get("project")
    project_slug = _str(_get(project, "slug"), 200) if isinstance(project, dict) else _str(project, 200)
    project_id = _str(_get(project, "id"), 40) if isinstance(project, dict) else None
    return IssueInfo(
        id=_str(raw.get("id"), 40) or "",
        short_id=_str(_get(raw, "shortId", "short_id"), 100),
        title=_text(raw.get("title"), 1000),
        culprit=_text(raw.get("culprit"), 500),
        permalink=_str(_get(raw, "permalink", "web_url"), 2000),
        project=project_slug,
        project_id=project_id,
        level=_str(raw.get("level"), 20),
        status=_str(raw.get("status"), 40),
        substatus=_str(raw.get("substatus"), 40),
        priority=_str(raw.get("priority"), 20),
        platform=_str(raw.get("platform"), 50),
        count=_int(raw.get("count")),
        user_count=_int(_get(raw, "userCount", "user_count")),
        first_seen=_time(_get(raw, "firstSeen", "first_seen")),
        last_seen=_time(_get(raw, "lastSeen", "last_seen")),
    )


# --- whole documents -------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """What a JSON document turned out to be."""

    kind: str
    """`event`, `issue`, or the webhook resource name (`metric_alert`, `installation`, …)."""
    event: ErrorEvent | None = None
    issue: IssueInfo | None = None
    action: str | None = None


def _is_webhook(raw: dict[str, Any]) -> bool:
    return isinstance(raw.get("data"), dict) and "action" in raw and ("installation" in raw or "actor" in raw)


def _webhook_resource(data: dict[str, Any]) -> str:
    if "event" in data:
        return "event_alert"
    if "error" in data:
        return "error"
    if "activity" in data and "issue" in data:
        return "activity_alert"
    if "issue" in data:
        return "issue"
    if "metric_alert" in data:
        return "metric_alert"
    if "comment_id" in data or "comment" in data:
        return "comment"
    if "installation" in data or "app" in data:
        return "installation"
    if "run_id" in data or "group_id" in data:
        return "seer"
    if "buildId" in data:
        return "preprod_artifact"
    return "unknown"


def classify(raw: Any) -> Document:
    """Recognise a Sentry JSON document and parse what it holds."""
    if isinstance(raw, list):
        objects = [item for item in raw if isinstance(item, dict)]
        if objects and all("shortId" in item for item in objects):
            return Document(kind="issue_list")
        if objects and all("eventID" in item or "event_id" in item for item in objects):
            return Document(kind="event_list")
        raise InputError("the JSON is a list; give one event, one issue or one webhook body")
    if not isinstance(raw, dict):
        raise InputError(f"expected a JSON object, got {type(raw).__name__}")
    if _is_webhook(raw):
        data = raw["data"]
        resource = _webhook_resource(data)
        action = _str(raw.get("action"), 50)
        if resource in ("event_alert", "error"):
            event = parse_event(data["event" if resource == "event_alert" else "error"])
            return Document(kind=resource, event=event, action=action)
        if resource in ("issue", "activity_alert"):
            return Document(kind=resource, issue=parse_issue(data["issue"]), action=action)
        return Document(kind=resource, action=action)
    if "Sentry-Hook-Resource" in raw or "Sentry-Hook-Signature" in raw:
        return Document(kind="webhook_headers")
    is_issue = "shortId" in raw and "entries" not in raw and "permalink" in raw
    if is_issue:
        return Document(kind="issue", issue=parse_issue(raw))
    return Document(kind="event", event=parse_event(raw))


def load_json_bytes(data: bytes, origin: str) -> Any:
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{origin} is {len(data) / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{origin} is not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise InputError(f"{origin} is nested too deeply to be a Sentry event") from exc


def load_document(path: Path | str) -> Document:
    """Read `--event-file` (a path, or '-' for stdin) into a Document."""
    origin = "stdin" if str(path) == "-" else str(path)
    try:
        if str(path) == "-":
            import sys

            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise InputError(f"event file not found: {origin}") from exc
    except IsADirectoryError as exc:
        raise InputError(f"event file is a directory: {origin}") from exc
    except OSError as exc:
        raise InputError(f"cannot read event file {origin}: {exc.strerror}") from exc
    return classify(load_json_bytes(data, origin))


def load_event_file(path: Path | str) -> ErrorEvent:
    """An event file that must hold an error event (not just an issue)."""
    doc = load_document(path)
    if doc.event is None:
        if doc.issue is not None:
            raise InputError(
                f"{path} describes Sentry issue {doc.issue.id} but holds no event (no stack trace); "
                f"use --issue {doc.issue.id} with SENTRY_AUTH_TOKEN and SENTRY_ORG set"
            )
        what = {
            "issue_list": "an API listing of issues",
            "event_list": "an API listing of events (summaries without stack traces)",
            "webhook_headers": "a set of webhook headers",
        }.get(doc.kind, f"a `{doc.kind}` webhook")
        raise InputError(f"{path} is {what}, which carries no error event")
    return doc.event
