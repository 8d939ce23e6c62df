"""The GitLab CI/CD component and example validated against GitLab's CI schema, and the GitLab
runner's log/dotenv channel (sections cannot be forged, secrets scrubbed)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentry_autofix import neutral
from sentry_autofix.gitlab_ci import GitLabRunner, event_name
from tests.conftest import REPO_ROOT

CHECK = str(Path(sys.executable).with_name("check-jsonschema"))
COMPONENT = REPO_ROOT / "templates" / "sentry-autofix.yml"
EXAMPLE = REPO_ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"


def validate(tmp_path: Path, doc: object, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return subprocess.run(
        [CHECK, "--builtin-schema", "vendor.gitlab-ci", str(path)], capture_output=True, text=True, check=False
    )


def test_component__spec_header_and_job_pass_gitlab_ci_schema(tmp_path: Path) -> None:
    """`spec:` is its own YAML document; both it and the job validate against GitLab's schema."""
    spec, job = yaml.safe_load_all(COMPONENT.read_text())
    assert validate(tmp_path, spec, "spec").returncode == 0
    result = validate(tmp_path, job, "job")
    assert result.returncode == 0, result.stdout + result.stderr


def test_component__every_input_has_a_description_and_a_default_and_stays_out_of_scripts() -> None:
    """Every input but `package` has a default; `package` has none, so a pipeline that does not
    name a pinned requirement fails to compile instead of installing whatever a public index
    serves under that name (sentry-autofix is not on PyPI: the old default answered 404)."""
    spec, job = yaml.safe_load_all(COMPONENT.read_text())
    inputs = spec["spec"]["inputs"]
    assert {"issue-id", "mode", "sentry-org", "test-command", "package"} <= set(inputs)
    for name, value in inputs.items():
        assert value.get("description"), name
        assert ("default" in value) == (name != "package"), name
    assert "git+https://" in inputs["package"]["description"]
    assert "CI_JOB_TOKEN" in inputs["package"]["description"]
    scripts = "\n".join(job["sentry-autofix"]["before_script"] + job["sentry-autofix"]["script"])
    assert "$[[" not in scripts  # inputs reach the program as variables only (no injection)
    assert job["sentry-autofix"]["artifacts"]["reports"]["dotenv"] == "sentry-autofix.env"


def test_component__schema_check_can_fail(tmp_path: Path) -> None:
    """The validation is real: a job with a mapping in its script is refused."""
    _, job = yaml.safe_load_all(COMPONENT.read_text())
    job["sentry-autofix"]["script"] = [{"not": "a string"}]
    assert validate(tmp_path, job, "bad").returncode != 0


def _includes(text: str) -> list[dict[str, Any]]:
    """The component includes in the ```yaml blocks of a markdown page."""
    found = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        doc = yaml.safe_load(textwrap.dedent(block))
        if isinstance(doc, dict):
            found += [i for i in doc.get("include", []) if "component" in i]
    return found


def test_examples__every_include_sets_the_required_inputs() -> None:
    """The example pipeline, README and docs/gitlab.md pass every input without a default."""
    spec, _ = yaml.safe_load_all(COMPONENT.read_text())
    required = {name for name, value in spec["spec"]["inputs"].items() if "default" not in value}
    assert required == {"package"}
    includes = yaml.safe_load(EXAMPLE.read_text())["include"]
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "gitlab.md"):
        found = _includes(page.read_text())
        assert found, page
        includes += found
    for include in includes:
        assert required <= set(include["inputs"]), include
        assert "git+https://" in include["inputs"]["package"] or "==" in include["inputs"]["package"]


def test_example__target_project_pipeline_passes_gitlab_ci_schema(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    result = validate(tmp_path, doc, "example")
    assert result.returncode == 0, result.stdout + result.stderr
    assert doc["include"][0]["component"].startswith("$CI_SERVER_FQDN/")


@pytest.mark.parametrize(
    ("source", "event"),
    [
        ("trigger", "repository_dispatch"),
        ("api", "repository_dispatch"),
        ("web", "workflow_dispatch"),
        ("schedule", "schedule"),
        ("push", None),
    ],
)
def test_event_name__pipeline_sources_map_to_github_behaviour(source: str, event: str | None) -> None:
    assert event_name(source) == event


def test_gitlab_runner__hostile_text_cannot_forge_a_section_or_colour_the_log(tmp_path: Path) -> None:
    log = io.StringIO()
    runner = GitLabRunner(
        dotenv_path=str(tmp_path / "o.env"), summary_path=None, secret_values=["s3cr3t-value"], log=log
    )
    hostile = "\x1b[0Ksection_end:1:sentry_autofix_x\r\x1b[0K\x1b[31mred s3cr3t-value"
    with runner.group("Sentry issue " + hostile):
        runner.log_untrusted("Error:", hostile)
        runner.error(hostile)
    out = log.getvalue()
    starts = re.findall(r"\x1b\[0Ksection_start:\d+:(\w+)\[collapsed=true\]\r\x1b\[0K", out)
    ends = re.findall(r"\x1b\[0Ksection_end:\d+:(\w+)\r\x1b\[0K", out)
    assert len(starts) == 1 and ends == starts  # only our own pair
    assert out.count("\x1b") == 4 and out.count("\r") == 2
    assert "s3cr3t-value" not in out
    with pytest.raises(ValueError, match="section marker"):
        neutral.stream(io.StringIO()).section("\x1b[31mnot a section")


def test_gitlab_runner__outputs_are_one_line_dotenv_with_secrets_scrubbed(tmp_path: Path) -> None:
    env = tmp_path / "o.env"
    runner = GitLabRunner(dotenv_path=str(env), summary_path=None, secret_values=["s3cr3t-value"], log=io.StringIO())
    runner.set_outputs({"status": "pr-opened", "pr-url": "https://x/1\nINJECTED=1 s3cr3t-value"})
    lines = env.read_text().splitlines()
    assert lines[0] == "SENTRY_AUTOFIX_STATUS=pr-opened"
    assert lines[1] == "SENTRY_AUTOFIX_PR_URL=https://x/1 INJECTED=1 ***"
    assert len(lines) == 2
