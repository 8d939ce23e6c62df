"""`Retry-After` as every client here reads it (retry.py): delta-seconds or an HTTP-date."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from sentry_autofix.retry import retry_after

NOW = datetime(2026, 12, 5, 8, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-4", 0.0),  # never a negative wait
        (format_datetime(datetime(2026, 12, 5, 8, 1, 0, tzinfo=timezone.utc), usegmt=True), 60.0),
        ("Sat, 05 Dec 2026 07:59:00 GMT", 0.0),  # already past
        (None, None),
        ("", None),
        ("soon", None),  # unreadable: the caller's own backoff applies
    ],
)
def test_retry_after__seconds_or_http_date_from_now(value: str | None, expected: float | None) -> None:
    assert retry_after(value, NOW) == expected
