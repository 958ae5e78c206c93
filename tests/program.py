"""Helpers the component and program tests share: one cluster to build a component on, and
queries over what the program registered."""

from __future__ import annotations

from components.cluster import DoksCluster, DoksClusterArgs
from components.config import ClusterSpec

RELEASE = "kubernetes:helm.sh/v3:Release"


def lone_cluster(spec: ClusterSpec) -> DoksCluster:
    """A DOKS cluster (and its provider) for a component test, on the fakes' default version."""
    return DoksCluster(spec.name, DoksClusterArgs(spec=spec, version="1.33.5-do.0", version_prefix="1.33"))


def provider_cluster(registration) -> str:
    """The cluster a resource lands in: its provider is named `kubernetes-<cluster>`."""
    name = registration.provider.rsplit("::", 1)[0].rsplit("::", 1)[-1]
    assert name.startswith("kubernetes-"), registration.provider
    return name.removeprefix("kubernetes-")


def releases(result) -> dict[tuple[str, str], object]:
    """(cluster, chart) -> the Helm release registered for it."""
    return {(provider_cluster(r), r.inputs["chart"]): r for r in result.monitor.of_type(RELEASE)}
