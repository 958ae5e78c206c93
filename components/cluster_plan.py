"""What DOKS already has, looked up before anything is registered: which clusters exist (and where,
on what, with what), which versions a new cluster can get, and which config changes DOKS could
only make by replacing a cluster, which are refused here with the procedure instead."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_digitalocean as digitalocean

from components.cluster import doks_name
from components.config import MIN_KUBERNETES_MINOR, SYSTEM_POOL_SIZE, AdoptedClusterSpec, MeshConfig
from components.doctl import DoctlError, LiveCluster, cluster_ca, find_clusters
from components.kube_client import CredentialPluginError, exec_credential_token
from components.kubeconfigs import doctl_exec, exec_kubeconfig

VERSION_SLUG = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class ClusterPlan:
    """What the program registers for a cluster, decided before anything is registered."""

    # The version slug to register (see `plan_clusters`).
    version: str
    # How the program reaches the running cluster now (the exec form); None for a cluster about to
    # be created, or one this token gets no credentials for (a read-only preview token).
    kubeconfig: Optional[str]


def _version_key(slug: str) -> tuple[int, ...]:
    match = VERSION_SLUG.match(slug)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def _minor(slug: str) -> str:
    return ".".join(slug.split(".")[:2])


def _matches(slug: str, prefix: str) -> bool:
    return slug == prefix or slug.startswith(f"{prefix}.") or slug.startswith(f"{prefix}-")


def offered_versions() -> list[str]:
    """Every version DOKS offers for a new cluster, newest first."""
    return sorted(digitalocean.get_kubernetes_versions().valid_versions or [], key=_version_key, reverse=True)


def choose_version(prefix: Optional[str], offered: list[str]) -> str:
    """The newest offered version matching `prefix` (the newest of all when None), or a RunError
    that lists what DOKS offers."""
    minors = ", ".join(dict.fromkeys(_minor(v) for v in offered)) or "none"
    matching = [v for v in offered if prefix is None or _matches(v, prefix)]
    if not matching:
        raise pulumi.RunError(
            f"kubernetesVersion {prefix!r} is not offered by DOKS for new clusters (DOKS retires old minors); "
            f"offered: {minors} (`doctl kubernetes options versions`). Pin one of those, or leave kubernetesVersion "
            "out for the newest"
        )
    if _version_key(matching[0])[1] < MIN_KUBERNETES_MINOR:
        raise pulumi.RunError(f"DOKS offers {matching[0]}, but the mesh needs Kubernetes 1.{MIN_KUBERNETES_MINOR} or newer (offered: {minors})")
    return matching[0]


def _replacement_procedure(name: str) -> str:
    return (
        f"DOKS can only do that by replacing {name}, and Pulumi would create the new cluster under the same "
        "name before deleting the old one, failing half-way. Instead: add a cluster under a new name with "
        f"the new settings (and its own subnets), move the links and exports to it, `pulumi up`; then remove "
        f"{name} from the config and `pulumi up` again"
    )


def refused_changes(config: MeshConfig, live: Mapping[str, Optional[LiveCluster]], namespace: str) -> list[str]:
    """Config changes that an existing cluster cannot take in place."""
    problems = []
    for name, spec in config.created_clusters().items():
        cluster = live.get(name)
        if cluster is None:
            continue
        # Fixed at creation: each forces a new cluster (resource_kubernetes_cluster.go: region,
        # cluster_subnet and service_subnet are ForceNew, and so is the built-in pool's size).
        fixed = {
            "region": (cluster.region, spec.region),
            "clusterSubnet": (cluster.cluster_subnet, spec.cluster_subnet),
            "serviceSubnet": (cluster.service_subnet, spec.service_subnet),
        }
        for key, (running, wanted) in fixed.items():
            if running != wanted:
                problems.append(f"{namespace}:clusters.{name}.{key}: {name} has {running}, the config asks for {wanted}. {_replacement_procedure(name)}")
        if cluster.system_pool_size not in (None, SYSTEM_POOL_SIZE):
            problems.append(
                f"{namespace}:clusters.{name}: its built-in node pool is {cluster.system_pool_size}; this program keeps that pool at "
                f"{SYSTEM_POOL_SIZE} and runs the workers in a pool of their own. {_replacement_procedure(name)}"
            )
        if cluster.ha and not spec.control_plane_ha:
            problems.append(
                f"{namespace}:clusters.{name}.controlPlaneHa: {name} has DOKS' high-availability control plane, which cannot be "
                "turned off once on; set controlPlaneHa: true (it stays billed), or replace the cluster"
            )
    return problems


def _reach_one(name: str, cluster: LiveCluster) -> str:
    """The running cluster's kubeconfig, once this token got a credential for it."""
    exec_credential_token(name, doctl_exec(cluster.id))
    return exec_kubeconfig(name, cluster.id, cluster.endpoint, cluster_ca(cluster.id))


def _reach(live: Mapping[str, Optional[LiveCluster]]) -> tuple[dict[str, str], dict[str, str]]:
    """Running cluster -> its kubeconfig, and running cluster -> why this token gets no credentials
    for it (the read-only preview token, which lacks kubernetes:access_cluster), as doctl reports it.
    The credential fetched here is the one the providers and the waits then use (doctl's cache, and
    kube_client's). The clusters are asked at once: each is a few doctl calls to DigitalOcean."""
    running = {name: cluster for name, cluster in live.items() if cluster is not None}
    kubeconfigs, refused = {}, {}
    with ThreadPoolExecutor(max_workers=max(len(running), 1)) as pool:
        futures = {name: pool.submit(_reach_one, name, cluster) for name, cluster in running.items()}
        for name, future in futures.items():
            try:
                kubeconfigs[name] = future.result()
            except (CredentialPluginError, DoctlError) as error:
                refused[name] = str(error)
    return kubeconfigs, refused


def find_doks_clusters(config: MeshConfig) -> dict[str, Optional[LiveCluster]]:
    """Config cluster name -> the DOKS cluster it is now, None where there is none yet: the clusters
    the program creates by their DOKS names, the adopted ones by the name or id the config gives.
    One doctl lookup for them all (it sees the whole account with only kubernetes:read); none
    without a DOKS cluster in the config."""
    stack = pulumi.get_stack()
    keys = {name: doks_name(stack, name) for name in config.created_clusters()}
    keys.update({name: spec.existing_cluster for name, spec in config.clusters.items() if isinstance(spec, AdoptedClusterSpec)})
    if not keys:
        return {}
    try:
        found = find_clusters(keys.values())
    except DoctlError as error:
        raise pulumi.RunError(f"looking up the account's DOKS clusters failed: {error}") from None
    return {name: found[key] for name, key in keys.items()}


def plan_clusters(config: MeshConfig, namespace: str, doks: Mapping[str, Optional[LiveCluster]]) -> dict[str, ClusterPlan]:
    """Per cluster the program creates, the version slug to register (an offered one for a new
    cluster, the running one otherwise) and, for a running cluster, its kubeconfig; `doks`: what
    `find_doks_clusters` found. The versions are looked up only if a cluster is new."""
    live = {name: doks[name] for name in config.created_clusters()}
    if not live:
        return {}
    kubeconfigs, refused = _reach(live)
    if refused and not pulumi.runtime.is_dry_run():
        raise pulumi.RunError("this token gets no credentials for the running clusters, so nothing was changed:\n" + "\n".join(f"  - {why}" for why in refused.values()))
    if refused:
        pulumi.log.warn(
            f"this token gets no credentials for the running clusters {', '.join(refused)} (a read-only preview token, "
            "without kubernetes:access_cluster): this preview does not look inside them (a moved gateway, re-issued "
            "link credentials); their region, subnets, pools, HA and version were checked"
        )
    problems = refused_changes(config, live, namespace)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise pulumi.RunError(f"the config asks for changes an existing cluster cannot take ({len(problems)}):\n{listed}")
    new = [name for name, cluster in live.items() if cluster is None]
    version = choose_version(config.kubernetes_version, offered_versions()) if new else ""
    if not new and config.kubernetes_version and not any(_matches(v, config.kubernetes_version) for v in offered_versions()):
        pulumi.log.warn(
            f"kubernetesVersion {config.kubernetes_version!r} is no longer offered by DOKS: the existing clusters keep running "
            "and are left alone, but a cluster added later needs an offered version (`doctl kubernetes options versions`)"
        )
    # A running cluster needs no offered version: DOKS may have retired its minor long ago.
    return {name: ClusterPlan(cluster.version if cluster else version, kubeconfigs.get(name)) for name, cluster in live.items()}
