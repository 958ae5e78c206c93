"""The DOKS cluster component alone: what DigitalOcean is asked for, and a Kubernetes provider
whose kubeconfig holds no credential: doctl fetches one when the provider runs."""

from __future__ import annotations

import base64

import pulumi
import pytest
import yaml

from components.cluster import DoksCluster, DoksClusterArgs, worker_pool_name
from components.cluster_plan import choose_version
from components.config import ClusterSpec
from components.gateway_api import DOKS_MANAGED_VALUES
from components.linkerd import Linkerd, LinkerdArgs
from tests.fake_account import ROTATED_DO_TOKEN
from tests.fake_cloud import FakeCloud
from tests.fake_digitalocean import CLUSTER_REPLACED_BY, DOKS_VERSIONS, NODE_POOL_REPLACED_BY, replacing_changes
from tests.harness import run, unwrap
from tests.program import LONE_CLUSTER_SUBNET, LONE_SERVICE_SUBNET, lone_cluster
from pulumi.runtime.rpc import is_rpc_secret

CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
PROVIDER = "pulumi:providers:kubernetes"
NODE_POOL = "digitalocean:index/kubernetesNodePool:KubernetesNodePool"


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
    fakes, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    inputs = cluster.inputs
    assert inputs["name"] == "prod-west"  # the stack keeps DOKS names unique per account
    assert inputs["region"] == "sfo3" and inputs["version"] == DOKS_VERSIONS[0]
    # VPC-native: both ranges given (doctl: otherwise a legacy overlay cluster).
    assert (inputs["clusterSubnet"], inputs["serviceSubnet"]) == (LONE_CLUSTER_SUBNET, LONE_SERVICE_SUBNET)
    # The built-in pool is the fixed system pool, tainted for critical add-ons only; the workers are their own pool.
    taint = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}
    assert inputs["nodePool"] == {"name": "west-system", "size": "s-2vcpu-4gb", "nodeCount": 1, "taints": [taint]}
    (workers,) = result.monitor.of_type(NODE_POOL)
    assert (workers.inputs["name"], workers.inputs["size"], workers.inputs["nodeCount"]) == ("west-workers-s-8vcpu-16gb", "s-8vcpu-16gb", 3)
    assert workers.inputs["clusterId"] == fakes.digitalocean.accounts_clusters["prod-west"].id and workers.parent == cluster.parent


def test_control_plane_ha_is_explicit_so_a_newer_default_never_changes_the_bill(built):
    _, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    # DOKS (and the fake) turn HA on for 1.36+ when `ha` is unset; the fake offers 1.36.
    assert DOKS_VERSIONS[0].startswith("1.36.")
    assert cluster.inputs["ha"] is False and unwrap(cluster.state)["ha"] is False
    on = build(FakeCloud(), spec=ClusterSpec("west", "sfo3", "s-8vcpu-16gb", 3, control_plane_ha=True))
    assert on.monitor.of_type(CLUSTER)[0].inputs["ha"] is True


def test_teardown_takes_the_load_balancers_along(built):
    _, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    # Helm's uninstall returns before DigitalOcean deletes the gateway's load balancer.
    assert cluster.inputs["destroyAllAssociatedResources"] is True


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
    # DigitalOcean's exec form, as `doctl kubernetes cluster kubeconfig save` writes it, in doctl's
    # default context (the one that takes DIGITALOCEAN_ACCESS_TOKEN).
    assert kubeconfig["users"][0]["user"] == {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "doctl",
            "args": ["kubernetes", "cluster", "kubeconfig", "exec-credential", "--version=v1beta1", "--context=default", fakes.digitalocean.clusters[state["endpoint"]]["id"]],
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


def test_a_new_digitalocean_token_changes_nothing_in_the_provider_whose_identity_is_the_cluster_id(monkeypatch):
    first_fakes = FakeCloud()
    first = build(first_fakes)
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", ROTATED_DO_TOKEN)
    second = build(FakeCloud())
    (first_provider,), (second_provider,) = first.monitor.of_type(PROVIDER), second.monitor.of_type(PROVIDER)
    assert first_provider.inputs == second_provider.inputs
    # The engine replaces a provider (and every resource it manages) only when this changes.
    assert first_provider.inputs["clusterIdentifier"] == first_fakes.digitalocean.accounts_clusters["prod-west"].id


def test_a_replaced_cluster_gets_a_new_provider_identity():
    fakes = FakeCloud()
    before = build(fakes).monitor.of_type(PROVIDER)[0].inputs["clusterIdentifier"]
    fakes.digitalocean.accounts_clusters.clear()
    fakes.digitalocean.generations["prod-west"] = 1  # a new cluster under the same name
    after = build(fakes).monitor.of_type(PROVIDER)[0].inputs["clusterIdentifier"]
    # So every release, link and demo object is created again in the new cluster.
    assert before != after


def test_workloads_wait_for_the_worker_pool(built):
    _, result = built
    (provider,) = result.monitor.of_type(PROVIDER)
    (workers,) = result.monitor.of_type(NODE_POOL)
    assert workers.urn in provider.dependencies


def test_tainting_the_built_in_pool_of_a_running_cluster_updates_it_in_place(built):
    # Clusters made before the taint: their built-in pool gains it without a replacement.
    _, result = built
    (cluster,) = result.monitor.of_type(CLUSTER)
    before = {**cluster.inputs, "nodePool": {key: value for key, value in cluster.inputs["nodePool"].items() if key != "taints"}}
    assert before["nodePool"] != cluster.inputs["nodePool"]
    assert replacing_changes(before, cluster.inputs, CLUSTER_REPLACED_BY) == []


def test_a_new_node_size_swaps_the_worker_pool_and_never_replaces_the_cluster():
    small = build(FakeCloud(), spec=ClusterSpec("west", "sfo3", "s-4vcpu-8gb", 3))
    large = build(FakeCloud(), spec=ClusterSpec("west", "sfo3", "s-8vcpu-16gb", 3))
    (small_cluster,), (large_cluster,) = small.monitor.of_type(CLUSTER), large.monitor.of_type(CLUSTER)
    assert replacing_changes(small_cluster.inputs, large_cluster.inputs, CLUSTER_REPLACED_BY) == []
    (small_pool,), (large_pool,) = small.monitor.of_type(NODE_POOL), large.monitor.of_type(NODE_POOL)
    assert replacing_changes(small_pool.inputs, large_pool.inputs, NODE_POOL_REPLACED_BY) == ["size"]
    # Replaced create-before-delete: the new pool needs a name the old one does not hold.
    assert small_pool.name == large_pool.name and small_pool.inputs["name"] != large_pool.inputs["name"]


def test_a_new_node_count_updates_the_worker_pool_in_place():
    three = build(FakeCloud(), spec=ClusterSpec("west", "sfo3", "s-8vcpu-16gb", 3)).monitor.of_type(NODE_POOL)[0]
    five = build(FakeCloud(), spec=ClusterSpec("west", "sfo3", "s-8vcpu-16gb", 5)).monitor.of_type(NODE_POOL)[0]
    assert replacing_changes(three.inputs, five.inputs, NODE_POOL_REPLACED_BY) == []
    assert (three.inputs["nodeCount"], five.inputs["nodeCount"]) == (3, 5)


def test_provider_is_a_child_of_the_cluster_component(built):
    _, result = built
    (provider,) = result.monitor.of_type(PROVIDER)
    (cluster,) = result.monitor.of_type(CLUSTER)
    assert provider.parent == cluster.parent and provider.parent.endswith("DoksCluster::west")


def test_a_new_cluster_gets_the_newest_offered_version_or_the_newest_of_its_pin():
    offered = FakeCloud().digitalocean.versions
    assert choose_version(None, offered) == "1.36.2-do.0"
    assert choose_version("1.35", offered) == "1.35.6-do.1"
    assert choose_version("1.35.5", offered) == "1.35.5-do.0"


def test_a_pin_doks_no_longer_offers_is_a_clear_error_listing_the_offered_ones():
    with pytest.raises(pulumi.RunError, match=r"kubernetesVersion '1.33' is not offered by DOKS for new clusters.*offered: 1.36, 1.35, 1.34.*leave kubernetesVersion out"):
        choose_version("1.33", DOKS_VERSIONS)
    # "1.3" is no prefix of 1.36: versions match whole components only.
    with pytest.raises(pulumi.RunError):
        choose_version("1.3", DOKS_VERSIONS)


def test_a_cluster_on_the_configured_minor_version_is_not_reported(caplog):
    with caplog.at_level("WARNING"):
        build(FakeCloud())
    assert "runs Kubernetes" not in caplog.text


def test_control_plane_fails_where_doks_provides_no_gateway_api_crds():
    """Before 1.33 (or without VPC-native networking) DOKS installs no Gateway API CRDs, and the
    program installs none either: Linkerd's control plane cannot start there."""
    fakes = FakeCloud()

    def program():
        spec = ClusterSpec("solo", "ams3", "s-4vcpu-8gb", 3, cluster_subnet=LONE_CLUSTER_SUBNET, service_subnet=LONE_SERVICE_SUBNET)
        cluster = DoksCluster("solo", DoksClusterArgs(spec=spec, version="1.32.9-do.0", version_prefix=None))
        Linkerd("solo", LinkerdArgs(provider=cluster.provider, chart_version="2026.6.3", high_availability=False, trust_anchor_pem="", issuer_cert_pem="", issuer_key_pem="", renewal_marker="renewal-period-1", gateway_api_values=DOKS_MANAGED_VALUES))

    fakes.digitalocean.versions = ["1.32.9-do.0"]
    with pytest.raises(Exception, match=r"cannot watch httproutes.gateway.networking.k8s.io, grpcroutes.gateway.networking.k8s.io at v1"):
        run(fakes, program, stack="prod")


def test_worker_pool_names_stay_usable_as_node_names():
    assert worker_pool_name("west", "so1_5-2vcpu-16gb") == "west-workers-so1-5-2vcpu-16gb"
