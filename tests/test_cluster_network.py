"""What differs where a cluster's network is not DOKS': a k3d-like cluster (no Gateway API CRDs,
servicelb addresses, a kubeconfig server only the host reaches) meshed with a DOKS cluster, and the
per-cluster gatewayAddress, gatewayPort and apiServerAddress of the stack config."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from typing import Iterator, Optional

import pulumi
import pulumi_kubernetes as kubernetes
import pytest

from components.config import ClusterSpec
from components.gateway_api import DOKS_MANAGED_VALUES, gateway_api_values
from components.link import ClusterLink, LinkArgs
from components.linkerd import Linkerd, LinkerdArgs
from components.multicluster import Multicluster, MulticlusterArgs
from components.names import EXPORTED_LABEL
from tests import fake_crds
from tests.fake_cloud import FakeCloud
from tests.fake_kubernetes import FakeCluster, local_kubeconfig
from tests.harness import PROJECT, run, run_main, stack_config, unwrap
from tests.program import lone_cluster, releases

# The server node of the k3d cluster `east` on the shared docker network.
EAST_NODE_IP = "172.18.0.3"
INSTALL_ALL = {"installGatewayAPI": True, "enableHttpRoutes": True, "enableTlsRoutes": True, "enableTcpRoutes": True}
LINK = "kubernetes:multicluster.linkerd.io/v1alpha3:Link"


@contextmanager
def k3d_east(fakes: FakeCloud, **options) -> Iterator[FakeCluster]:
    with fakes.kubernetes.kubeconfig_cluster("east", "k3d-admin-token-east", k3d_node_ip=EAST_NODE_IP, **options) as east:
        yield east


def local_linkerd(name: str, kubeconfig: str, linking_sources: list[str], gateway_api: Optional[dict] = None) -> Multicluster:
    """Linkerd and the multicluster extension (with a gateway) on a cluster given by its kubeconfig."""
    provider = kubernetes.Provider(f"kubernetes-{name}", kubeconfig=kubeconfig)
    values = gateway_api if gateway_api is not None else gateway_api_values(name, kubeconfig)
    pulumi.export("gatewayApi", values)
    linkerd = Linkerd(
        name,
        LinkerdArgs(provider=provider, chart_version="2026.6.3", high_availability=False, trust_anchor_pem="anchor", issuer_cert_pem="cert", issuer_key_pem="key", renewal_marker="renewal-period-1", gateway_api_values=values),
    )
    kubernetes.core.v1.Namespace(f"emojivoto-{name}", metadata={"name": "emojivoto"}, opts=pulumi.ResourceOptions(provider=provider))
    kubernetes.core.v1.Service(
        f"web-svc-{name}",
        metadata={"name": "web-svc", "namespace": "emojivoto", "labels": {EXPORTED_LABEL: "true"}},
        spec={"ports": [{"port": 80}]},
        opts=pulumi.ResourceOptions(provider=provider),
    )
    multicluster = Multicluster(
        name,
        MulticlusterArgs(
            provider=provider,
            chart_version="2026.6.3",
            high_availability=False,
            gateway=True,
            link_targets=[],
            linking_sources=linking_sources,
            control_plane=linkerd.control_plane,
            kubeconfig=kubeconfig,
            wait_timeout_seconds=30,
            trust_anchor_pem="anchor",
        ),
    )
    pulumi.export("gateway", multicluster.gateway_address)
    return multicluster


def test_a_k3d_cluster_gets_the_gateway_api_from_linkerd_crds_and_keeps_it():
    fakes = FakeCloud()
    with k3d_east(fakes) as east:
        first, again = run_twice(fakes, east)
    assert first.outputs["gatewayApi"] == INSTALL_ALL
    owners = {name: obj["metadata"]["annotations"]["meta.helm.sh/release-name"] for (kind, _, name), obj in east.objects.items() if kind == fake_crds.CRD and fake_crds.GATEWAY_GROUP in name}
    assert owners == {fake_crds.crd_name(p): "linkerd-crds" for p in ("httproutes", "grpcroutes", "tlsroutes", "tcproutes")}
    # servicelb: the gateway's LoadBalancer address is the node's address on the docker network.
    assert first.outputs["gateway"] == EAST_NODE_IP
    # Next run: the CRDs are ours now, so linkerd-crds keeps rendering them and nothing changes.
    assert again.outputs["gatewayApi"] == INSTALL_ALL
    assert releases(again)[("east", "linkerd-crds")].step == "same"


def run_twice(fakes: FakeCloud, east: FakeCluster):
    first = run(fakes, lambda: local_linkerd("east", local_kubeconfig(east), ["west"]), stack="local")
    return first, run(fakes, lambda: local_linkerd("east", local_kubeconfig(east), ["west"]), stack="local", prior=first)


def test_a_k3d_cluster_without_the_gateway_api_cannot_start_linkerd_unless_linkerd_crds_installs_it():
    fakes = FakeCloud()
    with k3d_east(fakes) as east, pytest.raises(Exception, match=r"cannot watch httproutes.gateway.networking.k8s.io, grpcroutes.gateway.networking.k8s.io at v1"):
        run(fakes, lambda: local_linkerd("east", local_kubeconfig(east), ["west"], gateway_api=DOKS_MANAGED_VALUES), stack="local")


def test_k3s_with_its_own_gateway_api_chart_keeps_them():
    fakes = FakeCloud()
    with k3d_east(fakes, k3s_gateway_api=True) as east:
        result = run(fakes, lambda: local_linkerd("east", local_kubeconfig(east), ["west"]), stack="local")
    assert result.outputs["gatewayApi"] == DOKS_MANAGED_VALUES
    httproutes = east.objects[(fake_crds.CRD, "", fake_crds.crd_name("httproutes"))]
    assert httproutes["metadata"]["annotations"]["meta.helm.sh/release-name"] == "gateway-api-crd"


def west_links_to_k3d_east(fakes: FakeCloud, east: FakeCluster, api_server_address: Optional[str]):
    """A DOKS cluster west mirrors what the k3d cluster east exports, the link's credentials naming
    `api_server_address` (None: east's kubeconfig server)."""

    def program():
        west = lone_cluster(ClusterSpec("west", "sfo3", "s-4vcpu-8gb", 3))
        west_linkerd = Linkerd(
            "west",
            LinkerdArgs(provider=west.provider, chart_version="2026.6.3", high_availability=False, trust_anchor_pem="anchor", issuer_cert_pem="cert", issuer_key_pem="key", renewal_marker="renewal-period-1", gateway_api_values=DOKS_MANAGED_VALUES),
        )
        kubernetes.core.v1.Namespace("emojivoto-west", metadata={"name": "emojivoto"}, opts=pulumi.ResourceOptions(provider=west.provider))
        west_multicluster = Multicluster(
            "west",
            MulticlusterArgs(
                provider=west.provider,
                chart_version="2026.6.3",
                high_availability=False,
                gateway=False,
                link_targets=["east"],
                linking_sources=[],
                control_plane=west_linkerd.control_plane,
                kubeconfig=west.kubeconfig,
                wait_timeout_seconds=30,
                trust_anchor_pem="anchor",
            ),
        )
        kubeconfig = local_kubeconfig(east)
        east_multicluster = local_linkerd("east", kubeconfig, ["west"])
        ClusterLink(
            "west-to-east",
            LinkArgs(
                source="west",
                source_provider=west.provider,
                source_kubeconfig=west.kubeconfig,
                target="east",
                target_kubeconfig=kubeconfig,
                target_endpoint=api_server_address or east.endpoint,
                target_ca_certificate=base64.b64encode(east.ca_pem.encode()).decode(),
                target_gateway_address=east_multicluster.gateway_address,
                source_multicluster=west_multicluster.release,
                credentials_after=[east_multicluster.release],
                timeout_seconds=30,
            ),
        )

    return run(fakes, program, stack="local")


def test_a_link_with_k3ds_host_only_kubeconfig_server_mirrors_nothing():
    fakes = FakeCloud()
    with k3d_east(fakes) as east:
        west_links_to_k3d_east(fakes, east, None)
        west = fakes.kubernetes.cluster_named("west")
        assert fakes.kubernetes.mirrors_in(west) == {}, "west's service mirror cannot reach east's kubeconfig server on 0.0.0.0: that is west's own host"


def test_a_link_through_the_api_server_address_on_the_shared_network_mirrors_the_export():
    fakes = FakeCloud()
    with k3d_east(fakes) as east:
        west_links_to_k3d_east(fakes, east, f"https://{EAST_NODE_IP}:6443")
        west = fakes.kubernetes.cluster_named("west")
        written = west.credentials_secret("cluster-credentials-east")
        assert f"server: https://{EAST_NODE_IP}:6443" in written
        assert fakes.kubernetes.mirrors_in(west) == {("emojivoto", "web-svc-east"): [EAST_NODE_IP]}


def seed_with(**east_settings) -> dict[str, str]:
    clusters = json.loads(stack_config("west-east")[f"{PROJECT}:clusters"])
    clusters["east"].update(east_settings)
    # A mirror that never comes fails the run within 30 s (a loaded machine answers later), not 5 minutes.
    return {f"{PROJECT}:clusters": json.dumps(clusters), f"{PROJECT}:waitTimeoutSeconds": "30"}


def test_a_gateway_address_and_port_override_reach_the_link_the_mirrors_and_the_outputs():
    fakes = FakeCloud()
    # east's gateway sits behind a port forward from 198.51.100.7:30143 (its load balancer's own
    # address is not the one west reaches).
    fakes.kubernetes.gateway_forwards["east"] = {("198.51.100.7", "30143")}
    result = run_main(fakes, config=seed_with(gatewayAddress="198.51.100.7", gatewayPort=30143))
    (link,) = result.monitor.of_type(LINK)
    spec = unwrap(link.inputs["spec"])
    assert (spec["gatewayAddress"], spec["gatewayPort"]) == ("198.51.100.7", "30143")
    assert result.outputs["gatewayAddresses"] == {"east": "198.51.100.7"}
    (mirror,) = result.outputs["mirroredServices"]["west"]
    assert mirror["endpoints"] == ["198.51.100.7"]
    # Nothing waits for a load balancer address that the links do not use.
    assert not [r for r in result.monitor.of_type("pulumi-python:dynamic:Resource") if r.name.startswith("gateway-address-")]


def test_an_api_server_address_is_what_the_links_credentials_name():
    fakes = FakeCloud()
    address = "https://east-api.mesh.internal:443"
    fakes.kubernetes.network_api_servers["east"] = {address}
    result = run_main(fakes, config=seed_with(apiServerAddress=address))
    west = fakes.kubernetes.cluster_named("west")
    assert f"server: {address}" in west.credentials_secret("cluster-credentials-east")
    assert result.outputs["mirroredServices"]["west"][0]["endpoints"] == [fakes.kubernetes.cluster_named("east").gateway_ip]
