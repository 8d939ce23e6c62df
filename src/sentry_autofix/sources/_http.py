"""A JSON API client for the token-authenticated sources (Rollbar, Datadog): bounded retries on
429/5xx honouring `Retry-After`, vendor errors translated once into SourceError subclasses whose
messages name the setting to fix, and a call counter (API calls per poll are a documented figure)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from sentry_autofix import __version__
from sentry_autofix.errors import ConfigError, SourceAuthError, SourceError, SourceNotFound
from sentry_autofix.retry import retry_after

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_WAIT = 30.0


@dataclass(frozen=True)
class Advice:
    """What the user can do when the vendor says no (put into every error message)."""

    vendor: str
    auth: str
    """e.g. "check ROLLBAR_ACCESS_TOKEN (scope read)"."""
    base: str
    """e.g. "check ROLLBAR_URL"."""


class JsonApi:
    def __init__(
        self,
        base: str,
        headers: dict[str, str],
        advice: Advice,
        *,
        timeout: float = 20.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = base.rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise ConfigError(f"{advice.vendor} API base URL must start with https:// ({advice.base}), got {base!r}")
        self.base = base
        self.advice = advice
        self.timeout = timeout
        self.calls = 0
        self._sleep = sleep
        self.session = session or requests.Session()
        self.session.headers.update(
            {"User-Agent": f"sentry-autofix/{__version__}", "Accept": "application/json", **headers}
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}{path}"
        problem = ""
        for attempt in range(MAX_ATTEMPTS):
            self.calls += 1
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.Timeout:
                problem = f"timed out after {self.timeout:.0f}s"
                continue
            except requests.RequestException as exc:
                raise SourceError(
                    f"cannot reach {self.advice.vendor} at {self.base}: {self.advice.base} ({type(exc).__name__})"
                ) from exc
            if resp.status_code == 429 or resp.status_code >= 500:
                wait = _retry_after(resp, attempt)
                problem = f"HTTP {resp.status_code}"
                if wait > MAX_WAIT or attempt == MAX_ATTEMPTS - 1:
                    break
                log.info("%s answered %s; retrying in %.1fs", self.advice.vendor, resp.status_code, wait)
                self._sleep(wait)
                continue
            return self._body(resp, method, path)
        raise SourceError(f"{self.advice.vendor} API {method} {path.split('?')[0]} failed after retries: {problem}")

    def _body(self, resp: requests.Response, method: str, path: str) -> Any:
        what = f"{self.advice.vendor} API {method} {path.split('?')[0]}"
        if resp.status_code in (401, 403):
            raise SourceAuthError(f"{what}: {resp.status_code} {_detail(resp)} — {self.advice.auth}")
        if resp.status_code == 404:
            raise SourceNotFound(f"{what}: 404 {_detail(resp)} — check the id, and {self.advice.base}")
        if resp.status_code >= 400:
            raise SourceError(f"{what}: {resp.status_code} {_detail(resp)}")
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise SourceError(f"{what} answered with a body that is not JSON — {self.advice.base}") from exc


def _retry_after(resp: requests.Response, attempt: int) -> float:
    # Rollbar and Datadog send X-RateLimit-Reset as seconds left in the window.
    wait = retry_after(resp.headers.get("Retry-After") or resp.headers.get("X-RateLimit-Reset"))
    return wait if wait is not None else float(min(MAX_WAIT, 0.5 * 2**attempt))


def _detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return (resp.reason or "")[:200]
    if isinstance(body, dict):
        for key in ("message", "errors", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value[:300]
            if isinstance(value, list) and value:
                return "; ".join(str(v)[:200] for v in value[:3])
    return (resp.reason or "")[:200]
