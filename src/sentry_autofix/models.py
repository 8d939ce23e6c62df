"""The data that crosses seams: one ErrorEvent, whatever shape Sentry sent it in."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class StackFrame(_Model):
    """One frame, as the SDK reported it (paths are the deployed ones, not the repo's)."""

    filename: str | None = None
    abs_path: str | None = None
    module: str | None = None
    package: str | None = None
    function: str | None = None
    lineno: int | None = None
    colno: int | None = None
    in_app: bool | None = None
    """The SDK's verdict; None when it did not say."""
    platform: str | None = None
    pre_context: list[str] = Field(default_factory=list)
    context_line: str | None = None
    post_context: list[str] = Field(default_factory=list)


class Mechanism(_Model):
    type: str | None = None
    handled: bool | None = None
    exception_id: int | None = None
    parent_id: int | None = None
    source: str | None = None


class ExceptionValue(_Model):
    type: str | None = None
    value: str | None = None
    module: str | None = None
    mechanism: Mechanism | None = None
    frames: list[StackFrame] = Field(default_factory=list)
    """Oldest call first, crashing frame last (Sentry's order)."""


class Breadcrumb(_Model):
    timestamp: str | None = None
    type: str | None = None
    category: str | None = None
    level: str | None = None
    message: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    """Values flattened to (redacted) strings."""


class RequestInfo(_Model):
    method: str | None = None
    url: str | None = None
    query_string: str | None = None
    headers: list[tuple[str, str]] = Field(default_factory=list)
    """Secret-bearing headers are already redacted."""
    has_cookies: bool = False
    """Cookies are never kept, only whether there were any."""


class IssueInfo(_Model):
    """A Sentry issue (group): what the API's issue endpoint or an issue webhook describes."""

    id: str
    short_id: str | None = None
    title: str | None = None
    culprit: str | None = None
    permalink: str | None = None
    project: str | None = None
    """Project slug."""
    project_id: str | None = None
    level: str | None = None
    status: str | None = None
    substatus: str | None = None
    priority: str | None = None
    platform: str | None = None
    count: int | None = None
    user_count: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None


class ErrorEvent(_Model):
    """One error occurrence, normalised from the REST API, ingestion, webhook or legacy shapes."""

    event_id: str | None = None
    issue_id: str | None = None
    short_id: str | None = None
    title: str | None = None
    message: str | None = None
    level: str | None = None
    platform: str | None = None
    timestamp: datetime | None = None
    release: str | None = None
    environment: str | None = None
    transaction: str | None = None
    culprit: str | None = None
    server_name: str | None = None
    permalink: str | None = None
    tags: list[tuple[str, str]] = Field(default_factory=list)
    exceptions: list[ExceptionValue] = Field(default_factory=list)
    """The chain, oldest (the root cause) first, the exception that surfaced last."""
    breadcrumbs: list[Breadcrumb] = Field(default_factory=list)
    request: RequestInfo | None = None
    issue: IssueInfo | None = None

    @property
    def crashing_exception(self) -> ExceptionValue | None:
        return self.exceptions[-1] if self.exceptions else None

    @property
    def root_cause(self) -> ExceptionValue | None:
        return self.exceptions[0] if self.exceptions else None

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None

    @property
    def headline(self) -> str:
        """`Type: value`, the way Sentry titles an error."""
        exc = self.crashing_exception
        if exc is not None and (exc.type or exc.value):
            if exc.type and exc.value:
                return f"{exc.type}: {exc.value}"
            return exc.type or exc.value or ""
        return self.title or self.message or "(no message)"


class MappedFrame(_Model):
    """A frame placed in the workspace (or not, with the reason)."""

    exception_index: int
    """Index into ErrorEvent.exceptions."""
    frame_index: int
    path: str | None
    """Repo-relative POSIX path, or None when the frame could not be mapped."""
    line: int | None
    """Line in the workspace file (corrected for drift when context_line was found nearby)."""
    function: str | None
    in_app: bool
    """Effective verdict: the SDK's flag, or that it maps to a tracked non-vendor file."""
    original_path: str | None
    """The path as Sentry reported it."""
    verified: bool | None = None
    """True: context_line matched the workspace; False: it did not; None: nothing to check."""
    reason: str | None = None
    """Why the frame is unmapped (or how it was mapped)."""


class Suspect(_Model):
    path: str
    line: int | None
    function: str | None
    """The best frame's function; for a lambda or comprehension, the named function around it."""
    score: float
    reasons: list[str] = Field(default_factory=list)
    functions: list[str] = Field(default_factory=list)
    """Every function of this file on the stack, nearest the crash first."""
    lines: list[int] = Field(default_factory=list)
    """The file's on-stack lines, nearest the crash first (what blame looks at)."""


class SuspectCommit(_Model):
    sha: str
    short_sha: str
    author: str
    date: datetime
    summary: str
    paths: list[str] = Field(default_factory=list)
    score: float
    reasons: list[str] = Field(default_factory=list)


class TriageReport(_Model):
    event: ErrorEvent
    frames: list[MappedFrame]
    suspects: list[Suspect]
    suspect_commits: list[SuspectCommit]
    code_windows: dict[str, str] = Field(default_factory=dict)
    """`path:line` -> numbered lines read from the workspace around suspect frames."""


class TestOutcome(_Model):
    __test__ = False  # not a pytest class

    status: Literal["passed", "failed", "not-run"]
    """Never "passed" when no test command ran."""
    command: str | None = None
    exit_code: int | None = None
    output_tail: str = ""
    seconds: float = 0.0
    sandboxed: bool | None = None
    """True: ran in the sandbox; False: ran unisolated (the user's explicit opt-out); None: not run."""
    failed_tests: list[str] | None = None
    """The failing test ids read from the output ([] when it passed); None: not run, or not readable
    (workspace/testids.py)."""


class FileChange(_Model):
    path: str
    added: int
    removed: int
    is_new: bool = False
    is_deleted: bool = False


class Usage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    turns: int = 0
    seconds: float = 0.0


FixStatus = Literal["fixed", "no-fix", "skipped-blocked-path", "error"]
Confidence = Literal["high", "medium", "low"]
RunStatus = Literal[
    "pr-opened",
    "draft-pr-opened",
    "pr-updated",
    "issue-opened",
    "skipped-duplicate",
    "skipped-filtered",
    "skipped-blocked-path",
    "no-fix",
    "dry-run",
    "error",
]
"""SPEC §3: the final status printed as `status: <value>` and set as the Action output."""


class FixResult(_Model):
    """What the agent produced; the change itself is `diff` (from git, never the model's word)."""

    status: FixStatus
    root_cause: str = ""
    analysis: str = ""
    confidence: Confidence | None = None
    pr_title: str = ""
    summary: str = ""
    diff: str = ""
    files: list[FileChange] = Field(default_factory=list)
    tests: TestOutcome = Field(default_factory=lambda: TestOutcome(status="not-run"))
    reproduced: Literal["true", "false", "unknown"] = "unknown"
    baseline_tests: TestOutcome | None = None
    """The test command on the untouched workspace, before the agent started (`baseline-tests`):
    a failure that already failed there is not the fix's."""
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
