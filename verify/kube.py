"""Reads one cluster's API server with the official client, given a kubeconfig string.

Objects come back as the API server's JSON (dicts), missing objects as None, so the checks stay
plain logic over Kubernetes-shaped data. A pod's own ports are read through a port-forward, as
`linkerd multicluster gateways` reads the service mirror (multicluster/cmd/gateways.go).

An unreachable cluster costs one request: every request is a single attempt (no urllib3 retries)
bounded by `TIMEOUTS`, and once a cluster has not answered, or has rejected the credentials, no
later request is sent to it; each later read fails at once with the first failure. A port-forward
that does not open in that time stops later port-forwards to the cluster the same way, and a pod
that takes a port-forwarded connection and does not answer within the read timeout is not asked again.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from components.kube_client import KubeconfigError
from components.kube_client import api_client as kubeconfig_client
from components.names import LINK_GROUP, LINK_VERSION

HANDSHAKE_STATUS = re.compile(r"Handshake status (\d+)")
CREDENTIALS_HINT = (
    "the stack's DOKS kubeconfigs get their token from `doctl kubernetes cluster kubeconfig exec-credential`, "
    "so this usually means DIGITALOCEAN_ACCESS_TOKEN is unset, expired or of another account (make exports it "
    "from DIGITALOCEAN_TOKEN), or doctl is missing from PATH; a cluster given by a kubeconfig uses that file's "
    "context, whose credentials may have expired (log in again); verify exits 2 (credentials unusable)"
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds per request, which is never retried: a dead cluster costs at most `connect + read`."""

    connect: float = 5.0
    read: float = 10.0

    @property
    def request(self) -> float:
        return self.connect + self.read


TIMEOUTS = Timeouts()


class KubeError(Exception):
    """The API server did not answer usefully; the message says what to do."""


class Unreachable(KubeError):
    """No answer from the API server (refused, timed out, cut off)."""


class CredentialsRejected(KubeError):
    """The API server answered 401."""


def _run_within(seconds: float, call: Callable[[], Any]) -> Any:
    """`call()`, or TimeoutError after `seconds`; the websocket of a port-forward has no timeout of its own."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=run, name="port-forward-open", daemon=True)  # daemon: a hung one never blocks exit
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class KubeCluster:
    """The read-only view of a cluster that `verify.checks` needs."""

    def __init__(self, name: str, kubeconfig: str, timeouts: Optional[Timeouts] = None):
        self.name = name
        self.timeouts = timeouts or TIMEOUTS
        try:
            # doctl asks the DigitalOcean API for a token: bounded like a request, not by the 30 s default.
            self._api = kubeconfig_client(kubeconfig, exec_timeout_seconds=self.timeouts.request, retries=0)
        except KubeconfigError as err:
            raise KubeError(f"the kubeconfig of cluster {name!r} in the stack outputs is unusable: {err}") from err
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._leases = client.CoordinationV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        admission, aggregation = client.AdmissionregistrationV1Api(self._api), client.ApiregistrationV1Api(self._api)
        # The cluster-scoped objects the checks read, by kind.
        self._cluster_objects = {
            "MutatingWebhookConfiguration": admission.read_mutating_webhook_configuration,
            "ValidatingWebhookConfiguration": admission.read_validating_webhook_configuration,
            "APIService": aggregation.read_api_service,
        }
        # Port-forwards get a client of their own: `kubernetes.stream` swaps the client's request method
        # while it connects, and a port-forward abandoned after its timeout must not take reads with it.
        self._forwards = client.CoreV1Api(client.ApiClient(self._api.configuration))
        # The first failure that makes asking again pointless; later reads fail with it at once.
        self.failure: Optional[KubeError] = None
        self.forward_failure: Optional[KubeError] = None  # the same for port-forwards alone
        self._silent_pods: dict[tuple[str, str], KubeError] = {}  # the same for one pod's forwarded port

    def _remember(self, error: KubeError) -> KubeError:
        self.failure = error
        return error

    def _unreachable(self, reason: str) -> KubeError:
        return self._remember(
            Unreachable(
                f"cannot reach the API server of {self.name} at {self._api.configuration.host} ({reason}); "
                "is the cluster up, and is its endpoint in the stack outputs current? Later checks of "
                f"{self.name} were skipped"
            )
        )

    def _rejected(self) -> KubeError:
        return self._remember(CredentialsRejected(f"the API server of {self.name} rejected the credentials (401 Unauthorized): {CREDENTIALS_HINT}"))

    def _call(self, request: Callable[[], Any]) -> Any:
        if self.failure is not None:
            raise type(self.failure)(f"not asked: {self.failure}")
        try:
            return request()
        except ApiException as err:
            if err.status == 404:
                return None
            if err.status == 401:
                raise self._rejected() from err
            raise KubeError(f"the API server of {self.name} answered {err.status} {err.reason}") from err
        except urllib3.exceptions.HTTPError as err:
            reason = getattr(err, "reason", None) or err
            # urllib3's NewConnectionError (refused) subclasses its ConnectTimeoutError.
            if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(reason, urllib3.exceptions.NewConnectionError):
                raise self._unreachable(f"no answer within {self.timeouts.request:g} s") from err
            raise self._unreachable(str(reason).rsplit(": ", 1)[-1]) from err

    def _read(self, method: Callable[..., Any], *args: str, **kwargs: str) -> Optional[dict]:
        # Raw JSON instead of generated models: the checks read camelCase fields as the API serves them.
        timeout = (self.timeouts.connect, self.timeouts.read)
        response = self._call(lambda: method(*args, **kwargs, _preload_content=False, _request_timeout=timeout))
        return None if response is None else json.loads(response.data)

    def get_link(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._custom.get_namespaced_custom_object, LINK_GROUP, LINK_VERSION, namespace, "links", name)

    def get_deployment(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._apps.read_namespaced_deployment, name, namespace)

    def get_service(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_service, name, namespace)

    def get_endpoints(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_endpoints, name, namespace)

    def get_configmap(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_config_map, name, namespace)

    def get_secret(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_secret, name, namespace)

    def get_cluster_object(self, kind: str, name: str) -> Optional[dict]:
        return self._read(self._cluster_objects[kind], name)

    def get_lease(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._leases.read_namespaced_lease, name, namespace)

    def list_pods(self, namespace: str, selector: str) -> list[dict]:
        """The pods matching a label selector, filtered by the API server as `kubectl get -l` does."""
        found = self._read(self._core.list_namespaced_pod, namespace, label_selector=selector)
        return (found or {}).get("items") or []

    def port_forward_get(self, namespace: str, pod: str, port: int, path: str) -> tuple[int, bytes]:
        """GET `path` from `port` of a pod, through a port-forward: (status, body)."""

        if self.forward_failure is not None:
            raise KubeError(f"not asked: {self.forward_failure}")
        if (namespace, pod) in self._silent_pods:
            raise KubeError(f"not asked: {self._silent_pods[(namespace, pod)]}")

        def open_forward() -> Any:
            try:
                return portforward(self._forwards.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
            except ApiException as err:
                # The client reports a refused websocket handshake as status 0 with the HTTP status in the text.
                handshake = HANDSHAKE_STATUS.search(str(err.reason))
                if handshake is None:
                    raise urllib3.exceptions.ProtocolError(str(err.reason)) from err
                raise ApiException(status=int(handshake[1]), reason="port-forward refused") from err

        try:
            forward = self._call(lambda: _run_within(self.timeouts.request, open_forward))
        except TimeoutError as err:
            # The API server answers but cannot reach the node (kubelet); reads go on, port-forwards stop.
            self.forward_failure = KubeError(
                f"the API server of {self.name} did not open a port-forward to {namespace}/{pod} within "
                f"{self.timeouts.request:g} s (can it reach the node's kubelet?); later port-forwards on {self.name} were skipped"
            )
            raise self.forward_failure from err
        if forward is None:
            raise KubeError(f"pod {namespace}/{pod} on {self.name} is gone")
        where = f"{namespace}/{pod}:{port} on {self.name}"
        sock = forward.socket(port)
        sock.settimeout(self.timeouts.read)
        connection = http.client.HTTPConnection("localhost", port, timeout=self.timeouts.read)
        connection.sock = sock  # HTTP over the forwarded stream
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        except TimeoutError as err:
            # A hung program (Prometheus under load, say): asking it again would cost another read timeout.
            self._silent_pods[(namespace, pod)] = KubeError(
                f"{where} accepted a port-forwarded connection and did not answer within {self.timeouts.read:g} s; later reads of it were skipped"
            )
            raise self._silent_pods[(namespace, pod)] from err
        except (OSError, http.client.HTTPException) as err:
            raise KubeError(f"port-forward to {where} failed: {forward.error(port) or err}") from err
        finally:
            forward.close()
