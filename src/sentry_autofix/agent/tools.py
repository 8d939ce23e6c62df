"""The agent's tools, exactly as SPEC §5 names them, each behind the path guard.

A tool never raises to the loop: a refused path, a bad regex, a symlink loop or a malformed input
comes back to the model as an error result it can act on. Outputs are size-capped and any
configured secret value is redacted before it can reach the model.

The model sees the repository: files git tracks plus the files it wrote (the guard's read rule),
and changes only tracked files and new files — never a file that was untracked or ignored when
the fix started, judged by the baseline's ignore rules, so rewriting `.gitignore` first changes
nothing (docs/guard.md).
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sentry_autofix.agent.llm import ToolCall, ToolResult, ToolSpec
from sentry_autofix.errors import GitError, GuardViolation
from sentry_autofix.models import Confidence, TestOutcome
from sentry_autofix.workspace import diff as wsdiff
from sentry_autofix.workspace.git import run_git
from sentry_autofix.workspace.guard import ALWAYS_PRIVATE, BlockedPath, PathGuard, matches_any
from sentry_autofix.workspace.testids import caused_failure, preexisting
from sentry_autofix.workspace.testrunner import redact

TestRunner = Callable[[str | None], TestOutcome]
"""Runs a test command (None: the configured one) in the workspace, scrubbed and bounded."""

_STR = {"type": "string"}

TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "read_file",
        "Read a file of the repository as numbered lines (at most 400 lines per call; page with "
        "start_line/end_line). Paths are relative to the repository root.",
        {
            "type": "object",
            "properties": {
                "path": {**_STR, "description": "repo-relative path, e.g. app/models.py"},
                "start_line": {"type": "integer", "minimum": 1, "description": "first line (1-based)"},
                "end_line": {"type": "integer", "minimum": 1, "description": "last line, inclusive"},
            },
            "required": ["path"],
        },
    ),
    ToolSpec(
        "search_code",
        "Search the repository's files with an extended regular expression (git grep -E). Returns "
        "path:line:text matches, capped.",
        {
            "type": "object",
            "properties": {
                "pattern": {**_STR, "description": "extended regex, e.g. 'def total_price|class Cart'"},
                "path_glob": {
                    **_STR,
                    "description": "limit to files matching this gitignore-style glob, e.g. 'src/**/*.py' "
                    "('*.py' matches at any depth)",
                },
            },
            "required": ["pattern"],
        },
    ),
    ToolSpec(
        "list_files",
        "List the repository's files under a folder (tracked files and the files you wrote), capped.",
        {
            "type": "object",
            "properties": {"path": {**_STR, "description": "folder, repo-relative; default: the root"}},
            "required": [],
        },
    ),
    ToolSpec(
        "edit_file",
        "Replace exactly one occurrence of old_text with new_text in a file. old_text must identify a "
        "unique place: include a few surrounding lines. Indentation/whitespace drift is tolerated, "
        "ambiguous matches are refused.",
        {
            "type": "object",
            "properties": {
                "path": _STR,
                "old_text": {
                    **_STR,
                    "description": "the exact text to replace (copy it from read_file, without line numbers)",
                },
                "new_text": {**_STR, "description": "the replacement text"},
            },
            "required": ["path", "old_text", "new_text"],
        },
    ),
    ToolSpec(
        "write_file",
        "Create a file, or fully rewrite one, with the given content (use for new regression tests).",
        {
            "type": "object",
            "properties": {"path": _STR, "content": _STR},
            "required": ["path", "content"],
        },
    ),
    ToolSpec(
        "run_tests",
        "Run the repository's configured test command and return its exit code and the tail of its "
        "output. `command` may only narrow it: the configured command followed by test file paths or "
        "test ids (e.g. 'tests/test_cart.py::test_empty'); options, @files and any other command are refused.",
        {
            "type": "object",
            "properties": {"command": {**_STR, "description": "optional narrower command"}},
            "required": [],
        },
    ),
    ToolSpec(
        "finish",
        "End the session once the fix is made and tests pass (or when no safe fix is possible: then "
        "leave the files unchanged and say why, with confidence low).",
        {
            "type": "object",
            "properties": {
                "root_cause": {**_STR, "description": "one or two sentences: why the error happened"},
                "analysis": {**_STR, "description": "how you found it and why the change fixes it"},
                "confidence": {"type": "string", "enum": ["high", "medium", "low"]},
                "pr_title": {**_STR, "description": "short imperative title for the pull request"},
                "summary": {**_STR, "description": "what changed, per file, for the PR body"},
            },
            "required": ["root_cause", "analysis", "confidence", "pr_title", "summary"],
        },
    ),
)

TOOL_NAMES = tuple(t.name for t in TOOL_SPECS)
_SPEC_BY_NAME = {t.name: t for t in TOOL_SPECS}
_SAFE_TEST_ARG = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:\[\],+-]*\Z")
"""A test path or id: no leading `-` (an option) or `@` (pytest reads options from `@file`), no `=`
(`make test SHELL=…`, `--basetemp=…`), no shell syntax; quoted anyway when the command is built."""
_MAX_LINE = 400


@dataclass(frozen=True)
class Finish:
    root_cause: str
    analysis: str
    confidence: Confidence
    pr_title: str
    summary: str


class ToolInputError(Exception):
    """The model's input does not fit the tool's schema (reported back to it, not raised further)."""


def validate_input(spec: ToolSpec, data: dict[str, Any]) -> dict[str, Any]:
    """Check required keys and primitive types of `data` against the (simple) JSON schema."""
    schema = spec.input_schema
    props: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in data or data[name] is None:
            raise ToolInputError(f"{spec.name}: missing required input {name!r}")
    clean: dict[str, Any] = {}
    for name, value in data.items():
        prop = props.get(name)
        if prop is None or value is None:
            continue  # unknown keys are ignored, like most tool runtimes do
        kind = prop.get("type")
        if kind == "string" and not isinstance(value, str):
            raise ToolInputError(f"{spec.name}: {name!r} must be a string")
        if kind == "integer":
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ToolInputError(f"{spec.name}: {name!r} must be an integer")
            if value < prop.get("minimum", value):
                raise ToolInputError(f"{spec.name}: {name!r} must be >= {prop['minimum']}")
        if "enum" in prop and isinstance(value, str) and value.strip().lower() in prop["enum"]:
            value = value.strip().lower()  # "High" means high
        if "enum" in prop and value not in prop["enum"]:
            raise ToolInputError(f"{spec.name}: {name!r} must be one of {prop['enum']}")
        clean[name] = value
    return clean


def numbered(lines: Sequence[str], first: int) -> str:
    width = len(str(first + len(lines)))
    return "\n".join(f"{n:>{width}}\t{line[: _MAX_LINE * 4]}" for n, line in enumerate(lines, start=first))


@dataclass
class Toolbox:
    """Executes tool calls for one fix attempt and remembers what they did."""

    workspace: Path
    guard: PathGuard
    test_runner: TestRunner
    test_command: str | None
    secret_values: Sequence[str] = ()
    written: set[str] = field(default_factory=set)
    """Repo-relative paths the model created or changed through edit_file/write_file."""
    blocked_attempts: list[str] = field(default_factory=list)
    """Paths the model tried to change but the guard refused as blocked."""
    last_tests: TestOutcome | None = None
    tests_current: bool = False
    """True while `last_tests` ran the full command on the current files."""
    specs: tuple[ToolSpec, ...] = TOOL_SPECS
    baseline: wsdiff.Baseline | None = None
    """The workspace as the fix found it: which files were untracked, and the ignore rules then.
    None: the toolbox snapshots the workspace itself when it is made."""
    baseline_tests: TestOutcome | None = None
    """The test command's run on the untouched workspace (`baseline-tests`), if any."""

    def __post_init__(self) -> None:
        if self.baseline is None:
            self.baseline = wsdiff.take_baseline(self.workspace)

    def execute(self, call: ToolCall) -> tuple[ToolResult, Finish | None]:
        spec = _SPEC_BY_NAME.get(call.name)
        if spec is None:
            return self._error(call, f"unknown tool {call.name!r}; available: {', '.join(TOOL_NAMES)}"), None
        if call.input_error:
            return self._error(call, f"{call.name}: {call.input_error}; send a JSON object matching the schema"), None
        try:
            args = validate_input(spec, call.input)
            if call.name == "finish":
                return ToolResult(call.id, "finish accepted"), Finish(**args)
            handler: Callable[[dict[str, Any]], str] = getattr(self, f"_{call.name}")
            output = handler(args)
        except BlockedPath as exc:
            self.blocked_attempts.append(exc.path)
            return self._error(call, str(exc)), None
        except (ToolInputError, GuardViolation, GitError) as exc:
            return self._error(call, str(exc)), None
        except (OSError, UnicodeDecodeError) as exc:
            return self._error(call, f"{call.name}: {type(exc).__name__}: {exc}"), None
        return ToolResult(call.id, redact(output, self.secret_values)), None

    def _error(self, call: ToolCall, message: str) -> ToolResult:
        return ToolResult(call.id, redact(message, self.secret_values), is_error=True)

    # -- reading ------------------------------------------------------------------------------

    def _read_text(self, rel: str, strict: bool = False) -> str:
        full = self.guard.read_path(rel, self.written)
        if full.is_dir():
            raise ToolInputError(f"{rel}: is a folder; use list_files to see what is in it")
        if not full.is_file():
            hint = self._similar_paths(rel)
            raise ToolInputError(f"{rel}: no such file" + (f"; did you mean {', '.join(hint)}?" if hint else ""))
        data = self.guard.read_bytes(rel, self.written)
        if b"\x00" in data[:8192]:
            raise ToolInputError(f"{rel}: binary file, not shown")
        if strict:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise ToolInputError(f"{rel}: not UTF-8 text; edit_file would corrupt it") from None
        return data.decode("utf-8", errors="replace")

    def _similar_paths(self, rel: str) -> list[str]:
        files = self._ls_files(".")
        return difflib.get_close_matches(rel, files, n=3, cutoff=0.6)

    def _read_file(self, args: dict[str, Any]) -> str:
        rel = self.guard.relative(args["path"])
        lines = self._read_text(rel).splitlines()
        limits = self.guard.limits
        start = args.get("start_line", 1)
        end = args.get("end_line", start + limits.max_read_lines - 1)
        if end < start:
            raise ToolInputError("read_file: end_line is before start_line")
        end = min(end, start + limits.max_read_lines - 1, len(lines))
        if start > max(len(lines), 1):
            raise ToolInputError(f"read_file: {rel} has only {len(lines)} lines")
        body = numbered(lines[start - 1 : end], start)
        if len(body) > limits.max_read_chars:
            body = body[: limits.max_read_chars] + "\n[… truncated: read a smaller range …]"
        more = f"; {len(lines) - end} more lines: call again with start_line={end + 1}" if end < len(lines) else ""
        return f"{rel} (lines {start}-{end} of {len(lines)}{more})\n{body}"

    def _visible(self) -> set[str]:
        """Files the model may know by name: the guard's readable files and the ones it wrote."""
        hidden = (*self.guard.secret_reads, *ALWAYS_PRIVATE)
        mine = {p for p in self.written if not matches_any(p, hidden) and (self.workspace / p).is_file()}
        return set(self.guard.readable_files()) | mine

    def _ls_files(self, rel: str) -> list[str]:
        # Filtered in Python, not by a git pathspec: every git call runs with literal pathspecs.
        prefix = "" if rel == "." else rel + "/"
        return sorted(p for p in self._visible() if p == rel or p.startswith(prefix))

    def _list_files(self, args: dict[str, Any]) -> str:
        rel = self.guard.list_path(args.get("path") or ".")
        files = self._ls_files(rel)
        if not files:
            return f"no files under {rel}"
        cap = self.guard.limits.max_list_entries
        shown = "\n".join(files[:cap])
        return shown + (f"\n[… {len(files) - cap} more; list a narrower folder …]" if len(files) > cap else "")

    def _search_code(self, args: dict[str, Any]) -> str:
        pattern = args["pattern"]
        if not pattern.strip():
            raise ToolInputError("search_code: pattern is empty")
        glob = (args.get("path_glob") or "").strip().lstrip("/")
        if ".." in glob.split("/"):
            raise GuardViolation("search_code: '..' is not allowed in path_glob")
        visible = self._visible()
        # git grep over the whole work tree, then the guard's rule and the glob in Python: pathspec
        # magic (`:(glob)`) is off for every git call, and the model's glob is not a pathspec.
        proc = run_git(
            self.workspace,
            "--literal-pathspecs",
            "-c",
            "core.quotePath=false",
            "grep",
            "-n",
            "-z",
            "-I",
            "-E",
            "--no-color",
            *(["--untracked"] if visible - self.guard.tracked() else []),
            "-e",
            pattern,
            "--",
            ".",
            check=False,
            timeout=60,
        )
        if proc.returncode == 1:
            return "no matches"
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["error"])[-1]
            raise ToolInputError(f"search_code: {detail} (pattern is an extended regex, like grep -E)")
        allowed: dict[str, bool] = {}
        kept: list[str] = []
        size = 0
        cap = self.guard.limits.max_search_chars
        for record in proc.stdout.split("\n"):  # not splitlines(): \f, \x1c… are not line ends to git
            path, _, rest = record.partition("\0")
            line_no, _, text = rest.partition("\0")
            if not rest:
                continue
            if path not in allowed:
                allowed[path] = path in visible and (not glob or bool(matches_any(path, [glob])))
                if allowed[path]:
                    try:  # the rule for the target of a symlink, secrets included
                        self.guard.read_path(path, self.written)
                    except GuardViolation:
                        allowed[path] = False
            if not allowed[path]:
                continue
            line = f"{path}:{line_no}:{text}"
            line = line if len(line) <= 300 else line[:300] + " […]"
            if size + len(line) > cap:
                kept.append(f"[… output capped at {cap} characters; narrow the pattern or path_glob …]")
                break
            kept.append(line)
            size += len(line) + 1
        return "\n".join(kept) if kept else "no matches"

    # -- changing -----------------------------------------------------------------------------

    def _write_file(self, args: dict[str, Any]) -> str:
        content: str = args["content"]
        full = self.guard.write_path(args["path"], len(content.encode()))
        rel = self.guard.relative(args["path"])
        self._refuse_not_ours(rel)
        existed = full.is_file()
        self.guard.write_bytes(rel, content.encode("utf-8"))
        self._changed(rel)
        return f"{'rewrote' if existed else 'created'} {rel} ({len(content.splitlines())} lines)"

    def _edit_file(self, args: dict[str, Any]) -> str:
        rel = self.guard.relative(args["path"])
        old, new = args["old_text"], args["new_text"]
        if not old:
            raise ToolInputError("edit_file: old_text is empty; use write_file to create a file")
        if old == new:
            raise ToolInputError("edit_file: old_text and new_text are the same; nothing to change")
        self.guard.write_path(args["path"], 0)
        self._refuse_not_ours(rel)
        # An edit's error hints quote the file: it must be readable too.
        text = self._read_text(rel, strict=True)
        updated = replace_once(text, old, new, rel)
        self.guard.write_bytes(rel, updated.encode("utf-8"))
        self._changed(rel)
        first = text[: text.find(old)].count("\n") + 1 if old in text else None
        where = f" at line {first}" if first else ""
        return f"edited {rel}{where}: {old.count(chr(10)) + 1} line(s) replaced by {new.count(chr(10)) + 1}"

    def _refuse_not_ours(self, rel: str) -> None:
        """Only tracked files and new files may change. A file that was untracked when the fix
        started, or that the baseline's ignore rules ignore (local config, `node_modules/`), is the
        user's: writing it would put it in the fix, and restoring the workspace would delete it.
        The rules are the baseline's, not the work tree's: the model (or a test) may rewrite
        `.gitignore` before writing. Both the named path and its symlink target are checked."""
        assert self.baseline is not None  # set in __post_init__
        tracked = self.guard.tracked()
        candidates = {rel, self.guard.resolved_rel(rel)}
        for candidate in sorted(candidates):
            if candidate in self.baseline.untracked:
                raise ToolInputError(
                    f"{candidate}: this untracked file was in the workspace before the fix started; "
                    "a fix may only change files of the repository and files it creates"
                )
        ignored = wsdiff.ignored_at_baseline(self.workspace, self.baseline, candidates - tracked)
        if ignored:
            raise ToolInputError(
                f"{sorted(ignored)[0]}: git ignores this path; a fix may only change files of the repository"
            )

    def _changed(self, rel: str) -> None:
        self.written.add(rel)
        self.tests_current = False

    # -- tests --------------------------------------------------------------------------------

    def narrowed_command(self, asked: str | None) -> str | None:
        """The command run_tests may run: the configured one, optionally followed by test paths or
        ids inside the workspace. Options, `@argsfile`, `NAME=value` and anything that is not a
        plain path (or `path::test id`) are refused: they could change what runs or where."""
        base = self.test_command
        if not asked or not asked.strip() or base is None or asked.strip() == base.strip():
            return base
        try:
            words, base_words = shlex.split(asked), shlex.split(base)
        except ValueError as exc:
            raise ToolInputError(f"run_tests: cannot parse the command ({exc})") from exc
        if words[: len(base_words)] != base_words:
            raise ToolInputError(
                f"run_tests: only the configured command {base!r} may run, optionally followed by test "
                "paths or ids; arbitrary commands are refused"
            )
        extra = words[len(base_words) :]
        for arg in extra:
            self._check_test_arg(arg)
        return " ".join([base, *(shlex.quote(a) for a in extra)])

    def _check_test_arg(self, arg: str) -> None:
        refused = ToolInputError(
            f"run_tests: extra argument {arg!r} refused; only test file paths or test ids inside the "
            "repository may be added (no options, @files or NAME=value)"
        )
        if not _SAFE_TEST_ARG.match(arg):
            raise refused
        path = arg.split("::", 1)[0]
        if not path or PurePosixPath(path).is_absolute() or ".." in path.split("/"):
            raise refused
        try:
            self.guard.relative(path)
        except GuardViolation:
            raise refused from None

    def regressed(self, outcome: TestOutcome) -> bool:
        """Whether `outcome` fails because of the change: not when every failing test already failed
        in the baseline run; yes when that cannot be told."""
        return caused_failure(self.baseline_tests, outcome) is not False

    def execute_tests_now(self) -> TestOutcome:
        """Run the full configured command on the current files (used after `finish`)."""
        if self.test_command is None:
            outcome = TestOutcome(status="not-run", output_tail="no test command is configured")
        else:
            outcome = self.test_runner(self.test_command)
        self.last_tests = outcome
        self.tests_current = True
        return outcome

    def _run_tests(self, args: dict[str, Any]) -> str:
        command = self.narrowed_command(args.get("command"))
        if command is None:
            outcome = TestOutcome(status="not-run", output_tail="no test command is configured")
            self.last_tests = outcome
            return "tests not run: no test command is configured for this repository"
        outcome = self.test_runner(command)
        if command == self.test_command:
            self.last_tests = outcome
            self.tests_current = True
        tail = outcome.output_tail[-self.guard.limits.max_test_output_chars :]
        old = preexisting(self.baseline_tests, outcome)
        note = f"\n[{len(old)} of these failures also failed before any change: {', '.join(old)[:2000]}]" if old else ""
        return f"$ {command}\nexit code: {outcome.exit_code} ({outcome.status})\n{tail}{note}"


# -- tolerant single replacement ------------------------------------------------------------------


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def replace_once(text: str, old: str, new: str, rel: str = "file") -> str:
    """Replace the one place `old` occurs; tolerate whitespace drift; refuse 0 or >1 matches."""
    count = text.count(old)
    if count == 1:
        return text.replace(old, new, 1)
    if count > 1:
        starts = [m.start() for m in re.finditer(re.escape(old), text)]
        lines = ", ".join(str(text[:s].count("\n") + 1) for s in starts[:10])
        raise ToolInputError(
            f"edit_file: old_text matches {count} places in {rel} (lines {lines}); "
            "include more surrounding lines so it is unique"
        )
    file_lines = text.splitlines(keepends=True)
    old_lines = old.splitlines()
    while old_lines and not old_lines[0].strip():
        old_lines.pop(0)
    while old_lines and not old_lines[-1].strip():
        old_lines.pop()
    if not old_lines:
        raise ToolInputError("edit_file: old_text is only whitespace")
    want = [line.strip() for line in old_lines]
    n = len(want)
    hits = [i for i in range(len(file_lines) - n + 1) if [fl.strip() for fl in file_lines[i : i + n]] == want]
    if len(hits) > 1:
        where = ", ".join(str(h + 1) for h in hits[:10])
        raise ToolInputError(
            f"edit_file: old_text (ignoring whitespace) matches {len(hits)} places in {rel} (lines {where}); "
            "include more surrounding lines so it is unique"
        )
    if not hits:
        close = difflib.get_close_matches(old_lines[0].strip(), [fl.strip() for fl in file_lines], n=1, cutoff=0.6)
        hint = ""
        if close:
            line_no = next(i for i, fl in enumerate(file_lines) if fl.strip() == close[0]) + 1
            hint = f"; the closest line is {line_no}: {close[0][:120]!r} — read the file again"
        raise ToolInputError(f"edit_file: old_text not found in {rel}{hint}")
    start = hits[0]
    # Re-indent the replacement: each indentation the model used in old_text maps to the one the
    # file really has on the matched line; new lines reuse that mapping (deeper levels keep their
    # extra indentation on top of the nearest mapped level).
    mapping: dict[str, str] = {}
    for o, f in zip(old_lines, file_lines[start : start + n], strict=True):
        if o.strip():
            mapping.setdefault(_indent(o), _indent(f))
    shifted = []
    for line in new.splitlines():
        if not line.strip():
            shifted.append("")
            continue
        ind = _indent(line)
        if ind in mapping:
            shifted.append(mapping[ind] + line.lstrip())
            continue
        base = max((k for k in mapping if ind.startswith(k)), key=len, default="")
        shifted.append(mapping.get(base, "") + ind[len(base) :] + line.lstrip())
    last = file_lines[start + n - 1]
    newline = "\r\n" if last.endswith("\r\n") else "\n"
    ending = newline if last.endswith(("\n", "\r")) else ""
    replacement = newline.join(shifted) + ending if shifted else ""
    return "".join(file_lines[:start]) + replacement + "".join(file_lines[start + n :])
