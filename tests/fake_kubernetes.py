"""A Kubernetes fake: one simulated cluster per DOKS cluster, and per cluster given by a kubeconfig
(`kubeconfig_cluster`: a cluster of its own behind a fake API server, k3d-like or not), reached
through a kubeconfig.

Like the real provider, a resource's provider decides which cluster it lands in: the fake
parses the provider's kubeconfig, finds the DOKS cluster by its endpoint, refuses a kubeconfig
whose CA is not that cluster's, and authenticates as client-go does: it runs the kubeconfig's
exec plugin (doctl, the fake one on PATH) and the cluster accepts only the token DigitalOcean
issues for it. Helm releases come back with the status the provider reports; a ServicePatch (the
export of an earlier version of the program) is a server-side apply of its labels onto the
Service, and fails as the API server does when the Service does not exist (its apply would create
a Service without ports). A provider given a
kubeconfig file's path and a context reads the file as pulumi-kubernetes does
(provider/pkg/provider/util.go, parseKubeconfigString: a path that exists is read) and
authenticates with that context's user: a token, a token file or an exec plugin. A fresh cluster
holds the Gateway API CRDs DOKS installs, a release creates the CRDs its chart renders or fails as Helm
does over objects it does not own, and the control plane fails without the CRDs Linkerd needs
(tests/fake_crds.py). Each install or upgrade of a release renders its chart at the time of the
fake clock, leaving what verify reads back: the identity's trust roots and issuer, and the webhook
and APIService certificates the charts generate, valid 365 days (tests/fake_charts.py).

What the cluster itself produces is served to the program's dynamic resources by a fake API
server (`serve`): the gateway Service with its load balancer address, one remote-access token
Secret per name in the multicluster release's remoteMirrorServiceAccountName, each link's
controller Deployment, the Secrets written into the cluster, and what the multicluster chart and
Linkerd's service-mirror controllers make for each Link (tests/fake_service_mirror.py). What the
program writes there is kept in the cluster and drives the simulated controllers that read it;
it all persists across runs of the program on the same fakes, deletions included. The Services
in the cluster (the demo's, and those that exist before the program) are served there too, and
what is written to them through it (the export label) stays on them.
"""

from __future__ import annotations

import base64
import os
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional
from urllib.parse import urlsplit

import pulumi
import yaml

from components.kube_client import CredentialPluginError, exec_credential, exec_credential_token
from components.kubeconfigs import context_cluster, load_context, select_context
from components.names import EXPORTED_LABEL, GATEWAY_SERVICE, LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE, link_controller, mirror_name
from tests import fake_charts, fake_crds
from tests.fake_account import is_cluster_token
from tests.fake_clock import FakeClock
from tests.fake_digitalocean import FakeDigitalOcean
from tests.fake_kube_api import FakeKubeAPI, apply_labels, core_path
from tests.fake_service_mirror import mirror_link, render_probe_services
from tests.harness import unwrap

# The chart's defaults (linkerd-multicluster values.yaml): one shared account unless told otherwise.
DEFAULT_REMOTE_ACCESS_ACCOUNT = "linkerd-service-mirror-remote-access-default"
CREDENTIALS_SECRET_TYPE = "mirror.linkerd.io/remote-kubeconfig"
CLUSTER_NAME_LABEL = "multicluster.linkerd.io/cluster-name"
# The destination controller loads a remote-discovery Secret only with both (cluster_store.go, addCluster).
DISCOVERY_ANNOTATIONS = ("multicluster.linkerd.io/cluster-domain", "multicluster.linkerd.io/trust-domain")


def preexisting_object(kind: str, namespace: str, name: str, labels: dict) -> dict:
    """An object made before the program ran (by a user); a Service has the ports it must have."""
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": dict(labels), "uid": f"uid-user-{namespace}-{name}"}}
    if kind == "Service":
        obj["spec"] = {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}], "selector": dict(labels)}
    return obj


def invalid_source_ranges(chart: str, values: dict) -> Optional[str]:
    """The API server's refusal of the gateway Service the multicluster chart renders with these
    ranges (templates/gateway.yaml): every entry must parse as a CIDR (kubernetes
    pkg/apis/core/validation ValidateService, GetLoadBalancerSourceRanges: ParseCIDRSloppy, which
    needs the "/")."""
    ranges = (values.get("gateway") or {}).get("loadBalancerSourceRanges") or [] if chart == "linkerd-multicluster" else []
    if all("/" in entry for entry in ranges):
        return None
    shown = "[" + " ".join(ranges) + "]"
    return f'Service "linkerd-gateway" is invalid: spec.LoadBalancerSourceRanges: Invalid value: "{shown}": must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24'


@dataclass
class FakeCluster:
    name: str  # the DOKS name, `<stack>-<short>`; for a cluster given by a kubeconfig, the mesh's name
    short: str  # the mesh's name for it
    endpoint: str
    cluster_id: str
    ca_pem: str
    gateway_ip: str
    # (kind, namespace, name) -> the object, for everything the program created here.
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    # API path -> object, for what the cluster's charts and controllers made (see `serve`).
    produced: dict[str, dict] = field(default_factory=dict)
    # Bumped by tests: every remote-access token is issued anew (its Secret re-created).
    token_generation: int = 0
    # Link name -> the credentials kubeconfig its service mirror loaded (None: it found none).
    mirror_credentials: dict[str, Optional[str]] = field(default_factory=dict)
    # Linked cluster -> the credentials kubeconfig the destination controller loaded.
    discovery_credentials: dict[str, str] = field(default_factory=dict)
    # Link name -> the pod-template annotations of its controller Deployment, and its restarts.
    controller_annotations: dict[str, dict] = field(default_factory=dict)
    controller_restarts: dict[str, int] = field(default_factory=dict)
    # Release -> what its last render made that is read back (tests/fake_charts.py), by API path.
    rendered: dict[str, dict[str, dict]] = field(default_factory=dict)
    # API paths deleted through the fake API server (by the program's dynamic resources), in order.
    deleted: list[str] = field(default_factory=list)
    # (address, port) other than the load balancer's at which the gateway is reachable from the
    # other clusters (a NAT or port mapping in front of it), set by tests.
    extra_gateway_endpoints: set[tuple[str, str]] = field(default_factory=set)
    # The API server URLs the other clusters reach with a certificate valid for them; None: the
    # endpoint (a DOKS cluster's public one). A local cluster's kubeconfig server is not among them.
    network_api_servers: Optional[set[str]] = None
    # The bearer token its API server takes from the program, for a cluster given by a kubeconfig
    # (None: a DOKS cluster, which takes the exec credential DigitalOcean issues for it).
    admin_token: Optional[str] = None

    def gateway_endpoints(self) -> set[tuple[str, str]]:
        """Where the other clusters reach the gateway: its load balancer address on the gateway port."""
        return {(self.gateway_ip, "4143")} | self.extra_gateway_endpoints

    def api_servers_for_links(self) -> set[str]:
        return {self.endpoint} if self.network_api_servers is None else self.network_api_servers

    def releases(self) -> dict[str, dict]:
        return {name: obj for (kind, _, name), obj in self.objects.items() if kind == "Release"}

    def multicluster_values(self) -> dict:
        release = self.releases().get("linkerd-multicluster")
        return unwrap(release.get("values") or {}) if release else {}

    def remote_access_accounts(self) -> list[str]:
        """The accounts the multicluster chart creates (remote-access-service-mirror-rbac.yaml)."""
        if "linkerd-multicluster" not in self.releases():
            return []
        values = self.multicluster_values()
        if not values.get("remoteMirrorServiceAccount", True):
            return []
        names = values.get("remoteMirrorServiceAccountName", DEFAULT_REMOTE_ACCESS_ACCOUNT)
        return list(names) if isinstance(names, list) else names.split(",")

    def remote_access_token(self, account: str) -> str:
        return f"eyJhbGciOiJSUzI1NiJ9.{self.cluster_id}.{account}.{self.token_generation}"

    def accepts(self, token: str) -> bool:
        """A service-account token works while its account exists: the token controller deletes
        the token Secret of a deleted account (kubernetes pkg/controller/serviceaccount/
        tokens_controller.go) and the API server checks both before it accepts a legacy token
        (pkg/serviceaccount/legacy.go, --service-account-lookup, on by default)."""
        return token in {self.remote_access_token(account) for account in self.remote_access_accounts()}

    def credentials_secret(self, name: str) -> Optional[str]:
        secret = self.objects.get(("Secret", MULTICLUSTER_NAMESPACE, name))
        data = (secret or {}).get("data") or {}
        return base64.b64decode(data["kubeconfig"]).decode() if "kubeconfig" in data else None

    def has_gateway(self) -> bool:
        return "linkerd-multicluster" in self.releases() and (self.multicluster_values().get("gateway") or {}).get("enabled", True)


class FakeKubernetes:
    def __init__(self, digitalocean: FakeDigitalOcean, clock: Optional[FakeClock] = None):
        self.digitalocean = digitalocean
        self.clock = clock or FakeClock()  # when a release renders
        self.providers: dict[str, dict] = {}  # provider name (unique in a stack) -> inputs
        self.clusters: dict[str, FakeCluster] = {}  # endpoint -> cluster
        # Tests set these: clusters (by short name) whose token controller is late, whose
        # gateway the linking clusters cannot reach, and objects that exist before the program.
        self.token_missing_in: set[str] = set()
        self.unreachable_gateways: set[str] = set()
        self.preexisting: dict[str, list[tuple[str, str, str, dict]]] = {}
        # And per cluster: where else its gateway is reachable (a NAT or port forward in front of
        # the load balancer), and the API server URLs the other clusters reach (default: its endpoint).
        self.gateway_forwards: dict[str, set[tuple[str, str]]] = {}
        self.network_api_servers: dict[str, set[str]] = {}
        # Clusters given by a kubeconfig (not DOKS), by API server URL.
        self.given: dict[str, FakeCluster] = {}

    @contextmanager
    def kubeconfig_cluster(self, name: str, admin_token: str, gateway_api_crds: bool = True, k3d_node_ip: Optional[str] = None, k3s_gateway_api: bool = False) -> Iterator[FakeCluster]:
        """A running cluster that no DigitalOcean account knows, answering at its own address (a
        fake API server that stays up while the test uses it) to `admin_token`, with a kube-system
        namespace whose uid identifies it. With `gateway_api_crds` its owner installed the Gateway
        API CRDs (as GKE and EKS offer), under an owner that is not this program's Helm. With
        `k3d_node_ip`, a k3d cluster (`k3d_cluster`) whose server node has that address on the docker
        network: its kubeconfig names the server on 0.0.0.0, which only this machine reaches (the
        fake speaks plain HTTP there); its Gateway API CRDs are k3s' (`k3s_gateway_api`) or none,
        whatever `gateway_api_crds` says."""
        uid = f"kube-system-uid-{name}"
        with FakeKubeAPI(name, token=admin_token) as front_door:
            front_door.put(f"/api/v1/namespaces/kube-system", {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "kube-system", "uid": uid}})
            if k3d_node_ip:
                cluster = k3d_cluster(name, k3d_node_ip, f"http://0.0.0.0:{urlsplit(front_door.url).port}", uid, admin_token, k3s_gateway_api)
            else:
                cluster = FakeCluster(
                    name=name,
                    short=name,
                    endpoint=front_door.url,
                    cluster_id=uid,
                    ca_pem="",  # plain HTTP: no CA to check (the fake API server speaks no TLS)
                    gateway_ip=f"198.51.100.{zlib.crc32(name.encode()) % 250 + 1}",
                    admin_token=admin_token,
                )
                if gateway_api_crds:
                    for crd, obj in fake_crds.owner_gateway_crds().items():
                        cluster.objects[(fake_crds.CRD, "", crd)] = obj
            self._add_preexisting(cluster)
            self.given[cluster.endpoint] = cluster
            try:
                yield cluster
            finally:
                del self.given[cluster.endpoint]

    def _add_preexisting(self, cluster: FakeCluster) -> None:
        for kind, namespace, name, labels in self.preexisting.get(cluster.short, []):
            cluster.objects[(kind, namespace, name)] = preexisting_object(kind, namespace, name, labels)

    def cluster_for_context(self, path_or_contents: str, context: str) -> FakeCluster:
        """The given cluster a kubeconfig's context points at, checked as TLS would check it."""
        server, ca = context_cluster(self.provider_context(path_or_contents, context))
        cluster = self.given.get(server)
        if cluster is None:
            raise AssertionError(f"context {context!r} points at {server}, where no cluster given by a kubeconfig answers")
        if (base64.b64decode(ca).decode() if ca else "") != cluster.ca_pem:
            raise AssertionError(f"context {context!r} does not carry the CA of {server}: TLS to the API server would fail")
        return cluster

    @staticmethod
    def provider_context(path_or_contents: str, context: str) -> dict:
        """pulumi-kubernetes' `kubeconfig` is a path when such a file exists, its contents otherwise
        (provider/pkg/provider/util.go, parseKubeconfigString)."""
        if os.path.isfile(path_or_contents):
            return load_context(path_or_contents, context)
        return select_context(yaml.safe_load(path_or_contents), context, "the provider's kubeconfig")

    def register_provider(self, name: str, inputs: dict) -> dict:
        self.providers[name] = inputs
        return inputs

    def cluster_for_kubeconfig(self, kubeconfig_text: str) -> FakeCluster:
        kubeconfig = yaml.safe_load(kubeconfig_text)
        server = kubeconfig["clusters"][0]["cluster"]["server"]
        local = self.given.get(server)
        if local is not None:
            user = kubeconfig["users"][0]["user"]
            if base64.b64decode(kubeconfig["clusters"][0]["cluster"].get("certificate-authority-data", "")).decode() != local.ca_pem:
                raise AssertionError(f"kubeconfig for {server} carries the wrong CA: TLS to the API server would fail")
            if user.get("token") != local.admin_token:
                raise Exception(f"Unauthorized: the API server of {local.name} refused the kubeconfig's credentials")
            return local
        known = self.digitalocean.clusters.get(server)
        if known is None:
            raise AssertionError(f"kubeconfig points at {server}, which is no DOKS cluster")
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        if ca != known["ca"]:
            raise AssertionError(f"kubeconfig for {server} carries the wrong CA: TLS to the API server would fail")
        plugin = kubeconfig["users"][0]["user"].get("exec") or {}
        if plugin.get("command") != "doctl" or plugin.get("args", [])[-1:] != [known["id"]] or set(kubeconfig["users"][0]["user"]) != {"exec"}:
            raise AssertionError(f"kubeconfig for {server} does not get its credentials from `doctl ... exec-credential {known['id']}` alone")
        if server not in self.clusters:
            cluster = FakeCluster(
                name=known["name"],
                short=kubeconfig["current-context"],  # the mesh names its kubeconfigs' contexts after its clusters
                endpoint=server,
                cluster_id=known["id"],
                ca_pem=known["ca"],
                # Stable per cluster, whatever order the program happens to reach them in.
                gateway_ip=f"203.0.113.{zlib.crc32(known['name'].encode()) % 250 + 1}",
            )
            # A fresh DOKS cluster already holds what DOKS installs (the Gateway API CRDs).
            record = known["record"]
            for crd, obj in fake_crds.doks_gateway_crds(record.version, record.vpc_native).items():
                cluster.objects[(fake_crds.CRD, "", crd)] = obj
            cluster.extra_gateway_endpoints = set(self.gateway_forwards.get(cluster.short, ()))
            if cluster.short in self.network_api_servers:
                cluster.network_api_servers = set(self.network_api_servers[cluster.short])
            self._add_preexisting(cluster)
            self.clusters[server] = cluster
        return self.clusters[server]

    def cluster_for(self, provider_ref: str) -> FakeCluster:
        # A provider reference is "<urn>::<id>" and a URN ends with "::<name>".
        name = provider_ref.rsplit("::", 1)[0].rsplit("::", 1)[-1] if provider_ref else ""
        inputs = self.providers.get(name)
        if inputs is None:
            raise AssertionError(f"resource uses no registered kubernetes provider ({provider_ref!r}): it would land in the ambient cluster")
        kubeconfig, context = unwrap(inputs["kubeconfig"]), unwrap(inputs.get("context"))
        if context:
            cluster = self.cluster_for_context(kubeconfig, context)
            user = self.provider_context(kubeconfig, context)["users"][0]["user"]
        else:
            cluster = self.cluster_for_kubeconfig(kubeconfig)
            user = yaml.safe_load(kubeconfig)["users"][0]["user"]
        if cluster.admin_token is not None:
            # A cluster of its own: the context's credentials, a token, a token file or an exec
            # plugin's, run as client-go runs it (client-go plugin/pkg/client/auth/exec/exec.go).
            if "exec" in user:
                try:
                    user = exec_credential(cluster.short, user["exec"])
                except CredentialPluginError as error:
                    raise Exception(f"getting credentials: exec: executable {user['exec']['command']} failed: {error}") from None
            if "tokenFile" in user:
                with open(user["tokenFile"], encoding="utf-8") as handle:
                    user = {"token": handle.read().strip()}
            if user.get("token") != cluster.admin_token:
                raise Exception(f"Unauthorized: the API server of {cluster.name} refused the credentials")
            return cluster
        # A DOKS cluster: client-go runs the exec plugin with the provider's environment and sends
        # its token, cached until it expires (client-go plugin/pkg/client/auth/exec/exec.go).
        try:
            token = exec_credential_token(cluster.short, user["exec"])
        except CredentialPluginError as error:
            raise Exception(f"getting credentials: exec: executable doctl failed: {error}") from None
        if not is_cluster_token(cluster.cluster_id, token):
            raise Exception(f"Unauthorized: the API server of {cluster.name} refused the token")
        return cluster

    def cluster_named(self, short: str) -> FakeCluster:
        """The simulated cluster the mesh calls `short`."""
        matches = [c for c in [*self.clusters.values(), *self.given.values()] if c.short == short]
        assert len(matches) == 1, f"no single cluster {short!r}: {[c.name for c in [*self.clusters.values(), *self.given.values()]]}"
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
            invalid = invalid_source_ranges(inputs["chart"], unwrap(inputs.get("values") or {}))
            if invalid:
                raise Exception(f"release {release} failed, and has been uninstalled due to atomic being set: {invalid}")
            cluster.objects[("Release", namespace, release)] = inputs
            # Every install and upgrade renders the chart anew (and makes new certificates).
            cluster.rendered[release] = fake_charts.render(inputs["chart"], unwrap(inputs.get("values") or {}), self.clock.now())
            if inputs.get("createNamespace") and ("Namespace", "", namespace) not in cluster.objects:
                # `--create-namespace` makes it outside the release (helm pkg/action/install.go):
                # no uninstall removes it.
                cluster.objects[("Namespace", "", namespace)] = {"metadata": {"name": namespace}}
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
        if kind == "ServicePatch":
            self._apply_service_patch(cluster, namespace, object_name, unwrap(metadata.get("labels") or {}))
            return f"{namespace}/{object_name}", inputs
        existing = cluster.objects.get((kind, namespace, object_name))
        if existing is not None and not str((existing.get("metadata") or {}).get("uid", "")).startswith(f"uid-{cluster.name}-"):
            # An object no resource of the program made (a user's, Helm's): the provider's create
            # fails rather than take it over (pulumi-kubernetes provider/pkg/await/await.go, IsAlreadyExists).
            raise Exception(f'{kind.lower()}s "{object_name}" already exists in {cluster.name}\n\nThe resource already exists in the cluster.')
        metadata.setdefault("name", object_name)
        metadata.update(uid=f"uid-{cluster.name}-{kind}-{object_name}", resourceVersion="1")
        if kind == "Link":
            self._link_changed(cluster, cluster.objects.get((kind, namespace, object_name)), inputs)
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

    def delete(self, type_: str, state: dict, provider: str) -> None:
        """The provider deletes the object it created (a Helm release: uninstalls it)."""
        cluster = self.cluster_for(provider)
        if type_ == "kubernetes:helm.sh/v3:Release":
            cluster.objects.pop(("Release", state.get("namespace") or "default", state["name"]))
            for path in cluster.rendered.pop(state["name"], {}):
                cluster.produced.pop(path, None)
            for crd in fake_crds.removed_on_uninstall(cluster.objects, state["name"]):
                del cluster.objects[(fake_crds.CRD, "", crd)]
            return
        metadata = unwrap(state.get("metadata") or {})
        kind = type_.split(":")[-1]
        if kind == "ServicePatch":
            # A patch's delete applies it again with nothing in it (pulumi-kubernetes provider/pkg/ssa/
            # actions.go, Relinquish): its labels go unless another field manager owns them too.
            self._apply_service_patch(cluster, metadata["namespace"], metadata["name"], {})
            return
        cluster.objects.pop((kind, metadata.get("namespace", "" if kind == "Namespace" else "default"), metadata["name"]))

    @staticmethod
    def _apply_service_patch(cluster: FakeCluster, namespace: str, name: str, labels: dict) -> None:
        """A ServicePatch's server-side apply (pulumi-kubernetes provider/pkg/await/await.go, Creation:
        an apply under the patch's own field manager). An apply of a missing object creates it, and
        a Service without ports is invalid (pkg/apis/core/validation ValidateService)."""
        service = cluster.objects.get(("Service", namespace, name))
        if service is None:
            raise Exception(f'Service "{name}" is invalid: spec.ports: Required value (server-side apply of {namespace}/{name} in {cluster.name} creates it)')
        cluster.objects[("Service", namespace, name)] = apply_labels(unwrap(service), f"pulumi-kubernetes-{namespace}-{name}", labels)

    @staticmethod
    def _link_changed(cluster: FakeCluster, old: Optional[dict], new: dict) -> None:
        """The service mirror loads a Link's credentials when the Link is added or its spec
        changes, and ignores any other update (multicluster/service-mirror/link_handlers.go).
        Stricter than upstream: credentials missing at that moment are never retried here."""
        spec = unwrap(new["spec"])
        if old is None or unwrap(old["spec"]) != spec:
            cluster.mirror_credentials[spec["targetClusterName"]] = cluster.credentials_secret(spec["clusterCredentialsSecret"])

    @contextmanager
    def serve(self, cluster: FakeCluster) -> Iterator[FakeKubeAPI]:
        """A fake API server holding what `cluster` has produced by now; what is written to it
        (or deleted through it) stays so in the cluster."""
        with FakeKubeAPI(cluster.name, token=cluster.admin_token, doks_cluster_id=None if cluster.admin_token else cluster.cluster_id) as api:
            api.objects.update(cluster.produced)
            for path in [path for path in api.objects if path.startswith(fake_crds.CRD_API)]:
                api.delete(path)  # served from the cluster's objects below, which releases change
            services = set()  # paths of the cluster's own Services: kept in `objects`, not `produced`
            for rendered in cluster.rendered.values():
                api.objects.update(rendered)
            for (kind, namespace, name), obj in cluster.objects.items():
                if kind in ("Secret", "Service"):
                    path = core_path(namespace, f"{kind.lower()}s", name)
                    api.put(path, unwrap(obj))
                    if kind == "Service":
                        services.add(path)
                elif kind == fake_crds.CRD:
                    api.put(fake_crds.crd_path(name), fake_crds.served(obj))
            self._produce(cluster, api)
            try:
                yield api
            finally:
                for method, path, obj in api.writes:
                    self._written(cluster, method, path, obj)
                cluster.produced = {path: obj for path, obj in api.objects.items() if path not in services}

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
        # The chart creates each token Secret empty; Kubernetes' token controller fills it later.
        # Helm deletes the Secret of an account the chart no longer renders
        # (remote-access-service-mirror-rbac.yaml renders one per remoteMirrorServiceAccountName).
        accounts = cluster.remote_access_accounts()
        for path, obj in list(api.objects.items()):
            if obj.get("type") == "kubernetes.io/service-account-token" and obj["metadata"]["name"].removesuffix("-token") not in accounts:
                api.delete(path)
        late = cluster.short in self.token_missing_in
        for account in accounts:
            token = {} if late else {"token": cluster.remote_access_token(account)}
            api.put_secret(MULTICLUSTER_NAMESPACE, f"{account}-token", token, type="kubernetes.io/service-account-token")
        # The chart runs one controller per `controllers` entry, for the Link of that name.
        controllers = self._controllers(cluster)
        for path, obj in list(api.objects.items()):
            # Helm deletes the Deployment of a controller the chart no longer renders.
            name = obj["metadata"]["name"]
            if obj["kind"] == "Deployment" and name.startswith("controller-") and name.removeprefix("controller-") not in controllers:
                api.delete(path)
        for target in controllers:
            deployment = api.put_deployment(MULTICLUSTER_NAMESPACE, link_controller(target))
            deployment["spec"]["template"]["metadata"]["annotations"] = dict(cluster.controller_annotations.get(target, {}))
        render_probe_services(api, controllers)
        for spec, target in self._working_links(cluster):
            reachable = self._reachable(spec, target)
            mirror_link(api, target.short, spec["gatewayAddress"], int(spec["gatewayPort"]), reachable, self._exported(target), lambda ns: ("Namespace", "", ns) in cluster.objects)

    @staticmethod
    def _written(cluster: FakeCluster, method: str, path: str, obj: Optional[dict]) -> None:
        """What the cluster's own controllers do with a write to its API."""
        if method == "DELETE":
            cluster.deleted.append(path)
        segments = path.strip("/").split("/")
        namespace, plural, name = segments[-3], segments[-2], segments[-1]
        if plural == "services" and ("Service", namespace, name) in cluster.objects:
            # A label written on one of the cluster's Services (the export label) stays on it.
            if obj is None:
                del cluster.objects[("Service", namespace, name)]
            else:
                cluster.objects[("Service", namespace, name)] = obj
        elif plural == "secrets":
            old = cluster.objects.pop(("Secret", namespace, name), None)
            if obj is not None:
                cluster.objects[("Secret", namespace, name)] = obj
            metadata = (obj or old or {}).get("metadata") or {}
            linked = (metadata.get("labels") or {}).get(CLUSTER_NAME_LABEL)
            if namespace == LINKERD_NAMESPACE and linked:
                # The destination controller handles Add (of the mirror type, with both annotations)
                # and Delete of these Secrets, no Update (controller/api/destination/watcher/cluster_store.go).
                annotations = metadata.get("annotations") or {}
                if method == "POST" and obj.get("type") == CREDENTIALS_SECRET_TYPE and all(key in annotations for key in DISCOVERY_ANNOTATIONS):
                    cluster.discovery_credentials[linked] = base64.b64decode(obj["data"]["kubeconfig"]).decode()
                elif method == "DELETE":
                    cluster.discovery_credentials.pop(linked, None)
        elif plural == "deployments" and namespace == MULTICLUSTER_NAMESPACE and name.startswith("controller-") and obj is not None:
            target = name.removeprefix("controller-")
            annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
            if annotations != cluster.controller_annotations.get(target, {}):
                # A new pod template rolls the Deployment; the new service mirror loads the Link's
                # credentials at start (multicluster/cmd/service-mirror/main.go).
                cluster.controller_annotations[target] = dict(annotations)
                cluster.controller_restarts[target] = cluster.controller_restarts.get(target, 0) + 1
                link = cluster.objects.get(("Link", MULTICLUSTER_NAMESPACE, target))
                if link is not None:
                    cluster.mirror_credentials[target] = cluster.credentials_secret(unwrap(link["spec"])["clusterCredentialsSecret"])

    @staticmethod
    def _controllers(cluster: FakeCluster) -> list[str]:
        return [controller["link"]["ref"]["name"] for controller in cluster.multicluster_values().get("controllers") or []]

    def _working_links(self, source: FakeCluster) -> Iterator[tuple[dict, FakeCluster]]:
        """(spec, target) of each Link in `source` whose service mirror runs (the chart has its
        controller) and reaches the target: the credentials it loaded name the target's endpoint
        and CA, with a token the target accepts now."""
        controllers = self._controllers(source)
        for (kind, _, name), link in source.objects.items():
            if kind != "Link" or name not in controllers:
                continue
            spec = unwrap(link["spec"])
            target = self.cluster_named(spec["targetClusterName"])
            loaded = source.mirror_credentials.get(spec["targetClusterName"])
            if loaded is None:
                continue
            kubeconfig = yaml.safe_load(loaded)
            cluster = kubeconfig["clusters"][0]["cluster"]
            ca = cluster.get("certificate-authority-data")
            if cluster["server"] not in target.api_servers_for_links() or (base64.b64decode(ca).decode() if ca else "") != target.ca_pem:
                continue  # it would not reach the target's API server (or not trust it)
            if not target.accepts(kubeconfig["users"][0]["user"].get("token", "")):
                continue  # the controller would get Unauthorized from the target
            yield spec, target

    def _reachable(self, spec: dict, target: FakeCluster) -> bool:
        return (spec["gatewayAddress"], spec["gatewayPort"]) in target.gateway_endpoints() and target.short not in self.unreachable_gateways

    @staticmethod
    def _exported(target: FakeCluster) -> dict[tuple[str, str], dict]:
        """(namespace, service) -> labels of what `target` exports through its gateway."""
        exported = {}
        for (kind, namespace, service), obj in target.objects.items():
            labels = unwrap(obj.get("metadata") or {}).get("labels") or {}
            if kind == "Service" and labels.get(EXPORTED_LABEL) == "true":
                exported[(namespace, service)] = labels
        return exported

    def mirrors_in(self, source: FakeCluster) -> dict[tuple[str, str], list[str]]:
        """The mirrors a working service mirror in `source` keeps in sync now, with their ready
        endpoints: through a reachable gateway, in namespaces that exist in `source`."""
        mirrors = {}
        for spec, target in self._working_links(source):
            if not self._reachable(spec, target):
                continue
            for namespace, service in self._exported(target):
                if ("Namespace", "", namespace) in source.objects:
                    mirrors[(namespace, mirror_name(service, target.short))] = [spec["gatewayAddress"]]
        return mirrors


def k3d_cluster(short: str, node_ip: str, endpoint: str, cluster_id: str, admin_token: str, k3s_gateway_api: bool = False) -> FakeCluster:
    """A one-server k3d cluster on a docker network shared with the other clusters, as Linkerd's
    multicluster test makes them (bin/_test-helpers.sh at edge-26.6.3: `--network multicluster-test`):
    - no Gateway API CRDs at start; with `k3s_gateway_api`, those k3s 1.37+ installs through its
      bundled gateway-api-crd Helm chart (k3s-io/k3s#14564), owned by that release;
    - servicelb gives a LoadBalancer Service the InternalIP of each node running its svclb pod, the
      node's address on the docker network (k3s pkg/cloudprovider/servicelb.go, podIPs);
    - k3d's kubeconfig server is https://0.0.0.0:<host port> (`endpoint` here), which only the
      host reaches; the other clusters reach the API server at the server node's IP on port 6443,
      which k3s puts in its serving certificate (pkg/cli/server/server.go adds the node IPs to the
      SANs), as the test's `--api-server-address https://<control-plane node IP>:6443` does
      (test/integration/multicluster/install_test.go);
    - the kubeconfig authenticates with its own credentials (a client certificate in k3d; a
      bearer token here), no exec plugin. The fake speaks plain HTTP: no CA.
    """
    cluster = FakeCluster(
        name=short,
        short=short,
        endpoint=endpoint,
        cluster_id=cluster_id,
        ca_pem="",
        gateway_ip=node_ip,
        network_api_servers={f"https://{node_ip}:6443"},
        admin_token=admin_token,
    )
    if k3s_gateway_api:
        cluster.objects.update({(fake_crds.CRD, "", name): obj for name, obj in fake_crds.k3s_gateway_crds().items()})
    return cluster


def local_kubeconfig(cluster: FakeCluster) -> str:
    """The kubeconfig `k3d kubeconfig get` prints for `cluster` (credentials as a token here)."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": f"k3d-{cluster.short}", "cluster": {"server": cluster.endpoint}}],
            "users": [{"name": f"admin@k3d-{cluster.short}", "user": {"token": cluster.admin_token}}],
            "contexts": [{"name": f"k3d-{cluster.short}", "context": {"cluster": f"k3d-{cluster.short}", "user": f"admin@k3d-{cluster.short}"}}],
            "current-context": f"k3d-{cluster.short}",
        }
    )
