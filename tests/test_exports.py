"""Exports of Services the program does not create: labelled once they exist, waited for (bounded)
when they do not, unlabelled on removal even when they are gone, and labelled again by a plain
`up` after someone re-created them. The program runs against the fake cluster, whose API server
refuses a server-side apply that would create a Service without ports (422)."""

from __future__ import annotations

import threading

import pulumi
import pulumi_kubernetes as kubernetes
import pytest
from kubernetes import client as kube_api
from kubernetes.client.exceptions import ApiException

from components import exports, mesh
from components.exports import FIELD_MANAGER, ExportedServiceArgs, ExportLabelProvider
from components.kube_client import api_client
from components.link import EXPORT_LABEL_VALUES
from components.live_read import WaitTimedOut
from components.names import EXPORTED_LABEL
from tests.fake_cloud import FakeCloud
from tests.fake_kube_api import APPLY_PATCH, FakeKubeAPI, SilentServer, core_path
from tests.fake_kubernetes import preexisting_object
from tests.harness import PROJECT, Run, run_main
from tests.test_live_read import diff_in_thread

EXPORT_LABEL = "pulumi-python:dynamic/exports:ExportLabel"
WEB_SVC = ("Service", "emojivoto", "web-svc")
# The demo is off: web-svc in east is the user's, and west has the namespace its mirror goes to.
USERS_OWN = {"east": [("Service", "emojivoto", "web-svc", {"app": "web"})], "west": [("Namespace", "", "emojivoto", {})]}
DEMO_OFF = {f"{PROJECT}:demo": "false"}


def labels_of(fakes: FakeCloud, key: tuple[str, str, str] = WEB_SVC) -> dict:
    return fakes.kubernetes.cluster_named("east").objects[key]["metadata"].get("labels") or {}


def label_managers(fakes: FakeCloud) -> list[str]:
    managed = fakes.kubernetes.cluster_named("east").objects[WEB_SVC]["metadata"].get("managedFields") or []
    return sorted(entry["manager"] for entry in managed)


def exported_and_mirrored() -> tuple[FakeCloud, Run]:
    fakes = FakeCloud()
    fakes.kubernetes.preexisting = {cluster: list(objects) for cluster, objects in USERS_OWN.items()}
    return fakes, run_main(fakes, config=DEMO_OFF)


@pytest.fixture(scope="module")
def exported() -> tuple[FakeCloud, Run]:
    return exported_and_mirrored()


def test_an_existing_service_gets_only_the_label(exported):
    fakes, result = exported
    demo_types = {"kubernetes:core/v1:Namespace", "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ServiceAccount", "kubernetes:core/v1:Service"}
    assert not [r for r in fakes.registered if r[0] in demo_types], "the demo is off"
    (export,) = result.monitor.of_type(EXPORT_LABEL)
    assert export.state["exportedAs"] == "true"
    # Applied under its own field manager; the user's labels and spec stay as they were.
    assert labels_of(fakes) == {"app": "web", EXPORTED_LABEL: "true"}
    assert label_managers(fakes) == [FIELD_MANAGER]
    assert fakes.kubernetes.cluster_named("east").objects[WEB_SVC]["spec"]["ports"]
    (mirror,) = result.outputs["mirroredServices"]["west"]
    assert mirror["endpoints"] == [fakes.kubernetes.cluster_named("east").gateway_ip]


def test_a_service_that_does_not_exist_is_waited_for_and_never_created():
    fakes = FakeCloud()
    with pytest.raises(WaitTimedOut) as raised:
        run_main(fakes, config={**DEMO_OFF, f"{PROJECT}:waitTimeoutSeconds": "1"})
    message = str(raised.value)
    assert "export of emojivoto/web-svc in cluster 'east': the Service does not exist after 1s" in message
    assert "create emojivoto/web-svc there (or remove the export from linkerd-mesh:exports)" in message
    # Nothing was applied: an apply would have tried to create a Service without ports.
    assert WEB_SVC not in fakes.kubernetes.cluster_named("east").objects
    # The mirror waits for the export: it is never read, let alone waited for in vain.
    assert not [outs for outs in fakes.dynamic_creates if "endpoints" in outs]


def test_a_service_created_during_the_wait_is_labelled():
    with FakeKubeAPI() as api:
        path = core_path("emojivoto", "services", "web-svc")

        def create_once_asked() -> None:
            while not any(request.startswith(path) for request in api.requests):
                threading.Event().wait(0.01)
            api.put_service("emojivoto", "web-svc", labels={"app": "web"})

        creator = threading.Thread(target=create_once_asked, daemon=True)
        creator.start()
        props = {"kubeconfig": api.kubeconfig(), "timeoutSeconds": 5, "objectId": "emojivoto/web-svc", "cluster": "east", "namespace": "emojivoto", "service": "web-svc", "labelValue": "true", "exportedAs": None}
        created = ExportLabelProvider().create(props)
        creator.join()
        assert created.outs["exportedAs"] == "true"
        assert api.get(path)["metadata"]["labels"] == {"app": "web", EXPORTED_LABEL: "true"}


def export_props(api: FakeKubeAPI | SilentServer, **outputs) -> dict:
    return {"__provider": "pickled-provider", "kubeconfig": api.kubeconfig(), "timeoutSeconds": 300, "objectId": "emojivoto/web-svc", "cluster": "east", "namespace": "emojivoto", "service": "web-svc", "labelValue": "true", "exportedAs": None, **outputs}


def test_a_refresh_keeps_an_unlabelled_service_for_the_next_up_to_label_and_drops_a_gone_one():
    provider = ExportLabelProvider()
    with FakeKubeAPI() as api:
        # Gone: an empty id, so the engine drops the export and the next `up` waits for the Service.
        assert provider.read("emojivoto/web-svc", export_props(api, exportedAs="true")).id is None
        api.put_service("emojivoto", "web-svc", labels={"app": "web"})
        refreshed = provider.read("emojivoto/web-svc", export_props(api, exportedAs="true"))
        assert (refreshed.id, refreshed.outs["exportedAs"]) == ("emojivoto/web-svc", None)
        diff = provider.diff("emojivoto/web-svc", refreshed.outs, export_props(api))
        assert diff.replaces == ["exportedAs"]


def test_a_diffs_look_at_a_cluster_that_never_answers_is_one_bounded_request(monkeypatch):
    monkeypatch.setattr(exports, "REQUEST_TIMEOUT", (1, 0.2))
    with SilentServer("east") as silent:
        stored = export_props(silent, exportedAs="true")
        result = diff_in_thread(lambda: ExportLabelProvider().diff("x", stored, export_props(silent)))
        assert silent.connections == 1
    # What cannot be seen (a preview token without cluster access, a hung server) changes nothing.
    assert (result.changes, result.replaces) == (False, [])


def test_the_fake_api_server_refuses_an_apply_that_would_create_a_service_without_ports():
    # What a ServicePatch did on a new cluster (pulumi-kubernetes: an apply under its field manager).
    with FakeKubeAPI() as api:
        core = kube_api.CoreV1Api(api_client(api.kubeconfig()))
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-svc", "namespace": "emojivoto", "labels": {EXPORTED_LABEL: "true"}}}
        with pytest.raises(ApiException) as refused:
            core.patch_namespaced_service("web-svc", "emojivoto", body, field_manager="patch", force=True, _content_type=APPLY_PATCH)
        assert refused.value.status == 422 and "spec.ports: Required value" in refused.value.body
        assert api.get(core_path("emojivoto", "services", "web-svc")) is None


def test_removing_an_export_unlabels_the_service():
    fakes, first = exported_and_mirrored()
    second = run_main(fakes, config={**DEMO_OFF, f"{PROJECT}:exports": "[]"}, prior=first)
    assert [urn for urn in second.deleted if EXPORT_LABEL in urn]
    assert labels_of(fakes) == {"app": "web"}
    assert "mirroredServices" not in second.outputs or not second.outputs["mirroredServices"]


def test_removing_an_export_whose_service_is_gone_succeeds():
    fakes, first = exported_and_mirrored()
    del fakes.kubernetes.cluster_named("east").objects[WEB_SVC]  # `kubectl delete svc web-svc`
    second = run_main(fakes, config={**DEMO_OFF, f"{PROJECT}:exports": "[]"}, prior=first)
    assert [urn for urn in second.deleted if EXPORT_LABEL in urn]
    assert WEB_SVC not in fakes.kubernetes.cluster_named("east").objects, "removing the export created nothing"


def test_a_recreated_service_gets_its_label_back_on_a_plain_up():
    fakes, first = exported_and_mirrored()
    east = fakes.kubernetes.cluster_named("east")
    east.objects[WEB_SVC] = preexisting_object(*WEB_SVC, {"app": "web"})  # deleted and created again, without the label
    preview = run_main(fakes, config=DEMO_OFF, prior=first, preview=True)
    assert {r.step for r in preview.monitor.of_type(EXPORT_LABEL)} == {"replace"}
    again = run_main(fakes, config=DEMO_OFF, prior=first)
    assert {r.step for r in again.monitor.of_type(EXPORT_LABEL)} == {"replace"}
    assert labels_of(fakes)[EXPORTED_LABEL] == "true"
    (mirror,) = again.outputs["mirroredServices"]["west"]
    assert mirror["endpoints"] == [east.gateway_ip]
    # Once labelled, the next plain `up` changes nothing.
    settled = run_main(fakes, config=DEMO_OFF, prior=again)
    assert {r.step for r in settled.monitor.of_type(EXPORT_LABEL)} == {"same"}


class ServicePatchExport(pulumi.ComponentResource):
    """The export as earlier versions made it: a ServicePatch (a server-side apply) of the label."""

    def __init__(self, name: str, args: ExportedServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:ExportedService", name, None, opts)
        export = args.export
        provider = kubernetes.Provider(f"kubernetes-{export.cluster}-for-{name}", kubeconfig=args.kubeconfig, opts=pulumi.ResourceOptions(parent=self))
        kubernetes.core.v1.ServicePatch(
            f"export-{name}",
            metadata=kubernetes.meta.v1.ObjectMetaPatchArgs(name=export.service, namespace=export.namespace, labels={EXPORTED_LABEL: EXPORT_LABEL_VALUES[export.mode]}),
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.register_outputs({})


def test_a_stack_exported_by_a_service_patch_keeps_the_label_when_the_patch_goes(monkeypatch):
    fakes = FakeCloud()
    fakes.kubernetes.preexisting = {cluster: list(objects) for cluster, objects in USERS_OWN.items()}
    with monkeypatch.context() as earlier_version:
        earlier_version.setattr(mesh, "ExportedService", ServicePatchExport)
        first = run_main(fakes, config=DEMO_OFF)
    assert labels_of(fakes)[EXPORTED_LABEL] == "true"
    assert label_managers(fakes) == ["pulumi-kubernetes-emojivoto-web-svc"]
    # The next `up` applies the label under the export's own field manager, then deletes the patch,
    # which gives up its fields (pulumi-kubernetes Relinquish): the label stays, now the export's.
    second = run_main(fakes, config=DEMO_OFF, prior=first)
    assert [urn for urn in second.deleted if "ServicePatch" in urn]
    assert labels_of(fakes)[EXPORTED_LABEL] == "true"
    assert label_managers(fakes) == [FIELD_MANAGER]
    (mirror,) = second.outputs["mirroredServices"]["west"]
    assert mirror["endpoints"] == [fakes.kubernetes.cluster_named("east").gateway_ip]


def test_the_fake_cluster_refuses_a_service_patch_on_a_new_cluster_as_the_api_server_does(monkeypatch):
    # Why the export is no longer a ServicePatch: its apply would create the Service.
    monkeypatch.setattr(mesh, "ExportedService", ServicePatchExport)
    with pytest.raises(Exception, match=r'Service "web-svc" is invalid: spec.ports: Required value'):
        run_main(FakeCloud(), config=DEMO_OFF)
