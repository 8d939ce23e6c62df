"""A scripted stand-in for the LLM fix agent (the `Fixer` protocol of sentry_autofix.pipeline).

Like mini-swe-agent's DeterministicModel: it replays fixed edits instead of asking a model, but
otherwise behaves like the agent — it edits real files in the workspace, and the change it
reports is what `git diff` says (parsed with unidiff), never its own description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unidiff import PatchSet

from sentry_autofix.config import Settings
from sentry_autofix.models import Confidence, FileChange, FixResult, FixStatus, TriageReport, Usage
from sentry_autofix.workspace.git import run_git


@dataclass
class Edit:
    path: str
    old: str | None
    """None: write `new` as the whole file."""
    new: str


@dataclass
class ScriptedFixer:
    edits: list[Edit]
    confidence: Confidence = "high"
    status: FixStatus = "fixed"
    root_cause: str = "average_item_price divides by the unit count, which is 0 for an empty cart."
    pr_title: str = "Guard average_item_price against an empty cart"
    calls: list[TriageReport] = field(default_factory=list)

    def fix(self, report: TriageReport, workspace: Path, settings: Settings) -> FixResult:
        self.calls.append(report)
        if self.status != "fixed":
            return FixResult(status=self.status, root_cause=self.root_cause, confidence=self.confidence)
        for edit in self.edits:
            target = workspace / edit.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if edit.old is None:
                target.write_text(edit.new, encoding="utf-8")
            else:
                text = target.read_text(encoding="utf-8")
                if text.count(edit.old) != 1:
                    raise AssertionError(f"scripted edit does not apply to {edit.path}")
                target.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
        run_git(workspace, "add", "-A", "--intent-to-add")
        diff = run_git(workspace, "diff").stdout
        run_git(workspace, "reset", "-q")
        files = [
            FileChange(
                path=p.path, added=p.added, removed=p.removed, is_new=p.is_added_file, is_deleted=p.is_removed_file
            )
            for p in PatchSet(diff)
        ]
        return FixResult(
            status="fixed",
            root_cause=self.root_cause,
            analysis="Scripted analysis.",
            confidence=self.confidence,
            pr_title=self.pr_title,
            summary="Return 0.0 when the cart has no units.",
            diff=diff,
            files=files,
            usage=Usage(input_tokens=1200, output_tokens=300, cost_usd=0.01, turns=3),
        )


GOOD_FIX = [
    Edit(
        "shop/cart.py",
        "    return round(cart.total() / units, 2)",
        "    if units == 0:\n        return 0.0\n    return round(cart.total() / units, 2)",
    )
]
GOOD_FIX_2 = [
    Edit(
        "shop/cart.py",
        "    return round(cart.total() / units, 2)",
        "    if not units:\n        return 0.0\n    return round(cart.total() / units, 2)",
    )
]
"""Another correct fix of the same bug (a second, overlapping run's)."""
BROKEN_FIX = [Edit("shop/cart.py", "    return round(cart.total() / units, 2)", "    return 1.0")]
BLOCKED_FIX = [*GOOD_FIX, Edit("migrations/0002_cart.py", None, "# touch the schema\n")]
