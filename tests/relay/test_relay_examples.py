"""The deployment examples in examples/relay: the Lambda adapter runs, the Dockerfile's command parses.

Docker has no engine on the test machines, so the image is checked by what it runs: its
ENTRYPOINT + CMD must be a valid `sentry-autofix` command line, its HEALTHCHECK hit the health path.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from relay_fake_github import FakeGitHub
from relay_helpers import ROUTES, SECRET, TOKEN, Hooks, headers_for

from sentry_autofix.cli import build_parser
from sentry_autofix.relay.app import HEALTH_PATHS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "relay"


def _load_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api_url: str) -> ModuleType:
    for name, value in {
        "SENTRY_WEBHOOK_SECRET": SECRET,
        "SENTRY_AUTOFIX_ROUTES": ROUTES,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": api_url,
        "SENTRY_AUTOFIX_RELAY_DB": str(tmp_path / "lambda.sqlite3"),
        "SENTRY_AUTOFIX_RELAY_REPLAY_WINDOW": "0",  # the published bodies are years old
    }.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("relay_aws_lambda", EXAMPLES / "aws_lambda.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.conformance
def test_aws_lambda__function_url_event_then_schedule_dispatches(
    hooks: Hooks, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    module = _load_lambda(monkeypatch, tmp_path, fake_github.url)
    try:
        body = hooks.bytes("issue.created.json")
        event = {
            "version": "2.0",
            "rawPath": "/webhooks/sentry",
            # Lambda lower-cases header names in payload format 2.0
            "headers": {k.lower(): v for k, v in headers_for(body, "issue").items()},
            "requestContext": {"http": {"method": "POST", "path": "/webhooks/sentry"}},
            "body": body.decode("utf-8"),
            "isBase64Encoded": False,
        }
        answer = module.handler(event)
        assert answer["statusCode"] == 202
        assert json.loads(answer["body"])["status"] == "queued"
        assert fake_github.state.dispatches == []  # nothing is sent inside Sentry's 1 s
        assert module.handler({"source": "aws.events", "detail-type": "Scheduled Event"}) == {"dispatched": 1}
        assert fake_github.state.dispatches[0]["client_payload"]["issue_id"] == "1234567890"
        forged = {**event, "body": body.decode().replace("PYTHON-Y", "PYTHON-Z")}
        assert module.handler(forged)["statusCode"] == 401
        health = module.handler({"requestContext": {"http": {"method": "GET", "path": "/health"}}})
        assert health["statusCode"] == 200
        assert SECRET not in health["body"]
    finally:
        module.parts.store.close()


def _instruction(dockerfile: str, name: str) -> str:
    match = re.search(rf"^{name}\s+(.+)$", dockerfile, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_dockerfile__entrypoint_and_cmd_are_a_valid_relay_command() -> None:
    dockerfile = (EXAMPLES / "Dockerfile").read_text()
    argv = json.loads(_instruction(dockerfile, "ENTRYPOINT")) + json.loads(_instruction(dockerfile, "CMD"))
    assert argv[0] == "sentry-autofix"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.relay_command, args.host, args.port) == ("relay", "serve", "0.0.0.0", 8080)
    assert re.search(r"EXPOSE\s+8080", dockerfile)
    health_url = re.search(r"http://127\.0\.0\.1:8080(/\w*)", dockerfile)
    assert health_url is not None
    assert health_url.group(1) in HEALTH_PATHS
    assert "SENTRY_AUTOFIX_RELAY_DB=/data/" in dockerfile
    assert 'pip install ".[relay,gitlab]"' in dockerfile  # gitlab: routes to GitLab projects
