"""doctl as the program runs it (issue 17 §1–3): the environment's token whatever context `doctl auth
switch` chose, a fresh cluster credential when the API server refuses the cached one, and cluster
lookups that see every page of the account."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
import yaml
from kubernetes import client as kube_api

from components import doctl, kubeconfigs
from components.kube_client import api_client
from components.link_credentials import LinkCredentialsProvider
from components.mirror import MirroredServiceProvider
from tests import fake_doctl
from tests.fake_account import DO_TOKEN, OTHER_ACCOUNT_TOKEN
from tests.fake_cloud import FakeCloud
from tests.fake_kube_api import FakeKubeAPI, core_path
from tests.harness import PROJECT, run_main
from tests.live_props import GATEWAY, credentials_props, mirror_props
from tests.test_cluster_plan import existing, versions_of
from verify.kube import KubeCluster

CLUSTER_ID = "6a1f0c9e-0000-4000-8000-0000000000c1"
TOKEN_SECRET = "linkerd-service-mirror-remote-access-west-token"


def switch_context(config_dir: Path, context: str, token: str) -> None:
    """What `doctl auth init --context <context>` and `doctl auth switch --context <context>` leave
    in doctl's config (commands/auth.go: `auth-contexts.<context>`, then `context`); JSON is YAML."""
    path = config_dir / "doctl" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"access-token": "dop_v1_stale_default_token", "auth-contexts": {context: token}, "context": context}))


def cached_token(config_dir: Path, cluster_id: str) -> str:
    """The token in doctl's credential cache for the cluster."""
    return json.loads((config_dir / "doctl" / "cache" / "exec-credential" / f"{cluster_id}.json").read_text())["status"]["token"]


# §1: the token of the environment, whatever doctl's context.


@pytest.mark.parametrize(
    "args,environment,token",
    [
        ([], {}, OTHER_ACCOUNT_TOKEN),
        (["--context=default"], {}, DO_TOKEN),
        (["--context", "default"], {"DIGITALOCEAN_CONTEXT": "work"}, DO_TOKEN),
        (["--access-token", DO_TOKEN], {}, OTHER_ACCOUNT_TOKEN),
        (["--context=default", "-t", "dop_v1_flag_token"], {}, "dop_v1_flag_token"),
        ([], {"DIGITALOCEAN_CONTEXT": "default"}, DO_TOKEN),
    ],
    ids=["switched", "--context default", "flag over environment", "--access-token ignored elsewhere", "--access-token in default", "context from the environment"],
)
def test_the_fake_doctl_picks_the_token_by_context_as_doctl_does(user_config_dir, monkeypatch, args, environment, token):
    # commands/command_config.go getContextAccessToken; doit.go initConfig (viper: flag, environment, config file).
    switch_context(user_config_dir, "work", OTHER_ACCOUNT_TOKEN)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    flags = fake_doctl.parse(args)[1]
    assert fake_doctl.context_and_token(flags, fake_doctl.read_config(flags))[1] == token


def test_a_switched_doctl_context_does_not_change_which_token_is_used(user_config_dir):
    fakes = FakeCloud()
    existing(fakes, "west")  # on a retired minor: found only with this account's token
    switch_context(user_config_dir, "work", OTHER_ACCOUNT_TOKEN)
    result = run_main(fakes)
    # The lookup saw this account (another would have no `west`), and every credential came from it:
    # the providers', the live reads' and the link's (another account has no such cluster: 404).
    assert versions_of(result)["west-east-west"] == "1.33.5-do.0"
    assert fakes.kubernetes.cluster_named("west").mirror_credentials
    # verify and kubectl run the kubeconfigs' plugin: doctl in its default context, holding no token itself.
    for kubeconfig in result.outputs["kubeconfigs"].values():
        plugin = yaml.safe_load(kubeconfig)["users"][0]["user"]["exec"]
        assert doctl.CONTEXT_FLAG in plugin["args"] and DO_TOKEN not in kubeconfig


# §2: a token that expires while a wait holds it.


def expire_mid_wait(api: FakeKubeAPI, token: str, publish) -> None:
    """At the wait's second request, DigitalOcean's clock has passed the token's end (doctl's, by the
    local clock, has not: it still serves it) and what the wait waits for appears."""
    seen: list[str] = []

    def on_request(path: str) -> None:
        seen.append(path)
        if len(seen) == 2:
            api.expired_tokens.add(token)
            publish()

    api.on_request = on_request


def test_a_mirror_wait_outlives_its_token(user_config_dir):
    with FakeKubeAPI("west", doks_cluster_id=CLUSTER_ID) as west:
        api_client(west.kubeconfig())  # an earlier read: doctl and this process hold token A
        first = cached_token(user_config_dir, CLUSTER_ID)

        def publish() -> None:
            west.put_service("emojivoto", "web-svc-east", "10.245.0.12")
            west.put_endpoints("emojivoto", "web-svc-east", [GATEWAY], port=4143)

        expire_mid_wait(west, first, publish)
        created = MirroredServiceProvider().create(mirror_props(west, timeout=5))
    assert created.outs["endpoints"] == [GATEWAY]
    # doctl's cache was cleared of the refused token, so doctl fetched a new one.
    assert cached_token(user_config_dir, CLUSTER_ID) != first


def test_the_link_credentials_token_wait_outlives_its_token(user_config_dir):
    target_id = "6a1f0c9e-0000-4000-8000-0000000000c2"
    with FakeKubeAPI("west", doks_cluster_id=CLUSTER_ID) as west, FakeKubeAPI("east", doks_cluster_id=target_id) as east:
        east.put_secret("linkerd-multicluster", TOKEN_SECRET, {})  # the token controller is late
        api_client(east.kubeconfig())
        expire_mid_wait(east, cached_token(user_config_dir, target_id), lambda: east.put_secret("linkerd-multicluster", TOKEN_SECRET, {"token": "filled-later"}))
        LinkCredentialsProvider().create(credentials_props(west, east, timeout=5))
        assert west.get(core_path("linkerd-multicluster", "secrets", "cluster-credentials-east"))


def test_verify_takes_a_fresh_token_for_a_refused_one_once(user_config_dir):
    with FakeKubeAPI("east", doks_cluster_id=CLUSTER_ID) as east:
        east.put_service("emojivoto", "web-svc", "10.245.0.9")
        api_client(east.kubeconfig())
        east.expired_tokens.add(cached_token(user_config_dir, CLUSTER_ID))
        cluster = KubeCluster("east", east.kubeconfig())
        assert cluster.get_service("emojivoto", "web-svc")["spec"]["clusterIP"] == "10.245.0.9"
        assert len(east.requests) == 2  # refused, then the same request with a fresh token
        # A server that refuses every token of this cluster (it is another one now): one refresh, then the 401 stands.
        kubeconfig = east.kubeconfig()
        east.doks_cluster_id = "6a1f0c9e-0000-4000-8000-0000000000ff"
        east.requests.clear()
        with pytest.raises(kube_api.exceptions.ApiException) as refused:
            kube_api.CoreV1Api(api_client(kubeconfig)).read_namespaced_service("web-svc", "emojivoto")
        assert refused.value.status == 401 and len(east.requests) == 2


# §3: every page of the account.


def test_a_running_cluster_beyond_the_first_pages_is_found():
    fakes = FakeCloud()
    # More clusters than one page holds: the API's default (20) and doctl's (200).
    for number in range(205):
        fakes.digitalocean.add_existing(f"someone-else-{number}", "fra1", "1.35.6-do.1")
    existing(fakes, "west")
    existing(fakes, "east", region="nyc1")
    with pytest.raises(pulumi.RunError, match=r"clusters.east.region: east has nyc1"):
        run_main(fakes)
    existing(fakes, "east")
    result = run_main(fakes, config={f"{PROJECT}:kubernetesVersion": "1.33"})
    assert versions_of(result) == {"west-east-west": "1.33.5-do.0", "west-east-east": "1.33.5-do.0"}
    assert "/v2/kubernetes/clusters?page=2&per_page=200" in fakes.digitalocean.api_requests


def test_find_clusters_reads_an_id_directly_and_a_name_from_the_list():
    fakes = FakeCloud()
    west = existing(fakes, "west")
    with fakes.serving():
        by_id = doctl.find_clusters([west.id])[west.id]
        missing_id, missing_name = "6a1f0c9e-0000-4000-8000-00000000dead", "no-such-cluster"
        assert doctl.find_clusters([west.name, missing_id, missing_name]) == {west.name: by_id, missing_id: None, missing_name: None}
    assert (by_id.id, by_id.region, by_id.version, by_id.cluster_subnet, by_id.system_pool_size, by_id.ha) == (west.id, "sfo3", "1.33.5-do.0", "172.20.0.0/16", "s-2vcpu-4gb", False)
    assert [pool.name for pool in by_id.node_pools] == ["west-east-west-pool"]
    assert fakes.digitalocean.api_requests[0] == f"/v2/kubernetes/clusters/{west.id}"


def test_a_stack_whose_kubeconfigs_predate_the_context_flag_is_updated_in_place(monkeypatch):
    """Its next `up` rewrites every kubeconfig; the providers follow the cluster id, so nothing is replaced."""
    fakes = FakeCloud()
    current = kubeconfigs.doctl_exec
    with monkeypatch.context() as before:
        # The exec form as the program wrote it before: without --context.
        before.setattr(kubeconfigs, "doctl_exec", lambda cluster_id: {**current(cluster_id), "args": [a for a in current(cluster_id)["args"] if a != doctl.CONTEXT_FLAG]})
        first = run_main(fakes)
    second = run_main(fakes, prior=first)
    steps = {r.step for r in second.monitor.registrations.values() if r.step != "same"}
    assert steps == {"update"}, steps
    assert all(doctl.CONTEXT_FLAG in kubeconfig for kubeconfig in second.outputs["kubeconfigs"].values())
