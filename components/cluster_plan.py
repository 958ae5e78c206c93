"""What DOKS already has, looked up before anything is registered: which clusters exist (and where,
on what, with what), which versions a new cluster can get, and which config changes DOKS could
only make by replacing a cluster, which are refused here with the procedure instead."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_digitalocean as digitalocean

from components.cluster import PROVIDER_CREDENTIALS_SECONDS, doks_name
from components.config import MIN_KUBERNETES_MINOR, SYSTEM_POOL_SIZE, MeshConfig

# The getKubernetesCluster data source fails with this when no cluster has the name
# (terraform-provider-digitalocean digitalocean/kubernetes/datasource_kubernetes_cluster.go).
CLUSTER_NOT_FOUND = "Unable to find cluster with name"
# It fails with this when it found the cluster but may not fetch its credentials, which it does on
# every read (resource_kubernetes_cluster.go, digitaloceanKubernetesClusterRead): a read-only
# preview token without kubernetes:access_cluster.
CREDENTIALS_REFUSED = "Unable to fetch Kubernetes credentials"
VERSION_SLUG = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class LiveCluster:
    """A DOKS cluster as it runs now."""

    id: str
    region: str
    version: str
    ha: bool
    cluster_subnet: str
    service_subnet: str
    system_pool_size: Optional[str]
    endpoint: str
    ca_certificate: str  # base64 PEM: public, unlike the token the lookup fetches with it


class ClusterDetailsRefused(Exception):
    """The cluster exists, but this token may not read its details."""


def find_cluster(name: str) -> Optional[LiveCluster]:
    """The cluster DOKS knows by `name`, or None; ClusterDetailsRefused in a preview whose token may
    not read it; any other failure of the lookup is raised."""
    try:
        # It fetches the cluster's credentials each time: a token that expires in minutes.
        found = digitalocean.get_kubernetes_cluster(name=name, kubeconfig_expire_seconds=PROVIDER_CREDENTIALS_SECONDS)
    except Exception as error:  # the engine reports a failed invoke as a plain Exception
        if CLUSTER_NOT_FOUND in str(error):
            return None
        if CREDENTIALS_REFUSED in str(error) and pulumi.runtime.is_dry_run():
            raise ClusterDetailsRefused(name) from None
        raise
    # The data source lists the built-in pool only, found by a tag it then filters out
    # (resource_kubernetes_cluster.go, digitaloceanKubernetesClusterRead; kubernetes.go FilterTags);
    # none for a cluster made outside Pulumi and Terraform.
    built_in = (found.node_pools or [None])[0]
    return LiveCluster(
        id=found.id,
        region=found.region,
        version=found.version,
        ha=bool(found.ha),
        cluster_subnet=found.cluster_subnet,
        service_subnet=found.service_subnet,
        system_pool_size=built_in.size if built_in else None,
        endpoint=found.endpoint,
        ca_certificate=found.kube_configs[0].cluster_ca_certificate if found.kube_configs else "",
    )


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


def plan_clusters(config: MeshConfig, namespace: str) -> dict[str, str]:
    """The version slug to register per cluster the program creates: an offered one for a new
    cluster, the running one otherwise. One lookup per cluster by its DOKS name, then the versions,
    only if a cluster is new."""
    if not config.created_clusters():
        return {}  # nothing to look up, nor any version to choose: no DigitalOcean call at all
    stack = pulumi.get_stack()
    live: dict[str, Optional[LiveCluster]] = {}
    unread: list[str] = []
    for name in config.created_clusters():
        try:
            live[name] = find_cluster(doks_name(stack, name))
        except ClusterDetailsRefused:
            unread.append(name)
    if unread:
        pulumi.log.warn(
            f"this token may not read the details of the running clusters {', '.join(unread)} (a read-only preview token, "
            "without kubernetes:access_cluster): this preview does not check them for changes DOKS would refuse, "
            "and shows their stored version; `pulumi up` checks them"
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
    # A running cluster needs no offered version: DOKS may have retired its minor long ago. One whose
    # version this preview cannot read registers none: the engine puts the stored one in its place
    # (ignoreChanges, applied before the provider's Check: pulumi pkg/resource/deploy/step_generator.go).
    return {**{name: cluster.version if cluster else version for name, cluster in live.items()}, **{name: "" for name in unread}}
