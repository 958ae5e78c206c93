"""The live reads on every engine path: diff (in an update and in a preview), refresh, and the
`pulumi up` after each. The providers run against a fake API server; the program-level tests
run the program twice on the same fakes, the second time as an update of the first's state."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import pulumi
import pulumi.dynamic
import pytest
from pulumi.runtime import rpc

from components import link_credentials, live_read, multicluster
from components.kubeconfigs import exec_kubeconfig
from components.link_credentials import LinkCredentialsProvider
from components.mirror import MirroredServiceProvider
from components.multicluster import GatewayAddressProvider
from tests.fake_cloud import FakeCloud
from tests.fake_kube_api import FakeKubeAPI, SilentServer, core_path
from tests.harness import PROJECT, Run, run, run_main, unwrap
from tests.live_props import GATEWAY, credentials_props, mirror_props
from tests.program import provider_cluster

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
DYNAMIC = "pulumi-python:dynamic:Resource"
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"
MOVED = "203.0.113.77"


def gateway_props(api: FakeKubeAPI, **outputs) -> dict:
    return {"__provider": "pickled-provider", "kubeconfig": api.kubeconfig(), "timeoutSeconds": 300, "objectId": "x", "cluster": "east", "address": None, **outputs}


def put_gateway(api: FakeKubeAPI, address) -> None:
    ingress = [{"ip": address}] if address else []
    api.put(core_path("linkerd-multicluster", "services", "linkerd-gateway"), {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "linkerd-gateway", "namespace": "linkerd-multicluster"}, "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": ingress}}})


class TestDiff:
    def test_a_new_pickled_provider_or_timeout_changes_nothing(self):
        # The engine passes `__provider` in both (sdk/python/lib/pulumi/dynamic/__main__.py, Diff):
        # a new Python or dill version pickles the same provider differently.
        with FakeKubeAPI() as api:
            stored = mirror_props(api, clusterIP="10.245.0.7", endpoints=[GATEWAY])
            for change in ({"__provider": "pickled-by-another-dill"}, {"timeoutSeconds": 60}):
                diff = MirroredServiceProvider().diff("id", stored, {**mirror_props(api), **change})
                assert (diff.changes, diff.replaces) == (False, []), change

    def test_a_mirror_refreshed_while_not_ready_is_read_again(self):
        with FakeKubeAPI() as api:
            refreshed = mirror_props(api, clusterIP="10.245.0.7", endpoints=["203.0.113.5"])
            diff = MirroredServiceProvider().diff("id", refreshed, mirror_props(api))
        assert diff.changes and diff.replaces == ["clusterIP", "endpoints"]


class TestRefresh:
    """`pulumi refresh` calls Read; an empty id makes the engine drop the resource from the state
    (pkg/resource/deploy/step.go, RefreshStep.Apply), so only a 404 may answer with one."""

    def test_a_mirror_in_each_state(self):
        provider = MirroredServiceProvider()
        with FakeKubeAPI() as api:
            read = lambda: provider.read("emojivoto/web-svc-east", mirror_props(api))  # noqa: E731
            assert read().id is None, "gone"
            api.put_service("emojivoto", "web-svc-east", cluster_ip="10.245.0.9")
            api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.5"], port=4143)
            not_ready = read()
            assert not_ready.id == "emojivoto/web-svc-east", "still pointing at the old gateway, but there"
            assert (not_ready.outs["clusterIP"], not_ready.outs["endpoints"]) == ("10.245.0.9", ["203.0.113.5"])
            api.put_endpoints("emojivoto", "web-svc-east", [GATEWAY], port=4143)
            assert read().outs["endpoints"] == [GATEWAY]

    def test_a_gateway_without_an_address_is_kept_and_read_again_on_the_next_up(self):
        provider = GatewayAddressProvider()
        with FakeKubeAPI() as api:
            put_gateway(api, None)
            refreshed = provider.read("x", gateway_props(api, address=GATEWAY))
            assert refreshed.id == "x" and refreshed.outs["address"] is None
            put_gateway(api, GATEWAY)
            diff = provider.diff("x", refreshed.outs, gateway_props(api))
        assert diff.replaces == ["address"]


class TestGatewayLook:
    """The gateway read's diff looks at the live Service, once, so that a plain `pulumi up`
    notices a load balancer that got a new address."""

    def test_a_moved_address_is_read_again_and_an_unmoved_one_is_not(self):
        provider = GatewayAddressProvider()
        with FakeKubeAPI() as api:
            put_gateway(api, GATEWAY)
            assert provider.diff("x", gateway_props(api, address=GATEWAY), gateway_props(api)).changes is False
            put_gateway(api, MOVED)
            assert provider.diff("x", gateway_props(api, address=GATEWAY), gateway_props(api)).replaces == ["address"]

    def test_no_look_when_the_cluster_is_changing_or_cannot_be_reached(self):
        provider = GatewayAddressProvider()
        with FakeKubeAPI() as api:
            put_gateway(api, MOVED)
            stored = gateway_props(api, address=GATEWAY)
            # In a preview of a replaced cluster the new kubeconfig is unknown: no look.
            unknown = provider.diff("x", stored, {**gateway_props(api), "kubeconfig": rpc.UNKNOWN})
            assert api.requests == [] and unknown.replaces == []
        # The server is gone (a preview without access to the cluster): the inputs decide.
        closed = provider.diff("x", stored, gateway_props(api))
        assert (closed.changes, closed.replaces) == (False, [])


class StoresWhatItMade(pulumi.dynamic.ResourceProvider):
    """Makes `made` once; a new `value` is an update that keeps it."""

    def create(self, props):
        return pulumi.dynamic.CreateResult("thing", {**props, "made": "at create"})

    def diff(self, _id, olds, news):
        return pulumi.dynamic.DiffResult(changes=olds["value"] != news["value"], replaces=[])

    def update(self, _id, olds, news):
        return pulumi.dynamic.UpdateResult({**news, "made": olds["made"]})


class Thing(pulumi.dynamic.Resource):
    made: pulumi.Output[str]


def test_the_fakes_preview_an_update_as_the_engine_does():
    """A dynamic provider does not support previews, so the engine shows an update's new inputs
    as its outputs (pkg/resource/plugin/provider_plugin.go, Update: `!protocol.supportsPreview`);
    the update itself keeps what the provider returns."""

    def program():
        thing = Thing(StoresWhatItMade(), "thing", {"value": pulumi.Config().require("value"), "made": None})
        pulumi.export("made", thing.made)

    fakes = FakeCloud()
    first = run(fakes, program, {f"{PROJECT}:value": "1"})
    preview = run(fakes, program, {f"{PROJECT}:value": "2"}, preview=True, prior=first)
    update = run(fakes, program, {f"{PROJECT}:value": "2"}, prior=first)
    assert (first.outputs["made"], preview.outputs["made"], update.outputs["made"]) == ("at create", None, "at create")
    assert [r.step for r in (*preview.monitor.of_type(DYNAMIC), *update.monitor.of_type(DYNAMIC))] == ["update", "update"]


@dataclass
class Runs:
    east_gateway: str  # before it moved
    preview: Run  # of a timeout change, after the first `up`
    moved: Run  # a plain `up` after east's gateway got a new address


@pytest.fixture(scope="module")
def runs() -> Runs:
    fakes = FakeCloud()
    first = run_main(fakes, config=TOKEN)
    preview = run_main(fakes, config={**TOKEN, f"{PROJECT}:waitTimeoutSeconds": "120"}, preview=True, prior=first)
    east = fakes.kubernetes.cluster_named("east")
    east_gateway, east.gateway_ip = east.gateway_ip, MOVED  # DigitalOcean gave the load balancer a new address
    return Runs(east_gateway, preview, run_main(fakes, config=TOKEN, prior=first))


def steps(result: Run, type_: str = DYNAMIC) -> dict[str, str]:
    return {r.name: r.step for r in result.monitor.of_type(type_)}


def test_a_preview_of_a_timeout_change_replaces_nothing_and_knows_the_address(runs):
    # A provider without preview support shows an update's new inputs as its outputs in a
    # preview (pkg/resource/plugin/provider_plugin.go); the fakes model it.
    assert set(steps(runs.preview).values()) == {"same"}
    assert set(steps(runs.preview, LINK).values()) == {"same"}
    assert runs.preview.outputs["gatewayAddresses"] == {"east": runs.east_gateway}
    (mirror,) = runs.preview.outputs["mirroredServices"]["west"]
    assert mirror["endpoints"] == [runs.east_gateway]


def test_a_plain_up_follows_a_gateway_that_moved(runs):
    moved = runs.moved
    assert moved.outputs["gatewayAddresses"] == {"east": MOVED}
    (link,) = [r for r in moved.monitor.of_type(LINK) if provider_cluster(r) == "west"]
    assert (link.step, unwrap(link.inputs["spec"])["gatewayAddress"]) == ("update", MOVED)
    (mirror,) = moved.outputs["mirroredServices"]["west"]
    assert mirror["endpoints"] == [MOVED]
    assert steps(moved)["mirror-west-emojivoto-web-svc-east"] == "replace"


def diff_in_thread(diff, seconds: float = 30) -> pulumi.dynamic.DiffResult:
    """`diff()`, or a failure instead of a stalled suite when it has not returned after `seconds`
    (many times what it should take)."""
    results: list = []
    worker = threading.Thread(target=lambda: results.append(diff()), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert results, "the diff is still waiting for something that never answers"
    return results[0]


@pytest.mark.parametrize("provider", ["gateway", "credentials"])
def test_a_diffs_look_at_a_cluster_that_never_answers_is_one_bounded_request(monkeypatch, provider):
    # A preview's diff looks at live clusters; one that accepts connections and never answers
    # (a hung API server) must cost one request of REQUEST_TIMEOUT, not urllib3's retries, let
    # alone a socket read without any timeout.
    for module in (multicluster, link_credentials):
        monkeypatch.setattr(module, "REQUEST_TIMEOUT", (1, 0.2), raising=False)
    with SilentServer("east") as silent:
        if provider == "gateway":
            stored = gateway_props(silent, address=GATEWAY)
            result = diff_in_thread(lambda: GatewayAddressProvider().diff("x", stored, gateway_props(silent)))
        else:
            stored = {**credentials_props(silent, silent), "fingerprint": "sha256:stored"}
            result = diff_in_thread(lambda: LinkCredentialsProvider().diff("x", stored, credentials_props(silent, silent)))
        assert silent.connections == 1
    # What cannot be seen is no news: the inputs decide.
    assert (result.changes, result.replaces) == (False, [])


@pytest.mark.parametrize("provider", ["gateway", "credentials"])
def test_a_diffs_look_waits_for_a_hung_credential_plugin_no_longer_than_for_a_request(monkeypatch, tmp_path, provider):
    # doctl waiting on an unreachable DigitalOcean API: the look gives up as it would on a request.
    monkeypatch.setattr(live_read, "REQUEST_TIMEOUT", (0.2, 0.2))
    hanging = tmp_path / "doctl"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    kubeconfig = exec_kubeconfig("east", "c-hangs", "http://127.0.0.1:9", "Y2E=")
    hung = SimpleNamespace(kubeconfig=lambda: kubeconfig)
    if provider == "gateway":
        stored = gateway_props(hung, address=GATEWAY)
        result = diff_in_thread(lambda: GatewayAddressProvider().diff("x", stored, gateway_props(hung)), seconds=10)
    else:
        stored = {**credentials_props(hung, hung), "fingerprint": "sha256:stored"}
        result = diff_in_thread(lambda: LinkCredentialsProvider().diff("x", stored, credentials_props(hung, hung)), seconds=10)
    assert (result.changes, result.replaces) == (False, [])
