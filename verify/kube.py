"""Reads objects from one cluster's API server with the official client, given a kubeconfig string.

Objects come back as the API server's JSON (dicts), missing objects as None, so the checks stay
plain logic over Kubernetes-shaped data.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from components.kube_client import KubeconfigError
from components.kube_client import api_client as kubeconfig_client
from components.names import LINK_GROUP, LINK_VERSION, VIZ_NAMESPACE

# The API server's service proxy: scheme:name:port of linkerd-viz's Prometheus Service.
PROMETHEUS_QUERY_PATH = f"/api/v1/namespaces/{VIZ_NAMESPACE}/services/http:prometheus:9090/proxy/api/v1/query"
# Per request, so an unreachable cluster fails its checks instead of hanging the command.
REQUEST_TIMEOUT_SECONDS = 15


class KubeError(Exception):
    """The API server did not answer usefully (unreachable, unauthorized, server error)."""


def api_client(kubeconfig: str) -> client.ApiClient:
    """A client for the current context of a kubeconfig given as YAML text."""
    try:
        return kubeconfig_client(kubeconfig)
    except KubeconfigError as err:
        raise KubeError(f"unusable kubeconfig: {err}") from err


class KubeCluster:
    """The read-only view of a cluster that `verify.checks` needs."""

    def __init__(self, name: str, kubeconfig: str):
        self.name = name
        self._api = api_client(kubeconfig)
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    def _call(self, request: Callable[[], Any]) -> Any:
        try:
            return request()
        except ApiException as err:
            if err.status == 404:
                return None
            raise KubeError(f"the API server of {self.name} answered {err.status} {err.reason}") from err
        except urllib3.exceptions.HTTPError as err:
            raise KubeError(f"cannot reach the API server of {self.name}: {err}") from err

    def _read(self, method: Callable[..., Any], *args: str) -> Optional[dict]:
        # Raw JSON instead of generated models: the checks read camelCase fields as the API serves them.
        response = self._call(lambda: method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS))
        return None if response is None else json.loads(response.data)

    def get_link(self, namespace: str, name: str) -> Optional[dict]:
        return self._call(
            lambda: self._custom.get_namespaced_custom_object(
                LINK_GROUP, LINK_VERSION, namespace, "links", name, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        )

    def get_deployment(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._apps.read_namespaced_deployment, name, namespace)

    def get_service(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_service, name, namespace)

    def get_endpoints(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_endpoints, name, namespace)

    def get_configmap(self, namespace: str, name: str) -> Optional[dict]:
        return self._read(self._core.read_namespaced_config_map, name, namespace)

    def prometheus_query(self, query: str) -> list[dict]:
        """The instant-vector result of a PromQL query against linkerd-viz's Prometheus."""

        def request() -> Any:
            # The generated proxy methods cannot pass query parameters, so build the call with the client's own serializer.
            serialized = self._api.param_serialize(
                "GET",
                PROMETHEUS_QUERY_PATH,
                query_params=[("query", query)],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT_SECONDS)
            response.read()
            return self._api.response_deserialize(response, {"200": "object"}).data

        body = self._call(request)
        if body is None:
            raise KubeError(f"no Prometheus in {VIZ_NAMESPACE} on {self.name}; is linkerd-viz installed?")
        if body.get("status") != "success":
            raise KubeError(f"Prometheus on {self.name} rejected the query: {body.get('error')}")
        return body["data"]["result"]
