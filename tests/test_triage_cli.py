"""`sentry-autofix triage` as a user runs it: a subprocess, real events, real git workspaces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, shared_fixture_dir
from .gitrepo import commit, make_repo

DEMO = REPO_ROOT / "examples" / "demo"
HERE = Path(__file__).resolve().parent


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentry_autofix", *args],
        capture_output=True,
        text=True,
        input=stdin.decode() if stdin else None,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("demo") / "shop"
    subprocess.run([sys.executable, str(DEMO / "build_workspace.py"), str(dest)], check=True, capture_output=True)
    return dest


def test_triage__demo_json_matches_the_spec_shape(demo_workspace: Path) -> None:
    proc = cli(
        "triage", "--event-file", str(DEMO / "event.json"), "--workspace", str(demo_workspace), "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {"issue", "frames", "suspects", "suspect_commits"} <= report.keys()
    frames = report["frames"]
    assert [f["path"] for f in frames] == [None, "shop/views.py", "shop/cart.py"], "Sentry's order, crash last"
    assert all(set(f) >= {"path", "line", "function", "in_app"} for f in frames)
    assert frames[-1] == {**frames[-1], "line": 29, "function": "average_item_price", "in_app": True}
    top = report["suspects"][0]
    assert (top["path"], top["line"], top["function"]) == ("shop/cart.py", 29, "average_item_price")
    assert isinstance(top["score"], float)
    assert report["suspect_commits"][0]["summary"] == "Simplify cart statistics"
    assert report["issue"]["release"] == "shop@1.4.0"
    assert "frames mapped" in proc.stderr, "progress goes to stderr"


def test_triage__demo_markdown_report_and_out_file(demo_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    proc = cli(
        "triage", "--event-file", str(DEMO / "event.json"), "--workspace", str(demo_workspace), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    text = out.read_text()
    assert text.startswith("# `ZeroDivisionError: division by zero`")
    assert "> 29 |     return round(cart.total() / units, 2)" in text, "code comes from the workspace"
    assert "Simplify cart statistics" in text and "Bob Quick" in text


def _capture(tmp_path: Path, target: str, *paths: Path) -> Path:
    out = tmp_path / "event.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "sdk_capture.py"), str(out), target, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def _top3(event_file: Path, workspace: Path) -> list[str]:
    proc = cli("triage", "--event-file", str(event_file), "--workspace", str(workspace), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return [s["path"] for s in json.loads(proc.stdout)["suspects"][:3]]


def test_triage__real_sdk_event_src_layout_installed_in_site_packages(tmp_path: Path) -> None:
    pricing = (
        "RATES = {'EUR': 1.0, 'USD': 1.1}\n\n\ndef convert(amount, currency):\n    return amount * RATES[currency]\n"
    )
    orders = (
        "from mypkg.pricing import convert\n\n\nclass OrderError(Exception):\n    pass\n\n\n"
        "def total(order):\n    try:\n        return convert(order['amount'], order['currency'])\n"
        "    except KeyError as exc:\n        raise OrderError('cannot price order') from exc\n\n\n"
        "def crash():\n    total({'amount': 3, 'currency': 'GBP'})\n"
    )
    files = {
        "src/mypkg/__init__.py": "",
        "src/mypkg/pricing.py": pricing,
        "src/mypkg/orders.py": orders,
        "pyproject.toml": "",
    }
    repo = make_repo(tmp_path / "repo", files)
    site = tmp_path / "deploy" / "venv" / "lib" / "python3.11" / "site-packages"
    for rel, text in files.items():
        if rel.startswith("src/"):
            target = site / rel[len("src/") :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    event = _capture(tmp_path, "mypkg.orders:crash", site)
    raw = json.loads(event.read_text())
    assert len(raw["exception"]["values"]) == 2, "real chained exception"
    assert raw["exception"]["values"][0]["stacktrace"]["frames"][-1]["in_app"] is False, "SDK sees site-packages"
    top = _top3(event, repo)
    assert top[0] == "src/mypkg/pricing.py"
    assert "src/mypkg/orders.py" in top


def test_triage__real_sdk_event_app_deployed_under_slash_app(tmp_path: Path) -> None:
    files = {
        "app.py": "from handlers.users import profile\n\n\ndef crash():\n    profile({'id': 1})\n",
        "handlers/__init__.py": "",
        "handlers/users.py": "def profile(user):\n    name = user['name']\n    return {'name': name.title()}\n",
        "handlers/orders.py": "def list_orders():\n    return []\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    deploy = tmp_path / "app"
    for rel, text in files.items():
        (deploy / rel).parent.mkdir(parents=True, exist_ok=True)
        (deploy / rel).write_text(text)
    commit(
        repo,
        {"handlers/users.py": files["handlers/users.py"] + "\n# moved nothing\n"},
        "touch",
        "2026-02-01T00:00:00+00:00",
    )
    top = _top3(_capture(tmp_path, "app:crash", deploy), repo)
    assert top[0] == "handlers/users.py"
    assert top[:2] == ["handlers/users.py", "app.py"]


@pytest.mark.conformance
def test_triage__every_shared_event_fixture_runs_clean(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
    events = sorted((shared_fixture_dir() / "sentry" / "events").glob("*.json"))
    for path in [*events, shared_fixture_dir() / "sentry/webhooks/event_alert.triggered.json"]:
        for fmt in ("json", "markdown"):
            proc = cli("triage", "--event-file", str(path), "--workspace", str(repo), "--format", fmt)
            assert proc.returncode == 0, (path.name, proc.stderr)
            assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"exception": {"values": [', "not valid JSON"),
        (b"\x80\x81\x82", "not UTF-8"),
        (b'{"exception": {"values": [{"type": "E", "stacktrace": {"frames": null}}]}}', None),
        (b"{}", "holds no error"),
    ],
)
def test_triage__hostile_event_files_give_one_line_and_exit_2(
    tmp_path: Path, content: bytes, needle: str | None
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    proc = cli("triage", "--event-file", str(bad), "--workspace", str(tmp_path))
    assert "Traceback" not in proc.stderr
    if needle is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sentry-autofix: error:")]
    assert len(errors) == 1 and needle in errors[0]


def test_triage__usage_errors(tmp_path: Path) -> None:
    missing = cli("triage", "--event-file", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "event file not found" in missing.stderr
    no_ws = cli("triage", "--event-file", str(DEMO / "event.json"), "--workspace", str(tmp_path / "absent"))
    assert no_ws.returncode == 2 and "--workspace" in no_ws.stderr
    no_token = cli("triage", "--issue", "123")
    assert no_token.returncode == 2 and "SENTRY_AUTH_TOKEN" in no_token.stderr
    neither = cli("triage")
    assert neither.returncode == 2
    assert cli("--version").stdout.startswith("sentry-autofix ")
    assert "--event-file" in cli("triage", "--help").stdout


def test_triage__stdin_event(demo_workspace: Path) -> None:
    proc = cli(
        "triage",
        "--event-file",
        "-",
        "--workspace",
        str(demo_workspace),
        "--format",
        "json",
        stdin=(DEMO / "event.json").read_bytes(),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["suspects"][0]["path"] == "shop/cart.py"


def test_triage__issue_from_the_sentry_api_rest_shape(demo_workspace: Path, shared_fixtures: Path) -> None:
    """`--issue` end to end: the loopback Sentry fake serves the demo crash in the REST shape
    (camelCase, `entries[]`, `context` pairs) on the organization-scoped paths."""
    import os

    from tests.delivery.conftest import ISSUE_ID, SENTRY_TOKEN, SHORT_ID, demo_api_event
    from tests.fakes.sentry_api import FakeSentry

    fake = FakeSentry(shared_fixtures / "sentry", token=SENTRY_TOKEN).start()
    try:
        fake.add_issue(
            ISSUE_ID,
            short_id=SHORT_ID,
            title="ZeroDivisionError",
            project="shop",
            event=demo_api_event(shared_fixtures),
        )
        env = {**os.environ, "SENTRY_URL": fake.url, "SENTRY_AUTH_TOKEN": SENTRY_TOKEN, "SENTRY_ORG": "acme"}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "sentry_autofix",
                "triage",
                "--issue",
                ISSUE_ID,
                "--workspace",
                str(demo_workspace),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["issue"]["id"] == ISSUE_ID and report["issue"]["short_id"] == SHORT_ID
        assert report["suspects"][0]["path"] == "shop/cart.py"
        assert report["frames"][-1]["verified"] is True, "REST context pairs were compared with the workspace"
        bad = subprocess.run(
            [sys.executable, "-m", "sentry_autofix", "triage", "--issue", ISSUE_ID, "--workspace", str(demo_workspace)],
            capture_output=True,
            text=True,
            env={**env, "SENTRY_AUTH_TOKEN": "wrong"},
            timeout=60,
        )
        assert bad.returncode == 1 and "SENTRY_AUTH_TOKEN" in bad.stderr and "wrong" not in bad.stderr
    finally:
        fake.stop()
