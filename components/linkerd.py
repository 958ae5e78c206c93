"""Linkerd on one cluster: its CRDs, the control plane with the mesh's identity, and the viz
extension, in the order Linkerd needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.charts import linkerd_release, merge_values
from components.identity import trust_bundle_annotations
from components.names import CRDS_RELEASE, LINKERD_NAMESPACE, VIZ_NAMESPACE

# The parts of each chart's values-ha.yaml (Linkerd 2.20) that change behaviour: replicas, one
# replica per node, disruption budgets, resource requests, and a webhook that fails closed.
HA_RESOURCES = {"cpu": {"limit": "", "request": "100m"}, "memory": {"limit": "250Mi", "request": "50Mi"}}
CONTROL_PLANE_HA_VALUES = {
    "enablePodDisruptionBudget": True,
    "controller": {"podDisruptionBudget": {"maxUnavailable": 1}},
    "deploymentStrategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
    "enablePodAntiAffinity": True,
    "proxy": {"resources": {"cpu": {"request": "100m"}, "memory": {"limit": "250Mi", "request": "20Mi"}}},
    "controllerReplicas": 3,
    "controllerResources": HA_RESOURCES,
    "destinationResources": HA_RESOURCES,
    "identityResources": {"cpu": {"limit": "", "request": "100m"}, "memory": {"limit": "250Mi", "request": "10Mi"}},
    "heartbeatResources": HA_RESOURCES,
    "proxyInjectorResources": HA_RESOURCES,
    "webhookFailurePolicy": "Fail",
    "spValidatorResources": HA_RESOURCES,
    "highAvailability": True,
}
VIZ_HA_VALUES = {
    "enablePodAntiAffinity": True,
    "enablePodDisruptionBudget": True,
    "resources": HA_RESOURCES,
    "tap": {"replicas": 3, "resources": HA_RESOURCES},
    "dashboard": {"resources": HA_RESOURCES},
    "prometheus": {"resources": {"cpu": {"limit": "", "request": "300m"}, "memory": {"limit": "8192Mi", "request": "300Mi"}}},
}

# Sized for a fresh DOKS cluster pulling images; HA waits for three replicas of everything.
CRDS_TIMEOUT_SECONDS = 300
CONTROL_PLANE_TIMEOUT_SECONDS = 900
VIZ_TIMEOUT_SECONDS = 900


def certificates_renewal(marker: str) -> str:
    """The release description of the charts that generate certificates at every render.

    The control plane (proxy-injector, sp-validator and policy-validator webhooks) and viz (tap
    APIService, tap-injector webhook) make self-signed certificates valid 365 days each time they
    are rendered, and nothing else renews them (edge-26.6.3 charts/linkerd-control-plane/templates/
    {proxy-injector,destination}-rbac.yaml, viz/charts/linkerd-viz/templates/{tap,tap-injector}-rbac.yaml:
    genSelfSignedCert ... 365). Helm renders a release only when an `up` changes it; viz's values
    change only with the trust bundle. This description changes with the issuers' renewal period, so
    every renewal renders both again, and config.py keeps the period short enough. Values are left
    alone: only the pods whose templates hash the new certificates restart (destination,
    proxy-injector, tap, tap-injector), not Prometheus, web, metrics-api or identity.
    The multicluster chart generates no certificate and is not upgraded.
    """
    return f"{marker}: rendered again at each renewal period, with new webhook certificates"


@dataclass(frozen=True)
class LinkerdArgs:
    provider: kubernetes.Provider
    chart_version: str
    high_availability: bool
    trust_anchor_pem: pulumi.Input[str]
    issuer_cert_pem: pulumi.Input[str]
    issuer_key_pem: pulumi.Input[str]  # secret
    # Changes when the issuers are renewed (MeshIdentity.renewal_marker).
    renewal_marker: str
    # linkerd-crds' Gateway API switches for this cluster (components/gateway_api.py).
    gateway_api_values: Mapping[str, bool]
    # Namespaces the program owns in the cluster, made before anything is installed into them.
    namespaces: Sequence[pulumi.Resource] = ()


def control_plane_values(args: LinkerdArgs) -> pulumi.Output[dict]:
    identity = pulumi.Output.all(args.trust_anchor_pem, args.issuer_cert_pem, args.issuer_key_pem).apply(
        lambda pems: {
            "identityTrustAnchorsPEM": pems[0],
            "identity": {"issuer": {"tls": {"crtPEM": pems[1], "keyPEM": pems[2]}}},
            # identity, destination and the injector (every pod template of the chart).
            "podAnnotations": trust_bundle_annotations(pems[0]),
        }
    )
    # Output.all keeps the key's secrecy: the whole values map is secret.
    return identity.apply(lambda values: merge_values(CONTROL_PLANE_HA_VALUES, values) if args.high_availability else values)


def viz_values(args: LinkerdArgs) -> pulumi.Output[dict]:
    # The chart's values.yaml does not declare `podAnnotations`, but all five of its pod
    # templates read it (viz/charts/linkerd-viz/templates/*.yaml).
    base = VIZ_HA_VALUES if args.high_availability else {}
    return pulumi.Output.from_input(args.trust_anchor_pem).apply(lambda pem: merge_values(base, {"podAnnotations": trust_bundle_annotations(pem)}))


class Linkerd(pulumi.ComponentResource):
    """`control_plane` is ready once created: extensions depend on it, never on the CRDs alone."""

    crds: kubernetes.helm.v3.Release
    control_plane: kubernetes.helm.v3.Release
    viz: kubernetes.helm.v3.Release

    def __init__(self, name: str, args: LinkerdArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:Linkerd", name, None, opts)
        common = dict(version=args.chart_version, provider=args.provider, parent=self)
        self.crds = linkerd_release(
            f"linkerd-crds-{name}",
            chart=CRDS_RELEASE,
            namespace=LINKERD_NAMESPACE,
            values=dict(args.gateway_api_values),
            timeout_seconds=CRDS_TIMEOUT_SECONDS,
            depends_on=list(args.namespaces),
            **common,
        )
        self.control_plane = linkerd_release(
            f"linkerd-control-plane-{name}",
            chart="linkerd-control-plane",
            namespace=LINKERD_NAMESPACE,
            values=control_plane_values(args),
            timeout_seconds=CONTROL_PLANE_TIMEOUT_SECONDS,
            depends_on=[self.crds],
            description=certificates_renewal(args.renewal_marker),
            **common,
        )
        # The injector's failure policy is Ignore: pods created before it is ready would run
        # unmeshed, so viz waits for the ready control plane.
        self.viz = linkerd_release(
            f"linkerd-viz-{name}",
            chart="linkerd-viz",
            namespace=VIZ_NAMESPACE,
            values=viz_values(args),
            timeout_seconds=VIZ_TIMEOUT_SECONDS,
            depends_on=[self.control_plane],
            description=certificates_renewal(args.renewal_marker),
            **common,
        )
        self.register_outputs({"control_plane_status": self.control_plane.status, "viz_status": self.viz.status})
