"""Helpers the component and program tests share: one cluster to build a component on, and
queries over what the program registered."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Optional

import pulumi

from components.cluster import DoksCluster, DoksClusterArgs
from components.config import ClusterSpec, load_config
from components.cost import monthly_cost
from tests.fake_cloud import FakeCloud
from tests.fake_digitalocean import DOKS_VERSIONS
from tests.harness import PROJECT, run, stack_config

RELEASE = "kubernetes:helm.sh/v3:Release"


# A lone cluster's VPC-native ranges, unless its spec has its own.
LONE_CLUSTER_SUBNET = "172.20.0.0/16"
LONE_SERVICE_SUBNET = "172.30.0.0/20"


def lone_cluster(spec: ClusterSpec) -> DoksCluster:
    """A DOKS cluster (and its provider) for a component test, on the newest version the fake offers."""
    spec = replace(spec, cluster_subnet=spec.cluster_subnet or LONE_CLUSTER_SUBNET, service_subnet=spec.service_subnet or LONE_SERVICE_SUBNET)
    return DoksCluster(spec.name, DoksClusterArgs(spec=spec, version=DOKS_VERSIONS[0], version_prefix=None))


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
    # Pod and service ranges that overlap no other cluster's (and none of DOKS' defaults).
    clusters = {
        f"region-{i:02d}": {
            "region": regions[i % len(regions)],
            "nodeSize": "s-4vcpu-8gb",
            "nodeCount": 3,
            "clusterSubnet": f"172.{16 + i // 4}.{i % 4 * 64}.0/18",
            "serviceSubnet": f"192.168.{i}.0/24",
        }
        for i in range(count)
    }
    links = [{"from": a, "to": b} for a in clusters for b in clusters if a != b]
    return {
        f"{PROJECT}:clusters": json.dumps(clusters),
        f"{PROJECT}:links": json.dumps(links),
        f"{PROJECT}:exports": "[]",
        f"{PROJECT}:demo": "false",
    }


def cost_of(config: dict[str, str], fakes: Optional[FakeCloud] = None, **kwargs) -> dict:
    """The monthlyCost the program would export for `config`, computed alone (no mesh built)."""
    fakes = fakes or FakeCloud()
    result = run(fakes, lambda: pulumi.export("monthlyCost", monthly_cost(load_config(), PROJECT)), config, **kwargs)
    return result.outputs["monthlyCost"]


def seed_with(**cluster_changes: dict) -> dict[str, str]:
    """The seed's config with settings of some clusters changed, e.g. west={"nodeCount": 5}."""
    config = stack_config("west-east")
    clusters = json.loads(config[f"{PROJECT}:clusters"])
    for name, changes in cluster_changes.items():
        clusters[name].update(changes)
    return {**config, f"{PROJECT}:clusters": json.dumps(clusters)}
