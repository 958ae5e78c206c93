"""Linkerd on every cluster: the four official charts at one version, the shared identity, an
order that cannot leave pods unmeshed, HA only when asked, and the gateway address read back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime.rpc import is_rpc_secret

from components.charts import merge_values
from components.config import ClusterSpec
from components.gateway_api import DOKS_MANAGED_VALUES
from components.linkerd import Linkerd, LinkerdArgs
from components.multicluster import Multicluster, MulticlusterArgs
from tests.fake_cloud import FakeCloud
from tests.harness import PROJECT, run, run_main, unwrap
from tests.program import RELEASE, lone_cluster, releases

DYNAMIC = "pulumi-python:dynamic:Resource"
# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
# Value keys of the pinned charts (2026.6.3), values.yaml and values-ha.yaml, as dotted paths,
# and the few that only the templates read.
CHART_VALUES = json.loads((Path(__file__).parent / "data" / "linkerd_chart_value_keys.json").read_text())
CHART_KEYS = {chart: set(keys) | set(CHART_VALUES["templateOnlyKeys"].get(chart, [])) for chart, keys in CHART_VALUES["keys"].items()}
# chart -> namespace, as Linkerd's Helm instructions install them.
CHARTS = {
    "linkerd-crds": "linkerd",
    "linkerd-control-plane": "linkerd",
    "linkerd-viz": "linkerd-viz",
    "linkerd-multicluster": "linkerd-multicluster",
}


def value_paths(values, known: set[str], prefix: str = "") -> set[str]:
    """Dotted paths of `values`; the keys inside a map the chart leaves free-form (a known key
    with no known keys below it, such as podAnnotations) are the user's own."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        free_form = path in known and not any(k.startswith(f"{path}.") for k in known)
        if isinstance(value, dict) and not free_form:
            paths |= value_paths(value, known, path)
    return paths


@pytest.fixture(scope="module")
def seed():
    fakes = FakeCloud()
    return fakes, run_main(fakes, config=TOKEN)


@pytest.fixture(scope="module")
def seed_ha():
    return run_main(FakeCloud(), config={**TOKEN, f"{PROJECT}:linkerd": json.dumps({"version": "2026.6.3", "highAvailability": True})})


def test_four_releases_per_cluster_from_the_official_repo(seed):
    _, result = seed
    found = releases(result)
    assert sorted(found) == sorted((cluster, chart) for cluster in ("west", "east") for chart in CHARTS)
    for (cluster, chart), release in found.items():
        inputs = release.inputs
        assert inputs["name"] == chart  # explicit release names, as `helm ls` shows them in Linkerd's docs
        assert inputs["namespace"] == CHARTS[chart]
        assert inputs["version"] == "2026.6.3"
        assert inputs["repositoryOpts"] == {"repo": "https://helm.linkerd.io/edge"}
        # Failed installs roll back; the wait that implies is what makes "created" mean "ready".
        assert inputs["atomic"] is True and inputs["cleanupOnFail"] is True
        assert inputs["timeout"] >= 300
        assert release.name == f"{chart}-{cluster}"


def test_crds_leave_the_gateway_api_to_doks(seed):
    _, result = seed
    for cluster in ("west", "east"):
        values = releases(result)[(cluster, "linkerd-crds")].inputs["values"]
        assert values == {"installGatewayAPI": False, "enableHttpRoutes": False, "enableTlsRoutes": False, "enableTcpRoutes": False}


def test_control_plane_carries_the_shared_anchor_and_its_own_issuer(seed):
    _, result = seed
    found = releases(result)
    issuers = {}
    for cluster in ("west", "east"):
        values_input = found[(cluster, "linkerd-control-plane")].inputs["values"]
        assert is_rpc_secret(values_input), "the values hold the issuer key: they must be secret"
        values = unwrap(values_input)
        assert values["identityTrustAnchorsPEM"] == result.outputs["trustAnchorPem"]
        tls = values["identity"]["issuer"]["tls"]
        assert "BEGIN CERTIFICATE" in tls["crtPEM"] and "PRIVATE KEY" in tls["keyPEM"]
        issuers[cluster] = tls["crtPEM"]
    # One issuer per cluster by default.
    assert issuers["west"] != issuers["east"]


def test_order_crds_then_control_plane_then_extensions(seed):
    _, result = seed
    found = releases(result)
    for cluster in ("west", "east"):
        waits = {chart: result.monitor.ancestors_and_deps(found[(cluster, chart)].urn) for chart in CHARTS}
        crds, control_plane = found[(cluster, "linkerd-crds")].urn, found[(cluster, "linkerd-control-plane")].urn
        assert crds in waits["linkerd-control-plane"]
        for extension in ("linkerd-viz", "linkerd-multicluster"):
            assert control_plane in waits[extension], f"{extension} in {cluster} does not wait for the control plane"


def test_no_install_in_one_cluster_waits_for_the_other(seed):
    """The regions deploy in parallel: a release depends on nothing of the other cluster."""
    _, result = seed
    registrations = result.monitor.registrations
    for (cluster, chart), release in releases(result).items():
        other = "east" if cluster == "west" else "west"
        for urn in result.monitor.ancestors_and_deps(release.urn):
            dep = registrations.get(urn)
            if dep is None:
                continue
            # Resources of a cluster are named `<cluster>` or `...-<cluster>`, or use its provider.
            of_other = dep.name == other or dep.name.endswith(f"-{other}") or dep.provider.endswith(f"kubernetes-{other}-id")
            assert not of_other, f"{chart} in {cluster} waits for {urn}"


def test_every_value_key_exists_in_the_pinned_chart(seed, seed_ha):
    for result in (seed[1], seed_ha):
        for (cluster, chart), release in releases(result).items():
            unknown = value_paths(unwrap(release.inputs["values"]), CHART_KEYS[chart]) - CHART_KEYS[chart]
            assert not unknown, f"{chart} in {cluster} sets keys the chart does not have: {sorted(unknown)}"


def test_high_availability_values_only_when_asked(seed, seed_ha):
    plain, ha = releases(seed[1]), releases(seed_ha)
    for cluster in ("west", "east"):
        assert "controllerReplicas" not in unwrap(plain[(cluster, "linkerd-control-plane")].inputs["values"])
        assert "tap" not in unwrap(plain[(cluster, "linkerd-viz")].inputs["values"])
        control_plane = unwrap(ha[(cluster, "linkerd-control-plane")].inputs["values"])
        assert control_plane["controllerReplicas"] == 3 and control_plane["enablePodAntiAffinity"] is True
        assert control_plane["webhookFailurePolicy"] == "Fail"
        assert "identityTrustAnchorsPEM" in control_plane  # HA adds to the identity, never replaces it
        assert unwrap(ha[(cluster, "linkerd-viz")].inputs["values"])["tap"]["replicas"] == 3
    assert unwrap(ha[("east", "linkerd-multicluster")].inputs["values"])["gateway"]["replicas"] == 3


def test_gateway_only_where_something_links_to(seed):
    _, result = seed
    found = releases(result)
    east = unwrap(found[("east", "linkerd-multicluster")].inputs["values"])
    west = unwrap(found[("west", "linkerd-multicluster")].inputs["values"])
    assert east["gateway"]["enabled"] is True and west["gateway"]["enabled"] is False
    # The linking cluster runs one service-mirror controller per link, named after the target.
    assert west["controllers"] == [{"link": {"ref": {"name": "east"}}}]
    assert east["controllers"] == []


def test_gateway_firewall_from_config():
    # Kubernetes takes only CIDRs there (the fake cluster refuses the release as the API server
    # refuses its gateway Service): a bare address becomes its /32, a CIDR stays as written.
    ranges = ["203.0.113.0/24", "198.51.100.7", "2001:db8::/48"]
    result = run_main(FakeCloud(), config={**TOKEN, f"{PROJECT}:linkerd": json.dumps({"gatewaySourceRanges": ranges})})
    east = unwrap(releases(result)[("east", "linkerd-multicluster")].inputs["values"])
    assert east["gateway"]["loadBalancerSourceRanges"] == ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/48"]


def test_gateway_address_is_read_from_the_live_service(seed):
    fakes, result = seed
    east = fakes.kubernetes.cluster_named("east")
    assert result.outputs["gatewayAddresses"] == {"east": east.gateway_ip}
    (read,) = [r for r in result.monitor.of_type(DYNAMIC) if unwrap(r.inputs.get("objectId")) == "linkerd-multicluster/linkerd-gateway"]
    # Read from east, through east's kubeconfig, after east's multicluster release.
    assert fakes.kubernetes.cluster_for_kubeconfig(unwrap(read.inputs["kubeconfig"])) is east
    # The exec form, with no credential in it: nothing to keep secret.
    assert not is_rpc_secret(read.inputs["kubeconfig"]) and "token" not in unwrap(read.inputs["kubeconfig"])
    multicluster = releases(result)[("east", "linkerd-multicluster")].urn
    assert multicluster in result.monitor.ancestors_and_deps(read.urn)


def test_linkerd_component_alone_orders_its_releases():
    def program():
        cluster = lone_cluster(ClusterSpec("solo", "ams3", "s-4vcpu-8gb", 3))
        Linkerd(
            "solo",
            LinkerdArgs(
                provider=cluster.provider,
                chart_version="2026.6.3",
                high_availability=False,
                trust_anchor_pem="anchor-pem",
                issuer_cert_pem="issuer-pem",
                issuer_key_pem=pulumi.Output.secret("issuer-key"),
                renewal_marker="renewal-period-1",
                gateway_api_values=DOKS_MANAGED_VALUES,
            ),
        )

    result = run(FakeCloud(), program)
    found = {r.inputs["chart"]: r for r in result.monitor.of_type(RELEASE)}
    assert sorted(found) == ["linkerd-control-plane", "linkerd-crds", "linkerd-viz"]
    assert found["linkerd-crds"].urn in found["linkerd-control-plane"].dependencies
    assert found["linkerd-control-plane"].urn in found["linkerd-viz"].dependencies
    values = found["linkerd-control-plane"].inputs["values"]
    assert is_rpc_secret(values)
    assert unwrap(values) == {
        "identityTrustAnchorsPEM": "anchor-pem",
        "identity": {"issuer": {"tls": {"crtPEM": "issuer-pem", "keyPEM": "issuer-key"}}},
        "podAnnotations": {"checksum/trust-anchors": hashlib.sha256(b"anchor-pem").hexdigest()},
    }


def test_merge_values_merges_maps_and_replaces_the_rest():
    assert merge_values({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}


def test_multicluster_component_alone_reads_back_its_gateway_and_issues_one_account_per_linking_cluster():
    def program():
        cluster = lone_cluster(ClusterSpec("solo", "ams3", "s-4vcpu-8gb", 3))
        multicluster = Multicluster(
            "solo",
            MulticlusterArgs(
                provider=cluster.provider,
                chart_version="2026.6.3",
                high_availability=False,
                gateway=True,
                link_targets=["zeta", "alpha"],
                linking_sources=["west", "north"],
                control_plane=cluster.provider,
                kubeconfig=cluster.kubeconfig,
                wait_timeout_seconds=5,
                trust_anchor_pem="anchor-pem",
            ),
        )
        pulumi.export("gateway", multicluster.gateway_address)

    fakes = FakeCloud()
    result = run(fakes, program, stack="test")
    solo = fakes.kubernetes.cluster_named("solo")
    assert result.outputs == {"gateway": solo.gateway_ip}
    (release,) = result.monitor.of_type(RELEASE)
    values = unwrap(release.inputs["values"])
    assert values["gateway"] == {"enabled": True, "deploymentAnnotations": values["podAnnotations"]}
    assert values["controllers"] == [{"link": {"ref": {"name": "alpha"}}}, {"link": {"ref": {"name": "zeta"}}}]
    # One remote-access account (and token) per linking cluster, sorted, named after it.
    assert values["remoteMirrorServiceAccount"] is True
    assert values["remoteMirrorServiceAccountName"] == ["linkerd-service-mirror-remote-access-north", "linkerd-service-mirror-remote-access-west"]
