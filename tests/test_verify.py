"""`python -m verify` against two fake API servers (west links to east, east exports web-svc)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import textwrap
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from components.kubeconfigs import exec_kubeconfig
from tests.certificates import new_ca, pem, self_signed_ca
from tests.fake_charts import GENERATED, certificate_objects, gen_self_signed_cert
from tests.fake_kube_api import FakeKubeAPI, SilentServer, apps_path, closed_port_kubeconfig, core_path, link_path
from tests.fake_prometheus import FakePrometheus
from verify import kube
from verify.__main__ import main
from verify.dashboard import main as dashboard_main

GATEWAY = "203.0.113.10"
MC = "linkerd-multicluster"
VIZ = "linkerd-viz"
MIRROR_POD = "controller-east-5d8f7c9b6-x2x9q"
PROMETHEUS_POD = "prometheus-7d9c8b5f4-abcde"
RENEW_BEFORE_HOURS = 1440

ANCHOR_CA = new_ca("root.linkerd.cluster.local", days=3650)
ANCHOR = ANCHOR_CA.cert
OTHER_ANCHOR = self_signed_ca("root.linkerd.cluster.local", days=3650)
ISSUER = new_ca("identity.linkerd.cluster.local", days=365, signed_by=ANCHOR_CA).cert
ISSUER_OF_OTHER_ANCHOR = new_ca("identity.linkerd.cluster.local", days=365, signed_by=new_ca("root.linkerd.cluster.local", days=3650)).cert
# A mesh's checks judge the last minute of traffic; viz's Prometheus scrapes every 10 s.
WINDOW_SCRAPES = 7


def put_trust_roots(api: FakeKubeAPI, bundle: str) -> None:
    api.put_configmap("linkerd", "linkerd-identity-trust-roots", {"ca-bundle.crt": bundle})


def put_issuer(api: FakeKubeAPI, certificate_pem: str) -> None:
    # The chart's Secret for scheme linkerd.io/tls (charts/linkerd-control-plane/templates/identity.yaml);
    # the key is deliberately no key at all: verify must never parse it.
    api.put_secret("linkerd", "linkerd-identity-issuer", {"crt.pem": certificate_pem, "key.pem": "not parsed by verify"})


def issuer_signed_by(anchor=ANCHOR_CA, days: float = 365, now: dt.datetime | None = None) -> str:
    return pem(new_ca("identity.linkerd.cluster.local", days=days, signed_by=anchor, now=now).cert)


def put_chart_certificates(api: FakeKubeAPI, days: float = 365, only: str | None = None, days_ago: float = 0) -> None:
    """The webhook and APIService certificates a render of the control-plane and viz charts makes
    (tests/fake_charts.py), `days_ago`, valid `days`; `only` one of them (by object name)."""
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)
    for namespace, secret, service, kind, name in GENERATED["linkerd-control-plane"] + GENERATED["linkerd-viz"]:
        if only in (None, name):
            for path, obj in certificate_objects(namespace, secret, service, kind, name, gen_self_signed_cert(f"{service}.{namespace}.svc", now, days)).items():
                api.put(path, obj)


def put_cilium_config(api: FakeKubeAPI, **data: str) -> None:
    api.put_configmap("kube-system", "cilium-config", {"kube-proxy-replacement": "true", **data})


def service_mirror_metrics(state: dict[str, str]) -> Callable[[str], tuple[int, str, bytes]]:
    """The service mirror's admin server: `gateway_alive` per target (multicluster/service-mirror/metrics.go)."""

    def serve(path: str) -> tuple[int, str, bytes]:
        if path != "/metrics":
            return 404, "text/plain", b"404 page not found"
        lines = ["# HELP gateway_alive A gauge which is 1 if the gateway is alive and 0 if it is not.", "# TYPE gateway_alive gauge"]
        lines += [f'gateway_alive{{target_cluster_name="{target}"}} {value}' for target, value in state.items()]
        return 200, "text/plain; version=0.0.4", ("\n".join(lines) + "\n").encode()

    return serve


def put_service_mirror(api: FakeKubeAPI, alive: dict[str, str]) -> None:
    # Labels and port from multicluster/charts/linkerd-multicluster/templates/controller/deployment.yaml.
    api.put_pod(
        MC,
        MIRROR_POD,
        {"linkerd.io/extension": "multicluster", "component": "controller", "mirror.linkerd.io/cluster-name": "east"},
        {"controller": [("ctrl-admin", 9999)], "linkerd-proxy": [("linkerd-admin", 4191)]},
        listeners={9999: service_mirror_metrics(alive)},
    )
    # Only the lease holder probes (multicluster/cmd/service-mirror/main.go).
    api.put_lease(MC, "service-mirror-write-east", MIRROR_POD)


def put_prometheus(api: FakeKubeAPI, prometheus: FakePrometheus) -> None:
    # Labels and port from viz/charts/linkerd-viz/templates/prometheus.yaml.
    labels = {"linkerd.io/extension": "viz", "component": "prometheus", "namespace": VIZ}
    api.put_pod(VIZ, PROMETHEUS_POD, labels, {"prometheus": [("admin", 9090)]}, listeners={9090: prometheus.handle})
    # Its neighbours, listed before it by name: viz's metrics-api (templates/metrics-api.yaml), and an
    # evicted Prometheus pod, which stays listed with phase Failed until it is deleted.
    api.put_pod(VIZ, "metrics-api-6c5f8d7b9-qwert", {"linkerd.io/extension": "viz", "component": "metrics-api"}, {"metrics-api": [("http", 8085), ("admin-http", 9995)]})
    api.put_pod(VIZ, "prometheus-7d9c8b5f4-7evic", labels, {"prometheus": [("admin", 9090)]}, phase="Failed")


def traffic(prometheus: FakePrometheus, tls: str, scrapes: int = WINDOW_SCRAPES, per_scrape: int = 20, mirror: str = "web-svc-east", namespace: str = "emojivoto", direction: str = "outbound") -> None:
    """The vote-bot's calls to a mirror, as its proxy counts them: `response_total` growing every scrape."""
    labels = {"__name__": "response_total", "direction": direction, "authority": f"{mirror}.{namespace}.svc.cluster.local:80", "namespace": "emojivoto", "pod": "vote-bot-6d5b9c-zx8kq"}
    if tls:
        labels["tls"] = tls
    prometheus.scrape(labels, [100 + per_scrape * i for i in range(scrapes)])


@dataclass
class Mesh:
    west: FakeKubeAPI
    east: FakeKubeAPI
    prometheus: FakePrometheus
    gateway_alive: dict[str, str]
    outputs_file: Path

    def run(self, *args: str) -> tuple[int, str]:
        return run_cli(self.outputs_file, *args)

    def run_json(self) -> tuple[int, dict]:
        code, out = self.run("--json")
        return code, json.loads(out)

    def edit_outputs(self, **changes: object) -> None:
        raw = json.loads(self.outputs_file.read_text())
        raw.update(changes)
        self.outputs_file.write_text(json.dumps(raw))


def run_cli(outputs_file: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--outputs", str(outputs_file), *args])
    return code, out.getvalue()


def healthy(west: FakeKubeAPI, east: FakeKubeAPI, prometheus: FakePrometheus, gateway_alive: dict[str, str]) -> None:
    west.put_link("east", GATEWAY)
    west.put_deployment(MC, "controller-east")
    put_service_mirror(west, gateway_alive)
    west.put_service(MC, "probe-east", cluster_ip="10.245.0.40", ports=[("mc-probe", 4191)])
    west.put_endpoints(MC, "probe-east", [GATEWAY], port=4191, port_name="mc-probe")
    # The service mirror labels its mirrors (multicluster/service-mirror/cluster_watcher.go, pkg/k8s/labels.go).
    west.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.12", labels={"mirror.linkerd.io/mirrored-service": "true", "mirror.linkerd.io/cluster-name": "east"})
    west.put_endpoints("emojivoto", "web-svc-east", [GATEWAY], port=4143)
    put_prometheus(west, prometheus)
    traffic(prometheus, "true")
    for api in (west, east):
        put_trust_roots(api, pem(ANCHOR))
        put_issuer(api, pem(ISSUER))
        put_chart_certificates(api)
        put_cilium_config(api, **{"bpf-lb-sock-hostns-only": "true"})


def outputs(west_kubeconfig: str, east_kubeconfig: str) -> dict:
    return {
        "kubeconfigs": {"west": west_kubeconfig, "east": east_kubeconfig},
        "gatewayAddresses": {"east": GATEWAY},
        "links": [{"from": "west", "to": "east"}],
        "exports": [{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "gateway"}],
        "mirroredServices": {"west": [{"name": "emojivoto/web-svc-east", "target": "east", "clusterIP": "10.245.0.12", "endpoints": [GATEWAY]}]},
        "trustAnchorPem": pem(ANCHOR),
        "issuerRenewBeforeHours": RENEW_BEFORE_HOURS,
    }


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    with FakeKubeAPI("west") as west, FakeKubeAPI("east") as east:
        prometheus, gateway_alive = FakePrometheus(), {"east": "1"}
        healthy(west, east, prometheus, gateway_alive)
        outputs_file = tmp_path / "outputs.json"
        outputs_file.write_text(json.dumps(outputs(west.kubeconfig(), east.kubeconfig())))
        yield Mesh(west, east, prometheus, gateway_alive, outputs_file)


def failing(report: dict) -> set[tuple[str, str]]:
    return {(check["cluster"], check["name"]) for check in report["checks"] if not check["ok"]}


def hints(report: dict) -> dict[tuple[str, str], str]:
    return {(check["cluster"], check["name"]): check["hint"] for check in report["checks"] if not check["ok"]}


LINK_CHECKS = ["link", "mirror-controller", "gateway-probe", "mirrored-service", "mtls"]
CLUSTER_CHECKS = ["trust-anchors", "issuer-expiry", "anchor-expiry", "chart-certificates", "cilium-socket-lb"]


def test_a_healthy_mesh_passes_every_check_with_the_default_viz_policies(mesh: Mesh) -> None:
    code, out = mesh.run()
    assert code == 0, out
    assert "×" not in out and "‼" not in out
    assert sum(line.startswith("√ ") for line in out.splitlines()) == len(LINK_CHECKS) + 2 * len(CLUSTER_CHECKS)
    assert out.rstrip().endswith("Status check results are √")


def test_json_lists_every_check_with_its_cluster_and_link(mesh: Mesh) -> None:
    code, report = mesh.run_json()
    assert code == 0 and report["ok"] is True
    assert [(c["cluster"], c["link"], c["name"], c["ok"], c["hint"]) for c in report["checks"]] == [
        *[("west", "west->east", name, True, "") for name in LINK_CHECKS],
        *[("west", None, name, True, "") for name in CLUSTER_CHECKS],
        *[("east", None, name, True, "") for name in CLUSTER_CHECKS],
    ]


def test_metrics_are_read_through_port_forwards_never_the_api_servers_proxy(mesh: Mesh) -> None:
    assert mesh.run()[0] == 0
    assert not [request for request in mesh.west.requests if "/proxy" in request]
    forwards = sorted(request for request in mesh.west.requests if "/portforward" in request)
    assert forwards == [f"/api/v1/namespaces/{MC}/pods/{MIRROR_POD}/portforward?ports=9999", f"/api/v1/namespaces/{VIZ}/pods/{PROMETHEUS_POD}/portforward?ports=9090"]


def test_gateway_alive_is_read_from_the_service_mirror_that_holds_the_lease(mesh: Mesh) -> None:
    # With two replicas only the lease holder probes; the other exports no gateway_alive (multicluster/cmd/service-mirror/main.go).
    standby = "controller-east-5d8f7c9b6-aaaaa"  # listed first by name
    labels = {"linkerd.io/extension": "multicluster", "component": "controller", "mirror.linkerd.io/cluster-name": "east"}
    mesh.west.put_pod(MC, standby, labels, {"controller": [("ctrl-admin", 9999)]}, listeners={9999: service_mirror_metrics({})})
    code, report = mesh.run_json()
    assert code == 0, hints(report)
    assert f"/api/v1/namespaces/{MC}/pods/{standby}/portforward?ports=9999" not in mesh.west.requests


def test_the_api_servers_proxy_to_viz_prometheus_is_refused_as_its_policy_refuses_it(mesh: Mesh) -> None:
    api = kube.KubeCluster("west", mesh.west.kubeconfig())._api
    for path in (f"/api/v1/namespaces/{VIZ}/services/http:prometheus:9090/proxy/api/v1/query", f"/api/v1/namespaces/{VIZ}/pods/{PROMETHEUS_POD}:9090/proxy/api/v1/query"):
        response = api.call_api(*api.param_serialize("GET", path, query_params=[("query", "up")], auth_settings=["BearerToken"]))
        assert (response.status, response.getheader("l5d-proxy-error")) == (403, "unauthorized request on route")


def _plaintext_too(mesh: Mesh) -> None:
    traffic(mesh.prometheus, "no_identity", per_scrape=1)


def _put_mirror(mesh: Mesh, **kwargs: object) -> None:
    mesh.west.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.12", **kwargs)


def _mirror_with_selector(mesh: Mesh) -> None:
    service = mesh.west.get(core_path("emojivoto", "services", "web-svc-east"))
    service["spec"]["selector"] = {"app": "web-svc"}
    mesh.west.put_endpoints("emojivoto", "web-svc-east", ["10.244.1.7"], port=8080)


BROKEN: dict[str, tuple[Callable[[Mesh], None], set[tuple[str, str]], str]] = {
    "no link": (lambda m: m.west.delete(link_path(MC, "east")), {("west", "link")}, "no Link 'east'"),
    "link to an old gateway": (lambda m: m.west.put_link("east", "198.51.100.7"), {("west", "link")}, "stale"),
    "no mirror controller": (lambda m: m.west.delete(apps_path(MC, "deployments", "controller-east")), {("west", "mirror-controller")}, "`controllers` value"),
    "mirror controller unavailable": (lambda m: m.west.put_deployment(MC, "controller-east", available=0), {("west", "mirror-controller")}, "no available replica"),
    "probe service without endpoints": (lambda m: m.west.put_endpoints(MC, "probe-east", []), {("west", "gateway-probe")}, "probe Service linkerd-multicluster/probe-east has no ready endpoints"),
    "probe endpoints not ready": (lambda m: m.west.put_endpoints(MC, "probe-east", [], not_ready=[GATEWAY]), {("west", "gateway-probe")}, "no ready endpoints"),
    "probes failing": (lambda m: m.gateway_alive.update(east="0"), {("west", "gateway-probe")}, "gateway_alive=0"),
    "no probe status yet": (lambda m: m.gateway_alive.clear(), {("west", "gateway-probe")}, "exports no gateway_alive yet"),
    "no lease holder": (lambda m: m.west.put_lease(MC, "service-mirror-write-east", None), {("west", "gateway-probe")}, "no service mirror holds the Lease"),
    "lease held by a pod that is gone": (lambda m: m.west.delete(core_path(MC, "pods", MIRROR_POD)), {("west", "gateway-probe")}, "not a running pod"),
    "no mirror service": (lambda m: m.west.delete(core_path("emojivoto", "services", "web-svc-east")), {("west", "mirrored-service")}, "no mirror Service emojivoto/web-svc-east"),
    "a local service in the mirror's place": (lambda m: _put_mirror(m), {("west", "mirrored-service")}, "was not made by the service mirror"),
    "mirror without endpoints": (lambda m: m.west.put_endpoints("emojivoto", "web-svc-east", []), {("west", "mirrored-service")}, "has no endpoints"),
    "dead gateway": (lambda m: m.west.put_endpoints("emojivoto", "web-svc-east", [], port=4143, not_ready=[GATEWAY]), {("west", "mirrored-service")}, "all not ready, as the service mirror marks them while its probes of east's gateway fail"),
    "a pod IP in the mirror": (lambda m: m.west.put_endpoints("emojivoto", "web-svc-east", ["10.244.1.7"], port=8080), {("west", "mirrored-service")}, "This is not a stale Link"),
    "a mirror with a selector": (_mirror_with_selector, {("west", "mirrored-service")}, "has a selector"),
    # ... and east's issuer, signed by the stack's anchor, chains to none of east's.
    "trust anchors differ": (
        lambda m: put_trust_roots(m.east, pem(OTHER_ANCHOR)),
        {("east", "trust-anchors"), ("east", "anchor-expiry")},
        {("east", "trust-anchors"): "differ from the stack's trustAnchorPem", ("east", "anchor-expiry"): "signed by none of its trust anchors"},
    ),
    "extra trust anchor": (lambda m: put_trust_roots(m.west, pem(ANCHOR) + pem(OTHER_ANCHOR)), {("west", "trust-anchors")}, "differ"),
    "no trust roots": (lambda m: m.east.delete(core_path("linkerd", "configmaps", "linkerd-identity-trust-roots")), {("east", "trust-anchors"), ("east", "anchor-expiry")}, "is Linkerd installed?"),
    "issuer about to expire": (lambda m: put_issuer(m.east, issuer_signed_by(days=59)), {("east", "issuer-expiry")}, "within issuerRenewBeforeHours (1440 h): run `pulumi up`"),
    "issuer expired": (lambda m: put_issuer(m.east, issuer_signed_by(days=1, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))), {("east", "issuer-expiry")}, "the issuer of east expired 48 h ago ("),
    "issuer outlives the anchor": (lambda m: put_issuer(m.west, issuer_signed_by(days=3651)), {("west", "anchor-expiry")}, "which signs the issuer of west, expires before it"),
    "issuer signed by no trust anchor": (lambda m: put_issuer(m.west, pem(ISSUER_OF_OTHER_ANCHOR)), {("west", "anchor-expiry")}, "signed by none of its trust anchors"),
    "issuer signed by another key of the anchor's name": (lambda m: put_issuer(m.west, pem(self_signed_ca("root.linkerd.cluster.local", days=365))), {("west", "anchor-expiry")}, "signed by none of its trust anchors"),
    "tap APIService certificate near its end": (lambda m: put_chart_certificates(m.east, days=30, only="v1alpha1.tap.linkerd.io"), {("east", "chart-certificates")}, "the certificate Linkerd's chart generated for APIService v1alpha1.tap.linkerd.io expires "),
    "injector certificate expired": (lambda m: put_chart_certificates(m.west, days=1, days_ago=3, only="linkerd-proxy-injector-webhook-config"), {("west", "chart-certificates")}, "on west, the certificate Linkerd's chart generated for MutatingWebhookConfiguration linkerd-proxy-injector-webhook-config expired 48 h ago ("),
    "no tap APIService": (lambda m: m.west.delete("/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.tap.linkerd.io"), {("west", "chart-certificates")}, "no APIService v1alpha1.tap.linkerd.io on west"),
    "no issuer": (lambda m: m.west.delete(core_path("linkerd", "secrets", "linkerd-identity-issuer")), {("west", "issuer-expiry"), ("west", "anchor-expiry")}, "no crt.pem in Secret linkerd/linkerd-identity-issuer"),
    "plaintext alongside mTLS": (_plaintext_too, {("west", "mtls")}, "tls=no_identity"),
    "only plaintext": (lambda m: (m.prometheus.series.clear(), traffic(m.prometheus, "disabled")), {("west", "mtls")}, "without mTLS"),
    "series without a tls label": (lambda m: traffic(m.prometheus, ""), {("west", "mtls")}, "tls=<none>"),
    "no traffic": (lambda m: m.prometheus.series.clear(), {("west", "mtls")}, "vote-bot"),
    "prometheus missing": (lambda m: m.west.delete(core_path(VIZ, "pods", PROMETHEUS_POD)), {("west", "mtls")}, "no running Prometheus pod in linkerd-viz on west"),
    "prometheus not listening": (lambda m: m.west.pod_listeners[(VIZ, PROMETHEUS_POD)].clear(), {("west", "mtls")}, f"port-forward to {VIZ}/{PROMETHEUS_POD}:9090 on west failed: error forwarding port 9090"),
    "prometheus not ready": (lambda m: setattr(m.prometheus, "ready", False), {("west", "mtls")}, "the Prometheus of west (linkerd-viz/prometheus-7d9c8b5f4-abcde) is not ready yet (503)"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_mesh_fails_the_right_check_with_its_hint(mesh: Mesh, case: str) -> None:
    breaks, expected, hint = BROKEN[case]
    breaks(mesh)

    code, report = mesh.run_json()
    assert code == 1 and report["ok"] is False
    assert failing(report) == expected
    # One hint for every failing check, or one per check.
    hints = hint if isinstance(hint, dict) else {key: hint for key in expected}
    assert all(hints[(check["cluster"], check["name"])] in check["hint"] and "kubeconfig" not in check["hint"] for check in report["checks"] if not check["ok"])
    assert all(check["link"] == ("west->east" if check["name"] in LINK_CHECKS else None) for check in report["checks"] if not check["ok"])

    code, out = mesh.run()
    assert code == 1
    lines = out.splitlines()
    for check in report["checks"]:
        if not check["ok"]:
            at = lines.index(f"× {check['description']}")
            assert lines[at + 1] == f"    {check['hint']}"
    assert lines[-1] == "Status check results are ×"


def test_each_link_is_checked_in_its_own_source_cluster(mesh: Mesh) -> None:
    # A second link, east -> west, of which east has nothing yet: only its checks fail, in east.
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(links=raw["links"] + [{"from": "east", "to": "west"}], gatewayAddresses={**raw["gatewayAddresses"], "west": "203.0.113.20"})
    code, report = mesh.run_json()
    assert code == 1
    assert {(c["cluster"], c["link"], c["name"]) for c in report["checks"] if not c["ok"]} == {("east", "east->west", name) for name in ("link", "mirror-controller", "gateway-probe")}
    assert "no Link 'west' in linkerd-multicluster on east" in hints(report)[("east", "link")]


@pytest.mark.parametrize(
    "cilium, found",
    [
        ({"bpf-lb-sock-hostns-only": "false"}, "sets bpf-lb-sock-hostns-only='false'"),
        ({}, "does not set bpf-lb-sock-hostns-only, so Cilium's default (false) applies"),
    ],
    ids=["false", "key absent"],
)
def test_cilium_socket_lb_in_pod_namespaces_is_a_warning_with_the_remedy(mesh: Mesh, cilium: dict, found: str) -> None:
    put_cilium_config(mesh.east, **cilium)
    code, report = mesh.run_json()
    assert code == 0 and report["ok"] is True  # a warning, as `linkerd check` exits 0 on warnings
    assert failing(report) == {("east", "cilium-socket-lb")}
    (warning,) = [check for check in report["checks"] if not check["ok"]]
    assert warning["warning"] is True
    assert found in warning["hint"] and 'bpf-lb-sock-hostns-only: "true"' in warning["hint"] and "eBPF CNIs" in warning["hint"]
    code, out = mesh.run()
    assert code == 0 and f"‼ {warning['description']}" in out.splitlines()
    assert out.rstrip().endswith("Status check results are √")


def test_a_cluster_without_cilium_gets_no_cilium_check_or_warning(mesh: Mesh) -> None:
    # k3s (flannel) and kind (kindnet) have no kube-system/cilium-config; east here stands for one.
    mesh.east.delete(core_path("kube-system", "configmaps", "cilium-config"))
    code, report = mesh.run_json()
    assert code == 0 and not failing(report)
    assert {(c["cluster"], c["name"]) for c in report["checks"] if c["name"] == "cilium-socket-lb"} == {("west", "cilium-socket-lb")}
    code, out = mesh.run()
    assert "‼" not in out and out.count("Cilium") == 1


def test_a_gateway_given_by_dns_name_has_its_resolved_addresses_as_the_mirrors_endpoints(mesh: Mesh) -> None:
    # clusters.east.gatewayAddress: a name; the service mirror writes what it resolves to (GATEWAY).
    mesh.west.put_link("east", "gateway.east.example")
    mesh.edit_outputs(gatewayAddresses={"east": "gateway.east.example"})
    code, report = mesh.run_json()
    assert code == 0, hints(report)


def test_mtls_is_judged_on_the_last_minute_not_on_lifetime_counters(mesh: Mesh) -> None:
    traffic(mesh.prometheus, "no_identity", per_scrape=5)  # plaintext before a fix...
    assert failing(mesh.run_json()[1]) == {("west", "mtls")}
    mesh.prometheus.advance(120)  # ...two minutes later: its counter still exists but no longer grows
    traffic(mesh.prometheus, "no_identity", per_scrape=0)
    traffic(mesh.prometheus, "true")
    code, report = mesh.run_json()
    assert code == 0, hints(report)


def test_old_mtls_counters_do_not_vouch_for_a_mirror_without_traffic(mesh: Mesh) -> None:
    mesh.prometheus.advance(300)  # the mirror was deleted and re-created: nothing since, only old samples
    code, report = mesh.run_json()
    assert failing(report) == {("west", "mtls")}
    assert "no outbound traffic to emojivoto/web-svc-east in the last 1m" in hints(report)[("west", "mtls")]


def test_mtls_is_judged_on_outbound_traffic_to_that_mirror_alone(mesh: Mesh) -> None:
    # Plaintext elsewhere: another mirror, a name that extends the mirror's, the same name in another
    # namespace, and responses the proxy counts inbound.
    for other in ({"mirror": "emoji-svc-east"}, {"mirror": "web-svc-east2"}, {"namespace": "books"}, {"direction": "inbound"}):
        traffic(mesh.prometheus, "no_identity", **other)
    code, report = mesh.run_json()
    assert code == 0, hints(report)


def test_the_renewal_window_comes_from_the_stack_outputs(mesh: Mesh) -> None:
    mesh.edit_outputs(issuerRenewBeforeHours=24 * 366)  # more than the issuer's year
    report = mesh.run_json()[1]
    # The charts' certificates, a year long like the issuer, are judged by the same window.
    assert failing(report) == {(cluster, check) for cluster in ("west", "east") for check in ("issuer-expiry", "chart-certificates")}
    assert "within issuerRenewBeforeHours (8784 h)" in hints(report)[("west", "issuer-expiry")]
    assert "within issuerRenewBeforeHours (8784 h)" in hints(report)[("west", "chart-certificates")]


def test_without_the_renewal_output_the_window_is_60_days(mesh: Mesh) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    del raw["issuerRenewBeforeHours"]
    mesh.outputs_file.write_text(json.dumps(raw))
    put_issuer(mesh.east, issuer_signed_by(days=59))
    report = mesh.run_json()[1]
    assert failing(report) == {("east", "issuer-expiry")}
    assert "1440 h" in hints(report)[("east", "issuer-expiry")]


def test_trust_anchors_are_compared_as_certificates_not_text(mesh: Mesh) -> None:
    der = base64.b64encode(ANCHOR.public_bytes(serialization.Encoding.DER)).decode()
    rewrapped = "-----BEGIN CERTIFICATE-----\r\n" + "\r\n".join(textwrap.wrap(der, 76)) + "\r\n-----END CERTIFICATE-----\r\n"
    assert rewrapped.strip() != pem(ANCHOR).strip()
    put_trust_roots(mesh.west, rewrapped + pem(ANCHOR))  # same anchor, re-encoded, listed twice
    code, out = mesh.run()
    assert code == 0, out


def test_remote_discovery_exports_are_not_expected_to_have_gateway_endpoints(mesh: Mesh) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(exports=raw["exports"] + [{"cluster": "east", "namespace": "emojivoto", "service": "emoji-svc", "mode": "remote-discovery"}])
    code, report = mesh.run_json()
    assert code == 0 and len(report["checks"]) == len(LINK_CHECKS) + 2 * len(CLUSTER_CHECKS)


def test_rejected_credentials_exit_2_naming_the_cluster_and_doctl(mesh: Mesh, capsys: pytest.CaptureFixture) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(kubeconfigs={**raw["kubeconfigs"], "east": mesh.east.kubeconfig(token="stale-token")})
    code, report = mesh.run_json()
    assert code == 2, "401 means the credentials are unusable: exit 2, as documented"
    assert failing(report) == {("east", name) for name in CLUSTER_CHECKS}
    first, *later = [hints(report)[("east", name)] for name in CLUSTER_CHECKS]
    assert "the API server of east rejected the credentials (401 Unauthorized)" in first and "DIGITALOCEAN_ACCESS_TOKEN" in first
    assert all(hint.startswith("not asked: ") for hint in later)
    assert len(mesh.east.requests) == 1, "a cluster that rejected the credentials is not asked again"
    assert "verify: the API server of east rejected the credentials" in capsys.readouterr().err


def test_a_credential_plugin_that_never_answers_is_bounded_like_a_request(mesh: Mesh, short_timeouts: kube.Timeouts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # doctl waiting on an unreachable DigitalOcean API must not cost the exec plugin's 30 s default.
    hanging = tmp_path / "bin" / "doctl"
    hanging.parent.mkdir()
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PATH", f"{hanging.parent}{os.pathsep}{os.environ['PATH']}")
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(kubeconfigs={**raw["kubeconfigs"], "east": exec_kubeconfig("east", "c-hangs", mesh.east.url, "Y2E=")})
    assert run_cli(mesh.outputs_file)[0] == 2
    err = capsys.readouterr().err
    assert f"cluster 'east': the credential plugin `doctl kubernetes cluster kubeconfig exec-credential --version=v1beta1 --context=default c-hangs` did not answer within {short_timeouts.request:g}s" in err


def test_a_kubeconfig_that_is_not_yaml_exits_2_naming_the_cluster(mesh: Mesh, capsys: pytest.CaptureFixture) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(kubeconfigs={**raw["kubeconfigs"], "east": "apiVersion: v1\nclusters: [unclosed"})
    assert run_cli(mesh.outputs_file)[0] == 2
    err = capsys.readouterr().err
    assert "the kubeconfig of cluster 'east' in the stack outputs is unusable" in err and "not valid YAML" in err


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> kube.Timeouts:
    timeouts = kube.Timeouts(connect=1.0, read=0.3)
    monkeypatch.setattr(kube, "TIMEOUTS", timeouts)
    return timeouts


def test_a_dead_cluster_costs_at_most_30_s_by_construction() -> None:
    # A dead cluster costs its credential plugin (bounded by one request's time: the hanging-plugin
    # test) and one request of at most connect + read seconds, never retried nor repeated (the
    # silent-server test); the issue's bound is 30 s for the whole run.
    assert kube.TIMEOUTS.request + kube.TIMEOUTS.request <= 30


def test_an_api_server_that_never_answers_is_asked_once_and_named(mesh: Mesh, short_timeouts: kube.Timeouts) -> None:
    with SilentServer("east") as silent:
        raw = json.loads(mesh.outputs_file.read_text())
        mesh.edit_outputs(kubeconfigs={**raw["kubeconfigs"], "east": silent.kubeconfig()})
        code, report = mesh.run_json()
        assert silent.connections == 1, "one attempt: no urllib3 retries, and later checks skip the dead cluster"
    assert code == 1
    assert failing(report) == {("east", name) for name in CLUSTER_CHECKS}
    first, *later = [hints(report)[("east", name)] for name in CLUSTER_CHECKS]
    assert first.startswith("cannot reach the API server of east at http://127.0.0.1:") and f"no answer within {short_timeouts.request:g} s" in first
    assert all(hint.startswith("not asked: cannot reach the API server of east") for hint in later)


def test_a_port_forward_that_never_opens_is_bounded_and_not_tried_again(mesh: Mesh, short_timeouts: kube.Timeouts) -> None:
    mesh.west.port_forwards_hang = True
    code, report = mesh.run_json()
    assert code == 1
    assert failing(report) == {("west", "gateway-probe"), ("west", "mtls")}
    assert f"did not open a port-forward to {MC}/{MIRROR_POD} within {short_timeouts.request:g} s" in hints(report)[("west", "gateway-probe")]
    assert hints(report)[("west", "mtls")].startswith("not asked: ")
    assert len([request for request in mesh.west.requests if "/portforward" in request]) == 1


def test_a_pod_that_never_answers_a_port_forward_is_asked_once(mesh: Mesh, short_timeouts: kube.Timeouts) -> None:
    # A hung Prometheus costs one read timeout, not one per export: a second mirror's check skips it.
    mesh.west.pod_listeners[(VIZ, PROMETHEUS_POD)][9090] = lambda path: None
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(exports=raw["exports"] + [{"cluster": "east", "namespace": "emojivoto", "service": "emoji-svc", "mode": "gateway"}])
    code, report = mesh.run_json()
    assert code == 1
    first, second = [check["hint"] for check in report["checks"] if check["name"] == "mtls"]
    assert f"{VIZ}/{PROMETHEUS_POD}:9090 on west accepted a port-forwarded connection and did not answer within {short_timeouts.read:g} s" in first
    assert second.startswith("not asked: ")
    assert [check["ok"] for check in report["checks"] if check["name"] == "gateway-probe"] == [True], "other pods are still asked"
    assert len([request for request in mesh.west.requests if f"/pods/{PROMETHEUS_POD}/portforward" in request]) == 1


def test_a_closed_port_fails_the_clusters_checks_at_once_and_the_others_still_run(mesh: Mesh, short_timeouts: kube.Timeouts) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    mesh.edit_outputs(kubeconfigs={**raw["kubeconfigs"], "west": closed_port_kubeconfig("west")})
    code, report = mesh.run_json()
    assert code == 1
    assert failing(report) == {("west", name) for name in LINK_CHECKS + CLUSTER_CHECKS}
    first, *later = [hints(report)[("west", name)] for name in LINK_CHECKS + CLUSTER_CHECKS]
    assert "cannot reach the API server of west" in first and "Connection refused" in first
    assert all(hint.startswith("not asked: ") for hint in later)
    assert all(check["ok"] for check in report["checks"] if check["cluster"] == "east")


def test_outputs_can_come_from_stdin(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(mesh.outputs_file.read_text()))
    code, out = run_cli(Path("-"))
    assert code == 0, out


@pytest.mark.parametrize(
    "outputs_text, message",
    [
        ("not json", "not JSON"),
        ("{}", "'kubeconfigs' is missing"),
        (json.dumps({**dict.fromkeys(["kubeconfigs", "gatewayAddresses"], {}), "links": [{"from": "west", "to": "east"}], "exports": [], "trustAnchorPem": pem(ANCHOR)}), "no kubeconfig for cluster 'west'"),
        (json.dumps({**dict.fromkeys(["kubeconfigs", "gatewayAddresses"], {}), "links": [], "exports": [], "trustAnchorPem": pem(ANCHOR), "issuerRenewBeforeHours": "60d"}), "'issuerRenewBeforeHours' is missing or not a int"),
    ],
)
def test_unusable_outputs_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture, outputs_text: str, message: str) -> None:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(outputs_text)
    assert main(["--outputs", str(outputs_file)]) == 2
    assert message in capsys.readouterr().err


FAKE_KUBECTL = """#!/bin/sh
# Records what the dashboard helper ran it with, and the kubeconfig file it was given.
echo "$@" > "$RECORD/args"
stat -c %a "$2" > "$RECORD/mode"
cp "$2" "$RECORD/kubeconfig"
"""


def test_dashboard_port_forwards_viz_web_with_a_private_kubeconfig(mesh: Mesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("RECORD", str(record))

    assert dashboard_main(["east", "--outputs", str(mesh.outputs_file)]) == 0

    args = (record / "args").read_text().split()
    assert args[0] == "--kubeconfig" and args[2:] == ["-n", "linkerd-viz", "port-forward", "svc/web", "8084:8084"]
    assert (record / "mode").read_text().strip() == "600"
    assert (record / "kubeconfig").read_text() == mesh.east.kubeconfig()
    assert not Path(args[1]).exists(), "the credentials file outlived kubectl"
    assert "http://localhost:8084" in capsys.readouterr().out


def test_dashboard_explains_a_missing_kubectl(mesh: Mesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert dashboard_main(["west", "--outputs", str(mesh.outputs_file)]) == 1
    err = capsys.readouterr().err
    assert "kubectl is not on PATH" in err and "port-forward svc/web 8084:8084" in err
    assert not list(tmp_path.glob("kubeconfig-*")), "credentials written although nothing can use them"


def test_dashboard_rejects_an_unknown_cluster(mesh: Mesh, capsys: pytest.CaptureFixture) -> None:
    assert dashboard_main(["north", "--outputs", str(mesh.outputs_file)]) == 2
    assert "the stack has east, west" in capsys.readouterr().err
