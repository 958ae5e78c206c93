"""The topology: builds every cluster, the shared identity, Linkerd, the links, the exports and
the demo from the config. The only module that knows how the pieces connect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.cluster import DoksCluster, DoksClusterArgs, resolve_kubernetes_version
from components.config import MeshConfig
from components.demo import DEMO_NAMESPACE, WEB_SERVICE, BACKENDS, Demo, DemoArgs
from components.exports import ExportedService, ExportedServiceArgs
from components.identity import MeshIdentity, MeshIdentityArgs
from components.link import EXPORT_LABEL_VALUES, ClusterLink, LinkArgs
from components.linkerd import Linkerd, LinkerdArgs
from components.mirror import MirroredService, MirroredServiceArgs
from components.names import mirror_name
from components.multicluster import Multicluster, MulticlusterArgs

DEMO_SERVICES = {service for _, service, _ in BACKENDS.values()}


@dataclass(frozen=True)
class MeshOutputs:
    """What the stack exports; every value is an Output or a plain structure of them."""

    clusters: dict[str, Any]
    kubeconfigs: pulumi.Output[dict]  # secret
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


def build_mesh(config: MeshConfig, digitalocean_token: pulumi.Input[str]) -> MeshOutputs:
    # Resolved once, before anything is registered: a bad prefix creates nothing.
    version = resolve_kubernetes_version(config.kubernetes_version)
    identity = MeshIdentity("mesh-identity", MeshIdentityArgs(spec=config.identity, cluster_names=list(config.clusters)))
    gateways = set(config.gateway_clusters())
    clusters: dict[str, DoksCluster] = {}
    linkerds: dict[str, Linkerd] = {}
    multiclusters: dict[str, Multicluster] = {}
    # Nothing in one cluster refers to another here, so the regions deploy in parallel.
    for name, spec in config.clusters.items():
        cluster = DoksCluster(name, DoksClusterArgs(spec=spec, version=version, version_prefix=config.kubernetes_version, digitalocean_token=digitalocean_token))
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
            ),
        )
        multiclusters[name] = Multicluster(
            name,
            MulticlusterArgs(
                provider=cluster.provider,
                chart_version=config.linkerd.version,
                high_availability=config.linkerd.high_availability,
                gateway=name in gateways,
                link_targets=config.link_targets(name),
                control_plane=linkerd.control_plane,
                kubeconfig=cluster.kubeconfig,
                wait_timeout_seconds=config.wait_timeout_seconds,
                gateway_source_ranges=config.linkerd.gateway_source_ranges,
            ),
        )
        clusters[name], linkerds[name] = cluster, linkerd

    # What a mirror in a linking cluster waits for, besides the link: the exported services
    # (with their label) in the target, and the demo's namespace in the linking cluster.
    workloads: dict[str, list[pulumi.Resource]] = {name: [] for name in config.clusters}
    for name in config.clusters if config.demo else []:
        exported = {e.service: EXPORT_LABEL_VALUES[e.mode] for e in config.exports if e.cluster == name and e.namespace == DEMO_NAMESPACE and e.service in DEMO_SERVICES}
        demo = Demo(name, DemoArgs(provider=clusters[name].provider, control_plane=linkerds[name].control_plane, web_host=_vote_bot_target(config, name), exported=exported))
        workloads[name].append(demo)
    for export in config.exports:
        if config.demo and export.namespace == DEMO_NAMESPACE and export.service in DEMO_SERVICES:
            continue  # the demo creates this service with its export label
        exported_service = ExportedService(f"{export.cluster}-{export.namespace}-{export.service}", ExportedServiceArgs(export=export, provider=clusters[export.cluster].provider))
        workloads[export.cluster].append(exported_service)

    mirrored: dict[str, list[dict]] = {}
    for link in config.links:
        source, target = link.source, link.target
        name = f"{source}-to-{target}"
        cluster_link = ClusterLink(
            name,
            LinkArgs(
                source_provider=clusters[source].provider,
                target=target,
                target_endpoint=clusters[target].endpoint,
                target_ca_certificate=clusters[target].ca_certificate,
                target_token=multiclusters[target].remote_access_token,
                target_gateway_address=multiclusters[target].gateway_address,
                source_multicluster=multiclusters[source].release,
            ),
        )
        for export in (e for e in config.exports if e.cluster == target and e.mode == "gateway"):
            service = mirror_name(export.service, target)
            mirror = MirroredService(
                f"mirror-{source}-{export.namespace}-{service}",
                MirroredServiceArgs(
                    source_kubeconfig=clusters[source].kubeconfig,
                    link=f"{source}->{target}",
                    namespace=export.namespace,
                    service=service,
                    gateway_address=multiclusters[target].gateway_address,
                    timeout_seconds=config.wait_timeout_seconds,
                ),
                opts=pulumi.ResourceOptions(depends_on=[cluster_link, *workloads[source], *workloads[target]]),
            )
            mirrored.setdefault(source, []).append(
                {"name": f"{export.namespace}/{service}", "target": target, "clusterIP": mirror.clusterIP, "endpoints": mirror.endpoints}
            )

    return MeshOutputs(
        clusters={
            name: {"id": c.cluster_id, "region": c.region, "version": c.version, "endpoint": c.endpoint}
            for name, c in clusters.items()
        },
        kubeconfigs=pulumi.Output.secret({name: c.kubeconfig for name, c in clusters.items()}),
        trust_anchor_pem=identity.trust_anchor_pem,
        issuer_expiry={name: issuer.expires_at for name, issuer in identity.issuers.items()},
        gateway_addresses={name: multiclusters[name].gateway_address for name in sorted(gateways)},
        mirrored_services=mirrored,
        links=[{"from": l.source, "to": l.target} for l in config.links],
        exports=[{"cluster": e.cluster, "namespace": e.namespace, "service": e.service, "mode": e.mode} for e in config.exports],
    )
