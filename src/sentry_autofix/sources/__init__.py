"""Error sources: turn a vendor's issue into an ErrorEvent.

One module per vendor behind the `ErrorSource` protocol, named in `SOURCES` and imported lazily
(optional extras stay optional): Sentry (`sentry.py`), CloudWatch Logs (`cloudwatch.py`, extra
`aws`), Rollbar (`rollbar.py`), Datadog (`datadog.py`). Stack-trace text (`traceback_text.py`) is
the foundation the log-based ones stand on, and a source of its own for `triage`/`fix --traceback`.

Issue ids carry their source, so one error is one PR/issue across runs whatever reported it:
Sentry's are bare numbers (as they always were); every other source's are `<source>-<id>`
(`cloudwatch-3f9a…`, `rollbar-272505123`, `datadog-<uuid>`). `source_of` reads the prefix back.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from sentry_autofix.errors import ConfigError
from sentry_autofix.models import ErrorEvent, IssueInfo

if TYPE_CHECKING:
    from sentry_autofix.config import Settings


class ErrorSource(Protocol):
    """Where production errors come from (Sentry first)."""

    def get_issue(self, issue_id: str) -> IssueInfo: ...

    def latest_event(self, issue_id: str) -> ErrorEvent:
        """The issue's most recent event, with its `issue` filled in."""
        ...

    def list_issues(
        self,
        project: str | None = None,
        query: str = "is:unresolved",
        limit: int = 100,
        stats_period: str | None = None,
    ) -> Iterator[IssueInfo]: ...

    def add_comment(self, issue_id: str, text: str) -> None: ...


SOURCES: dict[str, str] = {
    "sentry": "sentry_autofix.sources.sentry:SentryClient",
    "cloudwatch": "sentry_autofix.sources.cloudwatch:CloudWatchSource",
    "rollbar": "sentry_autofix.sources.rollbar:RollbarSource",
    "datadog": "sentry_autofix.sources.datadog:DatadogSource",
}
"""Source name → `module:Class`; the class takes the Settings (and optional test seams)."""

ISSUE_REF = r"\d{1,20}|(?:cloudwatch|rollbar|datadog)-[A-Za-z0-9][A-Za-z0-9-]{0,63}"
"""What an issue id may look like in a marker, a matrix entry or a dispatch payload."""
_ISSUE_REF = re.compile(rf"^(?:{ISSUE_REF})$")


def qualified_id(source: str, native_id: str) -> str:
    """`rollbar`, `272505123` → `rollbar-272505123` (Sentry's ids stay bare)."""
    return native_id if source == "sentry" else f"{source}-{native_id}"


def source_of(issue_id: str) -> tuple[str, str]:
    """`rollbar-272505123` → (`rollbar`, `272505123`); anything else is Sentry's (a number or short id)."""
    head, sep, rest = issue_id.partition("-")
    if sep and head in SOURCES and head != "sentry" and rest:
        return head, rest
    return "sentry", issue_id


def is_issue_ref(issue_id: str) -> bool:
    """A resolved issue id of any source (Sentry numeric, or `<source>-<id>`), safe in a marker."""
    return bool(_ISSUE_REF.match(issue_id))


def build_source(settings: Settings, name: str | None = None) -> ErrorSource:
    """The source named `name` (default: SENTRY_AUTOFIX_SOURCE), built from the settings."""
    name = name or settings.error_source
    target = SOURCES.get(name)
    if target is None:
        raise ConfigError(f"unknown error source {name!r}: set SENTRY_AUTOFIX_SOURCE to one of {', '.join(SOURCES)}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"cloudwatch": "aws"}.get(name, name)
        raise ConfigError(
            f"the {name} source needs an optional dependency ({exc.name}): pip install 'sentry-autofix[{extra}]'"
        ) from exc
    source: ErrorSource = getattr(module, class_name)(settings)
    return source


def source_for_issue(settings: Settings, issue_id: str) -> ErrorSource:
    """The source an issue id belongs to (`rollbar-…` → Rollbar; a number → Sentry)."""
    return build_source(settings, source_of(issue_id)[0])


__all__ = [
    "ISSUE_REF",
    "SOURCES",
    "ErrorSource",
    "build_source",
    "is_issue_ref",
    "qualified_id",
    "source_for_issue",
    "source_of",
]
