"""Helpers the component and program tests share: one cluster to build a component on, and
queries over what the program registered."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Optional

import pulumi

from components.cluster import DoksCluster, DoksClusterArgs
from components.config import ClusterSpec, IdentitySpec, load_config
from components.cost import monthly_cost
from components.gateway_api import DOKS_MANAGED_VALUES
from components.identity import MeshIdentity, MeshIdentityArgs
from components.linkerd import Linkerd, LinkerdArgs
from tests import fake_charts
from tests.fake_cloud import FakeCloud
from tests.fake_kube_api import core_path
from tests.fake_kubernetes import FakeCluster
from tests.fake_digitalocean import DOKS_VERSIONS
from tests.harness import PROJECT, run, stack_config
from verify.checks import check_anchors_outlive_issuer, check_chart_certificates, check_issuer_expiry
from verify.kube import KubeCluster

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


def linkerd_on_one_cluster(spec: IdentitySpec, now: dt.datetime, name: str = "solo"):
    """A program with one cluster, the mesh identity as of `now` and Linkerd (control plane and viz)
    on it, as build_mesh wires them; it exports the cluster's kubeconfig (for verify)."""

    def program():
        cluster = lone_cluster(ClusterSpec(name, "ams3", "s-4vcpu-8gb", 3))
        identity = MeshIdentity("mesh-identity", MeshIdentityArgs(spec=spec, cluster_names=[name], now=now))
        issuer = identity.issuers[name]
        args = LinkerdArgs(
            provider=cluster.provider,
            chart_version="2026.6.3",
            high_availability=False,
            trust_anchor_pem=identity.trust_anchor_pem,
            issuer_cert_pem=issuer.cert_pem,
            issuer_key_pem=issuer.key_pem,
            renewal_marker=identity.renewal_marker,
            gateway_api_values=DOKS_MANAGED_VALUES,
        )
        Linkerd(name, args)
        pulumi.export("kubeconfig", cluster.kubeconfig)

    return program


class RenderedCluster:
    """verify's view of a fake cluster, read straight from what its releases rendered (no API
    server: for walks that check often)."""

    def __init__(self, cluster: FakeCluster):
        self.name = cluster.short
        self._objects = {path: obj for rendered in cluster.rendered.values() for path, obj in rendered.items()}

    def get_configmap(self, namespace: str, name: str) -> Optional[dict]:
        return self._objects.get(core_path(namespace, "configmaps", name))

    def get_secret(self, namespace: str, name: str) -> Optional[dict]:
        return self._objects.get(core_path(namespace, "secrets", name))

    def get_cluster_object(self, kind: str, name: str) -> Optional[dict]:
        return self._objects.get(f"{fake_charts.PATHS[kind]}/{name}")


def certificate_checks(cluster, renew_before_hours: int, now: dt.datetime) -> dict[str, Optional[str]]:
    """verify's certificate checks of one cluster at `now`: check name -> hint, None when it passes."""
    return {
        "issuer-expiry": check_issuer_expiry(cluster, renew_before_hours, now),
        "anchor-expiry": check_anchors_outlive_issuer(cluster),
        "chart-certificates": check_chart_certificates(cluster, renew_before_hours, now),
    }


def cluster_checks(fakes: FakeCloud, kubeconfig: str, name: str, renew_before_hours: int, now: dt.datetime) -> dict[str, Optional[str]]:
    """The same, read through the fake cluster's API server as `make verify` reads it."""
    with fakes.served(kubeconfig) as served:
        return certificate_checks(KubeCluster(name, served), renew_before_hours, now)


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
