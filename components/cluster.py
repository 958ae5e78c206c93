"""A DOKS cluster and the Kubernetes provider that talks to it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_kubernetes as kubernetes

from components.config import ClusterSpec
from components.kubeconfigs import exec_kubeconfig

# Patch upgrades run in a quiet hour (UTC); surge upgrades replace nodes without losing capacity.
MAINTENANCE_DAY = "sunday"
MAINTENANCE_START = "04:00"


def resolve_kubernetes_version(prefix: str) -> str:
    """The newest DOKS version matching `prefix`; a clear error (before any resource) if none."""
    versions = digitalocean.get_kubernetes_versions(version_prefix=prefix)
    if not versions.latest_version:
        raise pulumi.RunError(
            f"no DOKS Kubernetes version matches kubernetesVersion {prefix!r}; "
            "see `doctl kubernetes options versions` for the versions DigitalOcean offers"
        )
    return versions.latest_version


def doks_name(stack: str, cluster: str) -> str:
    """DOKS names are unique per account: prefix the stack, keeping to lowercase and '-'."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{stack}-{cluster}".lower()).strip("-")


def _warn_if_not_on(name: str, live_version: str, prefix: str, cluster: pulumi.Resource) -> None:
    """Version changes are ignored (auto-upgrade owns patches), so say when a minor upgrade waits."""
    if live_version and not live_version.startswith(f"{prefix}."):
        pulumi.log.warn(
            f"cluster {name} runs Kubernetes {live_version} but kubernetesVersion is {prefix!r}: DOKS upgrades "
            f"minor versions only when asked (`doctl kubernetes cluster upgrade <id> --version <{prefix}.x-do.y>`); "
            "Pulumi leaves the version to DOKS so that an upgraded cluster is never replaced",
            resource=cluster,
        )


@dataclass(frozen=True)
class DoksClusterArgs:
    spec: ClusterSpec
    # An exact DOKS version slug, from resolve_kubernetes_version, for a new cluster.
    version: str
    # The configured prefix ("1.33"), which an existing cluster is checked against.
    version_prefix: str


class DoksCluster(pulumi.ComponentResource):
    """One DOKS cluster; `provider` deploys into it with short-lived credentials fetched at run time."""

    cluster_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    version: pulumi.Output[str]
    ca_certificate: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: kubernetes.Provider

    def __init__(self, name: str, args: DoksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:DoksCluster", name, None, opts)
        spec = args.spec
        self.region = spec.region
        cluster = digitalocean.KubernetesCluster(
            f"doks-{name}",
            name=doks_name(pulumi.get_stack(), name),
            region=spec.region,
            version=args.version,
            auto_upgrade=True,
            surge_upgrade=True,
            maintenance_policy=digitalocean.KubernetesClusterMaintenancePolicyArgs(day=MAINTENANCE_DAY, start_time=MAINTENANCE_START),
            node_pool=digitalocean.KubernetesClusterNodePoolArgs(
                name=f"{name}-default",
                size=spec.node_size,
                node_count=spec.node_count,
            ),
            tags=["linkerd-mesh", f"mesh-cluster-{name}"],
            # Auto-upgrade owns the patch version from here on; a Pulumi-side "downgrade" back
            # to the configured slug would replace the cluster.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["version"]),
        )
        cluster.version.apply(lambda live: _warn_if_not_on(name, live, args.version_prefix, cluster))
        self.cluster_id = cluster.id
        self.endpoint = cluster.endpoint
        self.version = cluster.version
        # kube_configs is secret (it holds the 7-day token); only its CA, which is public, is used.
        self.ca_certificate = pulumi.Output.unsecret(cluster.kube_configs.apply(lambda configs: configs[0].cluster_ca_certificate))
        # DigitalOcean's exec form: no secret in it, so nothing in the state to leak or rotate. The
        # provider (client-go), the live reads and `verify` run doctl, which reads the token from
        # the environment of whoever runs them.
        self.kubeconfig = pulumi.Output.all(cluster.id, cluster.endpoint, self.ca_certificate).apply(lambda parts: exec_kubeconfig(name, *parts))
        self.provider = kubernetes.Provider(
            f"kubernetes-{name}",
            kubeconfig=self.kubeconfig,
            # A fixed identity: a new token or endpoint updates the provider in place instead of
            # replacing it, and with it every Kubernetes resource it manages.
            cluster_identifier=f"doks-{name}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "endpoint": self.endpoint,
                "version": self.version,
                "kubeconfig": self.kubeconfig,
            }
        )
