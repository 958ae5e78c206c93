"""Clusters the program does not create (issue 16): an existing DOKS cluster it adopts and clusters
in a kubeconfig, meshed with a DOKS cluster it creates; what the state keeps of them; the errors
that stop a bad config before anything is registered; and a teardown that leaves them standing."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack

import pulumi
import pytest
import yaml

from components.kubeconfigs import kubeconfig_reference, parse_reference
from tests.fake_account import DO_TOKEN, PREVIEW_TOKEN
from tests.fake_cloud import FakeCloud
from components.config import KubeconfigClusterSpec
from components.given_clusters import GivenClusterProblem, _kubeconfig_identity
from tests.certificates import new_ca, pem, signed_leaf
from tests.fake_kube_api import FakeKubeAPI, ServerTLS, closed_port_kubeconfig
from tests.given import created, plugin_user, stack_values, token_file_user, write_kubeconfig
from tests.harness import PROJECT, run, run_main, stack_config, unwrap
from tests.program import RELEASE, provider_cluster, releases
from tests.test_credentials import stored, strings
from verify.checks import run_checks
from verify.dashboard import main as dashboard_main
from verify.kube import KubeCluster
from verify.outputs import parse_outputs

CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
NODE_POOL = "digitalocean:index/kubernetesNodePool:KubernetesNodePool"
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"
PROVIDER = "pulumi:providers:kubernetes"
# The admin credentials in the kubeconfig file: none may reach the state or the outputs.
NORTH_TOKEN = "north-admin-token-from-the-kubeconfig-file"
SOUTH_TOKEN = "south-token-from-the-exec-plugin"
MOON_TOKEN = "moon-token-from-a-token-file"
MIXED_LINKS = [("west", "east"), ("east", "west"), ("west", "north"), ("north", "west"), ("south", "west"), ("moon", "west")]


def adopted_east(fakes: FakeCloud):
    # Made by hand (or another stack): VPC-native on 1.35, so DOKS installed the Gateway API CRDs.
    return fakes.digitalocean.add_existing("team-east", "syd1", "1.35.6-do.1", cluster_subnet="172.40.0.0/16", service_subnet="192.168.40.0/24")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A created DOKS cluster (west), an adopted one (east), and three kubeconfig clusters: north
    with a token, south with an exec plugin, moon with a token file; links both ways."""
    directory = tmp_path_factory.mktemp("kube")
    fakes = FakeCloud()
    adopted_east(fakes)
    with fakes.kubernetes.kubeconfig_cluster("north", NORTH_TOKEN) as north, fakes.kubernetes.kubeconfig_cluster("south", SOUTH_TOKEN) as south, fakes.kubernetes.kubeconfig_cluster("moon", MOON_TOKEN) as moon:
        kubeconfig = write_kubeconfig(
            directory / "config",
            {"north": (north.endpoint, {"token": NORTH_TOKEN}), "south": (south.endpoint, plugin_user(directory, SOUTH_TOKEN)), "moon": (moon.endpoint, token_file_user(directory, MOON_TOKEN))},
        )
        clusters = {
            "west": created("sfo3", 20),
            "east": {"existingCluster": "team-east"},
            **{name: {"kubeconfig": str(kubeconfig), "context": name} for name in ("north", "south", "moon")},
        }
        result = run_main(fakes, config=stack_values(clusters, MIXED_LINKS), replace_config=True)
        yield fakes, result, kubeconfig


def test_one_listing_of_the_account_finds_the_created_and_the_adopted_cluster(mixed):
    fakes, _, _ = mixed
    assert [path for path in fakes.digitalocean.api_requests if path.startswith("/v2/kubernetes/clusters?")] == ["/v2/kubernetes/clusters?page=1&per_page=200"]


def test_only_the_created_cluster_is_a_digitalocean_resource(mixed):
    _, result, _ = mixed
    assert [r.inputs["name"] for r in result.monitor.of_type(CLUSTER)] == ["west-east-west"]
    assert [r.name for r in result.monitor.of_type(NODE_POOL)] == ["workers-west"]
    assert not [r for r in result.monitor.registrations.values() if r.type.startswith("digitalocean:") and "east" in r.name]


def test_every_cluster_gets_linkerd_with_the_shared_anchor(mixed):
    fakes, result, _ = mixed
    installed = releases(result)
    anchors = {cluster: unwrap(installed[(cluster, "linkerd-control-plane")].inputs["values"])["identityTrustAnchorsPEM"] for cluster in ("west", "east", "north", "south", "moon")}
    assert len(set(anchors.values())) == 1 and "BEGIN CERTIFICATE" in anchors["west"]
    for name in anchors:
        # Installed in that very cluster, found through its own kubeconfig and credentials.
        assert set(fakes.kubernetes.cluster_named(name).releases()) == {"linkerd-crds", "linkerd-control-plane", "linkerd-viz", "linkerd-multicluster"}


def test_links_go_both_ways_and_mirror_through_each_targets_gateway(mixed):
    fakes, result, _ = mixed
    links = {(provider_cluster(r), r.inputs["metadata"]["name"]) for r in result.monitor.of_type(LINK)}
    assert links == set(MIXED_LINKS)
    mirrored = {source: {(m["name"], m["target"]) for m in entries} for source, entries in result.outputs["mirroredServices"].items()}
    assert mirrored == {
        "west": {("emojivoto/web-svc-east", "east"), ("emojivoto/web-svc-north", "north")},
        "east": {("emojivoto/web-svc-west", "west")},
        "north": {("emojivoto/web-svc-west", "west")},
        "south": {("emojivoto/web-svc-west", "west")},
        "moon": {("emojivoto/web-svc-west", "west")},
    }
    north = fakes.kubernetes.cluster_named("north")
    (to_north,) = [m for m in result.outputs["mirroredServices"]["west"] if m["target"] == "north"]
    assert to_north["endpoints"] == [north.gateway_ip]


def test_the_link_credentials_reach_each_target_as_its_kubeconfig_names_it(mixed):
    fakes, _, _ = mixed
    west = fakes.kubernetes.cluster_named("west")
    for target in ("east", "north"):
        loaded = yaml.safe_load(west.mirror_credentials[target])["clusters"][0]["cluster"]
        assert loaded["server"] == fakes.kubernetes.cluster_named(target).endpoint


def test_the_providers_reach_given_clusters_by_reference_and_follow_their_identity(mixed):
    fakes, result, kubeconfig = mixed
    providers = {r.name: unwrap(r.inputs) for r in result.monitor.of_type(PROVIDER)}
    assert providers["kubernetes-north"] == {"kubeconfig": str(kubeconfig), "context": "north", "clusterIdentifier": "kube-system-uid-north"}
    east = fakes.digitalocean.accounts_clusters["team-east"]
    (user,) = yaml.safe_load(providers["kubernetes-east"]["kubeconfig"])["users"]
    assert user["user"]["exec"]["args"][-1] == east.id and providers["kubernetes-east"]["clusterIdentifier"] == east.id


def test_no_credential_from_the_kubeconfig_file_is_stored(mixed):
    _, result, kubeconfig = mixed
    secrets = {NORTH_TOKEN, SOUTH_TOKEN, MOON_TOKEN, DO_TOKEN}
    file_text = kubeconfig.read_text()
    references = 0
    for where, value in stored(result):
        for text in strings(value):
            assert not [secret for secret in secrets if secret in text], f"a credential is stored in {where}"
            assert file_text not in text, f"the kubeconfig file is stored in {where}"
            references += parse_reference(text) is not None
    # The live reads, the credentials copies, the leftovers' cleanup and the outputs keep references.
    assert references >= 3 * 4


def test_the_outputs_say_where_each_cluster_comes_from(mixed):
    fakes, result, kubeconfig = mixed
    clusters = result.outputs["clusters"]
    east = fakes.digitalocean.accounts_clusters["team-east"]
    assert clusters["east"] == {"id": east.id, "region": "syd1", "version": "1.35.6-do.1", "endpoint": east.endpoint, "source": "existingCluster"}
    assert clusters["north"] == {"id": "kube-system-uid-north", "endpoint": fakes.kubernetes.cluster_named("north").endpoint, "source": "kubeconfig", "kubeconfig": str(kubeconfig), "context": "north"}
    assert set(clusters["west"]) == {"id", "region", "version", "endpoint"}
    assert parse_reference(result.outputs["kubeconfigs"]["north"]) == (str(kubeconfig), "north")


def test_digitalocean_bills_the_created_cluster_in_full_the_adopted_ones_gateway_and_no_kubeconfig_cluster(mixed):
    # Something links to west, east and north; north's gateway load balancer is not DigitalOcean's.
    _, result, _ = mixed
    cost = result.outputs["monthlyCost"]
    assert [(item["cluster"], item["item"], item["count"]) for item in cost["items"]] == [
        ("west", "worker nodes s-4vcpu-8gb", 3),
        ("west", "system node s-2vcpu-4gb", 1),
        ("west", "gateway load balancer", 1),
        ("east", "gateway load balancer", 1),
    ]


def given_failure(fakes: FakeCloud, clusters: dict, links=(("west", "east"),)) -> str:
    """Run the program; it must fail with a RunError before registering anything."""
    with pytest.raises(pulumi.RunError) as raised:
        run_main(fakes, config=stack_values(clusters, list(links)), replace_config=True)
    assert fakes.registered == [], "resources were registered despite the bad config"
    return str(raised.value)


def test_settings_only_a_created_cluster_has_are_refused_with_the_reason(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", {"k3d-east": ("https://0.0.0.0:6443", {"token": "t"})})
    message = given_failure(
        FakeCloud(),
        {"west": {"existingCluster": "team-west", "nodeCount": 3, "region": "sfo3"}, "east": {"kubeconfig": str(kubeconfig), "context": "k3d-east", "nodeSize": "s-4vcpu-8gb"}},
    )
    assert f"{PROJECT}:clusters.west.nodeCount: only a cluster the program creates has nodeCount; west is an existing DOKS cluster" in message
    assert f"{PROJECT}:clusters.west.region: only a cluster the program creates has region" in message
    assert f"{PROJECT}:clusters.east.nodeSize: only a cluster the program creates has nodeSize; east is a cluster in a kubeconfig" in message


def test_a_missing_file_and_an_unknown_context_name_the_cluster_and_the_key(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", {"k3d-west": ("https://0.0.0.0:6443", {"token": "t"})})
    message = given_failure(
        FakeCloud(),
        {"west": {"kubeconfig": str(tmp_path / "nowhere"), "context": "k3d-west"}, "east": {"kubeconfig": str(kubeconfig), "context": "k3d-east"}},
    )
    assert f"{PROJECT}:clusters.west.kubeconfig: the kubeconfig file {tmp_path / 'nowhere'} does not exist" in message
    assert f"{PROJECT}:clusters.east.context: the kubeconfig file {kubeconfig} has no context 'k3d-east'; its contexts: k3d-west" in message


def test_kubeconfig_and_context_are_both_required_and_the_path_may_start_with_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_kubeconfig(tmp_path / "config", {"k3d-west": ("https://0.0.0.0:6443", {"token": "t"})})
    message = given_failure(FakeCloud(), {"west": {"kubeconfig": "~/config"}, "east": {"context": "k3d-east"}})
    assert f"{PROJECT}:clusters.west.context: is required" in message and f"{PROJECT}:clusters.east.kubeconfig: is required" in message
    assert "clusters.west.kubeconfig" not in message  # ~/config was found


def test_an_unreachable_server_and_refused_credentials_name_the_cluster(tmp_path):
    fakes = FakeCloud()
    gone = yaml.safe_load(closed_port_kubeconfig())["clusters"][0]["cluster"]["server"]
    with fakes.kubernetes.kubeconfig_cluster("east", NORTH_TOKEN) as east:
        kubeconfig = write_kubeconfig(tmp_path / "config", {"gone": (gone, {"token": "t"}), "east": (east.endpoint, {"token": "a-token-east-does-not-take"})})
        message = given_failure(fakes, {"west": {"kubeconfig": str(kubeconfig), "context": "gone"}, "east": {"kubeconfig": str(kubeconfig), "context": "east"}})
    assert f"{PROJECT}:clusters.west.kubeconfig: the API server {gone} of context 'gone' in {kubeconfig} did not answer" in message
    assert f"{PROJECT}:clusters.east.kubeconfig: the API server {east.endpoint} of context 'east' in {kubeconfig} refused the context's credentials (401)" in message


def test_a_failing_exec_plugin_is_named_with_its_cluster(tmp_path):
    fakes = FakeCloud()
    with fakes.kubernetes.kubeconfig_cluster("east", NORTH_TOKEN) as east:
        kubeconfig = write_kubeconfig(tmp_path / "config", {"east": (east.endpoint, {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws-not-installed", "args": ["eks", "get-token"]}})})
        message = given_failure(fakes, {"west": created("sfo3", 20), "east": {"kubeconfig": str(kubeconfig), "context": "east"}})
    assert f"{PROJECT}:clusters.east.kubeconfig: cluster 'east-cluster': the kubeconfig runs `aws-not-installed eks get-token` for credentials, but 'aws-not-installed' is not on PATH" in message


def test_an_adopted_cluster_that_does_not_exist_is_refused_before_anything_is_registered():
    message = given_failure(FakeCloud(), {"west": created("sfo3", 20), "east": {"existingCluster": "no-such-cluster"}})
    assert f"{PROJECT}:clusters.east.existingCluster: DigitalOcean has no Kubernetes cluster named 'no-such-cluster'" in message


def test_an_existing_cluster_named_by_its_id_is_the_same_as_by_its_name():
    fakes = FakeCloud()
    east = adopted_east(fakes)
    by_name = run_main(fakes, config=stack_values({"west": created("sfo3", 20), "east": {"existingCluster": "team-east"}}, [("west", "east")]), replace_config=True)
    # doctl takes a UUID for an id (commands/kubernetes.go): read directly, no listing involved.
    by_id = run_main(fakes, config=stack_values({"west": created("sfo3", 20), "east": {"existingCluster": east.id}}, [("west", "east")]), replace_config=True, prior=by_name)
    assert by_id.outputs["clusters"]["east"] == by_name.outputs["clusters"]["east"]
    assert {r.name: r.step for r in by_id.monitor.registrations.values() if r.step != "same"} == {}
    assert f"/v2/kubernetes/clusters/{east.id}" in fakes.digitalocean.api_requests


def test_a_cluster_listed_twice_is_refused(tmp_path):
    fakes = FakeCloud()
    adopted_east(fakes)
    fakes.digitalocean.add_existing("west-east-west", "sfo3", "1.35.6-do.1", cluster_subnet="172.20.0.0/16", service_subnet="192.168.20.0/24")
    with fakes.kubernetes.kubeconfig_cluster("north", NORTH_TOKEN) as north:
        # The same server under two contexts (and two names): one cluster.
        kubeconfig = write_kubeconfig(tmp_path / "config", {"north": (north.endpoint, {"token": NORTH_TOKEN}), "north-again": (north.endpoint + "/", {"token": NORTH_TOKEN})})
        clusters = {
            "west": created("sfo3", 20),
            "east": {"existingCluster": "team-east"},
            "east-again": {"existingCluster": "team-east"},
            "west-again": {"existingCluster": "west-east-west"},
            "north": {"kubeconfig": str(kubeconfig), "context": "north"},
            "north-again": {"kubeconfig": str(kubeconfig), "context": "north-again"},
        }
        message = given_failure(fakes, clusters)
    assert f"{PROJECT}:clusters.east-again.existingCluster: is the same cluster as clusters.east (the same identity)" in message
    assert f"{PROJECT}:clusters.west-again.existingCluster: is the same cluster as clusters.west (the same DOKS name)" in message
    assert f"{PROJECT}:clusters.north-again.kubeconfig: is the same cluster as clusters.north (the same identity)" in message


def test_a_stack_of_kubeconfig_clusters_needs_no_digitalocean_token(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    fakes = FakeCloud()
    with fakes.kubernetes.kubeconfig_cluster("west", NORTH_TOKEN) as west, fakes.kubernetes.kubeconfig_cluster("east", SOUTH_TOKEN) as east:
        kubeconfig = write_kubeconfig(tmp_path / "config", {"k3d-west": (west.endpoint, {"token": NORTH_TOKEN}), "k3d-east": (east.endpoint, {"token": SOUTH_TOKEN})})
        clusters = {name: {"kubeconfig": str(kubeconfig), "context": f"k3d-{name}"} for name in ("west", "east")}
        result = run_main(fakes, config=stack_values(clusters, [("west", "east")]), replace_config=True)
        assert fakes.invokes == []  # no DigitalOcean lookup at all
        assert result.outputs["mirroredServices"]["west"][0]["endpoints"] == [east.gateway_ip]
        # One DOKS cluster in the stack, and the token is needed again.
        with pytest.raises(pulumi.RunError, match="digitalocean:token: no DigitalOcean token"):
            run_main(FakeCloud(), config=stack_values({**clusters, "north": created("sfo3", 20)}, [("west", "east")]), replace_config=True)


def test_teardown_removes_what_was_installed_and_never_a_given_cluster(tmp_path):
    fakes = FakeCloud()
    team_east = adopted_east(fakes)
    with fakes.kubernetes.kubeconfig_cluster("north", NORTH_TOKEN) as north:
        kubeconfig = write_kubeconfig(tmp_path / "config", {"north": (north.endpoint, {"token": NORTH_TOKEN})})
        config = stack_values({"east": {"existingCluster": "team-east"}, "north": {"kubeconfig": str(kubeconfig), "context": "north"}}, [("east", "north"), ("north", "east")])
        deployed = run_main(fakes, config=config, replace_config=True)
        east = fakes.kubernetes.cluster_named("east")
        assert ("Secret", "linkerd-multicluster", "cluster-credentials-north") in east.objects
        # `pulumi destroy`: the program registers nothing, and the engine deletes the whole stack.
        destroyed = run(fakes, lambda: None, config, stack="west-east", prior=deployed)
        assert len(destroyed.deleted) == len(deployed.monitor.registrations)
        assert not [urn for urn in destroyed.deleted if "digitalocean:" in urn]
        # Linkerd's namespaces, which the program owns there, go once every release in them has.
        position = {urn.rsplit("::", 1)[-1]: index for index, urn in enumerate(destroyed.deleted)}
        for name in ("east", "north"):
            last_release = max(position[f"{chart}-{name}"] for chart in ("linkerd-crds", "linkerd-control-plane", "linkerd-viz", "linkerd-multicluster"))
            assert min(position[f"namespace-{namespace}-{name}"] for namespace in ("linkerd", "linkerd-viz", "linkerd-multicluster")) > last_release
        # The clusters stand: the existing one as DigitalOcean has it, the kubeconfig one answering.
        assert fakes.digitalocean.accounts_clusters["team-east"] is team_east and fakes.kubernetes.given[north.endpoint] is north
        for name in ("east", "north"):
            left = fakes.kubernetes.cluster_named(name).objects
            # No release, link, demo object or credentials copy is left.
            assert not [key for key in left if key[0] != "CustomResourceDefinition"], sorted(left)
            # Linkerd's own CRDs went with linkerd-crds; the Gateway API CRDs the cluster's owner installed stay.
            crds = {key[2] for key in left if key[0] == "CustomResourceDefinition"}
            assert crds == {f"{p}.gateway.networking.k8s.io" for p in ("gateways", "gatewayclasses", "httproutes", "grpcroutes", "tlsroutes", "referencegrants")}
        assert not [k for k in fakes.kubernetes.cluster_named("east").produced if "/secrets/cluster-credentials" in k]


# The k3d server nodes' addresses on the shared docker network (servicelb gives each gateway its node's).
K3D_NODE_IPS = {"west": "172.18.0.2", "east": "172.18.0.3"}
INSTALL_ALL = {"installGatewayAPI": True, "enableHttpRoutes": True, "enableTlsRoutes": True, "enableTcpRoutes": True}


def local_config(**api_server_addresses: str) -> dict[str, str]:
    """Pulumi.local.yaml's config with the apiServerAddress a user adds per cluster after creating it."""
    config = stack_config("local")
    clusters = json.loads(config[f"{PROJECT}:clusters"])
    for name, address in api_server_addresses.items():
        clusters[name]["apiServerAddress"] = address
    # The fakes answer at once: a bounded wait makes a broken link fail in 30 s, not 5 minutes.
    return {**config, f"{PROJECT}:clusters": json.dumps(clusters), f"{PROJECT}:waitTimeoutSeconds": "30"}


# What the docs tell a user to add: east is what west links to.
LOCAL_CONFIG = local_config(east=f"https://{K3D_NODE_IPS['east']}:6443")


@pytest.fixture
def k3d(tmp_path, monkeypatch):
    """Two k3d-like clusters, contexts k3d-west and k3d-east of ~/.kube/config, as `k3d cluster
    create <name> --network <shared>` leaves them (no Gateway API CRDs, a kubeconfig server on
    0.0.0.0), without a DigitalOcean token."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    fakes = FakeCloud()
    with fakes.kubernetes.kubeconfig_cluster("west", NORTH_TOKEN, k3d_node_ip=K3D_NODE_IPS["west"]) as west, fakes.kubernetes.kubeconfig_cluster("east", SOUTH_TOKEN, k3d_node_ip=K3D_NODE_IPS["east"]) as east:
        (tmp_path / ".kube").mkdir()
        kubeconfig = write_kubeconfig(tmp_path / ".kube" / "config", {"k3d-west": (west.endpoint, {"token": NORTH_TOKEN}), "k3d-east": (east.endpoint, {"token": SOUTH_TOKEN})})
        yield fakes, kubeconfig


@pytest.fixture
def local(k3d):
    """The local stack deployed on the k3d clusters, with east's apiServerAddress."""
    fakes, kubeconfig = k3d
    yield fakes, run_main(fakes, stack="local", config=LOCAL_CONFIG), kubeconfig


def test_the_local_stack_runs_the_seed_without_digitalocean(local):
    fakes, result, kubeconfig = local
    assert fakes.invokes == [] and not [r for r in result.monitor.registrations.values() if r.type.startswith("digitalocean:")]
    assert {name: parse_reference(text) for name, text in result.outputs["kubeconfigs"].items()} == {"west": (str(kubeconfig), "k3d-west"), "east": (str(kubeconfig), "k3d-east")}
    # servicelb: east's gateway is at its node's address on the docker network.
    assert result.outputs["gatewayAddresses"] == {"east": K3D_NODE_IPS["east"]}
    (mirror,) = result.outputs["mirroredServices"]["west"]
    assert mirror["name"] == "emojivoto/web-svc-east" and mirror["endpoints"] == [K3D_NODE_IPS["east"]]
    # k3s has no Gateway API CRDs: linkerd-crds installs them in both clusters.
    assert {cluster: unwrap(r.inputs["values"]) for (cluster, chart), r in releases(result).items() if chart == "linkerd-crds"} == {"west": INSTALL_ALL, "east": INSTALL_ALL}


def test_the_local_stack_without_easts_api_server_address_is_refused_before_anything_is_registered(k3d):
    fakes, _ = k3d
    with pytest.raises(pulumi.RunError, match=r"clusters.east.apiServerAddress: east's kubeconfig server http://0.0.0.0:\d+ is reachable from this machine only, so the link from west could never reach it; .*k3d-east"):
        run_main(fakes, stack="local", config={f"{PROJECT}:waitTimeoutSeconds": "1"})  # a short wait, should the check be gone
    assert fakes.registered == []


def test_east_reached_at_its_kubeconfig_server_would_mirror_nothing(k3d, monkeypatch):
    # The fake's own rule, without the config check: the link credentials naming 0.0.0.0 reach
    # nothing from west (k3s serves the other clusters at <node IP>:6443 only).
    fakes, _ = k3d
    monkeypatch.setattr("components.config._check_link_targets_reachable", lambda *args: None)
    with pytest.raises(Exception, match=r"mirrored service emojivoto/web-svc-east did not become ready within 1s \(the service does not exist\)"):
        run_main(fakes, stack="local", config={**stack_config("local"), f"{PROJECT}:waitTimeoutSeconds": "1"})


def test_verify_reads_the_local_stack_through_the_kubeconfig_the_outputs_name(local, tmp_path):
    # The user's kubeconfig, but for the servers (each cluster's fake API server, which takes the
    # context's own token): verify reads the file the outputs refer to, as `make verify` does.
    fakes, result, kubeconfig = local
    served = yaml.safe_load(kubeconfig.read_text())
    with ExitStack() as stack:
        for entry in served["clusters"]:
            cluster = fakes.kubernetes.given[entry["cluster"]["server"]]
            entry["cluster"]["server"] = stack.enter_context(fakes.kubernetes.serve(cluster)).url
        copy = write_text(tmp_path / "served-config", yaml.safe_dump(served))
        references = {name: kubeconfig_reference(str(copy), parse_reference(text)[1]) for name, text in result.outputs["kubeconfigs"].items()}
        outputs = parse_outputs(json.loads(json.dumps({**result.outputs, "kubeconfigs": references})))
        clusters = {name: KubeCluster(name, text) for name, text in references.items()}
        results = {(r.cluster, r.name): r for r in run_checks(outputs, clusters)}
    assert all(cluster.failure is None for cluster in clusters.values()), [str(c.failure) for c in clusters.values()]
    assert results[("west", "mirror-controller")].ok and results[("west", "mirrored-service")].ok


def test_the_dashboard_of_a_given_cluster_uses_its_kubeconfig_and_context(local, tmp_path, monkeypatch, capsys):
    _, result, kubeconfig = local
    outputs_file = write_text(tmp_path / "outputs.json", json.dumps(result.outputs))
    record = tmp_path / "kubectl-args"
    kubectl = write_text(tmp_path / "bin" / "kubectl", f'#!/bin/sh\necho "$@" > {record}\n')
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{kubectl.parent}:/usr/bin:/bin")
    assert dashboard_main(["east", "--outputs", str(outputs_file)]) == 0
    assert record.read_text().split() == ["--kubeconfig", str(kubeconfig), "--context", "k3d-east", "-n", "linkerd-viz", "port-forward", "svc/web", "8084:8084"]
    assert kubeconfig.exists(), "the user's kubeconfig is theirs to keep"


def write_text(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_client_certificate_context_authenticates_and_a_foreign_one_is_refused(tmp_path):
    # An HTTPS API server that takes client certificates its client CA signed (kube-apiserver's x509
    # authenticator); the kubeconfig names the CA, certificate and key as files beside it.
    cluster_ca, other_ca = new_ca("cluster-ca"), new_ca("someone-elses-ca")
    server_cert, server_key = signed_leaf(cluster_ca, "kube-apiserver", server_ip="127.0.0.1")
    with FakeKubeAPI("tls", tls=ServerTLS(server_cert, server_key, pem(cluster_ca.cert))) as api:
        api.put("/api/v1/namespaces/kube-system", {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "kube-system", "uid": "uid-of-tls"}})
        write_text(tmp_path / "ca.crt", pem(cluster_ca.cert))
        users = {}
        for name, ca in (("admin", cluster_ca), ("forged", other_ca)):
            cert, key = signed_leaf(ca, name)
            write_text(tmp_path / f"{name}.crt", cert)
            write_text(tmp_path / f"{name}.key", key)
            users[name] = (api.url, {"client-certificate": f"{name}.crt", "client-key": f"{name}.key"})
        # A plugin that answers with a client certificate instead of a token (client.authentication.k8s.io).
        cert, key = signed_leaf(cluster_ca, "plugin-user")
        plugin = write_text(tmp_path / "cert-plugin", f"#!{sys.executable} -S\nimport json\nprint(json.dumps({{'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential', 'status': {{'clientCertificateData': {cert!r}, 'clientKeyData': {key!r}}}}}))\n")
        plugin.chmod(0o755)
        users["plugin"] = (api.url, {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "./cert-plugin", "interactiveMode": "Never"}})
        kubeconfig = yaml.safe_load(write_kubeconfig(tmp_path / "config", users).read_text())
        for entry in kubeconfig["clusters"]:
            entry["cluster"]["certificate-authority"] = "ca.crt"
        write_text(tmp_path / "config", yaml.safe_dump(kubeconfig))
        spec = lambda context: KubeconfigClusterSpec(name=context, kubeconfig=str(tmp_path / "config"), context=context, server=api.url, ca_certificate=None)
        assert _kubeconfig_identity(spec("admin")) == "uid-of-tls" and _kubeconfig_identity(spec("plugin")) == "uid-of-tls"
        # kube-apiserver would answer 401; the fake refuses already in the handshake (tests/fake_kube_api.py).
        with pytest.raises(GivenClusterProblem, match="'forged'"):
            _kubeconfig_identity(spec("forged"))


def test_a_kubernetes_version_pin_asks_digitalocean_nothing_without_a_created_cluster(local):
    fakes, _, _ = local
    fakes.invokes.clear()
    run_main(fakes, stack="local", config={**LOCAL_CONFIG, f"{PROJECT}:kubernetesVersion": "1.35"})
    assert fakes.invokes == []


def test_a_preview_token_that_may_not_read_an_existing_cluster_says_so(monkeypatch):
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", PREVIEW_TOKEN)
    fakes = FakeCloud()
    adopted_east(fakes)
    with pytest.raises(pulumi.RunError) as raised:
        run_main(fakes, config=stack_values({"west": created("sfo3", 20), "east": {"existingCluster": "team-east"}}, [("west", "east")]), replace_config=True, preview=True)
    assert f"{PROJECT}:clusters.east.existingCluster: this DigitalOcean token gets no kubeconfig for 'team-east'" in str(raised.value)
    assert fakes.registered == []


def test_a_preview_of_the_local_stack_plans_what_up_creates(local):
    fakes, result, _ = local
    preview = run_main(fakes, stack="local", config=LOCAL_CONFIG, preview=True)
    assert set(preview.monitor.registrations) == set(result.monitor.registrations)


def test_a_second_up_of_the_local_stack_changes_nothing(local):
    fakes, result, _ = local
    again = run_main(fakes, stack="local", config=LOCAL_CONFIG, prior=result)
    assert {r.name: r.step for r in again.monitor.registrations.values() if r.step != "same"} == {}
    assert again.deleted == []


def test_a_linkerd_namespace_the_cluster_already_has_is_not_taken_over(tmp_path):
    # Someone's earlier Linkerd: the program would own (and on teardown delete) a namespace it
    # did not create, so the provider refuses to create it, as pulumi-kubernetes does.
    fakes = FakeCloud()
    fakes.kubernetes.preexisting = {"north": [("Namespace", "", "linkerd", {"owner": "someone"})]}
    with fakes.kubernetes.kubeconfig_cluster("north", NORTH_TOKEN) as north:
        kubeconfig = write_kubeconfig(tmp_path / "config", {"north": (north.endpoint, {"token": NORTH_TOKEN})})
        with pytest.raises(Exception, match='namespaces "linkerd" already exists'):
            run_main(fakes, config=stack_values({"west": created("sfo3", 20), "north": {"kubeconfig": str(kubeconfig), "context": "north"}}, [("west", "north")]), replace_config=True)
        assert north.objects[("Namespace", "", "linkerd")]["metadata"]["labels"] == {"owner": "someone"}
        assert "linkerd-crds" not in north.releases()
