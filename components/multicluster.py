"""The multicluster extension on one cluster: its gateway and one remote-access service account
per linking cluster (when something links to this cluster), the service-mirror controllers for
this cluster's own links, and the gateway address that linking clusters read back from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as kubernetes
from kubernetes import client as kube_api

from components.charts import linkerd_release, merge_values
from components.identity import trust_bundle_annotations
from components.live_read import REQUEST_TIMEOUT, LiveReadProvider, live_read_inputs, read_or_none, waited
from components.names import GATEWAY_SERVICE, MULTICLUSTER_NAMESPACE, remote_access_service_account

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
    # The clusters that link to this one: one remote-access service account (and token) each.
    linking_sources: Sequence[str]
    # The extension is installed only after this ready control plane.
    control_plane: pulumi.Resource
    # For reading back the gateway address, a bounded time.
    kubeconfig: pulumi.Input[str]
    wait_timeout_seconds: int
    # The mesh's trust bundle: its pods restart when it changes.
    trust_anchor_pem: pulumi.Input[str]
    gateway_source_ranges: Sequence[str] = field(default_factory=tuple)
    # Where linking clusters reach the gateway, when not at its load balancer's address.
    gateway_address: Optional[str] = None


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
        # One revocable account per linking cluster instead of the chart's single shared one;
        # none at all when nothing links here (remote-access-service-mirror-rbac.yaml).
        "remoteMirrorServiceAccount": bool(args.linking_sources),
    }
    if args.linking_sources:
        values["remoteMirrorServiceAccountName"] = [remote_access_service_account(source) for source in sorted(args.linking_sources)]
    if args.high_availability:
        values["enablePodAntiAffinity"] = True
    return values


def trust_bundle_values(args: MulticlusterArgs, trust_anchor_pem: str) -> dict:
    """Restart every pod of the chart on a new trust bundle: the service mirrors and the local
    service mirror read `podAnnotations`, the gateway's pod template `gateway.deploymentAnnotations`
    (multicluster/charts/linkerd-multicluster/templates/gateway.yaml)."""
    annotations = trust_bundle_annotations(trust_anchor_pem)
    values: dict = {"podAnnotations": annotations}
    if args.gateway:
        values["gateway"] = {"deploymentAnnotations": annotations}
    return values


class GatewayAddressProvider(LiveReadProvider):
    outputs = ("address",)
    missing = "the Service does not exist"
    # A plain `pulumi up` notices a gateway that got a new address, and links to the new one.
    look_live_on_diff = True

    def observe(self, api, props: dict) -> Optional[dict]:
        service = read_or_none(lambda: kube_api.CoreV1Api(api).read_namespaced_service(GATEWAY_SERVICE, MULTICLUSTER_NAMESPACE, _request_timeout=REQUEST_TIMEOUT))
        if service is None:
            return None
        ingress = (service.status.load_balancer.ingress if service.status and service.status.load_balancer else None) or []
        return {"address": next((entry.ip or entry.hostname for entry in ingress if entry.ip or entry.hostname), None)}

    def problem(self, props: dict, observed: dict) -> Optional[str]:
        return None if observed["address"] else "the Service has no load balancer address yet"

    def timeout_message(self, props: dict, last_state: str) -> str:
        return (
            f"the {MULTICLUSTER_NAMESPACE}/{GATEWAY_SERVICE} Service in cluster {props['cluster']!r} got no load balancer "
            f"address within {waited(props)} ({last_state}); check the DigitalOcean load balancer it requested "
            f"(`kubectl -n {MULTICLUSTER_NAMESPACE} describe svc {GATEWAY_SERVICE}`)"
        )


class GatewayAddress(pulumi.dynamic.Resource):
    address: pulumi.Output[str]

    def __init__(self, name: str, cluster: str, kubeconfig: pulumi.Input[str], timeout_seconds: int, opts: pulumi.ResourceOptions):
        inputs = live_read_inputs(kubeconfig, timeout_seconds, f"{MULTICLUSTER_NAMESPACE}/{GATEWAY_SERVICE}", cluster=cluster, address=None)
        super().__init__(GatewayAddressProvider(), name, inputs, opts)


class Multicluster(pulumi.ComponentResource):
    """`gateway_address` is set when `gateway` is on."""

    release: kubernetes.helm.v3.Release
    gateway_address: Optional[pulumi.Output[str]] = None

    def __init__(self, name: str, args: MulticlusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:Multicluster", name, None, opts)
        self.release = linkerd_release(
            f"linkerd-multicluster-{name}",
            chart="linkerd-multicluster",
            namespace=MULTICLUSTER_NAMESPACE,
            version=args.chart_version,
            values=pulumi.Output.from_input(args.trust_anchor_pem).apply(lambda pem: merge_values(multicluster_values(args), trust_bundle_values(args, pem))),
            provider=args.provider,
            parent=self,
            timeout_seconds=MULTICLUSTER_TIMEOUT_SECONDS,
            depends_on=[args.control_plane],
        )
        if args.gateway and args.gateway_address:
            # Configured: the load balancer's own address is not the one the linking clusters reach.
            self.gateway_address = pulumi.Output.from_input(args.gateway_address)
        elif args.gateway:
            # Read live from this cluster once the release that creates it is in place (its wait
            # already covers the load balancer getting its address).
            read = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
            self.gateway_address = GatewayAddress(f"gateway-address-{name}", name, args.kubeconfig, args.wait_timeout_seconds, read).address
        self.register_outputs({"gateway_address": self.gateway_address, "release_status": self.release.status})
