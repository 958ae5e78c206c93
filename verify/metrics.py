"""Metrics read the way the default Linkerd policies allow: through port-forwards to the pods.

viz's Prometheus admits only the `metrics-api` service account over mTLS
(viz/charts/linkerd-viz/templates/prometheus-policy.yaml), and the service mirror's admin port
only viz's Prometheus (multicluster/charts/linkerd-multicluster/templates/service-mirror-policy.yaml),
so the API server's service or pod proxy gets 403 from both. A port-forward connects inside the
pod's network namespace to its loopback, which the proxy's iptables rules do not redirect (the
inbound rules sit in PREROUTING, which locally made connections never traverse; linkerd/linkerd2#2352,
"port-forward traffic skips the proxy"), so no policy applies. `linkerd multicluster gateways`
and `linkerd multicluster check` read the service mirror exactly so (multicluster/cmd/gateways.go,
pkg/k8s/metrics.go).
"""

from __future__ import annotations

import json
import re
from typing import Optional, Protocol
from urllib.parse import urlencode

from components.names import MULTICLUSTER_NAMESPACE, VIZ_NAMESPACE, service_mirror_lease
from verify.kube import KubeError

# The labels and port of viz's Prometheus pod (viz/charts/linkerd-viz/templates/prometheus.yaml).
PROMETHEUS_SELECTOR = "linkerd.io/extension=viz,component=prometheus"
PROMETHEUS_PORT = 9090
# The service mirror of Link <to> (multicluster/charts/linkerd-multicluster/templates/controller/deployment.yaml);
# only the holder of its Lease probes the gateway (multicluster/cmd/service-mirror/main.go).
SERVICE_MIRROR_CONTAINER = "controller"
ADMIN_PORT_SUFFIX = "-admin"  # pkg/k8s/metrics.go, AdminHTTPPortNameSuffix
SERVICE_MIRROR_ADMIN_PORT = 9999  # `ctrl-admin` in the chart; -metrics-addr=:9999
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class PodReader(Protocol):
    name: str

    def get_lease(self, namespace: str, name: str) -> Optional[dict]: ...
    def list_pods(self, namespace: str, selector: str) -> list[dict]: ...
    def port_forward_get(self, namespace: str, pod: str, port: int, path: str) -> tuple[int, bytes]: ...


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def prometheus_query(cluster: PodReader, query: str) -> list[dict]:
    """The instant-vector result of a PromQL query against linkerd-viz's Prometheus."""
    pods = [pod for pod in cluster.list_pods(VIZ_NAMESPACE, PROMETHEUS_SELECTOR) if _running(pod)]
    if not pods:
        raise KubeError(
            f"no running Prometheus pod in {VIZ_NAMESPACE} on {cluster.name} (pods labelled {PROMETHEUS_SELECTOR}): "
            f"linkerd-viz is not installed or its Prometheus is not up; see `kubectl -n {VIZ_NAMESPACE} get pods`"
        )
    pod = pods[0]["metadata"]["name"]
    status, body = cluster.port_forward_get(VIZ_NAMESPACE, pod, PROMETHEUS_PORT, "/api/v1/query?" + urlencode({"query": query}))
    if status == 503:
        raise KubeError(f"the Prometheus of {cluster.name} ({VIZ_NAMESPACE}/{pod}) is not ready yet (503); wait a minute and retry")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    if status != 200 or answer.get("status") != "success":
        raise KubeError(f"the Prometheus of {cluster.name} answered {status} to {query!r}: {answer.get('error') or body[:200]!r}")
    return answer["data"]["result"]


def gauge(text: str, name: str, labels: dict[str, str]) -> Optional[float]:
    """The value of one sample in Prometheus' text exposition format, or None."""
    for line in text.splitlines():
        sample = SAMPLE.match(line)
        if sample and sample["name"] == name and labels.items() <= dict(LABEL.findall(sample["labels"] or "")).items():
            return float(sample["value"])
    return None


def _admin_port(pod: dict) -> int:
    for container in pod["spec"].get("containers") or []:
        if container["name"] == SERVICE_MIRROR_CONTAINER:
            for port in container.get("ports") or []:
                if port.get("name", "").endswith(ADMIN_PORT_SUFFIX):
                    return port["containerPort"]
    return SERVICE_MIRROR_ADMIN_PORT


def gateway_alive(cluster: PodReader, target: str) -> Optional[float]:
    """`gateway_alive` for `target` as the probing service mirror exports it, or None when it has none yet."""
    lease = service_mirror_lease(target)
    holder = ((cluster.get_lease(MULTICLUSTER_NAMESPACE, lease) or {}).get("spec") or {}).get("holderIdentity")
    if not holder:
        raise KubeError(
            f"no service mirror holds the Lease {MULTICLUSTER_NAMESPACE}/{lease}, so nothing probes {target}'s gateway; "
            f"see the logs of deploy/controller-{target}"
        )
    pods = cluster.list_pods(MULTICLUSTER_NAMESPACE, f"component=controller,mirror.linkerd.io/cluster-name={target}")
    leader = next((pod for pod in pods if pod["metadata"]["name"] == holder and _running(pod)), None)
    if leader is None:
        raise KubeError(f"the Lease {MULTICLUSTER_NAMESPACE}/{lease} names {holder}, which is not a running pod of deploy/controller-{target}; wait for the lease to move and retry")
    status, body = cluster.port_forward_get(MULTICLUSTER_NAMESPACE, holder, _admin_port(leader), "/metrics")
    if status != 200:
        raise KubeError(f"the service mirror {MULTICLUSTER_NAMESPACE}/{holder} answered {status} on /metrics")
    return gauge(body.decode(errors="replace"), "gateway_alive", {"target_cluster_name": target})
