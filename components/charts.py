"""How every Linkerd chart is installed: one place for the repository and release policy."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pulumi
import pulumi_kubernetes as kubernetes

# Open-source Linkerd publishes edge releases only; chart 20YY.M.N is edge-YY.M.N.
LINKERD_HELM_REPO = "https://helm.linkerd.io/edge"


def merge_values(base: dict, override: dict) -> dict:
    """Deep-merge Helm values the way `-f a.yaml -f b.yaml` does: maps merge, the rest replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def linkerd_release(
    name: str,
    *,
    chart: str,
    namespace: str,
    version: str,
    values: pulumi.Input[dict[str, Any]],
    provider: kubernetes.Provider,
    parent: pulumi.Resource,
    timeout_seconds: int,
    depends_on: Optional[Sequence[pulumi.Resource]] = None,
    description: Optional[str] = None,
) -> kubernetes.helm.v3.Release:
    """A Helm release of a Linkerd chart, named after the chart so `helm ls` reads as the docs do.

    `atomic` rolls a failed install or upgrade back instead of leaving it half-applied (it
    implies waiting for the workloads to be ready, which is what orders the extensions after a
    ready control plane); `cleanup_on_fail` removes what a failed upgrade created.
    A new `description` (Helm's release description, shown by `helm history`) upgrades the
    release without changing its values: Helm renders the chart again, and nothing else changes.
    """
    return kubernetes.helm.v3.Release(
        name,
        name=chart,
        chart=chart,
        version=version,
        repository_opts=kubernetes.helm.v3.RepositoryOptsArgs(repo=LINKERD_HELM_REPO),
        namespace=namespace,
        # The charts do not create their namespaces under Helm; `helm install --create-namespace`
        # is Linkerd's documented Helm procedure, and the viz and multicluster charts label
        # their namespaces themselves in a post-install hook.
        create_namespace=True,
        values=values,
        atomic=True,
        cleanup_on_fail=True,
        timeout=timeout_seconds,
        description=description,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on or [])),
    )
