"""GitHub side of the relay: credentials and `POST /repos/{owner}/{repo}/dispatches`.

Two credentials behind one small Protocol: a fixed token, or a GitHub App (app id + private key →
JWT → installation token, cached until five minutes before it expires). The dispatch client turns
GitHub's answers into a `DispatchOutcome` the dispatcher can act on; it never raises for HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

import requests

from sentry_autofix import __version__
from sentry_autofix.config import Settings
from sentry_autofix.errors import CodeHostError, ConfigError

USER_AGENT = f"sentry-autofix-relay/{__version__}"
API_VERSION = "2022-11-28"


class TokenProvider(Protocol):
    kind: str

    def token(self, repo: str) -> str: ...

    def invalidate(self, repo: str) -> None: ...


class StaticToken:
    """A personal access token or fine-grained token with `contents: write` on the target repos."""

    kind = "token"

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self, repo: str) -> str:
        return self._token

    def invalidate(self, repo: str) -> None:
        """A fixed token cannot be refreshed; a 401 is retried until the operator replaces it."""


def _load_private_key(value: str) -> str:
    text = value.strip()
    if "-----BEGIN" in text:
        # Env files and secret stores often flatten the PEM's newlines into literal "\n".
        return text.replace("\\n", "\n")
    path = Path(text).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("GITHUB_APP_PRIVATE_KEY: neither a PEM private key nor a readable .pem file path") from exc


class GitHubAppAuth:
    """GitHub App credentials: a short JWT (RS256) buys an installation token per repository."""

    kind = "app"

    def __init__(
        self,
        app_id: str,
        private_key: str,
        *,
        api_url: str,
        session: requests.Session,
        installation_id: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        import jwt  # the `relay` extra: pyjwt[crypto]

        self._jwt = jwt
        self.app_id = app_id
        self._key = _load_private_key(private_key)
        self._api = api_url.rstrip("/")
        self._session = session
        self._fixed_installation = installation_id
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._installations: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        try:  # fail at start, not at the first webhook
            self.app_jwt()
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(f"GITHUB_APP_PRIVATE_KEY: not a usable RSA private key ({exc})") from exc

    def app_jwt(self) -> str:
        now = int(self._clock())
        # iat 60 s in the past absorbs clock drift; GitHub refuses exp more than 10 minutes ahead.
        claims = {"iat": now - 60, "exp": now + 540, "iss": str(self.app_id)}
        return str(self._jwt.encode(claims, self._key, algorithm="RS256"))

    def _headers(self, bearer: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }

    def _installation_id(self, repo: str) -> str:
        if self._fixed_installation:
            return self._fixed_installation
        if repo in self._installations:
            return self._installations[repo]
        resp = self._session.get(
            f"{self._api}/repos/{repo}/installation",
            headers=self._headers(self.app_jwt()),
            timeout=self._timeout,
        )
        if resp.status_code != 200:
            raise CodeHostError(
                f"GitHub App {self.app_id} is not installed on {repo} (HTTP {resp.status_code}): "
                "install the App on that repository or set GITHUB_APP_INSTALLATION_ID"
            )
        installation = str(resp.json()["id"])
        self._installations[repo] = installation
        return installation

    def token(self, repo: str) -> str:
        with self._lock:
            installation = self._installation_id(repo)
            cached = self._tokens.get(installation)
            if cached and cached[1] - 300 > self._clock():
                return cached[0]
            resp = self._session.post(
                f"{self._api}/app/installations/{installation}/access_tokens",
                headers=self._headers(self.app_jwt()),
                timeout=self._timeout,
            )
            if resp.status_code != 201:
                raise CodeHostError(
                    f"GitHub refused an installation token for App {self.app_id} (HTTP {resp.status_code}): "
                    "check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
                )
            body = resp.json()
            expires = _parse_time(body.get("expires_at")) or self._clock() + 3600
            self._tokens[installation] = (str(body["token"]), expires)
            return str(body["token"])

    def invalidate(self, repo: str) -> None:
        with self._lock:
            installation = self._installations.pop(repo, None) or self._fixed_installation
            if installation:
                self._tokens.pop(installation, None)


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class DispatchOutcome:
    """What GitHub said, reduced to what the dispatcher needs."""

    ok: bool
    retry: bool
    status: int | None
    detail: str
    retry_after: float | None = None
    rate_limited: bool = False
    """GitHub asked us to stop (429, a 403 rate-limit answer, or `x-ratelimit-remaining: 0` even
    on a success): every dispatcher of the store pauses, for `retry_after` when GitHub said."""


def _retry_after(resp: requests.Response, now: float) -> float | None:
    value = resp.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    if resp.headers.get("x-ratelimit-remaining") == "0" and resp.headers.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(resp.headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return None
    return None


class GitHubDispatcher:
    """`POST /repos/{repo}/dispatches` with the configured credentials."""

    def __init__(
        self,
        auth: TokenProvider,
        *,
        api_url: str,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth = auth
        self._api = api_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock

    def dispatch(self, repo: str, event_type: str, client_payload: dict[str, Any]) -> DispatchOutcome:
        try:
            token = self.auth.token(repo)
        except CodeHostError as exc:
            return DispatchOutcome(False, True, None, str(exc))
        except requests.RequestException as exc:
            return DispatchOutcome(False, True, None, f"GitHub unreachable while getting a token: {type(exc).__name__}")
        try:
            resp = self._session.post(
                f"{self._api}/repos/{repo}/dispatches",
                json={"event_type": event_type, "client_payload": client_payload},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "User-Agent": USER_AGENT,
                },
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            return DispatchOutcome(False, True, None, f"GitHub unreachable: {type(exc).__name__}")
        status = resp.status_code
        now = self._clock()
        if status in (200, 204):
            # The last request of the hour's quota succeeded: stop before GitHub has to refuse.
            exhausted = resp.headers.get("x-ratelimit-remaining") == "0"
            return DispatchOutcome(
                True, False, status, "dispatched", _retry_after(resp, now) if exhausted else None, exhausted
            )
        detail = _message(resp)
        wait = _retry_after(resp, now)
        # GitHub's REST guidance: a 429, or a 403 with retry-after / x-ratelimit-remaining: 0 / a
        # "rate limit" message, means stop until the reset (or at least a minute) — every request
        # made meanwhile counts against the integration and may get it banned.
        if status == 429 or (
            status == 403
            and (wait is not None or resp.headers.get("x-ratelimit-remaining") == "0" or "rate limit" in detail.lower())
        ):
            return DispatchOutcome(False, True, status, f"{status} {detail}", wait, rate_limited=True)
        if status == 401:
            # An App token may have expired early or been revoked: get a fresh one next time.
            self.auth.invalidate(repo)
            return DispatchOutcome(False, True, status, f"401 {detail}: check GITHUB_TOKEN / GitHub App", wait)
        if status in (400, 422):
            # The request itself is wrong (payload or event type): retrying cannot help.
            return DispatchOutcome(False, False, status, f"{status} {detail}")
        if status == 403:
            return DispatchOutcome(False, True, status, f"403 {detail}: the token needs contents:write on {repo}", None)
        if status == 404:
            return DispatchOutcome(
                False, True, status, f"404 {detail}: {repo} does not exist or the token cannot see it", None
            )
        # 5xx, anything unexpected: keep it and try again later.
        return DispatchOutcome(False, True, status, f"{status} {detail}", wait)


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return resp.reason or ""


def build_dispatcher_client(settings: Settings) -> GitHubDispatcher:
    """Token or App credentials from settings; refuses to start with neither (or with both half-set)."""
    session = requests.Session()
    api = settings.github_api_url
    auth: TokenProvider
    if settings.github_app_id or settings.github_app_private_key:
        if not (settings.github_app_id and settings.github_app_private_key):
            raise ConfigError("GitHub App auth needs both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")
        auth = GitHubAppAuth(
            settings.github_app_id,
            settings.github_app_private_key.get_secret_value(),
            api_url=api,
            session=session,
            installation_id=settings.github_app_installation_id,
        )
    elif settings.github_token:
        auth = StaticToken(settings.github_token.get_secret_value())
    else:
        raise ConfigError(
            "no GitHub credentials: set GITHUB_TOKEN (contents:write on the target repos) "
            "or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY"
        )
    return GitHubDispatcher(auth, api_url=api, session=session)
