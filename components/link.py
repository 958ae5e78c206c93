"""One link `source -> target`, applied in `source`: what its service-mirror controller needs to
reach `target` (Linkerd 2.18+ model, the objects `linkerd multicluster link-gen` produces)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as kubernetes

from components.cluster import bearer_kubeconfig
from components.unlink import LinkLeftovers, LinkLeftoversArgs
from components.names import EXPORTED_LABEL, LINK_GROUP, LINK_VERSION, LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE

GATEWAY_PORT = "4143"
GATEWAY_IDENTITY = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
PROBE_SPEC = {"path": "/ready", "port": "4191", "period": "3s", "failureThreshold": "3", "timeout": "30s"}
# Label values of an exported service: mirrored through the gateway, or discovered directly.
EXPORT_LABEL_VALUES = {"gateway": "true", "remote-discovery": "remote-discovery"}
FEDERATED_SELECTOR = {"matchLabels": {"mirror.linkerd.io/federated": "member"}}
CREDENTIALS_SECRET_TYPE = "mirror.linkerd.io/remote-kubeconfig"
CLUSTER_NAME_LABEL = "multicluster.linkerd.io/cluster-name"


def credentials_secret_name(target: str) -> str:
    return f"cluster-credentials-{target}"


def remote_discovery_annotations() -> dict[str, str]:
    """The destination controller loads a remote-discovery credentials Secret only with both
    (controller/api/destination/watcher/cluster_store.go); the target's defaults."""
    return {"multicluster.linkerd.io/cluster-domain": "cluster.local", "multicluster.linkerd.io/trust-domain": "cluster.local"}


@dataclass(frozen=True)
class LinkArgs:
    source_provider: kubernetes.Provider
    target: str
    target_endpoint: pulumi.Input[str]
    target_ca_certificate: pulumi.Input[str]  # base64 PEM, as DOKS returns it
    target_token: pulumi.Input[str]  # secret: the target's remote-access service account token
    target_gateway_address: pulumi.Input[str]
    # The source's multicluster release: it installs the Link CRD and the controller for this link.
    source_multicluster: pulumi.Resource
    source_kubeconfig: pulumi.Input[str]  # secret: to remove the link's leftovers when it goes


def link_spec(target: str, gateway_address: str) -> dict:
    return {
        "targetClusterName": target,
        "targetClusterDomain": "cluster.local",
        "targetClusterLinkerdNamespace": LINKERD_NAMESPACE,
        "clusterCredentialsSecret": credentials_secret_name(target),
        "gatewayAddress": gateway_address,
        "gatewayPort": GATEWAY_PORT,
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
        kubeconfig = bearer_kubeconfig(target, args.target_endpoint, args.target_ca_certificate, args.target_token)
        data = {"kubeconfig": kubeconfig.apply(lambda text: base64.b64encode(text.encode()).decode())}
        secrets = [
            kubernetes.core.v1.Secret(
                f"{name}-credentials-{namespace}",
                metadata=kubernetes.meta.v1.ObjectMetaArgs(name=credentials_secret_name(target), namespace=namespace, labels=labels, annotations=annotations),
                type=CREDENTIALS_SECRET_TYPE,
                data=data,
                opts=in_source,
            )
            # The copy in the control plane's namespace, labelled with the cluster's name, is
            # what the destination controller reads for remote-discovery exports.
            for namespace, labels, annotations in ((MULTICLUSTER_NAMESPACE, None, None), (LINKERD_NAMESPACE, {CLUSTER_NAME_LABEL: target}, remote_discovery_annotations()))
        ]
        leftovers = LinkLeftovers(f"{name}-leftovers", LinkLeftoversArgs(args.source_kubeconfig, target), pulumi.ResourceOptions(parent=self, depends_on=[args.source_multicluster]))
        self.link = kubernetes.apiextensions.CustomResource(
            f"link-{name}",
            api_version=f"{LINK_GROUP}/{LINK_VERSION}",
            kind="Link",
            metadata=kubernetes.meta.v1.ObjectMetaArgs(name=target, namespace=MULTICLUSTER_NAMESPACE),
            spec=pulumi.Output.from_input(args.target_gateway_address).apply(lambda address: link_spec(target, address)),
            # Deleted before its leftovers' cleanup: dependents are deleted first.
            opts=pulumi.ResourceOptions.merge(in_source, pulumi.ResourceOptions(depends_on=[*secrets, leftovers])),
        )
        self.register_outputs({"link_name": target, "gateway_address": args.target_gateway_address})
