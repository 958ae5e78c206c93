"""What removing a link must remove that nothing else will: the objects its service-mirror
controller made in the linking cluster.

When a Link goes, Linkerd's service mirror stops but keeps the mirror services it created
(multicluster/cmd/service-mirror/main.go, cleanupWorkers: "do not clean-up services created");
`linkerd multicluster unlink` selects them for deletion itself (multicluster/cmd/unlink.go).
Pulumi deletes what the program created for the link (the Link, its credentials Secrets) and
the chart drops the link's controller and probe Service; this resource deletes the rest: the
mirrors and their Endpoints (selected as unlink and the controller's own cleanup select them),
the probe's Endpoints and the controller's Lease.

It does nothing until it is deleted. The link's Link depends on it, and the engine deletes
dependents first, so its delete runs once the Link is gone and no controller re-creates a mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi.dynamic
from kubernetes import client as kube_api

from components.kube_client import api_client
from components.live_read import REQUEST_TIMEOUT, changed_inputs, read_or_none
from components.names import MULTICLUSTER_NAMESPACE, service_mirror_lease

# Labels the service mirror puts on what it makes (pkg/k8s/labels.go).
MIRRORED_SERVICE_LABEL = "mirror.linkerd.io/mirrored-service"
REMOTE_CLUSTER_LABEL = "mirror.linkerd.io/cluster-name"


def _delete_each(listed, delete) -> None:
    for item in listed.items:
        # Already gone is fine; the body of the answer is not needed.
        read_or_none(lambda: delete(item.metadata.name, item.metadata.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))


class LinkLeftoversProvider(pulumi.dynamic.ResourceProvider):
    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"{MULTICLUSTER_NAMESPACE}/{props['target']}", outs=props)

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        # Never a replacement: that would delete a live link's mirrors. A new kubeconfig is
        # stored, so that the delete reaches the cluster with current credentials.
        return pulumi.dynamic.DiffResult(changes=bool(changed_inputs(olds, news)), replaces=[])

    def update(self, _id: str, _olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=news)

    def delete(self, _id: str, props: dict) -> None:
        core = kube_api.CoreV1Api(api_client(props["kubeconfig"]))
        target = props["target"]
        # The mirrors `<service>-<target>` and their Endpoints, in every namespace.
        mirrors = f"{MIRRORED_SERVICE_LABEL}=true,{REMOTE_CLUSTER_LABEL}={target}"
        _delete_each(core.list_service_for_all_namespaces(label_selector=mirrors, _request_timeout=REQUEST_TIMEOUT), core.delete_namespaced_service)
        _delete_each(core.list_endpoints_for_all_namespaces(label_selector=mirrors, _request_timeout=REQUEST_TIMEOUT), core.delete_namespaced_endpoints)
        # The probe's Service (the chart has dropped it with the controller) and its Endpoints.
        probe = f"{REMOTE_CLUSTER_LABEL}={target}"
        _delete_each(core.list_namespaced_service(MULTICLUSTER_NAMESPACE, label_selector=probe, _request_timeout=REQUEST_TIMEOUT), core.delete_namespaced_service)
        _delete_each(core.list_namespaced_endpoints(MULTICLUSTER_NAMESPACE, label_selector=probe, _request_timeout=REQUEST_TIMEOUT), core.delete_namespaced_endpoints)
        leases = kube_api.CoordinationV1Api(core.api_client)
        lease = service_mirror_lease(target)
        read_or_none(lambda: leases.delete_namespaced_lease(lease, MULTICLUSTER_NAMESPACE, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))


@dataclass(frozen=True)
class LinkLeftoversArgs:
    source_kubeconfig: pulumi.Input[str]  # the exec form: no secret
    target: str


class LinkLeftovers(pulumi.dynamic.Resource, module="unlink", name="LinkLeftovers"):
    """Its own type (`pulumi-python:dynamic/unlink:LinkLeftovers`): it is no live read."""

    def __init__(self, name: str, args: LinkLeftoversArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(LinkLeftoversProvider(), name, {"kubeconfig": args.source_kubeconfig, "target": args.target}, opts)
