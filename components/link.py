"""One link `source -> target`, applied in `source`: what its service-mirror controller needs to
reach `target` (Linkerd 2.18+ model, the objects `linkerd multicluster link-gen` produces)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.config import DEFAULT_GATEWAY_PORT
from components.link_credentials import LinkCredentials, LinkCredentialsArgs, credentials_secret_name
from components.names import EXPORTED_LABEL, LINK_GROUP, LINK_VERSION, LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE, remote_access_token_secret
from components.unlink import LinkLeftovers, LinkLeftoversArgs

GATEWAY_IDENTITY = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
PROBE_SPEC = {"path": "/ready", "port": "4191", "period": "3s", "failureThreshold": "3", "timeout": "30s"}
# Label values of an exported service: mirrored through the gateway, or discovered directly.
EXPORT_LABEL_VALUES = {"gateway": "true", "remote-discovery": "remote-discovery"}
FEDERATED_SELECTOR = {"matchLabels": {"mirror.linkerd.io/federated": "member"}}


def remote_discovery_annotations() -> dict[str, str]:
    """The destination controller loads a remote-discovery credentials Secret only with both
    (controller/api/destination/watcher/cluster_store.go); the target's defaults."""
    return {"multicluster.linkerd.io/cluster-domain": "cluster.local", "multicluster.linkerd.io/trust-domain": "cluster.local"}


@dataclass(frozen=True)
class LinkArgs:
    source: str
    source_provider: kubernetes.Provider
    source_kubeconfig: pulumi.Input[str]  # exec forms: no secret
    target: str
    target_kubeconfig: pulumi.Input[str]
    target_endpoint: pulumi.Input[str]
    target_ca_certificate: pulumi.Input[Optional[str]]  # base64 PEM, as DOKS returns it; None: the system's roots
    target_gateway_address: pulumi.Input[str]
    # The source's multicluster release: it installs the Link CRD and the controller for this link.
    source_multicluster: pulumi.Resource
    # What must exist before the credentials are copied: the target's multicluster release (it
    # creates this link's remote-access account) and the source's `linkerd` namespace.
    credentials_after: Sequence[pulumi.Resource]
    timeout_seconds: int
    # The port the target's gateway is reached on (clusters.<target>.gatewayPort).
    target_gateway_port: int = DEFAULT_GATEWAY_PORT


def link_spec(target: str, gateway_address: str, gateway_port: int = DEFAULT_GATEWAY_PORT) -> dict:
    return {
        "targetClusterName": target,
        "targetClusterDomain": "cluster.local",
        "targetClusterLinkerdNamespace": LINKERD_NAMESPACE,
        "clusterCredentialsSecret": credentials_secret_name(target),
        "gatewayAddress": gateway_address,
        # A string in the Link CRD (multicluster/charts/linkerd-multicluster/templates/link-crd.yaml).
        "gatewayPort": str(gateway_port),
        "gatewayIdentity": GATEWAY_IDENTITY,
        "probeSpec": PROBE_SPEC,
        # An empty selector mirrors nothing: select what the target exports.
        "selector": {"matchLabels": {EXPORTED_LABEL: EXPORT_LABEL_VALUES["gateway"]}},
        "remoteDiscoverySelector": {"matchLabels": {EXPORTED_LABEL: EXPORT_LABEL_VALUES["remote-discovery"]}},
        "federatedServiceSelector": FEDERATED_SELECTOR,
    }


class ClusterLink(pulumi.ComponentResource):
    link: kubernetes.apiextensions.CustomResource

    def __init__(self, name: str, args: LinkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:ClusterLink", name, None, opts)
        target = args.target
        in_source = pulumi.ResourceOptions(parent=self, provider=args.source_provider, depends_on=[args.source_multicluster])
        credentials = LinkCredentials(
            f"{name}-credentials",
            LinkCredentialsArgs(
                source=args.source,
                target=target,
                source_kubeconfig=args.source_kubeconfig,
                target_kubeconfig=args.target_kubeconfig,
                target_endpoint=args.target_endpoint,
                target_ca_certificate=args.target_ca_certificate,
                token_secret=remote_access_token_secret(args.source),
                timeout_seconds=args.timeout_seconds,
                remote_discovery_annotations=remote_discovery_annotations(),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.source_multicluster, *args.credentials_after]),
        )
        leftovers = LinkLeftovers(f"{name}-leftovers", LinkLeftoversArgs(args.source_kubeconfig, target), pulumi.ResourceOptions(parent=self, depends_on=[args.source_multicluster]))
        self.link = kubernetes.apiextensions.CustomResource(
            f"link-{name}",
            api_version=f"{LINK_GROUP}/{LINK_VERSION}",
            kind="Link",
            metadata=kubernetes.meta.v1.ObjectMetaArgs(name=target, namespace=MULTICLUSTER_NAMESPACE),
            spec=pulumi.Output.from_input(args.target_gateway_address).apply(lambda address: link_spec(target, address, args.target_gateway_port)),
            # Deleted before its leftovers' cleanup and its credentials: dependents are deleted first.
            opts=pulumi.ResourceOptions.merge(in_source, pulumi.ResourceOptions(depends_on=[credentials, leftovers])),
        )
        self.register_outputs({"link_name": target, "gateway_address": args.target_gateway_address, "credentials_fingerprint": credentials.fingerprint})
