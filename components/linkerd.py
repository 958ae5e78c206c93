"""Linkerd on one cluster: its CRDs, the control plane with the mesh's identity, and the viz
extension, in the order Linkerd needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.charts import linkerd_release, merge_values
from components.identity import trust_bundle_annotations
from components.names import LINKERD_NAMESPACE, VIZ_NAMESPACE

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

# Linkerd needs the Gateway API CRDs httproutes and grpcroutes at v1, from any source. DOKS installs
# and owns them (and gateways, gatewayclasses, tlsroutes, referencegrants) on every cluster this
# program makes: VPC-native, Kubernetes >= 1.33 (docs.digitalocean.com, products/kubernetes/how-to/
# use-gateway-api, "Preserve Third-Party Gateway CRDs"). Helm cannot adopt objects another owner
# made, so the chart must render none of them: each key of charts/linkerd-crds/values.yaml that
# would, set explicitly, in case a chart version flips a default.
CRDS_VALUES = {"installGatewayAPI": False, "enableHttpRoutes": False, "enableTlsRoutes": False, "enableTcpRoutes": False}

# Sized for a fresh DOKS cluster pulling images; HA waits for three replicas of everything.
CRDS_TIMEOUT_SECONDS = 300
CONTROL_PLANE_TIMEOUT_SECONDS = 900
VIZ_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class LinkerdArgs:
    provider: kubernetes.Provider
    chart_version: str
    high_availability: bool
    trust_anchor_pem: pulumi.Input[str]
    issuer_cert_pem: pulumi.Input[str]
    issuer_key_pem: pulumi.Input[str]  # secret
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
            chart="linkerd-crds",
            namespace=LINKERD_NAMESPACE,
            values=CRDS_VALUES,
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
            **common,
        )
        self.register_outputs({"control_plane_status": self.control_plane.status, "viz_status": self.viz.status})
