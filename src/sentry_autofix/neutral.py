"""Outbound text stays text: what we print, post or send can only be read, never obeyed.

Everything that came from Sentry, from the model or from the repository's processes is hostile
(anyone can make the app raise any message; the model may be steered by it). Three kinds of
destination, three sets of rules, all in this module so there is one place to audit:

* **Every destination** — `clean`: ANSI escape sequences, C0/C1 control characters (except
  `\\n` and `\\t`), bidirectional overrides/isolates/marks (Trojan Source, CVE-2021-42574) and lone
  surrogates (valid JSON, `"\\ud800"`, but not encodable: `UnicodeEncodeError` on print) are
  removed or replaced; `\\r`, `\\r\\n`, U+2028/U+2029 become `\\n`.
* **A character stream the Actions runner reads (the job log)** — `NeutralStream`, one per
  stdout/stderr (`cli.main` installs them): besides `clean`, no line can start a workflow command.
  The runner (actions/runner `ActionCommandManager`) honours `::cmd::` when a line *starts* with it
  after `TrimStart()`, and the legacy `##[cmd]` *anywhere* in a line; a zero-width space (U+200B,
  not whitespace to .NET or Python) is inserted before the second `:` and before the `[`. Our own
  commands go through `NeutralStream.command`, the single bypass.
* **GitHub markdown** (PR/issue bodies, comments, the job summary, Sentry notes) — `md_text` for
  running text, `md_code` for inline code (safe inside table cells), `md_fence` for blocks,
  `plain_line` for titles, `safe_url` for links: no HTML, no live `@mention` or `#123` reference,
  no link or image made of data, no table cell break-out, and no text that reads as our
  `<!-- sentry-autofix:issue=… -->` marker (`defuse_marker`; `markers.issue_ids_in` also only reads
  a marker alone on its line outside code).

Slack and Discord escape their own markup in `notify/slack.py` / `notify/discord.py` (vendor rules,
one module per vendor), on top of `clean` and `break_mentions` from here.
"""

from __future__ import annotations

import io
import re
from typing import Any, TextIO
from urllib.parse import urlsplit

ZWSP = "\u200b"
"""Zero-width space: invisible, but not whitespace to the runner's `TrimStart` nor to Python."""

# ESC-introduced sequences (ECMA-48): CSI `ESC [ … final`, OSC/DCS/SOS/PM/APC strings up to BEL or
# ST, and two-character escapes. Removed whole, so `\x1b[31m` leaves nothing behind.
_ANSI = r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\x1b[ -~]?|\x9b[0-?]*[ -/]*[@-~]?"
_CONTROLS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_BIDI = r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
_STRIP = re.compile(f"{_ANSI}|{_CONTROLS}|{_BIDI}")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ANY = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
"""Every character `clean` acts on: most text has none and is returned after one scan."""


def no_surrogates(value: Any) -> Any:
    """`value` (a str, or lists/dicts of them, as decoded from JSON) with every lone surrogate
    replaced by U+FFFD and nothing else changed: for data that must stay byte-exact otherwise,
    such as the file content of a model's tool call."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [no_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {no_surrogates(k): no_surrogates(v) for k, v in value.items()}
    return value


def clean(text: str) -> str:
    """`text` without terminal escapes, control characters (`\\n`, `\\t` kept), bidi controls and
    lone surrogates (→ U+FFFD); every line break becomes `\\n`. Safe to encode as UTF-8."""
    if not text or not _ANY.search(text):
        return text or ""
    text = _SURROGATE.sub("\ufffd", text)
    return _STRIP.sub("", _NEWLINES.sub("\n", text))


def one_line(text: str | None, limit: int | None = None) -> str:
    """`clean` text on a single line (runs of whitespace → one space), cut at `limit` with `…`."""
    flat = " ".join(clean(text or "").split())
    if limit is not None and len(flat) > limit:
        flat = flat[: max(0, limit - 1)] + "…"
    return flat


# --- the job log ---------------------------------------------------------------------------------

_LEGACY = re.compile(r"##\[")


def command_proof(text: str) -> str:
    """`clean(text)` in which no line can be read as a workflow command by the Actions runner."""
    out = io.StringIO()
    NeutralStream(out).write(text)
    return out.getvalue()


class NeutralStream(io.TextIOBase):
    """A text stream in front of stdout/stderr: whatever is written is `clean`ed and no line it
    produces can start a workflow command. Writes go straight through (nothing is held back, so
    progress lines and a crash's last words still appear); the state of the current line is kept
    across writes, so a command split over several `write` calls is caught too."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._lead = "start"
        """What the current line holds so far: `start` (only whitespace), `colon` (whitespace and
        one `:`) or `text`."""
        self._tail = ""
        """The last two characters written on the current line (a `##` waiting for its `[`)."""
        encoding = getattr(raw, "encoding", None) or "utf-8"
        self._narrow = None if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig") else encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.raw, "encoding", None) or "utf-8")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(getattr(self.raw, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.raw.fileno()

    def flush(self) -> None:
        if not getattr(self.raw, "closed", False):  # at interpreter exit the raw stream may go first
            self.raw.flush()

    def write(self, s: str) -> int:
        text = clean(s)
        pieces = []
        for i, segment in enumerate(text.split("\n")):
            if i:
                pieces.append("\n")
                self._lead, self._tail = "start", ""
            if segment:
                pieces.append(self._segment(segment))
        out = "".join(pieces)
        if self._narrow is not None:
            # A stream that cannot hold every character (LANG=C without UTF-8 mode) gets `?`, not a crash.
            out = out.encode(self._narrow, "replace").decode(self._narrow)
        self.raw.write(out)
        return len(s)

    def _segment(self, seg: str) -> str:
        """Neutralise the next piece of the current line (no newline inside)."""
        if self._lead == "colon":
            if seg.startswith(":"):
                seg = ZWSP + seg
            self._lead = "text"
        elif self._lead == "start":
            body = seg.lstrip()
            if body.startswith("::"):
                cut = len(seg) - len(body) + 1
                seg = seg[:cut] + ZWSP + seg[cut:]
                self._lead = "text"
            elif body == ":":
                self._lead = "colon"
            elif body:
                self._lead = "text"
        if "[" in seg:
            joined = _LEGACY.sub("##" + ZWSP + "[", self._tail + seg)
            seg = joined[len(self._tail) :]
            self._tail = joined[-2:]
        else:
            self._tail = (self._tail + seg)[-2:]
        return seg

    def command(self, line: str) -> None:
        """Write one workflow command of ours (the only way past the neutralisation), on a line of
        its own. `line` is built by `actions.Runner` with the runner's own data escaping."""
        line = clean(line)
        if not line.startswith("::add-mask::"):  # a mask must name the secret exactly
            # Data inside our command (an annotation quoting the error) holds no legacy `##[` either.
            line = _LEGACY.sub("##" + ZWSP + "[", line)
        if "\n" in line:  # pragma: no cover - Runner escapes data; a bug of ours must not open a hole
            raise ValueError("a workflow command is one line")
        prefix = "" if self._lead == "start" and not self._tail else "\n"
        self.raw.write(f"{prefix}{line}\n")
        self._lead, self._tail = "start", ""
        self.raw.flush()

    def section(self, line: str) -> None:
        """Write one GitLab log-section marker of ours (`gitlab_ci.GitLabRunner` builds it): the
        one line allowed to carry `\\r` and ESC. GitLab folds the log at `section_start:<ts>:<name>`
        followed by `\\r\\e[0K` (docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections);
        `clean` strips both characters from every other line, so text cannot forge a section."""
        if not _SECTION.fullmatch(line):
            raise ValueError("not a section marker of ours")
        prefix = "" if self._lead == "start" and not self._tail else "\n"
        self.raw.write(f"{prefix}{line}\n")
        self._lead, self._tail = "start", ""
        self.raw.flush()


_SECTION = re.compile(
    r"\x1b\[0Ksection_(?:start|end):[0-9]{1,12}:[a-z0-9_]{1,64}(?:\[collapsed=true\])?\r\x1b\[0K"
    r"[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]*"
)


def stream(raw: TextIO | NeutralStream) -> NeutralStream:
    """`raw` behind a NeutralStream (itself when it already is one: one state per stream)."""
    return raw if isinstance(raw, NeutralStream) else NeutralStream(raw)


# --- GitHub markdown -----------------------------------------------------------------------------

_MARKERISH = re.compile(r"sentry-autofix\s*:\s*issue", re.IGNORECASE)
_MENTION = re.compile(r"@(?=\S)")
_REFERENCE = re.compile(r"(?<![\w&])#(?=\d)")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|!#~])")


def defuse_marker(text: str) -> str:
    """Text that reads like our marker's keyword no longer does (nor matches GitHub's search for it)."""
    return _MARKERISH.sub("sentry-autofix (issue)", text)


def break_mentions(text: str, joiner: str = ZWSP) -> str:
    """`@name` → `@<joiner>name`: still readable, no longer a mention (GitHub, Sentry, chat)."""
    return _MENTION.sub("@" + joiner, text)


def md_text(text: str | None, limit: int = 300) -> str:
    """Untrusted text as one line of GitHub markdown: no HTML (entities), no link, image, table
    cell or emphasis (backslash escapes), no mention or `#123` reference (zero-width space)."""
    flat = defuse_marker(one_line(text, limit))
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MD_SPECIAL.sub(r"\\\1", flat)
    flat = _REFERENCE.sub("#&#8203;", flat)
    return break_mentions(flat, "&#8203;")


def md_code(text: str | None, limit: int = 300) -> str:
    """Untrusted text as inline code, safe inside a table cell: one line, a backtick fence longer
    than any run inside, and `|` escaped (GFM splits cells at a bare `|` even inside code)."""
    flat = defuse_marker(one_line(text, limit)).replace("|", "\\|")
    if not flat:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def md_fence(text: str | None, lang: str = "", limit: int = 8_000) -> str:
    """Untrusted multi-line text in a fenced code block no content can close (kept: the end)."""
    body = clean(text or "")
    if len(body) > limit:
        body = "…(cut)…\n" + body[-limit:]
    body = defuse_marker(body)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{re.sub(r'[^A-Za-z0-9_+-]', '', lang)}\n{body.rstrip()}\n{ticks}"


def plain_line(text: str | None, limit: int = 120) -> str:
    """Untrusted text where GitHub shows plain text (titles): one clean line, no mention, no marker."""
    flat = break_mentions(defuse_marker(one_line(text)))
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


_URL_ESCAPES = {c: f"%{ord(c):02X}" for c in "\"'<>()[]\\`|^{}"}


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL fit for a markdown link or a chat button, or None. Characters that
    could end a link (`)`, `>`, `|`, quotes, brackets…) are percent-encoded; whitespace and
    control characters refuse the URL."""
    if not url or len(url) > 2000:
        return None
    url = url.strip()
    if re.search(r"[\s\x00-\x1f\x7f-\x9f]", url) or url != clean(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return "".join(_URL_ESCAPES.get(c, c) for c in url)
