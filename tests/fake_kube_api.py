"""A fake Kubernetes API server for tests of code that uses the official `kubernetes` client.

It serves GETs of the real API paths from an in-memory dict `objects` (path -> JSON), answers
404 with a `Status` object for anything missing, requires the bearer token of the kubeconfig it
hands out (or the one it is given: a cluster's exec-credential token), takes creates, replaces,
deletes and merge patches of single objects as the API server does (409 on a create of an existing
object, 404 on the others of a missing one) and logs them in `writes`, and answers Prometheus instant queries on the API server's service-proxy path to
linkerd-viz's Prometheus. Objects may be changed while a client polls (for wait loops).

    with FakeKubeAPI() as api:
        api.put_service("emojivoto", "web-svc-east", "10.245.0.12")
        api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.10"], port=4143)
        kubeconfig_yaml = api.kubeconfig()
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable, Mapping, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

PROMETHEUS_QUERY_PATH = "/api/v1/namespaces/linkerd-viz/services/http:prometheus:9090/proxy/api/v1/query"
LINK_API = "/apis/multicluster.linkerd.io/v1alpha3"
NAMED_OBJECT = re.compile(r"/namespaces/[^/]+/(?P<plural>[^/]+)/(?P<name>[^/]+)$")


def core_path(namespace: str, plural: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/{plural}/{name}"


def apps_path(namespace: str, plural: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"


def link_path(namespace: str, name: str) -> str:
    return f"{LINK_API}/namespaces/{namespace}/links/{name}"


def status(code: int, reason: str, message: str, details: Optional[dict] = None) -> dict:
    """A `Status` object as the API server returns it for errors."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def _merged(base: dict, patch: dict) -> dict:
    """A JSON merge patch (RFC 7386): maps merge, null removes, anything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


class FakeKubeAPI:
    """One fake cluster's API server on 127.0.0.1 and a random free port; use as a context manager."""

    def __init__(self, name: str = "fake", token: Optional[str] = None):
        self.name = name
        self.token = token or secrets.token_hex(16)
        self.objects: dict[str, dict] = {}
        self.requests: list[str] = []  # path and query of every request, authorized or not
        # (method, object path, the object afterwards or None) of every accepted write, in order.
        self.writes: list[tuple[str, str, Optional[dict]]] = []
        self.prometheus_up = True
        self._prometheus_results: list[tuple[str, list[dict]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeKubeAPI":
        # A short poll interval keeps shutdown (once per test) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name=f"fake-kube-api-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def kubeconfig(self, token: Optional[str] = None) -> str:
        """A kubeconfig (YAML text) whose current context talks to this server with token auth."""
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": self.name, "cluster": {"server": self.url}}],
                "users": [{"name": f"{self.name}-admin", "user": {"token": token or self.token}}],
                "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": f"{self.name}-admin"}}],
                "current-context": self.name,
            }
        )

    # Object store.

    def put(self, path: str, obj: dict) -> dict:
        with self._lock:
            self.objects[path] = obj
        return obj

    def delete(self, path: str) -> None:
        with self._lock:
            self.objects.pop(path, None)

    def get(self, path: str) -> Optional[dict]:
        with self._lock:
            return self.objects.get(path)

    @staticmethod
    def _meta(namespace: str, name: str, labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None) -> dict:
        meta = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "resourceVersion": "1"}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta

    def put_service(
        self,
        namespace: str,
        name: str,
        cluster_ip: str = "10.0.0.1",
        ports: Iterable[tuple[str, int]] = (("http", 80),),
        labels: Optional[Mapping[str, str]] = None,
        annotations: Optional[Mapping[str, str]] = None,
    ) -> dict:
        spec_ports = [{"name": port_name, "port": port, "protocol": "TCP", "targetPort": port} for port_name, port in ports]
        return self.put(
            core_path(namespace, "services", name),
            {
                "kind": "Service",
                "apiVersion": "v1",
                "metadata": self._meta(namespace, name, labels, annotations),
                "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": spec_ports},
                "status": {"loadBalancer": {}},
            },
        )

    def put_endpoints(
        self,
        namespace: str,
        name: str,
        addresses: Iterable[str],
        port: int = 80,
        port_name: str = "http",
        not_ready: Iterable[str] = (),
        labels: Optional[Mapping[str, str]] = None,
    ) -> dict:
        ready, unready = [{"ip": ip} for ip in addresses], [{"ip": ip} for ip in not_ready]
        subset: dict = {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}
        if ready:
            subset["addresses"] = ready
        if unready:
            subset["notReadyAddresses"] = unready
        return self.put(
            core_path(namespace, "endpoints", name),
            {
                "kind": "Endpoints",
                "apiVersion": "v1",
                "metadata": self._meta(namespace, name, labels),
                # Like the API server: no subset at all when there is no address.
                "subsets": [subset] if ready or unready else [],
            },
        )

    def put_secret(self, namespace: str, name: str, data: Mapping[str, str | bytes], type: str = "Opaque") -> dict:
        encoded = {key: base64.b64encode(value.encode() if isinstance(value, str) else value).decode() for key, value in data.items()}
        return self.put(
            core_path(namespace, "secrets", name),
            {"kind": "Secret", "apiVersion": "v1", "metadata": self._meta(namespace, name), "type": type, "data": encoded},
        )

    def put_configmap(self, namespace: str, name: str, data: Mapping[str, str]) -> dict:
        return self.put(
            core_path(namespace, "configmaps", name),
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": self._meta(namespace, name), "data": dict(data)},
        )

    def put_deployment(self, namespace: str, name: str, replicas: int = 1, available: int = 1) -> dict:
        status: dict = {"observedGeneration": 1, "replicas": replicas, "readyReplicas": available, "availableReplicas": available}
        # The API server omits zero counts.
        status = {key: value for key, value in status.items() if value}
        return self.put(
            apps_path(namespace, "deployments", name),
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {**self._meta(namespace, name), "generation": 1},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "example"}]}}},
                "status": status,
            },
        )

    def put_link(
        self,
        name: str,
        gateway_address: str,
        namespace: str = "linkerd-multicluster",
        gateway_port: str = "4143",
        probe_port: str = "4191",
        gateway_identity: Optional[str] = None,
    ) -> dict:
        """A multicluster.linkerd.io/v1alpha3 Link to the cluster `name`, as `linkerd multicluster link-gen` makes it."""
        return self.put(
            link_path(namespace, name),
            {
                "apiVersion": "multicluster.linkerd.io/v1alpha3",
                "kind": "Link",
                "metadata": self._meta(namespace, name),
                "spec": {
                    "targetClusterName": name,
                    "targetClusterDomain": "cluster.local",
                    "targetClusterLinkerdNamespace": "linkerd",
                    "clusterCredentialsSecret": f"cluster-credentials-{name}",
                    "gatewayAddress": gateway_address,
                    "gatewayPort": gateway_port,
                    "gatewayIdentity": gateway_identity or "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local",
                    "probeSpec": {"path": "/ready", "port": probe_port, "period": "3s", "failureThreshold": "3", "timeout": "30s"},
                    "selector": {"matchLabels": {"mirror.linkerd.io/exported": "true"}},
                    "remoteDiscoverySelector": {"matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}},
                },
            },
        )

    # Prometheus, behind the API server's service proxy.

    def set_prometheus_result(self, match: str, series: Iterable[tuple[Mapping[str, str], float]]) -> None:
        """Queries containing `match` get an instant vector of these (labels, value) samples; later calls win."""
        vector = [{"metric": dict(labels), "value": [1700000000.0, str(value)]} for labels, value in series]
        with self._lock:
            self._prometheus_results.insert(0, (match, vector))

    def _prometheus(self, query: str) -> tuple[int, dict]:
        if not self.prometheus_up:
            return 503, status(503, "ServiceUnavailable", 'no endpoints available for service "prometheus"')
        with self._lock:
            vector = next((result for match, result in self._prometheus_results if match in query), [])
        return 200, {"status": "success", "data": {"resultType": "vector", "result": vector}}

    # HTTP.

    def _write(self, method: str, path: str, body: Optional[dict]) -> tuple[int, dict]:
        # The API server's answers (Kubernetes API conventions, "Response status kind"): 409
        # AlreadyExists for a create of an existing name, 404 NotFound for a missing object.
        if method == "POST":
            path = f"{path}/{(body or {}).get('metadata', {}).get('name', '')}"
        named = NAMED_OBJECT.search(path)
        if not named:
            return 405, status(405, "MethodNotAllowed", f"the fake API server writes single objects only, not {method} {path}")
        with self._lock:
            existing = self.objects.get(path)
            if method == "POST" and existing is not None:
                return 409, status(409, "AlreadyExists", f'{named["plural"]} "{named["name"]}" already exists', {"name": named["name"], "kind": named["plural"]})
            if method != "POST" and existing is None:
                return 404, status(404, "NotFound", f'{named["plural"]} "{named["name"]}" not found', {"name": named["name"], "kind": named["plural"]})
            if method == "DELETE":
                del self.objects[path]
                self.writes.append((method, path, None))
                return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
            updated = _merged(existing, body or {}) if method == "PATCH" else dict(body or {})
            self.objects[path] = updated
            self.writes.append((method, path, updated))
            return (201 if method == "POST" else 200), updated

    def _respond(self, method: str, raw_path: str, authorization: Optional[str], body: Optional[dict] = None) -> tuple[int, dict]:
        self.requests.append(raw_path)
        if authorization != f"Bearer {self.token}":
            return 401, status(401, "Unauthorized", "Unauthorized")
        url = urlsplit(raw_path)
        path = unquote(url.path)
        if method != "GET":
            return self._write(method, path, body)
        if path == PROMETHEUS_QUERY_PATH:
            return self._prometheus(parse_qs(url.query).get("query", [""])[0])
        obj = self.get(path)
        if obj is not None:
            return 200, obj
        named = NAMED_OBJECT.search(path)
        details = {"name": named["name"], "kind": named["plural"]} if named else None
        message = f'{named["plural"]} "{named["name"]}" not found' if named else "the server could not find the requested resource"
        return 404, status(404, "NotFound", message, details)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
            disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for delayed ACKs

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # unread bodies would break keep-alive
                code, body = api._respond(self.command, self.path, self.headers.get("Authorization"), json.loads(raw) if raw else None)
                payload = json.dumps(body).encode()
                self.send_response(code, HTTPStatus(code).phrase)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        return Handler
