"""The multicluster extension on one cluster: its gateway (when something links to this
cluster), the service-mirror controllers for this cluster's own links, and what a linking
cluster needs to read back from here (the gateway address and the remote-access token)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.charts import linkerd_release

MULTICLUSTER_NAMESPACE = "linkerd-multicluster"
GATEWAY_SERVICE = "linkerd-gateway"
# The chart's service account for linking clusters; Kubernetes fills this Secret's token.
REMOTE_ACCESS_TOKEN_SECRET = "linkerd-service-mirror-remote-access-default-token"
# Provisioning a DigitalOcean load balancer for the gateway takes a few minutes.
MULTICLUSTER_TIMEOUT_SECONDS = 900
# values-ha.yaml of the chart: three gateway replicas, spread over nodes.
HA_GATEWAY_REPLICAS = 3


@dataclass(frozen=True)
class MulticlusterArgs:
    provider: kubernetes.Provider
    chart_version: str
    high_availability: bool
    # Only clusters that something links to run a gateway (a paid load balancer).
    gateway: bool
    # The clusters this one links to: one service-mirror controller each.
    link_targets: Sequence[str]
    # The extension is installed only after this ready control plane.
    control_plane: pulumi.Resource
    gateway_source_ranges: Sequence[str] = field(default_factory=tuple)


def multicluster_values(args: MulticlusterArgs) -> dict:
    gateway: dict = {"enabled": args.gateway}
    if args.gateway and args.gateway_source_ranges:
        gateway["loadBalancerSourceRanges"] = list(args.gateway_source_ranges)
    if args.high_availability and args.gateway:
        gateway["replicas"] = HA_GATEWAY_REPLICAS
    values: dict = {
        "gateway": gateway,
        # Sorted by name, so reordering links in the config changes nothing.
        "controllers": [{"link": {"ref": {"name": target}}} for target in sorted(args.link_targets)],
    }
    if args.high_availability:
        values["enablePodAntiAffinity"] = True
    return values


def decode_token(secret_data: Optional[dict], cluster: str) -> str:
    token = base64.b64decode((secret_data or {}).get("token") or "").decode()
    if not token:
        # The token controller fills this Secret after the chart creates it; a link built on
        # an empty token would fail later with Unauthorized, so stop here instead.
        raise pulumi.RunError(
            f"the {MULTICLUSTER_NAMESPACE}/{REMOTE_ACCESS_TOKEN_SECRET} Secret in cluster {cluster!r} has no token yet "
            "(Kubernetes' token controller fills it shortly after the multicluster chart creates it); run `pulumi up` again"
        )
    return token


def gateway_address(status, cluster: str) -> str:
    ingress = (status.load_balancer.ingress if status and status.load_balancer else None) or []
    address = next((entry.ip or entry.hostname for entry in ingress if entry.ip or entry.hostname), None)
    if not address:
        raise pulumi.RunError(
            f"the {MULTICLUSTER_NAMESPACE}/{GATEWAY_SERVICE} Service in cluster {cluster!r} has no load balancer address; "
            "check the DigitalOcean load balancer it requested (`kubectl -n linkerd-multicluster describe svc linkerd-gateway`)"
        )
    return address


class Multicluster(pulumi.ComponentResource):
    """`gateway_address` and `remote_access_token` (secret) are set when `gateway` is on."""

    release: kubernetes.helm.v3.Release
    gateway_address: Optional[pulumi.Output[str]] = None
    remote_access_token: Optional[pulumi.Output[str]] = None

    def __init__(self, name: str, args: MulticlusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:Multicluster", name, None, opts)
        self.release = linkerd_release(
            f"linkerd-multicluster-{name}",
            chart="linkerd-multicluster",
            namespace=MULTICLUSTER_NAMESPACE,
            version=args.chart_version,
            values=multicluster_values(args),
            provider=args.provider,
            parent=self,
            timeout_seconds=MULTICLUSTER_TIMEOUT_SECONDS,
            depends_on=[args.control_plane],
        )
        if args.gateway:
            # Read live through this cluster's provider, after the release that creates them
            # (and whose wait covers the load balancer getting its address).
            read = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.release])
            service = kubernetes.core.v1.Service.get(f"gateway-service-{name}", f"{MULTICLUSTER_NAMESPACE}/{GATEWAY_SERVICE}", opts=read)
            self.gateway_address = service.status.apply(lambda status: gateway_address(status, name))
            token_secret = kubernetes.core.v1.Secret.get(f"remote-access-token-{name}", f"{MULTICLUSTER_NAMESPACE}/{REMOTE_ACCESS_TOKEN_SECRET}", opts=read)
            self.remote_access_token = pulumi.Output.secret(token_secret.data.apply(lambda data: decode_token(data, name)))
        self.register_outputs({"gateway_address": self.gateway_address, "release_status": self.release.status})
