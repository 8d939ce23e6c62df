"""`sentry-autofix eval`: how well the fix pipeline does on this repository's own resolved errors.

Every issue a human resolved with a commit is a test case with a known answer: the event, the code
before the fix (the fix commit's parent) and the fix. Per case, top to bottom:

1. cases   — from Sentry (issues resolved in a commit, `statusDetails.inCommit`, and their newest
             event before the resolution) or from a folder (`<case>/event.json` + `case.json`);
2. checkout — a throwaway `git worktree` of the repository at the base commit (the user's working
             tree is never touched; the worktree is removed afterwards);
3. locate  — the triage the fix starts from: are the human fix's files among the suspects?
4. fix     — `fix.run_fix` with the configured model, in dry run, tests sandboxed: the very code
             path of `sentry-autofix fix --dry-run`;
5. score   — the SWE-bench check: the tests the human fix added or changed must fail on the base
             commit and pass with the agent's patch; plus the repository's test command as the
             agent ran it, status, turns, tokens, cost and wall time;
6. record  — one JSON line per case (`--out`, which also makes the run resumable), a table on
             stdout and a markdown summary for the job summary.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentry_autofix import neutral
from sentry_autofix.actions import scrub
from sentry_autofix.agent.llm import LLM, build_llm
from sentry_autofix.config import Settings
from sentry_autofix.errors import AutofixError, ConfigError, InputError
from sentry_autofix.fix import is_test_path, run_fix
from sentry_autofix.models import ErrorEvent, TestOutcome
from sentry_autofix.sources.sentry import SentryClient
from sentry_autofix.sources.sentry_event import load_event_file
from sentry_autofix.triage import build_triage
from sentry_autofix.workspace import diff as wsdiff
from sentry_autofix.workspace.git import run_git
from sentry_autofix.workspace.testrunner import executor_for

CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""What a case id may look like: it names a folder, a matrix entry and a line of the results."""
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/^~-]{0,199}$")
"""A commit-ish from case.json: no leading `-` (it becomes a git argument), no revision ranges."""
_SINCE = re.compile(r"^(\d{1,4})([hdw])$")
MAX_MATRIX_JOBS = 256
"""GitHub Actions runs at most 256 jobs per matrix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalCase(_Model):
    """One resolved error: where its event comes from and which commit fixed it."""

    id: str
    fix_commit: str
    base_commit: str | None = None
    """Default: the fix commit's first parent."""
    repository: str | None = None
    """The repository Sentry knows the fix commit from (informational)."""
    issue_id: str | None = None
    """Sentry cases: the issue whose newest event before the resolution is the crash."""
    event_file: Path | None = None
    """Folder cases: `<case>/event.json`."""


class CaseFile(_Model):
    """`<case>/case.json` of a cases folder."""

    fix_commit: str = Field(description="the commit that fixed the error (sha or any commit-ish)")
    base_commit: str | None = Field(None, description="the code the error happened on; default: fix_commit^")


CaseStatus = Literal["fixed", "no-fix", "skipped-blocked-path", "error", "skipped"]


class CaseResult(_Model):
    """One line of `--out`: everything measured for one case."""

    id: str = Field(pattern=CASE_ID.pattern)
    status: CaseStatus
    """The fix's status (`fixed`: the agent produced a change it vouched for), `skipped` when the
    case could not be set up (e.g. the fix commit is not in the checkout's history)."""
    error: str | None = None
    headline: str = ""
    fix_commit: str = ""
    base_commit: str = ""
    llm: str = ""
    model: str = ""
    human_files: list[str] = Field(default_factory=list)
    """Non-test files the human fix changed."""
    human_test_files: list[str] = Field(default_factory=list)
    suspects: list[str] = Field(default_factory=list)
    """The triage's suspect files, best first (top 5)."""
    localized_at_1: bool | None = None
    localized_at_3: bool | None = None
    agent_files: list[str] = Field(default_factory=list)
    """Non-test files the agent's patch changed."""
    files_overlap: float | None = None
    """Share of the human fix's files the agent's patch also changed."""
    fails_without_patch: bool | None = None
    """The human fix's tests fail on the base commit (the case can judge a patch)."""
    passes_with_patch: bool | None = None
    """The human fix's tests pass with the agent's patch."""
    resolved: bool | None = None
    """Both of the above: the SWE-bench verdict. None when the case cannot judge."""
    suite: Literal["passed", "failed", "not-run"] = "not-run"
    """The repository's test command on the agent's patch, as the fix ran it."""
    sandboxed: bool | None = None
    """Whether the tests ran in the sandbox (False: the user's allow-unsandboxed-tests opt-out)."""
    reproduced: Literal["true", "false", "unknown"] = "unknown"
    """The agent's own regression test failed without its fix (`fix`'s check)."""
    confidence: str | None = None
    # Bounded: `--report` reads lines another job wrote (a matrix fan-in) and must not total nonsense.
    turns: int = Field(0, ge=0, le=10_000)
    input_tokens: int = Field(0, ge=0, le=10**12)
    output_tokens: int = Field(0, ge=0, le=10**12)
    cost_usd: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False)
    seconds: float = Field(0.0, ge=0, le=1e7, allow_inf_nan=False)
    """Wall time of the whole case: checkout, triage, fix, scoring."""


# --- 1. cases ------------------------------------------------------------------------------------


def parse_since(value: str) -> timedelta:
    m = _SINCE.match(value.strip())
    if not m:
        raise ConfigError(f"--since {value!r}: write a number and h, d or w, e.g. 90d")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w" else 1))


def folder_cases(root: Path) -> list[EvalCase]:
    """`root/<case-id>/{event.json,case.json}`, sorted by id (docs/eval.md)."""
    if not root.is_dir():
        raise InputError(f"--cases {root}: no such directory")
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (folder / "case.json").is_file():
            continue
        if not CASE_ID.fullmatch(folder.name):
            raise InputError(f"--cases: folder name {folder.name!r} is not a case id (letters, digits, . _ -)")
        try:
            spec = CaseFile.model_validate_json((folder / "case.json").read_text(encoding="utf-8"))
        except (OSError, ValidationError) as exc:
            raise InputError(f"{folder / 'case.json'}: {exc}") from exc
        for ref in (spec.fix_commit, spec.base_commit):
            if ref is not None and (not _REF.fullmatch(ref) or ".." in ref):
                raise InputError(f"{folder / 'case.json'}: {ref[:80]!r} is not a commit")
        cases.append(
            EvalCase(
                id=folder.name,
                fix_commit=spec.fix_commit,
                base_commit=spec.base_commit,
                event_file=folder / "event.json",
            )
        )
    return cases


def sentry_cases(client: SentryClient, since: str, limit: int, projects: Sequence[str]) -> list[EvalCase]:
    """Issues resolved in a commit and seen within `since`, newest first; each case's event is
    fetched when it runs."""
    parse_since(since)
    return [
        EvalCase(id=res.issue.id, fix_commit=res.commit, repository=res.repository, issue_id=res.issue.id)
        for res in client.resolved_in_commit(since=since, limit=limit, projects=projects)
    ]


def sentry_case(client: SentryClient, issue_id: str) -> EvalCase:
    res = client.issue_resolution(issue_id)
    if res is None:
        raise InputError(
            f"--case {issue_id}: the Sentry issue was not resolved in a commit (no statusDetails.inCommit)"
        )
    return EvalCase(id=res.issue.id, fix_commit=res.commit, repository=res.repository, issue_id=res.issue.id)


def case_event(case: EvalCase, client: SentryClient | None) -> ErrorEvent:
    if case.event_file is not None:
        return load_event_file(case.event_file)
    if client is None or case.issue_id is None:
        raise ConfigError("Sentry cases need Sentry access: set SENTRY_AUTH_TOKEN and SENTRY_ORG, or pass --cases DIR")
    return client.event_before_resolution(case.issue_id)


# --- 2. checkout ---------------------------------------------------------------------------------


def resolve_commit(repo: Path, ref: str) -> str | None:
    if not _REF.match(ref) or ".." in ref:
        return None
    proc = run_git(repo, "rev-parse", "--verify", "-q", "--end-of-options", f"{ref}^{{commit}}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


@contextmanager
def clean_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of `repo` at `commit` in a temporary folder, removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="sentry-autofix-eval-"))
    path = parent / "ws"
    try:
        run_git(repo, "worktree", "add", "--detach", "--force", "-q", str(path), commit)
        yield path
    finally:
        removed = run_git(repo, "worktree", "remove", "--force", "--force", str(path), check=False).returncode == 0
        shutil.rmtree(parent, ignore_errors=True)
        if not removed:  # its folder is gone now: prune drops the registration git still holds
            run_git(repo, "worktree", "prune", check=False)


# --- 5. score ------------------------------------------------------------------------------------


def _in_files(test_id: str, paths: Sequence[str]) -> bool:
    """Whether a failing test id (pytest `path::name`, unittest `name (pkg.mod.Class)`, jest file…)
    belongs to one of `paths`."""
    for path in paths:
        stem = PurePosixPath(path).with_suffix("").as_posix()
        if path in test_id or stem in test_id or stem.replace("/", ".") in test_id:
            return True
    return False


def fails_in(outcome: TestOutcome, paths: Sequence[str]) -> bool | None:
    """A failure among the tests in `paths`; an unreadable failure counts as one. None: not run."""
    if outcome.status == "not-run":
        return None
    if outcome.status == "passed":
        return False
    ids = outcome.failed_tests
    return True if ids is None else any(_in_files(i, paths) for i in ids)


def human_test_runs(
    ws: Path, base: str, fix: str, tests: Sequence[str], patch: str | None, settings: Settings
) -> tuple[TestOutcome | None, TestOutcome | None]:
    """The test command with the human fix's test files on the base code, then on the agent's
    patch (None when there is no patch). Same sandbox and settings as the fix's own test runs."""
    if not tests or not settings.test_command:
        return None, None
    base_tree = run_git(ws, "rev-parse", f"{base}^{{tree}}").stdout.strip()
    fix_tree = run_git(ws, "rev-parse", f"{fix}^{{tree}}").stdout.strip()
    runner = executor_for(ws, settings)
    try:
        wsdiff.move_to_tree(ws, base_tree, fix_tree, only=tests)
        without = runner()
        if not patch:
            return without, None
        wsdiff.move_to_tree(ws, fix_tree, base_tree, only=tests)
        applied = run_git(ws, "apply", "--whitespace=nowarn", "-", input_text=patch, check=False)
        if applied.returncode != 0:
            return without, TestOutcome(status="not-run", output_tail=f"the patch does not apply: {applied.stderr}")
        wsdiff.move_to_tree(ws, base_tree, fix_tree, only=tests)  # the human tests win over the agent's
        return without, runner()
    finally:
        runner.close()


# --- the pipeline --------------------------------------------------------------------------------


def run_case(
    case: EvalCase,
    repo: Path,
    settings: Settings,
    llm: LLM,
    client: SentryClient | None,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> CaseResult:
    """Checkout → locate → fix (dry run) → score, for one case."""
    started = clock()
    out = CaseResult(id=case.id, status="skipped", llm=settings.llm, model=settings.model_name)
    fix = resolve_commit(repo, case.fix_commit)
    base = resolve_commit(repo, case.base_commit or f"{case.fix_commit}^")
    if fix is None or base is None:
        missing = case.fix_commit if fix is None else case.base_commit or f"{case.fix_commit}^"
        where = f" (Sentry names repository {case.repository})" if case.repository else ""
        out.error = (
            f"commit {missing} is not in the history of {repo}{where}: run eval in that repository's "
            "checkout with full history (actions/checkout fetch-depth: 0)"
        )
        return out
    out.fix_commit, out.base_commit = fix, base
    changed = [p for _, p in wsdiff.changed_paths(repo, base, fix)]
    out.human_files = [p for p in changed if not is_test_path(p)]
    out.human_test_files = [p for p in changed if is_test_path(p)]
    event = case_event(case, client)
    out.headline = event.headline[:300]
    with clean_worktree(repo, base) as ws:
        # locate
        triage = build_triage(event, ws, settings)
        suspects = list(dict.fromkeys(s.path for s in triage.suspects))
        out.suspects = suspects[:5]
        if out.human_files:
            out.localized_at_1 = bool(set(suspects[:1]) & set(out.human_files))
            out.localized_at_3 = bool(set(suspects[:3]) & set(out.human_files))
        # fix: what `fix --dry-run` runs
        run = run_fix(event, ws, settings, llm, triage=triage, keep_changes=False, progress=progress)
        result = run.result
        out.status, out.error = result.status, result.error
        out.suite, out.reproduced, out.confidence = result.tests.status, result.reproduced, result.confidence
        u = result.usage
        out.turns, out.cost_usd, out.sandboxed = u.turns, round(u.cost_usd, 6), result.tests.sandboxed
        out.input_tokens = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
        out.output_tokens = u.output_tokens
        patch = result.diff if result.status == "fixed" and result.diff.strip() else None
        if patch:
            out.agent_files = [f.path for f in result.files if not is_test_path(f.path)]
        if out.human_files:
            out.files_overlap = round(len(set(out.agent_files) & set(out.human_files)) / len(out.human_files), 3)
        # score
        without, with_patch = human_test_runs(ws, base, fix, out.human_test_files, patch, settings)
        if with_patch is not None and with_patch.status == "not-run":
            out.error = f"{out.error + '; ' if out.error else ''}human tests not run: {with_patch.output_tail[:300]}"
        if without is not None:
            out.fails_without_patch = fails_in(without, out.human_test_files)
            if out.fails_without_patch:
                failing = None if with_patch is None else fails_in(with_patch, out.human_test_files)
                out.passes_with_patch = False if patch is None else None if failing is None else not failing
                out.resolved = out.passes_with_patch
    out.seconds = round(clock() - started, 2)
    return out


def eval_command(
    args: argparse.Namespace,
    settings: Settings,
    *,
    llm: LLM | None = None,
    client: SentryClient | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The `eval` subcommand: cases → (per case) checkout, locate, fix, score → table, JSONL, summary."""
    out = neutral.stream(stdout or sys.stdout)
    err = neutral.stream(stderr or sys.stderr)
    results_path = Path(args.out)
    if args.report:
        done = read_results(results_path)
        _report(list(done.values()), args, settings, out, err)
        return 0
    if not 1 <= args.limit <= 10_000:
        raise ConfigError(f"--limit {args.limit}: give a number of cases from 1 to 10000")
    repo = _repository(args.workspace)
    if client is None and not args.cases and settings.sentry_auth_token is not None:
        client = SentryClient(settings)
    cases = _cases(args, settings, client)
    if args.matrix:
        if len(cases) > MAX_MATRIX_JOBS:
            raise ConfigError(f"a matrix holds at most {MAX_MATRIX_JOBS} jobs: lower --limit")
        out.write(json.dumps({"include": [{"case": c.id} for c in cases]}) + "\n")
        out.flush()
        return 0
    done = read_results(results_path)
    todo = [c for c in cases if c.id not in done]
    print(f"sentry-autofix: eval: {len(cases)} case(s), {len(cases) - len(todo)} already in {results_path}", file=err)
    if todo:
        agent = llm if llm is not None else build_llm(settings)
        try:
            for case in todo:
                done[case.id] = _measure(case, repo, settings, agent, client, results_path, err)
        finally:
            close = getattr(agent, "close", None)
            if llm is None and callable(close):
                close()
    ids = {c.id for c in cases}
    _report([r for r in done.values() if r.id in ids], args, settings, out, err)
    return 0


def _measure(
    case: EvalCase,
    repo: Path,
    settings: Settings,
    llm: LLM,
    client: SentryClient | None,
    results_path: Path,
    err: neutral.NeutralStream,
) -> CaseResult:
    """Run one case and append its line to `--out` at once (a cancelled job keeps what it measured)."""
    print(f"sentry-autofix: eval: case {case.id} (fix {case.fix_commit[:12]})", file=err)
    try:
        result = run_case(case, repo, settings, llm, client, progress=lambda line: print(line, file=err))
    except ConfigError:
        raise
    except AutofixError as exc:  # one broken case (event gone, git failure) is a line, not the end
        result = CaseResult(id=case.id, status="error", error=str(exc), llm=settings.llm, model=settings.model_name)
    result.error = scrub(result.error, settings.secret_values()) if result.error else None
    _append(results_path, result)
    print(f"sentry-autofix: eval: case {case.id}: {result.status} in {result.seconds:.1f}s", file=err)
    return result


def _repository(raw: str) -> Path:
    path = Path(raw or ".").resolve()
    proc = run_git(path, "rev-parse", "--show-toplevel", check=False) if path.is_dir() else None
    if proc is None or proc.returncode != 0:
        raise InputError(f"--workspace {raw}: not a git checkout (eval needs the repository with its history)")
    return Path(proc.stdout.strip())


def _cases(args: argparse.Namespace, settings: Settings, client: SentryClient | None) -> list[EvalCase]:
    wanted = list(args.case or [])
    for case_id in wanted:
        if not CASE_ID.fullmatch(case_id):
            raise InputError(f"--case {case_id[:80]!r} is not a case id")
    if args.cases:
        cases = folder_cases(Path(args.cases))
        if wanted:
            unknown = sorted(set(wanted) - {c.id for c in cases})
            if unknown:
                raise InputError(f"--case {', '.join(unknown)}: no such folder with a case.json in {args.cases}")
            return [c for c in cases if c.id in wanted]
        return cases[: args.limit]
    if client is None:
        raise ConfigError(
            "eval needs cases: set SENTRY_AUTH_TOKEN and SENTRY_ORG (issues resolved in a commit), or pass --cases DIR"
        )
    if wanted:
        return [sentry_case(client, case_id) for case_id in wanted]
    return sentry_cases(client, args.since, args.limit, settings.sentry_projects)


# --- 6. record -----------------------------------------------------------------------------------


def read_results(path: Path) -> dict[str, CaseResult]:
    """The cases already measured in `--out` (a missing file is an empty run)."""
    if not path.exists():
        return {}
    done: dict[str, CaseResult] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read --out {path}: {exc.strerror}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = CaseResult.model_validate_json(line)
        except ValidationError as exc:
            raise InputError(f"--out {path} line {n} is not an eval result: {exc.errors()[0]['msg']}") from exc
        done[record.id] = record
    return done


def _append(path: Path, result: CaseResult) -> None:
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(result.model_dump_json() + "\n")
    except OSError as exc:
        raise InputError(f"cannot write --out {path}: {exc.strerror}") from exc


def _mark(value: bool | None) -> str:
    return "—" if value is None else "yes" if value else "no"


def _pct(values: Sequence[bool | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{sum(known)}/{len(known)}" + (f" ({100 * sum(known) / len(known):.0f} %)" if known else "")


def _row(r: CaseResult) -> list[str]:
    return [
        r.id,
        r.status,
        _mark(r.localized_at_1),
        _mark(r.localized_at_3),
        "—" if r.files_overlap is None else f"{r.files_overlap:.0%}",
        _mark(r.resolved),
        r.suite,
        str(r.turns),
        f"{r.input_tokens + r.output_tokens:,}",
        f"${r.cost_usd:.4f}",
        f"{r.seconds:.1f}s",
    ]


HEADER = ["case", "status", "loc@1", "loc@3", "overlap", "resolved", "suite", "turns", "tokens", "cost", "time"]


def render_table(results: Sequence[CaseResult]) -> str:
    """Aligned plain text for the terminal."""
    rows = [HEADER, *(_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def render_summary(results: Sequence[CaseResult]) -> str:
    """Markdown for the job summary; case ids and error texts are untrusted (md_code)."""
    ran = [r for r in results if r.status != "skipped"]
    cost = sum(r.cost_usd for r in ran)
    models = ", ".join(sorted({f"{r.llm}/{r.model}" for r in ran})) or "no case run"
    lines = [
        f"## sentry-autofix eval: {neutral.md_text(models, 200)}",
        "",
        f"* cases: {len(ran)} run, {len(results) - len(ran)} skipped; fixed {sum(r.status == 'fixed' for r in ran)}",
        f"* localized: @1 {_pct([r.localized_at_1 for r in ran])}, @3 {_pct([r.localized_at_3 for r in ran])}",
        f"* resolved (the fix's tests fail before, pass with the agent's patch): {_pct([r.resolved for r in ran])}",
        f"* cost: ${cost:.4f} total, ${cost / len(ran) if ran else 0:.4f} per case; "
        f"median wall time {statistics.median([r.seconds for r in ran]) if ran else 0:.1f}s",
        "",
        "| " + " | ".join(HEADER) + " | error |",
        "|" + "---|" * (len(HEADER) + 1),
    ]
    for r in results:
        cells = _row(r)
        cells[0] = neutral.md_code(r.id, 64)
        lines.append("| " + " | ".join(cells) + f" | {neutral.md_code(r.error, 120)} |")
    return "\n".join(lines) + "\n"


def _report(
    results: Sequence[CaseResult],
    args: argparse.Namespace,
    settings: Settings,
    out: neutral.NeutralStream,
    err: neutral.NeutralStream,
) -> None:
    out.write(render_table(results) + "\n")
    out.flush()
    summary = scrub(render_summary(results), settings.secret_values())
    target = args.summary or settings.github_step_summary
    if target:
        try:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(summary)
        except OSError as exc:
            raise InputError(f"cannot write the summary to {target}: {exc.strerror}") from exc
        print(f"sentry-autofix: eval: summary written to {target}", file=err)
