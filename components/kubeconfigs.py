"""The two kinds of kubeconfig the mesh writes, as YAML text (no Pulumi import, so the dynamic
providers and `verify` can use it too).

- The exec form, DigitalOcean's own (`doctl kubernetes cluster kubeconfig save` writes it): it
  holds no secret; whoever uses it runs doctl, which fetches a short-lived token for that cluster
  with the DigitalOcean token of its environment (DIGITALOCEAN_ACCESS_TOKEN), in doctl's default
  context whatever context `doctl auth switch` chose (components/doctl.py).
- The bearer form, for a link's credentials: a target's remote-access service-account token. It
  is written into the linking cluster only, never into the Pulumi state.
"""

from __future__ import annotations

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


def kubeconfig_yaml(name: str, endpoint: str, ca_certificate_b64: str, user: dict) -> str:
    """One cluster, one user, one current context."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_certificate_b64}}],
            "users": [{"name": f"{name}-user", "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-user"}}],
            "current-context": name,
        },
        sort_keys=False,
    )


def exec_kubeconfig(name: str, cluster_id: str, endpoint: str, ca_certificate_b64: str) -> str:
    return kubeconfig_yaml(name, endpoint, ca_certificate_b64, {"exec": doctl_exec(cluster_id)})


def token_kubeconfig(name: str, endpoint: str, ca_certificate_b64: str, token: str) -> str:
    return kubeconfig_yaml(name, endpoint, ca_certificate_b64, {"token": token})
