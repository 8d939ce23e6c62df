"""How long a server asked us to wait: one reading of `Retry-After` for every HTTP client here
(Sentry, Rollbar, Datadog, GitHub, GitLab, OpenAI-compatible models, chat webhooks)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3),
    never negative; None when absent or unreadable (the caller then uses its own backoff)."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
