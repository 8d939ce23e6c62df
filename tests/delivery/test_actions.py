"""Runner UX: GITHUB_OUTPUT with delimiters, summary limit, masks, annotations, stop-commands."""

from __future__ import annotations

import io
from pathlib import Path

from sentry_autofix.actions import SUMMARY_LIMIT, Runner


def runner(tmp_path: Path, **kw: object) -> tuple[Runner, io.StringIO]:
    out = io.StringIO()
    r = Runner(
        enabled=True,
        output_path=str(tmp_path / "out"),
        summary_path=str(tmp_path / "sum.md"),
        stream=out,
        log=io.StringIO(),
        **kw,
    )  # type: ignore[arg-type]
    return r, out


def test_set_outputs__multiline_values_use_unique_delimiters(tmp_path: Path) -> None:
    r, _ = runner(tmp_path)
    r.set_outputs({"status": "pr-opened", "note": "line1\nEOF\nghadelimiter_x\nline4"})
    text = (tmp_path / "out").read_text()
    first = text.splitlines()[0]
    name, _, delim = first.partition("<<")
    assert name == "status"
    assert delim.startswith("ghadelimiter_")
    assert len(delim) > 20
    assert "note<<" in text
    assert "line1\nEOF\nghadelimiter_x\nline4\n" in text


def test_set_outputs__scrubs_secrets(tmp_path: Path) -> None:
    r, _ = runner(tmp_path, secret_values=["s3cr3t-token-value"])
    r.set_outputs({"x": "leak s3cr3t-token-value here"})
    assert "s3cr3t" not in (tmp_path / "out").read_text()


def test_add_summary__never_exceeds_one_mebibyte(tmp_path: Path) -> None:
    r, _ = runner(tmp_path)
    r.add_summary("a" * (SUMMARY_LIMIT // 2))
    r.add_summary("é" * SUMMARY_LIMIT)
    data = (tmp_path / "sum.md").read_bytes()
    assert len(data) <= SUMMARY_LIMIT
    assert b"truncated" in data
    data.decode("utf-8")  # still valid UTF-8 after the cut


def test_mask_secrets__masks_every_line_of_every_secret(tmp_path: Path) -> None:
    r, out = runner(tmp_path, secret_values=["tok1", "-----BEGIN KEY-----\nabc\n-----END KEY-----"])
    r.mask_secrets()
    lines = out.getvalue().splitlines()
    assert lines == [
        "::add-mask::tok1",
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::abc",
        "::add-mask::-----END KEY-----",
    ]


def test_error__annotation_escapes_properties_and_newlines(tmp_path: Path) -> None:
    r, out = runner(tmp_path)
    r.error("bad\n::set-output name=x::y", file="a,b:c.py", line=7, title="T")
    assert out.getvalue() == "::error file=a%2Cb%3Ac.py,line=7,title=T::bad%0A::set-output name=x::y\n"


def test_log_untrusted__wraps_in_stop_commands_with_a_fresh_token(tmp_path: Path) -> None:
    r, out = runner(tmp_path)
    r.log_untrusted("Error:", "::warning::pwn")
    r.log_untrusted("Error:", "x")
    lines = out.getvalue().splitlines()
    t1 = lines[1].removeprefix("::stop-commands::")
    assert lines[2] == ":\u200b:warning::pwn"  # neutralised as well: defence in depth
    assert lines[3] == f"::{t1}::"
    t2 = lines[5].removeprefix("::stop-commands::")
    assert t1 != t2
    assert len(t1) == 32


def test_runner__outside_actions_prints_no_workflow_commands(tmp_path: Path) -> None:
    out, log = io.StringIO(), io.StringIO()
    r = Runner(enabled=False, secret_values=["tok123"], stream=out, log=log)
    r.mask_secrets()
    with r.group("G"):
        r.error("boom tok123", file="a.py", line=1)
    assert out.getvalue() == ""
    assert "error: a.py:1: boom ***" in log.getvalue()
