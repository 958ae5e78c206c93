"""Bad config never reaches the cloud: every rule fails the real program with a RunError that
names the key, before any resource (or invoke) is made."""

from __future__ import annotations

import itertools
import json

import pulumi
import pytest

from tests.fake_cloud import DO_TOKEN, FakeCloud
from tests.harness import PROJECT, run_main, stack_config

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
SEED = {key.split(":", 1)[1]: json.loads(value) if not key.endswith("kubernetesVersion") else value for key, value in stack_config("west-east").items()}


def config_with(**changes) -> dict[str, str]:
    """The seed stack's config with keys replaced (None removes a key), encoded as the CLI does."""
    values = {**SEED, **changes}
    encoded = {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in values.items() if value is not None}
    return {**encoded, **TOKEN}


def failure(monkeypatch, config: dict[str, str]) -> str:
    """Run the program; it must fail with a RunError before registering or invoking anything."""
    fakes = FakeCloud()
    with pytest.raises(pulumi.RunError) as raised:
        run_main(fakes, config=config, replace_config=True)
    assert fakes.registered == [], "resources were registered despite invalid config"
    assert fakes.invokes == [], "the cloud was called despite invalid config"
    return str(raised.value)


_ranges = itertools.count(1)


def cluster(**settings):
    """A valid cluster entry; each call gets VPC-native ranges of its own."""
    n = next(_ranges)
    return {"region": "sfo3", "nodeSize": "s-8vcpu-16gb", "nodeCount": 3, "clusterSubnet": f"10.{n}.0.0/16", "serviceSubnet": f"192.168.{n}.0/24", **settings}


def without(entry: dict, key: str) -> dict:
    return {k: v for k, v in entry.items() if k != key}


SOLO = {"region": "ams3", "clusterSubnet": "172.20.0.0/16", "serviceSubnet": "172.30.0.0/20"}

CASES = {
    "unknown region": (dict(clusters={"west": cluster(region="mars1"), "east": cluster()}), "linkerd-mesh:clusters.west.region", "'mars1' is not a DigitalOcean region with Kubernetes"),
    "droplet-only region": (dict(clusters={"west": cluster(region="nyc2"), "east": cluster()}), "linkerd-mesh:clusters.west.region", "'nyc2' is not a DigitalOcean region with Kubernetes"),
    "unknown size": (dict(clusters={"west": cluster(nodeSize="s-99vcpu"), "east": cluster()}), "clusters.west.nodeSize", "unknown droplet size slug"),
    "size too small for DOKS": (dict(clusters={"west": cluster(nodeSize="s-1vcpu-1gb"), "east": cluster()}), "clusters.west.nodeSize", "too small for DOKS"),
    "zero nodes": (dict(clusters={"west": cluster(nodeCount=0), "east": cluster()}), "clusters.west.nodeCount", "positive integer"),
    "node count as text": (dict(clusters={"west": cluster(nodeCount="3"), "east": cluster()}), "clusters.west.nodeCount", "positive integer"),
    "fractional node count": (dict(clusters={"west": cluster(nodeCount=2.5), "east": cluster()}), "clusters.west.nodeCount", "positive integer"),
    "typo in a cluster": (dict(clusters={"west": {**cluster(), "nodecount": 5}, "east": cluster()}), "clusters.west.nodecount", "unknown key; allowed: region, nodeSize, nodeCount"),
    "missing region": (dict(clusters={"west": {"nodeSize": "s-8vcpu-16gb"}, "east": cluster()}), "clusters.west.region", "is required"),
    "cluster entry not a map": (dict(clusters={"west": "sfo3", "east": cluster()}), "clusters.west", "must be a mapping"),
    "uppercase cluster name": (dict(clusters={"West": cluster(), "east": cluster()}, links=[], exports=[]), "clusters.West", "not a DNS-1123 label"),
    "underscore in cluster name": (dict(clusters={"us_west": cluster(), "east": cluster()}, links=[], exports=[]), "clusters.us_west", "not a DNS-1123 label"),
    "cluster name too long": (dict(clusters={"w" * 25: cluster(), "east": cluster()}, links=[], exports=[]), "clusters." + "w" * 25, "longer than 24 characters"),
    "no clusters": (dict(clusters={}, links=[], exports=[]), "linkerd-mesh:clusters", "at least one cluster"),
    "clusters missing": (dict(clusters=None, links=[], exports=[]), "linkerd-mesh:clusters", "at least one cluster"),
    "clusters as a list": (dict(clusters=["west", "east"], links=[], exports=[]), "linkerd-mesh:clusters", "at least one cluster"),
    "link to unknown cluster": (dict(links=[{"from": "west", "to": "north"}], exports=[]), "links[0].to", "unknown cluster 'north'"),
    "link from unknown cluster": (dict(links=[{"from": "south", "to": "east"}]), "links[0].from", "unknown cluster 'south'"),
    "self link": (dict(links=[{"from": "west", "to": "west"}], exports=[]), "links[0]", "cannot link to itself"),
    "duplicate link": (dict(links=[{"from": "west", "to": "east"}, {"from": "west", "to": "east"}]), "links[1]", "duplicate link west -> east"),
    "typo in a link": (dict(links=[{"from": "west", "too": "east"}]), "links[0].too", "unknown key"),
    "links not a list": (dict(links={"from": "west", "to": "east"}), "linkerd-mesh:links", "must be a list"),
    "link not a map": (dict(links=["west->east"]), "links[0]", "must be a mapping"),
    "exports not a list": (dict(exports="web-svc"), "linkerd-mesh:exports", "must be a list"),
    "export of invalid service name": (dict(exports=[{"cluster": "east", "namespace": "emojivoto", "service": "Web_Svc"}]), "exports[0].service", "not a DNS-1123 label"),
    "export of invalid namespace": (dict(exports=[{"cluster": "east", "namespace": "emoji.voto", "service": "web-svc"}]), "exports[0].namespace", "not a DNS-1123 label"),
    "export whose mirror name is too long": (dict(exports=[{"cluster": "east", "namespace": "emojivoto", "service": "s" * 60}]), "exports[0].service", "longer than 58 characters"),
    "export nobody mirrors": (dict(exports=[{"cluster": "west", "namespace": "emojivoto", "service": "web-svc"}]), "exports[0].cluster", "nobody links to 'west'"),
    "export with unknown mode": (dict(exports=[{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "mirror"}]), "exports[0].mode", "gateway, remote-discovery"),
    "typo in an export": (dict(exports=[{"cluster": "east", "namespace": "emojivoto", "svc": "web-svc"}]), "exports[0].svc", "unknown key"),
    "duplicate export": (dict(exports=[{"cluster": "east", "namespace": "emojivoto", "service": "web-svc"}] * 2), "exports[1]", "duplicate export"),
    "HA under three nodes": (dict(clusters={"west": cluster(nodeCount=2), "east": cluster()}, linkerd={"highAvailability": True}), "clusters.west.nodeCount", "high availability needs at least 3 worker nodes"),
    "missing pod subnet": (dict(clusters={"west": without(cluster(), "clusterSubnet"), "east": cluster()}), "clusters.west.clusterSubnet", "is required"),
    "missing service subnet": (dict(clusters={"west": cluster(), "east": without(cluster(), "serviceSubnet")}), "clusters.east.serviceSubnet", "is required"),
    "public pod subnet": (dict(clusters={"west": cluster(clusterSubnet="8.8.0.0/16"), "east": cluster()}), "clusters.west.clusterSubnet", "not a private (RFC 1918) range"),
    "subnet with host bits": (dict(clusters={"west": cluster(clusterSubnet="10.80.1.0/16"), "east": cluster()}), "clusters.west.clusterSubnet", "not an IPv4 CIDR range"),
    "DOKS overlay default as pod subnet": (dict(clusters={"west": cluster(clusterSubnet="10.244.0.0/16"), "east": cluster()}), "clusters.west.clusterSubnet", "not VPC-native"),
    "DOKS overlay default as service subnet": (dict(clusters={"west": cluster(serviceSubnet="10.245.0.0/20"), "east": cluster()}), "clusters.west.serviceSubnet", "not VPC-native"),
    "pod subnet too small for the nodes": (dict(clusters={"west": cluster(clusterSubnet="10.90.0.0/22", nodeCount=3), "east": cluster()}), "clusters.west.clusterSubnet", "4 nodes need 8"),
    "service subnet too large": (dict(clusters={"west": cluster(serviceSubnet="10.96.0.0/11"), "east": cluster()}), "clusters.west.serviceSubnet", "/12 at most"),
    "overlapping clusters": (dict(clusters={"west": cluster(clusterSubnet="10.100.0.0/16"), "east": cluster(clusterSubnet="10.100.128.0/17")}), "clusters.east.clusterSubnet", "overlaps clusters.west.clusterSubnet"),
    "pod subnet over another's services": (dict(clusters={"west": cluster(serviceSubnet="10.101.4.0/24"), "east": cluster(clusterSubnet="10.101.0.0/16")}), "clusters.east.clusterSubnet", "overlaps clusters.west.serviceSubnet"),
    "control plane HA not a boolean": (dict(clusters={"west": cluster(controlPlaneHa="yes"), "east": cluster()}), "clusters.west.controlPlaneHa", "true or false"),
    "gateway address with a scheme": (dict(clusters={"west": cluster(), "east": cluster(gatewayAddress="https://203.0.113.7")}), "clusters.east.gatewayAddress", "without a scheme"),
    "gateway address with a port": (dict(clusters={"west": cluster(), "east": cluster(gatewayAddress="203.0.113.7:4143")}), "clusters.east.gatewayAddress", "give the address alone and the port as gatewayPort"),
    "gateway address not a name": (dict(clusters={"west": cluster(), "east": cluster(gatewayAddress="gate_way!")}), "clusters.east.gatewayAddress", "neither an IP address nor a DNS name"),
    "gateway address only this host reaches": (dict(clusters={"west": cluster(), "east": cluster(gatewayAddress="127.0.0.1")}), "clusters.east.gatewayAddress", "reaches only the machine that uses it"),
    "gateway port out of range": (dict(clusters={"west": cluster(), "east": cluster(gatewayPort=70000)}), "clusters.east.gatewayPort", "port number from 1 to 65535"),
    "gateway port as text": (dict(clusters={"west": cluster(), "east": cluster(gatewayPort="4143")}), "clusters.east.gatewayPort", "port number from 1 to 65535"),
    "API server address over http": (dict(clusters={"west": cluster(), "east": cluster(apiServerAddress="http://172.18.0.3:6443")}), "clusters.east.apiServerAddress", "not an https URL"),
    "API server address with a path": (dict(clusters={"west": cluster(), "east": cluster(apiServerAddress="https://172.18.0.3:6443/api")}), "clusters.east.apiServerAddress", "scheme, host and port only"),
    "API server address of k3d's kubeconfig": (
        dict(clusters={"west": cluster(), "east": cluster(apiServerAddress="https://0.0.0.0:6550")}),
        "clusters.east.apiServerAddress",
        "0.0.0.0 reaches only the machine that uses it",
    ),
    "API server address not a URL": (dict(clusters={"west": cluster(), "east": cluster(apiServerAddress="172.18.0.3")}), "clusters.east.apiServerAddress", "not an https URL"),
    "remote-discovery across regions": (
        dict(clusters={"west": cluster(region="sfo3"), "east": cluster(region="syd1")}, exports=[{"cluster": "east", "namespace": "emojivoto", "service": "web-svc", "mode": "remote-discovery"}]),
        "exports[0].mode",
        "west (sfo3) cannot route to them: DOKS clusters in different regions sit in different VPCs",
    ),
    "malformed chart version": (dict(linkerd={"version": "2.20"}), "linkerd.version", "Linkerd edge chart version"),
    "chart version with a v": (dict(linkerd={"version": "v2026.6.3"}), "linkerd.version", "Linkerd edge chart version"),
    "typo in linkerd settings": (dict(linkerd={"verison": "2026.6.3"}), "linkerd.verison", "unknown key"),
    "bad gateway source range": (dict(linkerd={"gatewaySourceRanges": ["10.0.0.0/33"]}), "linkerd.gatewaySourceRanges", "not a CIDR range"),
    "gateway source range with host bits": (
        dict(linkerd={"gatewaySourceRanges": ["203.0.113.7/24"]}),
        "linkerd.gatewaySourceRanges",
        "'203.0.113.7/24' has host bits set: write 203.0.113.0/24 for the whole range, or 203.0.113.7/32 for the one address",
    ),
    "gateway source range not a string": (dict(linkerd={"gatewaySourceRanges": [3405803783]}), "linkerd.gatewaySourceRanges", "3405803783 is not a CIDR range"),
    "HA not a boolean": (dict(linkerd={"highAvailability": "yes"}), "linkerd.highAvailability", "true or false"),
    "kubernetes version not a prefix": (dict(kubernetesVersion="latest"), "linkerd-mesh:kubernetesVersion", "version prefix"),
    "kubernetes without DOKS' Gateway API CRDs": (dict(kubernetesVersion="1.32"), "linkerd-mesh:kubernetesVersion", "must be 1.33 or newer, got '1.32': only from 1.33 on does DOKS install the Gateway API CRDs"),
    "unknown top-level key": (dict(link=[{"from": "west", "to": "east"}]), "linkerd-mesh:link:", "unknown key"),
    "demo not a boolean": (dict(demo="on"), "linkerd-mesh:demo", "true or false"),
    "mirror timeout zero": (dict(waitTimeoutSeconds=0), "linkerd-mesh:waitTimeoutSeconds", "positive integer"),
    "issuer outlives the anchor": (dict(identity={"anchorValidityHours": 5000, "issuerValidityHours": 6000}), "identity.issuerValidityHours", "expire before the trust anchor"),
    # Renewed every 8761 - 1440 h, the charts' 365-day certificates would have 1439 h left at the next renewal.
    "renewal period outlives the charts' certificates": (dict(identity={"anchorValidityHours": 87600, "issuerValidityHours": 8761}), "identity.issuerValidityHours", "must be at most 8760 hours (365 days), got 8761: each renewal period (issuerValidityHours - issuerRenewBeforeHours = 7321 h)"),
    "a two-year issuer": (dict(identity={"issuerValidityHours": 17520, "issuerRenewBeforeHours": 8760}), "identity.issuerValidityHours", "they must still have issuerRenewBeforeHours (8760 h) left"),
    "issuer under 60 days": (dict(identity={"issuerValidityHours": 720}), "identity.issuerValidityHours", "more than 1440 hours"),
    "renewal window longer than the issuer": (dict(identity={"issuerValidityHours": 2000, "issuerRenewBeforeHours": 2000}), "identity.issuerRenewBeforeHours", "shorter than the issuer's lifetime"),
    "typo in identity": (dict(identity={"sharedIssuers": True}), "identity.sharedIssuers", "unknown key"),
    "cost limit as text": (dict(costLimitMonthly="lots"), "linkerd-mesh:costLimitMonthly", "amount in US dollars"),
    "negative cost limit": (dict(costLimitMonthly=-1), "linkerd-mesh:costLimitMonthly", "amount in US dollars"),
    "load balancer price not a number": (dict(prices={"loadBalancerMonthly": "12"}), "linkerd-mesh:prices.loadBalancerMonthly", "amount in US dollars"),
    "typo in prices": (dict(prices={"haControlPlane": 40}), "linkerd-mesh:prices.haControlPlane", "unknown key; allowed: loadBalancerMonthly, haControlPlaneMonthly"),
}


@pytest.mark.parametrize("changes,key,message", CASES.values(), ids=CASES.keys())
def test_bad_config_fails_before_anything_is_created(monkeypatch, changes, key, message):
    error = failure(monkeypatch, config_with(**changes))
    assert key in error
    assert message in error


def test_no_digitalocean_token(monkeypatch):
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    # The DigitalOcean provider would take this one, but doctl, which the kubeconfigs run, would not.
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", DO_TOKEN)
    error = failure(monkeypatch, config_with())
    assert "digitalocean:token: no DigitalOcean token: export DIGITALOCEAN_ACCESS_TOKEN" in error
    assert DO_TOKEN not in error


def test_a_token_in_the_stack_config_is_refused(monkeypatch):
    # The default provider's inputs, and with them the token, would be stored in the state.
    error = failure(monkeypatch, {**config_with(), "digitalocean:token": DO_TOKEN})
    assert "digitalocean:token: the DigitalOcean token must not be in the stack config" in error
    assert "pulumi config rm digitalocean:token" in error and DO_TOKEN not in error


def test_token_from_the_environment_is_enough():
    fakes = FakeCloud()
    run_main(fakes, config=config_with(), replace_config=True)
    assert fakes.registered


def test_every_problem_is_reported_at_once(monkeypatch):
    error = failure(
        monkeypatch,
        config_with(
            clusters={"west": cluster(region="mars1", nodeCount=0), "east": cluster(nodeSize="tiny")},
            links=[{"from": "west", "to": "west"}],
            linkerd={"version": "latest"},
        ),
    )
    for key in ("clusters.west.region", "clusters.west.nodeCount", "clusters.east.nodeSize", "links[0]", "linkerd.version", "exports[0].cluster"):
        assert key in error
    assert "(6 problems)" in error


def test_kubernetes_version_that_doks_does_not_offer(monkeypatch):
    monkeypatch.delenv("DIGITALOCEAN_TOKEN", raising=False)
    fakes = FakeCloud()
    with pytest.raises(pulumi.RunError) as raised:
        run_main(fakes, config=config_with(kubernetesVersion="1.33"), replace_config=True)
    assert "kubernetesVersion '1.33' is not offered by DOKS for new clusters" in str(raised.value)
    assert "offered: 1.36, 1.35, 1.34" in str(raised.value)
    assert fakes.registered == []


def test_defaults_fill_what_the_stack_leaves_out(monkeypatch):
    from components.config import parse_config

    config = parse_config({"clusters": {"solo": SOLO}}, PROJECT, token_available=True)
    solo = config.clusters["solo"]
    assert (solo.node_size, solo.node_count, solo.control_plane_ha) == ("s-8vcpu-16gb", 3, False)
    # No pin: new clusters get the newest version DOKS offers.
    assert config.kubernetes_version is None and config.linkerd.version == "2026.6.3"
    assert config.links == () and config.exports == () and config.demo is False
    assert config.identity.issuer_validity_hours == 8760 and config.identity.issuer_renew_before_hours == 1440


@pytest.mark.parametrize(
    "identity,key,message",
    [
        ({"anchors": []}, "identity.anchors", "non-empty list"),
        ({"anchors": ["primary", "primary"]}, "identity.anchors", "unique"),
        ({"anchors": ["Primary"]}, "identity.anchors", "DNS-1123"),
        ({"anchors": ["primary", "next"], "signingAnchor": "later"}, "identity.signingAnchor", "must be one of the anchors (primary, next)"),
    ],
)
def test_bad_anchor_rotation_settings(monkeypatch, identity, key, message):
    error = failure(monkeypatch, config_with(identity=identity))
    assert key in error and message in error


def test_the_first_anchor_signs_unless_told_otherwise():
    from components.config import parse_config

    config = parse_config({"clusters": {"solo": SOLO}, "identity": {"anchors": ["old", "new"]}}, PROJECT, token_available=True)
    # Adding an anchor must not switch the issuers to it in the same step.
    assert config.identity.signing_anchor == "old"
