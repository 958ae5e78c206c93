"""linkerd-crds' Gateway API switches, decided per cluster from the CRDs it holds and who owns them
(components/gateway_api.py): read through the real client from a fake API server, and by the whole
program from the simulated clusters, before anything is registered."""

from __future__ import annotations

import pulumi
import pytest

from components.gateway_api import DOKS_MANAGED_VALUES, crd_name, gateway_api_values
from tests import fake_crds
from tests.fake_cloud import FakeCloud
from tests.fake_kube_api import FakeKubeAPI, closed_port_kubeconfig
from tests.harness import run_main, unwrap
from tests.program import releases

INSTALL_ALL = {"installGatewayAPI": True, "enableHttpRoutes": True, "enableTlsRoutes": True, "enableTcpRoutes": True}
ROUTES = {"httproutes": ("v1", "v1beta1"), "grpcroutes": ("v1", "v1alpha2"), "tlsroutes": ("v1alpha2",), "tcproutes": ("v1alpha2",)}


def owned_by(owner: dict, plurals=ROUTES) -> dict[str, dict]:
    return {crd_name(p): {"metadata": {"name": crd_name(p), **owner}, "versions": list(ROUTES[p])} for p in plurals}


OURS = fake_crds.helm_ownership("linkerd-crds", "linkerd")
DOKS = {"labels": dict(fake_crds.DOKS_OWNER_LABELS), "annotations": {}}


def decided(crds: dict[str, dict]) -> dict[str, bool]:
    with FakeKubeAPI("solo") as api:
        for name, obj in crds.items():
            api.put(fake_crds.crd_path(name), fake_crds.served(obj))
        return gateway_api_values("solo", api.kubeconfig())


CASES = {
    # k3s before 1.37, kind: nothing there, so linkerd-crds installs all four.
    "none": ({}, INSTALL_ALL),
    "doks": (fake_crds.doks_gateway_crds("1.35.6-do.1", vpc_native=True), DOKS_MANAGED_VALUES),
    "k3s 1.37 chart": (fake_crds.k3s_gateway_crds(), DOKS_MANAGED_VALUES),
    # Our release installed them: it keeps rendering them, or Helm would stop managing them.
    "ours": (owned_by(OURS), INSTALL_ALL),
    "ours, tlsroutes someone else's": ({**owned_by(OURS, ("httproutes", "grpcroutes")), **owned_by(DOKS, ("tlsroutes",))}, {**INSTALL_ALL, "enableTlsRoutes": False}),
    # Another release of the same chart is another owner: Helm would refuse to take them over.
    "another linkerd-crds release": (owned_by(fake_crds.helm_ownership("linkerd-crds", "other-mesh")), DOKS_MANAGED_VALUES),
}


@pytest.mark.parametrize("crds, values", CASES.values(), ids=CASES.keys())
def test_the_switches_follow_what_the_cluster_has(crds, values):
    assert decided(crds) == values


def test_someone_elses_crds_without_v1_are_a_clear_error():
    old = owned_by(DOKS, ("httproutes", "grpcroutes"))
    old[crd_name("grpcroutes")]["versions"] = ["v1alpha2"]
    with pytest.raises(pulumi.RunError, match=r"cluster solo: grpcroutes.gateway.networking.k8s.io \(held by app.kubernetes.io/managed-by=doks\) does not serve v1.*Upgrade the Gateway API CRDs"):
        decided(old)


def test_half_someone_elses_is_a_clear_error():
    half = owned_by(fake_crds.helm_ownership("gateway-api", "infra"), ("httproutes",))
    with pytest.raises(pulumi.RunError, match=r"httproutes.gateway.networking.k8s.io is held by Helm release infra/gateway-api but grpcroutes.gateway.networking.k8s.io is missing"):
        decided(half)


def test_an_unreachable_cluster_is_a_clear_error_naming_it():
    with pytest.raises(pulumi.RunError, match=r"cluster far: cannot read its Gateway API CRDs \(.*\)"):
        gateway_api_values("far", closed_port_kubeconfig("far"))


def test_credentials_the_cluster_refuses_are_a_clear_error():
    with FakeKubeAPI("solo") as api, pytest.raises(pulumi.RunError, match=r"cluster solo: cannot read its Gateway API CRDs \(the API server answered 401 Unauthorized\)"):
        gateway_api_values("solo", api.kubeconfig(token="wrong"))


def crds_values(result) -> dict[str, dict]:
    return {cluster: unwrap(release.inputs["values"]) for (cluster, chart), release in releases(result).items() if chart == "linkerd-crds"}


def take_over(cluster, plurals=("httproutes", "grpcroutes", "tlsroutes")) -> None:
    """As if an earlier install had the program's linkerd-crds render these CRDs."""
    for name, obj in owned_by(OURS, plurals).items():
        cluster.objects[(fake_crds.CRD, "", name)] = obj


def test_running_clusters_are_read_live_and_a_preview_shows_the_same_values():
    fakes = FakeCloud()
    first = run_main(fakes)
    assert crds_values(first) == {"west": DOKS_MANAGED_VALUES, "east": DOKS_MANAGED_VALUES}
    take_over(fakes.kubernetes.cluster_named("east"))
    preview = run_main(fakes, prior=first, preview=True)
    assert crds_values(preview) == {"west": DOKS_MANAGED_VALUES, "east": INSTALL_ALL}
    up = run_main(fakes, prior=first)
    assert crds_values(up) == crds_values(preview)
    # Helm upgrades its own CRDs in place; tcproutes, absent, is created with them.
    owner = fakes.kubernetes.cluster_named("east").objects[(fake_crds.CRD, "", crd_name("tcproutes"))]["metadata"]["annotations"]
    assert owner["meta.helm.sh/release-name"] == "linkerd-crds"


def test_a_running_cluster_whose_crds_lack_v1_stops_the_program_before_anything_is_registered():
    fakes = FakeCloud()
    first = run_main(fakes)
    fakes.kubernetes.cluster_named("east").objects[(fake_crds.CRD, "", crd_name("httproutes"))]["versions"] = ["v1beta1"]
    fakes.registered.clear()
    with pytest.raises(pulumi.RunError, match=r"cluster east: httproutes.gateway.networking.k8s.io \(held by app.kubernetes.io/managed-by=doks\) does not serve v1"):
        run_main(fakes, prior=first)
    assert fakes.registered == []


def test_a_second_run_of_the_seed_reads_its_running_clusters_and_changes_nothing():
    fakes = FakeCloud()
    first = run_main(fakes)
    second = run_main(fakes, prior=first)
    assert {registration.step for registration in second.monitor.registrations.values()} == {"same"}
