"""The topology: builds every cluster, the shared identity, Linkerd, the links, the exports and
the demo from the config. The only module that knows how the pieces connect."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi

from components.cluster_plan import find_doks_clusters, plan_clusters
from components.clusters import MeshCluster, build_cluster
from components.config import ClusterReach, MeshConfig
from components.demo import BACKENDS, DEMO_NAMESPACE, WEB_SERVICE, Demo, DemoArgs
from components.exports import ExportedService, ExportedServiceArgs
from components.gateway_api import gateway_api_values
from components.given_clusters import GivenCluster, plan_given_clusters
from components.identity import MeshIdentity, MeshIdentityArgs
from components.link import EXPORT_LABEL_VALUES, ClusterLink, LinkArgs
from components.linkerd import Linkerd, LinkerdArgs
from components.mirror import MirroredService, MirroredServiceArgs
from components.multicluster import Multicluster, MulticlusterArgs
from components.names import mirror_name

DEMO_SERVICES = {service for _, service, _ in BACKENDS.values()}


@dataclass(frozen=True)
class MeshOutputs:
    """What the stack exports; every value is an Output or a plain structure of them."""

    clusters: dict[str, Any]
    kubeconfigs: dict[str, pulumi.Input[str]]  # exec forms and kubeconfig-file references: no secret
    trust_anchor_pem: pulumi.Output[str]
    issuer_expiry: dict[str, pulumi.Output[str]]
    gateway_addresses: dict[str, pulumi.Output[str]]
    mirrored_services: dict[str, list[dict]]
    links: list[dict]
    exports: list[dict]


def _vote_bot_target(config: MeshConfig, cluster: str) -> str:
    """The seed's `kubectl set env deployment/vote-bot WEB_HOST=web-svc-east...`."""
    targets = sorted(config.link_targets(cluster))
    exported = [t for t in targets if any(e.cluster == t and e.namespace == DEMO_NAMESPACE and e.service == WEB_SERVICE and e.mode == "gateway" for e in config.exports)]
    service = mirror_name(WEB_SERVICE, exported[0]) if exported else WEB_SERVICE
    return f"{service}.{DEMO_NAMESPACE}:80"


@dataclass(frozen=True)
class _ClusterParts:
    cluster: MeshCluster
    linkerd: Linkerd
    multicluster: Multicluster


def _gateway_api_decisions(kubeconfigs: Mapping[str, Optional[str]]) -> dict[str, dict[str, bool]]:
    """linkerd-crds' Gateway API values per cluster, the running ones read at once (each read is
    bounded); a RunError of any stops the program before anything is registered."""
    with ThreadPoolExecutor(max_workers=max(len(kubeconfigs), 1)) as pool:
        futures = {name: pool.submit(contextvars.copy_context().run, gateway_api_values, name, kubeconfig) for name, kubeconfig in kubeconfigs.items()}
        return {name: future.result() for name, future in futures.items()}


def _endpoint_for_links(spec: ClusterReach, endpoint: pulumi.Input[str]) -> pulumi.Input[str]:
    """The API server address other clusters' links use: the configured one, else the program's own."""
    return spec.api_server_address or endpoint


def _build_cluster(name: str, config: MeshConfig, version: str, given: Optional[GivenCluster], gateway_api: Mapping[str, bool], identity: MeshIdentity) -> _ClusterParts:
    """One region: nothing here refers to another cluster, so the regions deploy in parallel."""
    cluster = build_cluster(config.clusters[name], version, config.kubernetes_version, given)
    issuer = identity.issuers[name]
    linkerd = Linkerd(
        name,
        LinkerdArgs(
            provider=cluster.provider,
            chart_version=config.linkerd.version,
            high_availability=config.linkerd.high_availability,
            trust_anchor_pem=identity.trust_anchor_pem,
            issuer_cert_pem=issuer.cert_pem,
            issuer_key_pem=issuer.key_pem,
            renewal_marker=identity.renewal_marker,
            gateway_api_values=gateway_api,
            namespaces=cluster.namespaces,
        ),
    )
    multicluster = Multicluster(
        name,
        MulticlusterArgs(
            provider=cluster.provider,
            chart_version=config.linkerd.version,
            high_availability=config.linkerd.high_availability,
            gateway=name in config.gateway_clusters(),
            link_targets=config.link_targets(name),
            linking_sources=[link.source for link in config.links if link.target == name],
            control_plane=linkerd.control_plane,
            kubeconfig=cluster.kubeconfig,
            wait_timeout_seconds=config.wait_timeout_seconds,
            trust_anchor_pem=identity.trust_anchor_pem,
            gateway_source_ranges=config.linkerd.gateway_source_ranges,
            gateway_address=config.clusters[name].gateway_address,
        ),
    )
    return _ClusterParts(cluster=cluster, linkerd=linkerd, multicluster=multicluster)


def _build_workloads(config: MeshConfig, parts: dict[str, _ClusterParts], identity: MeshIdentity) -> dict[str, list[pulumi.Resource]]:
    """The demo and the export labels, per cluster: what a mirror waits for besides its link
    (the exported services in the target, the demo's namespace in the linking cluster)."""
    workloads: dict[str, list[pulumi.Resource]] = {name: [] for name in config.clusters}
    for name in config.clusters if config.demo else []:
        exported = {e.service: EXPORT_LABEL_VALUES[e.mode] for e in config.exports if e.cluster == name and e.namespace == DEMO_NAMESPACE and e.service in DEMO_SERVICES}
        demo_args = DemoArgs(
            provider=parts[name].cluster.provider,
            control_plane=parts[name].linkerd.control_plane,
            web_host=_vote_bot_target(config, name),
            trust_anchor_pem=identity.trust_anchor_pem,
            exported=exported,
        )
        workloads[name].append(Demo(name, demo_args))
    for export in config.exports:
        if config.demo and export.namespace == DEMO_NAMESPACE and export.service in DEMO_SERVICES:
            continue  # the demo creates this service with its export label
        export_args = ExportedServiceArgs(export=export, kubeconfig=parts[export.cluster].cluster.kubeconfig, timeout_seconds=config.wait_timeout_seconds)
        workloads[export.cluster].append(ExportedService(f"{export.cluster}-{export.namespace}-{export.service}", export_args))
    return workloads


def _build_links(config: MeshConfig, parts: dict[str, _ClusterParts], workloads: dict[str, list[pulumi.Resource]]) -> dict[str, list[dict]]:
    """Every link and the services it mirrors; returns them per linking cluster, as read back."""
    mirrored: dict[str, list[dict]] = {}
    for link in config.links:
        source, target = parts[link.source], parts[link.target]
        cluster_link = ClusterLink(
            f"{link.source}-to-{link.target}",
            LinkArgs(
                source=link.source,
                source_provider=source.cluster.provider,
                source_kubeconfig=source.cluster.kubeconfig,
                target=link.target,
                target_kubeconfig=target.cluster.kubeconfig,
                target_endpoint=_endpoint_for_links(config.clusters[link.target], target.cluster.endpoint),
                target_ca_certificate=target.cluster.ca_certificate,
                target_gateway_address=target.multicluster.gateway_address,
                target_gateway_port=config.clusters[link.target].gateway_port,
                source_multicluster=source.multicluster.release,
                credentials_after=[target.multicluster.release],
                timeout_seconds=config.wait_timeout_seconds,
            ),
        )
        for export in (e for e in config.exports if e.cluster == link.target and e.mode == "gateway"):
            service = mirror_name(export.service, link.target)
            mirror = MirroredService(
                f"mirror-{link.source}-{export.namespace}-{service}",
                MirroredServiceArgs(
                    source_kubeconfig=source.cluster.kubeconfig,
                    link=f"{link.source}->{link.target}",
                    namespace=export.namespace,
                    service=service,
                    gateway_address=target.multicluster.gateway_address,
                    timeout_seconds=config.wait_timeout_seconds,
                ),
                opts=pulumi.ResourceOptions(depends_on=[cluster_link, *workloads[link.source], *workloads[link.target]]),
            )
            mirrored.setdefault(link.source, []).append(
                {"name": f"{export.namespace}/{service}", "target": link.target, "clusterIP": mirror.clusterIP, "endpoints": mirror.endpoints}
            )
    return mirrored


def build_mesh(config: MeshConfig) -> MeshOutputs:
    # Looked up before anything is registered: a retired version or a change that would replace a
    # cluster creates nothing.
    doks = find_doks_clusters(config)
    plans = plan_clusters(config, pulumi.get_project(), doks)
    given = plan_given_clusters(config, pulumi.get_project(), doks)
    # Read from the running clusters now, so that a preview shows what `up` installs; a DOKS cluster
    # about to be created (no kubeconfig yet) gets DOKS' own.
    kubeconfigs = {**{name: plan.kubeconfig for name, plan in plans.items()}, **{name: cluster.kubeconfig for name, cluster in given.items()}}
    gateway_api = _gateway_api_decisions(kubeconfigs)
    identity = MeshIdentity("mesh-identity", MeshIdentityArgs(spec=config.identity, cluster_names=list(config.clusters)))
    parts = {name: _build_cluster(name, config, plans[name].version if name in plans else "", given.get(name), gateway_api[name], identity) for name in config.clusters}
    mirrored = _build_links(config, parts, _build_workloads(config, parts, identity))
    return MeshOutputs(
        clusters={name: dict(p.cluster.summary) for name, p in parts.items()},
        kubeconfigs={name: p.cluster.kubeconfig for name, p in parts.items()},
        trust_anchor_pem=identity.trust_anchor_pem,
        issuer_expiry={name: issuer.expires_at for name, issuer in identity.issuers.items()},
        gateway_addresses={name: parts[name].multicluster.gateway_address for name in config.gateway_clusters()},
        mirrored_services=mirrored,
        links=[{"from": link.source, "to": link.target} for link in config.links],
        exports=[{"cluster": e.cluster, "namespace": e.namespace, "service": e.service, "mode": e.mode} for e in config.exports],
    )
