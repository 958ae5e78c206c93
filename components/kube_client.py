"""A Kubernetes API client from a kubeconfig given as text, or as a reference to a context of a
kubeconfig file (components/kubeconfigs.py), for code that reads live clusters outside the Pulumi
provider (the waits during `pulumi up`, and `verify`). Whatever the context authenticates with
works: a bearer token (or token file), a client certificate, an exec credential plugin.

For a user with an exec credential plugin (the DOKS clusters' doctl form, `aws eks get-token`,
`gke-gcloud-auth-plugin`) the plugin is run here,
not by the official client: that client logs a failing plugin to stderr and sends the request
without credentials, so the caller would see a bare 401 (kubernetes/config/kube_config.py,
`_load_from_exec_plugin`). Here a failing plugin is an error that names the cluster and the fix.

A credential is kept until its expirationTimestamp, and when the API server refuses it (401) the
client takes a fresh one and sends the request once more, as client-go's exec authenticator
refreshes on 401 (client-go plugin/pkg/client/auth/exec/exec.go at v0.36.3, roundTripper.RoundTrip
and maybeRefreshCreds): a wait that outlives its token goes on. Renewing a doctl credential early
would get the same token back from doctl's cache, so for doctl the refused token is also removed
from that cache first (components/doctl.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import time
from typing import Any, Callable, Optional

import yaml
from kubernetes import client, config

from components import doctl
from components.kubeconfigs import KubeconfigFileError, load_context, parse_reference

# doctl asks the DigitalOcean API for the cluster's credentials: a few seconds at most.
EXEC_TIMEOUT_SECONDS = 30
# Plugin (command, args, environment) -> (the user's credential fields, expiry as epoch seconds).
# client-go caches exec credentials in-process the same way, until they expire or are refused.
_credential_cache: dict[str, tuple[dict, float]] = {}
# Where kubernetes' config loader puts a user's token in the client's configuration (config/kube_config.py, _set_config).
API_KEY = "BearerToken"


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message never quotes it (it may hold credentials)."""


class CredentialPluginError(KubeconfigError):
    """The kubeconfig's exec credential plugin gave no credential; the message says why and what to do."""


def api_client(kubeconfig: str, exec_timeout_seconds: float = EXEC_TIMEOUT_SECONDS, retries: Optional[int] = None) -> client.ApiClient:
    """`retries` caps urllib3's retries per request (None: urllib3's default of 3)."""
    try:
        parsed = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KubeconfigError(f"the kubeconfig is not valid YAML{where}") from None
    reference = parse_reference(kubeconfig)
    if reference:
        try:
            parsed = load_context(*reference)
        except KubeconfigFileError as error:
            raise KubeconfigError(str(error)) from None
    try:
        parsed, refresh = _with_plugin_credential(parsed, exec_timeout_seconds)
        configuration = client.Configuration(retries=retries)
        config.load_kube_config_from_dict(parsed, client_configuration=configuration, persist_config=False)
        return RefreshingApiClient(configuration, refresh)
    except (config.ConfigException, TypeError, AttributeError, KeyError, StopIteration) as err:
        raise KubeconfigError(f"the kubeconfig is incomplete ({type(err).__name__})") from None


class RefreshingApiClient(client.ApiClient):
    """An ApiClient that, given `refresh` (refused token -> fresh token), answers a 401 by taking a
    fresh credential and sending the request once more with it; later requests keep the fresh one."""

    def __init__(self, configuration: client.Configuration, refresh: Optional[Callable[[str], str]]):
        super().__init__(configuration)
        self._refresh = refresh

    def call_api(self, method: str, url: str, header_params: Optional[dict] = None, *args: Any, **kwargs: Any) -> Any:
        response = super().call_api(method, url, header_params, *args, **kwargs)
        if self._refresh is None or getattr(response, "status", None) != 401:
            return response
        response.read()  # releases the connection
        refused = self.configuration.api_key.get(API_KEY, "").removeprefix("Bearer ")
        authorization = f"Bearer {self._refresh(refused)}"
        self.configuration.api_key[API_KEY] = authorization
        headers = {key: value for key, value in (header_params or {}).items() if key.lower() != "authorization"}
        return super().call_api(method, url, {**headers, "authorization": authorization}, *args, **kwargs)


def _with_plugin_credential(kubeconfig: dict, timeout_seconds: float) -> tuple[dict, Optional[Callable[[str], str]]]:
    """The kubeconfig with its current user's exec plugin replaced by the credential it returns, and,
    for a token, how to get a fresh one in place of a refused one (None otherwise: a client
    certificate is not refreshed on 401, nor is anything without a plugin)."""
    context = next(c["context"] for c in kubeconfig["contexts"] if c["name"] == kubeconfig["current-context"])
    user = next(u for u in kubeconfig["users"] if u["name"] == context["user"])
    if "exec" not in (user.get("user") or {}):
        return kubeconfig, None
    plugin = user["user"]["exec"]
    cluster = next((c["cluster"] for c in kubeconfig["clusters"] if c["name"] == context["cluster"]), {})
    credential = exec_credential(context["cluster"], plugin, timeout_seconds, cluster)
    users = [u if u is not user else {"name": u["name"], "user": credential} for u in kubeconfig["users"]]
    if "token" not in credential:
        return {**kubeconfig, "users": users}, None
    return {**kubeconfig, "users": users}, lambda refused: exec_credential(context["cluster"], plugin, timeout_seconds, cluster, refused={"token": refused})["token"]


def exec_credential_token(cluster: str, exec_config: dict, timeout_seconds: float = EXEC_TIMEOUT_SECONDS) -> str:
    """The token a plugin gives (the DOKS clusters' doctl form)."""
    credential = exec_credential(cluster, exec_config, timeout_seconds)
    if "token" not in credential:
        raise CredentialPluginError(f"cluster {cluster!r}: the credential plugin gave a client certificate where a token was expected")
    return credential["token"]


def exec_credential(cluster: str, exec_config: dict, timeout_seconds: float = EXEC_TIMEOUT_SECONDS, cluster_info: Optional[dict] = None, refused: Optional[dict] = None) -> dict:
    """Runs the plugin as client-go does (the process environment plus the plugin's own `env`; the
    cluster's server and CA in KUBERNETES_EXEC_INFO when it asks for them with provideClusterInfo,
    client-go plugin/pkg/client/auth/exec/exec.go); returns the user's credential fields: a token,
    or a client certificate and key. `refused`: the credential the API server just refused, which
    is not served again."""
    command = [exec_config["command"], *(exec_config.get("args") or [])]
    env = {**os.environ, **{item["name"]: item["value"] for item in exec_config.get("env") or []}}
    spec: dict = {"interactive": False}
    if exec_config.get("provideClusterInfo") and cluster_info:
        spec["cluster"] = {"server": cluster_info.get("server"), "certificate-authority-data": cluster_info.get("certificate-authority-data")}
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": exec_config["apiVersion"], "kind": "ExecCredential", "spec": spec})
    key = hashlib.sha256(json.dumps([command, sorted(env.items())]).encode()).hexdigest()
    cached = _credential_cache.get(key)
    if cached and cached[0] != refused and cached[1] > time.time():
        return cached[0]
    cluster_id = doctl.exec_credential_cluster(command)
    if refused and refused.get("token") and cluster_id:
        doctl.forget_cached_credential(cluster_id, refused["token"], env)
    shown = " ".join(command)
    try:
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_seconds)
    except FileNotFoundError:
        raise CredentialPluginError(
            f"cluster {cluster!r}: the kubeconfig runs `{shown}` for credentials, but {command[0]!r} is not on PATH; "
            f"install it (`make deploy` installs the pinned version) or put it on PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialPluginError(f"cluster {cluster!r}: the credential plugin `{shown}` did not answer within {timeout_seconds:g}s") from None
    if done.returncode != 0:
        said = doctl.redacted(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message", env)
        raise CredentialPluginError(f"cluster {cluster!r}: the credential plugin `{shown}` failed (exit {done.returncode}: {said}); {_hint(command, env)}")
    try:
        status = json.loads(done.stdout)["status"]
        if status.get("token"):
            credential = {"token": status["token"]}
        else:
            # kubeconfig's *-data fields are base64; the plugin's are PEM (client.authentication.k8s.io).
            credential = {field: base64.b64encode(status[key].encode()).decode() for field, key in (("client-certificate-data", "clientCertificateData"), ("client-key-data", "clientKeyData"))}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CredentialPluginError(f"cluster {cluster!r}: the credential plugin `{shown}` printed no ExecCredential with a token or a client certificate") from None
    expiry = _epoch(status.get("expirationTimestamp"))
    if expiry is not None:
        _credential_cache[key] = (credential, expiry)
    return credential


def _hint(command: list[str], env: dict[str, str]) -> str:
    if os.path.basename(command[0]) != "doctl":
        return "run it yourself to see why"
    if not env.get("DIGITALOCEAN_ACCESS_TOKEN"):
        return "DIGITALOCEAN_ACCESS_TOKEN is not set: export your DigitalOcean token in it (`make deploy` exports it from DIGITALOCEAN_TOKEN)"
    return (
        "DigitalOcean refused DIGITALOCEAN_ACCESS_TOKEN for this cluster: check that the token is valid, belongs to the "
        "account that owns the cluster and may access Kubernetes clusters, and that the cluster still exists"
    )


def _epoch(timestamp: Optional[str]) -> Optional[float]:
    if not timestamp:
        return None
    try:
        return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
