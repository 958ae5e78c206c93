"""The one view of a cluster that the rest of the program has, whatever the cluster's source, and
the factory that makes it from the config: a DOKS cluster the program creates (and owns), an
existing DOKS cluster it adopts, or any cluster in a kubeconfig. Only here does the source matter.

Neither given kind registers anything that could create, resize, upgrade or delete the cluster:
each is a Kubernetes provider under a component, so destroying the stack removes what the program
installed in it and never the cluster. In a given cluster the program also owns Linkerd's
namespaces: Helm's `--create-namespace` makes a namespace that no uninstall removes (helm
pkg/action/install.go; it is not part of the release), which would outlive the stack there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as kubernetes

from components.cluster import DoksCluster, DoksClusterArgs
from components.config import AdoptedClusterSpec, AnyClusterSpec, ClusterSpec, KubeconfigClusterSpec
from components.given_clusters import GivenCluster
from components.names import LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE, VIZ_NAMESPACE

# Where a given cluster comes from, as the `clusters` output says: an existing DOKS cluster
# (DigitalOcean's rules, prices and network apply, but it is not the program's), or any cluster in
# a kubeconfig (none of DigitalOcean's rules apply). A created cluster has no `source` there.
EXISTING, KUBECONFIG = "existingCluster", "kubeconfig"


@dataclass(frozen=True)
class MeshCluster:
    # Deploys into the cluster; its identity follows the cluster (a DOKS id, or kube-system's uid).
    provider: kubernetes.Provider
    # How the live reads and `verify` reach it, holding no credential: DigitalOcean's exec form, or
    # a reference to the kubeconfig file's context (components/kubeconfigs.py).
    kubeconfig: pulumi.Input[str]
    # What a link's credentials need to reach its API server from another cluster.
    endpoint: pulumi.Input[str]
    ca_certificate: pulumi.Input[Optional[str]]  # base64 PEM; None: the system's roots
    # Its entry in the `clusters` stack output.
    summary: Mapping[str, Any]
    # The namespaces the program owns there, which Linkerd's releases wait for (and outlive in a
    # teardown); none in a created cluster, which goes with everything in it.
    namespaces: tuple[pulumi.Resource, ...] = ()


def linkerd_namespaces(name: str, provider: kubernetes.Provider, parent: pulumi.Resource) -> tuple[pulumi.Resource, ...]:
    return tuple(
        kubernetes.core.v1.Namespace(f"namespace-{namespace}-{name}", metadata=kubernetes.meta.v1.ObjectMetaArgs(name=namespace), opts=pulumi.ResourceOptions(parent=parent, provider=provider))
        for namespace in (LINKERD_NAMESPACE, VIZ_NAMESPACE, MULTICLUSTER_NAMESPACE)
    )


class ExistingDoksCluster(pulumi.ComponentResource):
    """A DOKS cluster the program adopts: DigitalOcean's exec kubeconfig, as for the clusters it
    creates, and nothing of DigitalOcean's registered (it was looked up before)."""

    def __init__(self, name: str, found: GivenCluster, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("linkerd-mesh:index:ExistingDoksCluster", name, None, opts)
        self.kubeconfig = found.kubeconfig
        self.provider = kubernetes.Provider(f"kubernetes-{name}", kubeconfig=self.kubeconfig, cluster_identifier=found.identity, opts=pulumi.ResourceOptions(parent=self))
        self.namespaces = linkerd_namespaces(name, self.provider, self)
        self.register_outputs({"kubeconfig": self.kubeconfig})


class KubeconfigCluster(pulumi.ComponentResource):
    """A cluster in a kubeconfig file. The provider gets the file's path and the context, which is
    all its inputs (and so the state) keep: pulumi-kubernetes reads a `kubeconfig` that is a path
    to an existing file at run time (provider/pkg/provider/util.go, parseKubeconfigString) and
    stores its inputs as given (CheckConfig returns them unchanged)."""

    def __init__(self, name: str, spec: KubeconfigClusterSpec, found: GivenCluster, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("linkerd-mesh:index:KubeconfigCluster", name, None, opts)
        self.kubeconfig = found.kubeconfig
        self.provider = kubernetes.Provider(
            f"kubernetes-{name}",
            kubeconfig=spec.kubeconfig,
            context=spec.context,
            # kube-system's uid: a new path, context or credentials keep every resource; a
            # re-created cluster, whose objects are all gone, gets them all again.
            cluster_identifier=found.identity,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespaces = linkerd_namespaces(name, self.provider, self)
        self.register_outputs({"kubeconfig": self.kubeconfig})


def build_cluster(spec: AnyClusterSpec, version: str, version_prefix: Optional[str], given: Optional[GivenCluster]) -> MeshCluster:
    """The cluster `spec` names, as the rest of the program sees it. `version`: the DOKS version
    slug of a created cluster (components/cluster_plan.py); `given`: what was looked up of an
    adopted or kubeconfig cluster (components/given_clusters.py)."""
    name = spec.name
    if isinstance(spec, ClusterSpec):
        doks = DoksCluster(name, DoksClusterArgs(spec=spec, version=version, version_prefix=version_prefix))
        summary = {"id": doks.cluster_id, "region": doks.region, "version": doks.version, "endpoint": doks.endpoint}
        return MeshCluster(doks.provider, doks.kubeconfig, doks.endpoint, doks.ca_certificate, summary)
    assert given is not None, f"cluster {name} was not looked up"
    if isinstance(spec, AdoptedClusterSpec):
        adopted = ExistingDoksCluster(name, given)
        live = given.doks
        summary = {"id": given.identity, "region": live.region, "version": live.version, "endpoint": given.endpoint, "source": EXISTING}
        return MeshCluster(adopted.provider, adopted.kubeconfig, given.endpoint, given.ca_certificate, summary, adopted.namespaces)
    cluster = KubeconfigCluster(name, spec, given)
    summary = {"id": given.identity, "endpoint": given.endpoint, "source": KUBECONFIG, "kubeconfig": spec.kubeconfig, "context": spec.context}
    return MeshCluster(cluster.provider, cluster.kubeconfig, given.endpoint, given.ca_certificate, summary, cluster.namespaces)
