"""Links without the CLI: west mirrors what east exports, the demo runs from config, and the
mirrored endpoints come back as stack outputs as the linking cluster really has them."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import jsonschema
import pulumi
import pytest
import yaml

from components.config import ClusterSpec
from components.link import ClusterLink, LinkArgs
from components.live_read import WaitTimedOut
from components.mirror import MirroredServiceProvider
from tests.fake_cloud import DO_TOKEN, FakeCloud
from tests.fake_kube_api import FakeKubeAPI, core_path
from tests.harness import PROJECT, run, run_main, stack_config, unwrap
from tests.live_props import mirror_props
from tests.program import lone_cluster, provider_cluster, releases

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
# The openAPIV3Schema of Linkerd's Link CRD, version v1alpha3 (descriptions removed).
LINK_SCHEMA = json.loads((Path(__file__).parent / "data" / "link_v1alpha3_schema.json").read_text())
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"
DYNAMIC = "pulumi-python:dynamic:Resource"


@pytest.fixture(scope="module")
def seed():
    fakes = FakeCloud()
    return fakes, run_main(fakes, config=TOKEN)


def of_kind(result, type_: str, cluster: str) -> list:
    return [r for r in result.monitor.of_type(type_) if provider_cluster(r) == cluster]


def test_link_is_valid_against_the_crd_schema(seed):
    _, result = seed
    (link,) = of_kind(result, LINK, "west")
    body = {"spec": unwrap(link.inputs["spec"])}
    jsonschema.validate(body, LINK_SCHEMA)
    # The CRD preserves no unknown fields: a misspelt key would be dropped silently.
    assert set(body["spec"]) <= set(LINK_SCHEMA["properties"]["spec"]["properties"])
    assert set(body["spec"]["probeSpec"]) <= set(LINK_SCHEMA["properties"]["spec"]["properties"]["probeSpec"]["properties"])


def test_link_targets_east_through_its_live_gateway(seed):
    fakes, result = seed
    (link,) = of_kind(result, LINK, "west")
    spec = unwrap(link.inputs["spec"])
    assert link.inputs["apiVersion"] == "multicluster.linkerd.io/v1alpha3" and link.inputs["kind"] == "Link"
    assert spec["gatewayAddress"] == fakes.kubernetes.cluster_named("east").gateway_ip == result.outputs["gatewayAddresses"]["east"]
    assert spec["gatewayPort"] == "4143"
    assert spec["gatewayIdentity"] == "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
    assert spec["probeSpec"]["path"] == "/ready" and spec["probeSpec"]["port"] == "4191" and spec["probeSpec"]["period"] == "3s"
    # An empty selector would mirror nothing.
    assert spec["selector"] == {"matchLabels": {"mirror.linkerd.io/exported": "true"}}
    assert spec["remoteDiscoverySelector"] == {"matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}}
    assert spec["federatedServiceSelector"] == {"matchLabels": {"mirror.linkerd.io/federated": "member"}}
    assert not of_kind(result, LINK, "east"), "east links to nothing"


def credentials_in(cluster) -> dict[str, dict]:
    """namespace -> the `cluster-credentials-*` Secret written into the simulated cluster."""
    return {namespace: obj for (kind, namespace, name), obj in cluster.objects.items() if kind == "Secret" and name.startswith("cluster-credentials-")}


def test_link_names_agree(seed):
    fakes, result = seed
    (link,) = of_kind(result, LINK, "west")
    spec = unwrap(link.inputs["spec"])
    controllers = unwrap(releases(result)[("west", "linkerd-multicluster")].inputs["values"])["controllers"]
    secrets = credentials_in(fakes.kubernetes.cluster_named("west"))
    assert link.inputs["metadata"]["name"] == spec["targetClusterName"] == "east"
    assert link.inputs["metadata"]["namespace"] == "linkerd-multicluster"
    assert controllers == [{"link": {"ref": {"name": "east"}}}]
    assert {s["metadata"]["name"] for s in secrets.values()} == {spec["clusterCredentialsSecret"]} == {"cluster-credentials-east"}
    assert set(secrets) == {"linkerd-multicluster", "linkerd"}
    assert secrets["linkerd"]["metadata"]["labels"] == {"multicluster.linkerd.io/cluster-name": "east"}
    # The Link is created after its credentials (copied by LinkCredentials) and the controller's chart.
    (credentials,) = [r for r in result.monitor.of_type(DYNAMIC) if "tokenSecret" in r.inputs]
    waits = result.monitor.ancestors_and_deps(link.urn)
    assert credentials.urn in waits
    assert releases(result)[("west", "linkerd-multicluster")].urn in waits
    # ...which waits for the target's chart, which creates the remote-access account.
    assert releases(result)[("east", "linkerd-multicluster")].urn in result.monitor.ancestors_and_deps(credentials.urn)


def test_credentials_reach_east_with_wests_own_remote_access_token(seed):
    fakes, _ = seed
    east = fakes.kubernetes.cluster_named("east")
    for secret in credentials_in(fakes.kubernetes.cluster_named("west")).values():
        assert secret["type"] == "mirror.linkerd.io/remote-kubeconfig"
        kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
        cluster = kubeconfig["clusters"][0]["cluster"]
        assert cluster["server"] == east.endpoint
        assert base64.b64decode(cluster["certificate-authority-data"]).decode() == east.ca_pem
        assert kubeconfig["users"][0]["user"] == {"token": east.remote_access_token("linkerd-service-mirror-remote-access-west")}
        assert DO_TOKEN not in json.dumps(kubeconfig), "a linked cluster must not get our DigitalOcean token"


def test_mirrored_services_are_read_back_from_west(seed):
    fakes, result = seed
    east = fakes.kubernetes.cluster_named("east")
    (mirror,) = result.outputs["mirroredServices"]["west"]
    assert mirror["name"] == "emojivoto/web-svc-east" and mirror["target"] == "east"
    assert mirror["endpoints"] == [east.gateway_ip]
    assert mirror["clusterIP"].startswith("10.245.")
    assert set(result.outputs["mirroredServices"]) == {"west"}
    assert "kubeconfig" not in json.dumps(result.outputs["mirroredServices"])


def test_demo_vote_bot_of_west_calls_east_through_the_mirror(seed):
    _, result = seed
    deployments = {(provider_cluster(d), d.inputs["metadata"]["name"]): d for d in result.monitor.of_type("kubernetes:apps/v1:Deployment")}
    assert sorted(deployments) == sorted((c, app) for c in ("west", "east") for app in ("emoji", "voting", "web", "vote-bot"))

    def web_host(cluster):
        (container,) = deployments[(cluster, "vote-bot")].inputs["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e["value"] for e in container["env"]}["WEB_HOST"]

    assert web_host("west") == "web-svc-east.emojivoto:80"
    assert web_host("east") == "web-svc.emojivoto:80"
    namespaces = result.monitor.of_type("kubernetes:core/v1:Namespace")
    assert {n.inputs["metadata"]["annotations"]["linkerd.io/inject"] for n in namespaces} == {"enabled"}
    # Meshed only if the injector is ready when the pods are created.
    for namespace in namespaces:
        control_plane = releases(result)[(provider_cluster(namespace), "linkerd-control-plane")].urn
        assert control_plane in result.monitor.ancestors_and_deps(namespace.urn)


def test_only_the_exported_demo_service_carries_the_export_label(seed):
    _, result = seed
    labels = {(provider_cluster(s), s.inputs["metadata"]["name"]): s.inputs["metadata"].get("labels", {}) for s in result.monitor.of_type("kubernetes:core/v1:Service")}
    exported = {key for key, value in labels.items() if value.get("mirror.linkerd.io/exported") == "true"}
    assert exported == {("east", "web-svc")}


def test_a_mirror_that_never_becomes_ready_fails_the_update_with_the_likely_causes():
    fakes = FakeCloud()
    fakes.kubernetes.unreachable_gateways.add("east")
    with pytest.raises(WaitTimedOut) as raised:
        run_main(fakes, config={**TOKEN, f"{PROJECT}:waitTimeoutSeconds": "1"})
    message = str(raised.value)
    assert "link west->east: mirrored service emojivoto/web-svc-east did not become ready within 1s (the service exists but has no endpoints)" in message
    for cause in ("gateway is unreachable", "namespace 'emojivoto' does not exist in the linking cluster", "not exported"):
        assert cause in message


def test_remote_discovery_exports_are_labelled_for_it_and_not_waited_for():
    exports = [{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "remote-discovery"}]
    # remote-discovery needs the pods routable between the clusters: one region, one VPC.
    clusters = json.loads(stack_config("west-east")[f"{PROJECT}:clusters"])
    clusters["east"]["region"] = clusters["west"]["region"]
    fakes = FakeCloud()
    result = run_main(fakes, config={**TOKEN, f"{PROJECT}:exports": json.dumps(exports), f"{PROJECT}:clusters": json.dumps(clusters)})
    # The destination controller accepts the credentials copy only with its annotations.
    assert set(fakes.kubernetes.cluster_named("west").discovery_credentials) == {"east"}
    (web,) = [s for s in result.monitor.of_type("kubernetes:core/v1:Service") if provider_cluster(s) == "east" and s.inputs["metadata"]["name"] == "web-svc"]
    assert web.inputs["metadata"]["labels"]["mirror.linkerd.io/exported"] == "remote-discovery"
    assert result.outputs["mirroredServices"] == {}
    # No gateway mirror for this export, so west's vote-bot keeps to its own web service.
    (bot,) = [d for d in result.monitor.of_type("kubernetes:apps/v1:Deployment") if provider_cluster(d) == "west" and d.inputs["metadata"]["name"] == "vote-bot"]
    assert bot.inputs["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "WEB_HOST", "value": "web-svc.emojivoto:80"}]


def test_empty_remote_access_token_stops_before_the_link():
    fakes = FakeCloud()
    fakes.kubernetes.token_missing_in.add("east")
    with pytest.raises(WaitTimedOut, match=r"link west->east: the linkerd-multicluster/linkerd-service-mirror-remote-access-west-token Secret in cluster 'east' has no token after 1s \(the token controller has not filled in its token yet\).*pulumi up"):
        run_main(fakes, config={**TOKEN, f"{PROJECT}:waitTimeoutSeconds": "1"})
    assert not [r for r in fakes.registered if r[0] == LINK]
    assert not credentials_in(fakes.kubernetes.cluster_named("west"))


def test_preview_reads_nothing_and_shows_the_expected_mirror():
    fakes = FakeCloud()
    result = run_main(fakes, config=TOKEN, preview=True)
    # Nothing is read from a cluster during a preview (the recording monitor refuses `.get` reads).
    assert fakes.dynamic_creates == []
    reads = {unwrap(r.inputs["objectId"]): r for r in result.monitor.of_type(DYNAMIC) if "objectId" in r.inputs}
    assert sorted(reads) == ["emojivoto/web-svc-east", "linkerd-multicluster/linkerd-gateway"]
    mirror = reads["emojivoto/web-svc-east"]
    assert (unwrap(mirror.inputs["namespace"]), unwrap(mirror.inputs["service"]), unwrap(mirror.inputs["link"])) == ("emojivoto", "web-svc-east", "west->east")


def test_no_dynamic_resource_stores_a_remote_access_token(seed):
    fakes, result = seed
    token = fakes.kubernetes.cluster_named("east").remote_access_token("linkerd-service-mirror-remote-access-west")
    (credentials,) = [r for r in result.monitor.of_type(DYNAMIC) if "tokenSecret" in r.inputs]
    assert unwrap(credentials.state["fingerprint"]).startswith("sha256:")
    for dynamic in result.monitor.of_type(DYNAMIC):
        assert token not in json.dumps(unwrap(dynamic.inputs)) + json.dumps(unwrap(dynamic.state))


class TestMirroredServiceProvider:
    """The provider itself, against a fake API server the real client talks to."""

    def test_returns_cluster_ip_and_ready_addresses(self):
        with FakeKubeAPI() as api:
            api.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.7")
            api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.20"], port=4143, not_ready=["203.0.113.99"])
            created = MirroredServiceProvider().create(mirror_props(api))
        assert created.id == "emojivoto/web-svc-east"
        assert (created.outs["clusterIP"], created.outs["endpoints"]) == ("10.245.0.7", ["203.0.113.20"])

    def test_waits_for_a_mirror_that_appears_later(self):
        with FakeKubeAPI() as api:

            def appear():
                api.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.8")
                api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.20"], port=4143)

            timer = threading.Timer(0.3, appear)
            timer.start()
            try:
                assert MirroredServiceProvider().create(mirror_props(api, timeout=5)).outs["endpoints"] == ["203.0.113.20"]
            finally:
                timer.cancel()

    def test_times_out_on_a_mirror_without_endpoints(self):
        with FakeKubeAPI() as api:
            api.put_service("emojivoto", "web-svc-east")
            api.put_endpoints("emojivoto", "web-svc-east", [])
            with pytest.raises(WaitTimedOut, match="the service exists but has no endpoints"):
                MirroredServiceProvider().create(mirror_props(api, timeout=0.3))

    def test_waits_until_the_mirror_follows_a_moved_gateway(self):
        with FakeKubeAPI() as api:
            api.put_service("emojivoto", "web-svc-east")
            api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.20"], port=4143)
            with pytest.raises(WaitTimedOut, match=r"its endpoints \['203.0.113.20'\] are not the gateway's address 203.0.113.77 yet"):
                MirroredServiceProvider().create(mirror_props(api, timeout=0.3, gateway="203.0.113.77"))

    def test_other_api_errors_are_not_mistaken_for_a_missing_mirror(self):
        from kubernetes.client.exceptions import ApiException

        with FakeKubeAPI() as api:
            props = {**mirror_props(api), "kubeconfig": api.kubeconfig(token="wrong")}
            with pytest.raises(ApiException) as raised:
                MirroredServiceProvider().create(props)
        assert raised.value.status == 401

    def test_a_new_token_is_stored_without_reading_again_but_a_moved_gateway_is_read_again(self):
        provider = MirroredServiceProvider()
        with FakeKubeAPI() as api:
            olds = {**mirror_props(api), "clusterIP": "10.245.0.7", "endpoints": ["203.0.113.20"]}
        news = {**mirror_props(api), "kubeconfig": "another token"}
        rotated = provider.diff("id", olds, news)
        assert rotated.changes and not rotated.replaces
        updated = provider.update("id", olds, news).outs
        assert updated["kubeconfig"] == "another token" and updated["clusterIP"] == "10.245.0.7"
        moved = provider.diff("id", olds, mirror_props(api, gateway="203.0.113.77"))
        assert moved.changes and moved.replaces == ["gatewayAddress"]

    def test_refresh_reads_the_live_mirror_and_forgets_a_vanished_one(self):
        provider = MirroredServiceProvider()
        with FakeKubeAPI() as api:
            api.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.9")
            api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.20"], port=4143)
            assert provider.read("emojivoto/web-svc-east", mirror_props(api)).outs["clusterIP"] == "10.245.0.9"
            api.delete(core_path("emojivoto", "services", "web-svc-east"))
            # Gone: the next `pulumi up` creates (waits for) it again.
            assert provider.read("emojivoto/web-svc-east", mirror_props(api)).id is None


def test_link_component_alone():
    def program():
        source = lone_cluster(ClusterSpec("west", "sfo3", "s-4vcpu-8gb", 3))
        ClusterLink(
            "west-to-far",
            LinkArgs(
                source="west",
                source_provider=source.provider,
                source_kubeconfig=source.kubeconfig,
                target="far",
                target_kubeconfig="far-kubeconfig",
                target_endpoint="https://far.example",
                target_ca_certificate=base64.b64encode(b"far-ca").decode(),
                target_gateway_address="198.51.100.9",
                source_multicluster=source.provider,
                credentials_after=[],
                timeout_seconds=5,
            ),
        )

    # A preview: "far" is no cluster the fakes could serve.
    result = run(FakeCloud(), program, stack="test", preview=True)
    (link,) = result.monitor.of_type(LINK)
    spec = unwrap(link.inputs["spec"])
    assert (link.inputs["metadata"]["name"], spec["targetClusterName"], spec["gatewayAddress"]) == ("far", "far", "198.51.100.9")
    (credentials,) = result.monitor.of_type(DYNAMIC)
    inputs = unwrap(credentials.inputs)
    assert (inputs["source"], inputs["target"], inputs["tokenSecret"]) == ("west", "far", "linkerd-service-mirror-remote-access-west-token")
    assert (inputs["targetEndpoint"], inputs["targetKubeconfig"]) == ("https://far.example", "far-kubeconfig")
    assert credentials.urn in link.dependencies
