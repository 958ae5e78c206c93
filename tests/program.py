"""Helpers the component and program tests share: one cluster to build a component on, and
queries over what the program registered."""

from __future__ import annotations

import json

import pulumi

from components.cluster import DoksCluster, DoksClusterArgs
from components.config import ClusterSpec
from tests.fake_cloud import DO_TOKEN
from tests.harness import PROJECT

RELEASE = "kubernetes:helm.sh/v3:Release"


def lone_cluster(spec: ClusterSpec, token: str = DO_TOKEN) -> DoksCluster:
    """A DOKS cluster (and its provider) for a component test, on the fakes' default version."""
    return DoksCluster(spec.name, DoksClusterArgs(spec=spec, version="1.33.5-do.0", version_prefix="1.33", digitalocean_token=pulumi.Output.secret(token)))


def provider_cluster(registration) -> str:
    """The cluster a resource lands in: its provider is named `kubernetes-<cluster>`."""
    name = registration.provider.rsplit("::", 1)[0].rsplit("::", 1)[-1]
    assert name.startswith("kubernetes-"), registration.provider
    return name.removeprefix("kubernetes-")


def releases(result) -> dict[tuple[str, str], object]:
    """(cluster, chart) -> the Helm release registered for it."""
    return {(provider_cluster(r), r.inputs["chart"]): r for r in result.monitor.of_type(RELEASE)}


def full_mesh_config(count: int) -> dict[str, str]:
    """Stack config for `count` clusters in which every cluster links to every other (no demo,
    no exports): the largest topology the tests and `make bench` evaluate."""
    regions = ["nyc1", "nyc3", "sfo2", "sfo3", "ams3", "sgp1", "lon1", "fra1", "tor1", "blr1", "syd1"]
    clusters = {f"region-{i:02d}": {"region": regions[i % len(regions)], "nodeSize": "s-4vcpu-8gb", "nodeCount": 3} for i in range(count)}
    links = [{"from": a, "to": b} for a in clusters for b in clusters if a != b]
    return {
        "digitalocean:token": DO_TOKEN,
        f"{PROJECT}:clusters": json.dumps(clusters),
        f"{PROJECT}:links": json.dumps(links),
        f"{PROJECT}:exports": "[]",
        f"{PROJECT}:demo": "false",
    }
