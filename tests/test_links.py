"""Links without the CLI: west mirrors what east exports, the demo runs from config, and the
mirrored endpoints come back as stack outputs as the linking cluster really has them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pulumi.runtime.rpc import is_rpc_secret

from components.mirror import MirrorNotReady, wait_for_mirror, core_v1_for
from tests.fake_cloud import DO_TOKEN, FakeCloud
from tests.fake_kube_api import FakeKubeAPI
from tests.harness import PROJECT, run_main, unwrap
from tests.test_linkerd import provider_cluster, releases

TOKEN = {"digitalocean:token": DO_TOKEN}
# The openAPIV3Schema of Linkerd's Link CRD, version v1alpha3 (descriptions removed).
LINK_SCHEMA = json.loads((Path(__file__).parent / "data" / "link_v1alpha3_schema.json").read_text())
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"
SECRET = "kubernetes:core/v1:Secret"


@pytest.fixture(scope="module")
def seed():
    fakes = FakeCloud()
    return fakes, run_main(fakes, config=TOKEN)


def of_kind(result, type_: str, cluster: str) -> list:
    return [r for r in result.monitor.of_type(type_) if not r.read and provider_cluster(r) == cluster]


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


def test_link_names_agree(seed):
    _, result = seed
    (link,) = of_kind(result, LINK, "west")
    spec = unwrap(link.inputs["spec"])
    controllers = unwrap(releases(result)[("west", "linkerd-multicluster")].inputs["values"])["controllers"]
    secrets = of_kind(result, SECRET, "west")
    assert link.inputs["metadata"]["name"] == spec["targetClusterName"] == "east"
    assert link.inputs["metadata"]["namespace"] == "linkerd-multicluster"
    assert controllers == [{"link": {"ref": {"name": "east"}}}]
    assert {s.inputs["metadata"]["name"] for s in secrets} == {spec["clusterCredentialsSecret"]} == {"cluster-credentials-east"}
    assert {s.inputs["metadata"]["namespace"] for s in secrets} == {"linkerd-multicluster", "linkerd"}
    (labelled,) = [s for s in secrets if s.inputs["metadata"]["namespace"] == "linkerd"]
    assert labelled.inputs["metadata"]["labels"] == {"multicluster.linkerd.io/cluster-name": "east"}
    # The Link is created after its credentials and the controller's chart.
    waits = result.monitor.ancestors_and_deps(link.urn)
    assert {s.urn for s in secrets} <= waits
    assert releases(result)[("west", "linkerd-multicluster")].urn in waits


def test_credentials_reach_east_with_the_remote_access_token(seed):
    fakes, result = seed
    east = fakes.kubernetes.cluster_named("east")
    for secret in of_kind(result, SECRET, "west"):
        assert secret.inputs["type"] == "mirror.linkerd.io/remote-kubeconfig"
        data = secret.inputs["data"]
        assert is_rpc_secret(data) or is_rpc_secret(data["kubeconfig"])
        assert is_rpc_secret(secret.state["data"])
        kubeconfig = yaml.safe_load(base64.b64decode(unwrap(secret.inputs["data"])["kubeconfig"]))
        cluster = kubeconfig["clusters"][0]["cluster"]
        assert cluster["server"] == east.endpoint
        assert base64.b64decode(cluster["certificate-authority-data"]).decode() == fakes.digitalocean.clusters[east.endpoint]["ca"]
        assert kubeconfig["users"][0]["user"]["token"] == east.remote_access_token
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
    labels = {(provider_cluster(s), s.inputs["metadata"]["name"]): s.inputs["metadata"].get("labels", {}) for s in result.monitor.of_type("kubernetes:core/v1:Service") if not s.read}
    exported = {key for key, value in labels.items() if value.get("mirror.linkerd.io/exported") == "true"}
    assert exported == {("east", "web-svc")}


def test_demo_off_creates_nothing_of_the_demo_and_labels_the_service_in_place(monkeypatch):
    fakes = FakeCloud()
    with pytest.raises(MirrorNotReady) as raised:
        run_main(fakes, config={**TOKEN, f"{PROJECT}:demo": "false", f"{PROJECT}:mirrorTimeoutSeconds": "1"})
    demo_types = {"kubernetes:core/v1:Namespace", "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ServiceAccount"}
    assert not [r for r in fakes.registered if r[0] in demo_types]
    (patch,) = [reg for reg in fakes.kubernetes.cluster_named("east").objects if reg[0] == "ServicePatch"]
    assert patch == ("ServicePatch", "emojivoto", "web-svc")
    # Without the demo, west has no emojivoto namespace, so no mirror can appear: the wait says so.
    message = str(raised.value)
    assert "link west->east: mirrored service emojivoto/web-svc-east did not become ready within 1s" in message
    for cause in ("gateway is unreachable", "namespace 'emojivoto' does not exist in the linking cluster", "not exported"):
        assert cause in message


def test_remote_discovery_exports_are_labelled_for_it_and_not_waited_for():
    exports = [{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "remote-discovery"}]
    fakes = FakeCloud()
    result = run_main(fakes, config={**TOKEN, f"{PROJECT}:exports": json.dumps(exports)})
    (web,) = [s for s in result.monitor.of_type("kubernetes:core/v1:Service") if not s.read and provider_cluster(s) == "east" and s.inputs["metadata"]["name"] == "web-svc"]
    assert web.inputs["metadata"]["labels"]["mirror.linkerd.io/exported"] == "remote-discovery"
    assert result.outputs["mirroredServices"] == {}
    # No gateway mirror for this export, so west's vote-bot keeps to its own web service.
    (bot,) = [d for d in result.monitor.of_type("kubernetes:apps/v1:Deployment") if provider_cluster(d) == "west" and d.inputs["metadata"]["name"] == "vote-bot"]
    assert bot.inputs["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "WEB_HOST", "value": "web-svc.emojivoto:80"}]


def test_empty_remote_access_token_stops_before_the_link():
    fakes = FakeCloud()
    fakes.kubernetes.token_missing_in.add("east")
    with pytest.raises(Exception, match=r"linkerd-service-mirror-remote-access-default-token Secret in cluster 'east' has no token yet.*pulumi up"):
        run_main(fakes, config=TOKEN)
    assert not [r for r in fakes.registered if r[0] == LINK or (r[0] == SECRET and "credentials" in r[1])]


def test_preview_shows_the_expected_mirror_without_waiting():
    fakes = FakeCloud()
    result = run_main(fakes, config=TOKEN, preview=True)
    (mirror,) = result.monitor.of_type("pulumi-python:dynamic:Resource")
    assert (unwrap(mirror.inputs["namespace"]), unwrap(mirror.inputs["service"]), unwrap(mirror.inputs["link"])) == ("emojivoto", "web-svc-east", "west->east")
    assert "clusterIP" not in mirror.state or mirror.state["clusterIP"] is None


class TestWaitForMirror:
    """The wait itself, against a fake API server the real client talks to."""

    def wait(self, api: FakeKubeAPI, timeout: float = 2.0):
        return wait_for_mirror(core_v1_for(api.kubeconfig()), link="west->east", namespace="emojivoto", service="web-svc-east", timeout_seconds=timeout)

    def test_returns_cluster_ip_and_ready_addresses(self):
        with FakeKubeAPI() as api:
            api.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.7")
            api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.20"], port=4143, not_ready=["203.0.113.99"])
            assert self.wait(api) == {"clusterIP": "10.245.0.7", "endpoints": ["203.0.113.20"]}

    def test_waits_for_a_mirror_that_appears_later(self):
        with FakeKubeAPI() as api:
            import threading

            def appear():
                api.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.8")
                api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.20"], port=4143)

            timer = threading.Timer(0.3, appear)
            timer.start()
            try:
                assert self.wait(api, timeout=5)["endpoints"] == ["203.0.113.20"]
            finally:
                timer.cancel()

    def test_times_out_on_a_mirror_without_endpoints(self):
        with FakeKubeAPI() as api:
            api.put_service("emojivoto", "web-svc-east")
            api.put_endpoints("emojivoto", "web-svc-east", [])
            with pytest.raises(MirrorNotReady, match="the service exists but has no endpoints"):
                self.wait(api, timeout=0.3)

    def test_other_api_errors_are_not_mistaken_for_a_missing_mirror(self):
        from kubernetes.client.exceptions import ApiException

        with FakeKubeAPI() as api:
            with pytest.raises(ApiException) as raised:
                wait_for_mirror(core_v1_for(api.kubeconfig(token="wrong")), link="west->east", namespace="emojivoto", service="web-svc-east", timeout_seconds=1)
            assert raised.value.status == 401
