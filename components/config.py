"""The stack configuration: parsed once into typed objects and validated as a whole.

Every problem is collected with its key path and what is allowed, and reported in one
`pulumi.RunError` (which Pulumi prints without a traceback) before any resource exists.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

import pulumi
from pulumi_digitalocean import DropletSlug

from components.kubeconfigs import KubeconfigFileError, context_cluster, load_context

# Cluster names become Kubernetes object names and label values in other clusters
# (`linkerd-service-mirror-<name>`, `cluster-credentials-<name>`, `<service>-<name>`), so they
# must be DNS-1123 labels short enough to leave room for those prefixes and suffixes.
MAX_CLUSTER_NAME_LENGTH = 24
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# A host name (RFC 1123): dot-separated labels of letters, digits and '-', 253 characters at most.
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$", re.IGNORECASE)
# Linkerd's open-source charts are published per edge release: chart 20YY.M.N for edge-YY.M.N.
CHART_VERSION = re.compile(r"^20\d\d\.(1[0-2]|[1-9])\.[1-9]\d*$")
KUBERNETES_VERSION_PREFIX = re.compile(r"^1\.\d+(\.\d+)?$")
# DOKS installs and owns the Gateway API CRDs Linkerd needs (httproutes, grpcroutes at v1) on
# VPC-native clusters from 1.33 on (docs.digitalocean.com products/kubernetes/how-to/use-gateway-api,
# "Preserve Third-Party Gateway CRDs"); a cluster the program creates relies on that
# (components/gateway_api.py decides for the others from what they have).
MIN_KUBERNETES_MINOR = 33
EXPORT_MODES = ("gateway", "remote-discovery")
# Linkerd's high-availability values need one control-plane replica per node; the replicas run on
# the worker pool, so it is the worker count that must reach this.
HA_MIN_NODES = 3
# Every node may take a /24 of the pod subnet (kube-controller-manager's default --node-cidr-mask-size;
# the stricter assumption where DOKS does not document its own), and surge upgrades run the new nodes
# next to the old ones: the pod subnet must hold twice the cluster's nodes.
NODE_POD_PREFIX = 24
# kube-apiserver refuses a service range with more than 20 host bits (kubernetes
# cmd/kube-apiserver/app/options/validation.go: "the mask must be >= 12").
MAX_SERVICE_HOST_BITS = 20
# Pod and service subnets must be private (RFC 1918), and must not be DOKS' own defaults: a cluster
# created with 10.244.0.0/16 and 10.245.0.0/16 is a legacy overlay cluster, not VPC-native
# (doctl commands/kubernetes.go, --cluster-subnet / --service-subnet).
PRIVATE_RANGES = tuple(ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
DOKS_DEFAULT_SUBNETS = tuple(ipaddress.ip_network(cidr) for cidr in ("10.244.0.0/16", "10.245.0.0/16", "10.246.0.0/24"))
# The built-in node pool of every cluster: fixed, so that it never changes (changing its size would
# replace the whole cluster). The workers are a separate pool.
SYSTEM_POOL_SIZE = "s-2vcpu-4gb"
SYSTEM_POOL_NODES = 1
# The multicluster gateway's port (linkerd-multicluster values.yaml, gateway.port).
DEFAULT_GATEWAY_PORT = 4143
# `linkerd check` warns once a certificate has fewer than 60 days left.
LINKERD_CHECK_WARNING_HOURS = 60 * 24
# Linkerd's control-plane and viz charts generate webhook and APIService certificates valid 365
# days at every render (genSelfSignedCert ... 365); the program renders them again each renewal period.
CHART_CERTIFICATE_HOURS = 365 * 24

# The regions that offer DOKS, as `doctl kubernetes options regions` lists them; the SDK's
# Region enum also holds droplet-only regions (nyc2, ams2, sfo1) where a cluster cannot live.
DOKS_REGIONS = frozenset({"ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1"})
KNOWN_SIZES = frozenset(size.value for size in DropletSlug)
# DOKS refuses node sizes under 2 GB of memory.
TOO_SMALL_FOR_DOKS = frozenset(size for size in KNOWN_SIZES if size.startswith(("s-1vcpu-512mb", "s-1vcpu-1gb")))


# The settings only a cluster the program creates has: DigitalOcean's for an adopted cluster, its
# owner's for a cluster given by a kubeconfig.
CREATED_ONLY_KEYS = ("region", "nodeSize", "nodeCount", "clusterSubnet", "serviceSubnet", "controlPlaneHa")
ADOPTED_KEYS = ("existingCluster",)
KUBECONFIG_KEYS = ("kubeconfig", "context")
# How the other clusters reach a cluster: for a cluster of any source.
REACH_KEYS = ("gatewayAddress", "gatewayPort", "apiServerAddress")

# Every key the stack config may hold, per section as docs/configuration.md writes it ("" is the
# top level, `linkerd-mesh:<key>`). The parser refuses any other key, and tests/test_docs.py
# checks that docs/configuration.md documents exactly these.
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "": ("clusters", "kubernetesVersion", "links", "exports", "linkerd", "identity", "demo", "waitTimeoutSeconds", "costLimitMonthly", "prices"),
    "clusters.<name>": (*CREATED_ONLY_KEYS, *REACH_KEYS, *ADOPTED_KEYS, *KUBECONFIG_KEYS),
    "links[]": ("from", "to"),
    "exports[]": ("cluster", "namespace", "service", "mode"),
    "linkerd": ("version", "highAvailability", "gatewaySourceRanges"),
    "identity": ("anchorValidityHours", "issuerValidityHours", "issuerRenewBeforeHours", "sharedIssuer", "anchors", "signingAnchor"),
    "prices": ("loadBalancerMonthly", "haControlPlaneMonthly"),
}


@dataclass(frozen=True, kw_only=True)
class ClusterReach:
    """How the other clusters reach a cluster, for a cluster of any source. Where linking clusters
    reach its gateway (an IP or DNS name; None: the gateway Service's load balancer address) and on
    which port; the https URL of its API server for their links' credentials (None: the address the
    program itself uses)."""

    gateway_address: Optional[str] = None
    gateway_port: int = DEFAULT_GATEWAY_PORT
    api_server_address: Optional[str] = None


@dataclass(frozen=True)
class ClusterSpec(ClusterReach):
    name: str
    region: str
    # The worker pool; the built-in pool is SYSTEM_POOL_NODES x SYSTEM_POOL_SIZE.
    node_size: str
    node_count: int
    # VPC-native networking: pod and service ranges, fixed when the cluster is created. The
    # config always sets them; a component test's lone cluster gets tests/program.py's.
    cluster_subnet: Optional[str] = None
    service_subnet: Optional[str] = None
    # DOKS' high-availability control plane (billed; cannot be turned off once on).
    control_plane_ha: bool = False


@dataclass(frozen=True)
class AdoptedClusterSpec(ClusterReach):
    """A DOKS cluster that exists already: the program meshes it, and never creates, resizes,
    upgrades or deletes it. Its region, version, endpoint and CA are DigitalOcean's."""

    name: str
    existing_cluster: str  # its DOKS name or id


@dataclass(frozen=True)
class KubeconfigClusterSpec(ClusterReach):
    """Any cluster, reached through a context of a kubeconfig file (kind, k3d, EKS, GKE, ...)."""

    name: str
    kubeconfig: str  # the file's absolute path (`~` expanded)
    context: str
    # The context's API server and CA (base64 PEM; None: the system's roots), as the file has them.
    server: str
    ca_certificate: Optional[str]


AnyClusterSpec = ClusterSpec | AdoptedClusterSpec | KubeconfigClusterSpec


@dataclass(frozen=True)
class LinkSpec:
    """`source` mirrors the services that `target` exports, through `target`'s gateway."""

    source: str
    target: str


@dataclass(frozen=True)
class ExportSpec:
    cluster: str
    namespace: str
    service: str
    mode: str = "gateway"


@dataclass(frozen=True)
class LinkerdSpec:
    version: str = "2026.6.3"
    high_availability: bool = False
    # Source ranges allowed to reach the multicluster gateway; empty means anywhere.
    gateway_source_ranges: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdentitySpec:
    anchor_validity_hours: int = 10 * 365 * 24
    issuer_validity_hours: int = 8760
    issuer_renew_before_hours: int = LINKERD_CHECK_WARNING_HOURS
    # One issuer for all clusters (the seed's way) instead of one per cluster.
    shared_issuer: bool = False
    # Every anchor here is trusted by every cluster; the issuers are signed by `signing_anchor`.
    # Rotating the anchor is adding one, signing with it, then dropping the old one.
    anchors: tuple[str, ...] = ("primary",)
    signing_anchor: str = "primary"


@dataclass(frozen=True)
class CostSpec:
    # The most the stack may cost a month (USD); None: no limit.
    limit_monthly: Optional[float] = None
    # The stack's own figures for the prices DigitalOcean's API does not serve; None: the program's
    # (components/cost.py, LIST_PRICES).
    load_balancer_monthly: Optional[float] = None
    ha_control_plane_monthly: Optional[float] = None


@dataclass(frozen=True)
class MeshConfig:
    clusters: Mapping[str, AnyClusterSpec]
    # A minor ("1.35") or patch prefix for new clusters; None: the newest minor DOKS offers.
    kubernetes_version: Optional[str]
    links: tuple[LinkSpec, ...]
    exports: tuple[ExportSpec, ...]
    linkerd: LinkerdSpec = field(default_factory=LinkerdSpec)
    identity: IdentitySpec = field(default_factory=IdentitySpec)
    demo: bool = False
    # How long `pulumi up` waits for what the clusters produce asynchronously: a gateway's
    # address, a remote-access token, each mirrored service.
    wait_timeout_seconds: int = 300
    cost: CostSpec = field(default_factory=CostSpec)

    def gateway_clusters(self) -> list[str]:
        """Clusters something links to: only they need a multicluster gateway."""
        return sorted({link.target for link in self.links})

    def link_targets(self, source: str) -> list[str]:
        return [link.target for link in self.links if link.source == source]

    def created_clusters(self) -> dict[str, ClusterSpec]:
        """The DOKS clusters this program creates and owns."""
        return {name: spec for name, spec in self.clusters.items() if isinstance(spec, ClusterSpec)}


class Problems:
    """Collects every problem with the key path it belongs to."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.items: list[str] = []

    def add(self, path: str, message: str, namespace: Optional[str] = None) -> None:
        self.items.append(f"{namespace or self.namespace}:{path}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            listed = "\n".join(f"  - {item}" for item in self.items)
            raise pulumi.RunError(f"invalid stack configuration ({len(self.items)} problems):\n{listed}")


def _key_path(path: str, key: str) -> str:
    """`clusters.west` + `region`; top-level keys ("" path) stand alone."""
    return f"{path}.{key}" if path else key


def _expect_mapping(value: Any, path: str, problems: Problems, allowed: tuple[str, ...]) -> dict:
    """A mapping whose keys are all known; a typo must not silently fall back to a default."""
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping with keys {', '.join(allowed)}")
        return {}
    for key in value:
        if key not in allowed:
            problems.add(_key_path(path, key), f"unknown key; allowed: {', '.join(allowed)}")
    return value


def _read(entry: dict, key: str, path: str, problems: Problems, check: Callable[[Any], Optional[str]], default: Any = None, required: bool = False) -> Any:
    """entry[key] if it passes `check`; otherwise the problem is recorded and `default` returned."""
    key_path = _key_path(path, key)
    if key not in entry:
        if required:
            problems.add(key_path, "is required")
        return default
    message = check(entry[key])
    if message:
        problems.add(key_path, message)
        return default
    return entry[key]


def _positive_int(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be a positive integer, got {value!r}"
    return None


def _amount(value: Any) -> Optional[str]:
    """US dollars: a number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return f"must be an amount in US dollars (a number, 0 or more), got {value!r}"
    return None


def _boolean(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _dns_label(value: Any, max_length: int = 63) -> Optional[str]:
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        return f"{value!r} is not a DNS-1123 label (lowercase letters, digits and '-', starting with a letter)"
    if len(value) > max_length:
        return f"{value!r} is longer than {max_length} characters"
    return None


def _region(value: Any) -> Optional[str]:
    if value not in DOKS_REGIONS:
        return f"{value!r} is not a DigitalOcean region with Kubernetes (DOKS); allowed: {', '.join(sorted(DOKS_REGIONS))}"
    return None


def _node_size(value: Any) -> Optional[str]:
    if value not in KNOWN_SIZES:
        return f"unknown droplet size slug {value!r}; see `doctl kubernetes options sizes` (e.g. s-4vcpu-8gb, s-8vcpu-16gb)"
    if value in TOO_SMALL_FOR_DOKS:
        return f"{value!r} is too small for DOKS; use at least s-1vcpu-2gb"
    return None


def _host_only_problem(host: str) -> Optional[str]:
    """Why `host` is an address only the machine itself reaches, or None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "it names this machine only" if host.lower() == "localhost" else None
    if address.is_unspecified or address.is_loopback:
        return f"{host} reaches only the machine that uses it (a local cluster's kubeconfig server, e.g. k3d's https://0.0.0.0:<port>)"
    return None


def _gateway_address(value: Any) -> Optional[str]:
    """An IP address or a DNS name that the linking clusters' service mirrors connect to."""
    if not isinstance(value, str) or "://" in value:
        return f"must be an IP address or DNS name without a scheme, like 203.0.113.10 or gateway.example.com, got {value!r}"
    host, _, port = value.rpartition(":")
    if port.isdigit() and host and ":" not in host:
        return f"{value!r} holds a port: give the address alone and the port as gatewayPort"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOST_NAME.match(value):
            return f"{value!r} is neither an IP address nor a DNS name"
    problem = _host_only_problem(value)
    return f"{problem}; give an address the linking clusters reach" if problem else None


def _port(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"must be a port number from 1 to 65535, got {value!r}"
    return None


def _api_server_address(value: Any) -> Optional[str]:
    """An https URL of an API server: scheme, host and optional port, nothing else."""
    example = "like https://172.18.0.2:6443"
    if not isinstance(value, str):
        return f"must be an https URL {example}, got {value!r}"
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        return f"{value!r} is not a URL {example}"
    if url.scheme != "https" or not url.hostname:
        return f"{value!r} is not an https URL {example}: the API server serves TLS only"
    if url.username or url.password or url.query or url.fragment or url.path not in ("", "/"):
        return f"{value!r} must be scheme, host and port only, {example}"
    if port == 0:
        return f"{value!r} has port 0"
    problem = _host_only_problem(url.hostname)
    return f"{problem}; give the address the other clusters reach, e.g. the control-plane node's IP on the shared network" if problem else None


def _parse_clusters(raw: Any, problems: Problems, base_dir: str) -> dict[str, AnyClusterSpec]:
    if not isinstance(raw, dict) or not raw:
        problems.add("clusters", "must map at least one cluster name to {region, nodeSize, nodeCount}, {existingCluster} or {kubeconfig, context}")
        return {}
    clusters: dict[str, AnyClusterSpec] = {}
    for name, settings in raw.items():
        path = f"clusters.{name}"
        name_problem = _dns_label(name, MAX_CLUSTER_NAME_LENGTH)
        if name_problem:
            problems.add(path, f"cluster name {name_problem} (it becomes part of Kubernetes and DNS names)")
        given = [key for key in (*ADOPTED_KEYS, *KUBECONFIG_KEYS) if isinstance(settings, dict) and key in settings]
        if "existingCluster" in given and len(given) > 1:
            problems.add(path, "a cluster is either an existing DOKS cluster (existingCluster) or one in a kubeconfig (kubeconfig, context), not both")
            continue
        if given:
            spec = _parse_given_cluster(name, settings, path, problems, base_dir)
        else:
            spec = _parse_created_cluster(name, settings, path, problems)
        if spec is not None and not name_problem:
            clusters[name] = spec
    _check_subnets_apart(clusters, problems)
    return clusters


def _parse_reach(entry: dict, path: str, problems: Problems) -> dict[str, Any]:
    """The ClusterReach fields of any cluster entry."""
    return {
        "gateway_address": _read(entry, "gatewayAddress", path, problems, _gateway_address),
        "gateway_port": _read(entry, "gatewayPort", path, problems, _port, default=DEFAULT_GATEWAY_PORT),
        "api_server_address": _read(entry, "apiServerAddress", path, problems, _api_server_address),
    }


def _parse_created_cluster(name: str, settings: Any, path: str, problems: Problems) -> Optional[ClusterSpec]:
    entry = _expect_mapping(settings, path, problems, (*CREATED_ONLY_KEYS, *REACH_KEYS))
    region = _read(entry, "region", path, problems, _region, required=True)
    size = _read(entry, "nodeSize", path, problems, _node_size, default="s-8vcpu-16gb")
    count = _read(entry, "nodeCount", path, problems, _positive_int, default=3)
    pods = _read(entry, "clusterSubnet", path, problems, lambda v: _pod_subnet(v, count or 1), required=True)
    services = _read(entry, "serviceSubnet", path, problems, _service_subnet, required=True)
    ha = _read(entry, "controlPlaneHa", path, problems, _boolean, default=False)
    reach = _parse_reach(entry, path, problems)
    return ClusterSpec(name=name, region=region, node_size=size, node_count=count, cluster_subnet=pods, service_subnet=services, control_plane_ha=ha, **reach)


def _parse_given_cluster(name: str, entry: dict, path: str, problems: Problems, base_dir: str) -> Optional[AdoptedClusterSpec | KubeconfigClusterSpec]:
    """An existing DOKS cluster, or one in a kubeconfig; the settings of a created cluster are refused."""
    adopted = "existingCluster" in entry
    own_keys = (*(ADOPTED_KEYS if adopted else KUBECONFIG_KEYS), *REACH_KEYS)
    why = (
        f"{name} is an existing DOKS cluster (existingCluster): its nodes, network and control plane are DigitalOcean's as they are, and the program never changes them"
        if adopted
        else f"{name} is a cluster in a kubeconfig: its owner sets it up, and the program never changes it"
    )
    for key in entry:
        if key in CREATED_ONLY_KEYS:
            problems.add(_key_path(path, key), f"only a cluster the program creates has {key}; {why}")
        elif key not in own_keys:
            problems.add(_key_path(path, key), f"unknown key; allowed: {', '.join(own_keys)}")
    text = lambda value: None if isinstance(value, str) and value.strip() else f"must be a non-empty string, got {value!r}"
    reach = _parse_reach(entry, path, problems)
    if adopted:
        existing = _read(entry, "existingCluster", path, problems, text, required=True)
        return AdoptedClusterSpec(name=name, existing_cluster=existing, **reach) if existing else None
    file = _read(entry, "kubeconfig", path, problems, text, required=True)
    context = _read(entry, "context", path, problems, text, required=True)
    if not (file and context):
        return None
    # `~` as the shell would; a relative path from the project's directory, where Pulumi runs the program.
    file = os.path.normpath(os.path.join(base_dir, os.path.expanduser(file)))
    try:
        loaded = load_context(file, context)
        server, ca = context_cluster(loaded)
    except KubeconfigFileError as error:
        problems.add(_key_path(path, "context" if "no context" in str(error) else "kubeconfig"), str(error))
        return None
    return KubeconfigClusterSpec(name=name, kubeconfig=file, context=context, server=server, ca_certificate=ca, **reach)


def _private_subnet(value: Any) -> tuple[Optional[ipaddress.IPv4Network], Optional[str]]:
    try:
        network = ipaddress.IPv4Network(value)
    except (TypeError, ValueError):
        return None, f"{value!r} is not an IPv4 CIDR range like 172.20.0.0/16 (with its host bits zero)"
    if not any(network.subnet_of(private) for private in PRIVATE_RANGES):
        return None, f"{value} is not a private (RFC 1918) range: use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
    reserved = [str(r) for r in DOKS_DEFAULT_SUBNETS if network.overlaps(r)]
    if reserved:
        return None, f"{value} overlaps DOKS' own default {', '.join(reserved)}; a cluster on those ranges is not VPC-native"
    return network, None


def _pod_subnet(value: Any, workers: int) -> Optional[str]:
    network, problem = _private_subnet(value)
    if problem:
        return problem
    nodes = workers + SYSTEM_POOL_NODES
    blocks = 2 ** max(NODE_POD_PREFIX - network.prefixlen, 0)
    if blocks < 2 * nodes:
        return f"{value} holds {blocks} node ranges (/{NODE_POD_PREFIX} each); {nodes} nodes need {2 * nodes} for surge upgrades: use a larger range"
    return None


def _service_subnet(value: Any) -> Optional[str]:
    network, problem = _private_subnet(value)
    if problem:
        return problem
    if 32 - network.prefixlen > MAX_SERVICE_HOST_BITS:
        return f"{value} is larger than Kubernetes allows for services (/{32 - MAX_SERVICE_HOST_BITS} at most)"
    return None


def _check_subnets_apart(clusters: Mapping[str, AnyClusterSpec], problems: Problems) -> None:
    """DOKS refuses VPC-native ranges that overlap within an account (doctl commands/kubernetes.go);
    within the stack it is caught here, with both keys named."""
    ranges = [
        (f"clusters.{name}.{key}", ipaddress.IPv4Network(cidr))
        for name, spec in clusters.items()
        if isinstance(spec, ClusterSpec)
        for key, cidr in (("clusterSubnet", spec.cluster_subnet), ("serviceSubnet", spec.service_subnet))
        if cidr is not None
    ]
    for index, (path, network) in enumerate(ranges):
        for other_path, other in ranges[:index]:
            if network.overlaps(other):
                problems.add(path, f"{network} overlaps {other_path} ({other}); every cluster's pod and service ranges must be apart")


def _parse_links(raw: Any, clusters: Mapping[str, AnyClusterSpec], problems: Problems) -> tuple[LinkSpec, ...]:
    if not isinstance(raw, list):
        problems.add("links", "must be a list of {from, to}")
        return ()
    links: list[LinkSpec] = []
    for index, item in enumerate(raw):
        path = f"links[{index}]"
        entry = _expect_mapping(item, path, problems, CONFIG_KEYS["links[]"])
        ends = {}
        for key in ("from", "to"):
            value = _read(entry, key, path, problems, lambda v: None, required=True)
            if value is not None and value not in clusters:
                problems.add(f"{path}.{key}", f"unknown cluster {value!r}; clusters: {', '.join(clusters) or 'none'}")
                value = None
            ends[key] = value
        if ends.get("from") is None or ends.get("to") is None:
            continue
        link = LinkSpec(source=ends["from"], target=ends["to"])
        if link.source == link.target:
            problems.add(path, f"a cluster cannot link to itself ({link.source!r})")
        elif link in links:
            problems.add(path, f"duplicate link {link.source} -> {link.target}")
        else:
            links.append(link)
    return tuple(links)


def _check_link_targets_reachable(clusters: Mapping[str, AnyClusterSpec], links: tuple[LinkSpec, ...], problems: Problems) -> None:
    """A link's credentials name its target's API server as the target's kubeconfig does unless
    apiServerAddress says otherwise; a server on 0.0.0.0 (k3d's https://0.0.0.0:<port>) is this
    machine's own, which the linking cluster's service mirror can never reach."""
    for target in dict.fromkeys(link.target for link in links):
        spec = clusters.get(target)
        if not isinstance(spec, KubeconfigClusterSpec) or spec.api_server_address is not None:
            continue
        host = urlsplit(spec.server).hostname or ""
        try:
            unspecified = ipaddress.ip_address(host).is_unspecified
        except ValueError:
            unspecified = False
        if unspecified:
            sources = ", ".join(link.source for link in links if link.target == target)
            problems.add(
                f"clusters.{target}.apiServerAddress",
                f"{target}'s kubeconfig server {spec.server} is reachable from this machine only, so the link from {sources} could never "
                f"reach it; set the address the other clusters reach, e.g. for k3d https://<{target}'s control-plane node IP on the docker network>:6443 "
                f"(`kubectl --context {spec.context} get node -l node-role.kubernetes.io/control-plane=true -o jsonpath='{{.items[0].status.addresses[0].address}}'`)",
            )


def _remote_discovery_problem(cluster: str, links: tuple[LinkSpec, ...], clusters: Mapping[str, AnyClusterSpec]) -> Optional[str]:
    """remote-discovery sends traffic pod to pod, so every linking cluster must route the target's
    pod IPs: DOKS puts a region's clusters in its default VPC, and clusters of different regions in
    different VPCs. (All clusters here are VPC-native with ranges kept apart.)"""
    target = clusters.get(cluster)
    if not isinstance(target, ClusterSpec):
        return None  # only for clusters the program creates is the network known here
    sources = [clusters.get(link.source) for link in links if link.target == cluster]
    elsewhere = [f"{source.name} ({source.region})" for source in sources if isinstance(source, ClusterSpec) and source.region != target.region]
    if not elsewhere:
        return None
    return (
        f"remote-discovery sends traffic straight to the pods of {cluster} ({target.region}), but {', '.join(elsewhere)} "
        "cannot route to them: DOKS clusters in different regions sit in different VPCs. Use mode gateway "
        "(through the gateway, over mTLS), or link only clusters of the same region for remote-discovery"
    )


def _parse_exports(raw: Any, links: tuple[LinkSpec, ...], clusters: Mapping[str, AnyClusterSpec], problems: Problems) -> tuple[ExportSpec, ...]:
    if not isinstance(raw, list):
        problems.add("exports", "must be a list of {cluster, namespace, service, mode}")
        return ()
    targets = {link.target for link in links}
    exports: list[ExportSpec] = []
    for index, item in enumerate(raw):
        path = f"exports[{index}]"
        entry = _expect_mapping(item, path, problems, CONFIG_KEYS["exports[]"])
        cluster = _read(entry, "cluster", path, problems, lambda v: None, required=True)
        namespace = _read(entry, "namespace", path, problems, _dns_label, required=True)
        # The mirror is named `<service>-<cluster>`, itself a DNS-1035 label.
        service = _read(entry, "service", path, problems, lambda v: _dns_label(v, 62 - len(str(cluster))), required=True)
        mode = _read(entry, "mode", path, problems, lambda v: None if v in EXPORT_MODES else f"must be one of {', '.join(EXPORT_MODES)}", default="gateway")
        if cluster is not None and cluster not in targets:
            problems.add(f"{path}.cluster", f"nobody links to {cluster!r}, so nothing would mirror this export; clusters linked to: {', '.join(sorted(targets)) or 'none'}")
            continue
        if None in (namespace, service, mode):
            continue
        if mode == "remote-discovery":
            unroutable = _remote_discovery_problem(cluster, links, clusters)
            if unroutable:
                problems.add(f"{path}.mode", unroutable)
                continue
        export = ExportSpec(cluster=cluster, namespace=namespace, service=service, mode=mode)
        if export in exports:
            problems.add(path, f"duplicate export {namespace}/{service} of {cluster}")
        else:
            exports.append(export)
    return tuple(exports)


def _parse_linkerd(raw: Any, clusters: Mapping[str, AnyClusterSpec], problems: Problems) -> LinkerdSpec:
    default = LinkerdSpec()
    entry = _expect_mapping(raw, "linkerd", problems, CONFIG_KEYS["linkerd"])

    def chart_version(value: Any) -> Optional[str]:
        if not isinstance(value, str) or not CHART_VERSION.match(value):
            return f"must be a Linkerd edge chart version like {default.version!r} (20YY.M.N for edge-YY.M.N), got {value!r}"
        return None

    def source_ranges(value: Any) -> Optional[str]:
        if not isinstance(value, list):
            return "must be a list of CIDR ranges"
        for entry in value:
            problem = _source_range_problem(entry)
            if problem:
                return problem
        return None

    version = _read(entry, "version", "linkerd", problems, chart_version, default.version)
    ha = _read(entry, "highAvailability", "linkerd", problems, _boolean, default.high_availability)
    ranges = _read(entry, "gatewaySourceRanges", "linkerd", problems, source_ranges, [])
    if ha:
        # Only for the clusters it creates does the program know the nodes.
        for name, cluster in clusters.items():
            if isinstance(cluster, ClusterSpec) and cluster.node_count < HA_MIN_NODES:
                problems.add(f"clusters.{name}.nodeCount", f"high availability needs at least {HA_MIN_NODES} worker nodes (one control-plane replica per node), got {cluster.node_count}")
    return LinkerdSpec(version=version, high_availability=ha, gateway_source_ranges=tuple(_as_cidr(entry) for entry in ranges))


def _source_range_problem(entry: Any) -> Optional[str]:
    """Kubernetes takes only CIDRs in loadBalancerSourceRanges (pkg/api/service/util.go,
    GetLoadBalancerSourceRanges: netutils.ParseCIDRSloppy), so a bare address is refused there. One
    with host bits set (203.0.113.7/24) it calls ambiguous (a warning since 1.27, refused under
    KEP-4858's StrictIPCIDRValidation): is it the /24 or the one address? Refused here too."""
    if not isinstance(entry, str):
        return f"{entry!r} is not a CIDR range like 203.0.113.0/24"
    try:
        ipaddress.ip_network(entry)
    except ValueError:
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not a CIDR range like 203.0.113.0/24, or an address like 203.0.113.7"
        address = entry.split("/")[0]
        return f"{entry!r} has host bits set: write {loose} for the whole range, or {address}/{loose.max_prefixlen} for the one address"
    return None


def _as_cidr(entry: str) -> str:
    """A valid entry as Kubernetes takes it: a bare address becomes its /32 (or /128); a CIDR stays as written."""
    return entry if "/" in entry else str(ipaddress.ip_network(entry))


def _parse_identity(raw: Any, problems: Problems) -> IdentitySpec:
    default = IdentitySpec()
    entry = _expect_mapping(raw, "identity", problems, CONFIG_KEYS["identity"])
    anchor = _read(entry, "anchorValidityHours", "identity", problems, _positive_int, default.anchor_validity_hours)
    issuer = _read(entry, "issuerValidityHours", "identity", problems, _positive_int, default.issuer_validity_hours)
    renew = _read(entry, "issuerRenewBeforeHours", "identity", problems, _positive_int, default.issuer_renew_before_hours)
    shared = _read(entry, "sharedIssuer", "identity", problems, _boolean, default.shared_issuer)

    def anchor_names(value: Any) -> Optional[str]:
        if not isinstance(value, list) or not value:
            return "must be a non-empty list of anchor names, e.g. [primary]"
        bad = [name for name in value if _dns_label(name, 40)]
        if bad:
            return f"anchor names must be DNS-1123 labels of at most 40 characters: {bad}"
        if len(set(value)) != len(value):
            return f"anchor names must be unique, got {value}"
        return None

    anchors = tuple(_read(entry, "anchors", "identity", problems, anchor_names, list(default.anchors)))
    signing = _read(entry, "signingAnchor", "identity", problems, lambda v: None if v in anchors else f"must be one of the anchors ({', '.join(anchors)}), got {v!r}", anchors[0])
    if issuer <= LINKERD_CHECK_WARNING_HOURS:
        problems.add("identity.issuerValidityHours", f"must be more than {LINKERD_CHECK_WARNING_HOURS} hours (60 days; `linkerd check` warns below that), got {issuer}")
    if issuer >= anchor:
        problems.add("identity.issuerValidityHours", f"the issuer must expire before the trust anchor ({anchor} hours), got {issuer}")
    if renew >= issuer:
        problems.add("identity.issuerRenewBeforeHours", f"the renewal window must be shorter than the issuer's lifetime ({issuer} hours), got {renew}")
    elif issuer > CHART_CERTIFICATE_HOURS:
        # The charts' certificates, made at the start of a renewal period, must still have the
        # renewal window left when the next period starts, as the issuer does:
        # (issuerValidityHours - issuerRenewBeforeHours) + issuerRenewBeforeHours <= 8760.
        problems.add(
            "identity.issuerValidityHours",
            f"must be at most {CHART_CERTIFICATE_HOURS} hours (365 days), got {issuer}: each renewal period "
            f"(issuerValidityHours - issuerRenewBeforeHours = {issuer - renew} h) also renews the webhook and APIService "
            f"certificates that Linkerd's charts generate, valid {CHART_CERTIFICATE_HOURS} h, and they must still have "
            f"issuerRenewBeforeHours ({renew} h) left when the next period starts, as the issuer does",
        )
    return IdentitySpec(
        anchor_validity_hours=anchor,
        issuer_validity_hours=issuer,
        issuer_renew_before_hours=renew,
        shared_issuer=shared,
        anchors=anchors,
        signing_anchor=signing,
    )


def _parse_cost(values: Mapping[str, Any], problems: Problems) -> CostSpec:
    limit = _read(values, "costLimitMonthly", "", problems, _amount, None)
    entry = _expect_mapping(values.get("prices", {}), "prices", problems, CONFIG_KEYS["prices"])
    load_balancer = _read(entry, "loadBalancerMonthly", "prices", problems, _amount, None)
    ha_control_plane = _read(entry, "haControlPlaneMonthly", "prices", problems, _amount, None)
    return CostSpec(limit_monthly=limit, load_balancer_monthly=load_balancer, ha_control_plane_monthly=ha_control_plane)


def _is_doks(entry: Any) -> bool:
    """Whether a cluster entry is a DOKS cluster (created or adopted), which needs the DigitalOcean token."""
    return not (isinstance(entry, dict) and any(key in entry for key in KUBECONFIG_KEYS))


def parse_config(values: Mapping[str, Any], namespace: str, token_available: bool, token_in_config: bool = False, base_dir: Optional[str] = None) -> MeshConfig:
    """Build the typed config from the stack's values (already YAML-decoded) or raise RunError.

    `token_available`: DIGITALOCEAN_ACCESS_TOKEN is set; only a stack with a DOKS cluster needs it.
    `token_in_config`: the stack config holds `digitalocean:token`, which the state would then keep
    (the provider's inputs), so it is refused. `base_dir`: where relative kubeconfig paths start
    (the project's directory, where Pulumi runs the program; default: the current directory).
    """
    raw_clusters = values.get("clusters")
    problems = Problems(namespace)
    _expect_mapping(values, "", problems, CONFIG_KEYS[""])
    if token_in_config:
        problems.add(
            "token",
            "the DigitalOcean token must not be in the stack config: the state would keep it with the provider. "
            "Remove it (`pulumi config rm digitalocean:token`) and export it as DIGITALOCEAN_ACCESS_TOKEN instead",
            namespace="digitalocean",
        )
    elif not token_available and isinstance(raw_clusters, dict) and any(_is_doks(entry) for entry in raw_clusters.values()):
        problems.add(
            "token",
            "no DigitalOcean token: export DIGITALOCEAN_ACCESS_TOKEN (`make deploy` exports it from DIGITALOCEAN_TOKEN); "
            "the DigitalOcean provider reads it, and so does doctl, which the DOKS clusters' kubeconfigs run for credentials "
            "(a stack of clusters given by kubeconfigs alone needs neither)",
            namespace="digitalocean",
        )
    clusters = _parse_clusters(raw_clusters, problems, base_dir or os.getcwd())

    def version_prefix(value: Any) -> Optional[str]:
        if not isinstance(value, str) or not KUBERNETES_VERSION_PREFIX.match(value):
            return f"must be a Kubernetes version prefix like \"1.35\" (a string), got {value!r}; leave it out for the newest DOKS offers"
        if int(value.split(".")[1]) < MIN_KUBERNETES_MINOR:
            return (
                f"must be 1.{MIN_KUBERNETES_MINOR} or newer, got {value!r}: only from 1.{MIN_KUBERNETES_MINOR} on does DOKS install the "
                "Gateway API CRDs (httproutes, grpcroutes) that Linkerd needs, and a cluster the program creates gets them from DOKS, not from linkerd-crds"
            )
        return None

    kubernetes_version = _read(values, "kubernetesVersion", "", problems, version_prefix, None)
    links = _parse_links(values.get("links", []), clusters, problems)
    _check_link_targets_reachable(clusters, links, problems)
    exports = _parse_exports(values.get("exports", []), links, clusters, problems)
    linkerd = _parse_linkerd(values.get("linkerd", {}), clusters, problems)
    identity = _parse_identity(values.get("identity", {}), problems)
    demo = _read(values, "demo", "", problems, _boolean, False)
    timeout = _read(values, "waitTimeoutSeconds", "", problems, _positive_int, 300)
    cost = _parse_cost(values, problems)
    problems.raise_if_any()
    return MeshConfig(
        clusters=clusters,
        kubernetes_version=kubernetes_version,
        links=links,
        exports=exports,
        linkerd=linkerd,
        identity=identity,
        demo=demo,
        wait_timeout_seconds=timeout,
        cost=cost,
    )


# Config values arrive as strings (structured ones JSON-encoded); this one stays a string
# because "1.33" would otherwise become the number 1.33.
TEXT_KEYS = ("kubernetesVersion",)


def _namespace_values(namespace: str) -> dict[str, Any]:
    """Every config value of our namespace, so that a misspelt key is reported, not ignored."""
    raw = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    values: dict[str, Any] = {}
    prefix = f"{namespace}:"
    for full_key, text in raw.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in TEXT_KEYS:
            values[key] = text
            continue
        try:
            values[key] = json.loads(text)
        except (TypeError, ValueError):
            values[key] = text
    return values


def load_config() -> MeshConfig:
    """Read this stack's config. The program never handles the DigitalOcean token: the provider
    and doctl read it from the environment, so that it never reaches the state."""
    namespace = pulumi.get_project()
    values = _namespace_values(namespace)
    in_config = pulumi.Config("digitalocean").get_secret("token") is not None
    return parse_config(values, namespace, token_available=bool(os.environ.get("DIGITALOCEAN_ACCESS_TOKEN")), token_in_config=in_config)
