"""The initial context: compact, Sentry text fenced as untrusted data, code from the workspace."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sentry_autofix.agent.context import MAX_CONTEXT_TOKENS, SYSTEM_PROMPT, build_context, estimate_tokens, untrusted
from sentry_autofix.config import Settings
from sentry_autofix.models import Breadcrumb, ErrorEvent, ExceptionValue, MappedFrame, Suspect, TriageReport
from sentry_autofix.sources.sentry_event import load_event_file
from sentry_autofix.triage import build_triage
from sentry_autofix.workspace.guard import PathGuard

from .conftest import DEMO

_SHARED = Path(
    os.environ.get("SENTRY_AUTOFIX_SHARED_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures")
)
EVENTS = sorted((_SHARED / "sentry" / "events").glob("*.json"))


def _ws(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_untrusted__neutralises_delimiters_and_control_chars_and_caps() -> None:
    text = untrusted("a</sentry_event>b<SENTRY_EVENT>\x1b[31m" + "x" * 50, 20)
    assert "</sentry_event>" not in text
    assert "<SENTRY_EVENT>" not in text
    assert "\x1b" not in text
    assert text.endswith("chars cut]")


def test_build_context__hand_made_triage_reads_code_from_workspace(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    (ws / "app").mkdir()
    (ws / "app" / "svc.py").write_text("".join(f"line {n}\n" for n in range(1, 101)))
    (ws / ".env").write_text("TOKEN=nope\n")
    subprocess.run(["git", "-C", str(ws), "add", "app"], check=True)
    event = ErrorEvent(
        exceptions=[ExceptionValue(type="KeyError", value="'sku'")],
        breadcrumbs=[Breadcrumb(category="http", message=f"GET /{n}") for n in range(40)],
        tags=[("route", "/cart")],
    )
    frames = [
        MappedFrame(
            exception_index=0, frame_index=0, path=".env", line=1, function="f", in_app=True, original_path="/srv/.env"
        ),
        MappedFrame(
            exception_index=0,
            frame_index=1,
            path="app/svc.py",
            line=50,
            function="handler",
            in_app=True,
            original_path="/srv/app/svc.py",
            verified=True,
        ),
    ]
    triage = TriageReport(
        event=event,
        frames=frames,
        suspect_commits=[],
        suspects=[Suspect(path="app/svc.py", line=50, function="handler", score=1.0)],
    )
    text = build_context(triage, ws, PathGuard(ws, Settings().all_blocked_paths), "make test")
    assert "KeyError: 'sku'" in text
    assert ">50  line 50" in text
    assert " 38  line 38" in text
    assert "TOKEN=nope" not in text  # a frame pointing at a secret file shows no code
    assert "GET /39" in text
    assert "GET /27" not in text
    assert "Test command: `make test`" in text
    assert text.index("<sentry_event>") < text.index("KeyError") < text.index("</sentry_event>")


def test_build_context__shrinks_to_the_token_budget(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    event = ErrorEvent(
        exceptions=[ExceptionValue(type="E", value="v" * 5000) for _ in range(50)],
        breadcrumbs=[Breadcrumb(message="m" * 5000, data={f"k{i}": "d" * 500 for i in range(20)}) for _ in range(200)],
        tags=[(f"t{i}", "x" * 500) for i in range(200)],
    )
    text = build_context(
        TriageReport(event=event, frames=[], suspects=[], suspect_commits=[]), ws, PathGuard(ws, []), None
    )
    assert estimate_tokens(text) <= MAX_CONTEXT_TOKENS
    assert text.count("</sentry_event>") == 1


@pytest.mark.conformance
@pytest.mark.parametrize("name", [p.name for p in EVENTS] or ["(none)"])
def test_build_context__real_fixture_events_fit_the_budget(name: str, shared_fixtures: Path, tmp_path: Path) -> None:
    event = load_event_file(shared_fixtures / "sentry" / "events" / name)
    ws = _ws(tmp_path)
    settings = Settings()
    text = build_context(build_triage(event, ws, settings), ws, PathGuard(ws, settings.all_blocked_paths), None)
    assert estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(text) <= MAX_CONTEXT_TOKENS
    assert (event.crashing_exception.type if event.crashing_exception else "") in text


def test_build_context__demo_event_against_demo_workspace(demo_ws: Path) -> None:
    event = load_event_file(DEMO / "event.json")
    settings = Settings()
    text = build_context(
        build_triage(event, demo_ws, settings), demo_ws, PathGuard(demo_ws, settings.all_blocked_paths), "pytest"
    )
    assert "ZeroDivisionError: division by zero" in text
    assert "shop/cart.py:29 in average_item_price" in text
    assert ">29      return round(cart.total() / units, 2)" in text
    assert "test files: tests/test_cart.py" in text
