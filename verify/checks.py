"""The mesh checks: plain logic over a small read-only cluster interface.

Each check returns None when it passes, or a hint (what the failure means and what to do).
Names follow the linkerd2 charts and controllers (multicluster/charts/linkerd-multicluster,
multicluster/service-mirror): the service mirror of the Link `<to>` runs as Deployment
`controller-<to>`, probes the gateway through Service `probe-<to>` (whose Endpoints it writes
and whose result it exports as `gateway_alive`), and mirrors `<svc>` as `<svc>-<to>`.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from components.names import EXPORTED_LABEL, LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE, link_controller, mirror_name
from verify.kube import KubeError
from verify.metrics import PodReader, gateway_alive, prometheus_query
from verify.outputs import Export, Link, StackOutputs

TRUST_ROOTS_CONFIGMAP = "linkerd-identity-trust-roots"
TRUST_ROOTS_KEY = "ca-bundle.crt"
# The control-plane chart's issuer Secret for the default scheme linkerd.io/tls (templates/identity.yaml).
ISSUER_SECRET = "linkerd-identity-issuer"
ISSUER_CERT_KEY = "crt.pem"
# The service mirror labels what it creates (pkg/k8s/labels.go, MirroredResourceLabel).
MIRRORED_LABEL = "mirror.linkerd.io/mirrored-service"
# As `linkerd viz stat` (viz/cmd/stat.go, --time-window): mTLS is judged on this recent traffic.
MTLS_WINDOW = "1m"
# The certificates Linkerd's charts generate at every render (genSelfSignedCert, valid 365 days), as
# the API server holds them: the caBundle of the webhook or APIService that trusts each (edge-26.6.3:
# charts/linkerd-control-plane/templates/{proxy-injector,destination}-rbac.yaml,
# viz/charts/linkerd-viz/templates/{tap-injector,tap}-rbac.yaml). (kind, name) of each object.
MUTATING_WEBHOOK = "MutatingWebhookConfiguration"
VALIDATING_WEBHOOK = "ValidatingWebhookConfiguration"
API_SERVICE = "APIService"
CHART_CERTIFICATES = (
    (MUTATING_WEBHOOK, "linkerd-proxy-injector-webhook-config"),
    (VALIDATING_WEBHOOK, "linkerd-sp-validator-webhook-config"),
    (VALIDATING_WEBHOOK, "linkerd-policy-validator-webhook-config"),
    (MUTATING_WEBHOOK, "linkerd-tap-injector-webhook-config"),
    (API_SERVICE, "v1alpha1.tap.linkerd.io"),
)
CILIUM_CONFIGMAP = ("kube-system", "cilium-config")
CILIUM_HOSTNS_ONLY = "bpf-lb-sock-hostns-only"


class Cluster(PodReader, Protocol):
    def get_link(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_deployment(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_service(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_endpoints(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_configmap(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_secret(self, namespace: str, name: str) -> Optional[dict]: ...
    def get_cluster_object(self, kind: str, name: str) -> Optional[dict]: ...


@dataclass(frozen=True)
class Result:
    cluster: str
    link: Optional[str]
    name: str
    description: str
    ok: bool
    hint: str = ""
    # A warning names a risk that verify cannot confirm from the cluster; it does not fail the run.
    warning: bool = False


def _addresses(endpoints: Optional[dict], field: str) -> set[str]:
    return {address["ip"] for subset in (endpoints or {}).get("subsets") or [] for address in subset.get(field) or []}


def ready_addresses(endpoints: Optional[dict]) -> set[str]:
    return _addresses(endpoints, "addresses")


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
    name = link_controller(target)
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


def _check_gateway(target: str, source: str) -> str:
    return f"check that the linkerd-gateway LoadBalancer of {target} is reachable from {source} on port 4191 (firewall?) and its pod is ready"


def check_gateway_probe(cluster: Cluster, target: str) -> Optional[str]:
    name = f"probe-{target}"
    if not ready_addresses(cluster.get_endpoints(MULTICLUSTER_NAMESPACE, name)):
        return (
            f"probe Service {MULTICLUSTER_NAMESPACE}/{name} has no ready endpoints: the service mirror has not "
            f"resolved the gateway address of {target}; see the logs of deploy/controller-{target}"
        )
    alive = gateway_alive(cluster, target)
    if alive is None:
        return f"the service mirror of {target} exports no gateway_alive yet; it starts probing once it holds its lease: retry in a minute"
    if alive < 1:
        return f"gateway_alive=0: the service mirror's probes of {target}'s gateway fail; {_check_gateway(target, cluster.name)}"
    return None


def _names_an_ip(address: str) -> bool:
    """A gateway given by DNS name (clusters.<name>.gatewayAddress) is resolved by the service
    mirror, which writes the addresses it got (multicluster/service-mirror/cluster_watcher.go,
    resolveGatewayAddress): there is no one address to compare then."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def check_mirrored_service(cluster: Cluster, export: Export, gateway_address: str) -> Optional[str]:
    target = export.cluster
    mirror = mirror_name(export.service, target)
    where = f"{export.namespace}/{mirror}"
    service = cluster.get_service(export.namespace, mirror)
    if service is None:
        return (
            f"no mirror Service {where} in {cluster.name}: {export.service} is not exported from {target} "
            f"(label {EXPORTED_LABEL}=true) or the service mirror is not running"
        )
    if ((service.get("metadata") or {}).get("labels") or {}).get(MIRRORED_LABEL) != "true":
        return (
            f"{where} in {cluster.name} was not made by the service mirror (no label {MIRRORED_LABEL}=true): a local "
            f"Service with the mirror's name takes its place; rename or delete it so the mirror of {export.service} can exist"
        )
    endpoints = cluster.get_endpoints(export.namespace, mirror)
    addresses = ready_addresses(endpoints)
    if not addresses and _addresses(endpoints, "notReadyAddresses"):
        # multicluster/service-mirror/cluster_watcher.go, updateReadiness: a gateway that fails its probes
        # has the mirrors' addresses moved to notReadyAddresses.
        return f"{where}'s addresses are all not ready, as the service mirror marks them while its probes of {target}'s gateway fail; {_check_gateway(target, cluster.name)}"
    if not addresses:
        return (
            f"{where} has no endpoints: {export.service} has no ready pods in {target}, "
            "or the service mirror has not synced it yet"
        )
    if _names_an_ip(gateway_address) and addresses != {gateway_address}:
        if (service.get("spec") or {}).get("selector"):
            cause = "the Service has a selector, so Kubernetes fills its Endpoints with local pods (the service mirror never sets one): delete it and let the service mirror re-create it"
        else:
            cause = f"the service mirror writes only the Link's gateway address there and has not rewritten it: restart deploy/controller-{target}"
        return (
            f"{where} points at {sorted(addresses)} instead of {target}'s gateway {gateway_address}. This is not a stale "
            f"Link (the link check compares the Link with the gateway): {cause}"
        )
    return None


def _certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def _trust_roots(cluster: Cluster) -> list[x509.Certificate]:
    """The cluster's trust anchors; KubeError (with a hint) when they cannot be read."""
    configmap = cluster.get_configmap(LINKERD_NAMESPACE, TRUST_ROOTS_CONFIGMAP)
    bundle = ((configmap or {}).get("data") or {}).get(TRUST_ROOTS_KEY)
    if not bundle:
        raise KubeError(f"no {TRUST_ROOTS_KEY} in ConfigMap {LINKERD_NAMESPACE}/{TRUST_ROOTS_CONFIGMAP}: is Linkerd installed?")
    try:
        return _certificates(bundle)
    except ValueError:
        raise KubeError(f"{LINKERD_NAMESPACE}/{TRUST_ROOTS_CONFIGMAP} holds no parsable PEM certificate; reinstall Linkerd with `pulumi up`") from None


def _issuer(cluster: Cluster) -> x509.Certificate:
    """The cluster's issuer certificate; only `crt.pem` is decoded, the key is never touched."""
    secret = cluster.get_secret(LINKERD_NAMESPACE, ISSUER_SECRET)
    encoded = ((secret or {}).get("data") or {}).get(ISSUER_CERT_KEY)
    if not encoded:
        raise KubeError(f"no {ISSUER_CERT_KEY} in Secret {LINKERD_NAMESPACE}/{ISSUER_SECRET} on {cluster.name}: is Linkerd installed?")
    try:
        return _certificates(base64.b64decode(encoded).decode())[0]
    except ValueError:
        raise KubeError(f"{LINKERD_NAMESPACE}/{ISSUER_SECRET} on {cluster.name} holds no parsable issuer certificate; run `pulumi up`") from None


def check_trust_anchors(cluster: Cluster, expected_pem: str) -> Optional[str]:
    if set(_trust_roots(cluster)) != set(_certificates(expected_pem)):
        return (
            f"the trust anchors of {cluster.name} differ from the stack's trustAnchorPem, so mTLS across "
            "clusters fails; run `pulumi up` to give every control plane the same anchor, then restart meshed pods"
        )
    return None


def _date(certificate: x509.Certificate) -> str:
    return certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")


def _expiry(certificate: x509.Certificate, now: datetime) -> tuple[float, str]:
    """Hours until `certificate` expires, and how a hint says it: "expires <date> (N h left)", or
    "expired N h ago (<date>)" once it has."""
    hours = (certificate.not_valid_after_utc - now).total_seconds() / 3600
    return hours, f"expires {_date(certificate)} ({hours:.0f} h left)" if hours > 0 else f"expired {-hours:.0f} h ago ({_date(certificate)})"


def check_issuer_expiry(cluster: Cluster, renew_before_hours: int, now: datetime) -> Optional[str]:
    issuer = _issuer(cluster)
    left_hours, expiry = _expiry(issuer, now)
    if left_hours <= renew_before_hours:
        return (
            f"the issuer of {cluster.name} {expiry}, within "
            f"issuerRenewBeforeHours ({renew_before_hours} h): run `pulumi up` (or the deploy workflow) to renew it; "
            "the identity controller reloads a renewed issuer without restarts"
        )
    return None


def _signs(anchor: x509.Certificate, certificate: x509.Certificate) -> bool:
    """Whether `anchor` signed `certificate`: its key identifier (when both carry one), its name and
    its signature, as X.509 path building matches an issuer."""
    try:
        authority = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        subject_key = anchor.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        if authority is not None and authority != subject_key:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        certificate.verify_directly_issued_by(anchor)  # the issuer name, then the signature
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def check_anchors_outlive_issuer(cluster: Cluster) -> Optional[str]:
    """The issuer against the anchor(s) that signed it. Every other anchor of the bundle may expire
    first: in step 2 of a rotation the issuer is re-signed by the new anchor, so nothing chains to
    the old one any more, and it may well expire before the new issuer does."""
    issuer, roots = _issuer(cluster), _trust_roots(cluster)
    signers = [anchor for anchor in roots if _signs(anchor, issuer)]
    if not signers:
        return (
            f"the issuer of {cluster.name} is signed by none of its trust anchors, so the identity controller refuses it "
            "(at once, or at its next start) and no proxy trusts the certificates it issues; run `pulumi up`: the stack "
            "signs every issuer with an anchor of the bundle it deploys"
        )
    if all(anchor.not_valid_after_utc <= issuer.not_valid_after_utc for anchor in signers):
        names = ", ".join(f"{anchor.subject.rfc4514_string()} (serial {anchor.serial_number:x}, expires {_date(anchor)})" for anchor in signers)
        return (
            f"trust anchor {names}, which signs the issuer of {cluster.name}, expires before it ({_date(issuer)}), so its proxies' "
            "certificates stop being trusted first; rotate the anchor (docs/identity.md, Rotating the trust anchor)"
        )
    return None


def _ca_bundle(cluster: Cluster, kind: str, name: str) -> x509.Certificate:
    """The certificate the API server trusts for a webhook or an APIService: the chart's own
    self-signed one, in the caBundle of the (first) webhook or of the APIService's spec."""
    obj = cluster.get_cluster_object(kind, name)
    if obj is None:
        raise KubeError(f"no {kind} {name} on {cluster.name}: is Linkerd (and viz) installed? run `pulumi up`")
    holder = (obj.get("spec") or {}) if kind == API_SERVICE else ((obj.get("webhooks") or [{}])[0].get("clientConfig") or {})
    encoded = holder.get("caBundle")
    try:
        return _certificates(base64.b64decode(encoded or "").decode())[0]
    except (ValueError, IndexError):
        raise KubeError(f"the {kind} {name} on {cluster.name} holds no parsable caBundle; run `pulumi up`") from None


def check_chart_certificates(cluster: Cluster, renew_before_hours: int, now: datetime) -> Optional[str]:
    """Linkerd's charts make these certificates, valid 365 days, at every render, and nothing else
    renews them (Linkerd docs, rotating webhooks certificates: only an upgrade does);
    the program re-renders the charts at each renewal period, with the issuers."""
    near = []
    for kind, name in CHART_CERTIFICATES:
        certificate = _ca_bundle(cluster, kind, name)
        left_hours, expiry = _expiry(certificate, now)
        if left_hours <= renew_before_hours:
            near.append(f"{kind} {name} {expiry}")
    if near:
        return (
            f"on {cluster.name}, the certificate Linkerd's chart generated for {'; for '.join(near)}, within issuerRenewBeforeHours "
            f"({renew_before_hours} h): run `pulumi up` (or the deploy workflow); each renewal period renders the charts "
            "again, with new ones. Once lapsed, a webhook fails (new pods start unmeshed, or are refused where it fails "
            "closed) and the tap APIService fails API discovery, which hangs namespace deletion"
        )
    return None


def runs_cilium(cluster: Cluster) -> bool:
    """Cilium keeps its agent's settings in this ConfigMap (its Helm chart's cilium-configmap.yaml):
    a cluster without it (k3s' flannel, kind's kindnet) runs no Cilium to warn about. A cluster
    that cannot be read counts as running it, so that its check reports the failure."""
    try:
        return cluster.get_configmap(*CILIUM_CONFIGMAP) is not None
    except KubeError:
        return True


def check_cilium_socket_lb(cluster: Cluster) -> Optional[str]:
    namespace, name = CILIUM_CONFIGMAP
    configmap = cluster.get_configmap(namespace, name)
    if configmap is None:
        return None  # no Cilium (see runs_cilium)
    value = (configmap.get("data") or {}).get(CILIUM_HOSTNS_ONLY)
    if value == "true":
        return None
    if value is None:
        found = f"{namespace}/{name} does not set {CILIUM_HOSTNS_ONLY}, so Cilium's default (false) applies"
    else:
        found = f"{namespace}/{name} sets {CILIUM_HOSTNS_ONLY}={value!r}"
    return (
        f"{found}: where Cilium's socket-level load balancing acts in pod namespaces, it rewrites a connect to a mirror's "
        "ClusterIP into the remote gateway's address before the Linkerd proxy sees it, so cross-cluster calls skip the "
        f"proxy and fail. If the mtls check fails too, set Cilium's socketLB.hostNamespaceOnly ({CILIUM_HOSTNS_ONLY}: "
        "\"true\") and restart the cilium agents (Linkerd docs: cluster configuration, eBPF CNIs; cilium/cilium#16583)"
    )


def mtls_query(export: Export) -> str:
    authority = f"{mirror_name(export.service, export.cluster)}\\\\.{export.namespace}\\\\.svc\\\\..*"
    return f'sum(increase(response_total{{direction="outbound", authority=~"{authority}"}}[{MTLS_WINDOW}])) by (tls)'


def check_mtls(cluster: Cluster, export: Export) -> Optional[str]:
    by_tls = {series["metric"].get("tls", ""): float(series["value"][1]) for series in prometheus_query(cluster, mtls_query(export))}
    where = f"{export.namespace}/{mirror_name(export.service, export.cluster)}"
    plaintext = sorted(tls or "<none>" for tls, count in by_tls.items() if tls != "true" and count > 0)
    if plaintext:
        return (
            f"responses from {where} with tls={', '.join(plaintext)} in the last {MTLS_WINDOW}: some traffic crossed "
            "clusters without mTLS; mesh the clients (linkerd.io/inject: enabled) and check the service mirror sets the gateway identity"
        )
    if by_tls.get("true", 0) <= 0:
        return (
            f"no outbound traffic to {where} in the last {MTLS_WINDOW} in the Prometheus of {cluster.name}, so mTLS cannot be "
            "confirmed; send some traffic (the demo's vote-bot does) and retry"
        )
    return None


def _result(cluster: Cluster, link: Optional[Link], name: str, description: str, check: Callable[[], Optional[str]], warning: bool = False) -> Result:
    # Runs the check now, so the closures passed in may use loop variables.
    try:
        hint = check()
    except KubeError as err:
        hint, warning = str(err), False  # a cluster that cannot answer is a failure, never a warning
    return Result(cluster.name, None if link is None else str(link), name, description, hint is None, hint or "", warning and hint is not None)


def run_checks(outputs: StackOutputs, clusters: Mapping[str, Cluster], now: Optional[datetime] = None) -> list[Result]:
    """All checks: per link in its source cluster, then identity in every cluster, and Cilium's
    socket load balancing in every cluster that runs Cilium."""
    now = now or datetime.now(timezone.utc)
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
    renew = outputs.issuer_renew_before_hours
    for name in outputs.kubeconfigs:
        cluster = clusters[name]
        results.append(_result(cluster, None, "trust-anchors", f"trust anchors of {name} match the stack's trust anchor", lambda: check_trust_anchors(cluster, outputs.trust_anchor_pem)))
        results.append(_result(cluster, None, "issuer-expiry", f"issuer of {name} has more than {renew} h left", lambda: check_issuer_expiry(cluster, renew, now)))
        results.append(_result(cluster, None, "anchor-expiry", f"the trust anchor that signs the issuer of {name} outlives it", lambda: check_anchors_outlive_issuer(cluster)))
        results.append(_result(cluster, None, "chart-certificates", f"webhook and APIService certificates of {name} have more than {renew} h left", lambda: check_chart_certificates(cluster, renew, now)))
        if runs_cilium(cluster):
            results.append(_result(cluster, None, "cilium-socket-lb", f"Cilium's socket load balancing of {name} leaves pod traffic to the Linkerd proxy", lambda: check_cilium_socket_lb(cluster), warning=True))
    return results
