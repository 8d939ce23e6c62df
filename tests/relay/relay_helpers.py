"""Relay test helpers: real Sentry webhook bodies from ../shared/fixtures, signed with a test secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from sentry_autofix.config import Settings, load_settings

SECRET = "test-webhook-secret-0123456789abcdef"
TOKEN = "ghp_test_token_for_fake_github"
ROUTES = "python=acme/python-app,1=acme/front-end,error-gen=acme/errors:custom-event"
REPOS = {"acme/python-app", "acme/front-end", "acme/errors"}

RESOURCE_OF = {
    "issue.created.json": "issue",
    "issue.created.old-docs.json": "issue",
    "event_alert.triggered.json": "event_alert",
    "error.created.json": "error",
    "installation.created.json": "installation",
    "installation.created.old-docs.json": "installation",
    "comment.created.json": "comment",
    "metric_alert.resolved.json": "metric_alert",
    "activity_alert.triggered.json": "activity_alert",
    "seer.root_cause_completed.json": "seer",
    "seer.solution_completed.json": "seer",
    "seer.coding_completed.json": "seer",
    "seer.pr_created.json": "seer",
    "preprod_artifact.build_distribution_completed.json": "preprod_artifact",
}
"""Sentry-Hook-Resource of each published body (from the docs page each came from)."""


class Hooks:
    """Sentry's published webhook bodies (../shared/fixtures/sentry/webhooks), read in place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def bytes(self, name: str) -> bytes:
        """The fixture file's exact bytes: what Sentry signed is what we verify."""
        return (self.folder / name).read_bytes()

    def doc(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.bytes(name))
        return doc


def compact(doc: Any) -> bytes:
    """Sentry sends compact JSON (SPEC §10); used when a test derives a body from a fixture."""
    return json.dumps(doc, separators=(",", ":")).encode()


def signature(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(body: bytes, resource: str, secret: str = SECRET, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Sentry-Hook-Resource": resource,
        "Sentry-Hook-Timestamp": "1700000000",
        "Sentry-Hook-Signature": signature(body, secret),
        "Request-ID": "6b0a4e8c-d41f-4d8e-bc1e-2b0f1e0f6f00",
        **extra,
    }


def relay_settings(**overrides: Any) -> Settings:
    # Sentry's published bodies date from 2019 and 2025: outside any replay window. The replay
    # bound has its own tests (test_relay_replay.py), which switch it back on.
    values: dict[str, Any] = {
        "sentry_webhook_secret": SECRET,
        "relay_routes": ROUTES,
        "github_token": TOKEN,
        "relay_replay_window": 0,
    }
    values.update(overrides)
    return load_settings(**values)


def fresh(doc: dict[str, Any], at: float) -> dict[str, Any]:
    """The webhook with its issue/event time set to `at` (epoch seconds): a live one, for the replay bound."""
    data = doc["data"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}+00:00"
    if "issue" in data:
        data["issue"]["lastSeen"] = data["issue"]["firstSeen"] = stamp
    for key in ("event", "error"):
        if key in data:
            data[key]["received"] = data[key]["timestamp"] = at
            data[key]["datetime"] = stamp
    return doc
