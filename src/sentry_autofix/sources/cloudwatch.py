"""CloudWatch Logs as an error source (boto3, the `aws` extra): tracebacks found in log groups.

A scan (one per process, cached) reads the configured log groups over the last
SENTRY_AUTOFIX_CLOUDWATCH_WINDOW minutes:

1. `FilterLogEvents` with the filter pattern (`?Traceback ?Exception …`), following `nextToken`,
   finds the lines that start or name an error;
2. per log stream, matches closer than a few seconds form one burst; when the matched events hold
   whole tracebacks (Lambda, or a multiline-aware shipper) they are parsed as they are, otherwise
   one more `FilterLogEvents` on that stream reads the lines around the burst (a container that
   logs one line per event), and the tracebacks are assembled from those;
3. tracebacks are parsed (sources/traceback_text.py), fingerprinted (language, exception types,
   innermost frames' files and functions — no line numbers or messages) and grouped: one group is
   one "issue", `cloudwatch-<fingerprint>`, stable across runs, so poll and the GitHub markers
   dedup it like a Sentry issue.

Credentials, region and role come from the standard AWS chain (env keys, AWS_PROFILE, web identity
/ GitHub OIDC via aws-actions/configure-aws-credentials); SENTRY_AUTOFIX_CLOUDWATCH_REGION and
_PROFILE override. The only IAM action used is `logs:FilterLogEvents`. CloudWatch has no comments:
`add_comment` does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceError, SourceNotFound
from sentry_autofix.models import ErrorEvent, IssueInfo
from sentry_autofix.sources import qualified_id, source_of
from sentry_autofix.sources.traceback_text import MAX_BYTES, fingerprint, might_be_trace, parse_all

log = logging.getLogger(__name__)

BURST_GAP_MS = 5_000
"""Matches of one stream closer than this belong to one burst (one traceback logged line by line)."""
CONTEXT_BEFORE_MS = 2_000
CONTEXT_AFTER_MS = 5_000
PAGE_LIMIT = 10_000
"""FilterLogEvents' own maximum events per page."""
MAX_GROUP_EVENTS = 50_000
"""Matching events kept per log group per scan, whatever the pages say."""


@dataclass
class _Hit:
    group: str
    stream: str
    timestamp: int
    message: str


@dataclass
class ErrorGroup:
    """Identical errors (one fingerprint) seen in the window."""

    id: str
    event: ErrorEvent
    """The latest occurrence."""
    log_group: str
    stream: str
    count: int = 0
    first_seen: int = 0
    last_seen: int = 0
    streams: set[str] = field(default_factory=set)


class CloudWatchSource:
    """Implements `sources.ErrorSource` over CloudWatch Logs."""

    name = "cloudwatch"
    org: str | None = None

    def __init__(
        self,
        settings: Settings,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s = settings
        self._clock = clock
        self.client = client if client is not None else _make_client(settings)
        self.calls = 0
        self._groups: dict[str, ErrorGroup] | None = None
        self._scanned: tuple[str, ...] = ()

    # --- AWS ---------------------------------------------------------------------------------------

    def _filter(self, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        self.calls += 1
        try:
            response: dict[str, Any] = self.client.filter_log_events(**params)
        except NoCredentialsError as exc:
            raise ConfigError(
                "no AWS credentials for CloudWatch Logs: set AWS_PROFILE (or SENTRY_AUTOFIX_CLOUDWATCH_PROFILE), "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use aws-actions/configure-aws-credentials"
            ) from exc
        except NoRegionError as exc:
            raise ConfigError(
                "no AWS region for CloudWatch Logs: set AWS_REGION or SENTRY_AUTOFIX_CLOUDWATCH_REGION"
            ) from exc
        except ClientError as exc:
            raise _client_error(exc, params.get("logGroupIdentifier") or params.get("logGroupName")) from exc
        except BotoCoreError as exc:
            raise SourceError(f"CloudWatch Logs request failed: {exc}") from exc
        return response

    def _group_param(self, group: str) -> dict[str, str]:
        # FilterLogEvents takes a name as logGroupName, an ARN only as logGroupIdentifier.
        return {"logGroupIdentifier": group} if group.startswith("arn:") else {"logGroupName": group}

    def _matches(self, group: str, start_ms: int, end_ms: int) -> list[_Hit]:
        params: dict[str, Any] = {
            **self._group_param(group),
            "startTime": start_ms,
            "endTime": end_ms,
            "filterPattern": self.s.cloudwatch_filter_pattern,
            "limit": PAGE_LIMIT,
        }
        hits: list[_Hit] = []
        for _page in range(self.s.cloudwatch_max_pages):
            response = self._filter(**params)
            for raw in response.get("events") or []:
                hit = _hit(group, raw)
                if hit is not None and len(hits) < MAX_GROUP_EVENTS:
                    hits.append(hit)
            token = response.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        else:
            log.warning(
                "CloudWatch: %s has more matches than %d pages; raise SENTRY_AUTOFIX_CLOUDWATCH_MAX_PAGES",
                group,
                self.s.cloudwatch_max_pages,
            )
        return hits

    def _context(self, group: str, stream: str, start_ms: int, end_ms: int) -> list[str]:
        """Every line of one stream around a burst (no filter pattern): the traceback's other lines."""
        params: dict[str, Any] = {
            **self._group_param(group),
            "logStreamNames": [stream],
            "startTime": max(0, start_ms - CONTEXT_BEFORE_MS),
            "endTime": end_ms + CONTEXT_AFTER_MS,
            "limit": PAGE_LIMIT,
        }
        messages: list[str] = []
        size = 0
        for _page in range(3):
            response = self._filter(**params)
            for raw in response.get("events") or []:
                message = raw.get("message") if isinstance(raw, dict) else None
                if isinstance(message, str):
                    size += len(message)
                    if size > MAX_BYTES:
                        return messages
                    messages.append(message.rstrip("\n"))
            token = response.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        return messages

    # --- the scan ------------------------------------------------------------------------------------

    def scan(self, log_groups: Sequence[str] = ()) -> dict[str, ErrorGroup]:
        """Tracebacks in the window, grouped by fingerprint (cached for this process)."""
        groups_to_scan = tuple(log_groups) or tuple(self.s.cloudwatch_log_groups)
        if not groups_to_scan:
            raise ConfigError("CloudWatch needs log groups: set SENTRY_AUTOFIX_CLOUDWATCH_LOG_GROUPS (names or ARNs)")
        if self._groups is not None and self._scanned == groups_to_scan:
            return self._groups
        end_ms = int(self._clock() * 1000)
        start_ms = end_ms - self.s.cloudwatch_window_minutes * 60_000
        found: dict[str, ErrorGroup] = {}
        budget = self.s.cloudwatch_context_fetches
        for group in groups_to_scan:
            by_stream: dict[str, list[_Hit]] = {}
            for hit in self._matches(group, start_ms, end_ms):
                by_stream.setdefault(hit.stream, []).append(hit)
            for stream, hits in by_stream.items():
                for burst in _bursts(sorted(hits, key=lambda h: h.timestamp)):
                    # A burst can be thousands of matches: the newest MAX_BYTES of it are parsed.
                    text = "\n".join(h.message.rstrip("\n") for h in burst)[-MAX_BYTES:]
                    events = parse_all(text)
                    # Single-line events are a container's stderr line by line: the traceback's other
                    # lines were not matched, so read them; multi-line events hold whole tracebacks.
                    multiline = any("\n" in h.message.strip() for h in burst)
                    complete = multiline and events and all(any(e.frames for e in ev.exceptions) for ev in events)
                    if not complete and budget > 0 and any(might_be_trace(h.message) for h in burst):
                        budget -= 1
                        lines = self._context(group, stream, burst[0].timestamp, burst[-1].timestamp)
                        events = parse_all("\n".join(lines)) or events
                    for event in events:
                        _add(found, event, group, stream, burst[-1].timestamp)
        self._groups, self._scanned = found, groups_to_scan
        return found

    def _group(self, issue_id: str) -> ErrorGroup:
        source, native = source_of(issue_id)
        if source != self.name:
            raise SourceNotFound(f"{issue_id} is not a CloudWatch issue id (cloudwatch-<fingerprint>)")
        for group in self.scan().values():
            if group.id == issue_id or group.id == qualified_id(self.name, native):
                return group
        raise SourceNotFound(
            f"no occurrence of {issue_id} in the last {self.s.cloudwatch_window_minutes} minutes of "
            f"{', '.join(self.s.cloudwatch_log_groups)}: raise SENTRY_AUTOFIX_CLOUDWATCH_WINDOW"
        )

    # --- ErrorSource ---------------------------------------------------------------------------------

    def get_issue(self, issue_id: str) -> IssueInfo:
        return self._issue(self._group(issue_id))

    def latest_event(self, issue_id: str) -> ErrorEvent:
        group = self._group(issue_id)
        event = group.event.model_copy(deep=True)
        event.issue = self._issue(group)
        event.issue_id = group.id
        event.short_id = group.id
        event.permalink = event.issue.permalink
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
        """Groups of the window, most frequent first (`date`: most recent first); `projects` (poll's
        `--project`) are log groups overriding SENTRY_AUTOFIX_CLOUDWATCH_LOG_GROUPS."""
        groups = list(self.scan(tuple(projects) or ((project,) if project else ())).values())
        if sort in ("date", "new"):
            groups.sort(key=lambda g: -(g.last_seen if sort == "date" else g.first_seen))
        else:
            groups.sort(key=lambda g: (-g.count, -g.last_seen))
        for group in groups[:limit]:
            yield self._issue(group)

    def list_comments(self, issue_id: str) -> list[Any]:
        """CloudWatch keeps no comments: poll's claims and retry counts rely on GitHub alone."""
        return []

    def add_comment(self, issue_id: str, text: str) -> None:
        log.info("CloudWatch Logs has no comments; not annotating %s", issue_id)

    # --- shapes --------------------------------------------------------------------------------------

    def _issue(self, group: ErrorGroup) -> IssueInfo:
        event = group.event
        crash = event.crashing_exception
        frame = next((f for f in reversed(crash.frames) if f.in_app is not False), None) if crash else None
        culprit = None
        if frame is not None:
            culprit = f"{frame.abs_path or frame.filename or frame.module} in {frame.function or '?'}"
        return IssueInfo(
            id=group.id,
            short_id=group.id,
            title=event.headline[:1000],
            culprit=culprit,
            permalink=self._permalink(group),
            project=group.log_group,
            level="error",
            status="unresolved",
            platform=event.platform,
            count=group.count,
            first_seen=_when(group.first_seen),
            last_seen=_when(group.last_seen),
        )

    def _permalink(self, group: ErrorGroup) -> str | None:
        region = self.s.cloudwatch_region or getattr(getattr(self.client, "meta", None), "region_name", None)
        if not isinstance(region, str) or not region.replace("-", "").isalnum():
            return None

        # The console's fragment encodes `/` of names as `$252F` (a doubly escaped %2F).
        def enc(text: str) -> str:
            return quote(quote(text, safe=""), safe="").replace("%", "$")

        return (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/"
            f"log-group/{enc(group.log_group)}/log-events/{enc(group.stream)}"
        )


def _make_client(settings: Settings) -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise ConfigError("the CloudWatch source needs boto3: pip install 'sentry-autofix[aws]'") from exc
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.session.Session(
            profile_name=settings.cloudwatch_profile or None, region_name=settings.cloudwatch_region or None
        )
        return session.client(
            "logs",
            endpoint_url=settings.cloudwatch_endpoint_url or None,
            config=Config(retries={"mode": "standard", "max_attempts": 4}, user_agent_extra="sentry-autofix"),
        )
    except ProfileNotFound as exc:
        raise ConfigError(
            f"AWS profile not found: check SENTRY_AUTOFIX_CLOUDWATCH_PROFILE / AWS_PROFILE ({exc})"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigError(f"cannot set up the CloudWatch Logs client: {exc} (check AWS_REGION)") from exc


def _client_error(exc: Any, group: str | None) -> Exception:
    error = exc.response.get("Error", {}) if isinstance(getattr(exc, "response", None), dict) else {}
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))[:300]
    if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException", "AccessDenied"):
        return SourceAuthError(
            f"CloudWatch Logs refused the request ({code}: {message}): the role needs logs:FilterLogEvents "
            f"on log group {group}"
        )
    if code == "ResourceNotFoundException":
        return SourceNotFound(
            f"CloudWatch log group {group} does not exist in this account/region: check "
            "SENTRY_AUTOFIX_CLOUDWATCH_LOG_GROUPS and AWS_REGION"
        )
    if code == "InvalidParameterException":
        return ConfigError(
            f"CloudWatch rejected the request ({message}): check SENTRY_AUTOFIX_CLOUDWATCH_FILTER_PATTERN"
        )
    return SourceError(f"CloudWatch Logs error {code}: {message}")


def _hit(group: str, raw: Any) -> _Hit | None:
    if not isinstance(raw, dict):
        return None
    message, stream, ts = raw.get("message"), raw.get("logStreamName"), raw.get("timestamp")
    if not isinstance(message, str) or not isinstance(stream, str) or not isinstance(ts, int):
        return None
    return _Hit(group, stream[:512], ts, message)


def _bursts(hits: list[_Hit]) -> Iterator[list[_Hit]]:
    burst: list[_Hit] = []
    for hit in hits:
        if burst and hit.timestamp - burst[-1].timestamp > BURST_GAP_MS:
            yield burst
            burst = []
        burst.append(hit)
    if burst:
        yield burst


def _add(found: dict[str, ErrorGroup], event: ErrorEvent, group: str, stream: str, ts: int) -> None:
    issue_id = qualified_id("cloudwatch", fingerprint(event)[:20])
    entry = found.get(issue_id)
    if entry is None:
        entry = found[issue_id] = ErrorGroup(issue_id, event, group, stream, first_seen=ts, last_seen=ts)
    entry.count += 1
    entry.streams.add(stream)
    entry.first_seen = min(entry.first_seen, ts)
    if ts >= entry.last_seen:
        entry.last_seen, entry.event, entry.stream, entry.log_group = ts, event, stream, group
    event.timestamp = _when(ts)
    event.tags = [*event.tags, ("log_group", group[:200]), ("log_stream", stream[:200])]


def _when(ms: int) -> datetime | None:
    if ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
