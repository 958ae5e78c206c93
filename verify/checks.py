"""The mesh checks: plain logic over a small read-only cluster interface.

Each check returns None when it passes, or a hint (what the failure means and what to do).
Names follow the linkerd2 charts and controllers (multicluster/charts/linkerd-multicluster,
multicluster/service-mirror): the service mirror of the Link `<to>` runs as Deployment
`controller-<to>`, probes the gateway through Service `probe-<to>` (whose Endpoints it writes
and whose result it exports as `gateway_alive`), and mirrors `<svc>` as `<svc>-<to>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol

from cryptography import x509

from components.names import EXPORTED_LABEL, LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE, mirror_name
from verify.kube import KubeError
from verify.outputs import Export, Link, StackOutputs

TRUST_ROOTS_CONFIGMAP = "linkerd-identity-trust-roots"
TRUST_ROOTS_KEY = "ca-bundle.crt"


class Cluster(Protocol):
    name: str

    def get_link(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_deployment(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_service(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_endpoints(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_configmap(self, namespace: str, name: str) -> Optional[dict]: ...
    def prometheus_query(self, query: str) -> list[dict]: ...


@dataclass(frozen=True)
class Result:
    cluster: str
    link: Optional[str]
    name: str
    description: str
    ok: bool
    hint: str = ""


def ready_addresses(endpoints: Optional[dict]) -> set[str]:
    return {address["ip"] for subset in (endpoints or {}).get("subsets") or [] for address in subset.get("addresses") or []}


def check_link(cluster: Cluster, target: str, gateway_address: str) -> Optional[str]:
    link = cluster.get_link(MULTICLUSTER_NAMESPACE, target)
    if link is None:
        return (
            f"no Link {target!r} in {MULTICLUSTER_NAMESPACE} on {cluster.name}, so nothing from {target} is mirrored; "
            "run `pulumi up` again (the stack creates one Link per configured link)"
        )
    actual = (link.get("spec") or {}).get("gatewayAddress")
    if actual != gateway_address:
        return (
            f"Link {target!r} sends traffic to gateway {actual!r} but {target}'s gateway is {gateway_address!r}; "
            "the Link is stale (gateway Service re-created?): run `pulumi up` to regenerate it"
        )
    return None


def check_mirror_controller(cluster: Cluster, target: str) -> Optional[str]:
    name = f"controller-{target}"
    deployment = cluster.get_deployment(MULTICLUSTER_NAMESPACE, name)
    if deployment is None:
        return (
            f"no Deployment {MULTICLUSTER_NAMESPACE}/{name}: {target!r} is missing from the linkerd-multicluster "
            "chart's `controllers` value; run `pulumi up` again"
        )
    if ((deployment.get("status") or {}).get("availableReplicas") or 0) < 1:
        return (
            f"{MULTICLUSTER_NAMESPACE}/{name} has no available replica, so services of {target} are not mirrored; "
            f"see `kubectl -n {MULTICLUSTER_NAMESPACE} describe deploy/{name}` and its logs "
            f"(wrong credentials for {target}?)"
        )
    return None


def check_gateway_probe(cluster: Cluster, target: str) -> Optional[str]:
    name = f"probe-{target}"
    if not ready_addresses(cluster.get_endpoints(MULTICLUSTER_NAMESPACE, name)):
        return (
            f"probe Service {MULTICLUSTER_NAMESPACE}/{name} has no ready endpoints: the service mirror has not "
            f"resolved the gateway address of {target}; see the logs of deploy/controller-{target}"
        )
    alive = cluster.prometheus_query(f'max(gateway_alive{{target_cluster_name="{target}"}})')
    if not alive:
        return (
            f"no gateway_alive metric for {target} in the Prometheus of {cluster.name} yet; "
            "wait a minute for linkerd-viz to scrape the service mirror and retry"
        )
    if float(alive[0]["value"][1]) < 1:
        return (
            f"the service mirror's probes of {target}'s gateway fail (gateway_alive=0); check that the "
            f"linkerd-gateway LoadBalancer of {target} is reachable from {cluster.name} on port 4191 (firewall?) "
            "and its pod is ready"
        )
    return None


def check_mirrored_service(cluster: Cluster, export: Export, gateway_address: str) -> Optional[str]:
    mirror = mirror_name(export.service, export.cluster)
    where = f"{export.namespace}/{mirror}"
    if cluster.get_service(export.namespace, mirror) is None:
        return (
            f"no mirror Service {where} in {cluster.name}: {export.service} is not exported from {export.cluster} "
            f"(label {EXPORTED_LABEL}=true) or the service mirror is not running"
        )
    addresses = ready_addresses(cluster.get_endpoints(export.namespace, mirror))
    if not addresses:
        return (
            f"{where} has no endpoints: {export.service} has no ready pods in {export.cluster}, "
            "or the service mirror has not synced it yet"
        )
    if addresses != {gateway_address}:
        return (
            f"{where} points at {sorted(addresses)} instead of {export.cluster}'s gateway {gateway_address}; "
            "the Link's gateway address is stale: run `pulumi up` to regenerate it"
        )
    return None


def _anchors(pem: str) -> set[x509.Certificate]:
    return set(x509.load_pem_x509_certificates(pem.encode()))


def check_trust_anchors(cluster: Cluster, expected_pem: str) -> Optional[str]:
    configmap = cluster.get_configmap(LINKERD_NAMESPACE, TRUST_ROOTS_CONFIGMAP)
    bundle = ((configmap or {}).get("data") or {}).get(TRUST_ROOTS_KEY)
    if not bundle:
        return f"no {TRUST_ROOTS_KEY} in ConfigMap {LINKERD_NAMESPACE}/{TRUST_ROOTS_CONFIGMAP}: is Linkerd installed?"
    try:
        actual = _anchors(bundle)
    except ValueError:
        return f"{LINKERD_NAMESPACE}/{TRUST_ROOTS_CONFIGMAP} holds no parsable PEM certificate; reinstall Linkerd with `pulumi up`"
    if actual != _anchors(expected_pem):
        return (
            f"the trust anchors of {cluster.name} differ from the stack's trustAnchorPem, so mTLS across "
            "clusters fails; run `pulumi up` to give every control plane the same anchor, then restart meshed pods"
        )
    return None


def mtls_query(export: Export) -> str:
    authority = f"{mirror_name(export.service, export.cluster)}\\\\.{export.namespace}\\\\.svc.*"
    return f'sum by (tls) (response_total{{direction="outbound", authority=~"{authority}"}})'


def check_mtls(cluster: Cluster, export: Export) -> Optional[str]:
    by_tls = {series["metric"].get("tls", ""): float(series["value"][1]) for series in cluster.prometheus_query(mtls_query(export))}
    where = f"{export.namespace}/{mirror_name(export.service, export.cluster)}"
    plaintext = sorted(tls or "<none>" for tls, count in by_tls.items() if tls != "true" and count > 0)
    if plaintext:
        return (
            f"responses from {where} with tls={', '.join(plaintext)}: some traffic crossed clusters without mTLS; "
            "mesh the clients (linkerd.io/inject: enabled) and check the service mirror sets the gateway identity"
        )
    if by_tls.get("true", 0) <= 0:
        return (
            f"no outbound traffic to {where} in the Prometheus of {cluster.name}, so mTLS cannot be confirmed; "
            "send some traffic (the demo's vote-bot does) and retry"
        )
    return None


def _result(cluster: Cluster, link: Optional[Link], name: str, description: str, check: Callable[[], Optional[str]]) -> Result:
    # Runs the check now, so the closures passed in may use loop variables.
    try:
        hint = check()
    except KubeError as err:
        hint = f"{err}; check that the kubeconfig in the stack outputs is current and the cluster is up"
    return Result(cluster.name, None if link is None else str(link), name, description, hint is None, hint or "")


def run_checks(outputs: StackOutputs, clusters: Mapping[str, Cluster]) -> list[Result]:
    """All checks: per link in its source cluster, then trust anchors in every cluster."""
    results = []
    for link in outputs.links:
        source, target = clusters[link.source], link.target
        gateway = outputs.gateway_addresses[target]
        results.append(_result(source, link, "link", f"Link {target} exists and targets the gateway of {target}", lambda: check_link(source, target, gateway)))
        results.append(_result(source, link, "mirror-controller", f"service mirror controller for {target} is running", lambda: check_mirror_controller(source, target)))
        results.append(_result(source, link, "gateway-probe", f"probe service able to communicate with the gateway of {target}", lambda: check_gateway_probe(source, target)))
        for export in outputs.exports_of(target):
            if export.mode != "gateway":
                continue  # remote-discovery mirrors have no endpoints of their own: nothing to compare.
            mirror = f"{export.namespace}/{mirror_name(export.service, target)}"
            results.append(_result(source, link, "mirrored-service", f"mirror service {mirror} has the gateway of {target} as endpoints", lambda: check_mirrored_service(source, export, gateway)))
            results.append(_result(source, link, "mtls", f"traffic to {mirror} is mTLS", lambda: check_mtls(source, export)))
    for name in outputs.kubeconfigs:
        cluster = clusters[name]
        results.append(_result(cluster, None, "trust-anchors", f"trust anchors of {name} match the stack's trust anchor", lambda: check_trust_anchors(cluster, outputs.trust_anchor_pem)))
    return results
