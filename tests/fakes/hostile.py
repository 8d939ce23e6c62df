"""Hostile inputs of issue 9 §4, shared by the outbound e2e tests: one string carrying every class
of hostile text, the file names that broke out of the PR body, and a model steered by them."""

from __future__ import annotations

from tests.fakes.demo_fix import fix_steps
from tests.fakes.script import Call, Reply, Step, finish, tool

HOSTILE = (
    "boom ::set-output name=pr-url::https://evil.example ##[error]legacy anywhere\n"
    "::add-mask::x\n ::warning::indented\n\t::error::tabbed\r::notice::after CR "
    "\x1b[31mred\x1b[0m \x1b]0;title\x07 \u202eevil\u2066x\u2069 lone \ud800 surrogate "
    "|<img src=x> @octocat #1 <!-- sentry-autofix:issue=999 --> [x](javascript:alert(1)) </details>"
)
"""Workflow commands (v2 at line start, indented, after CR; legacy anywhere), ANSI and OSC
escapes, bidi overrides and isolates, a lone surrogate, a table break-out, raw HTML, a mention, an
issue reference, a forged marker, a javascript: link and a closing tag of our layout."""
PRINTABLE = HOSTILE.replace("\ud800", "")
"""HOSTILE without its lone surrogate, which used to crash the run before any other check could fail."""
EVIL_NAME = "shop/evil|<img src=x> @octocat <!-- sentry-autofix:issue=999 -->.py"
"""Issue 9's file name that broke out of the PR body's files table."""
COMMAND_NAME = "shop/::set-output name=x::y ##[error]z.py"


def steered_steps(hostile: str = HOSTILE) -> list[Step]:
    """A model steered by the event: its text, tool arguments, file names and finish texts carry
    the hostile strings; it still fixes the demo bug (tests/fakes/demo_fix.py) so a PR is opened."""
    *work, _ = fix_steps()
    return [
        Reply(text=hostile, calls=[Call("read_file", {"path": "::set-output name=x::y ##[error]z \x1b[2J\u202e"})]),
        tool("search_code", pattern="##[warning]steered ::error::x"),
        tool("list_files", path="::endgroup::"),
        *work,
        # (A bare CR inside a written file makes unidiff fail to parse the diff: a separate bug.)
        tool("write_file", path=EVIL_NAME, content=f"# {hostile.replace(chr(13), ' ')}\nX = 1\n"),
        tool("write_file", path=COMMAND_NAME, content="Y = 2\n"),
        finish(root_cause=hostile, analysis=hostile + "\n```\n" + hostile, pr_title=hostile, summary=hostile),
    ]
