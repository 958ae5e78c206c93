"""The DOKS cluster component alone: what DigitalOcean is asked for, and a Kubernetes provider
whose kubeconfig holds no credential: doctl fetches one when the provider runs."""

from __future__ import annotations

import base64

import pulumi
import pytest
import yaml

from components.cluster import resolve_kubernetes_version
from components.config import ClusterSpec
from tests.fake_account import ROTATED_DO_TOKEN
from tests.fake_cloud import FakeCloud
from tests.harness import run, unwrap
from tests.program import lone_cluster
from pulumi.runtime.rpc import is_rpc_secret

CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
PROVIDER = "pulumi:providers:kubernetes"


def build(fakes: FakeCloud, spec: ClusterSpec = ClusterSpec("west", "sfo3", "s-8vcpu-16gb", 3)):
    def program():
        cluster = lone_cluster(spec)
        pulumi.export("kubeconfig", cluster.kubeconfig)
        pulumi.export("endpoint", cluster.endpoint)

    return run(fakes, program, stack="prod")


@pytest.fixture(scope="module")
def built():
    fakes = FakeCloud()
    return fakes, build(fakes)


def test_cluster_is_what_the_spec_asks_for(built):
    _, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    inputs = cluster.inputs
    assert inputs["name"] == "prod-west"  # the stack keeps DOKS names unique per account
    assert inputs["region"] == "sfo3" and inputs["version"] == "1.33.5-do.0"
    pool = inputs["nodePool"]
    assert (pool["size"], pool["nodeCount"]) == ("s-8vcpu-16gb", 3)


def test_auto_upgrade_owns_the_version(built):
    _, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    assert cluster.inputs["autoUpgrade"] is True and cluster.inputs["surgeUpgrade"] is True
    assert cluster.inputs["maintenancePolicy"] == {"day": "sunday", "startTime": "04:00"}
    # Otherwise the next `pulumi up` after a DOKS patch upgrade would plan a replacement.
    assert "version" in cluster.ignore_changes


def test_provider_kubeconfig_runs_doctl_for_this_cluster_and_holds_no_credential(built):
    fakes, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    (provider,) = result.monitor.of_type(PROVIDER)
    kubeconfig = yaml.safe_load(unwrap(provider.inputs["kubeconfig"]))
    state = unwrap(cluster.state)
    # DigitalOcean's exec form, as `doctl kubernetes cluster kubeconfig save` writes it.
    assert kubeconfig["users"][0]["user"] == {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "doctl",
            "args": ["kubernetes", "cluster", "kubeconfig", "exec-credential", "--version=v1beta1", fakes.digitalocean.clusters[state["endpoint"]]["id"]],
            "interactiveMode": "Never",
        }
    }
    server = kubeconfig["clusters"][0]["cluster"]
    assert server["server"] == state["endpoint"]
    ca = base64.b64decode(server["certificate-authority-data"]).decode()
    assert ca == fakes.digitalocean.clusters[state["endpoint"]]["ca"]
    assert state["kubeConfigs"][0]["token"] not in unwrap(provider.inputs["kubeconfig"])


def test_kube_configs_stay_secret_and_the_kubeconfig_needs_not(built):
    _, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    (provider,) = result.monitor.of_type(PROVIDER)
    assert is_rpc_secret(cluster.state["kubeConfigs"])
    assert not is_rpc_secret(provider.inputs["kubeconfig"])
    assert "kubeconfig" not in result.secret_outputs


def test_a_new_digitalocean_token_changes_nothing_in_the_provider(built, monkeypatch):
    _, first = built
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", ROTATED_DO_TOKEN)
    second = build(FakeCloud())
    assert first.monitor.of_type(PROVIDER)[0].inputs == second.monitor.of_type(PROVIDER)[0].inputs


def test_provider_is_a_child_of_the_cluster_component(built):
    _, result = built
    (provider,) = result.monitor.of_type(PROVIDER)
    (cluster,) = result.monitor.of_type(CLUSTER)
    assert provider.parent == cluster.parent and provider.parent.endswith("DoksCluster::west")


def test_version_prefix_resolves_to_the_newest_matching_doks_version():
    versions = {}

    def program():
        versions["1.33"] = resolve_kubernetes_version("1.33")
        versions["1.32"] = resolve_kubernetes_version("1.32")

    run(FakeCloud(), program)
    assert versions == {"1.33": "1.33.5-do.0", "1.32": "1.32.9-do.0"}


def test_version_prefix_without_a_match_is_a_clear_error():
    def program():
        resolve_kubernetes_version("1.29")

    with pytest.raises(pulumi.RunError, match=r"no DOKS Kubernetes version matches kubernetesVersion '1.29'.*doctl kubernetes options versions"):
        run(FakeCloud(), program)


def test_a_cluster_left_on_an_older_minor_version_is_reported(caplog):
    fakes = FakeCloud()
    fakes.digitalocean.running_versions["prod-west"] = "1.32.9-do.0"
    with caplog.at_level("WARNING"):
        build(fakes)
    assert "cluster west runs Kubernetes 1.32.9-do.0 but kubernetesVersion is '1.33'" in caplog.text
    assert "doctl kubernetes cluster upgrade" in caplog.text


def test_a_cluster_on_the_configured_minor_version_is_not_reported(caplog):
    with caplog.at_level("WARNING"):
        build(FakeCloud())
    assert "runs Kubernetes" not in caplog.text
