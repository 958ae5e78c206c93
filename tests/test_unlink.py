"""Removing a link leaves nothing of it in the linking cluster: the program runs with the seed's
link, then again without it, on the same fakes, and the engine deletes what is no longer there."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from components.unlink import LinkLeftoversProvider
from tests.fake_cloud import FakeCloud
from tests.fake_kubernetes import FakeCluster
from tests.harness import PROJECT, Run, run_main, stack_config

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"
LEFTOVERS = "pulumi-python:dynamic/unlink:LinkLeftovers"
# What the service mirror and the chart label as the link's (pkg/k8s/labels.go).
CLUSTER_NAME_LABEL = "mirror.linkerd.io/cluster-name"


def of_link(produced: dict[str, dict], target: str) -> list[str]:
    """Paths of the objects in a cluster that belong to the link to `target`, by label or by name."""
    return sorted(
        path
        for path, obj in produced.items()
        if (obj["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL) == target or obj["metadata"]["name"].endswith(f"-{target}")
    )


def of_east(produced: dict[str, dict]) -> list[str]:
    return of_link(produced, "east")


@dataclass
class Runs:
    linked: Run
    before: list[str]  # of_east in west, with the link
    without_link_object: list[str]  # of_east in west once only the Link object is gone
    unlinked: Run  # the link removed from the config
    west: FakeCluster
    west_after: dict[str, dict]  # what west's charts and controllers have made by then


@pytest.fixture(scope="module")
def runs() -> Runs:
    fakes = FakeCloud()
    linked = run_main(fakes, config=TOKEN)
    west = fakes.kubernetes.cluster_named("west")
    before = of_east(fakes.kubernetes.produced(west))
    link = next(key for key in west.objects if key[0] == "Link")
    link_object = west.objects.pop(link)
    without_link_object = of_east(fakes.kubernetes.produced(west))
    west.objects[link] = link_object
    unlinked = run_main(fakes, config={**TOKEN, f"{PROJECT}:links": "[]", f"{PROJECT}:exports": "[]"}, prior=linked)
    return Runs(linked, before, without_link_object, unlinked, west, fakes.kubernetes.produced(west))


def test_the_link_made_mirrors_probe_and_lease_in_west(runs):
    assert runs.before == [
        "/api/v1/namespaces/emojivoto/endpoints/web-svc-east",
        "/api/v1/namespaces/emojivoto/services/web-svc-east",
        "/api/v1/namespaces/linkerd-multicluster/endpoints/probe-east",
        # Written by the program (LinkCredentials), not by the service mirror.
        "/api/v1/namespaces/linkerd-multicluster/secrets/cluster-credentials-east",
        "/api/v1/namespaces/linkerd-multicluster/services/probe-east",
        "/api/v1/namespaces/linkerd/secrets/cluster-credentials-east",
        # The chart's controller for the link.
        "/apis/apps/v1/namespaces/linkerd-multicluster/deployments/controller-east",
        "/apis/coordination.k8s.io/v1/namespaces/linkerd-multicluster/leases/service-mirror-write-east",
    ]


def test_removing_the_link_leaves_nothing_of_it_in_west(runs):
    assert of_east(runs.west_after) == []
    # What the program itself created for the link: the Link and both credentials Secrets.
    assert [key for key in runs.west.objects if key[0] == "Link" or key[2] == "cluster-credentials-east"] == []
    assert runs.unlinked.outputs["mirroredServices"] == {} and runs.unlinked.outputs["links"] == []
    # The rest of west is untouched: the demo's own services are still there.
    assert ("Service", "emojivoto", "web-svc") in runs.west.objects


def test_the_leftovers_are_removed_after_the_link_is_gone(runs):
    (link,) = runs.linked.monitor.of_type(LINK)
    (leftovers,) = runs.linked.monitor.of_type(LEFTOVERS)
    deleted = runs.unlinked.deleted
    assert link.urn in deleted and leftovers.urn in deleted
    # Otherwise the link's controller could mirror again what was just removed.
    assert deleted.index(link.urn) < deleted.index(leftovers.urn)


def test_the_fake_service_mirror_keeps_its_mirrors_when_the_link_goes(runs):
    # multicluster/cmd/service-mirror/main.go, cleanupWorkers: "do not clean-up services created".
    assert runs.without_link_object == runs.before


def test_the_cleanup_is_never_replaced_while_the_link_lives():
    # A replacement deletes the old resource: that would remove a live link's mirrors.
    provider = LinkLeftoversProvider()
    stored = {"__provider": "pickled", "kubeconfig": "of the old cluster", "target": "east"}
    moved = provider.diff("id", stored, {**stored, "kubeconfig": "of the replaced cluster"})
    assert (moved.changes, moved.replaces) == (True, [])
    assert provider.diff("id", stored, {**stored, "__provider": "pickled by another dill"}).changes is False


# Two links into one cluster: west mirrors both east and north; removing west -> north must
# leave every object of west -> east where it is.

NORTH = {"region": "fra1", "nodeSize": "s-4vcpu-8gb", "nodeCount": 3, "clusterSubnet": "172.24.0.0/16", "serviceSubnet": "172.30.64.0/20"}


def west_mirrors(targets: list[str]) -> dict[str, str]:
    clusters = {**json.loads(stack_config("west-east")[f"{PROJECT}:clusters"]), "north": NORTH}
    return {
        f"{PROJECT}:clusters": json.dumps(clusters),
        f"{PROJECT}:links": json.dumps([{"from": "west", "to": target} for target in targets]),
        f"{PROJECT}:exports": json.dumps([{"cluster": target, "namespace": "emojivoto", "service": "web-svc"} for target in targets]),
    }


@dataclass
class TwoLinks:
    before: dict[str, dict]  # what west's charts and controllers had made with both links
    after: dict[str, dict]  # ... once west -> north is removed
    deleted: list[str]  # what the removal deleted through west's API


@pytest.fixture(scope="module")
def two_links() -> TwoLinks:
    fakes = FakeCloud()
    both = run_main(fakes, config=west_mirrors(["east", "north"]))
    west = fakes.kubernetes.cluster_named("west")
    before = fakes.kubernetes.produced(west)
    earlier = len(west.deleted)
    run_main(fakes, config=west_mirrors(["east"]), prior=both)
    # The deletes themselves are what counts: east's running service mirror re-creates a mirror
    # deleted by mistake (with a new ClusterIP, which breaks its clients), so it may look kept.
    return TwoLinks(before, fakes.kubernetes.produced(west), west.deleted[earlier:])


def test_both_links_mirror_into_west(two_links):
    for target in ("east", "north"):
        assert f"/api/v1/namespaces/emojivoto/services/web-svc-{target}" in two_links.before
        assert f"/api/v1/namespaces/emojivoto/endpoints/web-svc-{target}" in two_links.before
        assert f"/api/v1/namespaces/linkerd-multicluster/endpoints/probe-{target}" in two_links.before
        assert f"/apis/coordination.k8s.io/v1/namespaces/linkerd-multicluster/leases/service-mirror-write-{target}" in two_links.before


def test_removing_one_link_deletes_only_its_own_mirrors_endpoints_probe_and_lease(two_links):
    assert of_link(two_links.after, "north") == []
    assert set(two_links.deleted) <= set(of_link(two_links.before, "north"))
    assert {
        "/api/v1/namespaces/emojivoto/services/web-svc-north",
        "/api/v1/namespaces/emojivoto/endpoints/web-svc-north",
        "/api/v1/namespaces/linkerd-multicluster/endpoints/probe-north",
        "/apis/coordination.k8s.io/v1/namespaces/linkerd-multicluster/leases/service-mirror-write-north",
    } <= set(two_links.deleted)
    kept = {path: obj for path, obj in two_links.before.items() if path in of_link(two_links.before, "east")}
    assert {path: two_links.after.get(path) for path in kept} == kept
