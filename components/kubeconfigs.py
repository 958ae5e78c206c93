"""The kinds of kubeconfig the mesh writes, as YAML text (no Pulumi import, so the dynamic
providers and `verify` can use it too).

- The exec form, DigitalOcean's own (`doctl kubernetes cluster kubeconfig save` writes it): it
  holds no secret; whoever uses it runs doctl, which fetches a short-lived token for that cluster
  with the DigitalOcean token of its environment (DIGITALOCEAN_ACCESS_TOKEN), in doctl's default
  context whatever context `doctl auth switch` chose (components/doctl.py).
- The bearer form, for a link's credentials: a target's remote-access service-account token. It
  is written into the linking cluster only, never into the Pulumi state.
- A reference to a context of a kubeconfig file the user gave (a cluster this program did not
  create): the path and the context, read at run time by whoever uses it.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Optional

import yaml

from components.doctl import CONTEXT_FLAG

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def doctl_exec(cluster_id: str) -> dict:
    """The exec credential plugin that `doctl kubernetes cluster kubeconfig save` configures, with
    `--context` where it goes (commands/kubernetes.go, writeOrAddToKubeconfig), naming the default
    context: the one that takes DIGITALOCEAN_ACCESS_TOKEN."""
    return {
        "apiVersion": EXEC_API_VERSION,
        "command": "doctl",
        "args": ["kubernetes", "cluster", "kubeconfig", "exec-credential", "--version=v1beta1", CONTEXT_FLAG, cluster_id],
        # Never prompt: it runs under `pulumi up`, in CI, inside the providers.
        "interactiveMode": "Never",
    }


def kubeconfig_yaml(name: str, endpoint: str, ca_certificate_b64: Optional[str], user: dict) -> str:
    """One cluster, one user, one current context; without a CA, the system's roots are trusted."""
    cluster = {"server": endpoint, "certificate-authority-data": ca_certificate_b64} if ca_certificate_b64 else {"server": endpoint}
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": f"{name}-user", "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-user"}}],
            "current-context": name,
        },
        sort_keys=False,
    )


def exec_kubeconfig(name: str, cluster_id: str, endpoint: str, ca_certificate_b64: str) -> str:
    return kubeconfig_yaml(name, endpoint, ca_certificate_b64, {"exec": doctl_exec(cluster_id)})


def token_kubeconfig(name: str, endpoint: str, ca_certificate_b64: Optional[str], token: str) -> str:
    return kubeconfig_yaml(name, endpoint, ca_certificate_b64, {"token": token})


# A cluster given by a kubeconfig is kept by reference: the file's path and the context's name.
# The state and the outputs hold this, never the file's content (its credentials); whoever reaches
# the cluster (the Kubernetes provider, the live reads, `verify`) reads the file at run time.
REFERENCE_KIND = "KubeconfigReference"
# The kubeconfig fields that name files, resolved against the kubeconfig's own directory as
# client-go does (tools/clientcmd/loader.go, ResolveLocalPaths).
CLUSTER_FILE_FIELDS = ("certificate-authority",)
USER_FILE_FIELDS = ("client-certificate", "client-key", "tokenFile")


class KubeconfigFileError(Exception):
    """A kubeconfig file or context that cannot be used; the message never quotes the file's content."""


def kubeconfig_reference(path: str, context: str) -> str:
    return yaml.safe_dump({"kind": REFERENCE_KIND, "kubeconfig": path, "context": context}, sort_keys=False)


def parse_reference(text: str) -> Optional[tuple[str, str]]:
    """(path, context) of a reference; None for anything else (a kubeconfig's own text)."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(parsed, dict) and parsed.get("kind") == REFERENCE_KIND:
        return str(parsed["kubeconfig"]), str(parsed["context"])
    return None


def _named(entries: Any, name: str, what: str, path: str) -> dict:
    found = next((entry for entry in entries or [] if isinstance(entry, dict) and entry.get("name") == name), None)
    if found is None or not isinstance(found.get(what), dict):
        raise KubeconfigFileError(f"{path} has no {what} {name!r}")
    return found


def load_context(path: str, context: str) -> dict:
    """The kubeconfig at `path` cut down to `context` (see `select_context`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            parsed = yaml.safe_load(handle)
    except FileNotFoundError:
        raise KubeconfigFileError(f"the kubeconfig file {path} does not exist") from None
    except OSError as error:
        raise KubeconfigFileError(f"the kubeconfig file {path} cannot be read ({error.strerror})") from None
    except yaml.YAMLError:
        raise KubeconfigFileError(f"the kubeconfig file {path} is not valid YAML") from None
    return select_context(parsed, context, path)


def select_context(parsed: Any, context: str, path: str) -> dict:
    """A kubeconfig cut down to `context` (its cluster and user, made current), with the files it
    names resolved against the directory of `path`, the file it came from."""
    if not isinstance(parsed, dict):
        raise KubeconfigFileError(f"the kubeconfig file {path} is not a kubeconfig")
    contexts = [entry.get("name") for entry in parsed.get("contexts") or [] if isinstance(entry, dict)]
    if context not in contexts:
        raise KubeconfigFileError(f"the kubeconfig file {path} has no context {context!r}; its contexts: {', '.join(map(str, contexts)) or 'none'}")
    chosen = _named(parsed.get("contexts"), context, "context", path)
    cluster = _named(parsed.get("clusters"), chosen["context"].get("cluster"), "cluster", path)
    user = _named(parsed.get("users"), chosen["context"].get("user"), "user", path)
    base = os.path.dirname(os.path.abspath(path))
    resolve = lambda fields, entry: {key: os.path.join(base, value) if key in fields and isinstance(value, str) else value for key, value in entry.items()}
    user_fields = resolve(USER_FILE_FIELDS, user["user"])
    exec_config = user_fields.get("exec")
    # An exec command with a path separator is relative to the kubeconfig; a bare name is found on PATH.
    if isinstance(exec_config, dict) and os.sep in str(exec_config.get("command", "")):
        user_fields = {**user_fields, "exec": {**exec_config, "command": os.path.normpath(os.path.join(base, exec_config["command"]))}}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster["name"], "cluster": resolve(CLUSTER_FILE_FIELDS, cluster["cluster"])}],
        "users": [{"name": user["name"], "user": user_fields}],
        "contexts": [{"name": context, "context": {**chosen["context"]}}],
        "current-context": context,
    }


def context_cluster(kubeconfig: dict) -> tuple[str, Optional[str]]:
    """The API server URL of the current context's cluster, and its CA (base64 PEM, as DOKS gives
    it; None when the kubeconfig names none and trusts the system's roots)."""
    cluster = kubeconfig["clusters"][0]["cluster"]
    server = cluster.get("server")
    if not server:
        raise KubeconfigFileError(f"cluster {kubeconfig['clusters'][0]['name']!r} of the context has no server")
    if cluster.get("certificate-authority-data"):
        return server, cluster["certificate-authority-data"]
    if cluster.get("certificate-authority"):
        try:
            with open(cluster["certificate-authority"], "rb") as handle:
                return server, base64.b64encode(handle.read()).decode()
        except OSError as error:
            raise KubeconfigFileError(f"the CA file {cluster['certificate-authority']} of the context cannot be read ({error.strerror})") from None
    return server, None
