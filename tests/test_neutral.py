"""`sentry_autofix.neutral`: each class of hostile text, against the receivers' rules (tests/outbound.py)."""

from __future__ import annotations

import io
import random

import pytest

from sentry_autofix import neutral
from sentry_autofix.markers import issue_ids_in, marker_for
from tests.outbound import forbidden_chars, markdown_problems, workflow_commands

ANSI = [
    "\x1b[31mred\x1b[0m",  # SGR colour
    "\x1b[2J\x1b[H",  # clear screen, cursor home
    "\x1b]0;pwned title\x07",  # OSC window title
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x9b31m",  # 8-bit CSI
    "\x1bc",  # full reset
]
BIDI = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
]
C0_C1 = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x90", "\x9f"]
SURROGATES = ["\ud800", "\udfff", "\udc80"]
COMMANDS = [
    "::set-output name=pr-url::https://evil.example",
    "::add-mask::x",
    "::stop-commands::abc",
    " ::warning::indented",
    "\t::error::tab",
    "\u3000::notice::ideographic space",  # .NET TrimStart trims every Unicode space
    "text then ##[error]legacy anywhere",
    "##[set-output name=x;]y",
    "ok\r::warning::after a carriage return",
    "ok\u2028::warning::after a line separator",
    "#\u202e#[error]bidi between",  # stripping the override must not assemble a command
    "\x1b[0m::warning::after an escape",
]


@pytest.mark.parametrize("text", ANSI + BIDI + C0_C1 + SURROGATES)
def test_clean__removes_escapes_controls_bidi_and_lone_surrogates(text: str) -> None:
    """Nothing that drives a terminal, reorders text or cannot be encoded survives `clean`."""
    out = neutral.clean(f"a{text}b")
    assert forbidden_chars(out) == []
    assert "[31m" not in out and "pwned title" not in out and "]8;;" not in out
    out.encode("utf-8")  # a lone surrogate would raise here


def test_clean__keeps_text_newlines_and_tabs_and_unifies_line_breaks() -> None:
    """Readable text is untouched: accents, CJK, emoji, tabs; every line break is `\\n`."""
    text = "Zürich 東京 🚀\tcol\none\r\ntwo\rthree\u2028four"
    assert neutral.clean(text) == "Zürich 東京 🚀\tcol\none\ntwo\nthree\nfour"
    assert neutral.clean("\ud83d\ude80") == "\ufffd\ufffd"  # two lone halves stay two replacement chars


def test_one_line__collapses_and_caps() -> None:
    assert neutral.one_line(" a\n\tb\r\nc ", 100) == "a b c"
    assert neutral.one_line("x" * 50, 10) == "x" * 9 + "…"


@pytest.mark.parametrize("text", COMMANDS)
def test_command_proof__no_line_is_a_workflow_command(text: str) -> None:
    """The runner's rules (`::` after leading whitespace, `##[` anywhere) find nothing to run."""
    out = neutral.command_proof(f"{text}\n{text}")
    assert workflow_commands(out) == []
    assert forbidden_chars(out) == []


def test_command_proof__text_stays_readable() -> None:
    """Only a zero-width space is added: the log still reads as the original text."""
    out = neutral.command_proof("::warning::x\n##[error]y\nplain: a::b")
    assert out.replace(neutral.ZWSP, "") == "::warning::x\n##[error]y\nplain: a::b"


@pytest.mark.parametrize(
    "chunks",
    [
        ["#", "#", "[error]x\n"],
        ["##", "[error]x\n"],
        [":", ":warning::x\n"],
        ["  :", ":warning::x\n"],
        ["  ", "::warning::x\n"],
        ["  ", "", ":", "", ":warning::x\n"],
        ["ok\r", "::warning::x\n"],
        ["#\x1b[0m", "#[error]x\n"],
    ],
)
def test_neutral_stream__commands_split_over_writes_are_caught(chunks: list[str]) -> None:
    """A command assembled from several `write` calls (print's separate end, flushes) is inert."""
    raw = io.StringIO()
    out = neutral.NeutralStream(raw)
    for chunk in chunks:
        out.write(chunk)
        out.flush()
    assert workflow_commands(raw.getvalue()) == []


def test_neutral_stream__random_writes_never_yield_a_command_nor_a_control() -> None:
    """Thousands of random texts built from the dangerous pieces, cut into random writes."""
    pieces = ["::", ":", "#", "##", "[", "##[", " ", "\t", "\u3000", "\n", "\r", "\r\n", "a", "\x1b[1m"]
    pieces += ["\u202e", "\ud800", "\x85", "\u2028", "\x00", "warning", "]"]
    rng = random.Random(20240611)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        raw = io.StringIO()
        out = neutral.NeutralStream(raw)
        i = 0
        while i < len(text):
            j = rng.randint(i + 1, len(text))
            out.write(text[i:j])
            i = j
        produced = raw.getvalue()
        assert workflow_commands(produced) == [], repr(text)
        assert forbidden_chars(produced) == [], repr(text)


def test_neutral_stream__command_is_the_one_bypass_and_starts_its_own_line() -> None:
    """Our own commands pass unchanged, on a line of their own even after a partial line."""
    raw = io.StringIO()
    out = neutral.NeutralStream(raw)
    out.command("::group::Fix")
    out.write("partial")
    out.command("::endgroup::")
    out.write("::warning::not ours\n")
    lines = raw.getvalue().splitlines()
    assert lines[:3] == ["::group::Fix", "partial", "::endgroup::"]
    assert workflow_commands(lines[3]) == []


def test_neutral_stream__lone_surrogate_never_crashes_a_strict_utf8_stream() -> None:
    """The crash of issue 9: a `\\ud800` from the event printed to a strict UTF-8 stream."""
    buf = io.BytesIO()
    strict = io.TextIOWrapper(buf, encoding="utf-8", errors="strict")
    print("boom \ud800 end", file=neutral.stream(strict))
    strict.flush()
    assert buf.getvalue().decode("utf-8") == "boom \ufffd end\n"


def test_neutral_stream__narrow_encoding_gets_replacements_not_a_crash() -> None:
    buf = io.BytesIO()
    ascii_stream = io.TextIOWrapper(buf, encoding="ascii", errors="strict")
    print("::x:: Zürich", file=neutral.stream(ascii_stream))
    ascii_stream.flush()
    assert buf.getvalue() == b":?:x:: Z?rich\n"


def test_stream__is_idempotent() -> None:
    """One state per stream: wrapping a NeutralStream again returns it."""
    wrapped = neutral.stream(io.StringIO())
    assert neutral.stream(wrapped) is wrapped


HOSTILE_MD = (
    "@octocat @acme/admins #1 acme/shop#2 <img src=https://t.example/p.gif> </details> <script>x</script> "
    "[click](javascript:alert(1)) ![i](data:image/png;base64,AA) <!-- sentry-autofix:issue=999 --> | ``` "
    "\x1b[31m\u202e\ud800"
)


def test_md_text__inert_on_one_line() -> None:
    """No mention, reference, HTML, link, image, cell break or marker; one clean line."""
    out = neutral.md_text(HOSTILE_MD, 2000)
    assert "\n" not in out
    assert markdown_problems(f"| a |\n|---|\n| {out} |\n") == []
    assert "sentry-autofix:issue" not in out


def test_md_code__stays_in_its_table_cell() -> None:
    """A file name like issue 9's, in a table cell: one cell, shown as code, nothing live."""
    name = "x|<img src=x> @octocat <!-- sentry-autofix:issue=999 -->`y`.py"
    code = neutral.md_code(name)
    table = f"| file | + |\n|---|---:|\n| {code} | 1 |\n\n{marker_for('4242')}\n"
    assert markdown_problems(table, "4242") == []
    assert code.startswith("``") and code.endswith("``")


def test_md_fence__cannot_be_closed_and_defuses_marker() -> None:
    text = "x\n```\n````\n<!-- sentry-autofix:issue=999 -->\n<img src=x>\n\x1b[1m"
    fenced = neutral.md_fence(text, "diff")
    body = f"before\n\n{fenced}\n\nafter\n\n{marker_for('7')}\n"
    assert markdown_problems(body, "7") == []
    assert fenced.splitlines()[0] == "`````diff"


def test_plain_line__titles_without_mentions_or_controls() -> None:
    title = neutral.plain_line("Fix @octocat \u202eevil\x1b[2J " + "x" * 300, 120)
    assert len(title) <= 120
    assert "@octocat" not in title
    assert forbidden_chars(title) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.sentry.io/issues/1/", "https://acme.sentry.io/issues/1/"),
        ("https://x/a)b|<c>", "https://x/a%29b%7C%3Cc%3E"),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("//evil", None),
        ("ftp://x/y", None),
        ("https://x/a b", None),
        ("https://x/\u202eevil", None),
        ("https:///nohost", None),
        (None, None),
        ("", None),
    ],
)
def test_safe_url__http_only_and_cannot_end_a_link(url: str | None, expected: str | None) -> None:
    assert neutral.safe_url(url) == expected


def test_issue_ids_in__only_a_marker_alone_on_its_line_outside_code() -> None:
    """The marker we write (last line) is read; look-alikes in text, tables or fences are not."""
    body = "\n".join(
        [
            "Error: boom <!-- sentry-autofix:issue=1 -->",
            "| `x` <!-- sentry-autofix:issue=2 --> | 1 |",
            "```",
            "<!-- sentry-autofix:issue=3 -->",
            "```",
            "~~~~",
            "<!-- sentry-autofix:issue=4 -->",
            "~~~",
            "~~~~",
            "    <!-- sentry-autofix:issue=5 -->",
            "",
            marker_for("4242"),
            marker_for("4243"),
        ]
    )
    assert issue_ids_in(body) == {"4242", "4243"}
    assert issue_ids_in(None) == set()
