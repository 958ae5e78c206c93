"""Exporting a service that Pulumi did not create: label it so linked clusters mirror it.

The label is written by a dynamic resource, not a `ServicePatch`. A patch is a server-side apply,
and an apply of a Service that does not exist creates it: the API server refuses that one with 422
(`spec.ports: Required value`, kubernetes pkg/apis/core/validation ValidateService). A patch's delete
applies again (pulumi-kubernetes provider/pkg/ssa/actions.go, Relinquish), so on a new cluster the
first `up` failed, and an export whose Service was deleted could never be removed. And a re-created
Service comes without the label, while the patch's inputs stay the same: a plain `up` saw no change.

This resource:
- waits up to `waitTimeoutSeconds` for the Service to exist, then applies the label (server-side,
  under its own field manager, so the label survives the deletion of an older stack's patch that
  also owned it); if the Service never appears, `up` fails and says so;
- looks at the live Service when it is diffed (as the gateway-address read does): a Service that
  lost its label, or is gone, is labelled again (or waited for) by a plain `up`;
- on delete removes the label, and succeeds when the Service is already gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi.dynamic
from kubernetes import client as kube_api

from components.config import ExportSpec
from components.kube_client import api_client
from components.link import EXPORT_LABEL_VALUES
from components.live_read import REQUEST_TIMEOUT, LiveReadProvider, NotReady, live_read_inputs, read_or_none, waited
from components.names import EXPORTED_LABEL

# The field manager the label is applied under (metadata.managedFields of the Service).
FIELD_MANAGER = "linkerd-mesh-export"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ExportLabelProvider(LiveReadProvider):
    """A live read of the Service's export label that also writes it: `create` waits for the
    Service, then labels it; `delete` removes the label."""

    outputs = ("exportedAs",)
    missing = "the Service does not exist"
    # A plain `pulumi up` notices a re-created Service (without the label) and labels it again.
    look_live_on_diff = True

    def observe(self, api: Any, props: dict) -> Optional[dict]:
        found = read_or_none(lambda: kube_api.CoreV1Api(api).read_namespaced_service(props["service"], props["namespace"], _request_timeout=REQUEST_TIMEOUT))
        if found is None:
            return None
        return {"exportedAs": (found.metadata.labels or {}).get(EXPORTED_LABEL)}

    def problem(self, props: dict, observed: dict) -> Optional[str]:
        if observed["exportedAs"] != props["labelValue"]:
            return f"the Service has {EXPORTED_LABEL}={observed['exportedAs']}, not {props['labelValue']}"
        return None

    def timeout_message(self, props: dict, last_state: str) -> str:
        namespace, service = props["namespace"], props["service"]
        return (
            f"export of {namespace}/{service} in cluster {props['cluster']!r}: {last_state} after {waited(props)}. The program labels a "
            f"Service it does not create, so create {namespace}/{service} there (or remove the export from linkerd-mesh:exports) "
            "and run `pulumi up` again"
        )

    def _read_ready(self, api: Any, props: dict) -> dict:
        """Once the Service exists (NotReady until then), apply the label, even one already there:
        the apply makes the label this field manager's too, so that it stays when an older
        ServicePatch (or another manager) that owned it gives it up."""
        if self.observe(api, props) is None:
            raise NotReady(self.missing)
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": props["service"], "namespace": props["namespace"], "labels": {EXPORTED_LABEL: props["labelValue"]}}}
        # Checked just above: only a Service deleted since then makes this apply a create (and a 422).
        applied = kube_api.CoreV1Api(api).patch_namespaced_service(
            props["service"], props["namespace"], body, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH, _request_timeout=REQUEST_TIMEOUT
        )
        return {"exportedAs": (applied.metadata.labels or {}).get(EXPORTED_LABEL)}

    def delete(self, _id: str, props: dict) -> None:
        # A merge patch never creates the object: a Service that is gone (404) has nothing to unlabel.
        unlabel = {"metadata": {"labels": {EXPORTED_LABEL: None}}}
        core = kube_api.CoreV1Api(api_client(props["kubeconfig"]))
        read_or_none(lambda: core.patch_namespaced_service(props["service"], props["namespace"], unlabel, _content_type=MERGE_PATCH, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))


@dataclass(frozen=True)
class ExportedServiceArgs:
    export: ExportSpec
    kubeconfig: pulumi.Input[str]  # the exec form: no secret
    timeout_seconds: int


class ExportLabel(pulumi.dynamic.Resource, module="exports", name="ExportLabel"):
    """Its own type (`pulumi-python:dynamic/exports:ExportLabel`): unlike the live reads, it writes."""

    exportedAs: pulumi.Output[str]

    def __init__(self, name: str, args: ExportedServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        export = args.export
        inputs = live_read_inputs(
            args.kubeconfig,
            args.timeout_seconds,
            f"{export.namespace}/{export.service}",
            cluster=export.cluster,
            namespace=export.namespace,
            service=export.service,
            labelValue=EXPORT_LABEL_VALUES[export.mode],
            exportedAs=None,
        )
        super().__init__(ExportLabelProvider(), name, inputs, opts)


class ExportedService(pulumi.ComponentResource):
    """The export label on a Service that something else created."""

    def __init__(self, name: str, args: ExportedServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:ExportedService", name, None, opts)
        ExportLabel(f"export-{name}", args, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
