"""Which Sentry issue a run works on, from the triggering event (repository_dispatch, workflow_dispatch,
schedule) and the explicit input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError, InputError
from sentry_autofix.models import FixResult, TestOutcome
from sentry_autofix.pipeline import draft_reasons, run_test_command
from sentry_autofix.run import resolve_issue_id


def settings(tmp_path: Path, name: str | None, event: Any = None, **over: Any) -> Settings:
    path = None
    if event is not None:
        path = tmp_path / "event.json"
        path.write_text(event if isinstance(event, str) else json.dumps(event))
    return Settings(github_event_name=name, github_event_path=str(path) if path else None, **over)


def test_resolve__repository_dispatch_client_payload(tmp_path: Path) -> None:
    relay = {"action": "sentry-issue", "client_payload": {"issue_id": "4242", "short_id": "SHOP-1F", "org": "acme"}}
    assert resolve_issue_id(settings(tmp_path, "repository_dispatch", relay)) == "4242"


def test_resolve__workflow_dispatch_inputs(tmp_path: Path) -> None:
    assert resolve_issue_id(settings(tmp_path, "workflow_dispatch", {"inputs": {"issue_id": " SHOP-1F "}})) == "SHOP-1F"


def test_resolve__explicit_input_wins(tmp_path: Path) -> None:
    s = settings(tmp_path, "repository_dispatch", {"client_payload": {"issue_id": "1"}}, sentry_issue_id="2")
    assert resolve_issue_id(s) == "2"


def test_resolve__schedule_hands_over_to_poll(tmp_path: Path) -> None:
    assert resolve_issue_id(settings(tmp_path, "schedule", {"schedule": "0 * * * *"})) is None


@pytest.mark.parametrize(
    ("name", "event", "error"),
    [
        ("repository_dispatch", {"client_payload": {}}, InputError),
        ("repository_dispatch", {"client_payload": {"issue_id": "1; rm -rf /"}}, InputError),
        ("workflow_dispatch", {"inputs": {}}, ConfigError),
        ("push", {}, ConfigError),
        ("repository_dispatch", "{not json", InputError),
    ],
)
def test_resolve__bad_events_say_what_to_set(tmp_path: Path, name: str, event: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        resolve_issue_id(settings(tmp_path, name, event))


def test_draft_reasons__tests_and_confidence() -> None:
    s = Settings(min_confidence="high")
    ok = FixResult(status="fixed", confidence="high", tests=TestOutcome(status="passed"))
    assert draft_reasons(ok, s) == []
    low = FixResult(status="fixed", confidence="low", tests=TestOutcome(status="failed"))
    assert draft_reasons(low, s) == ["tests failed", "confidence low is below high"]
    assert draft_reasons(FixResult(status="fixed", confidence="medium"), Settings(min_confidence="medium")) == [
        "tests were not run"
    ]


def test_run_test_command__scrubs_secrets_from_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_leak")
    monkeypatch.setenv("ACTIONS_RUNTIME_TOKEN", "rt_leak")
    monkeypatch.setenv("MY_OTHER", "custom_leak")
    s = Settings(github_token="ghs_leak", scrub_env=["MY_OTHER"])
    out = run_test_command("env; exit 3", tmp_path, s)
    assert out.status == "failed"
    assert out.exit_code == 3
    assert "ghs_leak" not in out.output_tail
    assert "rt_leak" not in out.output_tail
    assert "custom_leak" not in out.output_tail
    assert "PATH=" in out.output_tail
