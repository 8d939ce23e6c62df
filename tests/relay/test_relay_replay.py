"""The replay bound: Sentry signs only the body, so a captured webhook stays validly signed forever.
A fix-starting webhook is forwarded only while the issue/event time inside the signed body is
within the replay window (default 3600 s, the dedup window): a replay is then either a duplicate of
its original or ignored. Before, a captured body was dispatched again every dedup window, up to the
per-issue daily limit, forever."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from relay_helpers import Hooks, compact, fresh, headers_for

from sentry_autofix.relay.app import Relay
from sentry_autofix.relay.config import RelayConfig
from sentry_autofix.relay.store import SQLiteStore

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def relay(make_config: Callable[..., RelayConfig], store: SQLiteStore, clock: Clock) -> Relay:
    config = make_config(
        relay_replay_window=3600,
        relay_actions="issue.created,issue.unresolved,event_alert.triggered,error.created,issue.resolved",
    )
    return Relay(config, store, clock=clock)


def _post(relay: Relay, body: bytes, resource: str) -> tuple[int, dict[str, object]]:
    return relay.handle(headers_for(body, resource), body)


@pytest.mark.parametrize(
    ("fixture", "resource"),
    [("issue.created.json", "issue"), ("event_alert.triggered.json", "event_alert"), ("error.created.json", "error")],
)
def test_replay__a_captured_webhook_is_a_duplicate_then_ignored_forever(
    relay: Relay, clock: Clock, hooks: Hooks, fixture: str, resource: str
) -> None:
    body = compact(fresh(hooks.doc(fixture), NOW - 5))
    assert _post(relay, body, resource)[0] == 202
    clock.now += 1800  # replayed within the window: its original is still in the dedup window
    assert _post(relay, body, resource)[1]["status"] == "duplicate"
    for days in (1 / 24 + 0.01, 1, 30):  # after the dedup window: outside the replay window too
        clock.now = NOW + days * 86400
        status, answer = _post(relay, body, resource)
        assert (status, answer["status"], answer["reason"]) == (200, "ignored", "older than the replay window")
    assert relay.store.stats(now=clock.now)["pending"] == 1
    assert relay.counters.snapshot()["ignored_stale"] == 3


def test_replay__sentry_s_published_bodies_are_stale_now(relay: Relay, hooks: Hooks) -> None:
    """The fixtures' issue (2025) and event (2019) times are far outside any window."""
    for fixture, resource in [("issue.created.json", "issue"), ("event_alert.triggered.json", "event_alert")]:
        body = hooks.bytes(fixture)
        assert _post(relay, body, resource)[1]["status"] == "ignored"


def test_replay__event_time_far_in_the_future_is_ignored(relay: Relay, hooks: Hooks) -> None:
    body = compact(fresh(hooks.doc("issue.created.json"), NOW + 3600))
    assert _post(relay, body, "issue")[1]["reason"] == "issue or event time ahead of the relay's clock"
    slightly_ahead = compact(fresh(hooks.doc("error.created.json"), NOW + 60))  # clock drift is fine
    assert _post(relay, slightly_ahead, "error")[0] == 202


def test_replay__a_body_without_any_time_is_ignored(relay: Relay, hooks: Hooks) -> None:
    doc = hooks.doc("issue.created.json")
    del doc["data"]["issue"]["lastSeen"], doc["data"]["issue"]["firstSeen"]
    body = compact(doc)
    assert _post(relay, body, "issue")[1]["reason"] == "no issue or event time in the body (replay bound)"


def test_replay__the_event_s_received_time_wins_over_the_sdk_timestamp(relay: Relay, hooks: Hooks) -> None:
    """`received` is Sentry's ingestion time; the SDK's `timestamp` is whatever the app says."""
    doc = fresh(hooks.doc("error.created.json"), NOW - 10)
    doc["data"]["error"]["received"] = NOW - 7200
    assert _post(relay, compact(doc), "error")[1]["status"] == "ignored"


def test_replay__resolved_annotations_are_not_bound_by_last_seen(relay: Relay, hooks: Hooks) -> None:
    """A user resolves an issue last seen weeks ago: that webhook is legitimate and starts no fix."""
    doc = fresh(hooks.doc("issue.created.json"), NOW - 30 * 86400)
    doc["action"] = "resolved"
    assert _post(relay, compact(doc), "issue")[0] == 202


def test_replay__window_zero_switches_the_bound_off(
    make_config: Callable[..., RelayConfig], store: SQLiteStore, hooks: Hooks
) -> None:
    relay = Relay(make_config(relay_replay_window=0), store, clock=time.time)
    body = hooks.bytes("issue.created.json")
    assert _post(relay, body, "issue")[0] == 202
