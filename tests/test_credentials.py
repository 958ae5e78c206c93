"""Least privilege (issue 12) and re-issued credentials (issue 11.2): the DigitalOcean token
never reaches the state, the kubeconfigs hold no credential, each link has its own revocable
remote-access token, and a re-issued token reaches the service mirror on the next `up`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import threading
from typing import Any, Iterator

import pytest
import yaml

from components.kube_client import CredentialPluginError, api_client
from components.link_credentials import LinkCredentialsProvider
from components.kubeconfigs import exec_kubeconfig
from kubernetes import client as kube_api
from tests.fake_account import CLUSTER_TOKEN_PREFIX, DO_TOKEN, PREVIEW_TOKEN, ROTATED_DO_TOKEN
from tests.fake_cloud import FakeCloud
from tests.fake_kube_api import FakeKubeAPI, core_path
from tests.harness import PROJECT, run_main, stack_config, unwrap
from tests.live_props import credentials_props
from pulumi.runtime import rpc

CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
DYNAMIC = "pulumi-python:dynamic:Resource"
PEM = re.compile(r"-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----\n?")
# The bundle's checksum in pod annotations follows the (freshly minted) anchors.
BUNDLE_CHECKSUM = re.compile(r'"checksum/trust-anchors": "[0-9a-f]{64}"')
# What a kubeconfig user may hold that is a credential (client-go's AuthInfo fields).
CREDENTIAL_FIELDS = {"token", "tokenFile", "client-key-data", "client-key", "client-certificate-data", "password", "auth-provider"}


def account(source: str) -> str:
    return f"linkerd-service-mirror-remote-access-{source}"


@pytest.fixture(scope="module")
def seed():
    fakes = FakeCloud()
    return fakes, run_main(fakes)


def stored(result) -> Iterator[tuple[str, Any]]:
    """(where, value) for everything the engine would store: every resource's inputs and outputs
    (the dynamic resources' pickled providers decoded) and the stack outputs."""
    for registration in result.monitor.registrations.values():
        for part in ("inputs", "state"):
            values = unwrap(getattr(registration, part))
            for key, value in values.items():
                if key == "__provider":
                    value = base64.b64decode(value).decode("latin-1")
                yield f"{registration.type} {registration.name} {part}.{key}", value
    for name, value in result.outputs.items():
        yield f"output {name}", value


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def kubeconfig_users(text: str) -> list[dict]:
    if "kind: Config" not in text:
        return []
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    return [entry.get("user") or {} for entry in (parsed or {}).get("users") or []] if isinstance(parsed, dict) else []


def test_the_state_holds_no_account_token_and_no_credential_in_any_kubeconfig(seed):
    fakes, result = seed
    east = fakes.kubernetes.cluster_named("east")
    remote_access = east.remote_access_token(account("west"))
    kubeconfigs = 0
    for where, value in stored(result):
        for text in strings(value):
            assert DO_TOKEN not in text, f"the DigitalOcean account token is stored in {where}"
            assert remote_access not in text, f"west's remote-access token is stored in {where}"
            assert CLUSTER_TOKEN_PREFIX not in text, f"a cluster token from doctl is stored in {where}"
            for user in kubeconfig_users(text):
                kubeconfigs += 1
                assert not CREDENTIAL_FIELDS & set(user), f"the kubeconfig in {where} holds a credential: {sorted(CREDENTIAL_FIELDS & set(user))}"
    # The providers, the two live reads, the credentials copy and the output: none slipped past.
    assert kubeconfigs >= 2 + 2 + 2 + 2
    # The one exception, which no program can avoid: the DOKS cluster's own `kubeConfigs`
    # output, which the engine keeps encrypted, and whose token expires within minutes (DOKS'
    # default is 7 days).
    for cluster in result.monitor.of_type(CLUSTER):
        assert rpc.is_rpc_secret(cluster.state["kubeConfigs"])
        (credentials,) = unwrap(cluster.state["kubeConfigs"])
        assert dt.datetime.fromisoformat(credentials["expiresAt"]) - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=10)


def test_the_cluster_lookup_lists_the_account_and_reads_each_running_clusters_ca_with_a_minute_token():
    # One doctl list for every cluster (kubernetes:read); the credentials come from doctl's
    # exec-credential. The CA, which the list leaves out, comes with a token asked to live 60 s.
    fakes = FakeCloud()
    first = run_main(fakes)
    fakes.digitalocean.api_requests.clear()
    run_main(fakes, prior=first)
    ids = {name: fakes.kubernetes.cluster_named(name).cluster_id for name in ("west", "east")}
    assert sorted(fakes.digitalocean.api_requests) == sorted(
        ["/v2/kubernetes/clusters?page=1&per_page=200", *(f"/v2/kubernetes/clusters/{i}/kubeconfig?expiry_seconds=60&type=token" for i in ids.values())]
    )


def test_no_kubeconfig_is_kept_secret_as_none_holds_a_secret(seed):
    # Marking them secret would only hide from every diff what changed in them.
    _, result = seed
    for registration in result.monitor.registrations.values():
        for key, value in {**registration.inputs, **registration.state}.items():
            if key.lower().endswith("kubeconfig"):
                assert not rpc.is_rpc_secret(value), f"{registration.name}.{key} is secret"
    assert "kubeconfigs" not in result.secret_outputs


def test_the_stack_config_holds_no_token():
    assert not [key for key in stack_config("west-east") if key.startswith("digitalocean:")]


def masked(result) -> dict[str, str]:
    """URN -> inputs, with PEM blocks masked (the fake mints fresh, randomly signed certificates)
    and values unknown in a preview shown as such."""
    return {urn: BUNDLE_CHECKSUM.sub("<checksum>", PEM.sub("<PEM>", json.dumps(unwrap(r.inputs), sort_keys=True, default=lambda _: "<unknown>"))) for urn, r in result.monitor.registrations.items()}


def test_rotating_the_digitalocean_token_changes_no_recorded_input(seed, monkeypatch):
    _, before = seed
    preview_before = run_main(FakeCloud(), preview=True)
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", ROTATED_DO_TOKEN)
    assert masked(before) == masked(run_main(FakeCloud()))
    # Nor in a preview: no value that was known becomes unknown.
    assert masked(preview_before) == masked(run_main(FakeCloud(), preview=True))


def changed(result) -> list[str]:
    """Names of the resources a run from an earlier state updates or replaces."""
    return [r.name for r in result.monitor.registrations.values() if r.step not in ("same", "create")]


def test_rotating_the_digitalocean_token_updates_nothing_on_the_next_up(monkeypatch):
    fakes = FakeCloud()
    first = run_main(fakes)
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", ROTATED_DO_TOKEN)
    created = len(fakes.dynamic_creates)
    assert changed(run_main(fakes, preview=True, prior=first)) == []
    run_main(fakes, prior=first)
    # Every dynamic resource diffed as unchanged: nothing read, written or replaced again.
    assert (len(fakes.dynamic_creates), fakes.dynamic_updates) == (created, [])


def test_a_read_only_preview_token_previews_a_deployed_stack_and_cannot_deploy(monkeypatch, caplog, tmp_path):
    fakes = FakeCloud()
    first = run_main(fakes)
    # The pull-request preview, on a fresh runner (no doctl cache: doctl would serve a cached credential
    # whatever the token) with its token: it may read clusters, never fetch their credentials.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", PREVIEW_TOKEN)
    with caplog.at_level("WARNING"):
        preview = run_main(fakes, preview=True, prior=first)
    assert changed(preview) == []
    assert "this token gets no credentials for the running clusters west, east" in caplog.text
    # An `up` with it stops before anything is registered, naming what DigitalOcean refused.
    fakes.registered.clear()
    with pytest.raises(Exception, match="(?s)this token gets no credentials for the running clusters.*You are not authorized"):
        run_main(fakes, prior=first)
    assert fakes.registered == []


def test_a_cluster_nothing_links_to_issues_no_remote_access_token(seed):
    fakes, _ = seed
    west = fakes.kubernetes.cluster_named("west")
    assert west.multicluster_values()["remoteMirrorServiceAccount"] is False
    assert "remoteMirrorServiceAccountName" not in west.multicluster_values()
    assert west.remote_access_accounts() == []


def three_clusters(links: list[dict]) -> dict[str, str]:
    north = {"region": "fra1", "nodeSize": "s-4vcpu-8gb", "nodeCount": 3, "clusterSubnet": "172.24.0.0/16", "serviceSubnet": "172.30.64.0/20"}
    clusters = {**json.loads(stack_config("west-east")[f"{PROJECT}:clusters"]), "north": north}
    return {f"{PROJECT}:clusters": json.dumps(clusters), f"{PROJECT}:links": json.dumps(links)}


def held_token(cluster, target: str) -> str:
    secret = cluster.objects[("Secret", "linkerd-multicluster", f"cluster-credentials-{target}")]
    return yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))["users"][0]["user"]["token"]


def test_two_links_into_one_cluster_get_two_accounts_and_removing_one_revokes_its_token():
    fakes = FakeCloud()
    both = run_main(fakes, config=three_clusters([{"from": "west", "to": "east"}, {"from": "north", "to": "east"}]))
    kube = fakes.kubernetes
    east, west, north = kube.cluster_named("east"), kube.cluster_named("west"), kube.cluster_named("north")
    assert east.multicluster_values()["remoteMirrorServiceAccountName"] == [account("north"), account("west")]
    # Each link carries its own token, and only its own.
    assert held_token(west, "east") == east.remote_access_token(account("west"))
    assert held_token(north, "east") == east.remote_access_token(account("north"))
    assert held_token(west, "east") != held_token(north, "east")
    assert set(both.outputs["mirroredServices"]) == {"west", "north"}

    # North's link goes: east's chart drops north's account, and with it the token north held
    # (its credentials Secrets go with the link).
    north_token = held_token(north, "east")
    run_main(fakes, config=three_clusters([{"from": "west", "to": "east"}]), prior=both)
    assert east.multicluster_values()["remoteMirrorServiceAccountName"] == [account("west")]
    assert not east.accepts(north_token)
    assert core_path("linkerd-multicluster", "secrets", f"{account('north')}-token") not in kube.produced(east)
    assert ("Secret", "linkerd-multicluster", "cluster-credentials-east") not in north.objects
    assert kube.mirrors_in(north) == {}, "north's service mirror still reaches east"
    assert east.accepts(held_token(west, "east")) and kube.mirrors_in(west)


def test_a_reissued_token_reaches_the_service_mirror_and_the_destination_controller_on_the_next_up():
    fakes = FakeCloud()
    first = run_main(fakes)
    east, west = fakes.kubernetes.cluster_named("east"), fakes.kubernetes.cluster_named("west")
    assert fakes.kubernetes.mirrors_in(west)
    # East issues west's token anew (say its Secret was deleted and the chart re-created it).
    east.token_generation += 1
    assert fakes.kubernetes.mirrors_in(west) == {}, "the mirror should be using the old, now refused token"
    # No input changed: the credentials' diff has to notice by itself, in a preview already.
    assert changed(run_main(fakes, preview=True, prior=first)) == ["west-to-east-credentials"]
    run_main(fakes, prior=first)
    new_token = east.remote_access_token(account("west"))
    assert held_token(west, "east") == new_token
    assert [outs["target"] for outs in fakes.dynamic_updates] == ["east"]
    assert new_token not in json.dumps(fakes.dynamic_updates)
    # The service mirror ignores a Secret change until it restarts (link_handlers.go)...
    assert west.controller_restarts == {"east": 1}
    assert yaml.safe_load(west.mirror_credentials["east"])["users"][0]["user"]["token"] == new_token
    assert fakes.kubernetes.mirrors_in(west), "west's service mirror did not pick up the new token"
    # ...and the destination controller reloads remote-discovery credentials only on Add.
    assert yaml.safe_load(west.discovery_credentials["east"])["users"][0]["user"]["token"] == new_token


def exec_kubeconfig_for(api: FakeKubeAPI, cluster_id: str) -> str:
    return exec_kubeconfig("east", cluster_id, api.url, base64.b64encode(b"unused over http").decode())


def test_the_exec_plugin_token_authenticates_the_live_reads():
    cluster_id = "6a1f0c9e-0000-4000-8000-000000000001"
    with FakeKubeAPI("east", doks_cluster_id=cluster_id) as api:
        api.put_secret("linkerd-multicluster", "probe", {"key": "value"})
        secret = kube_api.CoreV1Api(api_client(exec_kubeconfig_for(api, cluster_id))).read_namespaced_secret("probe", "linkerd-multicluster")
    assert base64.b64decode(secret.data["key"]) == b"value"


@pytest.mark.parametrize(
    "environment,message",
    [
        ({"DIGITALOCEAN_ACCESS_TOKEN": None}, r"failed \(exit 1: Error: Unable to initialize DigitalOcean API client: access token is required.*DIGITALOCEAN_ACCESS_TOKEN is not set"),
        ({"DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_of_another_account"}, r"failed \(exit 1: Error: Failed to fetch credentials for cluster \"c-1\": Unable to authenticate you\); DigitalOcean refused"),
        ({"PATH": ""}, r"runs `doctl kubernetes cluster kubeconfig exec-credential --version=v1beta1 --context=default c-1` for credentials, but 'doctl' is not on PATH"),
    ],
    ids=["no token", "not the account's token", "no doctl"],
)
def test_a_failing_exec_plugin_is_a_clear_error_naming_the_cluster(monkeypatch, user_config_dir, environment, message):
    # A token from the environment that worked before must not hide the failure (cache by environment).
    api_client(exec_kubeconfig("east", "c-1", "http://127.0.0.1:9", "Y2E="))
    # doctl's own cache would (it serves a cluster's credential whatever the token): not this process's.
    shutil.rmtree(user_config_dir / "doctl")
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(CredentialPluginError, match=message) as raised:
        api_client(exec_kubeconfig("east", "c-1", "http://127.0.0.1:9", "Y2E="))
    assert str(raised.value).startswith("cluster 'east': ")
    assert "dop_v1_of_another_account" not in str(raised.value) and DO_TOKEN not in str(raised.value)


def test_link_credentials_wait_for_the_token_controller():
    with FakeKubeAPI("west") as west, FakeKubeAPI("east") as east:
        # The chart creates the Secret empty; Kubernetes' token controller fills it in later.
        east.put_secret("linkerd-multicluster", "linkerd-service-mirror-remote-access-west-token", {})
        timer = threading.Timer(0.3, lambda: east.put_secret("linkerd-multicluster", "linkerd-service-mirror-remote-access-west-token", {"token": "filled-later"}))
        timer.start()
        try:
            created = LinkCredentialsProvider().create(credentials_props(west, east, timeout=5))
        finally:
            timer.cancel()
        written = west.get(core_path("linkerd-multicluster", "secrets", "cluster-credentials-east"))
    kubeconfig = base64.b64decode(written["data"]["kubeconfig"]).decode()
    assert yaml.safe_load(kubeconfig)["users"][0]["user"] == {"token": "filled-later"}
    assert "filled-later" not in json.dumps(created.outs)


def test_new_credentials_are_rewritten_where_each_controller_notices_and_delete_removes_them():
    provider = LinkCredentialsProvider()
    with FakeKubeAPI("west") as west, FakeKubeAPI("east") as east:
        east.put_secret("linkerd-multicluster", "linkerd-service-mirror-remote-access-west-token", {"token": "t1"})
        west.put_deployment("linkerd-multicluster", "controller-east")
        olds = provider.create(credentials_props(west, east, "https://east-1.example")).outs
        first = list(west.writes)
        assert [(method, path.rsplit("/", 3)[-3]) for method, path, _ in first] == [("POST", "linkerd-multicluster"), ("POST", "linkerd")]
        # The target moved (a new endpoint): an update, no replacement, and every copy follows.
        news = credentials_props(west, east, "https://east-2.example")
        diff = provider.diff("id", olds, news)
        assert diff.changes and not diff.replaces
        updated = provider.update("id", olds, news).outs
        assert updated["fingerprint"] != olds["fingerprint"]
        rewrites = [(method, path.rsplit("/", 3)[-3], path.rsplit("/", 1)[-1]) for method, path, _ in west.writes[len(first):]]
        assert rewrites == [
            ("PUT", "linkerd-multicluster", "cluster-credentials-east"),
            # The service mirror reloads credentials only when it starts (link_handlers.go).
            ("PATCH", "linkerd-multicluster", "controller-east"),
            # The destination controller has no update handler (cluster_store.go): delete, then add.
            ("DELETE", "linkerd", "cluster-credentials-east"),
            ("POST", "linkerd", "cluster-credentials-east"),
        ]
        # Nothing changed since: a diff finds nothing to do.
        assert not provider.diff("id", updated, news).changes
        provider.delete("id", updated)
        assert not [path for path in west.objects if "cluster-credentials" in path]


def test_new_remote_discovery_annotations_reach_the_copy_in_linkerd():
    provider = LinkCredentialsProvider()
    annotations = {"multicluster.linkerd.io/cluster-domain": "cluster.local", "multicluster.linkerd.io/trust-domain": "cluster.local"}
    with FakeKubeAPI("west") as west, FakeKubeAPI("east") as east:
        east.put_secret("linkerd-multicluster", "linkerd-service-mirror-remote-access-west-token", {"token": "t1"})
        olds = provider.create(credentials_props(west, east)).outs
        news = {**credentials_props(west, east), "remoteDiscoveryAnnotations": annotations}
        assert provider.diff("id", olds, news).changes
        updated = provider.update("id", olds, news).outs
        copy = west.get(core_path("linkerd", "secrets", "cluster-credentials-east"))
        assert copy["metadata"]["annotations"] == annotations
        # The destination controller has no update handler: the copy was deleted and created.
        assert [method for method, path, _ in west.writes if path.startswith("/api/v1/namespaces/linkerd/")][-2:] == ["DELETE", "POST"]
        assert not provider.diff("id", updated, news).changes


def test_without_doctl_the_run_stops_at_the_first_cluster_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Exception, match=r"looking up the account's DOKS clusters failed: `doctl kubernetes cluster list --output=json --context=default` needs doctl, which is not on PATH; install it \(`make deploy` installs the pinned version\)"):
        run_main(FakeCloud())


def test_the_official_client_alone_turns_a_failing_plugin_into_a_bare_401(monkeypatch):
    """Why api_client runs the plugin itself: kubernetes' config loader only logs the failure
    (config/kube_config.py, _load_from_exec_plugin) and sends the request without credentials."""
    from kubernetes import config
    from kubernetes.client.exceptions import ApiException

    cluster_id = "6a1f0c9e-0000-4000-8000-000000000002"
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN")
    with FakeKubeAPI("east", doks_cluster_id=cluster_id) as api:
        official = config.new_client_from_config_dict(yaml.safe_load(exec_kubeconfig_for(api, cluster_id)), persist_config=False)
        with pytest.raises(ApiException) as raised:
            kube_api.CoreV1Api(official).read_namespaced_secret("probe", "linkerd-multicluster")
        assert raised.value.status == 401
        with pytest.raises(CredentialPluginError, match="DIGITALOCEAN_ACCESS_TOKEN is not set"):
            api_client(exec_kubeconfig_for(api, cluster_id))
