"""A Kubernetes fake: one simulated API per DOKS cluster, reached through a provider's kubeconfig.

Like the real provider, a resource's provider decides which cluster it lands in: the fake parses
the provider's kubeconfig, finds the DOKS cluster by its endpoint, and refuses a kubeconfig
whose CA is not that cluster's. Helm releases come back with the status the provider reports.
Reads (`Service.get`, `Secret.get`) answer only for objects that something really created in
that cluster: the gateway Service and the remote-access token Secret exist once the
`linkerd-multicluster` release does, and the LoadBalancer address is the one this fake assigned.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
import yaml
from pulumi.runtime.rpc import wrap_rpc_secret

from tests.fake_digitalocean import FakeDigitalOcean
from tests.harness import unwrap

GATEWAY = ("linkerd-multicluster", "linkerd-gateway")
REMOTE_ACCESS_TOKEN = ("linkerd-multicluster", "linkerd-service-mirror-remote-access-default-token")


@dataclass
class FakeCluster:
    name: str
    endpoint: str
    gateway_ip: str
    remote_access_token: str
    # (kind, namespace, name) -> the object's inputs, for everything created in this cluster.
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)

    def releases(self) -> dict[str, dict]:
        return {name: obj for (kind, _, name), obj in self.objects.items() if kind == "Release"}


class FakeKubernetes:
    def __init__(self, digitalocean: FakeDigitalOcean, do_token: str):
        self.digitalocean = digitalocean
        self.do_token = do_token
        self.providers: dict[str, dict] = {}  # provider name (unique in a stack) -> inputs
        self.clusters: dict[str, FakeCluster] = {}  # endpoint -> cluster
        # Tests may set these to simulate the token controller being late.
        self.token_missing_in: set[str] = set()

    def register_provider(self, name: str, inputs: dict) -> dict:
        self.providers[name] = inputs
        return inputs

    def cluster_for(self, provider_ref: str) -> FakeCluster:
        # A provider reference is "<urn>::<id>" and a URN ends with "::<name>".
        name = provider_ref.rsplit("::", 1)[0].rsplit("::", 1)[-1] if provider_ref else ""
        inputs = self.providers.get(name)
        if inputs is None:
            raise AssertionError(f"resource uses no registered kubernetes provider ({provider_ref!r}): it would land in the ambient cluster")
        kubeconfig = yaml.safe_load(unwrap(inputs["kubeconfig"]))
        server = kubeconfig["clusters"][0]["cluster"]["server"]
        known = self.digitalocean.clusters.get(server)
        if known is None:
            raise AssertionError(f"kubeconfig points at {server}, which is no DOKS cluster")
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        if ca != known["ca"]:
            raise AssertionError(f"kubeconfig for {server} carries the wrong CA: TLS to the API server would fail")
        if server not in self.clusters:
            self.clusters[server] = FakeCluster(
                name=known["name"],
                endpoint=server,
                # Stable per cluster, whatever order the program happens to reach them in.
                gateway_ip=f"203.0.113.{zlib.crc32(known['name'].encode()) % 250 + 1}",
                remote_access_token=f"eyJhbGciOiJSUzI1NiJ9.remote-access.{known['id']}",
            )
        return self.clusters[server]

    def cluster_named(self, suffix: str) -> FakeCluster:
        """The simulated cluster whose DOKS name ends with `-<suffix>`."""
        matches = [c for c in self.clusters.values() if c.name.endswith(f"-{suffix}")]
        assert len(matches) == 1, f"no single cluster named *-{suffix}: {[c.name for c in self.clusters.values()]}"
        return matches[0]

    def create(self, type_: str, name: str, inputs: dict, provider: str) -> tuple[str, dict]:
        cluster = self.cluster_for(provider)
        if type_ == "kubernetes:helm.sh/v3:Release":
            release = inputs["name"]
            namespace = inputs.get("namespace") or "default"
            cluster.objects[("Release", namespace, release)] = inputs
            status = {
                "name": release,
                "namespace": namespace,
                "chart": inputs["chart"],
                "version": inputs.get("version", ""),
                "appVersion": "edge-" + inputs.get("version", "")[2:],
                "status": "deployed",
                "revision": 1,
            }
            return f"{namespace}/{release}", {**inputs, "status": status}
        metadata = dict(inputs.get("metadata") or {})
        kind = type_.split(":")[-1]
        namespace = metadata.get("namespace", "" if kind == "Namespace" else "default")
        object_name = metadata.get("name") or name
        metadata.setdefault("name", object_name)
        metadata.update(uid=f"uid-{cluster.name}-{kind}-{object_name}", resourceVersion="1")
        cluster.objects[(kind, namespace, object_name)] = {**inputs, "metadata": metadata}
        return (f"{namespace}/{object_name}" if namespace else object_name), {**inputs, "metadata": metadata}

    def read(self, type_: str, resource_id: str, provider: str) -> tuple[str, dict]:
        cluster = self.cluster_for(provider)
        namespace, name = resource_id.split("/")
        multicluster = cluster.releases().get("linkerd-multicluster")
        if type_ == "kubernetes:core/v1:Service" and (namespace, name) == GATEWAY and multicluster and _gateway_enabled(multicluster):
            return resource_id, {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"type": "LoadBalancer", "ports": [{"name": "mc-gateway", "port": 4143}, {"name": "mc-probe", "port": 4191}]},
                "status": {"loadBalancer": {"ingress": [{"ip": cluster.gateway_ip, "ipMode": "VIP"}]}},
            }
        if type_ == "kubernetes:core/v1:Secret" and (namespace, name) == REMOTE_ACCESS_TOKEN and multicluster:
            # The chart creates the Secret empty; Kubernetes' token controller fills it later.
            data = {} if cluster.name.split("-")[-1] in self.token_missing_in else {
                "token": base64.b64encode(cluster.remote_access_token.encode()).decode(),
                "namespace": base64.b64encode(namespace.encode()).decode(),
            }
            return resource_id, {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/service-account-token",
                "metadata": {"name": name, "namespace": namespace},
                # The kubernetes provider returns a Secret's data as a secret.
                "data": wrap_rpc_secret(data),
            }
        raise Exception(f"fake kubernetes: {type_} {resource_id} not found in cluster {cluster.name}")

    def mirrors_in(self, source: FakeCluster) -> dict[tuple[str, str], dict]:
        """What Linkerd's service-mirror controller would have created in `source`.

        A mirror `<service>-<target>` exists when: a Link `<target>` in `source` points at the
        target's real gateway address; its credentials Secret carries the target's
        remote-access token; the target has the service labelled exported=true; and the
        namespace exists in `source`. Its endpoints are the target gateway's address.
        """
        mirrors = {}
        for (kind, namespace, target_name), link in source.objects.items():
            if kind != "Link":
                continue
            spec = unwrap(link["spec"])
            target = next((c for c in self.clusters.values() if c.name.endswith(f"-{spec['targetClusterName']}")), None)
            credentials = source.objects.get(("Secret", namespace, spec["clusterCredentialsSecret"]))
            if target is None or spec["gatewayAddress"] != target.gateway_ip or credentials is None:
                continue
            kubeconfig = yaml.safe_load(base64.b64decode(unwrap(credentials["data"])["kubeconfig"]))
            if kubeconfig["users"][0]["user"]["token"] != target.remote_access_token:
                continue  # the controller would get Unauthorized from the target
            for (target_kind, service_namespace, service), obj in target.objects.items():
                labels = unwrap(obj.get("metadata") or {}).get("labels") or {}
                exported = target_kind in ("Service", "ServicePatch") and labels.get("mirror.linkerd.io/exported") == "true"
                if exported and ("Namespace", "", service_namespace) in source.objects:
                    index = len(mirrors) + 100
                    mirrors[(service_namespace, f"{service}-{spec['targetClusterName']}")] = {"clusterIP": f"10.245.0.{index}", "endpoints": [target.gateway_ip]}
        return mirrors


def _gateway_enabled(release_inputs: dict) -> bool:
    values = unwrap(release_inputs.get("values") or {})
    return (values.get("gateway") or {}).get("enabled", True)
