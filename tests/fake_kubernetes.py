"""A Kubernetes fake: one simulated cluster per DOKS cluster, reached through a kubeconfig.

Like the real provider, a resource's provider decides which cluster it lands in: the fake
parses the provider's kubeconfig, finds the DOKS cluster by its endpoint, and refuses a
kubeconfig whose CA is not that cluster's. Helm releases come back with the status the provider
reports; a ServicePatch fails, as server-side apply does, when its Service does not exist. A
fresh cluster holds the Gateway API CRDs DOKS installs, a release creates the CRDs its chart
renders or fails as Helm does over objects it does not own, and the control plane fails without
the CRDs Linkerd needs (tests/fake_crds.py).

What the cluster itself produces is served to the program's live reads by a fake API server
(`serve`): the gateway Service with its load balancer address and the remote-access token
Secret once the `linkerd-multicluster` release exists, and the mirrored services that Linkerd's
service-mirror controller would have created (`mirrors_in`).
"""

from __future__ import annotations

import base64
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pulumi
import yaml

from components.names import EXPORTED_LABEL, GATEWAY_SERVICE, MULTICLUSTER_NAMESPACE, REMOTE_ACCESS_TOKEN_SECRET, mirror_name
from tests import fake_crds
from tests.fake_digitalocean import FakeDigitalOcean
from tests.fake_kube_api import FakeKubeAPI, core_path
from tests.harness import unwrap


@dataclass
class FakeCluster:
    name: str  # the DOKS name, `<stack>-<short>`
    short: str  # the mesh's name for it
    endpoint: str
    gateway_ip: str
    remote_access_token: str
    # (kind, namespace, name) -> the object's inputs, for everything that exists in this cluster.
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)

    def releases(self) -> dict[str, dict]:
        return {name: obj for (kind, _, name), obj in self.objects.items() if kind == "Release"}

    def has_gateway(self) -> bool:
        multicluster = self.releases().get("linkerd-multicluster")
        return bool(multicluster) and (unwrap(multicluster.get("values") or {}).get("gateway") or {}).get("enabled", True)


class FakeKubernetes:
    def __init__(self, digitalocean: FakeDigitalOcean):
        self.digitalocean = digitalocean
        self.providers: dict[str, dict] = {}  # provider name (unique in a stack) -> inputs
        self.clusters: dict[str, FakeCluster] = {}  # endpoint -> cluster
        # Tests set these: clusters (by short name) whose token controller is late, whose
        # gateway the linking clusters cannot reach, and objects that exist before the program.
        self.token_missing_in: set[str] = set()
        self.unreachable_gateways: set[str] = set()
        self.preexisting: dict[str, list[tuple[str, str, str, dict]]] = {}

    def register_provider(self, name: str, inputs: dict) -> dict:
        self.providers[name] = inputs
        return inputs

    def cluster_for_kubeconfig(self, kubeconfig_text: str) -> FakeCluster:
        kubeconfig = yaml.safe_load(kubeconfig_text)
        server = kubeconfig["clusters"][0]["cluster"]["server"]
        known = self.digitalocean.clusters.get(server)
        if known is None:
            raise AssertionError(f"kubeconfig points at {server}, which is no DOKS cluster")
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        if ca != known["ca"]:
            raise AssertionError(f"kubeconfig for {server} carries the wrong CA: TLS to the API server would fail")
        if server not in self.clusters:
            cluster = FakeCluster(
                name=known["name"],
                short=known["name"].removeprefix(f"{pulumi.get_stack()}-"),
                endpoint=server,
                # Stable per cluster, whatever order the program happens to reach them in.
                gateway_ip=f"203.0.113.{zlib.crc32(known['name'].encode()) % 250 + 1}",
                remote_access_token=f"eyJhbGciOiJSUzI1NiJ9.remote-access.{known['id']}",
            )
            # A fresh DOKS cluster already holds what DOKS installs (the Gateway API CRDs).
            record = known["record"]
            for crd, obj in fake_crds.doks_gateway_crds(record.version, record.vpc_native).items():
                cluster.objects[(fake_crds.CRD, "", crd)] = obj
            for kind, namespace, name, labels in self.preexisting.get(cluster.short, []):
                cluster.objects[(kind, namespace, name)] = {"metadata": {"name": name, "namespace": namespace, "labels": labels}}
            self.clusters[server] = cluster
        return self.clusters[server]

    def cluster_for(self, provider_ref: str) -> FakeCluster:
        # A provider reference is "<urn>::<id>" and a URN ends with "::<name>".
        name = provider_ref.rsplit("::", 1)[0].rsplit("::", 1)[-1] if provider_ref else ""
        inputs = self.providers.get(name)
        if inputs is None:
            raise AssertionError(f"resource uses no registered kubernetes provider ({provider_ref!r}): it would land in the ambient cluster")
        return self.cluster_for_kubeconfig(unwrap(inputs["kubeconfig"]))

    def cluster_named(self, short: str) -> FakeCluster:
        """The simulated cluster the mesh calls `short`."""
        matches = [c for c in self.clusters.values() if c.short == short]
        assert len(matches) == 1, f"no single cluster {short!r}: {[c.name for c in self.clusters.values()]}"
        return matches[0]

    def create(self, type_: str, name: str, inputs: dict, provider: str) -> tuple[str, dict]:
        cluster = self.cluster_for(provider)
        if type_ == "kubernetes:helm.sh/v3:Release":
            release = inputs["name"]
            namespace = inputs.get("namespace") or "default"
            self.install_crds(cluster, release, namespace, inputs["chart"], unwrap(inputs.get("values") or {}))
            if inputs["chart"] == "linkerd-control-plane" and fake_crds.missing_for_linkerd(cluster.objects):
                missing = ", ".join(fake_crds.missing_for_linkerd(cluster.objects))
                raise Exception(f"release {release} failed, and has been uninstalled due to atomic being set: timed out waiting for the condition (linkerd-destination: the policy controller cannot watch {missing} at v1)")
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
        if kind.endswith("Patch") and (kind.removesuffix("Patch"), namespace, object_name) not in cluster.objects:
            raise Exception(f'{kind.removesuffix("Patch").lower()}s "{object_name}" not found in namespace {namespace} of {cluster.name}')
        metadata.setdefault("name", object_name)
        metadata.update(uid=f"uid-{cluster.name}-{kind}-{object_name}", resourceVersion="1")
        cluster.objects[(kind, namespace, object_name)] = {**inputs, "metadata": metadata}
        return (f"{namespace}/{object_name}" if namespace else object_name), {**inputs, "metadata": metadata}

    @staticmethod
    def install_crds(cluster: FakeCluster, release: str, namespace: str, chart: str, values: dict) -> None:
        """The CRDs the chart renders, created with the release's ownership, or Helm's refusal
        when one exists without it (nothing is created then: the release is atomic)."""
        rendered = fake_crds.rendered_crds(chart, values)
        for name in rendered:
            existing = cluster.objects.get((fake_crds.CRD, "", name))
            conflict = existing and fake_crds.ownership_conflict(existing, release, namespace)
            if conflict:
                raise Exception(f"release {release} failed, and has been uninstalled due to atomic being set: {conflict}")
        for name, versions in rendered.items():
            cluster.objects[(fake_crds.CRD, "", name)] = {"metadata": {"name": name, **fake_crds.helm_ownership(release, namespace)}, "versions": list(versions)}

    @contextmanager
    def serve(self, cluster: FakeCluster) -> Iterator[FakeKubeAPI]:
        """A fake API server holding what `cluster` has produced by now."""
        with FakeKubeAPI(cluster.name) as api:
            if cluster.has_gateway():
                api.put(
                    core_path(MULTICLUSTER_NAMESPACE, "services", GATEWAY_SERVICE),
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": GATEWAY_SERVICE, "namespace": MULTICLUSTER_NAMESPACE},
                        "spec": {"type": "LoadBalancer", "ports": [{"name": "mc-gateway", "port": 4143}, {"name": "mc-probe", "port": 4191}]},
                        "status": {"loadBalancer": {"ingress": [{"ip": cluster.gateway_ip, "ipMode": "VIP"}]}},
                    },
                )
            if "linkerd-multicluster" in cluster.releases():
                # The chart creates the Secret empty; Kubernetes' token controller fills it later.
                late = cluster.short in self.token_missing_in
                api.put_secret(MULTICLUSTER_NAMESPACE, REMOTE_ACCESS_TOKEN_SECRET, {} if late else {"token": cluster.remote_access_token}, type="kubernetes.io/service-account-token")
            for (namespace, name), mirror in self.mirrors_in(cluster).items():
                api.put_service(namespace, name, cluster_ip=mirror["clusterIP"], ports=(("http", 80),))
                api.put_endpoints(namespace, name, mirror["endpoints"], port=4143)
            yield api

    @staticmethod
    def remote_discovery_clusters(cluster: FakeCluster) -> dict[str, str]:
        """What the destination controller makes of each remote-discovery credentials Secret (in
        `linkerd`, labelled with a cluster name): "loaded", or why it rejected it
        (controller/api/destination/watcher/cluster_store.go: both annotations are required)."""
        loaded = {}
        for (kind, namespace, _), secret in cluster.objects.items():
            metadata = unwrap(secret.get("metadata") or {})
            target = (metadata.get("labels") or {}).get("multicluster.linkerd.io/cluster-name")
            if kind != "Secret" or namespace != "linkerd" or not target:
                continue
            annotations = metadata.get("annotations") or {}
            missing = [key for key in ("multicluster.linkerd.io/cluster-domain", "multicluster.linkerd.io/trust-domain") if key not in annotations]
            loaded[target] = f'missing "{missing[0]}" annotation' if missing else "loaded"
        return loaded

    def mirrors_in(self, source: FakeCluster) -> dict[tuple[str, str], dict]:
        """What Linkerd's service-mirror controller would have created in `source`.

        A mirror `<service>-<target>` exists when: a Link `<target>` in `source` points at the
        target's real, reachable gateway address; its credentials Secret carries the target's
        remote-access token; the target has the service labelled exported=true; and the
        namespace exists in `source`. Its endpoints are the target gateway's address.
        """
        mirrors = {}
        for (kind, namespace, _), link in source.objects.items():
            if kind != "Link":
                continue
            spec = unwrap(link["spec"])
            target = self.cluster_named(spec["targetClusterName"])
            credentials = source.objects.get(("Secret", namespace, spec["clusterCredentialsSecret"]))
            if spec["gatewayAddress"] != target.gateway_ip or target.short in self.unreachable_gateways or credentials is None:
                continue
            kubeconfig = yaml.safe_load(base64.b64decode(unwrap(credentials["data"])["kubeconfig"]))
            if kubeconfig["users"][0]["user"]["token"] != target.remote_access_token:
                continue  # the controller would get Unauthorized from the target
            for (target_kind, service_namespace, service), obj in target.objects.items():
                labels = unwrap(obj.get("metadata") or {}).get("labels") or {}
                exported = target_kind in ("Service", "ServicePatch") and labels.get(EXPORTED_LABEL) == "true"
                if exported and ("Namespace", "", service_namespace) in source.objects:
                    mirrors[(service_namespace, mirror_name(service, spec["targetClusterName"]))] = {
                        "clusterIP": f"10.245.0.{len(mirrors) + 100}",
                        "endpoints": [target.gateway_ip],
                    }
        return mirrors

