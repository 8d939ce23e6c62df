"""A loopback stand-in for the parts of GitHub's REST API the relay calls.

It answers like api.github.com does (status codes, `{"message", "documentation_url"}` error
bodies, `retry-after` / `x-ratelimit-*` headers) for:

* `POST /repos/{owner}/{repo}/dispatches` — 204; 401 bad credentials; 404 unknown repo or a token
  without access; 422 when `event_type` is missing/too long or `client_payload` has more than 10
  top-level keys or is 64 KB or larger (GitHub's documented limits).
* `GET /repos/{owner}/{repo}/installation` and `POST /app/installations/{id}/access_tokens` for
  GitHub App auth; the app JWT is verified (RS256, `iss`, `exp` ≤ 10 min) against the public key.

Failures can be scripted (`fail_next`) to play outages, 429s and secondary rate limits. Run as a
script (`python relay_fake_github.py --port 0 --token T --repo o/r`) it prints `PORT <n>` and serves
until killed, logging each dispatch as one JSON line on stdout (used by subprocess tests and bench).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DOCS = "https://docs.github.com/rest"


@dataclass
class Scripted:
    status: int
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeGitHubState:
    tokens: set[str] = field(default_factory=set)
    repos: set[str] = field(default_factory=set)
    app_id: str | None = None
    app_public_key: Any = None
    installation_id: int = 4242
    installation_token_ttl: float = 3600.0
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: deque[Scripted] = field(default_factory=deque)
    issued_tokens: list[str] = field(default_factory=list)
    attempts: list[tuple[float, int]] = field(default_factory=list)
    """(time, status) of every `POST …/dispatches` answered, refused ones included."""
    delay: float = 0.0
    """Seconds each dispatch takes to answer: a slow GitHub."""
    echo: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, n: int, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        for _ in range(n):
            self.failures.append(Scripted(status, message, dict(headers or {})))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        if self.command == "POST" and self.path.endswith("/dispatches"):
            with self.server.state.lock:
                self.server.state.attempts.append((time.time(), status))
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Request-Id", "FAKE:0001")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"message": message, "documentation_url": DOCS, "status": str(status)}, headers)

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        for prefix in ("Bearer ", "token "):
            if auth.startswith(prefix):
                return auth[len(prefix) :]
        return None

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        st = self.server.state
        st.requests.append(("GET", self.path))
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "repos" and parts[3] == "installation":
            if not self._app_jwt_ok():
                return
            if f"{parts[1]}/{parts[2]}" not in st.repos:
                self._error(404, "Not Found")
                return
            self._send(200, {"id": st.installation_id, "app_id": int(st.app_id or 0), "target_type": "Organization"})
            return
        self._error(404, "Not Found")

    def _app_jwt_ok(self) -> bool:
        import jwt

        st = self.server.state
        token = self._bearer()
        if st.app_public_key is None or token is None:
            self._error(401, "A JSON web token could not be decoded")
            return False
        try:
            claims = jwt.decode(
                token, st.app_public_key, algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]}
            )
        except jwt.PyJWTError:
            self._error(401, "A JSON web token could not be decoded")
            return False
        if str(claims["iss"]) != str(st.app_id) or claims["exp"] - time.time() > 600:
            self._error(401, "'Expiration time' claim ('exp') is too far in the future")
            return False
        return True

    def do_POST(self) -> None:
        st = self.server.state
        body = self._body()
        st.requests.append(("POST", self.path))
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "app" and parts[1] == "installations" and parts[3] == "access_tokens":
            if not self._app_jwt_ok():
                return
            if parts[2] != str(st.installation_id):
                self._error(404, "Not Found")
                return
            with st.lock:
                token = f"ghs_fake{len(st.issued_tokens) + 1:04d}"
                st.issued_tokens.append(token)
                st.tokens.add(token)
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + st.installation_token_ttl))
            self._send(201, {"token": token, "expires_at": expires, "permissions": {"contents": "write"}})
            return
        if len(parts) != 4 or parts[0] != "repos" or parts[3] != "dispatches":
            self._error(404, "Not Found")
            return
        repo = f"{parts[1]}/{parts[2]}"
        if st.delay:
            time.sleep(st.delay)
        token = self._bearer()
        if token is None or token not in st.tokens:
            self._error(401, "Bad credentials")
            return
        with st.lock:
            scripted = st.failures.popleft() if st.failures else None
        if scripted is not None:
            self._error(scripted.status, scripted.message or "Server Error", scripted.headers)
            return
        if repo not in st.repos:
            self._error(404, "Not Found")
            return
        try:
            doc = json.loads(body)
        except ValueError:
            self._error(400, "Problems parsing JSON")
            return
        event_type = doc.get("event_type") if isinstance(doc, dict) else None
        if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
            self._error(422, "Invalid request.\n\nFor 'properties/event_type', nil is not a string.")
            return
        payload = doc.get("client_payload", {})
        if not isinstance(payload, dict) or len(payload) > 10:
            self._error(422, "Invalid request.\n\nNo more than 10 properties are allowed; found 11.")
            return
        if len(json.dumps(payload).encode()) >= 65536:
            self._error(422, "client_payload is too large")
            return
        record = {"repo": repo, "event_type": event_type, "client_payload": payload, "at": time.time()}
        with st.lock:
            st.dispatches.append(record)
        if st.echo:
            print(json.dumps(record), flush=True)
        self._send(204)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeGitHubState


class FakeGitHub:
    """Context manager: a fake GitHub API on 127.0.0.1 port 0 (or a given port)."""

    def __init__(self, state: FakeGitHubState | None = None, port: int = 0) -> None:
        self.state = state or FakeGitHubState()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for_dispatches(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.state.dispatches) >= n:
                return list(self.state.dispatches)
            time.sleep(0.02)
        return list(self.state.dispatches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[])
    parser.add_argument("--repo", action="append", default=[])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per dispatch answer (a slow GitHub)")
    args = parser.parse_args(argv)
    state = FakeGitHubState(tokens=set(args.token), repos=set(args.repo), echo=True, delay=args.delay)
    fake = FakeGitHub(state, port=args.port)
    fake.__enter__()
    print(f"PORT {fake.url.rsplit(':', 1)[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
