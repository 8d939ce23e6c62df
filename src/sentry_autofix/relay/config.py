"""Relay configuration: routes and policies, built once from `Settings` (+ an optional small file).

Everything is validated here, at start, so a running relay never meets a bad route: a mistake
stops `relay serve` with a message naming the setting to fix.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentry_autofix import delivery
from sentry_autofix.config import Settings
from sentry_autofix.errors import ConfigError

# GitHub: event_type is 1..100 characters; we also forbid control characters so it logs cleanly.
EVENT_TYPE_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")

KNOWN_ACTIONS = frozenset(
    {
        "issue.created",
        "issue.unresolved",
        "issue.resolved",
        "issue.ignored",
        "issue.archived",
        "event_alert.triggered",
        "error.created",
    }
)
"""Every `resource.action` the relay knows how to forward (SPEC §8, §10)."""

LEVELS = frozenset({"debug", "info", "warning", "error", "fatal"})


@dataclass(frozen=True)
class Route:
    """Where a Sentry project's webhooks go: a trigger of `repo` with `event_type`."""

    repo: str
    """The trigger target (delivery.parse_target): `owner/repo`, or `gitlab:<URL>#<project>@<ref>`."""
    event_type: str


@dataclass(frozen=True)
class RelayConfig:
    """The relay's validated configuration. Secrets stay bytes/str here and never reach logs."""

    secret: bytes
    routes: dict[str, Route]
    default_route: Route | None
    event_type: str
    actions: frozenset[str]
    levels: frozenset[str] = frozenset()
    org: str | None = None
    dedup_window: float = 3600.0
    rate_limit: int = 5
    rate_window: float = 86400.0
    max_body: int = 1_048_576
    max_retry_age: float = 86400.0
    replay_window: float = 3600.0

    def route_for(self, *keys: str | None) -> Route | None:
        """The first route matching any key (slug or numeric id), else the default route."""
        for key in keys:
            if key and key in self.routes:
                return self.routes[key]
        return self.default_route

    def hosts(self) -> list[str]:
        """The code hosts the routes lead to (each needs its trigger credentials)."""
        targets = [r.repo for r in self.routes.values()] + ([self.default_route.repo] if self.default_route else [])
        return sorted({delivery.host_of(t) for t in targets})

    def status(self) -> dict[str, Any]:
        """Configuration status for the health endpoint: shape only, never a secret or a route list."""
        return {
            "webhook_secret": "set" if self.secret else "missing",
            "routes": len(self.routes),
            "default_route": self.default_route is not None,
            "event_type": self.event_type,
            "actions": sorted(self.actions),
            "levels": sorted(self.levels),
            "dedup_window_s": self.dedup_window,
            "rate_limit": {"max": self.rate_limit, "window_s": self.rate_window},
            "max_body_bytes": self.max_body,
            "replay_window_s": self.replay_window,
        }


def parse_route(value: str, *, default_event_type: str, setting: str, settings: Settings | None = None) -> Route:
    """`owner/repo[:event-type]`, or `<host>:<spec>` for another code host
    (`gitlab:[<URL>#]<project>[@<ref>]`) → Route; errors name `setting`."""
    value = value.strip()
    if delivery.host_of(value) == delivery.DEFAULT_HOST:
        target, sep, event_type = value.removeprefix(f"{delivery.DEFAULT_HOST}:").partition(":")
    else:
        target, sep, event_type = value, "", ""
    event_type = event_type.strip() if sep else default_event_type
    repo = delivery.parse_target(target.strip(), settings or Settings.model_construct(), setting=setting)
    if not EVENT_TYPE_RE.match(event_type):
        raise ConfigError(f"{setting}: event type {event_type!r} must be 1-100 printable characters")
    return Route(repo=repo, event_type=event_type)


def _parse_routes(
    pairs: list[str], *, default_event_type: str, setting: str, settings: Settings | None = None
) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for pair in pairs:
        key, sep, target = pair.partition("=")
        key = key.strip()
        if not sep or not key or not target.strip():
            raise ConfigError(f"{setting}: expected project=owner/repo, got {pair!r}")
        routes[key] = parse_route(target, default_event_type=default_event_type, setting=setting, settings=settings)
    return routes


def _read_file(path: str) -> dict[str, Any]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"SENTRY_AUTOFIX_RELAY_CONFIG: cannot read {path}: {exc.strerror}") from exc
    try:
        if file.suffix == ".toml":
            if sys.version_info < (3, 11):
                raise ConfigError("SENTRY_AUTOFIX_RELAY_CONFIG: TOML needs Python 3.11+; use a .json file")
            import importlib

            data: Any = importlib.import_module("tomllib").loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"SENTRY_AUTOFIX_RELAY_CONFIG: {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"SENTRY_AUTOFIX_RELAY_CONFIG: {path} must hold an object with a 'routes' table")
    unknown = set(data) - {"routes", "default_repo", "event_type", "actions", "levels"}
    if unknown:
        raise ConfigError(f"SENTRY_AUTOFIX_RELAY_CONFIG: unknown keys {sorted(unknown)} in {path}")
    return data


def _file_routes(data: dict[str, Any], *, default_event_type: str, settings: Settings) -> dict[str, Route]:
    setting = "SENTRY_AUTOFIX_RELAY_CONFIG routes"
    raw = data.get("routes", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{setting}: must map project slug or id to 'owner/repo' or {{repo, event_type}}")
    routes: dict[str, Route] = {}
    for key, target in raw.items():
        if isinstance(target, str):
            routes[str(key)] = parse_route(
                target, default_event_type=default_event_type, setting=setting, settings=settings
            )
        elif isinstance(target, dict) and isinstance(target.get("repo"), str):
            event_type = target.get("event_type", default_event_type)
            if not isinstance(event_type, str):
                raise ConfigError(f"{setting}: event_type of {key!r} must be a string")
            routes[str(key)] = parse_route(
                f"{target['repo']}:{event_type}", default_event_type=default_event_type, setting=setting
            )
        else:
            raise ConfigError(
                f"{setting}: {key!r} must be a target ('owner/repo', '<host>:…') or {{'repo': …, 'event_type': …}}"
            )
    return routes


def _str_list(value: Any, setting: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigError(f"{setting}: expected a list of strings")


def build_relay_config(settings: Settings, *, require_secret: bool = True) -> RelayConfig:
    """Validate the relay settings (env first, the optional file adds routes) into a RelayConfig."""
    secret = settings.sentry_webhook_secret.get_secret_value() if settings.sentry_webhook_secret else ""
    if require_secret and not secret:
        raise ConfigError("SENTRY_WEBHOOK_SECRET is not set: copy the Client Secret of your Sentry integration into it")
    data = _read_file(settings.relay_config_file) if settings.relay_config_file else {}
    event_type = settings.relay_event_type
    if "event_type" in data:
        if not isinstance(data["event_type"], str):
            raise ConfigError("SENTRY_AUTOFIX_RELAY_CONFIG event_type: must be a string")
        event_type = data["event_type"]
    if not EVENT_TYPE_RE.match(event_type):
        raise ConfigError(f"SENTRY_AUTOFIX_EVENT_TYPE: {event_type!r} must be 1-100 printable characters")

    routes = _file_routes(data, default_event_type=event_type, settings=settings)
    # Env routes win over the file: the environment is what an operator changes last.
    routes.update(
        _parse_routes(
            settings.relay_routes, default_event_type=event_type, setting="SENTRY_AUTOFIX_ROUTES", settings=settings
        )
    )
    default_repo = settings.relay_default_repo or data.get("default_repo")
    default_route = None
    if default_repo:
        if not isinstance(default_repo, str):
            raise ConfigError("SENTRY_AUTOFIX_RELAY_CONFIG default_repo: must be a string")
        default_route = parse_route(
            default_repo, default_event_type=event_type, setting="SENTRY_AUTOFIX_DEFAULT_REPO", settings=settings
        )
    if not routes and default_route is None:
        raise ConfigError("no route: set SENTRY_AUTOFIX_ROUTES (project=owner/repo,…) or SENTRY_AUTOFIX_DEFAULT_REPO")

    actions = _str_list(data.get("actions", settings.relay_actions), "SENTRY_AUTOFIX_RELAY_ACTIONS")
    unknown = sorted(set(actions) - KNOWN_ACTIONS)
    if unknown:
        raise ConfigError(f"SENTRY_AUTOFIX_RELAY_ACTIONS: unknown {unknown}; known: {', '.join(sorted(KNOWN_ACTIONS))}")
    if {"issue.ignored", "issue.archived"} & set(actions):
        # Sentry sends archive as `ignored` although its docs say `archived` (SPEC §10): one switch.
        actions = [*actions, "issue.ignored", "issue.archived"]
    levels = [lv.lower() for lv in _str_list(data.get("levels", settings.relay_levels), "SENTRY_AUTOFIX_RELAY_LEVELS")]
    bad_levels = sorted(set(levels) - LEVELS)
    if bad_levels:
        raise ConfigError(f"SENTRY_AUTOFIX_RELAY_LEVELS: unknown {bad_levels}; known: {', '.join(sorted(LEVELS))}")
    return RelayConfig(
        secret=secret.encode("utf-8"),
        routes=routes,
        default_route=default_route,
        event_type=event_type,
        actions=frozenset(actions),
        levels=frozenset(levels),
        org=settings.sentry_org,
        dedup_window=settings.relay_dedup_window,
        rate_limit=settings.relay_rate_limit,
        rate_window=settings.relay_rate_window,
        max_body=settings.relay_max_body,
        max_retry_age=settings.relay_max_retry_age,
        replay_window=settings.relay_replay_window,
    )
