"""Checks on what sentry-autofix sends out, written from the receivers' rules, not from our code.

* `workflow_commands`: the GitHub Actions runner's parser (actions/runner ActionCommandManager):
  lines split at `\\r` and `\\n` (.NET `ReadLine`; we also split where Python would), a v2 command
  is a line starting with `::` after leading whitespace is trimmed, a legacy one is `##[` anywhere.
* `forbidden_chars`: terminal escapes, C0/C1 controls other than newline and tab, bidi controls,
  lone surrogates.
* `markdown_problems`: the body rendered by cmark-gfm (GitHub's renderer, raw HTML passed through
  as GitHub's sanitiser would receive it), then read as HTML: no tag that did not come from our
  own markdown, no HTML comment but our single marker, no live `@mention` or `#123` reference in
  text outside code and links, no link that is not http(s); and in the markdown itself no table
  row with more cell separators than its header.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import cmarkgfm
from cmarkgfm.cmark import Options

from sentry_autofix.markers import issue_ids_in

FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_RUNNER_LINES = re.compile(r"\r\n|\r|\n")


def workflow_commands(text: str) -> list[str]:
    """Every line of `text` the Actions runner would try to run as a workflow command."""
    lines = set(_RUNNER_LINES.split(text)) | set(text.splitlines())
    return sorted(line for line in lines if line.lstrip().startswith("::") or "##[" in line)


def forbidden_chars(text: str) -> list[str]:
    return sorted({repr(c) for c in FORBIDDEN.findall(text)})


# Tags our own markdown produces (cmark-gfm's output for headings, tables, fences, emphasis, links,
# lists, quotes) plus the two HTML tags our bodies write themselves.
_MARKDOWN_TAGS = {
    "p", "h1", "h2", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "strong", "em",
    "a", "ul", "ol", "li", "blockquote", "br", "hr", "del",
}  # fmt: skip
_OUR_HTML = {"details", "summary"}
_MENTION = re.compile(r"(?:^|[^\w`/.])@[A-Za-z0-9]")
_REFERENCE = re.compile(r"(?:^|[^\w&/])#\d")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.comments: list[str] = []
        self.hrefs: list[str] = []
        self.live_text: list[str] = []
        self._inert = 0  # inside code, pre or a link: GitHub links no mention there

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("code", "pre", "a"):
            self._inert += 1
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre", "a"):
            self._inert -= 1

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        if not self._inert:
            self.live_text.append(data)


def markdown_problems(body: str, marker_id: str | None = None) -> list[str]:
    """What in `body` would act as more than text once GitHub renders it (empty: nothing)."""
    problems = [f"character {c}" for c in forbidden_chars(body)]
    html = cmarkgfm.github_flavored_markdown_to_html(body, options=Options.CMARK_OPT_UNSAFE)
    reader = _Reader()
    reader.feed(html)
    for tag in sorted(set(reader.tags) - _MARKDOWN_TAGS - _OUR_HTML):
        problems.append(f"raw HTML tag <{tag}>")
    if reader.tags.count("details") != html.count("</details>"):
        problems.append("unbalanced <details>")
    expected = [f" sentry-autofix:issue={marker_id} "] if marker_id else []
    if reader.comments != expected:
        problems.append(f"HTML comments {reader.comments!r}, expected {expected!r}")
    ids = issue_ids_in(body)
    if ids != ({marker_id} if marker_id else set()):
        problems.append(f"markers read back: {sorted(ids)}")
    text = "".join(reader.live_text)
    for m in _MENTION.finditer(text):
        problems.append(f"live mention near {text[m.start() : m.start() + 30]!r}")
    for m in _REFERENCE.finditer(text):
        problems.append(f"live reference near {text[m.start() : m.start() + 30]!r}")
    for href in reader.hrefs:
        if not href.startswith(("https://", "http://")):
            problems.append(f"link to {href!r}")
    problems += _table_breakouts(body)
    return problems


_CELL_PIPE = re.compile(r"(?<!\\)\|")
_DELIMITER_ROW = re.compile(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")


def _table_breakouts(body: str) -> list[str]:
    """GFM splits a table row at every `|` not preceded by a backslash, inside code spans too; a
    row with more separators than its header row lets data escape into cells of its own."""
    problems = []
    lines = body.splitlines()
    header: int | None = None
    for prev, line in zip(["", *lines], lines, strict=False):
        if _DELIMITER_ROW.fullmatch(line) and prev.startswith("|"):
            header = len(_CELL_PIPE.findall(prev))
        elif header is not None and line.startswith("|"):
            if len(_CELL_PIPE.findall(line)) != header:
                problems.append(f"table row breaks out of its cells: {line[:80]!r}")
        else:
            header = None
    return problems
