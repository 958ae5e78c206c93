"""A fake Kubernetes API server for tests of code that uses the official `kubernetes` client.

It serves GETs of the real API paths from an in-memory dict `objects` (path -> JSON), lists
objects (of a namespace or of all) with a `labelSelector`, answers 404 with a `Status` object for anything
missing, and requires the bearer token of the kubeconfig it hands out (or the one it is given), or,
for a DOKS cluster (`doks_cluster_id`), any token DigitalOcean issued for that cluster that has not
expired (`expired_tokens`: a test lets one expire while a client holds it). It takes creates, replaces, deletes and merge patches of single
objects as the API server does (409 on a create of an existing object, 404 on the others of a
missing one) and logs them in `writes`. A pod's ports can be
served by in-process handlers (`put_pod(listeners=...)`), reachable as the real API server makes
them reachable: through the port-forward websocket (v4.channel.k8s.io), not through the service
or pod proxy, which viz's Prometheus refuses (403). Objects may be changed while a client polls.
`SilentServer` and `closed_port_kubeconfig` stand for API servers that never answer or are gone.
With `tls` it serves HTTPS and also takes a client certificate signed by the given client CA
instead of the token, as kube-apiserver's x509 authenticator does (--client-ca-file; a client
that sends none may still use a token).

    with FakeKubeAPI() as api:
        api.put_service("emojivoto", "web-svc-east", "10.245.0.12")
        api.put_endpoints("emojivoto", "web-svc-east", ["203.0.113.10"], port=4143)
        kubeconfig_yaml = api.kubeconfig()
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, Callable, Iterable, Mapping, Optional, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from components.kubeconfigs import exec_kubeconfig
from tests.fake_account import is_cluster_token

LINK_API = "/apis/multicluster.linkerd.io/v1alpha3"
NAMED_OBJECT = re.compile(r"/namespaces/[^/]+/(?P<plural>[^/]+)/(?P<name>[^/]+)$")
# A list: `/api/v1/services` (all namespaces) or `/apis/<group>/<version>/namespaces/<ns>/<plural>`.
COLLECTION = re.compile(r"^(?P<api>/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)$")
POD_SUBRESOURCE = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?:https?:)?(?P<name>[^/:]+)(?::[^/]*)?/(?P<sub>portforward|proxy)(?:/.*)?$")
SERVICE_PROXY = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/services/(?:https?:)?(?P<name>[^/:]+)(?::[^/]*)?/proxy(?:/.*)?$")
SELECTOR_TERM = re.compile(r"^\s*(?P<neg>!)?(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|\s(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?\s*$")
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
PORT_FORWARD_PROTOCOL = "v4.channel.k8s.io"
# A pod port's program: request path -> (status, content type, body), or None for a program that
# took the connection and never answers (hung).
PodListener = Callable[[str], Optional[tuple[int, str, bytes]]]


def core_path(namespace: str, plural: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/{plural}/{name}"


def apps_path(namespace: str, plural: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"


def link_path(namespace: str, name: str) -> str:
    return f"{LINK_API}/namespaces/{namespace}/links/{name}"


def token_kubeconfig(name: str, url: str, token: str) -> str:
    """A kubeconfig (YAML text) whose current context talks to `url` with a bearer token."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": url}}],
            "users": [{"name": f"{name}-admin", "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
            "current-context": name,
        }
    )


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """A label selector as the API server reads it: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (..)`, `k`, `!k`."""
    for term in filter(str.strip, re.split(r",(?![^(]*\))", selector)):
        parsed = SELECTOR_TERM.match(term)
        if not parsed:
            raise ValueError(f"unable to parse requirement: {term!r}")
        key, value = parsed["key"], labels.get(parsed["key"])
        if parsed["set"]:
            members = {member.strip() for member in parsed["values"].split(",")}
            ok = (value in members) if parsed["set"] == "in" else (value not in members)
        elif parsed["op"]:
            ok = (value == parsed["value"]) if parsed["op"] != "!=" else (value != parsed["value"])
        else:
            ok = (value is None) if parsed["neg"] else (value is not None)
        if not ok:
            return False
    return True


@dataclass
class Response:
    code: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, code: int, body: dict) -> "Response":
        return cls(code, json.dumps(body).encode())


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


# Server-side apply, as far as the fakes need it: who owns which label. The API server records each
# field manager's fields in metadata.managedFields; an apply sets the manager's fields to what it
# sends and deletes a field it no longer sends unless another manager still owns it (Kubernetes
# docs, "Server-Side Apply", Field management). Only labels are tracked here.
APPLY_PATCH = "application/apply-patch+yaml"


def _label_owners(obj: dict) -> dict[str, set[str]]:
    """manager -> the labels it owns, from the object's managedFields."""
    owners: dict[str, set[str]] = {}
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        labels = (entry.get("fieldsV1") or {}).get("f:metadata", {}).get("f:labels", {})
        owners.setdefault(entry["manager"], set()).update(key.removeprefix("f:") for key in labels)
    return owners


def _with_label_owners(obj: dict, labels: Mapping[str, str], owners: Mapping[str, set[str]]) -> dict:
    managed = [
        {"manager": manager, "operation": "Apply", "apiVersion": obj.get("apiVersion", "v1"), "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {f"f:{key}": {} for key in sorted(keys)}}}}
        for manager, keys in sorted(owners.items())
        if keys
    ]
    metadata = {key: value for key, value in obj.get("metadata", {}).items() if key not in ("labels", "managedFields")}
    if labels:
        metadata["labels"] = dict(labels)
    if managed:
        metadata["managedFields"] = managed
    return {**obj, "metadata": metadata}


def apply_labels(obj: dict, manager: str, labels: Mapping[str, str]) -> dict:
    """`obj` after `manager` applied exactly these labels (with force: it takes them over)."""
    owners = _label_owners(obj)
    current = dict(obj.get("metadata", {}).get("labels") or {})
    for key in owners.get(manager, set()) - set(labels):
        if not any(key in keys for other, keys in owners.items() if other != manager):
            current.pop(key, None)
    owners[manager] = set(labels)
    return _with_label_owners(obj, {**current, **labels}, owners)


def without_labels(obj: dict, keys: Iterable[str]) -> dict:
    """`obj` after an update removed these labels: nobody owns a field that is gone."""
    gone = set(keys)
    labels = {key: value for key, value in (obj.get("metadata", {}).get("labels") or {}).items() if key not in gone}
    return _with_label_owners(obj, labels, {manager: owned - gone for manager, owned in _label_owners(obj).items()})


def _invalid_on_create(plural: str, name: str, obj: dict) -> Optional[Response]:
    """What the API server's validation refuses in a new object, as far as the fakes create them."""
    spec = obj.get("spec") or {}
    if plural == "services" and not spec.get("ports") and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        # kubernetes pkg/apis/core/validation/validation.go, ValidateService: field.Required(specPath.Child("ports"), "").
        message = f'Service "{name}" is invalid: spec.ports: Required value'
        return Response.json(422, status(422, "Invalid", message, {"name": name, "kind": "Service", "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.ports"}]}))
    return None


@dataclass(frozen=True)
class ServerTLS:
    cert_pem: str  # the serving certificate, for 127.0.0.1
    key_pem: str
    client_ca_pem: str  # client certificates it signs authenticate


class FakeKubeAPI:
    """One fake cluster's API server on 127.0.0.1 and a random free port; use as a context manager."""

    def __init__(self, name: str = "fake", token: Optional[str] = None, doks_cluster_id: Optional[str] = None, tls: Optional[ServerTLS] = None):
        self.name = name
        self.token = token or secrets.token_hex(16)
        self.doks_cluster_id = doks_cluster_id
        self.expired_tokens: set[str] = set()
        # Called with each request's path before it is answered: a test's way to act mid-wait.
        self.on_request: Optional[Callable[[str], None]] = None
        self.objects: dict[str, dict] = {}
        self.requests: list[str] = []  # path and query of every request, authorized or not
        # (method, object path, the object afterwards or None) of every accepted write, in order.
        self.writes: list[tuple[str, str, Optional[dict]]] = []
        self.pod_listeners: dict[tuple[str, str], dict[int, PodListener]] = {}
        # The API server answers, but its port-forwards never open (it cannot reach the node's kubelet).
        self.port_forwards_hang = False
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.NamedTemporaryFile("w", suffix=".pem") as chain:
                chain.write(tls.cert_pem + tls.key_pem)
                chain.flush()
                context.load_cert_chain(chain.name)
            # Stricter than kube-apiserver, which requests any client certificate (k8s.io/apiserver
            # pkg/server/secure_serving.go: tls.RequestClientCert) and answers 401 when its x509
            # authenticator cannot verify it: Python's ssl verifies in the handshake, which fails.
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=tls.client_ca_pem)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def __enter__(self) -> "FakeKubeAPI":
        # A short poll interval keeps shutdown fast: the program's fakes start one per provider call.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.002,), name=f"fake-kube-api-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def accepts(self, authorization: Optional[str]) -> bool:
        token = (authorization or "").removeprefix("Bearer ")
        if not (authorization or "").startswith("Bearer ") or token in self.expired_tokens:
            return False
        # DOKS takes the tokens DigitalOcean issues for the cluster until they expire.
        return is_cluster_token(self.doks_cluster_id, token) if self.doks_cluster_id else token == self.token

    def kubeconfig(self, token: Optional[str] = None) -> str:
        """A kubeconfig (YAML text) whose current context talks to this server with token auth; for a
        DOKS cluster without `token`, DigitalOcean's exec form (doctl fetches the token)."""
        if self.doks_cluster_id and token is None:
            return exec_kubeconfig(self.name, self.doks_cluster_id, self.url, base64.b64encode(b"unused over http").decode())
        return token_kubeconfig(self.name, self.url, token or self.token)

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
        endpoints = {"kind": "Endpoints", "apiVersion": "v1", "metadata": self._meta(namespace, name, labels)}
        if ready or unready:
            # Without an address there is no subset, and an empty `subsets` is left out of the JSON
            # (k8s.io/api core/v1 types.go, Endpoints.Subsets: `json:"subsets,omitempty"`).
            endpoints["subsets"] = [subset]
        return self.put(core_path(namespace, "endpoints", name), endpoints)

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
        # The API server omits zero counts (k8s.io/api apps/v1 types.go, DeploymentStatus: `json:",omitempty"`).
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

    def put_pod(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        container_ports: Optional[Mapping[str, Sequence[tuple[str, int]]]] = None,
        phase: str = "Running",
        listeners: Optional[Mapping[int, PodListener]] = None,
    ) -> dict:
        """A pod; `listeners` are the programs listening on its ports (inside the pod, on every address).
        Port-forwards serve the first requested port: verify forwards one at a time."""
        containers = [
            {"name": container, "image": "example", "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"} for port_name, port in ports]}
            for container, ports in (container_ports or {}).items()
        ]
        with self._lock:
            self.pod_listeners[(namespace, name)] = dict(listeners or {})
        return self.put(
            core_path(namespace, "pods", name),
            {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": self._meta(namespace, name, labels),
                "spec": {"containers": containers},
                "status": {"phase": phase},
            },
        )

    def put_lease(self, namespace: str, name: str, holder: Optional[str]) -> dict:
        spec = {"holderIdentity": holder, "leaseDurationSeconds": 30} if holder else {}
        return self.put(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
            {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": self._meta(namespace, name), "spec": spec},
        )

    # HTTP.

    def _list(self, collection: re.Match, query: Mapping[str, list[str]]) -> Response:
        selector = query.get("labelSelector", [""])[0]
        plural = collection["plural"]
        namespace = re.escape(collection["namespace"]) if collection["namespace"] else "[^/]+"
        item_path = re.compile(rf"^{re.escape(collection['api'])}/namespaces/{namespace}/{re.escape(plural)}/[^/]+$")
        with self._lock:
            # Sorted by path (namespace, then name), as the API server lists from etcd's ordered keys.
            members = [obj for key, obj in sorted(self.objects.items()) if item_path.match(key)]
        try:
            items = [obj for obj in members if selector_matches(selector, obj["metadata"].get("labels") or {})]
        except ValueError as err:
            # An unparsable labelSelector is a 400 (k8s.io/apimachinery pkg/labels/selector.go, Parse).
            return Response.json(400, status(400, "BadRequest", str(err)))
        kind = (items[0]["kind"] if items else plural.rstrip("s").capitalize()) + "List"
        return Response.json(200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})

    def _proxy(self, namespace: str, name: str, kind: str) -> Response:
        if namespace == "linkerd-viz" and name.startswith("prometheus"):
            # The API server's proxy reaches the pod unmeshed, and viz's Prometheus admits only the
            # metrics-api service account over mTLS (viz/charts/linkerd-viz/templates/prometheus-policy.yaml;
            # linkerd/linkerd2#10790): the proxy's 403 comes back through the API server.
            return Response(403, b"", "text/plain", {"l5d-proxy-error": "unauthorized request on route"})
        # Nothing else is proxied here: answered as the API server does for a Service without endpoints
        # (kubernetes pkg/registry/core/service/storage/storage.go, ResourceLocation: ServiceUnavailable).
        return Response.json(503, status(503, "ServiceUnavailable", f'no endpoints available for {kind} "{name}"'))

    def _write(self, method: str, path: str, body: Optional[dict], content_type: str = "", query: Optional[Mapping[str, list[str]]] = None) -> Response:
        # The API server's answers (Kubernetes API conventions, "Response status kind"): 409
        # AlreadyExists for a create of an existing name, 404 NotFound for a missing object.
        if method == "PATCH" and content_type.split(";")[0].strip() == APPLY_PATCH:
            return self._apply(path, body or {}, (query or {}).get("fieldManager", [""])[0])
        if method == "POST":
            path = f"{path}/{(body or {}).get('metadata', {}).get('name', '')}"
        named = NAMED_OBJECT.search(path)
        if not named:
            return Response.json(405, status(405, "MethodNotAllowed", f"the fake API server writes single objects only, not {method} {path}"))
        with self._lock:
            existing = self.objects.get(path)
            if method == "POST" and existing is not None:
                return Response.json(409, status(409, "AlreadyExists", f'{named["plural"]} "{named["name"]}" already exists', {"name": named["name"], "kind": named["plural"]}))
            if method != "POST" and existing is None:
                return Response.json(404, status(404, "NotFound", f'{named["plural"]} "{named["name"]}" not found', {"name": named["name"], "kind": named["plural"]}))
            if method == "DELETE":
                # A Service's Endpoints stay: Kubernetes' endpoints controller deletes them, but not
                # when it misses the event (pkg/controller/endpoint/endpoints_controller.go, syncService).
                del self.objects[path]
                self.writes.append((method, path, None))
                return Response.json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
            updated = _merged(existing, body or {}) if method == "PATCH" else dict(body or {})
            if method == "PATCH":
                removed = [key for key, value in ((body or {}).get("metadata") or {}).get("labels", {}).items() if value is None]
                updated = without_labels(updated, removed)
            self.objects[path] = updated
            self.writes.append((method, path, updated))
            return Response.json(201 if method == "POST" else 200, updated)

    def _apply(self, path: str, body: dict, manager: str) -> Response:
        """A server-side apply: it creates a missing object (so the object must be valid as it is
        sent), and sets the manager's labels on an existing one (staging/src/k8s.io/apiserver/pkg/
        endpoints/handlers/patch.go, applyPatcher; the fakes apply nothing but labels to an existing object)."""
        named = NAMED_OBJECT.search(path)
        if not named:
            return Response.json(405, status(405, "MethodNotAllowed", f"the fake API server applies single objects only, not {path}"))
        if not manager:
            # patch.go, PatchResource: "fieldManager is required for apply requests".
            return Response.json(400, status(400, "BadRequest", "fieldManager is required for apply requests"))
        labels = (body.get("metadata") or {}).get("labels") or {}
        with self._lock:
            existing = self.objects.get(path)
            if existing is None:
                invalid = _invalid_on_create(named["plural"], named["name"], body)
                if invalid:
                    return invalid
                existing = {key: value for key, value in body.items() if key != "metadata"}
                existing["metadata"] = {key: value for key, value in (body.get("metadata") or {}).items() if key != "labels"}
            updated = apply_labels(existing, manager, labels)
            self.objects[path] = updated
            self.writes.append(("PATCH", path, updated))
            return Response.json(200, updated)

    def _respond(self, method: str, raw_path: str, authorization: Optional[str], upgrade: str = "", body: Optional[dict] = None, content_type: str = "", client_certificate: bool = False) -> Response:
        """The answer to one request; 101 means: serve the port-forward websocket."""
        self.requests.append(raw_path)
        if self.on_request:
            self.on_request(raw_path)
        # Neither a verified client certificate nor a token any authenticator accepts: 401 with a
        # Status (k8s.io/apiserver pkg/endpoints/filters/authentication.go, Unauthorized).
        if not client_certificate and not self.accepts(authorization):
            return Response.json(401, status(401, "Unauthorized", "Unauthorized"))
        url = urlsplit(raw_path)
        path = unquote(url.path)
        if method != "GET":
            return self._write(method, path, body, content_type, parse_qs(url.query))
        pod = POD_SUBRESOURCE.match(path)
        if pod and self.get(core_path(pod["namespace"], "pods", pod["name"])) is None:
            return Response.json(404, status(404, "NotFound", f'pods "{pod["name"]}" not found', {"name": pod["name"], "kind": "pods"}))
        if pod and pod["sub"] == "portforward":
            if upgrade.lower() != "websocket":
                # k8s.io/apimachinery pkg/util/proxy/upgradeaware.go, ServeHTTP: NewBadRequest("Upgrade request required").
                return Response.json(400, status(400, "BadRequest", "Upgrade request required"))
            return Response(101, b"")
        proxied = pod or SERVICE_PROXY.match(path)
        if proxied:
            return self._proxy(proxied["namespace"], proxied["name"], "pod" if pod else "service")
        collection = COLLECTION.match(path)
        if collection:
            return self._list(collection, parse_qs(url.query))
        obj = self.get(path)
        if obj is not None:
            return Response.json(200, obj)
        # k8s.io/apimachinery pkg/api/errors/errors.go, NewNotFound: `<resource> "<name>" not found`.
        named = NAMED_OBJECT.search(path)
        details = {"name": named["name"], "kind": named["plural"]} if named else None
        message = f'{named["plural"]} "{named["name"]}" not found' if named else "the server could not find the requested resource"
        return Response.json(404, status(404, "NotFound", message, details))

    def _port_forward(self, handler: BaseHTTPRequestHandler, namespace: str, pod: str, ports: list[int]) -> None:
        """Serves one port-forward websocket the way the kubelet does
        (kubernetes staging/src/k8s.io/kubelet/pkg/cri/streaming/portforward/websocket.go):
        channel 2i carries port i's data and 2i+1 its errors, and each channel first sends the port
        number (2 bytes, little-endian). The connection is to the pod's own loopback, so it never
        passes the Linkerd proxy's inbound side (linkerd/linkerd2#2352)."""
        accept = base64.b64encode(hashlib.sha1((handler.headers["Sec-WebSocket-Key"] + WEBSOCKET_GUID).encode()).digest()).decode()
        offered = [protocol.strip() for protocol in (handler.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", accept)
        if PORT_FORWARD_PROTOCOL in offered:  # the kubelet knows v4 (and "" or base64), never v5, for port-forward
            handler.send_header("Sec-WebSocket-Protocol", PORT_FORWARD_PROTOCOL)
        handler.end_headers()
        out = handler.wfile
        for index, port in enumerate(ports):
            for channel in (2 * index, 2 * index + 1):
                out.write(_frame(bytes([channel]) + port.to_bytes(2, "little")))
        with self._lock:
            listener = self.pod_listeners.get((namespace, pod), {}).get(ports[0])
        if listener is None:
            # The kubelet reports a refused connection inside the pod on the port's error channel
            # (k8s.io/kubelet pkg/cri/streaming/portforward/websocket.go: "error forwarding port %d to pod %s, uid %v: %v").
            out.write(_frame(b"\x01" + f"error forwarding port {ports[0]} to pod {pod}: connect: connection refused".encode()))
        else:
            request = b""
            while b"\r\n\r\n" not in request:
                opcode, payload = _read_frame(handler.rfile)
                if opcode == 0x8:
                    return
                if opcode == 0x2 and payload[:1] == b"\x00":
                    request += payload[1:]
            answer = listener(request.split(b" ", 2)[1].decode())
            if answer is None:
                self._closing.wait()
                return
            code, content_type, body = answer
            head = f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            out.write(_frame(b"\x00" + head.encode() + body))
        # The pod side closed: the kubelet ends the websocket.
        out.write(_frame((1000).to_bytes(2, "big"), opcode=0x8))
        out.flush()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
            disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for delayed ACKs

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # unread bodies would break keep-alive
                verified = bool(self.connection.getpeercert()) if isinstance(self.connection, ssl.SSLSocket) else False
                response = api._respond(self.command, self.path, self.headers.get("Authorization"), self.headers.get("Upgrade", ""), json.loads(raw) if raw else None, self.headers.get("Content-Type") or "", verified)
                if response.code == 101 and api.port_forwards_hang:
                    self.close_connection = True
                    api._closing.wait()
                    return
                if response.code == 101:
                    url = urlsplit(self.path)
                    pod = POD_SUBRESOURCE.match(unquote(url.path))
                    ports = [int(port) for port in parse_qs(url.query).get("ports", [""])[0].split(",")]
                    self.close_connection = True
                    api._port_forward(self, pod["namespace"], pod["name"], ports)
                    return
                self.send_response(response.code, HTTPStatus(response.code).phrase)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for header, value in response.headers.items():
                    self.send_header(header, value)
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        return Handler


def _frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One final, unmasked websocket frame (servers never mask; RFC 6455 5.1)."""
    size = len(payload)
    length = bytes([size]) if size < 126 else bytes([126]) + size.to_bytes(2, "big") if size < 1 << 16 else bytes([127]) + size.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + length + payload


def _read_frame(stream: BinaryIO) -> tuple[int, bytes]:
    """One websocket frame from a client (clients always mask)."""
    head = stream.read(2)
    if len(head) < 2:
        return 0x8, b""  # the client went away: as a close
    size = head[1] & 0x7F
    if size >= 126:
        size = int.from_bytes(stream.read(2 if size == 126 else 8), "big")
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = stream.read(size)
    return head[0] & 0x0F, bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


class SilentServer:
    """An API server that accepts connections and never answers (hung, or a black-holing middlebox
    that completes handshakes). It counts the connections made to it."""

    def __init__(self, name: str = "silent"):
        self.name = name
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"silent-{name}", daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._accepted.append(connection)  # held open, never read from or written to

    def kubeconfig(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return token_kubeconfig(self.name, f"http://{host}:{port}", "any-token")

    def __enter__(self) -> "SilentServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self._accepted:
            connection.close()
        self._listener.close()


def closed_port_kubeconfig(name: str = "gone") -> str:
    """A kubeconfig for 127.0.0.1 on a port nothing listens on: connections are refused."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return token_kubeconfig(name, f"http://127.0.0.1:{port}", "any-token")
