"""A DigitalOcean fake: the versions invoke and DOKS clusters as the API returns them.

A cluster comes back with an id, an HTTPS endpoint, and `kubeConfigs` holding the cluster CA
(base64 PEM, a real certificate) and the short-lived token that expires after 7 days, the one a
stack must never build on. `kubeConfigs` is plain state here; the recording monitor marks it
secret because the SDK lists it in additionalSecretOutputs.
"""

from __future__ import annotations

import base64
import functools
import datetime as dt
import uuid

from tests.certificates import pem, self_signed_ca


# What `doctl kubernetes options versions` lists: newest first, with DigitalOcean's suffix.
DOKS_VERSIONS = ["1.34.1-do.0", "1.33.5-do.0", "1.33.1-do.2", "1.32.9-do.0", "1.31.13-do.1"]


@functools.lru_cache(maxsize=None)
def _cluster_ca(name: str) -> str:
    """A cluster keeps its CA: the same name gets the same CA in every run of a test session."""
    return pem(self_signed_ca(f"k8saas Cluster CA {name}", days=3650))


class FakeDigitalOcean:
    def __init__(self, versions: list[str] = DOKS_VERSIONS):
        self.versions = versions
        # Clusters that already exist (by DOKS name) at the version they run; Pulumi ignores
        # changes to `version`, so their state keeps this one.
        self.running_versions: dict[str, str] = {}
        # Cluster endpoint -> what a client needs to know about it (CA, name).
        self.clusters: dict[str, dict] = {}

    def get_kubernetes_versions(self, args: dict) -> dict:
        prefix = args.get("versionPrefix") or ""
        matching = [v for v in self.versions if v.startswith(prefix)]
        return {
            "id": prefix or "versions",
            "versionPrefix": prefix,
            "latestVersion": matching[0] if matching else "",
            "validVersions": matching,
        }

    def kubernetes_cluster(self, inputs: dict) -> tuple[str, dict]:
        cluster_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, inputs["name"]))
        endpoint = f"https://{cluster_id}.k8s.ondigitalocean.com"
        ca_pem = _cluster_ca(inputs["name"])
        self.clusters[endpoint] = {"name": inputs["name"], "ca": ca_pem, "id": cluster_id}
        short_lived_token = f"doks-7-day-token-{cluster_id}"
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).isoformat()
        pool = dict(inputs["nodePool"])
        pool.update(
            id=str(uuid.uuid4()),
            actualNodeCount=int(pool["nodeCount"]),
            nodes=[{"id": str(uuid.uuid4()), "name": f"{pool['name']}-{i}", "status": "running"} for i in range(int(pool["nodeCount"]))],
        )
        state = {
            **inputs,
            "version": self.running_versions.get(inputs["name"], inputs["version"]),
            "nodePool": pool,
            "endpoint": endpoint,
            "ipv4Address": "",
            "status": "running",
            "urn": f"do:kubernetes:{cluster_id}",
            "clusterSubnet": "10.244.0.0/16",
            "serviceSubnet": "10.245.0.0/16",
            "kubeConfigs": [
                {
                    "host": endpoint,
                    "clusterCaCertificate": base64.b64encode(ca_pem.encode()).decode(),
                    "token": short_lived_token,
                    "expiresAt": expires,
                    "rawConfig": f"apiVersion: v1\nclusters:\n- cluster:\n    server: {endpoint}\nusers:\n- user:\n    token: {short_lived_token}\n",
                }
            ],
        }
        return cluster_id, state
