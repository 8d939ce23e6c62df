"""The pure half of the relay: verification, filtering, routing and the client_payload, on Sentry's
published webhook bodies (../shared/fixtures/sentry/webhooks), signed here with a test secret.

Bodies for actions Sentry documents but does not publish an example of (unresolved, resolved,
ignored, archived) are the published `issue.created` body with `action` / `substatus` changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from relay_helpers import RESOURCE_OF, SECRET, Hooks, compact, headers_for, signature

from sentry_autofix.relay.config import RelayConfig
from sentry_autofix.relay.webhook import Forward, Ignore, Reject, decide, verify_signature

pytestmark = pytest.mark.conformance


def _forward(decision: Any) -> Forward:
    assert isinstance(decision, Forward), decision
    return decision


def _issue_variant(hooks: Hooks, action: str, substatus: str | None = None) -> bytes:
    doc = hooks.doc("issue.created.json")
    doc["action"] = action
    if substatus is not None:
        doc["data"]["issue"]["substatus"] = substatus
    return compact(doc)


# --- verification ------------------------------------------------------------------------------


def test_decide__accepts_the_exact_signed_fixture_bytes(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.json")
    assert isinstance(decide(headers_for(body, "issue"), body, make_config()), Forward)


@pytest.mark.parametrize(
    ("label", "mutate"),
    [
        ("missing", lambda h, b: ({k: v for k, v in h.items() if k != "Sentry-Hook-Signature"}, b)),
        ("empty", lambda h, b: ({**h, "Sentry-Hook-Signature": ""}, b)),
        ("other secret", lambda h, b: ({**h, "Sentry-Hook-Signature": signature(b, "not-the-secret")}, b)),
        ("truncated body", lambda h, b: (h, b[:-10])),
        ("extra byte", lambda h, b: (h, b + b" ")),
        ("re-encoded body", lambda h, b: (h, json.dumps(json.loads(b)).encode())),
        ("compacted body", lambda h, b: (h, compact(json.loads(b)))),
        ("tampered issue id", lambda h, b: (h, b.replace(b"1234567890", b"1234567891"))),
        ("sha1 of the body", lambda h, b: ({**h, "Sentry-Hook-Signature": "0" * 40}, b)),
        ("non-ascii signature", lambda h, b: ({**h, "Sentry-Hook-Signature": "é" * 64}, b)),
    ],
)
def test_decide__refuses_bad_signatures_with_401(
    hooks: Hooks, make_config: Callable[..., RelayConfig], label: str, mutate: Any
) -> None:
    body = hooks.bytes("issue.created.json")
    headers, sent = mutate(headers_for(body, "issue"), body)
    decision = decide(headers, sent, make_config())
    assert isinstance(decision, Reject), label
    assert decision.status == 401


def test_verify_signature__header_case_and_uppercase_hex_are_fine(hooks: Hooks) -> None:
    body = hooks.bytes("error.created.json")
    assert verify_signature(SECRET.encode(), body, signature(body).upper())
    assert not verify_signature(b"", body, signature(body))


def test_decide__header_names_are_case_insensitive(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.json")
    headers = {k.upper(): v for k, v in headers_for(body, "issue").items()}
    assert isinstance(decide(headers, body, make_config()), Forward)


def test_decide__body_over_the_cap_is_413_before_anything_else(
    make_config: Callable[..., RelayConfig],
) -> None:
    config = make_config(relay_max_body=2048)
    body = b"{" + b" " * 3000 + b"}"
    decision = decide(headers_for(body, "issue", secret="wrong"), body, config)
    assert decision == Reject(413, "body larger than 2048 bytes")


@pytest.mark.parametrize(
    ("body", "resource"),
    [
        (b"not json", "issue"),
        (b'{"action": "created", "data": ', "issue"),
        (b"[1, 2, 3]", "issue"),
        (b'{"action": "created"}', "issue"),
        (b'{"action": 7, "data": {}}', "issue"),
        (b'{"action": "created", "data": {"issue": "nope"}}', "issue"),
        (b'{"action": "created", "data": {}}', "issue"),
        (b'{"action": "triggered", "data": {"event": {"issue_id": "12ab"}}}', "event_alert"),
        (b'{"action": "created", "data": {"error": {"issue_id": null}}}', "error"),
        (b'{"action": "created", "data": {"issue": {"id": "1; rm -rf /"}}}', "issue"),
        (b"\xff\xfe{}", "issue"),
    ],
)
def test_decide__malformed_or_unknown_shapes_are_400(
    make_config: Callable[..., RelayConfig], body: bytes, resource: str
) -> None:
    decision = decide(headers_for(body, resource), body, make_config())
    assert isinstance(decision, Reject)
    assert decision.status == 400


def test_decide__missing_resource_header_is_400(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.json")
    headers = {k: v for k, v in headers_for(body, "issue").items() if k != "Sentry-Hook-Resource"}
    assert decide(headers, body, make_config()) == Reject(400, "missing Sentry-Hook-Resource header")


# --- filtering on resource + action --------------------------------------------------------------


def test_decide__issue_created_is_forwarded_with_the_full_payload(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.json")
    fwd = _forward(decide(headers_for(body, "issue"), body, make_config()))
    assert (fwd.repo, fwd.event_type, fwd.issue_id, fwd.dedup_group) == (
        "acme/python-app",
        "sentry-issue",
        "1234567890",
        "fix",
    )
    p = fwd.client_payload
    assert p["issue_id"] == "1234567890"
    assert p["short_id"] == "PYTHON-Y"
    assert p["project"] == "python"
    assert p["org"] == "example-org"
    assert p["action"] == "created"
    assert p["substatus"] == "new"
    assert p["level"] == "fatal"
    assert p["title"].startswith("Error generated with event_id")
    assert p["web_url"] == "https://example-org.sentry.io/issues/1234567890/"
    assert p["sentry"]["resource"] == "issue"
    assert p["sentry"]["project_id"] == "112313123123134"
    assert p["sentry"]["request_id"] == "6b0a4e8c-d41f-4d8e-bc1e-2b0f1e0f6f00"


def test_decide__issue_from_an_application_actor_is_still_processed(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    # issue.created.json's actor is {"type": "application", "id": "example-app"}: only our own
    # *comment* webhooks are ignored by actor (SPEC §11).
    body = hooks.bytes("issue.created.json")
    assert hooks.doc("issue.created.json")["actor"]["type"] == "application"
    assert isinstance(decide(headers_for(body, "issue"), body, make_config()), Forward)


def test_decide__2019_issue_body_without_urls_uses_the_configured_org(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.old-docs.json")
    config = make_config(relay_routes="front-end=acme/front-end", sentry_org="acme-org")
    p = _forward(decide(headers_for(body, "issue"), body, config)).client_payload
    assert (p["issue_id"], p["short_id"], p["project"], p["substatus"]) == (
        "1170820242",
        "FRONT-END-9",
        "front-end",
        "escalating",
    )
    assert p["org"] == "acme-org"
    assert p["web_url"] is None


@pytest.mark.parametrize("substatus", ["regressed", "escalating"])
def test_decide__issue_unresolved_is_forwarded(
    hooks: Hooks, make_config: Callable[..., RelayConfig], substatus: str
) -> None:
    body = _issue_variant(hooks, "unresolved", substatus)
    fwd = _forward(decide(headers_for(body, "issue"), body, make_config()))
    assert fwd.client_payload["action"] == "unresolved"
    assert fwd.client_payload["substatus"] == substatus
    assert fwd.dedup_group == "regression"  # not a duplicate of the issue's creation


def test_decide__event_alert_routes_on_the_numeric_project_id(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("event_alert.triggered.json")
    fwd = _forward(decide(headers_for(body, "event_alert"), body, make_config()))
    assert fwd.repo == "acme/front-end"  # route "1=acme/front-end": data.event.project is the integer 1
    p = fwd.client_payload
    assert (p["issue_id"], p["project"], p["org"], p["action"], p["level"]) == (
        "1117540176",
        "front-end",
        "test-org",
        "triggered",
        "error",
    )
    assert p["short_id"] is None
    assert p["title"] == "ReferenceError: heck is not defined"
    assert p["sentry"]["event_id"] == "e4874d664c3540c1a32eab185f12c5ab"
    assert p["sentry"]["rule"] == "Very Important Alert Rule!"


def test_decide__event_alert_routes_on_the_slug_from_its_url_too(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("event_alert.triggered.json")
    config = make_config(relay_routes="front-end=acme/by-slug")
    assert _forward(decide(headers_for(body, "event_alert"), body, config)).repo == "acme/by-slug"


def test_decide__error_created_reads_data_error(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("error.created.json")
    fwd = _forward(decide(headers_for(body, "error"), body, make_config()))
    assert fwd.issue_id == "1170820242"
    assert fwd.client_payload["sentry"]["resource"] == "error"
    assert fwd.client_payload["action"] == "created"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("installation.created.json", "installation"),
        ("installation.created.old-docs.json", "installation"),
        ("comment.created.json", "comment"),
        ("metric_alert.resolved.json", "resource not handled"),
        ("activity_alert.triggered.json", "resource not handled"),
        ("seer.root_cause_completed.json", "resource not handled"),
        ("seer.solution_completed.json", "resource not handled"),
        ("seer.coding_completed.json", "resource not handled"),
        ("seer.pr_created.json", "resource not handled"),
        ("preprod_artifact.build_distribution_completed.json", "resource not handled"),
    ],
)
def test_decide__other_resources_are_ignored_with_200(
    hooks: Hooks, make_config: Callable[..., RelayConfig], name: str, reason: str
) -> None:
    body = hooks.bytes(name)
    decision = decide(headers_for(body, RESOURCE_OF[name]), body, make_config())
    assert isinstance(decision, Ignore)
    assert decision.reason == reason


def test_decide__our_own_comment_is_ignored_by_actor(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    doc = hooks.doc("comment.created.json")
    doc["actor"] = {"type": "application", "id": "sentry-autofix", "name": "sentry-autofix"}
    body = compact(doc)
    decision = decide(headers_for(body, "comment"), body, make_config())
    assert decision == Ignore("own comment", "comment", "created")


def test_decide__resolved_and_archive_only_when_enabled(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    default = make_config()
    enabled = make_config(relay_actions="issue.created,issue.resolved,issue.archived")
    for action, group in [("resolved", "resolved"), ("ignored", "ignored"), ("archived", "ignored")]:
        body = _issue_variant(hooks, action)
        off = decide(headers_for(body, "issue"), body, default)
        assert isinstance(off, Ignore)
        assert off.reason == "action not enabled"
        on = _forward(decide(headers_for(body, "issue"), body, enabled))
        # Sentry sends archive as `ignored` although the docs say `archived`: one switch enables both.
        assert (on.client_payload["action"], on.dedup_group) == (action, group)


def test_decide__unknown_issue_actions_are_ignored(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = _issue_variant(hooks, "assigned")
    assert decide(headers_for(body, "issue"), body, make_config()) == Ignore(
        "action not handled", "issue", "assigned"
    )


def test_decide__level_filter(hooks: Hooks, make_config: Callable[..., RelayConfig]) -> None:
    body = hooks.bytes("event_alert.triggered.json")  # level "error"
    assert isinstance(
        decide(headers_for(body, "event_alert"), body, make_config(relay_levels="fatal")), Ignore
    )
    assert isinstance(
        decide(headers_for(body, "event_alert"), body, make_config(relay_levels="error,fatal")), Forward
    )


# --- routing --------------------------------------------------------------------------------------


def test_decide__unknown_project_is_ignored_without_a_default(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.json")
    config = make_config(relay_routes="other=acme/other")
    decision = decide(headers_for(body, "issue"), body, config)
    assert isinstance(decision, Ignore)
    assert (decision.reason, decision.issue_id, decision.project) == (
        "unknown project",
        "1234567890",
        "python",
    )


def test_decide__default_route_and_per_route_event_type(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    body = hooks.bytes("issue.created.json")
    config = make_config(relay_routes="other=acme/other", relay_default_repo="acme/catch-all:sentry-any")
    fwd = _forward(decide(headers_for(body, "issue"), body, config))
    assert (fwd.repo, fwd.event_type) == ("acme/catch-all", "sentry-any")
    doc = hooks.doc("issue.created.json")
    doc["data"]["issue"]["project"]["slug"] = "error-gen"
    body = compact(doc)
    fwd = _forward(decide(headers_for(body, "issue"), body, make_config()))
    assert (fwd.repo, fwd.event_type) == ("acme/errors", "custom-event")


# --- client_payload limits ----------------------------------------------------------------------------


def test_decide__hostile_huge_fields_keep_the_payload_within_githubs_limits(
    hooks: Hooks, make_config: Callable[..., RelayConfig]
) -> None:
    doc = hooks.doc("issue.created.json")
    issue = doc["data"]["issue"]
    issue["title"] = "A" * 400_000
    issue["shortId"] = "S" * 10_000
    issue["web_url"] = "https://x.sentry.io/" + "u" * 100_000
    issue["substatus"] = {"nested": ["x"] * 1000}
    issue["level"] = "L" * 5000
    issue["culprit"] = "c" * 100_000
    issue["project"]["slug"] = "python"
    body = compact(doc)
    fwd = _forward(decide(headers_for(body, "issue", **{"Request-ID": "r" * 5000}), body, make_config()))
    payload = fwd.client_payload
    assert len(payload) <= 10
    assert len(json.dumps(payload).encode()) < 64 * 1024
    assert len(payload["title"]) <= 1000
    assert payload["substatus"] is None  # not a string: dropped, not forwarded


def test_decide__web_url_must_be_http(hooks: Hooks, make_config: Callable[..., RelayConfig]) -> None:
    doc = hooks.doc("issue.created.json")
    doc["data"]["issue"]["web_url"] = "javascript:alert(1)"
    doc["data"]["issue"]["permalink"] = None
    body = compact(doc)
    assert _forward(decide(headers_for(body, "issue"), body, make_config())).client_payload["web_url"] is None


@pytest.mark.parametrize("name", ["issue.created.json", "event_alert.triggered.json", "error.created.json"])
def test_decide__every_forwarded_fixture_fits_the_payload_contract(
    hooks: Hooks, make_config: Callable[..., RelayConfig], name: str
) -> None:
    body = hooks.bytes(name)
    payload = _forward(decide(headers_for(body, RESOURCE_OF[name]), body, make_config())).client_payload
    required = {"issue_id", "short_id", "project", "org", "action", "substatus", "level", "title", "web_url"}
    assert required <= set(payload)
    assert len(payload) <= 10
    assert payload["issue_id"].isdigit()
