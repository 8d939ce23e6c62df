"""Relay configuration is validated at start; every error names the setting to fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from relay_helpers import relay_settings

from sentry_autofix.config import load_settings
from sentry_autofix.errors import ConfigError
from sentry_autofix.relay.config import Route, build_relay_config


def test_build_relay_config__routes_by_slug_and_id_with_event_types() -> None:
    config = build_relay_config(relay_settings(relay_routes="web=acme/web, 42=acme/api:sentry-api"))
    assert config.routes == {"web": Route("acme/web", "sentry-issue"), "42": Route("acme/api", "sentry-api")}
    assert config.route_for("nope", "42") == Route("acme/api", "sentry-api")
    assert config.route_for("nope", None) is None


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"sentry_webhook_secret": None}, "SENTRY_WEBHOOK_SECRET"),
        ({"relay_routes": "web"}, "SENTRY_AUTOFIX_ROUTES"),
        ({"relay_routes": "web=not a repo"}, "SENTRY_AUTOFIX_ROUTES"),
        ({"relay_routes": "web=acme/web:" + "x" * 101}, "SENTRY_AUTOFIX_ROUTES"),
        ({"relay_routes": "", "relay_default_repo": None}, "SENTRY_AUTOFIX_DEFAULT_REPO"),
        ({"relay_default_repo": "acme"}, "SENTRY_AUTOFIX_DEFAULT_REPO"),
        ({"relay_actions": "issue.created,issue.deleted"}, "SENTRY_AUTOFIX_RELAY_ACTIONS"),
        ({"relay_levels": "error,critical"}, "SENTRY_AUTOFIX_RELAY_LEVELS"),
        ({"relay_config_file": "/nonexistent/relay.json"}, "SENTRY_AUTOFIX_RELAY_CONFIG"),
    ],
)
def test_build_relay_config__errors_name_the_setting(overrides: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        build_relay_config(relay_settings(**overrides))


def test_load_settings__event_type_over_100_chars_is_refused() -> None:
    with pytest.raises(ConfigError, match="relay_event_type"):
        load_settings(relay_event_type="e" * 101)


def test_build_relay_config__reads_routes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("SENTRY_AUTOFIX_ROUTES", "python=acme/py,1=acme/js")
    monkeypatch.setenv("SENTRY_AUTOFIX_DEFAULT_REPO", "acme/rest")
    monkeypatch.setenv("SENTRY_AUTOFIX_EVENT_TYPE", "sentry-bug")
    config = build_relay_config(load_settings())
    assert config.routes["1"] == Route("acme/js", "sentry-bug")
    assert config.default_route == Route("acme/rest", "sentry-bug")
    assert config.secret == b"s"


def test_build_relay_config__file_adds_routes_and_env_wins(tmp_path: Path) -> None:
    file = tmp_path / "relay.json"
    file.write_text(
        json.dumps(
            {
                "routes": {"web": "acme/from-file", "api": {"repo": "acme/api", "event_type": "api-error"}},
                "actions": ["issue.created", "issue.resolved"],
            }
        )
    )
    config = build_relay_config(relay_settings(relay_routes="web=acme/from-env", relay_config_file=str(file)))
    assert config.routes["web"] == Route("acme/from-env", "sentry-issue")
    assert config.routes["api"] == Route("acme/api", "api-error")
    assert config.actions == {"issue.created", "issue.resolved"}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TOML needs tomllib")
def test_build_relay_config__toml_file(tmp_path: Path) -> None:
    file = tmp_path / "relay.toml"
    file.write_text('default_repo = "acme/rest"\n[routes]\npython = "acme/py"\n')
    config = build_relay_config(relay_settings(relay_routes="", relay_config_file=str(file)))
    assert config.routes == {"python": Route("acme/py", "sentry-issue")}
    assert config.default_route == Route("acme/rest", "sentry-issue")


def test_build_relay_config__file_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "relay.json"
    file.write_text('{"routes": {}, "secret": "no secrets in files"}')
    with pytest.raises(ConfigError, match="unknown keys"):
        build_relay_config(relay_settings(relay_config_file=str(file)))


def test_relay_config_status__never_shows_secrets_or_targets() -> None:
    config = build_relay_config(relay_settings(relay_routes="web=acme/secret-repo-name"))
    text = json.dumps(config.status())
    assert "test-webhook-secret" not in text
    assert "secret-repo-name" not in text
    assert config.status()["webhook_secret"] == "set"
