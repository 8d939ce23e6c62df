"""The docs site builds with `mkdocs build --strict` (no broken link or anchor), and the generated
reference pages (docs/reference/) match what scripts/gen_docs.py renders from the code today."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _gen_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", REPO_ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs__generated_reference_pages_are_current() -> None:
    """Editing a setting, an action input or a CLI flag without regenerating the pages fails here."""
    for path, text in _gen_docs().render().items():
        assert path.exists(), f"{path.name} missing: run scripts/gen_docs.py"
        assert path.read_text() == text, f"{path.relative_to(REPO_ROOT)} is stale: run scripts/gen_docs.py"


def test_docs__settings_page_names_every_setting_env_and_default() -> None:
    from sentry_autofix.config import Settings

    page = _gen_docs().render_settings()
    for name in Settings.model_fields:
        assert f"| `{name}` |" in page, name
    assert "| `max_turns` | `SENTRY_AUTOFIX_MAX_TURNS` | `max-turns` | `30` |" in page


def test_docs__stale_page_is_detected(tmp_path: Path) -> None:
    """The check can fail: a changed default renders a different page."""
    gen = _gen_docs()
    page = gen.render_settings()
    assert page.replace("| `30` |", "| `31` |") != page


def test_docs__mkdocs_build_strict_passes(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed (the dev and docs extras bring it)")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "reference" / "settings" / "index.html").exists()
