"""A DigitalOcean fake: the versions and cluster lookups, DOKS clusters and node pools, as the API
returns them and with the refusals it makes.

A cluster comes back with an id, an HTTPS endpoint, and `kubeConfigs` holding the cluster CA
(base64 PEM, a real certificate) and a token that expires after `kubeconfigExpireSeconds` (7 days
when unset or 0), the one a stack must never build on; the cluster lookup fetches such
credentials too. `kubeConfigs` is plain state here; the recording monitor marks it
secret because the SDK lists it in additionalSecretOutputs.

Mocks do not diff, so which input changes replace a resource is stated here as data
(`CLUSTER_REPLACED_BY`, `NODE_POOL_REPLACED_BY`) for the tests to check a change against.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import os
import uuid
from dataclasses import dataclass, field
from typing import Optional

from tests.certificates import pem, self_signed_ca
from tests.fake_account import PREVIEW_TOKEN

# What `doctl kubernetes options versions` lists today: newest first, with DigitalOcean's suffix.
# Retired minors (1.33 left upstream support in June 2026) are absent: DOKS creates nothing on them.
DOKS_VERSIONS = ["1.36.2-do.0", "1.35.6-do.1", "1.35.5-do.0", "1.34.9-do.0"]
# A cluster created with neither range, or with these, is a legacy overlay cluster, not VPC-native
# (doctl commands/kubernetes.go, --cluster-subnet / --service-subnet).
OVERLAY_SUBNETS = ("10.244.0.0/16", "10.245.0.0/16")
DEFAULT_POOL_TAG = "terraform:default-node-pool"

# Inputs whose change replaces a cluster: ForceNew in terraform-provider-digitalocean
# digitalocean/kubernetes/resource_kubernetes_cluster.go (region, vpc_uuid, cluster_subnet,
# service_subnet), and the built-in pool's size (kubernetes.go nodePoolSchema; #424, pulumi/pulumi#5049).
CLUSTER_REPLACED_BY = ("region", "vpcUuid", "clusterSubnet", "serviceSubnet", "nodePool.size")
# resource_kubernetes_node_pool.go: cluster_id and size are ForceNew; node_count and name update in place.
NODE_POOL_REPLACED_BY = ("clusterId", "size")


class ProviderError(Exception):
    """A failure the provider reports for an invoke (the engine turns it into a gRPC error)."""


def replacing_changes(old: dict, new: dict, rules: tuple[str, ...]) -> list[str]:
    """The inputs in `rules` (dotted for nested ones) that differ between two registrations."""

    def get(inputs: dict, path: str):
        for key in path.split("."):
            inputs = (inputs or {}).get(key)
        return inputs

    return [path for path in rules if get(old, path) != get(new, path)]


@functools.lru_cache(maxsize=None)
def _cluster_ca(name: str) -> str:
    """A cluster keeps its CA: the same name gets the same CA in every run of a test session."""
    return pem(self_signed_ca(f"k8saas Cluster CA {name}", days=3650))


def _minor(version: str) -> int:
    return int(version.split(".")[1])


@dataclass
class DoksRecord:
    """A cluster in the account, as DOKS keeps it."""

    name: str
    id: str
    region: str
    version: str
    ha: bool
    cluster_subnet: str
    service_subnet: str
    system_pool: dict
    endpoint: str = ""
    pools: dict[str, dict] = field(default_factory=dict)  # node pool id -> pool

    @property
    def vpc_native(self) -> bool:
        return (self.cluster_subnet, self.service_subnet) != OVERLAY_SUBNETS


class FakeDigitalOcean:
    def __init__(self, versions: list[str] = DOKS_VERSIONS):
        self.versions = versions
        # The account's clusters by DOKS name: those a test says exist already, and those created.
        self.accounts_clusters: dict[str, DoksRecord] = {}
        # Cluster endpoint -> what a client needs to know about it (CA, name, id, the record).
        self.clusters: dict[str, dict] = {}
        # DOKS names whose cluster a test replaced out of band (a new id under the same name).
        self.generations: dict[str, int] = {}
        # What the API answers every lookup with instead, when a test sets it (e.g. a 401).
        self.api_error: Optional[str] = None

    def add_existing(self, name: str, region: str, version: str, *, ha: bool = False, cluster_subnet: str = OVERLAY_SUBNETS[0], service_subnet: str = OVERLAY_SUBNETS[1], system_pool_size: str = "s-2vcpu-4gb") -> DoksRecord:
        """A cluster that exists before the run (made by an earlier `pulumi up`, or by hand)."""
        record = DoksRecord(
            name=name,
            id=self._cluster_id(name),
            region=region,
            version=version,
            ha=ha,
            cluster_subnet=cluster_subnet,
            service_subnet=service_subnet,
            system_pool={"name": f"{name}-pool", "size": system_pool_size, "nodeCount": 1, "tags": [DEFAULT_POOL_TAG]},
        )
        record.endpoint = f"https://{record.id}.k8s.ondigitalocean.com"
        self.accounts_clusters[name] = record
        self.clusters[record.endpoint] = {"name": name, "ca": _cluster_ca(name), "id": record.id, "record": record}
        return record

    def _cluster_id(self, name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}#{self.generations.get(name, 0)}"))

    def get_kubernetes_versions(self, args: dict) -> dict:
        prefix = args.get("versionPrefix") or ""
        matching = [v for v in self.versions if v.startswith(prefix)]
        return {
            "id": prefix or "versions",
            "versionPrefix": prefix,
            "latestVersion": matching[0] if matching else "",
            "validVersions": matching,
        }

    def get_kubernetes_cluster(self, args: dict) -> dict:
        if self.api_error:
            raise ProviderError(f"Error listing Kubernetes clusters: {self.api_error}")
        record = self.accounts_clusters.get(args["name"])
        if record is None:
            # datasource_kubernetes_cluster.go: the data source fails when no cluster has the name.
            raise ProviderError(f"Unable to find cluster with name: {args['name']}")
        # The data source also fetches the cluster's credentials, each time (resource_kubernetes_cluster.go,
        # digitaloceanKubernetesClusterRead: GetCredentials), which needs the kubernetes:access_cluster scope.
        if (os.environ.get("DIGITALOCEAN_TOKEN") or os.environ.get("DIGITALOCEAN_ACCESS_TOKEN")) == PREVIEW_TOKEN:
            raise ProviderError(
                f"Unable to fetch Kubernetes credentials: GET https://api.digitalocean.com/v2/kubernetes/clusters/{record.id}/credentials: "
                "403 You are not authorized to perform this operation"
            )
        # The data source lists the built-in pool only (the one tagged terraform:default-node-pool),
        # and without its `terraform:`/`k8s` tags (resource_kubernetes_cluster.go,
        # digitaloceanKubernetesClusterRead; kubernetes.go, flattenNodePool and FilterTags).
        built_in = record.system_pool if DEFAULT_POOL_TAG in record.system_pool.get("tags", []) else None
        pools = [{**built_in, "tags": [t for t in built_in["tags"] if not t.startswith(("terraform:", "k8s:")) and t != "k8s"]}] if built_in else []
        return {
            "id": record.id,
            "name": record.name,
            "region": record.region,
            "version": record.version,
            "ha": record.ha,
            "clusterSubnet": record.cluster_subnet,
            "serviceSubnet": record.service_subnet,
            "vpcUuid": self._vpc(record.region),
            "endpoint": record.endpoint,
            "status": "running",
            "tags": [],
            "nodePools": [self._pool_result(pool) for pool in pools],
            "kubeConfigs": _credentials(record.endpoint, _cluster_ca(record.name), f"doks-credentials-token-{record.id}", args.get("kubeconfigExpireSeconds")),
        }

    @staticmethod
    def _pool_result(pool: dict) -> dict:
        count = int(pool.get("nodeCount", 1))
        return {
            "id": pool.get("id", str(uuid.uuid4())),
            "name": pool["name"],
            "size": pool["size"],
            "nodeCount": count,
            "actualNodeCount": count,
            "autoScale": False,
            "minNodes": 0,
            "maxNodes": 0,
            "gpuPartitionMode": "",
            "labels": {},
            "tags": pool.get("tags", []),
            "taints": [],
            "nodes": [],
        }

    @staticmethod
    def _vpc(region: str) -> str:
        """Without vpc_uuid a cluster joins its region's default VPC: one per region."""
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"default-vpc-{region}"))

    def _refuse_overlap(self, name: str, cluster_subnet: str, service_subnet: str) -> None:
        # "VPC-native CIDR blocks cannot overlap within an account" (doctl commands/kubernetes.go).
        mine = [ipaddress.ip_network(cluster_subnet), ipaddress.ip_network(service_subnet)]
        for other in self.accounts_clusters.values():
            if other.name == name or not other.vpc_native:
                continue
            for theirs in (other.cluster_subnet, other.service_subnet):
                if any(net.overlaps(ipaddress.ip_network(theirs)) for net in mine):
                    raise Exception(f"Error creating Kubernetes cluster: 422 subnet {theirs} of cluster {other.name} overlaps this cluster's subnets")

    def kubernetes_cluster(self, inputs: dict) -> tuple[str, dict]:
        name = inputs["name"]
        existing = self.accounts_clusters.get(name)
        if existing is None and inputs["version"] not in self.versions:
            # DOKS creates clusters only on the versions it offers now.
            raise Exception(f"Error creating Kubernetes cluster: 422 validation error: invalid version slug {inputs['version']!r}")
        cluster_subnet = inputs.get("clusterSubnet") or OVERLAY_SUBNETS[0]
        service_subnet = inputs.get("serviceSubnet") or OVERLAY_SUBNETS[1]
        version = existing.version if existing else inputs["version"]
        if "ha" in inputs:
            ha = bool(inputs["ha"])
        else:
            # pulumi-digitalocean KubernetesCluster.ha: "Default: true (for 1.36.0 and later)".
            ha = existing.ha if existing else _minor(version) >= 36
        if existing is not None and existing.ha and not ha:
            # "Once enabled for a cluster, high availability cannot be disabled" (same docs).
            raise Exception(f"Error updating Kubernetes cluster {name}: high availability cannot be disabled")
        if existing is None:
            self._refuse_overlap(name, cluster_subnet, service_subnet)
        record = DoksRecord(
            name=name,
            id=existing.id if existing else self._cluster_id(name),
            region=inputs["region"],
            version=version,
            ha=ha,
            cluster_subnet=cluster_subnet,
            service_subnet=service_subnet,
            system_pool={**inputs["nodePool"], "tags": [DEFAULT_POOL_TAG]},
            pools=existing.pools if existing else {},
        )
        cluster_id = record.id
        endpoint = f"https://{cluster_id}.k8s.ondigitalocean.com"
        record.endpoint = endpoint
        self.accounts_clusters[name] = record
        ca_pem = _cluster_ca(name)
        self.clusters[endpoint] = {"name": name, "ca": ca_pem, "id": cluster_id, "record": record}
        short_lived_token = f"doks-credentials-token-{cluster_id}"
        pool = dict(inputs["nodePool"])
        pool.update(
            id=str(uuid.uuid4()),
            actualNodeCount=int(pool["nodeCount"]),
            nodes=[{"id": str(uuid.uuid4()), "name": f"{pool['name']}-{i}", "status": "running"} for i in range(int(pool["nodeCount"]))],
        )
        state = {
            **inputs,
            "version": version,
            "ha": ha,
            "nodePool": pool,
            "endpoint": endpoint,
            "ipv4Address": "",
            "status": "running",
            "urn": f"do:kubernetes:{cluster_id}",
            "clusterSubnet": cluster_subnet,
            "serviceSubnet": service_subnet,
            "vpcUuid": self._vpc(inputs["region"]),
            "kubeConfigs": _credentials(endpoint, ca_pem, short_lived_token, inputs.get("kubeconfigExpireSeconds")),
        }
        return cluster_id, state

    def record_by_id(self, cluster_id: str) -> Optional[DoksRecord]:
        return next((r for r in self.accounts_clusters.values() if r.id == cluster_id), None)

    def kubernetes_node_pool(self, inputs: dict) -> tuple[str, dict]:
        record = self.record_by_id(inputs["clusterId"])
        if record is None:
            raise Exception(f"Error creating node pool: 404 cluster {inputs['clusterId']} not found")
        # The same name in the same cluster is the same pool (a re-run of the program updates it).
        pool_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{record.id}/{inputs['name']}"))
        count = int(inputs["nodeCount"])
        pool = {**inputs, "id": pool_id, "actualNodeCount": count, "nodes": [{"id": f"{pool_id}-{i}", "name": f"{inputs['name']}-{i}", "status": "running"} for i in range(count)]}
        record.pools[pool_id] = pool
        return pool_id, pool

    def worker_nodes(self, name: str) -> int:
        """Nodes outside the built-in pool of the cluster with DOKS name `name`."""
        return sum(int(p["nodeCount"]) for p in self.accounts_clusters[name].pools.values())


def _credentials(endpoint: str, ca_pem: str, token: str, expire_seconds: Optional[int]) -> list[dict]:
    """GET /v2/kubernetes/clusters/<id>/credentials: a token valid `expiry_seconds`, 7 days when
    unset or 0 (DigitalOcean API reference; godo KubernetesClusterCredentialsGetRequest)."""
    lifetime = dt.timedelta(seconds=int(expire_seconds)) if expire_seconds else dt.timedelta(days=7)
    return [
        {
            "host": endpoint,
            "clusterCaCertificate": base64.b64encode(ca_pem.encode()).decode(),
            "token": token,
            "expiresAt": (dt.datetime.now(dt.timezone.utc) + lifetime).isoformat(),
            "rawConfig": f"apiVersion: v1\nclusters:\n- cluster:\n    server: {endpoint}\nusers:\n- user:\n    token: {token}\n",
        }
    ]
