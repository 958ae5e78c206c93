"""CustomResourceDefinitions in a fake cluster: the Gateway API CRDs DOKS installs and owns, the
CRDs each chart renders for its values, Helm's refusal to take over objects it does not own, and
what Linkerd's control plane needs to start.

A CRD is kept in the cluster's objects as ("CustomResourceDefinition", "", <name>) with its
ownership metadata and the versions it serves.
"""

from __future__ import annotations

from typing import Optional

CRD = "CustomResourceDefinition"
GATEWAY_GROUP = "gateway.networking.k8s.io"
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

# What DOKS installs on a VPC-native cluster from 1.33 on, and keeps managing ("installs and
# manages Gateway CRDs for Gateway, GatewayClass, HTTPRoute, TLSRoute, GRPCRoute and
# ReferenceGrant by default": docs.digitalocean.com products/kubernetes/how-to/use-gateway-api,
# "Preserve Third-Party Gateway CRDs"). Served versions as in Gateway API's standard channel.
DOKS_GATEWAY_CRDS = {
    "gateways": ("v1", "v1beta1"),
    "gatewayclasses": ("v1", "v1beta1"),
    "httproutes": ("v1", "v1beta1"),
    "grpcroutes": ("v1",),
    "tlsroutes": ("v1alpha2",),
    "referencegrants": ("v1beta1",),
}
DOKS_MIN_MINOR = 33
# Not Helm's: an addon manager's label (the exact DOKS marker is not documented; any non-Helm
# owner is refused by Helm alike).
DOKS_OWNER_LABELS = {"addonmanager.kubernetes.io/mode": "Reconcile", "app.kubernetes.io/managed-by": "doks"}

# charts/linkerd-crds/templates at edge-26.6.3: Linkerd's own CRDs always, and each Gateway API
# CRD under `ternary .Values.enable<X>Routes .Values.installGatewayAPI (hasKey .Values "enable<X>Routes")`.
LINKERD_OWN_CRDS = (
    "authorizationpolicies.policy.linkerd.io",
    "egressnetworks.policy.linkerd.io",
    "httplocalratelimitpolicies.policy.linkerd.io",
    "httproutes.policy.linkerd.io",
    "meshtlsauthentications.policy.linkerd.io",
    "networkauthentications.policy.linkerd.io",
    "serverauthorizations.policy.linkerd.io",
    "servers.policy.linkerd.io",
    "serviceprofiles.linkerd.io",
    "externalworkloads.workload.linkerd.io",
)
LINKERD_GATEWAY_CRDS = {
    "enableHttpRoutes": {"httproutes": ("v1", "v1beta1"), "grpcroutes": ("v1", "v1alpha2")},
    "enableTlsRoutes": {"tlsroutes": ("v1alpha2",)},
    "enableTcpRoutes": {"tcproutes": ("v1alpha2",)},
}
# The policy controller watches these at v1 and Linkerd checks them (pkg/healthcheck/healthcheck.go,
# checkGatewayAPICRDs: "missing the v1 version"); without them the control plane never gets ready.
LINKERD_NEEDS = ("httproutes", "grpcroutes")


def crd_name(plural: str) -> str:
    return f"{plural}.{GATEWAY_GROUP}"


def crd_path(name: str) -> str:
    return f"{CRD_API}/{name}"


def served(obj: dict) -> dict:
    """A CRD of the cluster's objects as the API server returns it (apiextensions.k8s.io/v1): the
    first version listed is the storage version."""
    name = obj["metadata"]["name"]
    plural, _, group = name.partition(".")
    versions = [{"name": version, "served": True, "storage": index == 0} for index, version in enumerate(obj["versions"])]
    spec = {"group": group, "names": {"plural": plural, "kind": plural.rstrip("s").capitalize()}, "scope": "Namespaced", "versions": versions}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": CRD, "metadata": dict(obj["metadata"]), "spec": spec}


def doks_gateway_crds(version: str, vpc_native: bool) -> dict[str, dict]:
    """What a fresh DOKS cluster has: the Gateway API CRDs only when VPC-native and >= 1.33."""
    if not vpc_native or int(version.split(".")[1]) < DOKS_MIN_MINOR:
        return {}
    return {crd_name(plural): {"metadata": {"name": crd_name(plural), "labels": dict(DOKS_OWNER_LABELS), "annotations": {}}, "versions": list(versions)} for plural, versions in DOKS_GATEWAY_CRDS.items()}


# k3s 1.37+ installs the Gateway API CRDs with its bundled gateway-api-crd chart, a Helm release in
# kube-system (k3s-io/k3s#14564: httproutes v1 and v1beta1, grpcroutes v1, tlsroutes, tcproutes, ...).
K3S_GATEWAY_CRDS = {"gateways": ("v1", "v1beta1"), "gatewayclasses": ("v1", "v1beta1"), "httproutes": ("v1", "v1beta1"), "grpcroutes": ("v1",), "tlsroutes": ("v1alpha2",), "tcproutes": ("v1alpha2",)}


def k3s_gateway_crds() -> dict[str, dict]:
    owner = helm_ownership("gateway-api-crd", "kube-system")
    return {crd_name(plural): {"metadata": {"name": crd_name(plural), **owner}, "versions": list(versions)} for plural, versions in K3S_GATEWAY_CRDS.items()}


def owner_gateway_crds() -> dict[str, dict]:
    """The Gateway API CRDs a cluster's owner installed (standard channel, by kubectl or an addon),
    as DOKS' are: served at v1, owned by something other than this program's Helm."""
    return {crd_name(plural): {"metadata": {"name": crd_name(plural), "labels": {"app.kubernetes.io/managed-by": "cluster-owner"}, "annotations": {}}, "versions": list(versions)} for plural, versions in DOKS_GATEWAY_CRDS.items()}


def rendered_crds(chart: str, values: dict) -> dict[str, tuple[str, ...]]:
    """CRD name -> served versions, for what `chart` renders with `values`."""
    if chart != "linkerd-crds":
        return {}
    crds: dict[str, tuple[str, ...]] = {name: ("v1beta1",) for name in LINKERD_OWN_CRDS}
    default = bool(values.get("installGatewayAPI", False))  # charts/linkerd-crds/values.yaml: false
    for key, plurals in LINKERD_GATEWAY_CRDS.items():
        if bool(values[key]) if key in values else default:
            crds.update({crd_name(plural): versions for plural, versions in plurals.items()})
    return crds


def removed_on_uninstall(objects: dict, release: str) -> list[str]:
    """The CRDs Helm deletes with `release`: those it rendered from templates/ (linkerd-crds has no
    crds/ directory, whose CRDs Helm would keep), except the Gateway API ones, which carry
    `helm.sh/resource-policy: keep` (charts/linkerd-crds/templates/gateway.networking.k8s.io_*.yaml
    at edge-26.6.3)."""
    return [
        name
        for (kind, _, name), obj in objects.items()
        if kind == CRD and (obj.get("metadata") or {}).get("annotations", {}).get("meta.helm.sh/release-name") == release and not name.endswith(f".{GATEWAY_GROUP}")
    ]


def helm_ownership(release: str, namespace: str) -> dict:
    return {"labels": {"app.kubernetes.io/managed-by": "Helm"}, "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}}


def ownership_conflict(existing: dict, release: str, namespace: str) -> Optional[str]:
    """Helm's refusal to install over an object it does not own (helm pkg/action/validate.go,
    existingResourceConflict); the release fails and, being atomic, rolls back."""
    metadata = existing.get("metadata") or {}
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    wanted = helm_ownership(release, namespace)
    if labels.get("app.kubernetes.io/managed-by") == "Helm" and all(annotations.get(k) == v for k, v in wanted["annotations"].items()):
        return None
    return (
        f'Unable to continue with install: {CRD} "{metadata.get("name")}" in namespace "" exists and cannot be imported '
        f'into the current release: invalid ownership metadata; label validation error: key "app.kubernetes.io/managed-by" '
        f'must equal "Helm": current value is "{labels.get("app.kubernetes.io/managed-by", "")}"; annotation validation error: '
        f'missing key "meta.helm.sh/release-name": must be set to "{release}"'
    )


def missing_for_linkerd(objects: dict) -> list[str]:
    """The Gateway API CRDs Linkerd needs that the cluster does not serve at v1."""
    return [crd_name(p) for p in LINKERD_NEEDS if "v1" not in (objects.get((CRD, "", crd_name(p))) or {}).get("versions", ())]
