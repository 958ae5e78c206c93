"""A DigitalOcean fake: the versions lookup, DOKS clusters and node pools, as the API returns them
and with the refusals it makes, and the account's clusters served over HTTP as the API lists them
(`serve_api`: GET /v2/kubernetes/clusters, paged, and /v2/kubernetes/clusters/<id>), which the fake
doctl reads.

A cluster comes back with an id, an HTTPS endpoint, and `kubeConfigs` holding the cluster CA
(base64 PEM, a real certificate) and a token that expires after `kubeconfigExpireSeconds` (7 days
when unset or 0), the one a stack must never build on. `kubeConfigs` is plain state here; the
recording monitor marks it secret because the SDK lists it in additionalSecretOutputs.

Mocks do not diff, so which input changes replace a resource is stated here as data
(`CLUSTER_REPLACED_BY`, `NODE_POOL_REPLACED_BY`) for the tests to check a change against.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import json
import math
import os
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Optional, Union
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.certificates import pem, self_signed_ca
from tests.fake_account import ACCOUNT_TOKENS, OTHER_ACCOUNT_TOKEN, PREVIEW_TOKEN

# What `doctl kubernetes options versions` lists today: newest first, with DigitalOcean's suffix.
# Retired minors (1.33 left upstream support in June 2026) are absent: DOKS creates nothing on them.
DOKS_VERSIONS = ["1.36.2-do.0", "1.35.6-do.1", "1.35.5-do.0", "1.34.9-do.0"]
# A cluster created with neither range, or with these, is a legacy overlay cluster, not VPC-native
# (doctl commands/kubernetes.go, --cluster-subnet / --service-subnet).
OVERLAY_SUBNETS = ("10.244.0.0/16", "10.245.0.0/16")
DEFAULT_POOL_TAG = "terraform:default-node-pool"
# The list endpoints' paging: per_page defaults to 20, at most 200 (DigitalOcean OpenAPI,
# specification/shared/parameters.yml, per_page).
PER_PAGE_DEFAULT, PER_PAGE_MAX = 20, 200


def _size(slug: str, vcpus: int, memory_mb: int, disk_gb: int, transfer_tb: float, price_monthly: float, price_hourly: float) -> dict:
    """One entry of GET /v2/sizes, in the API's own shape (digitalocean/openapi
    specification/resources/sizes/models/size.yml: every field there marked required)."""
    return {
        "slug": slug,
        "memory": memory_mb,
        "vcpus": vcpus,
        "disk": disk_gb,
        "transfer": transfer_tb,
        "price_monthly": price_monthly,
        "price_hourly": price_hourly,
        "regions": ["ams3", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1"],
        "available": True,
        "description": "Basic",
    }


# The droplet sizes the fake account's API lists, with the tests' own prices (no test depends on
# today's list prices). The real API lists only the sizes offered now: a slug the SDK still knows
# (e.g. so-2vcpu-16gb) may be missing, and is missing here.
DROPLET_SIZES = [
    _size("s-1vcpu-2gb", 1, 2048, 50, 2.0, 12.0, 0.01786),
    _size("s-2vcpu-2gb", 2, 2048, 60, 3.0, 18.0, 0.02679),
    _size("s-2vcpu-4gb", 2, 4096, 80, 4.0, 24.0, 0.03571),
    _size("s-4vcpu-8gb", 4, 8192, 160, 5.0, 48.0, 0.07143),
    _size("s-8vcpu-16gb", 8, 16384, 320, 6.0, 96.0, 0.14286),
]

# Inputs whose change replaces a cluster: ForceNew in terraform-provider-digitalocean
# digitalocean/kubernetes/resource_kubernetes_cluster.go (region, vpc_uuid, cluster_subnet,
# service_subnet), and the built-in pool's size (kubernetes.go nodePoolSchema; #424, pulumi/pulumi#5049).
# The pool's name, count, labels and taints are not ForceNew: resourceDigitalOceanKubernetesClusterUpdate
# updates the built-in pool in place.
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
        # GET /v2/sizes: what a test's account lists.
        self.sizes: list[dict] = [dict(size) for size in DROPLET_SIZES]
        # Paths and queries of every request to the served API, authorized or not.
        self.api_requests: list[str] = []

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
        # A running cluster has its API server at its endpoint, which the program may read.
        self._serve(record)
        return record

    def _serve(self, record: DoksRecord) -> str:
        """The cluster in the account, its API server at its endpoint; returns its CA."""
        record.endpoint = f"https://{record.id}.k8s.ondigitalocean.com"
        self.accounts_clusters[record.name] = record
        ca_pem = _cluster_ca(record.name)
        self.clusters[record.endpoint] = {"name": record.name, "ca": ca_pem, "id": record.id, "record": record}
        return ca_pem

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

    def get_sizes(self, args: dict) -> dict:
        """The getSizes data source: every page of GET /v2/sizes (terraform-provider-digitalocean
        digitalocean/size/datasource_sizes.go, getDigitalOceanSizes), flattened and then filtered by
        internal/datalist (a filter keeps a record whose `key` equals any of its `values`)."""
        # GET /v2/sizes needs sizes:read (openapi sizes_list.yml, security). A custom token with
        # kubernetes:read has it: kubernetes:read requires sizes:read and regions:read
        # (docs.digitalocean.com/reference/api/scopes/kubernetes/read/), so the preview token may.
        if (os.environ.get("DIGITALOCEAN_TOKEN") or os.environ.get("DIGITALOCEAN_ACCESS_TOKEN")) not in ACCOUNT_TOKENS | {PREVIEW_TOKEN}:
            raise ProviderError("Error retrieving sizes: GET https://api.digitalocean.com/v2/sizes: 401 Unable to authenticate you")
        records = [self._size_result(size) for size in self.sizes]
        for rule in args.get("filters") or []:
            if rule["key"] != "slug" or rule.get("matchBy", "exact") != "exact":
                raise NotImplementedError(f"the fake sizes API filters by exact slug only, not {rule}")
            records = [r for r in records if r["slug"] in rule["values"]]
        return {"id": "sizes", "filters": args.get("filters"), "sorts": args.get("sorts"), "sizes": records}

    @staticmethod
    def _size_result(size: dict) -> dict:
        """datasource_sizes.go, flattenDigitalOceanSize, as the Pulumi SDK names the fields."""
        return {
            "slug": size["slug"],
            "available": size["available"],
            "transfer": size["transfer"],
            "priceMonthly": size["price_monthly"],
            "priceHourly": size["price_hourly"],
            "memory": size["memory"],
            "vcpus": size["vcpus"],
            "disk": size["disk"],
            "regions": size["regions"],
            "gpuInfos": [],
        }

    @staticmethod
    def _api_pool(pool: dict, cluster_id: str) -> dict:
        # DOKS adds its own tags to every pool's (as doctl shows them; the provider filters them out).
        return {"id": pool.get("id", ""), "name": pool["name"], "size": pool["size"], "count": int(pool.get("nodeCount", 1)), "tags": [*pool.get("tags", []), "k8s", f"k8s:{cluster_id}", "k8s:worker"]}

    def api_cluster(self, record: DoksRecord) -> dict:
        """A cluster as GET /v2/kubernetes/clusters returns it (godo KubernetesCluster's JSON: `omitempty`
        leaves out false and empty fields, `ha` among them)."""
        cluster = {
            "id": record.id,
            "name": record.name,
            "region": record.region,
            "version": record.version,
            "cluster_subnet": record.cluster_subnet,
            "service_subnet": record.service_subnet,
            "vpc_uuid": self._vpc(record.region),
            "endpoint": record.endpoint or f"https://{record.id}.k8s.ondigitalocean.com",
            "node_pools": [self._api_pool(pool, record.id) for pool in (record.system_pool, *record.pools.values())],
            "auto_upgrade": True,
            "status": {"state": "running"},
        }
        return {**cluster, "ha": True} if record.ha else cluster

    def _api_answer(self, path: str, authorization: str) -> tuple[int, Union[dict, str]]:
        self.api_requests.append(path)
        url = urlsplit(path)
        token = authorization.removeprefix("Bearer ")
        # Listing or reading clusters needs kubernetes:read, which the preview token has too; another
        # account's token sees that account's clusters (none here).
        if token not in ACCOUNT_TOKENS | {PREVIEW_TOKEN, OTHER_ACCOUNT_TOKEN}:
            return 401, {"id": "Unauthorized", "message": "Unable to authenticate you", "request_id": "fake-request"}
        records = list(self.accounts_clusters.values()) if token != OTHER_ACCOUNT_TOKEN else []
        if url.path == "/v2/kubernetes/clusters":
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            page, per_page = int(query.get("page", 1)), int(query.get("per_page", PER_PAGE_DEFAULT))
            if not 1 <= per_page <= PER_PAGE_MAX:
                return 400, {"id": "bad_request", "message": f"per_page must be between 1 and {PER_PAGE_MAX}", "request_id": "fake-request"}
            last = max(1, math.ceil(len(records) / per_page))
            body = {"kubernetes_clusters": [self.api_cluster(r) for r in records[(page - 1) * per_page : page * per_page]], "meta": {"total": len(records)}}
            if last > 1:
                link = f"https://api.digitalocean.com/v2/kubernetes/clusters?page={{}}&per_page={per_page}"
                pages = {"first": link.format(1), "last": link.format(last)}
                if page > 1:
                    pages["prev"] = link.format(page - 1)
                if page < last:
                    pages["next"] = link.format(page + 1)
                body["links"] = {"pages": pages}
            return 200, body
        found = next((r for r in records if url.path in (f"/v2/kubernetes/clusters/{r.id}", f"/v2/kubernetes/clusters/{r.id}/kubeconfig")), None)
        if found is not None and url.path.endswith("/kubeconfig"):
            # The cluster's kubeconfig (YAML) needs kubernetes:access_cluster, which the preview token
            # lacks (openapi specification/resources/kubernetes/kubernetes_get_kubeconfig.yml, security).
            if token == PREVIEW_TOKEN:
                return 403, {"id": "forbidden", "message": "You are not authorized to perform this operation", "request_id": "fake-request"}
            return 200, _served_kubeconfig(found, parse_qs(url.query).get("expiry_seconds", [None])[0])
        if found is None:
            return 404, {"id": "not_found", "message": "The resource you were accessing could not be found.", "request_id": "fake-request"}
        return 200, {"kubernetes_cluster": self.api_cluster(found)}

    @contextmanager
    def serve_api(self) -> Iterator[str]:
        """The account's clusters at a local URL (what DIGITALOCEAN_API_URL points doctl at), while in use."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                code, body = fake._api_answer(self.path, self.headers.get("Authorization", ""))
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/yaml" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), name="fake-digitalocean-api", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

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
        ca_pem = self._serve(record)
        endpoint = record.endpoint
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


def _served_kubeconfig(record: DoksRecord, expiry_seconds: Optional[str]) -> str:
    """GET /v2/kubernetes/clusters/<id>/kubeconfig: a kubeconfig with the cluster's CA and a token
    valid `expiry_seconds`, 7 days when unset (DigitalOcean API reference, "Retrieve the kubeconfig
    for a Kubernetes Cluster")."""
    lifetime = int(expiry_seconds) if expiry_seconds else 7 * 24 * 3600
    context = f"do-{record.region}-{record.name}"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": record.endpoint, "certificate-authority-data": base64.b64encode(_cluster_ca(record.name).encode()).decode()}}],
            "users": [{"name": f"{context}-admin", "user": {"token": f"doks-credentials-token-{record.id}-{lifetime}s"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-admin"}}],
            "current-context": context,
        }
    )
