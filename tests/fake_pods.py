"""The pods of every cluster across several `pulumi up`s: which pods each up restarts, which trust
roots each identity controller and each proxy holds, and which issuer signed each proxy's
certificate. Fed, after each run, with what the fake Kubernetes clusters hold (tests/fake_kubernetes.py).

What it models, from Linkerd edge-26.6.3 and Kubernetes:
- A Deployment replaces its pods when its pod template changes, and only then. The pod templates
  of each chart, and the values that reach their annotations, are in `_chart_pod_annotations`.
- Helm renders a release again only when an `up` changes the release (pulumi-kubernetes has no
  diff otherwise).
- Linkerd hands the trust roots to a pod once, when it starts (see `Proxy`, `IdentityController`).
- A proxy gets its certificate from its cluster's identity controller when it starts, and renews
  it from the then current issuer within the certificate's lifetime of 24 h
  (charts/linkerd-control-plane/values.yaml, identity.issuer.issuanceLifetime).

Workloads are named `<namespace>/<deployment>`; workloads the program does not manage (a team's
meshed apps) are added with `add_workload` and restart only with `rollout_restart`.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tests.fake_kubernetes import FakeCluster, FakeKubernetes
from tests.harness import unwrap

CONTROL_PLANE = "linkerd-control-plane"
IDENTITY = "linkerd/linkerd-identity"
# checksum/config of an RBAC template that generates a new webhook certificate (genSelfSignedCert)
# on every render: charts/linkerd-control-plane/templates/{destination,proxy-injector}.yaml and
# viz/charts/linkerd-viz/templates/{tap,tap-injector}.yaml. (metrics-api.yaml hashes
# metrics-api-rbac.yaml too, which generates nothing: the same on every render.)
WEBHOOK_CHECKSUM = "checksum/config"


class IdentityCrashLoop(Exception):
    """controller/cmd/identity/main.go exits (log.Fatalf) when the issuer it starts with does not
    chain to the roots; its Deployment never becomes ready and the atomic release rolls back."""


def _get(values: dict, path: str) -> Any:
    for key in path.split("."):
        values = values.get(key) if isinstance(values, dict) else None
    return values


def _annotations(values: dict, *paths: str, webhook_render: Optional[int] = None) -> dict[str, str]:
    merged: dict[str, str] = {} if webhook_render is None else {WEBHOOK_CHECKSUM: f"render-{webhook_render}"}
    for path in paths:
        merged.update(_get(values, path) or {})
    return merged


def _chart_pod_annotations(chart: str, values: dict, render: int) -> dict[str, dict[str, str]]:
    """The annotations of each Deployment's pod template that the chart renders from `values`."""
    if chart == CONTROL_PLANE:
        # charts/linkerd-control-plane/templates/{identity,destination,proxy-injector}.yaml; the
        # injector merges identity.podAnnotations, not its own, as the template does. (The
        # heartbeat CronJob starts a new pod per run; it has nothing to restart.)
        return {
            IDENTITY: _annotations(values, "podAnnotations", "identity.podAnnotations"),
            "linkerd/linkerd-destination": _annotations(values, "podAnnotations", "destinationController.podAnnotations", webhook_render=render),
            "linkerd/linkerd-proxy-injector": _annotations(values, "podAnnotations", "identity.podAnnotations", webhook_render=render),
        }
    if chart == "linkerd-viz":
        # viz/charts/linkerd-viz/templates/*.yaml: every pod template reads the top-level
        # podAnnotations, although values.yaml does not declare it.
        return {
            "linkerd-viz/metrics-api": _annotations(values, "podAnnotations"),
            "linkerd-viz/tap": _annotations(values, "podAnnotations", webhook_render=render),
            "linkerd-viz/tap-injector": _annotations(values, "podAnnotations", webhook_render=render),
            "linkerd-viz/web": _annotations(values, "podAnnotations"),
            "linkerd-viz/prometheus": _annotations(values, "podAnnotations", "prometheus.podAnnotations"),
        }
    if chart == "linkerd-multicluster":
        # multicluster/charts/linkerd-multicluster/templates/: controller/deployment.yaml (one per
        # `controllers` entry) and local-service-mirror.yaml read podAnnotations; gateway.yaml
        # reads gateway.deploymentAnnotations only.
        pods = {"linkerd-multicluster/linkerd-local-service-mirror": _annotations(values, "podAnnotations")}
        for controller in values.get("controllers") or []:
            pods[f"linkerd-multicluster/controller-{controller['link']['ref']['name']}"] = _annotations(values, "podAnnotations")
        if (values.get("gateway") or {}).get("enabled", True):
            pods["linkerd-multicluster/linkerd-gateway"] = _annotations(values, "gateway.deploymentAnnotations")
        return pods
    return {}  # linkerd-crds: no pods


def chains(issuer: x509.Certificate, roots: tuple[x509.Certificate, ...]) -> bool:
    """Whether `issuer` was signed by one of `roots`: a real signature check, as x509 verification does."""
    return any(_signed_by(issuer, root) for root in roots)


@functools.lru_cache(maxsize=None)
def _signed_by(issuer: x509.Certificate, root: x509.Certificate) -> bool:
    try:
        issuer.verify_directly_issued_by(root)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


@dataclass
class Proxy:
    # LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS, set when the pod starts: from the
    # linkerd-identity-trust-roots ConfigMap for the control plane's own pods, as the literal
    # bundle the injector read from that ConfigMap for every other pod
    # (charts/partials/templates/_proxy.tpl, controller/proxy-injector/webhook.go). An env var
    # never changes in a running container.
    roots: tuple[x509.Certificate, ...]
    # The issuer that signed this proxy's current certificate.
    certificate_issuer: x509.Certificate


@dataclass
class IdentityController:
    # Read once, at start (controller/cmd/identity/main.go).
    roots: tuple[x509.Certificate, ...]
    issuer: x509.Certificate
    # Issuers it was handed but refused (pkg/identity/service.go: "Skipping issuer update").
    skipped: list[x509.Certificate] = field(default_factory=list)

    def issuer_files_changed(self, issuer: x509.Certificate) -> None:
        """pkg/identity/service.go: the fs watcher reloads the issuer; one that does not verify
        against the roots read at start is skipped and the old one stays in use."""
        if issuer == self.issuer:
            return
        if chains(issuer, self.roots):
            self.issuer = issuer
        else:
            self.skipped.append(issuer)


@dataclass
class ClusterPods:
    releases: dict[str, str] = field(default_factory=dict)  # release -> its inputs at the last render
    renders: int = 0
    rendered: dict[str, dict[str, dict]] = field(default_factory=dict)  # release -> workload -> pod annotations
    templates: dict[str, dict] = field(default_factory=dict)  # every workload the program runs -> pod annotations
    proxies: dict[str, Proxy] = field(default_factory=dict)  # every meshed workload, the program's or not
    identity: Optional[IdentityController] = None
    # What the control plane's values hold now: the roots ConfigMap and the issuer Secret.
    bundle: tuple[x509.Certificate, ...] = ()
    issuer: Optional[x509.Certificate] = None


class FakePods:
    def __init__(self):
        self.clusters: dict[str, ClusterPods] = {}

    def fork(self) -> FakePods:
        """An independent copy, to try two courses of action from the same state."""
        forked = FakePods()
        forked.clusters = copy.deepcopy(self.clusters)
        return forked

    def deploy(self, kubernetes: FakeKubernetes) -> dict[str, set[str]]:
        """Apply what one `pulumi up` left in each cluster; returns the workloads (re)started, per cluster."""
        return {cluster.short: self._deploy_cluster(cluster) for cluster in kubernetes.clusters.values()}

    def _deploy_cluster(self, cluster: FakeCluster) -> set[str]:
        state = self.clusters.setdefault(cluster.short, ClusterPods())
        releases = cluster.releases()
        for release, inputs in releases.items():
            canonical = json.dumps(unwrap(inputs), sort_keys=True)
            if canonical == state.releases.get(release):
                continue  # no change, no upgrade: Helm renders nothing
            state.releases[release] = canonical
            state.renders += 1
            values = unwrap(inputs.get("values") or {})
            state.rendered[release] = _chart_pod_annotations(release, values, state.renders)
            if release == CONTROL_PLANE:
                state.bundle = tuple(x509.load_pem_x509_certificates(values["identityTrustAnchorsPEM"].encode()))
                state.issuer = x509.load_pem_x509_certificate(values["identity"]["issuer"]["tls"]["crtPEM"].encode())
        templates = {workload: annotations for release in releases for workload, annotations in state.rendered[release].items()}
        for (kind, namespace, name), obj in cluster.objects.items():
            if kind == "Deployment":
                templates[f"{namespace}/{name}"] = (unwrap(obj)["spec"]["template"].get("metadata") or {}).get("annotations") or {}
        started = {workload for workload, annotations in templates.items() if state.templates.get(workload) != annotations}
        for workload in set(state.templates) - set(templates):
            del state.proxies[workload]
        state.templates = templates
        if IDENTITY not in started:
            state.identity.issuer_files_changed(state.issuer)
        # Identity first: every other proxy asks it for a certificate.
        for workload in sorted(started, key=lambda w: w != IDENTITY):
            self._start(state, workload)
        return started

    @staticmethod
    def _start(state: ClusterPods, workload: str) -> None:
        """New pods of `workload`, with the roots ConfigMap and the issuer Secret as they are now.

        The injector reads the roots file for every pod it injects (controller/proxy-injector/
        webhook.go), and its own pods restart with every upgrade of the control plane, which
        every other release waits for: a pod started after an `up` gets the current ConfigMap."""
        if workload == IDENTITY:
            # controller/cmd/identity/main.go: roots read at start; Initialize fails on an issuer
            # that does not chain to them (pkg/identity/service.go) and the process exits.
            if not chains(state.issuer, state.bundle):
                raise IdentityCrashLoop("the issuer does not chain to the trust roots")
            state.identity = IdentityController(roots=state.bundle, issuer=state.issuer)
        state.proxies[workload] = Proxy(roots=state.bundle, certificate_issuer=state.identity.issuer)

    def add_workload(self, cluster: str, workload: str) -> None:
        """A meshed workload that the program does not manage (a team's app), injected now."""
        self._start(self.clusters[cluster], workload)

    def rollout_restart(self, cluster: str, workload: str) -> None:
        """`kubectl rollout restart`, or a node drain that moves the pods."""
        self._start(self.clusters[cluster], workload)

    def renew_certificates(self) -> None:
        """A day passes: every proxy has renewed its certificate from its identity controller."""
        for state in self.clusters.values():
            for proxy in state.proxies.values():
                proxy.certificate_issuer = state.identity.issuer

    def proxies(self) -> dict[tuple[str, str], Proxy]:
        return {(cluster, workload): proxy for cluster, state in self.clusters.items() for workload, proxy in state.proxies.items()}


def refused_connections(proxies: dict[Any, Proxy]) -> list[tuple[Any, Any]]:
    """(client, server) pairs where the client's proxy rejects the server's certificate: it does
    not chain to any root the client holds (mTLS checks both ways, so both orders are tried)."""
    return [(client, server) for client, c in proxies.items() for server, s in proxies.items() if not chains(s.certificate_issuer, c.roots)]
