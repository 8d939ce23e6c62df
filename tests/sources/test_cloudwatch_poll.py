"""`poll` over CloudWatch Logs: the same selection, matrix and dispatch as for Sentry, with ids that
carry their source so an open PR's marker dedups the error across runs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from sentry_autofix.config import Settings
from sentry_autofix.delivery.github import GitHubHost
from sentry_autofix.markers import issue_ids_in, marker_for
from sentry_autofix.poll import poll_command
from sentry_autofix.sources import source_of
from sentry_autofix.sources.cloudwatch import CloudWatchSource
from tests.poll.fakes import FakeGitHub, FakeGitItem

from .test_cloudwatch import END_MS, NOW, RAW, client, event, matches_params


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def _args(**over: Any) -> argparse.Namespace:
    base: dict[str, Any] = dict(
        project=None,
        max_issues=None,
        min_events=None,
        period=None,
        level=None,
        priority=None,
        environment=None,
        query=None,
        no_claim=False,
        matrix=True,
        dispatch=False,
    )
    base.update(over)
    return argparse.Namespace(**base)


def _cloudwatch(stub_client: Any) -> tuple[CloudWatchSource, Stubber]:
    stub = Stubber(stub_client)
    texts = [(RAW / name).read_text() for name in ("node_total.txt", "go_divide.txt", "node_total.txt")]
    events = [event(f"s{i}", END_MS - 60_000 * (i + 1), text) for i, text in enumerate(texts)]
    stub.add_response("filter_log_events", {"events": events}, matches_params())
    settings = Settings(cloudwatch_log_groups=["/ecs/shop-web"], error_source="cloudwatch")
    return CloudWatchSource(settings, client=stub_client, clock=lambda: NOW), stub


def test_markers__carry_the_source() -> None:
    """The marker of a CloudWatch error names it with its source; Sentry's numeric ids are unchanged."""
    assert (
        marker_for("cloudwatch-0a1b2c3d4e5f60718293") == "<!-- sentry-autofix:issue=cloudwatch-0a1b2c3d4e5f60718293 -->"
    )
    assert issue_ids_in(marker_for("rollbar-272505123") + "\n" + marker_for("42")) == {"rollbar-272505123", "42"}
    assert issue_ids_in(marker_for("datadog-4a1f0c4e-5b3e-11ef-8f2a-da7ad0900002")) == {
        "datadog-4a1f0c4e-5b3e-11ef-8f2a-da7ad0900002"
    }
    with pytest.raises(ValueError, match="resolved issue id"):
        marker_for("evil -->")
    assert source_of("cloudwatch-abc") == ("cloudwatch", "abc") and source_of("APP-1F") == ("sentry", "APP-1F")


def test_poll_matrix__cloudwatch_groups_become_jobs_and_open_prs_are_skipped(
    github: FakeGitHub, tmp_path: Path, capsys: Any
) -> None:
    """Two groups in the window (a Node error twice, a Go panic once): the Go one already has an open
    PR carrying its marker, so only the Node one is picked; one FilterLogEvents call, one search."""
    c = client()
    cw, stub = _cloudwatch(c)
    with stub:
        go_id = next(i.id for i in cw.list_issues() if i.platform == "go")
    github.add(FakeGitItem(number=7, kind="pr", body=f"Fix\n\n{marker_for(go_id)}\n"))
    settings = Settings(cloudwatch_log_groups=["/ecs/shop-web"], error_source="cloudwatch", poll_claim=True)
    gh = GitHubHost(
        Settings(
            github_api_url=github.url,
            github_token=github.token,
            github_repository=github.repository,
            github_write_interval=0.0,
        )
    )
    code = poll_command(_args(), settings, source=cw, host=gh)  # type: ignore[arg-type]
    captured = capsys.readouterr()
    assert code == 0, captured.err
    matrix = json.loads(captured.out)
    assert len(matrix["include"]) == 1
    entry = matrix["include"][0]
    assert entry["issue_id"].startswith("cloudwatch-") and entry["issue_id"] != go_id
    assert entry["project"] == ""
    assert f"skip {go_id} ({go_id}): open PR #7" in captured.err
    assert "polling cloudwatch" in captured.err
    assert cw.calls == 1 and len(github.calls("GET", "/search/issues")) == 1
    assert not github.dispatches


def test_run_build_source__the_issue_id_picks_the_source() -> None:
    """`run` with `cloudwatch-…` (from a matrix or a dispatch) builds the CloudWatch source; a number, Sentry's."""
    from sentry_autofix.run import build_source
    from sentry_autofix.sources.sentry import SentryClient

    settings = Settings(cloudwatch_region="eu-west-1", sentry_auth_token="t", sentry_org="acme")
    assert isinstance(build_source(settings, "cloudwatch-0a1b2c3d4e5f60718293"), CloudWatchSource)
    assert isinstance(build_source(settings, "12345"), SentryClient)
    assert isinstance(build_source(settings.model_copy(update={"error_source": "cloudwatch"})), CloudWatchSource)
