"""The whole program, run from each stack file: what it creates, what it exports, what is
secret, and how it behaves on day 2 (same config, added clusters, a Linkerd upgrade)."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack

import pytest
import yaml

from bench import evaluate
from tests.fake_cloud import FakeCloud
from tests.fake_digitalocean import DOKS_VERSIONS
from tests.harness import PROJECT, REPO, run_main, stack_config, unwrap
from tests.program import full_mesh_config
from verify.checks import run_checks
from verify.kube import KubeCluster
from verify.outputs import parse_outputs

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
# The DOKS stacks; the local one runs on clusters a test provides (tests/test_given_clusters.py).
STACKS = sorted(path.name.split(".")[1] for path in REPO.glob("Pulumi.*.yaml") if path.name != "Pulumi.local.yaml")
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
NODE_POOL = "digitalocean:index/kubernetesNodePool:KubernetesNodePool"
NORTH = {"region": "fra1", "nodeSize": "s-4vcpu-8gb", "nodeCount": 3, "clusterSubnet": "172.24.0.0/16", "serviceSubnet": "172.30.64.0/20"}
PEM = re.compile(r"-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----\n?")
# The bundle's checksum in pod annotations follows the (freshly minted) anchors.
BUNDLE_CHECKSUM = re.compile(r'"checksum/trust-anchors": "[0-9a-f]{64}"')


def seed_value(key: str):
    return json.loads(stack_config("west-east")[f"{PROJECT}:{key}"])


@pytest.fixture(scope="module")
def seed():
    fakes = FakeCloud()
    return fakes, run_main(fakes, config=TOKEN)


def test_seed_stack_makes_west_in_sfo3_and_east_in_syd1(seed):
    fakes, result = seed
    clusters = {r.inputs["name"]: r.inputs for r in result.monitor.of_type(CLUSTER)}
    assert sorted(clusters) == ["west-east-east", "west-east-west"]
    assert clusters["west-east-west"]["region"] == "sfo3" and clusters["west-east-east"]["region"] == "syd1"
    for name, inputs in clusters.items():
        # The built-in pool is the small fixed system pool; the workers are a pool of their own.
        assert (inputs["nodePool"]["size"], inputs["nodePool"]["nodeCount"]) == ("s-2vcpu-4gb", 1)
        assert fakes.digitalocean.worker_nodes(name) == 3
        assert inputs["ha"] is False and inputs["destroyAllAssociatedResources"] is True
    pools = {r.inputs["name"]: r.inputs for r in result.monitor.of_type(NODE_POOL)}
    assert {name: (p["size"], p["nodeCount"]) for name, p in pools.items()} == {"west-workers-s-8vcpu-16gb": ("s-8vcpu-16gb", 3), "east-workers-s-8vcpu-16gb": ("s-8vcpu-16gb", 3)}


def test_nothing_the_program_deploys_tolerates_the_system_pools_taint(seed):
    # The built-in pool's one small node is for critical add-ons (components/cluster.py): no
    # release value or pod template of ours may carry a toleration that lets it land there.
    _, result = seed
    for registration in result.monitor.registrations.values():
        if registration.type.startswith("kubernetes:"):
            assert "CriticalAddonsOnly" not in json.dumps(unwrap(registration.inputs)), registration.urn


def test_seed_clusters_get_the_newest_offered_version_and_the_gateway_api_from_doks(seed):
    fakes, result = seed
    for registration in result.monitor.of_type(CLUSTER):
        assert registration.inputs["version"] == DOKS_VERSIONS[0]
    for name in ("west", "east"):
        objects = fakes.kubernetes.cluster_named(name).objects
        crds = {key[2]: obj for key, obj in objects.items() if key[0] == "CustomResourceDefinition"}
        # DOKS owns them; the CRDs release created none of the Gateway API ones.
        for plural in ("gateways", "gatewayclasses", "httproutes", "grpcroutes", "tlsroutes", "referencegrants"):
            assert crds[f"{plural}.gateway.networking.k8s.io"]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "doks"
        assert "tcproutes.gateway.networking.k8s.io" not in crds
        assert crds["servers.policy.linkerd.io"]["metadata"]["annotations"]["meta.helm.sh/release-name"] == "linkerd-crds"


def test_no_kubeconfig_carries_the_7_day_token_or_any_credential(seed):
    _, result = seed
    short_lived = {unwrap(r.state)["kubeConfigs"][0]["token"] for r in result.monitor.of_type(CLUSTER)}
    providers = result.monitor.of_type("pulumi:providers:kubernetes")
    assert len(providers) == 2
    for provider in providers:
        (user,) = yaml.safe_load(unwrap(provider.inputs["kubeconfig"]))["users"]
        assert set(user["user"]) == {"exec"}
    for kubeconfig in result.outputs["kubeconfigs"].values():
        assert set(yaml.safe_load(kubeconfig)["users"][0]["user"]) == {"exec"}
    everything = json.dumps([unwrap(r.inputs) for r in result.monitor.registrations.values()]) + json.dumps(result.outputs)
    assert not any(token in everything for token in short_lived)


def test_stack_outputs(seed):
    fakes, result = seed
    outputs = result.outputs
    assert set(outputs) == {"clusters", "kubeconfigs", "trustAnchorPem", "issuerExpiry", "issuerRenewBeforeHours", "gatewayAddresses", "mirroredServices", "links", "exports", "monthlyCost"}
    assert outputs["issuerRenewBeforeHours"] == 1440  # verify reads the renewal window from here
    assert result.secret_outputs == set()
    for name, region in (("west", "sfo3"), ("east", "syd1")):
        cluster = outputs["clusters"][name]
        assert cluster["region"] == region and cluster["version"] == DOKS_VERSIONS[0]
        assert cluster["endpoint"] in fakes.digitalocean.clusters and cluster["id"] == fakes.digitalocean.clusters[cluster["endpoint"]]["id"]
        kubeconfig = yaml.safe_load(outputs["kubeconfigs"][name])
        assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster["endpoint"]
    assert outputs["links"] == [{"from": "west", "to": "east"}]
    assert outputs["exports"] == [{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "gateway"}]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_builds(stack):
    config = stack_config(stack)
    clusters = json.loads(config[f"{PROJECT}:clusters"])
    result = run_main(FakeCloud(), stack=stack, config=TOKEN)
    registered = {r.inputs["region"] for r in result.monitor.of_type(CLUSTER)}
    assert registered == {c["region"] for c in clusters.values()}
    assert set(result.outputs["clusters"]) == set(clusters)
    for link in json.loads(config[f"{PROJECT}:links"]):
        assert link["to"] in result.outputs["gatewayAddresses"]


def test_verify_reads_every_cluster_with_the_exec_kubeconfigs_the_stack_outputs(seed):
    # The outputs' kubeconfigs, unchanged but for the server (each cluster's fake API server, which
    # accepts only the token DigitalOcean issues for that cluster): verify authenticates by running
    # their doctl exec plugin (the fake on PATH, tests/conftest.py), as `make verify` does.
    fakes, result = seed
    with ExitStack() as stack:
        served = {}
        for name, kubeconfig in result.outputs["kubeconfigs"].items():
            api = stack.enter_context(fakes.kubernetes.serve(fakes.kubernetes.cluster_for_kubeconfig(kubeconfig)))
            config = yaml.safe_load(kubeconfig)
            config["clusters"][0]["cluster"] = {"server": api.url}
            served[name] = yaml.safe_dump(config)
        outputs = parse_outputs(json.loads(json.dumps({**result.outputs, "kubeconfigs": served})))
        clusters = {name: KubeCluster(name, kubeconfig) for name, kubeconfig in served.items()}
        results = {(r.cluster, r.name): r for r in run_checks(outputs, clusters)}
    assert all(cluster.failure is None for cluster in clusters.values()), [str(c.failure) for c in clusters.values()]
    # What the fake clusters' charts and service mirror make, read with those credentials, agrees with
    # the outputs: west's controller for east runs and its mirror of web-svc points at east's gateway.
    # (The fakes render no Link, viz, issuer or Cilium objects, so those checks fail here on content.)
    assert results[("west", "mirror-controller")].ok and results[("west", "mirrored-service")].ok


def masked(result) -> dict[str, str]:
    """URN -> inputs, with PEM blocks (and what is derived from them) masked: the fake mints
    fresh (randomly signed) certificates."""
    mask = lambda text: BUNDLE_CHECKSUM.sub("<checksum>", PEM.sub("<PEM>", text))
    return {urn: mask(json.dumps(unwrap(r.inputs), sort_keys=True)) for urn, r in result.monitor.registrations.items()}


def test_same_config_registers_identical_inputs(seed):
    _, first = seed
    second = run_main(FakeCloud(), config=TOKEN)
    assert masked(first) == masked(second)


def changed_between(before, after) -> set[str]:
    old, new = masked(before), masked(after)
    return {urn.rsplit("::", 1)[-1] for urn in old.keys() & new.keys() if old[urn] != new[urn]} | {
        "removed:" + urn.rsplit("::", 1)[-1] for urn in old.keys() - new.keys()
    }


def test_adding_a_cluster_and_a_link_changes_only_the_linking_clusters_controllers(seed):
    _, before = seed
    clusters = {**seed_value("clusters"), "north": NORTH}
    links = seed_value("links") + [{"from": "west", "to": "north"}]
    after = run_main(FakeCloud(), config={**TOKEN, f"{PROJECT}:clusters": json.dumps(clusters), f"{PROJECT}:links": json.dumps(links)})
    # Names come from cluster names, never list positions: only west's controllers list grows.
    assert changed_between(before, after) == {"linkerd-multicluster-west"}
    assert any(urn.endswith("::north") for urn in after.monitor.registrations)


def test_reordering_links_changes_nothing():
    clusters = {**seed_value("clusters"), "north": NORTH}
    links = [{"from": "west", "to": "east"}, {"from": "west", "to": "north"}]
    config = {**TOKEN, f"{PROJECT}:clusters": json.dumps(clusters)}
    forward = run_main(FakeCloud(), config={**config, f"{PROJECT}:links": json.dumps(links)})
    backward = run_main(FakeCloud(), config={**config, f"{PROJECT}:links": json.dumps(links[::-1])})
    assert changed_between(forward, backward) == set()


def test_linkerd_upgrade_changes_only_the_releases(seed):
    _, before = seed
    after = run_main(FakeCloud(), config={**TOKEN, f"{PROJECT}:linkerd": json.dumps({"version": "2026.7.1"})})
    changed = changed_between(before, after)
    assert changed == {f"{chart}-{cluster}" for chart in ("linkerd-crds", "linkerd-control-plane", "linkerd-viz", "linkerd-multicluster") for cluster in ("west", "east")}


def test_the_benchmark_evaluates_the_configs_it_times(monkeypatch):
    # `make bench` is not run by the tests; its configs must still be ones the program accepts.
    monkeypatch.setattr(evaluate, "ROUNDS", 1)
    assert evaluate.seconds(evaluate.SEED_CONFIG) > 0 and evaluate.seconds(full_mesh_config(2)) > 0


def test_sixteen_clusters_in_a_full_mesh_register_every_link():
    # A preview: evaluating the program and registering every resource, which is what
    # `pulumi preview` pays before any provider does work. How long it takes: `make bench`.
    result = run_main(FakeCloud(), config=full_mesh_config(16), preview=True)
    assert len(result.monitor.of_type("kubernetes:multicluster.linkerd.io/v1alpha3:Link")) == 16 * 15
    assert len(result.monitor.of_type(CLUSTER)) == 16
