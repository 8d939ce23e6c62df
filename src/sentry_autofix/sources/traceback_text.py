"""Stack traces as programs print them → ErrorEvent: the error source that needs no vendor API.

Languages: Python (`During handling…`/direct-cause chains, SyntaxError carets, ExceptionGroup,
IPython/Jupyter 7 and 8 renderings, frames quoted without their `Traceback …` line),
Node/V8 (`at fn (file:line:col)`, `at async …`, `file:///`, `[cause]:`), Java/Kotlin (`Caused by:`,
`... N more`, `Suppressed:`), Go panics, Ruby, PHP (`Next …`, error_log) and .NET/Mono (` ---> `).

Found inside noise: ANSI colours, Slack markup (code fences, `&lt;`, `<url|label>`), JSON log
records (Docker's `{"log": …}`, a traceback in `stack_trace`/`exc_info`/`error.stack`, AWS Lambda's
`errorType`/`stackTrace`), literal `\\n` escapes, and per-line prefixes (CloudWatch, Docker,
Kubernetes, journald, syslog, compose) — learned from the frame lines themselves rather than from
a list of formats: whatever stands before `File "…"` / `at …` on a frame line is a prefix, and
lines that start with the same shape (digits and ids generalised) lose it too.

The text is attacker-controlled (anyone can make the app raise any message): bounded size, bounded
line length looked at, linear regular expressions, frames capped, and every failure is an
InputError with one readable line.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentry_autofix.errors import InputError
from sentry_autofix.models import ErrorEvent, ExceptionValue, Mechanism, StackFrame
from sentry_autofix.redact import redact_text

MAX_BYTES = 5 * 1024 * 1024
"""Largest traceback text accepted; a bigger log should be cut around the error first."""
MAX_LINE = 4000
"""Characters of one line that are looked at (a minified bundle can put megabytes on one line)."""
MAX_FRAMES = 250
MAX_EXCEPTIONS = 20
MAX_VALUE = 2000
MAX_JSON_NODES = 5000
MAX_SHAPES = 8

# --- cleaning --------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLACK_LINK = re.compile(r"<((?:https?|file|mailto)://?[^|>\s]{1,2000})(?:\|([^>]{0,2000}))?>")
_ESCAPED_NEWLINE_HINT = re.compile(
    r"\\n(?:\s*File \"|\s+at |\\tat |\\t/|goroutine |Stack trace:|#\d |Caused by:|Traceback \(most)"
)


def decode(data: bytes, origin: str) -> str:
    """Bytes of a file or stdin → text, or an InputError saying why they are not a traceback."""
    if len(data) > MAX_BYTES:
        raise InputError(
            f"{origin} is {len(data) / 1e6:.1f} MB; a stack trace may be at most {MAX_BYTES // 2**20} MiB: "
            "pass the part of the log around the error (e.g. `tail -n 5000`)"
        )
    sample = data[:65536]
    binary = sum(1 for b in sample if b < 32 and b not in (9, 10, 13, 27))
    if b"\x00" in sample or binary > max(8, len(sample) // 100):
        raise InputError(f"{origin} is binary data, not the text of a stack trace")
    text = data.decode("utf-8-sig", errors="replace")
    if text.count("\ufffd") > max(64, len(text) // 20):
        raise InputError(f"{origin} is not UTF-8 text")
    return text


def sanitize(text: str) -> str:
    """Lone surrogates (from JSON `\\ud800` escapes) and control characters out; ANSI codes out."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def _unslack(text: str) -> str:
    """Slack message markup: `<url|label>` links, `&lt;` escapes, code fences, `>` quotes."""
    if "<" in text and ("://" in text):
        text = _SLACK_LINK.sub(lambda m: m.group(2) if m.group(2) else m.group(1), text)
    if "&lt;" in text or "&gt;" in text:
        # Slack escapes exactly these three (https://api.slack.com/reference/surfaces/formatting).
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if "```" in text:
        text = text.replace("```", "\n")
    return text


# --- JSON log records ------------------------------------------------------------------------

_STACK_KEYS = (
    "stack_trace",
    "stackTrace",
    "stacktrace",
    "stack",
    "exc_info",
    "exc_text",
    "traceback",
    "exception",
    "backtrace",
    "trace",
    "error.stack",
    "err.stack",
)
_RECORD_LIST_KEYS = ("events", "logEvents", "data", "results", "hits", "records", "logs")
_MESSAGE_KEYS = ("log", "message", "msg", "MESSAGE", "@message", "textPayload", "text", "body", "line", "@m")


def _lambda_text(obj: dict[str, Any], stack: list[str]) -> list[str]:
    """AWS Lambda's error JSON: Python frames arrive without the header and the exception line."""
    lines = [line for part in stack for line in part.split("\n") if line.strip()]
    error_type, message = obj.get("errorType"), obj.get("errorMessage")
    if lines and lines[0].lstrip().startswith('File "'):
        lines.insert(0, "Traceback (most recent call last):")
        if isinstance(error_type, str):
            lines.append(f"{error_type}: {message}" if isinstance(message, str) else error_type)
    return lines


def _walk_stack(obj: Any, budget: list[int], depth: int = 0) -> list[str] | None:
    """The first traceback-looking string (or list of strings) under a stack-ish key."""
    if depth > 6 or budget[0] <= 0:
        return None
    budget[0] -= 1
    if isinstance(obj, dict):
        for key in _STACK_KEYS:
            value = obj.get(key)
            if isinstance(value, str) and "\n" in value.strip():
                return value.split("\n")
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value[:MAX_FRAMES]):
                strings = [v for v in value if isinstance(v, str)]
                if "errorType" in obj or "errorMessage" in obj:
                    return _lambda_text(obj, strings)
                return [line for part in strings for line in part.split("\n")]
        for value in list(obj.values())[:200]:
            if isinstance(value, (dict, list)):
                found = _walk_stack(value, budget, depth + 1)
                if found:
                    return found
    elif isinstance(obj, list):
        for value in obj[:200]:
            found = _walk_stack(value, budget, depth + 1)
            if found:
                return found
    return None


def _json_lines(obj: Any) -> list[str] | None:
    """A JSON log record → the lines it stands for (its stack, or its message), None if neither."""
    stack = _walk_stack(obj, [MAX_JSON_NODES])
    if stack:
        return stack
    if isinstance(obj, dict):
        for key in _MESSAGE_KEYS:
            value = obj.get(key)
            if isinstance(value, str):
                return value.rstrip("\n").split("\n")
            if isinstance(value, dict):
                inner = _json_lines(value)
                if inner is not None:
                    return inner
        for key in _RECORD_LIST_KEYS:
            # A listing of log records: `aws logs filter-log-events` / `get-log-events` output
            # (`events`), a CloudWatch subscription payload (`logEvents`), a search API's `data`.
            records = obj.get(key)
            if isinstance(records, list) and records and isinstance(records[0], dict):
                lines = [x for r in records[:50_000] for x in (_json_lines(r) or [])]
                if lines:
                    return lines
    return None


_DECODER = json.JSONDecoder()


def _expand_line(line: str) -> list[str] | None:
    """A line holding a JSON log record (after any prefix) → the lines it stands for."""
    start = line.find('{"')
    if start < 0:
        return None
    try:
        obj, _ = _DECODER.raw_decode(line, start)
    except (ValueError, RecursionError):
        return None
    lines = _json_lines(obj)
    return None if lines is None else [sanitize(x) for x in lines]


def clean_lines(text: str) -> list[str]:
    """Raw text (log excerpt, chat message, JSON) → the lines of the traceback(s) it holds."""
    text = _unslack(sanitize(text))
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            whole = json.loads(stripped)
        except (ValueError, RecursionError):
            whole = None
        if whole is not None:
            lines = _json_lines(whole) if isinstance(whole, dict) else None
            if lines is None and isinstance(whole, list):
                lines = [x for item in whole[:10000] for x in (_json_lines(item) or [])]
            if lines:
                return _strip_prefixes([sanitize(x) for x in lines])
    out: list[str] = []
    for line in text.split("\n"):
        if line.startswith("EVENTS\t") and line.count("\t") >= 5:
            # `aws logs filter-log-events --output text`: EVENTS, eventId, ingestionTime,
            # logStreamName, message, timestamp (tab-separated; the message may hold tabs).
            line = "\t".join(line.split("\t")[4:-1])
        expanded = _expand_line(line) if '{"' in line else None
        if expanded is not None:
            out.extend(expanded)
        elif "\\n" in line and _ESCAPED_NEWLINE_HINT.search(line[:200_000]):
            # A logger that escaped the newlines of a multi-line message.
            line = line.replace("\\r", "").replace("\\t", "\t").replace('\\"', '"')
            out.extend(line.split("\\n"))
        else:
            out.append(line)
    flat = out
    return _strip_prefixes(flat)


# --- per-line prefixes, learned from the frame lines ----------------------------------------

_PREFIX_ROOM = 400
"""A learned prefix (timestamp, stream, request id, level…) is at most this long."""
_KEYWORD_ANCHORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ('File "', re.compile(r'File "[^"\n]{1,1000}", line \d+')),
    ("Traceback (most recent call last):", re.compile(r"Traceback \(most recent call last\):")),
    ("at ", re.compile(r"at (?:async )?[^\s(][^\t]{0,2000}?:\d+:\d+\)?[ \t]*$")),
    (
        "at ",
        re.compile(
            r"at [\w$./<>-]{1,600}\((?:[\w$.-]{1,300}\.(?:java|kt|kts|scala|groovy|clj):\d+|Native Method"
            r"|Unknown Source)\)"
        ),
    ),
    (
        "at ",
        re.compile(
            r"at [^\t()]{1,600}\([^()\t]{0,1000}\)(?: \[0x[0-9a-fA-F]+\])? in [^\t]{1,1000}:(?:line )?\d+[ \t]*$"
        ),
    ),
    ("#", re.compile(r"#\d+ (?:[^\n(]{1,1000}\(\d+\): |\[internal function\]|\{main\})")),
    ("goroutine ", re.compile(r"goroutine \d+ \[")),
)
"""(keyword, frame pattern matched where the keyword starts): lines that begin a frame, the text
before them being a prefix. Matched only at the first few keyword positions near the line's start:
a search over the whole line would be quadratic on hostile input."""
_RB_ANCHOR = re.compile(r"[^\s:]{1,1000}\.(?:rb|rake|erb|ru):\d+:in [`']")
_GO_ANCHOR = re.compile(r"\S{1,1000}\.go:\d+(?: \+0x[0-9a-f]+)?[ \t]*$")
_IPY_HEAD_AT = re.compile(r"(?<![\w.])[A-Za-z_][\w.]{0,200} +Traceback \(most recent call last\)$")
_GROUP_HEAD = re.compile(r"(?:\+ )?(?:Exception Group )?$")


def _anchor_start(line: str) -> int | None:
    """Where a frame (or traceback header) starts in `line`, if the line is one."""
    for keyword, pattern in _KEYWORD_ANCHORS:
        pos = line.find(keyword, 0, _PREFIX_ROOM + len(keyword))
        tries = 0
        while pos >= 0 and tries < 3:
            if pattern.match(line, pos):
                if keyword.startswith("Traceback"):
                    # `+ Exception Group Traceback`: the group marker belongs to the header.
                    m = _GROUP_HEAD.search(line, 0, pos)
                    pos = m.start() if m else pos
                return pos
            tries += 1
            pos = line.find(keyword, pos + 1, _PREFIX_ROOM + len(keyword))
    pos = line.find("Traceback (most recent call last)", 0, _PREFIX_ROOM + 240)
    if pos > 0:
        # IPython's header `KeyError      Traceback (most recent call last)` starts at the type.
        m = _IPY_HEAD_AT.search(line, max(0, pos - 260), pos + 33)
        if m:
            return m.start()
    for keyword, pattern, sep in ((":in ", _RB_ANCHOR, " \t"), (".go:", _GO_ANCHOR, "\t")):
        hit = line.find(keyword, 0, 1500)
        if hit < 0:
            continue
        start = max(line.rfind(c, 0, hit) for c in sep) + 1
        if start <= _PREFIX_ROOM and pattern.match(line, start):
            if keyword == ":in " and line[max(0, start - 5) : start] == "from ":
                start -= 5
            return start
    return None


_TOKEN = re.compile(r"[0-9A-Za-z]+|[ \t]+|.", re.S)
_HEXISH = re.compile(r"[0-9a-fA-F]{4,}")


def _shape(core: str) -> str:
    """A prefix → a regex for prefixes like it: digits, hex and id-like tokens generalised."""
    out: list[str] = []
    tokens = _TOKEN.findall(core[:300])
    for i, tok in enumerate(tokens):
        if tok.isdigit():
            out.append(r"\d+")
        elif tok[0] in " \t":
            out.append(r"[ \t]+")
        elif tok.isalnum():
            digits = any(c.isdigit() for c in tok)
            out.append(r"[0-9A-Za-z]+" if digits or _HEXISH.fullmatch(tok) else re.escape(tok))
        elif tok in ".," and i + 1 < len(tokens) and tokens[i + 1].isdigit() and i > 0 and tokens[i - 1].isdigit():
            out.append(r"[.,]?")
        else:
            out.append(re.escape(tok))
    return "".join(out)


def _strip_prefixes(lines: list[str]) -> list[str]:
    lines = [line[:MAX_LINE].rstrip() for line in lines]
    shapes: Counter[str] = Counter()
    ends_in_word: dict[str, bool] = {}
    for line in lines:
        if len(shapes) > 64:
            break
        start = _anchor_start(line)
        if start:
            core = line[:start].rstrip()  # indentation, even NO-BREAK SPACEs, is no prefix
            if core:
                shape = _shape(core)
                shapes[shape] += 1
                ends_in_word[shape] = core[-1].isalnum()
    if not shapes:
        return lines
    # A prefix ending in a word must end at a word boundary; one ending in punctuation (a markdown
    # or e-mail quote's `>`, a `|` column) may touch the text: `>TypeError: …` loses its `>`.
    compiled = [
        re.compile(shape + (r"(?![0-9A-Za-z])" if ends_in_word[shape] else "") + r"[ \t]?")
        for shape, _ in shapes.most_common(MAX_SHAPES)
    ]
    out = []
    for line in lines:
        for pattern in compiled:
            m = pattern.match(line)
            if m and m.end() > 0:
                line = line[m.end() :]
                break
        out.append(line)
    return out


# --- parsed result ---------------------------------------------------------------------------


@dataclass
class _Exc:
    type: str | None
    value: str | None
    frames: list[StackFrame] = field(default_factory=list)
    """Oldest call first (Sentry's order)."""
    mechanism: str | None = None


@dataclass
class Trace:
    """One traceback found in the text."""

    language: str
    exceptions: list[_Exc]
    """Root cause first, the surfaced exception last."""
    start: int
    end: int


def _cap(text: str | None, limit: int = MAX_VALUE) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return redact_text(text[:limit] + ("…" if len(text) > limit else "")) if text else None


def _frame(
    platform: str,
    *,
    path: str | None = None,
    line: int | None = None,
    col: int | None = None,
    function: str | None = None,
    module: str | None = None,
    in_app: bool | None = None,
    context: str | None = None,
) -> StackFrame:
    path = path[:500] if path else None
    filename = path.replace("\\", "/").rsplit("/", 1)[-1] if path else None
    return StackFrame(
        filename=filename if path else None,
        abs_path=path,
        module=module[:500] if module else None,
        function=function[:300] if function else None,
        lineno=line,
        colno=col,
        in_app=in_app,
        platform=platform,
        context_line=redact_text(context[:500]) if context else None,
    )


def _int(text: str | None) -> int | None:
    if not text or not text.isdigit() or len(text) > 9:
        return None
    return int(text)


def _strip(line: str) -> str:
    return line.strip()


# --- Python ----------------------------------------------------------------------------------

_PY_HEADER = re.compile(r"^(?:\+ )?(?P<group>Exception Group )?Traceback \(most recent call last\):$")
_PY_FILE = re.compile(r'^File "(?P<path>[^"]{1,1000})", line (?P<line>\d+)(?:, in (?P<func>.{1,300}))?$')
_PY_CARET = re.compile(r"^\s*[\^~]+\s*$|^\s*~*\^+~*\s*$")
_PY_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]{0,200})(?:: (?P<msg>.*))?$")
_PY_EXC_NAME = re.compile(r"(?:Error|Exception|Warning|Exit|Interrupt|Iteration|Group)$")
"""What the last line of a traceback quoted without its header must look like to be taken as one."""
_PY_LAMBDA = re.compile(r"^\[ERROR\]\s+(?P<type>[A-Za-z_][\w.]{0,200}): (?P<msg>.*)$")
_PY_REPEAT = re.compile(r"^\[Previous line repeated \d+ more times?\]$")
_PY_SEPARATORS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_PY_GROUP_SEP = re.compile(r"^\+[-+]*(?:-+ (?:\d+|\.\.\.) -+|-+)$|^and \d+ more exceptions?$")


def _py_in_app(path: str) -> bool | None:
    if path.startswith("<"):
        return False
    if re.search(r"[/\\](?:site-packages|dist-packages|lib[/\\]python\d[\d.]*)[/\\]", path):
        return False
    return None


def _indent(line: str) -> int:
    # Any whitespace: Lambda's Python runtime indents with NO-BREAK SPACEs (awslambdaric's log_error).
    return len(line) - len(line.lstrip())


def _py_block(lines: list[str], i: int) -> tuple[_Exc | None, int]:
    """One `Traceback …` block (or a bare SyntaxError's File line) → its exception; next index."""
    n = len(lines)
    head = _strip(lines[i])
    group = bool(_PY_HEADER.match(head) and "Exception Group" in head)
    k = i + 1 if _PY_HEADER.match(head) else i
    frames: list[StackFrame] = []
    while k < n:
        s = _strip(lines[k])
        fm = _PY_FILE.match(s)
        if fm:
            file_indent = _indent(lines[k])
            path = fm.group("path")
            func = fm.group("func")
            frame = _frame(
                "python",
                path=None if path.startswith("<") else path,
                line=_int(fm.group("line")),
                function=func.strip() if func else None,
                in_app=_py_in_app(path),
            )
            if path.startswith("<"):
                frame.filename = path[:200]
            k += 1
            if k < n and _py_is_code(lines, k, file_indent):
                frame.context_line = redact_text(_strip(lines[k])[:500])
                k += 1
            while k < n and _PY_CARET.match(lines[k]):
                k += 1
            frames.append(frame)
            continue
        if _PY_REPEAT.match(s):
            k += 1
            continue
        break
    if not frames and not _PY_HEADER.match(head):
        return None, i + 1
    exc_type: str | None = None
    value: str | None = None
    if k < n:
        m = _PY_EXC.match(_strip(lines[k]))
        if m and _strip(lines[k]) and not _PY_HEADER.match(_strip(lines[k])):
            exc_type, value = m.group("type"), m.group("msg")
            k += 1
    if exc_type is None and i > 0:
        # AWS Lambda's Python runtime logs `[ERROR] Type: message` above the traceback instead.
        m = _PY_LAMBDA.match(_strip(lines[i - 1]))
        if m:
            exc_type, value = m.group("type"), m.group("msg")
    if exc_type is None and not frames:
        return None, i + 1
    return _Exc(exc_type, value, frames[-MAX_FRAMES:], "exception-group" if group else None), k


def _py_is_code(lines: list[str], k: int, file_indent: int) -> bool:
    s = _strip(lines[k])
    if not s or _PY_FILE.match(s) or _PY_HEADER.match(s) or _PY_REPEAT.match(s) or s in _PY_SEPARATORS:
        return False
    if _PY_GROUP_SEP.match(s) or _PY_CARET.match(lines[k]):
        return False
    if _indent(lines[k]) > file_indent:
        return True
    nxt = lines[k + 1] if k + 1 < len(lines) else ""
    return bool(_PY_FILE.match(_strip(nxt)) or (nxt.strip() and _PY_CARET.match(nxt)))


def _parse_python(lines: list[str], i: int, floor: int) -> Trace | None:
    s = _strip(lines[i])
    if s.endswith("Traceback (most recent call last):") and not _PY_HEADER.match(s):
        m, offset = _match_prefixed(_PY_HEADER, s)
        if m:
            s = lines[i] = s[offset:]
    headerless = False
    if not _PY_HEADER.match(s):
        fm = _PY_FILE.match(s)
        if not fm:
            return None
        # With a function it is a frame quoted without its header (or logged with format_tb):
        # taken only when the exception line closes it. Without one: a SyntaxError's location.
        headerless = fm.group("func") is not None
    n = len(lines)
    blocks: list[_Exc] = []
    k = i
    while k < n and len(blocks) < MAX_EXCEPTIONS * 2:
        exc, k = _py_block(lines, k)
        if exc is None:
            break
        if headerless and not blocks and not _PY_EXC_NAME.search(exc.type or ""):
            # Not a traceback, and no start inside this run of frames can be one either: say how far
            # the run went, so the search does not rescan it from every line (quadratic, red team).
            return Trace("python", [], i, max(k, i + 1))
        blocks.append(exc)
        j = k
        while j < n and (not _strip(lines[j]) or _PY_GROUP_SEP.match(_strip(lines[j]))):
            j += 1
        if j < n and _strip(lines[j]) in _PY_SEPARATORS:
            j += 1
            while j < n and not _strip(lines[j]):
                j += 1
        if j < n and _PY_HEADER.match(_strip(lines[j])):
            k = j
            continue
        break
    if not blocks:
        return None
    # An ExceptionGroup is printed before its sub-exceptions; the sub-exceptions are the errors.
    ordered = [b for b in blocks if b.mechanism != "exception-group"] + [
        b for b in blocks if b.mechanism == "exception-group"
    ]
    return Trace("python", ordered, i, max(k, i + 1))


# --- IPython / Jupyter ---------------------------------------------------------------------------
# IPython prints its own layout (IPython/core/ultratb.py): a rule, `Type   Traceback (most recent
# call last)`, then per frame a header and numbered source lines with `---> N` at the executing line.
#   IPython 8: `File ~/x.py:12, in func(arg)`, `Cell In[3], line 5` (8.0–8.5: `Input In [3], in …`)
#   IPython 7: `/x.py in func(arg)`, `<ipython-input-3-ab12> in <module>`, `<decorator-gen-9> in f()`
#   (the line number only on the arrow)

_IPY_HEAD = re.compile(r"^(?P<type>[A-Za-z_][\w.]{0,200}) +Traceback \(most recent call last\)$")
_IPY_RULE = re.compile(r"^-{20,}$")
_IPY_FUNC = r"(?:, in | in )(?P<func><[^>]{1,100}>|[\w.]{1,300})(?:\(.{0,2000}\))?"
_IPY8_FILE = re.compile(r"^File (?!\")(?P<path>\S.{0,1000}?):(?P<line>\d+)(?:" + _IPY_FUNC + r")?$")
_IPY8_CELL = re.compile(
    r"^(?P<path>(?:Cell In ?|Input In ?)\[\d{0,9}\])(?:, line (?P<line>\d+))?(?:" + _IPY_FUNC + r")?$"
)
_IPY7_FRAME = re.compile(r"^(?P<path><[^<>]{1,100}>|\S.{0,1000}?\.(?:py|pyw|pyx|pxd|pxi))" + _IPY_FUNC + "$")
_IPY_SOURCE = re.compile(r"^(?P<arrow>-*>)? ?(?P<n>\d{1,9})(?: (?P<code>.*))?$")
_IPY_SKIPPED = re.compile(r"^\(\.\.\.\)$|^\[\.\.\. skipping .{0,300}\]$")


def _ipy_frame(s: str) -> StackFrame | None:
    """An IPython frame header line → its frame (line number still unknown for IPython 7)."""
    m = _IPY8_FILE.match(s) or _IPY8_CELL.match(s) or _IPY7_FRAME.match(s)
    if m is None:
        return None
    path, func = m.group("path"), m.group("func")
    cell = path.startswith(("<", "Cell In", "Input In"))
    frame = _frame(
        "python",
        path=None if cell else path,
        line=_int(m.groupdict().get("line")),
        function=func,
        in_app=False if cell else _py_in_app(path),
    )
    if cell:
        frame.filename = path[:200]
    return frame


def _ipy_frames(lines: list[str], k: int) -> tuple[list[StackFrame], int]:
    """Frame headers, each with its numbered source lines, from `k` on; the index after them."""
    frames: list[StackFrame] = []
    n = len(lines)
    while k < n:
        s = _strip(lines[k])
        if not s or _IPY_SKIPPED.match(s):
            k += 1
            continue
        frame = _ipy_frame(s)
        if frame is None:
            break
        k += 1
        while k < n and (src := _IPY_SOURCE.match(_strip(lines[k])) or _IPY_SKIPPED.match(_strip(lines[k]))):
            if src.groupdict().get("arrow"):
                frame.lineno = frame.lineno or _int(src.group("n"))
                code = (src.group("code") or "").strip()
                frame.context_line = redact_text(code[:500]) if code else None
            k += 1
        frames.append(frame)
    return frames, k


def _parse_ipython(lines: list[str], i: int, floor: int) -> Trace | None:
    s = _strip(lines[i])
    n = len(lines)
    if _IPY_RULE.match(s) and i + 1 < n and _IPY_HEAD.match(_strip(lines[i + 1])):
        k = i + 1
    elif _IPY_HEAD.match(s):
        k = i
    elif _ipy_frame(s) is not None and i + 1 < n and (m := _IPY_SOURCE.match(_strip(lines[i + 1]))):
        # Quoted without the rule and header: a frame header followed by its numbered source.
        k = -1 if m.group("arrow") or _IPY_SOURCE.match(_strip(lines[min(i + 2, n - 1)])) else 0
        if k == 0:
            return None
    else:
        return None
    blocks: list[_Exc] = []
    while len(blocks) < MAX_EXCEPTIONS:
        head = _IPY_HEAD.match(_strip(lines[k])) if k >= 0 else None
        frames, k = _ipy_frames(lines, k + 1 if head else i)
        exc_type: str | None = head.group("type") if head else None
        value: str | None = None
        while k < n and not _strip(lines[k]):
            k += 1
        if k < n and (m := _PY_EXC.match(_strip(lines[k]))) and not _IPY_RULE.match(_strip(lines[k])):
            exc_type, value = m.group("type"), m.group("msg")
            k += 1
        if not frames and exc_type is None:
            break
        blocks.append(_Exc(exc_type, value, frames[-MAX_FRAMES:]))
        j = k
        while j < n and not _strip(lines[j]):
            j += 1
        if j < n and _strip(lines[j]) in _PY_SEPARATORS:
            j += 1
            while j < n and (not _strip(lines[j]) or _IPY_RULE.match(_strip(lines[j]))):
                j += 1
            if j < n and _IPY_HEAD.match(_strip(lines[j])):
                k = j
                continue
        break
    if not blocks or not any(b.frames for b in blocks):
        return None
    return Trace("python", blocks, i, max(k, i + 1))


# --- Node / V8 ---------------------------------------------------------------------------------

_JS_AT = re.compile(
    r"^at (?:(?P<async>async) )?(?:(?P<func>[^()]{1,500}?) \((?P<loc>.{1,2000})\)|(?P<bare>[^()\s].{0,2000}))$"
)
_JS_LOC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)$")
_JS_HEAD = re.compile(
    r"^(?:Uncaught )?(?:\[cause\]: )?(?P<type>(?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*?(?:Error|Exception|Rejection)"
    r"|Error|[A-Z][\w$]*)(?: \[[\w$]+\])?(?::\s?(?P<msg>.*))?$"
)
_JS_BANNER = re.compile(r"^(?P<file>(?:file://)?[^\s]+?\.(?:[cm]?js|[cm]?ts|jsx|tsx)):(?P<line>\d+)$")
_JS_ELIDED = re.compile(r"^\.\.\. \d+ (?:more|lines matching cause stack trace) \.\.\.$|^\.\.\. \d+ more$")


def _js_frame(s: str) -> StackFrame | None:
    m = _JS_AT.match(s)
    if not m:
        return None
    loc = m.group("loc") if m.group("loc") is not None else m.group("bare")
    func = m.group("func")
    if loc is None:
        return None
    loc = loc.rstrip(" {").strip()
    lm = _JS_LOC.match(loc)
    if not lm:
        if m.group("bare") is not None:
            return None  # `at something` without a location is not a frame
        return _frame("node", function=_js_func(func), in_app=False)
    path = lm.group("file")
    if "eval at " in path or path.startswith("<"):
        return _frame("node", function=_js_func(func), in_app=False)
    vendor = path.startswith(("node:", "internal/")) or "/node_modules/" in path or path == "native"
    return _frame(
        "node",
        path=path,
        line=_int(lm.group("line")),
        col=_int(lm.group("col")),
        function=_js_func(func),
        in_app=False if vendor else None,
    )


def _js_func(func: str | None) -> str | None:
    if not func:
        return None
    func = re.sub(r" \[as [^\]]+\]$", "", func.strip())
    return func[4:] if func.startswith("new ") else func


def _parse_node(lines: list[str], i: int, floor: int) -> Trace | None:
    if not _strip(lines[i]).startswith("at ") or _js_frame(_strip(lines[i])) is None:
        return None
    head_at = _find_head(lines, i, floor, _JS_HEAD, _is_frame_line)
    if head_at is None:
        return None
    n = len(lines)
    chain: list[_Exc] = []
    k = head_at
    m = _JS_HEAD.match(_strip(lines[k]).removeprefix("[cause]: "))
    assert m is not None
    current = _Exc(m.group("type"), _join_message(m.group("msg"), lines[k + 1 : i]))
    chain.append(current)
    k = i
    innermost: list[StackFrame] = []
    while k < n and len(chain) <= MAX_EXCEPTIONS:
        s = _strip(lines[k])
        frame = _js_frame(s) if s.startswith("at ") else None
        if frame is not None:
            innermost.append(frame)
            k += 1
            continue
        if _JS_ELIDED.match(s):
            k += 1
            continue
        if s.startswith("[cause]: ") and (cm := _JS_HEAD.match(s[len("[cause]: ") :])):
            current.frames = list(reversed(innermost[:MAX_FRAMES]))
            current = _Exc(cm.group("type"), cm.group("msg"))
            chain.append(current)
            innermost = []
            k += 1
            continue
        if s and (s.endswith((",", "{", "[")) or re.match(r"^[\w$\[\]'\"]+: ", s)) and chain:
            k += 1  # own properties printed after the stack (`code: 'E…'`), inside `{ … }`
            continue
        if s in ("}", "]", "},"):
            k += 1
            continue
        break
    current.frames = list(reversed(innermost[:MAX_FRAMES]))
    _js_banner(lines, head_at, floor, chain[0])
    return Trace("node", list(reversed(chain)), head_at, k)


def _js_banner(lines: list[str], head_at: int, floor: int, thrown: _Exc) -> None:
    """Node prints `file:line`, the source line and a caret above an uncaught error."""
    for j in range(head_at - 1, max(floor, head_at - 5) - 1, -1):
        m = _JS_BANNER.match(_strip(lines[j]))
        if m and j + 1 < head_at and thrown.frames:
            crash = thrown.frames[-1]
            path = m.group("file")
            if crash.abs_path == path and crash.lineno == _int(m.group("line")):
                crash.context_line = redact_text(_strip(lines[j + 1])[:500])
            return


def _join_message(first: str | None, more: list[str]) -> str | None:
    parts = [first or ""] + [_strip(x) for x in more[:20] if _strip(x)]
    text = "\n".join(p for p in parts if p)
    return text or None


def _match_prefixed(pattern: re.Pattern[str], s: str) -> tuple[re.Match[str] | None, int]:
    """`pattern` at the start of `s`, or after a word boundary of an unlearned prefix (a timestamp,
    request id and level on the first line only, as a Lambda event has them)."""
    m = pattern.match(s)
    if m:
        return m, 0
    for p in range(1, min(len(s), 300)):
        if s[p - 1] in " \t" and s[p] not in " \t":
            m = pattern.match(s[p:])
            if m:
                return m, p
    return None, 0


def _find_head(
    lines: list[str], first_frame: int, floor: int, head: re.Pattern[str], is_frame: Callable[[str], bool]
) -> int | None:
    """The header line above a run of frames: the nearest line matching `head` within 30 lines.

    A header found after a prefix is rewritten without it, so the parsers see the bare header."""
    for j in range(first_frame - 1, max(floor, first_frame - 30) - 1, -1):
        s = _strip(lines[j])
        if is_frame(s):
            return None
        if not s:
            continue
        m, offset = _match_prefixed(head, s.removeprefix("[cause]: "))
        if m:
            if offset:
                lines[j] = s[offset:]
            return j
    return None


# --- Java / Kotlin -----------------------------------------------------------------------------

_JVM_AT = re.compile(
    r"^at (?:(?P<loader>[\w.$-]{1,200}(?:@[\w.$-]{1,100})?)?/+)?(?P<cls>[\w$.<>-]{1,400})\.(?P<method>[\w$<>-]{1,200})"
    r"\((?P<src>[\w$.-]{0,200}\.(?:java|kt|kts|scala|groovy|clj)(?::\d+)?|Native Method|Unknown Source"
    r"|[\w$.-]{0,200}:\d+)\)(?:\s+~?\[[^\]]{0,400}\])?$"
)
_JVM_HEAD = re.compile(
    r"^(?:Exception in thread \"[^\"]{0,200}\"\s+)?(?:(?P<kind>Caused by|Suppressed|Wrapped by): )?"
    r"(?P<type>(?:[a-zA-Z_$][\w$]*\.)+[A-Za-z_$][\w$]*|[A-Z][\w$]*(?:Exception|Error|Throwable))"
    r"(?::\s?(?P<msg>.*))?$"
)
_JVM_MORE = re.compile(r"^\.\.\. (?P<n>\d+) (?:more|common frames omitted)$")
_JVM_VENDOR = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "kotlinx.", "scala.", "org.junit.")


def _jvm_frame(s: str) -> StackFrame | None:
    m = _JVM_AT.match(s)
    if not m:
        return None
    cls, src = m.group("cls"), m.group("src")
    filename, _, line = src.partition(":")
    loader = m.group("loader") or ""
    vendor = cls.startswith(_JVM_VENDOR) or loader.startswith(("java.", "jdk."))
    frame = _frame(
        "java",
        function=m.group("method"),
        module=cls,
        line=_int(line),
        in_app=False if vendor else None,
    )
    if filename and "." in filename and " " not in filename:
        frame.filename = filename
    return frame


def _parse_jvm(lines: list[str], i: int, floor: int) -> Trace | None:
    s0 = _strip(lines[i])
    if not s0.startswith("at ") or _jvm_frame(s0) is None:
        return None
    head_at = _find_head(lines, i, floor, _JVM_HEAD, _is_frame_line)
    if head_at is None:
        return None
    m = _JVM_HEAD.match(_strip(lines[head_at]))
    assert m is not None
    # (indent, kind, exception, frames innermost first)
    printed: list[tuple[int, str, _Exc, list[StackFrame]]] = []
    top = _Exc(m.group("type"), _join_message(m.group("msg"), lines[head_at + 1 : i]))
    printed.append((_indent(lines[head_at]), "top", top, []))
    n = len(lines)
    k = i
    while k < n and len(printed) <= MAX_EXCEPTIONS:
        s = _strip(lines[k])
        frame = _jvm_frame(s) if s.startswith("at ") else None
        if frame is not None:
            if len(printed[-1][3]) < MAX_FRAMES * 4:
                printed[-1][3].append(frame)
            k += 1
            continue
        more = _JVM_MORE.match(s)
        if more:
            indent, kind = printed[-1][0], printed[-1][1]
            enclosing = _jvm_enclosing(printed, indent, kind)
            if enclosing is not None:
                count = min(int(more.group("n")[:6]), len(enclosing))
                printed[-1][3].extend(enclosing[len(enclosing) - count :])
            k += 1
            continue
        hm = _JVM_HEAD.match(s)
        if hm and hm.group("kind"):
            printed.append((_indent(lines[k]), hm.group("kind"), _Exc(hm.group("type"), hm.group("msg")), []))
            k += 1
            continue
        break
    chain: list[_Exc] = []
    suppressed: list[str] = []
    for _, kind, exc, frames in printed:
        exc.frames = list(reversed(frames[:MAX_FRAMES]))
        if kind == "Suppressed":
            suppressed.append(f"{exc.type}: {exc.value}" if exc.value else str(exc.type))
        else:
            chain.append(exc)
    if suppressed:
        # Suppressed exceptions are not causes (like Sentry's Java SDK, they stay out of the chain).
        note = "; ".join(suppressed[:5])
        top.value = f"{top.value or ''} [suppressed: {note}]".strip()
    return Trace("java", list(reversed(chain)), head_at, k)


def _jvm_enclosing(
    printed: list[tuple[int, str, _Exc, list[StackFrame]]], indent: int, kind: str
) -> list[StackFrame] | None:
    """The trace `... N more` refers to: the previous of the cause chain, or a suppressed one's owner."""
    for entry_indent, entry_kind, _exc, frames in reversed(printed[:-1]):
        if kind == "Suppressed" and entry_indent < indent:
            return frames
        if kind != "Suppressed" and entry_indent == indent and entry_kind != "Suppressed":
            return frames
    return None


# --- .NET / Mono -------------------------------------------------------------------------------

_NET_AT = re.compile(
    r"^at (?P<func>[^()\s][^()]{0,500}?)\s?\((?P<args>[^()]{0,1000})\)(?: \[0x[0-9a-fA-F]+\])?"
    r"(?: in (?P<file>.{1,1000}?):(?:line )?(?P<line>\d+))?\s*$"
)
_NET_HEAD = re.compile(
    r"^(?:Unhandled [Ee]xception[.:]\s*|\[ERROR\] FATAL UNHANDLED EXCEPTION:\s*|Unhandled exception\.\s*)?"
    r"(?P<type>(?:[A-Za-z_][\w`]*\.)*[A-Za-z_][\w`]*(?:Exception|Error|Fault)\w*)(?::\s?(?P<msg>.*))?$"
)
_NET_END_INNER = re.compile(r"^-{2,3} End of inner exception stack trace -{2,3}$")
_NET_ASYNC = re.compile(r"^-{2,3} End of stack trace from previous location.*-{2,3}$")
_NET_VENDOR = ("System.", "Microsoft.", "Mono.", "MS.", "Newtonsoft.")


def _net_frame(s: str) -> StackFrame | None:
    m = _NET_AT.match(s)
    if not m:
        return None
    args = m.group("args")
    if re.search(r"\.(?:java|kt|scala|groovy):\d+$|^Native Method$|^Unknown Source$|:\d+(?::\d+)?$", args):
        return None
    func = m.group("func").strip()
    file = m.group("file")
    if file and file.startswith("<"):
        file = None  # `in <mvid>:0`: no symbols
    module, _, method = func.rpartition(".")
    async_state = re.match(r"^<(?P<name>[^>]+)>d__\d+$", module.rpartition(".")[2]) if method == "MoveNext" else None
    if async_state:
        module, method = module.rpartition(".")[0], async_state.group("name")
    return _frame(
        "csharp",
        path=file,
        line=_int(m.group("line")) if file else None,
        function=method or func,
        module=module or None,
        in_app=False if func.startswith(_NET_VENDOR) else None,
    )


def _parse_dotnet(lines: list[str], i: int, floor: int) -> Trace | None:
    s0 = _strip(lines[i])
    if not s0.startswith("at ") or _net_frame(s0) is None:
        return None
    # .NET Core puts each inner exception on its own ` ---> Type: message` line: join them first.
    j = i - 1
    while j > floor and _strip(lines[j]).startswith("---> "):
        lines[j - 1] = f"{lines[j - 1].rstrip()} {_strip(lines[j])}"
        lines[j] = ""
        j -= 1
    head_at = _find_head(lines, i, floor, _NET_HEAD, _is_frame_line)
    if head_at is None:
        return None
    head = _strip(lines[head_at])
    parts = head.split(" ---> ")
    excs: list[_Exc] = []
    for part in parts[:MAX_EXCEPTIONS]:
        m = _NET_HEAD.match(part.strip())
        if m:
            excs.append(_Exc(m.group("type"), m.group("msg")))
        elif excs:
            excs[-1].value = f"{excs[-1].value or ''} ---> {part}"
    if not excs:
        return None
    # Frames come innermost exception first; each "End of inner exception" moves one level out.
    level = len(excs) - 1
    groups: dict[int, list[StackFrame]] = {j: [] for j in range(len(excs))}
    n = len(lines)
    k = i
    while k < n:
        s = _strip(lines[k])
        frame = _net_frame(s) if s.startswith("at ") else None
        if frame is not None:
            if len(groups[level]) < MAX_FRAMES:
                groups[level].append(frame)
            k += 1
            continue
        if _NET_END_INNER.match(s):
            level = max(0, level - 1)
            k += 1
            continue
        if _NET_ASYNC.match(s):
            k += 1
            continue
        break
    for j, exc in enumerate(excs):
        exc.frames = list(reversed(groups[j]))
    return Trace("csharp", list(reversed(excs)), head_at, k)


# --- Go ------------------------------------------------------------------------------------------

_GO_PANIC = re.compile(r"^(?P<kind>panic|fatal error): (?P<msg>.*?)(?: \[recovered\])?$")
_GO_ROUTINE = re.compile(r"^goroutine \d+ \[[^\]]{1,100}\]:$")
_GO_FUNC = re.compile(r"^(?:created by )?(?P<func>[^\s()][^\s]*?)(?:\((?P<args>[^)]{0,500})\))?(?: in goroutine \d+)?$")
_GO_FILE = re.compile(r"^(?P<file>\S.{0,1000}?\.(?:go|s)):(?P<line>\d+)(?: \+0x[0-9a-f]+)?$")


def _go_split(func: str) -> tuple[str | None, str]:
    """`github.com/acme/shop/cart.(*Cart).Average` → (`github.com/acme/shop/cart`, `(*Cart).Average`)."""
    slash = func.rfind("/")
    dot = func.find(".", slash + 1)
    if dot < 0:
        return None, func
    return func[:dot], func[dot + 1 :]


def _parse_go(lines: list[str], i: int, floor: int) -> Trace | None:
    s0 = _strip(lines[i])
    pm = _GO_PANIC.match(s0)
    if pm is None and ("panic: " in s0 or "fatal error: " in s0):
        pm, _ = _match_prefixed(_GO_PANIC, s0)
    if not pm and not _GO_ROUTINE.match(s0):
        return None
    n = len(lines)
    k = i + 1 if pm else i
    messages = [pm.group("msg")] if pm else []
    while k < n and not _GO_ROUTINE.match(_strip(lines[k])) and k < i + 20:
        s = _strip(lines[k])
        if s and not s.startswith("exit status"):
            messages.append(s.removeprefix("panic: ").removesuffix(" [recovered]"))
        k += 1
    if k >= n or not _GO_ROUTINE.match(_strip(lines[k])):
        return None
    k += 1
    innermost: list[StackFrame] = []
    while k + 1 < n:
        fm = _GO_FUNC.match(_strip(lines[k]))
        lm = _GO_FILE.match(_strip(lines[k + 1]))
        if not (fm and lm):
            break
        module, func = _go_split(fm.group("func"))
        path = lm.group("file")
        vendor = module in ("runtime", "testing", "reflect") or "/go/src/" in path or "/pkg/mod/" in path
        if len(innermost) < MAX_FRAMES:
            innermost.append(
                _frame(
                    "go",
                    path=path,
                    line=_int(lm.group("line")),
                    function=func,
                    module=module,
                    in_app=False if vendor or (module or "").startswith("runtime") else None,
                )
            )
        k += 2
    if not innermost:
        return None
    value = messages[-1] if messages else None
    exc = _Exc(pm.group("kind") if pm else "goroutine", value, list(reversed(innermost)))
    return Trace("go", [exc], i, k)


# --- Ruby ----------------------------------------------------------------------------------------

_RB_FRAME = re.compile(
    r"^(?:from )?(?P<file>[^\s:]{1,1000}?\.(?:rb|rake|erb|ru|gemspec)):(?P<line>\d+):in [`'](?P<func>[^`']{1,300})'"
    r"(?:: (?P<rest>.*))?$"
)
_RB_REST = re.compile(r"^(?P<msg>.*?) \((?P<type>[A-Z][\w:]{0,200})\)$")
_RB_RAILS_HEAD = re.compile(r"^(?P<type>[A-Z][\w:]{0,200}) \((?P<msg>.*)\):$")


def _rb_func(func: str) -> str:
    func = re.sub(r"^(?:(?:block|rescue|ensure) (?:\(\d+ levels\) )?in )+", "", func)
    return func.rsplit("#", 1)[-1].rsplit(".", 1)[-1] if not func.startswith("<") else func


def _rb_frame(m: re.Match[str]) -> StackFrame:
    path = m.group("file")
    vendor = "/gems/" in path or re.search(r"/ruby/\d+\.\d+\.\d+/", path) is not None
    return _frame(
        "ruby",
        path=path,
        line=_int(m.group("line")),
        function=_rb_func(m.group("func")),
        in_app=False if vendor else None,
    )


def _parse_ruby(lines: list[str], i: int, floor: int) -> Trace | None:
    s0 = _strip(lines[i])
    m = _RB_FRAME.match(s0)
    rails = None
    if not m or s0.startswith("from "):
        rails = _RB_RAILS_HEAD.match(s0)
        if not rails:
            return None
    elif m.group("rest") is None:
        # A frame without the head's `: message (Type)` cannot start a trace (only `from` lines and
        # bare frames follow a head); scanning its run from every line was quadratic (red team).
        return None
    n = len(lines)
    chain: list[_Exc] = []
    current: list[StackFrame] = []
    k = i
    if rails:
        chain.append(_Exc(rails.group("type"), rails.group("msg")))
        k += 1
        while k < n and not _strip(lines[k]):
            k += 1
        if k >= n or not _RB_FRAME.match(_strip(lines[k])):
            return None
    gap = 0
    while k < n and len(chain) <= MAX_EXCEPTIONS:
        s = _strip(lines[k])
        fm = _RB_FRAME.match(s)
        if fm and (fm.group("rest") is not None and not s.startswith("from ")):
            if chain:
                chain[-1].frames = list(reversed(current[:MAX_FRAMES]))
            rest = _RB_REST.match(fm.group("rest") or "")
            chain.append(
                _Exc(rest.group("type") if rest else "RuntimeError", rest.group("msg") if rest else fm.group("rest"))
            )
            current = [_rb_frame(fm)]
            gap = 0
        elif fm:
            current.append(_rb_frame(fm))
            gap = 0
        elif chain and gap < 6 and (not s or not s.startswith(("from ",))) and current:
            gap += 1  # error_highlight's code snippet and carets between the head and `from` lines
        else:
            break
        k += 1
    if not chain:
        return None
    chain[-1].frames = list(reversed(current[:MAX_FRAMES]))
    end = k - gap
    if len(chain) == 1 and len(chain[0].frames) == 1 and not rails and chain[0].type == "RuntimeError":
        return None  # a lone `file.rb:3:in 'x': text` line is not much of a traceback
    return Trace("ruby", list(reversed(chain)), i, max(end, i + 1))


# --- PHP -----------------------------------------------------------------------------------------

_PHP_HEAD = re.compile(
    r"(?:PHP )?(?:Fatal error|Catchable fatal error):\s+Uncaught (?P<type>[\w\\]{1,300})(?:: (?P<msg>.*?))?"
    r" in (?P<file>[^\s]{1,1000}?):(?P<line>\d+)$"
)
_PHP_NEXT = re.compile(r"^Next (?P<type>[\w\\]{1,300})(?:: (?P<msg>.*?))? in (?P<file>\S{1,1000}?):(?P<line>\d+)$")
_PHP_PLAIN = re.compile(
    r"^(?P<type>[A-Z][\w\\]{0,300})(?:: (?P<msg>.*?))? in (?P<file>\S{1,1000}?\.php):(?P<line>\d+)$"
)
_PHP_LARAVEL = re.compile(
    r"\[object\] \((?P<type>[\w\\]{1,300})\(code: -?\d+\): (?P<msg>.*) at (?P<file>\S{1,1000}?\.php):(?P<line>\d+)\)$"
)
_PHP_PARSE = re.compile(
    r"(?:PHP )?(?:Parse error|Fatal error):\s+(?P<msg>.*?) in (?P<file>\S{1,1000}?\.php) on line (?P<line>\d+)$"
)
_PHP_FRAME = re.compile(
    r"^#(?P<n>\d+) (?:(?P<file>\S.{0,1000}?)\((?P<line>\d+)\): |\[internal function\]: )?(?P<call>.{1,1000})$"
)


def _php_call(call: str) -> tuple[str | None, str | None]:
    call = call.strip()
    if call == "{main}":
        return None, "{main}"
    name = call.split("(", 1)[0]
    for sep in ("->", "::"):
        if sep in name:
            module, _, func = name.rpartition(sep)
            return module, func
    return None, name or None


def _parse_php(lines: list[str], i: int, floor: int) -> Trace | None:
    s0 = _strip(lines[i])
    head = _PHP_HEAD.search(s0) or _PHP_PLAIN.match(s0) or _PHP_LARAVEL.search(s0)
    if head is None:
        pm = _PHP_PARSE.search(s0)
        if pm is None:
            return None
        exc = _Exc("ParseError" if "Parse error" in s0 else "Error", pm.group("msg"))
        exc.frames = [_frame("php", path=pm.group("file"), line=_int(pm.group("line")))]
        return Trace("php", [exc], i, i + 1)
    n = len(lines)
    chain: list[_Exc] = []
    k = i
    while head is not None and len(chain) < MAX_EXCEPTIONS:
        exc = _Exc(head.group("type").lstrip("\\"), head.group("msg"))
        k += 1
        if k < n and _strip(lines[k]) in ("Stack trace:", "[stacktrace]"):
            k += 1
        calls: list[tuple[str | None, int | None, str]] = []
        while k < n:
            fm = _PHP_FRAME.match(_strip(lines[k]))
            if not fm:
                break
            if len(calls) < MAX_FRAMES:
                calls.append((fm.group("file"), _int(fm.group("line")), fm.group("call")))
            k += 1
        if not calls and not chain and _PHP_PLAIN.match(s0) and not _PHP_HEAD.search(s0):
            return None  # `X in file.php:3` alone, without a stack trace, is a log line
        # `#0 file(line): call()` says where `call` was called: the function running at a frame
        # is the one called by the frame below it; the throw site is the header's file:line.
        innermost: list[StackFrame] = []
        throw_file, throw_line = head.group("file"), _int(head.group("line"))
        first_module, first_func = _php_call(calls[0][2]) if calls else (None, None)
        if not calls or (calls[0][0], calls[0][1]) != (throw_file, throw_line):
            innermost.append(_php_frame(throw_file, throw_line, first_module, first_func))
        for idx, (file, line, _call) in enumerate(calls):
            if file is None:
                continue
            module, func = _php_call(calls[idx + 1][2]) if idx + 1 < len(calls) else (None, "{main}")
            innermost.append(_php_frame(file, line, module, func))
        exc.frames = list(reversed(innermost))
        chain.append(exc)
        j = k
        while j < n and not _strip(lines[j]):
            j += 1
        head = _PHP_NEXT.match(_strip(lines[j])) if j < n else None
        if head is not None:
            k = j
    if k < n and _strip(lines[k]).startswith("thrown in "):
        k += 1
    return Trace("php", chain, i, k)


def _php_frame(file: str, line: int | None, module: str | None, func: str | None) -> StackFrame:
    return _frame(
        "php",
        path=file,
        line=line,
        function=func,
        module=module,
        in_app=False if "/vendor/" in file else None,
    )


# --- driver --------------------------------------------------------------------------------------


def _is_frame_line(s: str) -> bool:
    if s.startswith("at "):
        return True
    return bool(_PY_FILE.match(s) or (s.startswith(("from ", "/")) and _RB_FRAME.match(s)))


_Parser = Callable[[list[str], int, int], "Trace | None"]
_PARSERS: tuple[_Parser, ...] = (
    _parse_python,
    _parse_ipython,
    _parse_go,
    _parse_php,
    _parse_jvm,
    _parse_node,
    _parse_dotnet,
    _parse_ruby,
)


def find_traces(lines: list[str]) -> list[Trace]:
    """Every traceback in the (cleaned) lines, in order."""
    traces: list[Trace] = []
    i, floor, n = 0, 0, len(lines)
    # A parser may answer a Trace without exceptions: "nothing from here to its end" — it is not
    # asked again inside that run, which keeps the search linear in the text's length.
    dead: dict[_Parser, int] = {}
    while i < n:
        line = lines[i]
        s = line.strip()
        found = None
        if s:
            for parser in _PARSERS:
                if dead.get(parser, 0) > i:
                    continue
                found = parser(lines, i, floor)
                if found is not None and found.exceptions:
                    break
                if found is not None:
                    dead[parser] = found.end
                found = None
        if found is None:
            i += 1
            continue
        traces.append(found)
        i = max(found.end, i + 1)
        floor = i
    return traces


def _event(trace: Trace) -> ErrorEvent:
    exceptions = []
    excs = trace.exceptions
    if len(excs) > MAX_EXCEPTIONS:
        half = MAX_EXCEPTIONS // 2
        excs = excs[:half] + excs[-half:]
    for exc in excs:
        exceptions.append(
            ExceptionValue(
                type=_cap(exc.type, 300),
                value=_cap(exc.value),
                mechanism=Mechanism(type=exc.mechanism) if exc.mechanism else None,
                frames=exc.frames[-MAX_FRAMES:],
            )
        )
    event = ErrorEvent(
        platform=trace.language,
        exceptions=exceptions,
        tags=[("source", "traceback"), ("language", trace.language)],
    )
    event.title = event.headline[:1000]
    event.event_id = fingerprint(event)
    return event


def parse_all(text: str) -> list[ErrorEvent]:
    """Every traceback in a text (log excerpt, chat message, JSON log records), in order."""
    return [_event(t) for t in find_traces(clean_lines(text))]


def parse_traceback(text: str, origin: str = "the text") -> ErrorEvent:
    """The last traceback in `text` (the most recent error of a log excerpt) as an ErrorEvent."""
    if len(text) > MAX_BYTES:
        raise InputError(f"{origin} holds {len(text) / 1e6:.1f} MB of text; the limit is {MAX_BYTES // 2**20} MiB")
    traces = find_traces(clean_lines(text))
    if not traces:
        raise InputError(
            f"no stack trace found in {origin}: expected Python, Node, Java/Kotlin, Go, Ruby, PHP or .NET "
            "traceback text (log prefixes, JSON log lines and Slack markup are fine)"
        )
    return _event(traces[-1])


def load_traceback(path: Path | str) -> ErrorEvent:
    """`--traceback FILE` (or '-' for stdin) → the last traceback it holds."""
    origin = "stdin" if str(path) == "-" else str(path)
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError as exc:
        raise InputError(f"traceback file not found: {origin}") from exc
    except IsADirectoryError as exc:
        raise InputError(f"traceback file is a directory: {origin}") from exc
    except OSError as exc:
        raise InputError(f"cannot read traceback file {origin}: {exc.strerror}") from exc
    return parse_traceback(decode(data, origin), origin)


# --- grouping ------------------------------------------------------------------------------------

_TRACE_HINT = re.compile(
    r"Traceback \(most recent call last\)|\b\w*(?:Error|Exception)\b|^\s*at \S|panic: |Fatal error|"
    r"Unhandled [Ee]xception|Caused by: |goroutine \d+ \[|\.rb:\d+:in |Stack trace:",
    re.M,
)


def might_be_trace(text: str) -> bool:
    """Whether a log line could belong to a traceback (worth reading the lines around it)."""
    return bool(_TRACE_HINT.search(text[:MAX_LINE]))


def _frame_key(frame: StackFrame) -> str:
    name = (frame.abs_path or frame.filename or frame.module or "").replace("\\", "/").rsplit("/", 1)[-1]
    return f"{name}:{frame.function or ''}"


def fingerprint(event: ErrorEvent) -> str:
    """Stable id of "the same error": language, exception types and the innermost frames' files and
    functions — no line numbers, paths or message text, which change between deploys and requests."""
    parts: list[str] = [event.platform or ""]
    for exc in event.exceptions[-3:]:
        parts.append(exc.type or "")
        frames = [f for f in exc.frames if f.in_app is not False] or exc.frames
        parts.extend(_frame_key(f) for f in frames[-5:])
    if not any(exc.frames for exc in event.exceptions):
        parts.append(re.sub(r"\d+", "0", (event.crashing_exception.value if event.crashing_exception else "") or ""))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def events_in(texts: Iterable[str]) -> list[ErrorEvent]:
    """Tracebacks across several texts (log messages of one stream, say), in order."""
    out: list[ErrorEvent] = []
    for text in texts:
        out.extend(parse_all(text))
    return out
