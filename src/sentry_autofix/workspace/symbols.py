"""Check a frame's function name against a workspace file, for frames that carry no source line.

A traceback printed by Go, Java, Ruby, PHP or .NET (and Node, but for the throwing frame) names
the function and the line, never the code. When the deployed path matches several files, or only
by file name, the function name is the evidence left: the function a frame reports must be
defined in the file, above the line (a method's body follows its signature).
"""

from __future__ import annotations

import re

_WINDOW = 400
"""Lines above the frame's line searched for the definition (a long function is still found)."""
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_ANONYMOUS = frozenset(
    {"<module>", "<main>", "<anonymous>", "{main}", "<lambda>", "<listcomp>", "<genexpr>", "<top (required)>"}
)
_GENERIC = frozenset({"main", "run", "call", "apply", "invoke", "handle", "execute", "anonymous", "lambda"})


def bare_name(function: str | None) -> str | None:
    """`shop.views.checkout` / `Shop\\Cart->averagePrice` / `(*Cart).Average` / `block in foo` /
    `<Summary>d__3` / `lambda$main$0` → the identifier a definition would spell, or None."""
    if not function:
        return None
    name = function.strip()
    if name in _ANONYMOUS or (name.startswith("<") and name.endswith(">")):
        return None
    name = re.sub(r"^(?:(?:block|rescue|ensure) (?:\(\d+ levels\) )?in )+", "", name)
    name = re.sub(r"\(.*\)$", "", name)  # arguments (PHP, .NET)
    for sep in ("->", "::", "#", ".", "/", ":"):
        if sep in name:
            name = name.rsplit(sep, 1)[-1]
    if name in _ANONYMOUS or re.fullmatch(r"<[^<>]*>", name):
        return None
    lam = re.fullmatch(r"lambda\$([\w]+)\$\d+", name)
    if lam:
        name = lam.group(1)
    gen = re.fullmatch(r"<([\w]+)>[\w$]*", name)
    if gen:
        name = gen.group(1)
    name = name.strip("`'\"")
    if not _IDENT.fullmatch(name) or len(name) < 3:
        return None
    return name


def function_line(lines: list[str], line: int | None, function: str | None) -> int | None:
    """The line (1-based) at or above `line` that mentions `function` as a word followed by `(`,
    `=`, `:` or preceded by a definition keyword; None when it is not there (or cannot be told)."""
    name = bare_name(function)
    if name is None or not lines:
        return None
    word = re.compile(
        rf"(?:\b(?:def|func|function|fn|sub|class|async)\s+(?:\([^)]*\)\s*|self\.)?{re.escape(name)}\b"
        rf"|(?<![\w$.]){re.escape(name)}\s*(?:\(|=\s*(?:async\s*)?(?:function|\()|:\s*(?:async\s*)?function))"
    )
    last = len(lines) if line is None else min(len(lines), max(1, line))
    first = max(1, last - _WINDOW)
    for n in range(last, first - 1, -1):
        text = lines[n - 1]
        if name in text and word.search(text):
            return n
    return None


def is_generic(function: str | None) -> bool:
    """Names too common to tell two files apart (`main`, `run`)."""
    name = bare_name(function)
    return name is None or name.lower() in _GENERIC


def function_verdict(
    lines: list[str], line: int | None, function: str | None
) -> tuple[bool | None, int | None, str | None]:
    """`mapping._verify` for a frame without a source line: (True, line, how) when the file defines
    the frame's function at or above its line, else (None, line, None): nothing was checked."""
    if is_generic(function):
        return None, line, None
    found = function_line(lines, line, function)
    if found is None:
        return None, line, None
    return True, line, f"no source line to compare; {bare_name(function)}() is defined at line {found}"


_PY_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")


def enclosing_function(lines: list[str], line: int | None) -> str | None:
    """The Python function whose body holds `line` (1-based), to name a `<lambda>`, `<genexpr>` or
    `<listcomp>` frame: walking up, each line indented less than everything below it opens the block
    that holds them; the first such `def` is the answer, a `class` (or the top of the file) means
    the line is not inside a function."""
    if line is None or not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    indent = len(text) - len(text.lstrip())
    for n in range(line - 1, max(0, line - 1 - _WINDOW), -1):
        candidate = lines[n - 1]
        stripped = candidate.lstrip()
        own = len(candidate) - len(stripped)
        if not stripped or stripped.startswith("#") or own >= indent:
            continue
        found = _PY_DEF.match(candidate)
        if found:
            return found.group(2)
        if stripped.startswith("class "):
            return None
        indent = own
    return None
