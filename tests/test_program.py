"""The whole program, run from each stack file: what it creates, what it exports, what is
secret, and how it behaves on day 2 (same config, added clusters, a Linkerd upgrade)."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.fake_cloud import FakeCloud
from tests.harness import PROJECT, REPO, run_main, stack_config, unwrap

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
STACKS = sorted(path.name.split(".")[1] for path in REPO.glob("Pulumi.*.yaml"))
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
PEM = re.compile(r"-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----\n?")


def seed_value(key: str):
    return json.loads(stack_config("west-east")[f"{PROJECT}:{key}"])


@pytest.fixture(scope="module")
def seed():
    fakes = FakeCloud()
    return fakes, run_main(fakes, config=TOKEN)


def test_seed_stack_makes_west_in_sfo3_and_east_in_syd1(seed):
    _, result = seed
    clusters = {r.inputs["name"]: r.inputs for r in result.monitor.of_type(CLUSTER)}
    assert sorted(clusters) == ["west-east-east", "west-east-west"]
    assert clusters["west-east-west"]["region"] == "sfo3" and clusters["west-east-east"]["region"] == "syd1"
    for inputs in clusters.values():
        pool = inputs["nodePool"]
        assert (pool["size"], pool["nodeCount"]) == ("s-8vcpu-16gb", 3)
    assert not result.monitor.of_type("digitalocean:index/kubernetesNodePool:KubernetesNodePool"), "one pool per cluster"


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
    assert set(outputs) == {"clusters", "kubeconfigs", "trustAnchorPem", "issuerExpiry", "gatewayAddresses", "mirroredServices", "links", "exports"}
    assert result.secret_outputs == set()
    for name, region in (("west", "sfo3"), ("east", "syd1")):
        cluster = outputs["clusters"][name]
        assert cluster["region"] == region and cluster["version"] == "1.33.5-do.0"
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


def masked(result) -> dict[str, str]:
    """URN -> inputs, with PEM blocks masked: the fake mints fresh (randomly signed) certificates."""
    return {urn: PEM.sub("<PEM>", json.dumps(unwrap(r.inputs), sort_keys=True)) for urn, r in result.monitor.registrations.items()}


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
    clusters = {**seed_value("clusters"), "north": {"region": "fra1", "nodeSize": "s-4vcpu-8gb", "nodeCount": 3}}
    links = seed_value("links") + [{"from": "west", "to": "north"}]
    after = run_main(FakeCloud(), config={**TOKEN, f"{PROJECT}:clusters": json.dumps(clusters), f"{PROJECT}:links": json.dumps(links)})
    # Names come from cluster names, never list positions: only west's controllers list grows.
    assert changed_between(before, after) == {"linkerd-multicluster-west"}
    assert any(urn.endswith("::north") for urn in after.monitor.registrations)


def test_reordering_links_changes_nothing():
    clusters = {**seed_value("clusters"), "north": {"region": "fra1", "nodeSize": "s-4vcpu-8gb", "nodeCount": 3}}
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


def test_sixteen_clusters_in_a_full_mesh_evaluate_in_seconds():
    regions = ["nyc1", "nyc3", "sfo2", "sfo3", "ams3", "sgp1", "lon1", "fra1", "tor1", "blr1", "syd1"]
    clusters = {f"region-{i:02d}": {"region": regions[i % len(regions)], "nodeSize": "s-4vcpu-8gb", "nodeCount": 3} for i in range(16)}
    links = [{"from": a, "to": b} for a in clusters for b in clusters if a != b]
    config = {**TOKEN, f"{PROJECT}:clusters": json.dumps(clusters), f"{PROJECT}:links": json.dumps(links), f"{PROJECT}:exports": "[]", f"{PROJECT}:demo": "false"}
    # A preview: evaluating the program and registering every resource, which is what
    # `pulumi preview` pays before any provider does work.
    started = time.monotonic()
    result = run_main(FakeCloud(), config=config, preview=True)
    elapsed = time.monotonic() - started
    assert len(result.monitor.of_type("kubernetes:multicluster.linkerd.io/v1alpha3:Link")) == 240
    # About 5 s on a 2-core machine, most of it the mock engine's own bookkeeping.
    assert elapsed < 15, f"16 clusters / 240 links took {elapsed:.1f}s to evaluate"


def test_the_seed_stack_evaluates_well_under_two_seconds():
    run_main(FakeCloud(), config=TOKEN, preview=True)  # imports and first-use costs paid once
    started = time.monotonic()
    run_main(FakeCloud(), config=TOKEN, preview=True)
    assert time.monotonic() - started < 2
