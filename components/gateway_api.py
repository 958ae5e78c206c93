"""Whether `linkerd-crds` installs the Gateway API CRDs on a cluster, decided from what the
cluster has, before anything is registered (so a preview shows the same values as `up`).

Linkerd's control plane needs `httproutes` and `grpcroutes` of gateway.networking.k8s.io served
at v1, from any source. The chart renders them under switches (charts/linkerd-crds/templates/
gateway.networking.k8s.io_*.yaml at edge-26.6.3): httproutes and grpcroutes under
`ternary .Values.enableHttpRoutes .Values.installGatewayAPI (hasKey .Values "enableHttpRoutes")`,
tlsroutes under enableTlsRoutes and tcproutes under enableTcpRoutes, each defaulting to
installGatewayAPI (values.yaml: false). Every key is set explicitly here.

The rules, as `linkerd install --crds` applies them (cli/cmd/install.go, checkGatewayAPICRDs and
validateFinalValues), with Helm's ownership as the test of "ours":
- none of httproutes/grpcroutes exists (k3s, kind): install them;
- our release installed them: keep installing them (a release that stops rendering its CRDs
  drops them from Helm's management);
- another owner holds them (DOKS >= 1.33, a user's own install): never render them, since Helm
  refuses to adopt another owner's objects (helm pkg/action/validate.go) and the owner would
  fight over them; they must then serve v1, or Linkerd cannot start: a clear error, nothing
  registered.
tlsroutes and tcproutes, which Linkerd only watches when present (policy-controller/runtime/src/
args.rs), are installed with the HTTP pair where no one else holds them, and kept where ours.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

import pulumi
from kubernetes import client as kube_api
from kubernetes.client.exceptions import ApiException

from components.live_read import REQUEST_TIMEOUT, look_client, read_or_none
from components.names import CRDS_RELEASE, LINKERD_NAMESPACE

GATEWAY_GROUP = "gateway.networking.k8s.io"
# What Linkerd needs, both under enableHttpRoutes.
NEEDED = ("httproutes", "grpcroutes")
# The other switches and the CRD each renders.
OPTIONAL_SWITCHES = {"enableTlsRoutes": "tlsroutes", "enableTcpRoutes": "tcproutes"}
# Helm's ownership marks (helm pkg/action/validate.go, existingResourceConflict).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
RELEASE_NAME_ANNOTATION = "meta.helm.sh/release-name"
RELEASE_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
# A DOKS cluster the program creates (VPC-native, >= 1.33) gets all but tcproutes from DOKS.
DOKS_MANAGED_VALUES = {"installGatewayAPI": False, "enableHttpRoutes": False, "enableTlsRoutes": False, "enableTcpRoutes": False}


class ClusterUnreadable(Exception):
    """The cluster's CRDs could not be read; the message says why, without the kubeconfig."""


def crd_name(plural: str) -> str:
    return f"{plural}.{GATEWAY_GROUP}"


def read_gateway_api_crds(kubeconfig: str) -> dict[str, Optional[dict]]:
    """plural -> the CRD as the API server returns it (JSON), or None where it does not exist.
    One bounded attempt per read (live_read.look_client); the first failure ends the look."""
    try:
        extensions = kube_api.ApiextensionsV1Api(look_client(kubeconfig))
        found = {}
        for plural in (*NEEDED, *OPTIONAL_SWITCHES.values()):
            # Raw JSON: the client's models refuse CRDs that leave out fields they require.
            response = read_or_none(lambda: extensions.read_custom_resource_definition(crd_name(plural), _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
            found[plural] = json.loads(response.data) if response is not None else None
        return found
    except ApiException as error:
        raise ClusterUnreadable(f"the API server answered {error.status} {error.reason}") from None
    except Exception as error:  # noqa: BLE001 - any other failure (refused, timed out, a failing credential plugin)
        first_line = str(error).splitlines()[0][:200] if str(error) else "no message"
        raise ClusterUnreadable(f"{type(error).__name__}: {first_line}") from None


def _ours(crd: Mapping[str, Any]) -> bool:
    metadata = crd.get("metadata") or {}
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    return (
        labels.get(MANAGED_BY_LABEL) == "Helm"
        and annotations.get(RELEASE_NAME_ANNOTATION) == CRDS_RELEASE
        and annotations.get(RELEASE_NAMESPACE_ANNOTATION) == LINKERD_NAMESPACE
    )


def _owner(crd: Mapping[str, Any]) -> str:
    metadata = crd.get("metadata") or {}
    annotations, labels = metadata.get("annotations") or {}, metadata.get("labels") or {}
    if RELEASE_NAME_ANNOTATION in annotations:
        return f"Helm release {annotations.get(RELEASE_NAMESPACE_ANNOTATION, '?')}/{annotations[RELEASE_NAME_ANNOTATION]}"
    return f"{MANAGED_BY_LABEL}={labels[MANAGED_BY_LABEL]}" if MANAGED_BY_LABEL in labels else "an owner outside Helm"


def _serves_v1(crd: Mapping[str, Any]) -> bool:
    return any(version.get("name") == "v1" and version.get("served", True) for version in (crd.get("spec") or {}).get("versions") or [])


def decide(cluster: str, crds: Mapping[str, Optional[Mapping[str, Any]]]) -> dict[str, bool]:
    """The linkerd-crds values for a cluster holding `crds` (plural -> CRD or None); RunError
    when no values can leave it with httproutes and grpcroutes at v1."""
    needed = {plural: crds.get(plural) for plural in NEEDED}
    foreign = {plural: crd for plural, crd in needed.items() if crd is not None and not _ours(crd)}
    if foreign and len(foreign) < len(NEEDED):
        held = ", ".join(f"{crd_name(p)} is held by {_owner(c)}" for p, c in foreign.items())
        rest = ", ".join(f"{crd_name(p)} is {'ours' if needed[p] else 'missing'}" for p in NEEDED if p not in foreign)
        raise pulumi.RunError(
            f"cluster {cluster}: {held} but {rest}; linkerd-crds installs httproutes and grpcroutes together (enableHttpRoutes) "
            "and never over another owner's CRD. Install the Gateway API CRDs in one piece yourself (v1.1.1 or later, standard "
            "channel), then run again"
        )
    if foreign:
        old = [f"{crd_name(p)} (held by {_owner(c)})" for p, c in foreign.items() if not _serves_v1(c)]
        if old:
            raise pulumi.RunError(
                f"cluster {cluster}: {', '.join(old)} does not serve v1, which Linkerd needs, and belongs to someone else, so "
                "linkerd-crds must not replace it. Upgrade the Gateway API CRDs to v1.1.1 or later (standard channel) where "
                "they were installed, then run again"
            )
    install = not foreign
    values = {"installGatewayAPI": install, "enableHttpRoutes": install}
    for switch, plural in OPTIONAL_SWITCHES.items():
        crd = crds.get(plural)
        values[switch] = _ours(crd) if crd is not None else install
    return values


def gateway_api_values(cluster: str, kubeconfig: Optional[str]) -> dict[str, bool]:
    """The linkerd-crds values for one cluster: `kubeconfig` reaches a running cluster, which is
    read; None stands for a DOKS cluster this program is about to create, which DOKS equips."""
    if kubeconfig is None:
        return dict(DOKS_MANAGED_VALUES)
    try:
        crds = read_gateway_api_crds(kubeconfig)
    except ClusterUnreadable as error:
        raise pulumi.RunError(
            f"cluster {cluster}: cannot read its Gateway API CRDs ({error}), so the program cannot tell whether linkerd-crds "
            "may install them; check that the cluster is reachable and its credentials work, then run again"
        ) from None
    return decide(cluster, crds)
