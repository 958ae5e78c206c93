"""What DOKS already has decides what the program may do: running clusters keep their version (even
one DOKS has retired), new ones get an offered one, and a change DOKS could only make by replacing
a cluster is refused before anything is registered. Run through the whole program."""

from __future__ import annotations

import json
import re

import pulumi
import pytest

import components.linkerd
from components.cluster_plan import find_doks_clusters
from components.config import load_config
import components.gateway_api
from tests.fake_account import PREVIEW_TOKEN
from tests.fake_cloud import FakeCloud
from tests.fake_digitalocean import DOKS_VERSIONS
from tests.fake_kubernetes import FakeKubernetes
from tests.harness import PROJECT, run, run_main, stack_config

# The token comes from the environment (tests/conftest.py), never from the stack config.
TOKEN: dict[str, str] = {}
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
VERSIONS_INVOKE = "digitalocean:index/getKubernetesVersions:getKubernetesVersions"
SEED_CLUSTERS = json.loads(stack_config("west-east")[f"{PROJECT}:clusters"])


def existing(fakes: FakeCloud, name: str, version: str = "1.33.5-do.0", **changes):
    """The seed's cluster `name` as an earlier `pulumi up` left it (on a now retired minor)."""
    seed = SEED_CLUSTERS[name]
    settings = {"region": seed["region"], "cluster_subnet": seed["clusterSubnet"], "service_subnet": seed["serviceSubnet"], **changes}
    return fakes.digitalocean.add_existing(f"west-east-{name}", version=version, **settings)


def versions_of(result) -> dict[str, str]:
    return {r.inputs["name"]: r.inputs["version"] for r in result.monitor.of_type(CLUSTER)}


def test_a_failed_lookup_is_not_taken_for_an_absent_cluster(monkeypatch):
    fakes = FakeCloud()
    existing(fakes, "west")
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", "dop_v1_revoked_token")
    # The lookup alone: the whole program would stop earlier, at the sizes the cost reads.
    with pytest.raises(pulumi.RunError, match=r"looking up the account's DOKS clusters failed: `doctl kubernetes cluster list --output=json --context=default` failed \(exit 1: Error: GET .*/v2/kubernetes/clusters\?page=1&per_page=200: 401 .* Unable to authenticate you\)") as raised:
        run(fakes, lambda: find_doks_clusters(load_config()), stack_config("west-east"), stack="west-east")
    assert "dop_v1_revoked_token" not in str(raised.value)
    assert fakes.registered == []


def test_running_clusters_need_no_offered_version():
    fakes = FakeCloud()
    existing(fakes, "west")
    existing(fakes, "east")
    result = run_main(fakes, config=TOKEN)
    assert versions_of(result) == {"west-east-west": "1.33.5-do.0", "west-east-east": "1.33.5-do.0"}
    # Not even asked: an `up` that renews the issuers must not depend on DOKS' version list.
    assert not [token for token, _ in fakes.invokes if token == VERSIONS_INVOKE]


def test_a_retired_pin_only_warns_while_every_cluster_runs(caplog):
    fakes = FakeCloud()
    existing(fakes, "west")
    existing(fakes, "east")
    with caplog.at_level("WARNING"):
        run_main(fakes, config={**TOKEN, f"{PROJECT}:kubernetesVersion": "1.33"})
    assert "kubernetesVersion '1.33' is no longer offered by DOKS: the existing clusters keep running" in caplog.text


def test_a_preview_with_the_read_only_token_checks_the_running_clusters_but_cannot_look_inside(monkeypatch, caplog):
    fakes = FakeCloud()
    existing(fakes, "west")
    # The lookup needs kubernetes:read only; the cluster credentials need kubernetes:access_cluster, which it lacks.
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", PREVIEW_TOKEN)
    with caplog.at_level("WARNING"):
        preview = run_main(fakes, config=TOKEN, preview=True)
    assert "this token gets no credentials for the running clusters west (a read-only preview token" in caplog.text
    assert versions_of(preview) == {"west-east-west": "1.33.5-do.0", "west-east-east": DOKS_VERSIONS[0]}
    # It still sees what DOKS would refuse.
    existing(fakes, "west", region="nyc1")
    with pytest.raises(pulumi.RunError, match=r"clusters.west.region: west has nyc1"):
        run_main(fakes, config=TOKEN, preview=True)
    # An `up` needs what it cannot check: it stops before anything is registered.
    existing(fakes, "west")
    fakes.registered.clear()
    with pytest.raises(pulumi.RunError, match=r"this token gets no credentials for the running clusters, so nothing was changed:\n  - cluster 'west': .*You are not authorized"):
        run_main(fakes, config=TOKEN)
    assert fakes.registered == []


def test_a_new_cluster_beside_a_running_one_gets_the_newest_offered_version():
    fakes = FakeCloud()
    existing(fakes, "west")
    result = run_main(fakes, config=TOKEN)
    assert versions_of(result) == {"west-east-west": "1.33.5-do.0", "west-east-east": DOKS_VERSIONS[0]}


def test_a_new_cluster_on_a_retired_pin_is_refused_with_the_offered_versions():
    fakes = FakeCloud()
    existing(fakes, "west")
    with pytest.raises(pulumi.RunError, match=r"kubernetesVersion '1.33' is not offered by DOKS for new clusters.*offered: 1.36, 1.35, 1.34"):
        run_main(fakes, config={**TOKEN, f"{PROJECT}:kubernetesVersion": "1.33"})
    assert fakes.registered == []


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(region="nyc1"), r"clusters.west.region: west has nyc1, the config asks for sfo3\. DOKS can only do that by replacing west"),
        (dict(cluster_subnet="172.25.0.0/16"), r"clusters.west.clusterSubnet: west has 172.25.0.0/16, the config asks for 172.20.0.0/16"),
        (dict(service_subnet="172.31.0.0/20"), r"clusters.west.serviceSubnet: west has 172.31.0.0/20"),
        (dict(system_pool_size="s-8vcpu-16gb"), r"clusters.west: its built-in node pool is s-8vcpu-16gb; this program keeps that pool at s-2vcpu-4gb"),
        (dict(ha=True), r"clusters.west.controlPlaneHa: west has DOKS' high-availability control plane, which cannot be turned off"),
    ],
    ids=["region", "pod subnet", "service subnet", "built-in pool size", "ha off"],
)
def test_a_change_that_would_replace_a_cluster_is_refused_up_front(changes, message):
    fakes = FakeCloud()
    existing(fakes, "west", **changes)
    with pytest.raises(pulumi.RunError) as raised:
        run_main(fakes, config=TOKEN)
    assert fakes.registered == [], "nothing may be registered: a replacement would fail half-way"
    text = str(raised.value)
    assert f"{PROJECT}:" in text
    assert re.search(message, text), text
    if "ha" not in changes:
        assert "add a cluster under a new name" in text and "move the links and exports to it" in text


def test_turning_ha_on_for_a_running_cluster_is_allowed():
    fakes = FakeCloud()
    existing(fakes, "west")
    clusters = {**SEED_CLUSTERS, "west": {**SEED_CLUSTERS["west"], "controlPlaneHa": True}}
    result = run_main(fakes, config={**TOKEN, f"{PROJECT}:clusters": json.dumps(clusters)})
    assert {r.inputs["name"]: r.inputs["ha"] for r in result.monitor.of_type(CLUSTER)}["west-east-west"] is True


def test_linkerd_crds_that_render_the_gateway_api_fail_like_helm_on_doks(monkeypatch):
    """The fact the CRDs release's values rest on: DOKS owns these CRDs, and Helm does not adopt them."""
    monkeypatch.setattr(components.gateway_api, "DOKS_MANAGED_VALUES", {"installGatewayAPI": True})
    with pytest.raises(Exception, match=r'CustomResourceDefinition "(httproutes|grpcroutes|tlsroutes)\.gateway\.networking\.k8s\.io" in namespace "" exists and cannot be imported into the current release: invalid ownership metadata'):
        run_main(FakeCloud(), config=TOKEN)


def test_both_seed_stacks_fit_in_one_account():
    # DOKS refuses VPC-native ranges that overlap another cluster's in the account.
    west_east, dev = FakeCloud(), FakeCloud()
    dev.digitalocean = west_east.digitalocean  # one account, two stacks (each with its own clusters' API)
    dev.kubernetes = FakeKubernetes(dev.digitalocean)
    run_main(west_east, stack="west-east", config=TOKEN)
    run_main(dev, stack="dev", config=TOKEN)
    assert len(west_east.digitalocean.accounts_clusters) == 4


def test_a_running_cluster_behind_the_pinned_minor_is_reported(caplog):
    fakes = FakeCloud()
    existing(fakes, "west", version="1.34.9-do.0")
    with caplog.at_level("WARNING"):
        result = run_main(fakes, config={**TOKEN, f"{PROJECT}:kubernetesVersion": "1.35"})
    assert versions_of(result) == {"west-east-west": "1.34.9-do.0", "west-east-east": "1.35.6-do.1"}
    assert "cluster west runs Kubernetes 1.34.9-do.0 but kubernetesVersion is '1.35'" in caplog.text
    assert "doctl kubernetes cluster upgrade" in caplog.text and "cluster east runs" not in caplog.text
