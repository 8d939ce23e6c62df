"""`sentry-autofix triage --traceback` as a user runs it: a subprocess, real captured crashes, and
hostile input that must end in one line and exit code 2, never a Python traceback of ours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT
from ..tracebacks_wrap import cloudwatch_tail, json_record

DEMO = REPO_ROOT / "examples" / "demo"
RAW = Path(__file__).resolve().parents[1] / "fixtures" / "tracebacks" / "raw"


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sentry_autofix", *args], capture_output=True, input=stdin, timeout=120
    )


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("demo") / "shop"
    subprocess.run([sys.executable, str(DEMO / "build_workspace.py"), str(dest)], check=True, capture_output=True)
    return dest


def test_triage_help__shows_how_to_feed_a_traceback() -> None:
    out = " ".join(cli("triage", "--help").stdout.decode().split())
    assert "--traceback FILE" in out and "'-' reads stdin" in out and "CloudWatch" in out


def test_triage_cli__traceback_file_maps_the_demo_crash(demo_workspace: Path) -> None:
    """A `logging.exception` capture from /srv/shop/releases/1.4.0 lands on the repo's shop/cart.py:29,
    verified against the source line Python printed; blame names the commit that broke it."""
    proc = cli(
        "triage", "--traceback", str(RAW / "demo_logging.txt"), "--workspace", str(demo_workspace), "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    top = report["suspects"][0]
    assert (top["path"], top["line"], top["function"]) == ("shop/cart.py", 29, "average_item_price")
    assert report["frames"][-1]["verified"] is True
    assert report["error"]["headline"] == "ZeroDivisionError: division by zero"
    assert report["suspect_commits"][0]["summary"] == "Simplify cart statistics"


@pytest.mark.parametrize("wrap", [cloudwatch_tail, json_record])
def test_triage_cli__traceback_on_stdin_inside_log_lines(demo_workspace: Path, wrap) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "triage",
        "--traceback",
        "-",
        "--workspace",
        str(demo_workspace),
        "--format",
        "markdown",
        stdin=wrap((RAW / "demo_logging.txt").read_text()).encode(),
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.startswith("# `ZeroDivisionError: division by zero`")
    assert "| 1 | `shop/cart.py` | 29 |" in text


def _one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback (most recent call last)" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("sentry-autofix: error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"x" * (10 * 1024 * 1024), "at most 5 MiB"),
        (bytes(range(256)) * 1000, "binary data"),
        (b"\xff\xfe\xfd" * 10000, "not UTF-8"),
        (b"all good\nnothing to see\n", "no stack trace found"),
        (b"", "no stack trace found"),
        (b"[" * 200_000, "no stack trace found"),
    ],
)
def test_triage_cli__hostile_traceback_text_one_line_exit_2(tmp_path: Path, content: bytes, needle: str) -> None:
    bad = tmp_path / "bad.log"
    bad.write_bytes(content)
    proc = cli("triage", "--traceback", str(bad), "--workspace", str(tmp_path))
    assert proc.returncode == 2
    assert needle in _one_error_line(proc)


def test_triage_cli__hostile_but_parseable_text_is_triaged(tmp_path: Path) -> None:
    """100k frames, ANSI codes, lone surrogate bytes and NULs in a frame: parsed, capped, printed
    without a traceback of ours (surrogates never reach stdout)."""
    frames = "".join(f'  File "/srv/d.py", line {i}, in f\n' for i in range(100_000))  # 3.3 MB
    text = b"\x1b[31mTraceback (most recent call last):\x1b[0m\n" + frames.encode()
    text += b"RecursionError: maximum recursion depth exceeded \xed\xa0\x80\n"
    path = tmp_path / "deep.log"
    path.write_bytes(text)
    proc = cli("triage", "--traceback", str(path), "--workspace", str(tmp_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["frames"]) == 250
    assert report["error"]["type"] == "RecursionError"
    assert "Traceback" not in proc.stderr.decode()


def test_triage_cli__traceback_file_errors(tmp_path: Path) -> None:
    assert "traceback file not found" in _one_error_line(cli("triage", "--traceback", str(tmp_path / "nope")))
    assert "is a directory" in _one_error_line(cli("triage", "--traceback", str(tmp_path)))
    both = cli("triage", "--traceback", "-", "--event-file", "x.json")
    assert both.returncode == 2 and b"not allowed with" in both.stderr
