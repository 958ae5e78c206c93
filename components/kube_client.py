"""A Kubernetes API client from a kubeconfig given as text, for code that reads live clusters
outside the Pulumi provider (the waits during `pulumi up`, and `verify`).

For a user with an exec credential plugin (the clusters' doctl form) the plugin is run here,
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

# doctl asks the DigitalOcean API for the cluster's credentials: a few seconds at most.
EXEC_TIMEOUT_SECONDS = 30
# Plugin (command, args, environment) -> (token, expiry as epoch seconds). client-go caches exec
# credentials in-process the same way, until they expire or are refused.
_token_cache: dict[str, tuple[str, float]] = {}
# Where kubernetes' config loader puts a user's token in the client's configuration (config/kube_config.py, _set_config).
API_KEY = "BearerToken"


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message never quotes it (it may hold credentials)."""


class CredentialPluginError(KubeconfigError):
    """The kubeconfig's exec credential plugin gave no token; the message says why and what to do."""


def api_client(kubeconfig: str, exec_timeout_seconds: float = EXEC_TIMEOUT_SECONDS, retries: Optional[int] = None) -> client.ApiClient:
    """`retries` caps urllib3's retries per request (None: urllib3's default of 3)."""
    try:
        parsed = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KubeconfigError(f"the kubeconfig is not valid YAML{where}") from None
    try:
        parsed, refresh = _with_plugin_token(parsed, exec_timeout_seconds)
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


def _with_plugin_token(kubeconfig: dict, timeout_seconds: float) -> tuple[dict, Optional[Callable[[str], str]]]:
    """The kubeconfig with its current user's exec plugin replaced by the token it returns, and how
    to get a fresh one in place of a refused one (None without a plugin)."""
    context = next(c["context"] for c in kubeconfig["contexts"] if c["name"] == kubeconfig["current-context"])
    user = next(u for u in kubeconfig["users"] if u["name"] == context["user"])
    if "exec" not in (user.get("user") or {}):
        return kubeconfig, None
    plugin = user["user"]["exec"]
    token = exec_credential_token(context["cluster"], plugin, timeout_seconds)
    users = [u if u is not user else {"name": u["name"], "user": {"token": token}} for u in kubeconfig["users"]]
    return {**kubeconfig, "users": users}, lambda refused: exec_credential_token(context["cluster"], plugin, timeout_seconds, refused=refused)


def exec_credential_token(cluster: str, exec_config: dict, timeout_seconds: float = EXEC_TIMEOUT_SECONDS, refused: Optional[str] = None) -> str:
    """Runs the plugin as client-go does (the process environment plus the plugin's own `env`).
    `refused`: the token the API server just refused, which is not served again."""
    command = [exec_config["command"], *(exec_config.get("args") or [])]
    env = {**os.environ, **{item["name"]: item["value"] for item in exec_config.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": exec_config["apiVersion"], "kind": "ExecCredential", "spec": {"interactive": False}})
    key = hashlib.sha256(json.dumps([command, sorted(env.items())]).encode()).hexdigest()
    cached = _token_cache.get(key)
    if cached and cached[0] != refused and cached[1] > time.time():
        return cached[0]
    cluster_id = doctl.exec_credential_cluster(command)
    if refused and cluster_id:
        doctl.forget_cached_credential(cluster_id, refused, env)
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
        token = status["token"]
    except (ValueError, KeyError, TypeError):
        raise CredentialPluginError(f"cluster {cluster!r}: the credential plugin `{shown}` printed no ExecCredential with a token") from None
    expiry = _epoch(status.get("expirationTimestamp"))
    if expiry is not None:
        _token_cache[key] = (token, expiry)
    return token


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
