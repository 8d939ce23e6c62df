"""The relay routing Sentry webhooks to GitLab: a signed webhook → the outbox (SQLite and
PostgreSQL) → `POST /projects/:id/trigger/pipeline` on the loopback GitLab fake, with the same
dedup, backoff and rate-limit pauses as for GitHub, and the trigger token kept out of every log
line, outbox row and URL."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from relay_helpers import Hooks, headers_for, relay_settings
from tests.fakes.gitlab_api import FakeGitLab

from sentry_autofix import delivery
from sentry_autofix.delivery import DispatchOutcome
from sentry_autofix.delivery.gitlab import GitLabTrigger
from sentry_autofix.errors import ConfigError
from sentry_autofix.relay.app import Relay
from sentry_autofix.relay.config import build_relay_config
from sentry_autofix.relay.dispatcher import Dispatcher
from sentry_autofix.relay.server import build
from sentry_autofix.relay.store import OutboxStore

TRIGGER = "glptt-relay-trigger-token-0123456789abcdef"
PROJECT = "acme/shop"


class Clock:
    """A settable clock a little ahead of now (the relay stamps rows with the real time)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() + 5 if now is None else now

    def __call__(self) -> float:
        return self.now


class Recording:
    """The real trigger, with every outcome kept (the details land in the outbox and the logs)."""

    def __init__(self, inner: delivery.Trigger) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.outcomes: list[DispatchOutcome] = []

    def dispatch(self, target: str, event_type: str, payload: dict[str, Any]) -> DispatchOutcome:
        outcome = self.inner.dispatch(target, event_type, payload)
        self.outcomes.append(outcome)
        return outcome


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab(project=PROJECT, project_id=42, trigger_token=TRIGGER).start()
    yield fake
    fake.stop()


def gitlab_settings(gitlab: FakeGitLab, **over: Any) -> Any:
    values: dict[str, Any] = {
        "relay_routes": f"python=gitlab:{gitlab.url}#{PROJECT}@main",
        "github_token": None,
        "gitlab_trigger_token": TRIGGER,
    }
    values.update(over)
    return relay_settings(**values)


def wire(gitlab: FakeGitLab, store: OutboxStore, clock: Clock, **over: Any) -> tuple[Relay, Dispatcher, Recording]:
    settings = gitlab_settings(gitlab, **over)
    config = build_relay_config(settings)
    trigger = Recording(delivery.build_trigger(settings, config.hosts()))
    dispatcher = Dispatcher(store, trigger, clock=clock, backoff_base=1, backoff_cap=60)
    return Relay(config, store, auth_kind=trigger.kind), dispatcher, trigger


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line with its structured fields (what the relay's JSON log writes)."""
    return "\n".join(f"{r.getMessage()} {json.dumps(getattr(r, 'fields', {}), default=str)}" for r in caplog.records)


def triggers(gitlab: FakeGitLab) -> list[Any]:
    return [c for c in gitlab.calls if c.path.endswith("/trigger/pipeline")]


def test_relay_gitlab__webhook_starts_one_pipeline_and_a_replay_is_deduplicated(
    gitlab: FakeGitLab, hooks: Hooks, open_store: Callable[[], OutboxStore]
) -> None:
    store, clock = open_store(), Clock()
    relay, dispatcher, trigger = wire(gitlab, store, clock)
    body = hooks.bytes("issue.created.json")
    assert relay.handle(headers_for(body, "issue"), body)[0] == 202
    dispatcher.run_once()
    status, answer = relay.handle(headers_for(body, "issue"), body)
    assert (status, answer["status"]) == (200, "duplicate")
    dispatcher.run_once()
    [pipeline] = gitlab.pipelines
    issue = hooks.doc("issue.created.json")["data"]["issue"]
    assert pipeline["source"] == "trigger" and pipeline["ref"] == "main"
    variables = pipeline["variables"]
    assert variables["SENTRY_AUTOFIX_ISSUE_ID"] == str(issue["id"])
    assert variables["SENTRY_AUTOFIX_EVENT_TYPE"] == "sentry-issue"
    context = json.loads(variables["SENTRY_AUTOFIX_PAYLOAD"])
    assert context["issue_id"] == str(issue["id"]) and context["action"] == "created"
    assert context["short_id"] == issue["shortId"]
    # The token travels in the form body only: never in the URL (access logs), never in the outbox.
    [call] = triggers(gitlab)
    assert call.path == "/api/v4/projects/acme%2Fshop/trigger/pipeline"
    assert TRIGGER not in json.dumps(call.query)
    assert store.stats(now=clock.now)["pending"] == 0
    assert [o.status for o in trigger.outcomes] == [201]


def test_relay_gitlab__429_with_retry_after_pauses_then_5xx_backs_off_then_delivers_once(
    gitlab: FakeGitLab, hooks: Hooks, open_store: Callable[[], OutboxStore], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store, clock = open_store(), Clock()
    relay, dispatcher, trigger = wire(gitlab, store, clock)
    gitlab.inject("POST", "/trigger/pipeline", 429, {"message": "429 Too Many Requests"}, {"Retry-After": "90"})
    gitlab.inject("POST", "/trigger/pipeline", 503, {"message": "503 Service Unavailable"})
    gitlab.inject("POST", "/trigger/pipeline", 502, {"message": "502 Bad Gateway"})
    body = hooks.bytes("issue.created.json")
    relay.handle(headers_for(body, "issue"), body)
    start = clock.now
    for _ in range(30):
        dispatcher.run_once()
        if gitlab.pipelines:
            break
        due = store.next_due()
        assert due is not None and due > clock.now  # waits instead of hammering GitLab
        clock.now = due
    assert len(gitlab.pipelines) == 1
    assert [o.status for o in trigger.outcomes] == [429, 503, 502, 201]
    first = trigger.outcomes[0]
    assert (first.rate_limited, first.retry_after) == (True, 90.0)
    # Retry-After was obeyed: nothing was sent again before 90 s had passed.
    assert clock.now - start >= 90
    dispatcher.run_once()
    assert len(gitlab.pipelines) == 1 and len(triggers(gitlab)) == 4
    assert TRIGGER not in logged(caplog)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"message": "401 Unauthorized"}),
        (403, {"message": "403 Forbidden"}),
        (404, {"message": "404 Not Found"}),
    ],
)
def test_relay_gitlab__refused_token_names_the_setting_and_is_kept_for_retry(
    gitlab: FakeGitLab,
    hooks: Hooks,
    open_store: Callable[[], OutboxStore],
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    store, clock = open_store(), Clock()
    relay, dispatcher, trigger = wire(gitlab, store, clock)
    gitlab.inject("POST", "/trigger/pipeline", status, body)
    raw = hooks.bytes("issue.created.json")
    relay.handle(headers_for(raw, "issue"), raw)
    dispatcher.run_once()
    [outcome] = trigger.outcomes
    assert (outcome.ok, outcome.retry, outcome.status) == (False, True, status)
    assert "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN" in outcome.detail
    assert "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN" in logged(caplog)
    assert store.stats(now=clock.now)["pending"] == 1  # kept: the operator fixes the token, it goes out
    assert TRIGGER not in logged(caplog) + outcome.detail


def test_gitlab_trigger__an_unknown_token_is_the_fakes_404_and_names_the_setting(gitlab: FakeGitLab) -> None:
    outcome = GitLabTrigger("glptt-wrong").dispatch(f"gitlab:{gitlab.url}#{PROJECT}@main", "sentry-issue", {})
    assert (outcome.ok, outcome.status, outcome.retry) == (False, 404, True)
    assert "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN" in outcome.detail and "glptt-wrong" not in outcome.detail


def test_gitlab_trigger__a_missing_branch_fails_for_good(gitlab: FakeGitLab) -> None:
    gitlab.inject("POST", "/trigger/pipeline", 400, {"message": {"base": ["Reference not found"]}})
    outcome = GitLabTrigger(TRIGGER).dispatch(f"gitlab:{gitlab.url}#42@nope", "sentry-issue", {"issue_id": "1"})
    assert (outcome.ok, outcome.retry, outcome.status) == (False, False, 400)
    assert "Reference not found" in outcome.detail and "'nope'" in outcome.detail


def test_gitlab_trigger__refused_pipeline_variables_name_the_project_setting(gitlab: FakeGitLab) -> None:
    gitlab.inject(
        "POST", "/trigger/pipeline", 400, {"message": {"base": ["Insufficient permissions to set pipeline variables"]}}
    )
    outcome = GitLabTrigger(TRIGGER).dispatch(f"gitlab:{gitlab.url}#42@main", "sentry-issue", {"issue_id": "1"})
    assert (outcome.ok, outcome.retry) == (False, False)
    assert "Minimum role to use pipeline variables" in outcome.detail


def test_gitlab_trigger__no_requests_left_pauses_even_on_success(gitlab: FakeGitLab) -> None:
    gitlab.inject(
        "POST",
        "/trigger/pipeline",
        201,
        {"id": 1, "status": "pending"},
        {"RateLimit-Remaining": "0", "RateLimit-Reset": str(2_000_060)},
    )
    outcome = GitLabTrigger(TRIGGER, clock=Clock(2_000_000.0)).dispatch(f"gitlab:{gitlab.url}#42@main", "e", {})
    assert (outcome.ok, outcome.rate_limited, outcome.retry_after) == (True, True, 60.0)


def test_relay_gitlab__routes_to_github_and_gitlab_side_by_side(
    gitlab: FakeGitLab, hooks: Hooks, store: OutboxStore, fake_github: Any
) -> None:
    """One relay, two hosts: each outbox row goes to its own host's trigger."""
    clock = Clock()
    settings = gitlab_settings(
        gitlab,
        relay_routes=f"python=gitlab:{gitlab.url}#{PROJECT}@main,1=acme/front-end",
        github_token="ghp_test_token_for_fake_github",
        github_api_url=fake_github.url,
    )
    config = build_relay_config(settings)
    assert config.hosts() == ["github", "gitlab"]
    trigger = delivery.build_trigger(settings, config.hosts())
    assert trigger.kind == "token+trigger-token"
    dispatcher = Dispatcher(store, trigger, clock=clock)
    relay = Relay(config, store)
    body = hooks.bytes("issue.created.json")
    relay.handle(headers_for(body, "issue"), body)
    other = hooks.doc("issue.created.json")
    other["data"]["issue"]["id"] = "987654"
    other["data"]["issue"]["project"]["slug"] = "front"
    other["data"]["issue"]["project"]["id"] = "1"
    raw = json.dumps(other, separators=(",", ":")).encode()
    assert relay.handle(headers_for(raw, "issue"), raw)[0] == 202
    dispatcher.run_once()
    assert len(gitlab.pipelines) == 1
    assert [d["client_payload"]["issue_id"] for d in fake_github.state.dispatches] == ["987654"]


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("python=gitlab:acme/shop", "gitlab:https://gitlab.example.com#acme/shop@main"),
        ("python=gitlab:42@release/2.x", "gitlab:https://gitlab.example.com#42@release/2.x"),
        (
            "python=gitlab:https://git.corp.example/gitlab#grp/sub/proj@dev",
            "gitlab:https://git.corp.example/gitlab#grp/sub/proj@dev",
        ),
    ],
)
def test_relay_config__gitlab_routes_from_the_environment(route: str, expected: str) -> None:
    config = build_relay_config(
        relay_settings(relay_routes=route, gitlab_url="https://gitlab.example.com/", github_token=None)
    )
    assert config.routes["python"].repo == expected
    assert config.hosts() == ["gitlab"]


def test_relay_config__gitlab_route_from_the_file(tmp_path: Path) -> None:
    file = tmp_path / "relay.json"
    file.write_text(json.dumps({"routes": {"python": "gitlab:https://gl.example#acme/shop@dev"}}))
    config = build_relay_config(relay_settings(relay_routes=[], relay_config_file=str(file)))
    assert config.routes["python"].repo == "gitlab:https://gl.example#acme/shop@dev"


@pytest.mark.parametrize(
    ("route", "needle"),
    [
        ("python=gitlab:not a project", "project id or group/project path"),
        ("python=gitlab:acme/shop@-x", "branch name"),
        ("python=gitlab:ftp://host#acme/shop", "GitLab base URL"),
    ],
)
def test_relay_config__bad_gitlab_route_names_the_setting(route: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="SENTRY_AUTOFIX_ROUTES") as err:
        build_relay_config(relay_settings(relay_routes=route))
    assert needle in str(err.value)


def test_relay_build__a_gitlab_route_needs_the_trigger_token(gitlab: FakeGitLab, tmp_path: Path) -> None:
    settings = gitlab_settings(gitlab, gitlab_trigger_token=None, relay_db=str(tmp_path / "o.sqlite3"))
    with pytest.raises(ConfigError, match="SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN"):
        build(settings)
    parts = build(gitlab_settings(gitlab, relay_db=str(tmp_path / "o.sqlite3")))
    try:
        assert parts.relay.health()[1]["config"]["trigger_auth"] == "trigger-token"
    finally:
        parts.store.close()


def test_gitlab_trigger__form_fields_are_what_the_api_documents(gitlab: FakeGitLab) -> None:
    """docs.gitlab.com/api/pipeline_triggers/#trigger-a-pipeline-with-a-token: `token`, `ref`,
    `variables[KEY]=value`, sent as a form."""
    GitLabTrigger(TRIGGER).dispatch(f"gitlab:{gitlab.url}#{PROJECT}@main", "sentry-issue", {"issue_id": "7"})
    _method, _path, headers, raw = gitlab.raw[-1]
    form = parse_qs(raw.decode())
    assert form["token"] == [TRIGGER] and form["ref"] == ["main"]
    assert form["variables[SENTRY_AUTOFIX_ISSUE_ID]"] == ["7"]
    assert "application/x-www-form-urlencoded" in {k.lower(): v for k, v in headers.items()}["content-type"]


def test_gitlab_trigger__one_token_per_project_goes_to_its_own_project_only() -> None:
    """A trigger token belongs to one project: a relay routing to two projects holds two, and each
    project's fake GitLab accepts only its own (the wrong one is GitLab's 404)."""
    shop_token, api_token = "glptt-shop-0123456789abcdef", "glptt-api-fedcba9876543210"
    shop = FakeGitLab(project="acme/shop", project_id=42, trigger_token=shop_token).start()
    api = FakeGitLab(project="acme/api", project_id=43, trigger_token=api_token).start()
    try:
        settings = gitlab_settings(
            shop,
            relay_routes=f"python=gitlab:{shop.url}#acme/shop@main,go=gitlab:{api.url}#43@main",
            gitlab_trigger_token=f"acme/shop={shop_token}, 43={api_token}",
        )
        assert settings.gitlab_trigger_tokens() == {"acme/shop": shop_token, "43": api_token}
        assert {shop_token, api_token} <= set(settings.secret_values())  # each is scrubbed on its own
        trigger = delivery.build_trigger(settings, ["gitlab"])
        for fake, target in ((shop, f"gitlab:{shop.url}#acme/shop@main"), (api, f"gitlab:{api.url}#43@main")):
            outcome = trigger.dispatch(target, "sentry-issue", {"issue_id": "7"})
            assert (outcome.ok, outcome.status) == (True, 201), outcome.detail
            assert len(triggers(fake)) == 1
        missing = trigger.dispatch(f"gitlab:{api.url}#acme/web@main", "sentry-issue", {"issue_id": "7"})
        assert (missing.ok, missing.retry) == (False, True)  # kept until the operator adds the token
        assert "acme/web=<token>" in missing.detail and "SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN" in missing.detail
        assert len(triggers(api)) == 1  # nothing was sent with another project's token
    finally:
        shop.stop()
        api.stop()


@pytest.mark.parametrize("value", ["acme/shop=", "=glptt-x", "acme/shop=glptt-a,glptt-b"])
def test_settings__a_malformed_trigger_token_map_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="SENTRY_AUTOFIX_GITLAB_TRIGGER_TOKEN"):
        relay_settings(gitlab_trigger_token=value)
