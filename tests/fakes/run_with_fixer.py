"""`sentry-autofix run` exactly as the CLI runs it, but with the scripted fixer in place of the
LLM agent (the `fixer_factory` seam of run_command).
Usage: python -m tests.fakes.run_with_fixer good|good2|broken|blocked
"""

from __future__ import annotations

import argparse
import sys

from sentry_autofix.config import load_settings
from sentry_autofix.run import run_command
from tests.fakes.scripted_fixer import BLOCKED_FIX, BROKEN_FIX, GOOD_FIX, GOOD_FIX_2, ScriptedFixer

SCRIPTS = {"good": GOOD_FIX, "good2": GOOD_FIX_2, "broken": BROKEN_FIX, "blocked": BLOCKED_FIX}

if __name__ == "__main__":
    edits = SCRIPTS[sys.argv[1]]
    sys.exit(
        run_command(
            argparse.Namespace(workspace=None), load_settings(), fixer_factory=lambda _settings: ScriptedFixer(edits)
        )
    )
