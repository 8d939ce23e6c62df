"""Recall of the traceback source: is the file that needs the fix among the top 3 suspects?

    .venv/bin/python bench/traceback_recall.py [--verbose]

For every real crash captured in tests/fixtures/tracebacks/raw (see PROVENANCE.md there), wrapped
every way tests/tracebacks_wrap.py knows (raw, CloudWatch, Docker, Kubernetes, journald, JSON log
records, Slack, ANSI), the traceback is parsed and triaged against the app's repository (a git repo
built from apps/<lang>/, laid out differently from the deployment the crash ran in). Prints top-1 and
top-3 recall per language and per wrapper.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.tracebacks_wrap import WRAPPERS  # noqa: E402

from sentry_autofix.config import Settings  # noqa: E402
from sentry_autofix.sources.traceback_text import parse_traceback  # noqa: E402
from sentry_autofix.triage import build_triage  # noqa: E402
from sentry_autofix.workspace.mapping import WorkspaceIndex  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tracebacks"


def make_repo(src: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
    env = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "-C", str(dest), "init", "-q", "-b", "main"], check=True)
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(dest), *env, "commit", "-q", "-m", "initial"], check=True)
    return dest


def main() -> None:
    verbose = "--verbose" in sys.argv
    cases = json.loads((FIXTURES / "cases.json").read_text())
    settings = Settings()
    by_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_wrap: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with tempfile.TemporaryDirectory() as tmp:
        repos: dict[str, Path] = {}
        indexes: dict[str, WorkspaceIndex] = {}
        for name, case in sorted(cases.items()):
            app = case["app"]
            if app not in repos:
                repos[app] = make_repo(FIXTURES / "apps" / app, Path(tmp) / app)
                indexes[app] = WorkspaceIndex.scan(repos[app])
            raw = (FIXTURES / "raw" / name).read_text()
            for wname, wrap in WRAPPERS.items():
                try:
                    event = parse_traceback(wrap(raw))
                    report = build_triage(event, repos[app], settings, indexes[app])
                    top = [s.path for s in report.suspects[:3]]
                except Exception as exc:
                    top = [f"ERROR {type(exc).__name__}: {exc}"[:120]]
                hit1, hit3 = bool(top) and top[0] == case["fix"], case["fix"] in top
                for bucket in (by_lang[app], by_wrap[wname]):
                    bucket[0] += 1
                    bucket[1] += hit1
                    bucket[2] += hit3
                if verbose and not hit3:
                    print(f"MISS {name} [{wname}] want {case['fix']} got {top}")
    total = [sum(v[i] for v in by_lang.values()) for i in range(3)]
    print(f"{'language':<12} {'cases':>6} {'top-1':>7} {'top-3':>7}")
    for lang, (n, t1, t3) in sorted(by_lang.items()):
        print(f"{lang:<12} {n:>6} {t1 / n:>7.0%} {t3 / n:>7.0%}")
    print(f"{'wrapper':<18} {'cases':>6} {'top-1':>7} {'top-3':>7}")
    for wname, (n, t1, t3) in by_wrap.items():
        print(f"{wname:<18} {n:>6} {t1 / n:>7.0%} {t3 / n:>7.0%}")
    n, t1, t3 = total
    print(f"ALL: {n} traceback texts, top-1 {t1}/{n} ({t1 / n:.0%}), top-3 {t3}/{n} ({t3 / n:.0%})")


if __name__ == "__main__":
    main()
