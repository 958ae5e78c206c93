"""What Linkerd's multicluster chart and service-mirror controllers leave in a linking cluster's
API, written into a fake API server (`FakeKubeAPI`) whose objects persist between runs.

Facts modelled (linkerd/linkerd2 at edge-26.6.3), with the labels written out here so that a
wrong label in the program does not go unnoticed:
- the chart renders a probe Service `probe-<target>` per `controllers` entry, labelled
  mirrored-gateway and cluster-name (multicluster/charts/linkerd-multicluster/templates/controller/probe-svc.yaml);
  Helm deletes it when the entry goes;
- per Link, the controller takes a Lease `service-mirror-write-<target>` (multicluster/cmd/service-mirror/main.go),
  writes the probe's Endpoints labelled cluster-name (service-mirror/cluster_watcher.go,
  createOrUpdateGatewayEndpoints) and, per exported service, a mirror `<service>-<target>` and its
  Endpoints labelled mirrored-service and cluster-name, with the exported service's own labels
  except `mirror.linkerd.io/*` (getMirrorServiceLabels, getMirrorEndpointLabels, isLabelExlucded);
- the mirror's endpoints are the Link's gatewayAddress, moved to notReadyAddresses when the
  probe cannot reach it (updateReadiness);
- when a Link goes, the controller stops and deletes none of this (multicluster/cmd/service-mirror/main.go,
  cleanupWorkers: "do not clean-up services created").
"""

from __future__ import annotations

from typing import Callable, Optional

from tests.fake_kube_api import FakeKubeAPI, core_path

MULTICLUSTER_NAMESPACE = "linkerd-multicluster"
MIRRORED_SERVICE = "mirror.linkerd.io/mirrored-service"
MIRRORED_GATEWAY = "mirror.linkerd.io/mirrored-gateway"
CLUSTER_NAME = "mirror.linkerd.io/cluster-name"
LEASE_API = "/apis/coordination.k8s.io/v1"


def lease_path(target: str) -> str:
    return f"{LEASE_API}/namespaces/{MULTICLUSTER_NAMESPACE}/leases/service-mirror-write-{target}"


def render_probe_services(api: FakeKubeAPI, controller_targets: list[str]) -> None:
    """The chart's probe Services: one per controller; Helm removes those no longer rendered."""
    for path, obj in list(api.objects.items()):
        labels = obj["metadata"].get("labels") or {}
        if obj["kind"] == "Service" and labels.get(MIRRORED_GATEWAY) == "true" and labels.get(CLUSTER_NAME) not in controller_targets:
            api.delete(path)
    for target in controller_targets:
        labels = {"linkerd.io/extension": "multicluster", MIRRORED_GATEWAY: "true", CLUSTER_NAME: target}
        api.put_service(MULTICLUSTER_NAMESPACE, f"probe-{target}", cluster_ip="10.245.1.1", ports=(("mc-probe", 4191),), labels=labels)


def mirror_link(
    api: FakeKubeAPI,
    target: str,
    gateway_address: str,
    gateway_port: int,
    reachable: bool,
    exported: dict[tuple[str, str], dict],
    namespace_exists: Callable[[str], bool],
) -> None:
    """One running controller for the Link to `target`: `exported` maps (namespace, service) of
    the target's exported services to their labels."""
    api.put(lease_path(target), {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"name": f"service-mirror-write-{target}", "namespace": MULTICLUSTER_NAMESPACE}})
    api.put_endpoints(MULTICLUSTER_NAMESPACE, f"probe-{target}", [gateway_address], port=4191, port_name="mc-probe", labels={CLUSTER_NAME: target})
    for (namespace, service), remote_labels in exported.items():
        name = f"{service}-{target}"
        existing: Optional[dict] = api.get(core_path(namespace, "services", name))
        # The controller mirrors what it sees through the target's API server, gateway or not, but
        # only into a namespace that exists here (cluster_watcher.go, handleRemoteServiceExported).
        if existing is None and not namespace_exists(namespace):
            continue
        labels = {key: value for key, value in remote_labels.items() if not key.startswith("mirror.linkerd.io/")}
        labels.update({MIRRORED_SERVICE: "true", CLUSTER_NAME: target})
        if existing is None:
            mirrors = sum(1 for obj in api.objects.values() if obj["kind"] == "Service" and MIRRORED_SERVICE in (obj["metadata"].get("labels") or {}))
            api.put_service(namespace, name, cluster_ip=f"10.245.0.{mirrors + 100}", ports=(("http", 80),), labels=labels)
        ready, not_ready = ([gateway_address], []) if reachable else ([], [gateway_address])
        # The Link's gatewayAddress and gatewayPort (cluster_watcher.go, getEndpointsPorts).
        api.put_endpoints(namespace, name, ready, port=gateway_port, not_ready=not_ready, labels=labels)
