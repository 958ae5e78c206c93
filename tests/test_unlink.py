"""Removing a link leaves nothing of it in the linking cluster: the program runs with the seed's
link, then again without it, on the same fakes, and the engine deletes what is no longer there."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from components.unlink import LinkLeftoversProvider
from tests.fake_cloud import FakeCloud
from tests.fake_kubernetes import FakeCluster
from tests.harness import PROJECT, Run, run_main

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"
LEFTOVERS = "pulumi-python:dynamic/unlink:LinkLeftovers"
# What the service mirror and the chart label as the link's (pkg/k8s/labels.go).
OF_EAST = ("mirror.linkerd.io/cluster-name", "east")


def of_east(produced: dict[str, dict]) -> list[str]:
    """Paths of the objects in a cluster that belong to the link to east, by label or by name."""
    return sorted(
        path
        for path, obj in produced.items()
        if (obj["metadata"].get("labels") or {}).get(OF_EAST[0]) == OF_EAST[1] or obj["metadata"]["name"].endswith("-east")
    )


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
