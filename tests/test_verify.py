"""`python -m verify` against two fake API servers (west links to east, east exports web-svc)."""

from __future__ import annotations

import base64
import io
import json
import textwrap
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from tests.certificates import pem, self_signed_ca
from tests.fake_kube_api import FakeKubeAPI, apps_path, core_path, link_path
from verify.__main__ import main
from verify.dashboard import main as dashboard_main

GATEWAY = "203.0.113.10"
MC = "linkerd-multicluster"


ANCHOR = self_signed_ca("root.linkerd.cluster.local")
OTHER_ANCHOR = self_signed_ca("root.linkerd.cluster.local")


def put_trust_roots(api: FakeKubeAPI, bundle: str) -> None:
    api.put_configmap("linkerd", "linkerd-identity-trust-roots", {"ca-bundle.crt": bundle})


@dataclass
class Mesh:
    west: FakeKubeAPI
    east: FakeKubeAPI
    outputs_file: Path

    def run(self, *args: str) -> tuple[int, str]:
        return run_cli(self.outputs_file, *args)

    def run_json(self) -> tuple[int, dict]:
        code, out = self.run("--json")
        return code, json.loads(out)


def run_cli(outputs_file: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--outputs", str(outputs_file), *args])
    return code, out.getvalue()


def healthy(west: FakeKubeAPI, east: FakeKubeAPI) -> None:
    west.put_link("east", GATEWAY)
    west.put_deployment(MC, "controller-east")
    west.put_service(MC, "probe-east", cluster_ip="10.245.0.40", ports=[("mc-probe", 4191)])
    west.put_endpoints(MC, "probe-east", [GATEWAY], port=4191, port_name="mc-probe")
    west.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.12")
    west.put_endpoints("emojivoto", "web-svc-east", [GATEWAY], port=4143)
    west.set_prometheus_result('gateway_alive{target_cluster_name="east"}', [({}, 1)])
    west.set_prometheus_result("web-svc-east", [({"tls": "true"}, 120)])
    put_trust_roots(west, pem(ANCHOR))
    put_trust_roots(east, pem(ANCHOR))


def outputs(west: FakeKubeAPI, east: FakeKubeAPI) -> dict:
    return {
        "kubeconfigs": {"west": west.kubeconfig(), "east": east.kubeconfig()},
        "gatewayAddresses": {"east": GATEWAY},
        "links": [{"from": "west", "to": "east"}],
        "exports": [{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "gateway"}],
        "mirroredServices": {"west": [{"name": "emojivoto/web-svc-east", "target": "east", "clusterIP": "10.245.0.12", "endpoints": [GATEWAY]}]},
        "trustAnchorPem": pem(ANCHOR),
    }


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    with FakeKubeAPI("west") as west, FakeKubeAPI("east") as east:
        healthy(west, east)
        outputs_file = tmp_path / "outputs.json"
        outputs_file.write_text(json.dumps(outputs(west, east)))
        yield Mesh(west, east, outputs_file)


def failing(report: dict) -> set[tuple[str, str]]:
    return {(check["cluster"], check["name"]) for check in report["checks"] if not check["ok"]}


def test_a_healthy_mesh_passes_every_check(mesh: Mesh) -> None:
    code, out = mesh.run()
    assert code == 0, out
    assert "×" not in out
    assert sum(line.startswith("√ ") for line in out.splitlines()) == 7  # link, controller, probe, mirror, mTLS; trust anchors in both clusters
    assert out.rstrip().endswith("Status check results are √")


def test_json_lists_every_check_with_its_cluster_and_link(mesh: Mesh) -> None:
    code, report = mesh.run_json()
    assert code == 0 and report["ok"] is True
    assert [(c["cluster"], c["link"], c["name"], c["ok"], c["hint"]) for c in report["checks"]] == [
        ("west", "west->east", "link", True, ""),
        ("west", "west->east", "mirror-controller", True, ""),
        ("west", "west->east", "gateway-probe", True, ""),
        ("west", "west->east", "mirrored-service", True, ""),
        ("west", "west->east", "mtls", True, ""),
        ("west", None, "trust-anchors", True, ""),
        ("east", None, "trust-anchors", True, ""),
    ]


def _plaintext_too(mesh: Mesh) -> None:
    mesh.west.set_prometheus_result("web-svc-east", [({"tls": "true"}, 120), ({"tls": "no_identity"}, 3)])


BROKEN: dict[str, tuple[Callable[[Mesh], None], set[tuple[str, str]], str]] = {
    "no link": (lambda m: m.west.delete(link_path(MC, "east")), {("west", "link")}, "no Link 'east'"),
    "link to an old gateway": (lambda m: m.west.put_link("east", "198.51.100.7"), {("west", "link")}, "stale"),
    "no mirror controller": (lambda m: m.west.delete(apps_path(MC, "deployments", "controller-east")), {("west", "mirror-controller")}, "`controllers` value"),
    "mirror controller unavailable": (lambda m: m.west.put_deployment(MC, "controller-east", available=0), {("west", "mirror-controller")}, "no available replica"),
    "probe service without endpoints": (lambda m: m.west.put_endpoints(MC, "probe-east", []), {("west", "gateway-probe")}, "probe Service linkerd-multicluster/probe-east has no ready endpoints"),
    "probe endpoints not ready": (lambda m: m.west.put_endpoints(MC, "probe-east", [], not_ready=[GATEWAY]), {("west", "gateway-probe")}, "no ready endpoints"),
    "probes failing": (lambda m: m.west.set_prometheus_result("gateway_alive", [({}, 0)]), {("west", "gateway-probe")}, "gateway_alive=0"),
    "no probe status yet": (lambda m: m.west.set_prometheus_result("gateway_alive", []), {("west", "gateway-probe")}, "no gateway_alive metric"),
    "no mirror service": (lambda m: m.west.delete(core_path("emojivoto", "services", "web-svc-east")), {("west", "mirrored-service")}, "no mirror Service emojivoto/web-svc-east"),
    "mirror without endpoints": (lambda m: m.west.put_endpoints("emojivoto", "web-svc-east", []), {("west", "mirrored-service")}, "has no endpoints"),
    "mirror bypassing the gateway": (lambda m: m.west.put_endpoints("emojivoto", "web-svc-east", ["10.244.1.7"], port=8080), {("west", "mirrored-service")}, "instead of east's gateway 203.0.113.10"),
    "trust anchors differ": (lambda m: put_trust_roots(m.east, pem(OTHER_ANCHOR)), {("east", "trust-anchors")}, "differ from the stack's trustAnchorPem"),
    "extra trust anchor": (lambda m: put_trust_roots(m.west, pem(ANCHOR) + pem(OTHER_ANCHOR)), {("west", "trust-anchors")}, "differ"),
    "no trust roots": (lambda m: m.east.delete(core_path("linkerd", "configmaps", "linkerd-identity-trust-roots")), {("east", "trust-anchors")}, "is Linkerd installed?"),
    "plaintext alongside mTLS": (_plaintext_too, {("west", "mtls")}, "tls=no_identity"),
    "only plaintext": (lambda m: m.west.set_prometheus_result("web-svc-east", [({"tls": "disabled"}, 9)]), {("west", "mtls")}, "without mTLS"),
    "series without a tls label": (lambda m: m.west.set_prometheus_result("web-svc-east", [({}, 9)]), {("west", "mtls")}, "tls=<none>"),
    "no traffic": (lambda m: m.west.set_prometheus_result("web-svc-east", []), {("west", "mtls")}, "vote-bot"),
    "prometheus down": (lambda m: setattr(m.west, "prometheus_up", False), {("west", "gateway-probe"), ("west", "mtls")}, "503"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_mesh_fails_the_right_check_with_its_hint(mesh: Mesh, case: str) -> None:
    breaks, expected, hint = BROKEN[case]
    breaks(mesh)

    code, report = mesh.run_json()
    assert code == 1 and report["ok"] is False
    assert failing(report) == expected
    assert all(hint in check["hint"] for check in report["checks"] if not check["ok"])

    code, out = mesh.run()
    assert code == 1
    lines = out.splitlines()
    for check in report["checks"]:
        if not check["ok"]:
            at = lines.index(f"× {check['description']}")
            assert lines[at + 1] == f"    {check['hint']}"
    assert lines[-1] == "Status check results are ×"


def test_trust_anchors_are_compared_as_certificates_not_text(mesh: Mesh) -> None:
    der = base64.b64encode(ANCHOR.public_bytes(serialization.Encoding.DER)).decode()
    rewrapped = "-----BEGIN CERTIFICATE-----\r\n" + "\r\n".join(textwrap.wrap(der, 76)) + "\r\n-----END CERTIFICATE-----\r\n"
    assert rewrapped.strip() != pem(ANCHOR).strip()
    put_trust_roots(mesh.west, rewrapped + pem(ANCHOR))  # same anchor, re-encoded, listed twice
    code, out = mesh.run()
    assert code == 0, out


def test_the_mtls_query_asks_for_outbound_responses_to_the_mirror_by_tls(mesh: Mesh) -> None:
    mesh.run()
    queries = [parse_qs(urlsplit(request).query)["query"][0] for request in mesh.west.requests if "/proxy/api/v1/query" in request]
    mtls = [query for query in queries if "response_total" in query]
    assert mtls == ['sum by (tls) (response_total{direction="outbound", authority=~"web-svc-east\\\\.emojivoto\\\\.svc.*"})']


def test_remote_discovery_exports_are_not_expected_to_have_gateway_endpoints(mesh: Mesh, tmp_path: Path) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    raw["exports"].append({"cluster": "east", "namespace": "emojivoto", "service": "emoji-svc", "mode": "remote-discovery"})
    mesh.outputs_file.write_text(json.dumps(raw))
    code, report = mesh.run_json()
    assert code == 0 and len(report["checks"]) == 7


def test_a_rejected_token_fails_every_check_of_that_cluster(mesh: Mesh) -> None:
    raw = json.loads(mesh.outputs_file.read_text())
    raw["kubeconfigs"]["east"] = mesh.east.kubeconfig(token="stale-token")
    mesh.outputs_file.write_text(json.dumps(raw))
    code, report = mesh.run_json()
    assert code == 1
    assert failing(report) == {("east", "trust-anchors")}
    assert "401" in report["checks"][-1]["hint"]


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
