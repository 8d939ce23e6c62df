"""One exception hierarchy; every message says what the user can do about it.

AutofixError
├── ConfigError          a setting is missing or wrong (exit code 2)
├── InputError           a file or argument we were given cannot be used (exit code 2)
├── SourceError          the error source (Sentry) failed
│   ├── SourceAuthError      401/403: token or scopes
│   └── SourceNotFound       404: issue id / organization
├── CodeHostError        GitHub / GitLab failed
│   ├── NotFound
│   ├── Forbidden
│   ├── RateLimited
│   └── Conflict         the PR/MR already exists (an overlapping run opened it)
├── LLMError             the model provider failed
├── GitError             a git command failed
├── StoreError           the relay's outbox cannot be used (disk full, file deleted, database down)
└── GuardViolation       a change or a read crossed a guardrail
"""

from __future__ import annotations


class AutofixError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(AutofixError):
    exit_code = 2


class InputError(AutofixError):
    exit_code = 2


class SourceError(AutofixError):
    pass


class SourceAuthError(SourceError):
    pass


class SourceNotFound(SourceError):
    pass


class CodeHostError(AutofixError):
    pass


class NotFound(CodeHostError):
    pass


class Forbidden(CodeHostError):
    pass


class RateLimited(CodeHostError):
    pass


class Conflict(CodeHostError):
    """`number`: the PR/MR that already exists, when the host's answer names it (GitLab's `!12`)."""

    def __init__(self, message: str, number: int | None = None) -> None:
        super().__init__(message)
        self.number = number


class LLMError(AutofixError):
    pass


class StoreError(AutofixError):
    pass


class GitError(AutofixError):
    pass


class GuardViolation(AutofixError):
    pass
