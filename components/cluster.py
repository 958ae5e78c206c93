"""A DOKS cluster and the Kubernetes provider that talks to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_kubernetes as kubernetes

from components.config import SYSTEM_POOL_NODES, SYSTEM_POOL_SIZE, ClusterSpec
from components.kubeconfigs import exec_kubeconfig

# Patch upgrades run in a quiet hour (UTC); surge upgrades replace nodes without losing capacity.
MAINTENANCE_DAY = "sunday"
MAINTENANCE_START = "04:00"
# The lifetime of the cluster credentials the DigitalOcean provider fetches (and the state keeps).
PROVIDER_CREDENTIALS_SECONDS = 600
# Keeps everything but critical add-ons off the built-in pool's one small node: Linkerd, viz (its
# Prometheus has no memory limit), the demo and the user's workloads run on the workers. The key is
# the one cluster add-ons tolerate by convention (kubeadm's CoreDNS, AKS system pools); DaemonSets
# that tolerate every taint (Cilium's agent) still run there. DOKS applies a pool's taints to its
# current and future nodes; a taint changes the pool in place (terraform-provider-digitalocean
# kubernetes.go: `taint` is not ForceNew), and NoSchedule evicts nothing already running.
SYSTEM_POOL_TAINT = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}


def system_pool_name(cluster: str) -> str:
    return f"{cluster}-system"


def worker_pool_name(cluster: str, size: str) -> str:
    """The size is part of the name: a new size is a new pool, created (beside the old one, under
    its own name) before the old one is deleted, so the cluster never loses its workers. Node
    names derive from it, so a slug's '_' (so1_5-...) becomes '-'."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{cluster}-workers-{size}")


def doks_name(stack: str, cluster: str) -> str:
    """DOKS names are unique per account: prefix the stack, keeping to lowercase and '-'."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{stack}-{cluster}".lower()).strip("-")


def _warn_if_not_on(name: str, live_version: str, prefix: Optional[str], cluster: pulumi.Resource) -> None:
    """Version changes are ignored (auto-upgrade owns patches), so say when a minor upgrade waits."""
    if prefix and live_version and not live_version.startswith(f"{prefix}."):
        pulumi.log.warn(
            f"cluster {name} runs Kubernetes {live_version} but kubernetesVersion is {prefix!r}: DOKS upgrades "
            f"minor versions only when asked (`doctl kubernetes cluster upgrade <id> --version <{prefix}.x-do.y>`); "
            "Pulumi leaves the version to DOKS so that an upgraded cluster is never replaced",
            resource=cluster,
        )


@dataclass(frozen=True)
class DoksClusterArgs:
    spec: ClusterSpec
    # An exact DOKS version slug: an offered one for a new cluster, the running one for an
    # existing cluster (components/cluster_plan.py); Pulumi ignores later changes to it.
    version: str
    # The configured prefix ("1.35"), which an existing cluster is checked against; None: none set.
    version_prefix: Optional[str]


class DoksCluster(pulumi.ComponentResource):
    """One DOKS cluster; `provider` deploys into it with short-lived credentials fetched at run time."""

    cluster_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    version: pulumi.Output[str]
    ca_certificate: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    workers: digitalocean.KubernetesNodePool
    provider: kubernetes.Provider

    def __init__(self, name: str, args: DoksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:DoksCluster", name, None, opts)
        spec = args.spec
        self.region = spec.region
        # Without both ranges DOKS builds a legacy overlay cluster, without the Gateway API CRDs.
        if not (spec.cluster_subnet and spec.service_subnet):
            raise ValueError(f"cluster {name}: VPC-native networking needs both subnets, got {spec.cluster_subnet!r} and {spec.service_subnet!r}")
        cluster = digitalocean.KubernetesCluster(
            f"doks-{name}",
            name=doks_name(pulumi.get_stack(), name),
            region=spec.region,
            version=args.version,
            # Both ranges given make the cluster VPC-native (doctl commands/kubernetes.go): pods get
            # VPC-routable addresses, and DOKS (>= 1.33) installs and owns the Gateway API CRDs.
            cluster_subnet=spec.cluster_subnet,
            service_subnet=spec.service_subnet,
            # Explicit: from 1.36 on DOKS turns the (billed) HA control plane on when `ha` is unset.
            ha=spec.control_plane_ha,
            auto_upgrade=True,
            surge_upgrade=True,
            maintenance_policy=digitalocean.KubernetesClusterMaintenancePolicyArgs(day=MAINTENANCE_DAY, start_time=MAINTENANCE_START),
            # The built-in pool never changes: a new size here would replace the whole cluster
            # (terraform-provider-digitalocean#424). The workers are the separate pool below.
            node_pool=digitalocean.KubernetesClusterNodePoolArgs(
                name=system_pool_name(name),
                size=SYSTEM_POOL_SIZE,
                node_count=SYSTEM_POOL_NODES,
                taints=[digitalocean.KubernetesClusterNodePoolTaintArgs(**SYSTEM_POOL_TAINT)],
            ),
            # The load balancers, volumes and volume snapshots DigitalOcean lists as the cluster's
            # (the gateway's load balancer; any snapshot of its volumes, backups included) are deleted
            # with it (OpenAPI associated_kubernetes_resources; the provider uses the "dangerous"
            # delete), instead of outliving a destroy that removed the cluster before them.
            destroy_all_associated_resources=True,
            # The provider keeps the credentials DOKS returns (kube_configs) in the state; only their
            # CA is used, so ask for a token that expires in minutes instead of the default 7 days.
            kubeconfig_expire_seconds=PROVIDER_CREDENTIALS_SECONDS,
            tags=["linkerd-mesh", f"mesh-cluster-{name}"],
            # Auto-upgrade owns the patch version from here on; a Pulumi-side "downgrade" back
            # to the configured slug would replace the cluster.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["version"]),
        )
        # A size change replaces this pool (create before delete, under the new name); a count
        # change updates it in place.
        self.workers = digitalocean.KubernetesNodePool(
            f"workers-{name}",
            cluster_id=cluster.id,
            name=worker_pool_name(name, spec.node_size),
            size=spec.node_size,
            node_count=spec.node_count,
            tags=["linkerd-mesh", f"mesh-cluster-{name}", "mesh-workers"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        cluster.version.apply(lambda live: _warn_if_not_on(name, live, args.version_prefix, cluster))
        self.cluster_id = cluster.id
        self.endpoint = cluster.endpoint
        self.version = cluster.version
        # kube_configs is secret (it holds a short-lived token); only its CA, which is public, is used.
        self.ca_certificate = pulumi.Output.unsecret(cluster.kube_configs.apply(lambda configs: configs[0].cluster_ca_certificate))
        # DigitalOcean's exec form: no secret in it, so nothing in the state to leak or rotate. The
        # provider (client-go), the live reads and `verify` run doctl, which reads the token from
        # the environment of whoever runs them.
        self.kubeconfig = pulumi.Output.all(cluster.id, cluster.endpoint, self.ca_certificate).apply(lambda parts: exec_kubeconfig(name, *parts))
        self.provider = kubernetes.Provider(
            f"kubernetes-{name}",
            kubeconfig=self.kubeconfig,
            # The cluster's id: a new endpoint (or an auto-upgrade) updates the provider in place,
            # while a replaced cluster, whose objects are all gone, gets them all again.
            cluster_identifier=cluster.id,
            # Workloads need the worker pool: the built-in pool is one small, tainted node.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.workers]),
        )
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "endpoint": self.endpoint,
                "version": self.version,
                "kubeconfig": self.kubeconfig,
            }
        )
