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
Secret once the `linkerd-multicluster` release exists, and what the multicluster chart and
Linkerd's service-mirror controllers make for each Link (tests/fake_service_mirror.py). It
persists across runs of the program on the same fakes, deletions included.
"""

from __future__ import annotations

import base64
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pulumi
import yaml

from components.names import EXPORTED_LABEL, GATEWAY_SERVICE, MULTICLUSTER_NAMESPACE, REMOTE_ACCESS_TOKEN_SECRET
from tests import fake_crds
from tests.fake_digitalocean import FakeDigitalOcean
from tests.fake_kube_api import FakeKubeAPI, core_path
from tests.fake_service_mirror import mirror_link, render_probe_services
from tests.harness import unwrap


@dataclass
class FakeCluster:
    name: str  # the DOKS name, `<stack>-<short>`
    short: str  # the mesh's name for it
    endpoint: str
    gateway_ip: str
    remote_access_token: str
    # (kind, namespace, name) -> the object's inputs, for everything the program created here.
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    # API path -> object, for what the cluster's charts and controllers made (see `serve`).
    produced: dict[str, dict] = field(default_factory=dict)

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

    def delete(self, type_: str, state: dict, provider: str) -> None:
        """The provider deletes the object it created (a Helm release: uninstalls it)."""
        cluster = self.cluster_for(provider)
        if type_ == "kubernetes:helm.sh/v3:Release":
            cluster.objects.pop(("Release", state.get("namespace") or "default", state["name"]))
            return
        metadata = unwrap(state.get("metadata") or {})
        kind = type_.split(":")[-1]
        cluster.objects.pop((kind, metadata.get("namespace", "" if kind == "Namespace" else "default"), metadata["name"]))

    @contextmanager
    def serve(self, cluster: FakeCluster) -> Iterator[FakeKubeAPI]:
        """A fake API server holding what `cluster` has produced by now; what is deleted through
        it stays deleted."""
        with FakeKubeAPI(cluster.name) as api:
            api.objects.update(cluster.produced)
            self._produce(cluster, api)
            try:
                yield api
            finally:
                cluster.produced = dict(api.objects)

    def produced(self, cluster: FakeCluster) -> dict[str, dict]:
        """Everything `cluster`'s charts and controllers have made by now, by API path."""
        with self.serve(cluster) as api:
            return dict(api.objects)

    def _produce(self, cluster: FakeCluster, api: FakeKubeAPI) -> None:
        gateway_path = core_path(MULTICLUSTER_NAMESPACE, "services", GATEWAY_SERVICE)
        api.delete(gateway_path)  # Helm removes it once the gateway is disabled
        if cluster.has_gateway():
            api.put(
                gateway_path,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": GATEWAY_SERVICE, "namespace": MULTICLUSTER_NAMESPACE},
                    "spec": {"type": "LoadBalancer", "ports": [{"name": "mc-gateway", "port": 4143}, {"name": "mc-probe", "port": 4191}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": cluster.gateway_ip, "ipMode": "VIP"}]}},
                },
            )
        multicluster = cluster.releases().get("linkerd-multicluster")
        if not multicluster:
            return
        # The chart creates the Secret empty; Kubernetes' token controller fills it later.
        late = cluster.short in self.token_missing_in
        api.put_secret(MULTICLUSTER_NAMESPACE, REMOTE_ACCESS_TOKEN_SECRET, {} if late else {"token": cluster.remote_access_token}, type="kubernetes.io/service-account-token")
        # The chart runs one controller per `controllers` entry, for the Link of that name.
        controllers = [controller["link"]["ref"]["name"] for controller in unwrap(multicluster.get("values") or {}).get("controllers") or []]
        render_probe_services(api, controllers)
        for (kind, namespace, name), link in cluster.objects.items():
            if kind == "Link" and name in controllers:
                self._run_service_mirror(cluster, unwrap(link["spec"]), namespace, api)

    def _run_service_mirror(self, source: FakeCluster, spec: dict, namespace: str, api: FakeKubeAPI) -> None:
        """The controller of one Link in `source`: it mirrors what the target exports, through the
        target's gateway, if its credentials Secret carries the target's remote-access token."""
        target = self.cluster_named(spec["targetClusterName"])
        credentials = source.objects.get(("Secret", namespace, spec["clusterCredentialsSecret"]))
        if credentials is None:
            return
        kubeconfig = yaml.safe_load(base64.b64decode(unwrap(credentials["data"])["kubeconfig"]))
        if kubeconfig["users"][0]["user"]["token"] != target.remote_access_token:
            return  # the controller would get Unauthorized from the target
        exported = {}
        for (target_kind, service_namespace, service), obj in target.objects.items():
            labels = unwrap(obj.get("metadata") or {}).get("labels") or {}
            if target_kind in ("Service", "ServicePatch") and labels.get(EXPORTED_LABEL) == "true":
                exported[(service_namespace, service)] = labels
        reachable = spec["gatewayAddress"] == target.gateway_ip and target.short not in self.unreachable_gateways
        mirror_link(api, target.short, spec["gatewayAddress"], reachable, exported, lambda ns: ("Namespace", "", ns) in source.objects)
