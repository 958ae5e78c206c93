"""Trust-anchor rotation end to end: docs/identity.md's three steps as `pulumi up`s of one stack, against
pods that get their trust roots the way Linkerd's do (tests/fake_pods.py), with every trust
question settled by a real X.509 signature check.

The walk: install with anchor `primary`; renew the issuers; 1. trust [primary, next];
2. sign with next; 3. trust [next]. Between the steps the operator does what docs/identity.md says
for the meshed workloads the program does not manage (here `shop/checkout` in every cluster).
At each step: which pods restart, and whether every identity controller uses the issuer it was
given and every proxy (old and new pods, mesh-wide) accepts every other's certificate.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace

import pytest
from cryptography import x509

from components import demo, linkerd, multicluster
from components.config import IdentitySpec
from tests.fake_cloud import FakeCloud
from tests.fake_clock import FakeClock
from tests.fake_pods import IDENTITY, FakePods, IdentityCrashLoop, Proxy, chains, refused_connections
from tests.fake_tls import StatefulTls
from tests.harness import PROJECT, Run, run, run_main, unwrap
from tests.program import cluster_checks, linkerd_on_one_cluster, releases

CLUSTERS = ("west", "east")
LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
TEAM_APP = "shop/checkout"

INSTALL = "install"
RENEW = "renew the issuers"
TRUST_BOTH = "1. trust both"
SIGN_WITH_NEXT = "2. sign with next"
DROP_PRIMARY = "3. drop primary"
STEPS = {
    INSTALL: {"anchors": ["primary"]},
    RENEW: {"anchors": ["primary"]},
    TRUST_BOTH: {"anchors": ["primary", "next"]},
    SIGN_WITH_NEXT: {"anchors": ["primary", "next"], "signingAnchor": "next"},
    DROP_PRIMARY: {"anchors": ["next"]},
}

CONTROL_PLANE_PODS = {IDENTITY, "linkerd/linkerd-destination", "linkerd/linkerd-proxy-injector"}
# Every upgrade of the control-plane release restarts these, whatever changed: their templates
# carry a checksum of freshly generated webhook certificates (see tests/fake_pods.py).
RESTARTED_BY_ANY_UPGRADE = {"linkerd/linkerd-destination", "linkerd/linkerd-proxy-injector"}
VIZ_PODS = {f"linkerd-viz/{name}" for name in ("metrics-api", "tap", "tap-injector", "web", "prometheus")}
MULTICLUSTER_PODS = {
    "west": {"linkerd-multicluster/linkerd-local-service-mirror", "linkerd-multicluster/controller-east"},
    "east": {"linkerd-multicluster/linkerd-local-service-mirror", "linkerd-multicluster/linkerd-gateway"},
}
DEMO_PODS = {f"emojivoto/{name}" for name in ("emoji", "voting", "web", "vote-bot")}


def program_pods(cluster: str) -> set[str]:
    return CONTROL_PLANE_PODS | VIZ_PODS | MULTICLUSTER_PODS[cluster] | DEMO_PODS


EXPECTED_RESTARTS = {
    INSTALL: program_pods,
    RENEW: lambda cluster: RESTARTED_BY_ANY_UPGRADE,
    TRUST_BOTH: program_pods,
    SIGN_WITH_NEXT: lambda cluster: RESTARTED_BY_ANY_UPGRADE,
    DROP_PRIMARY: program_pods,
}


@dataclass
class Step:
    name: str
    run: Run
    cloud: FakeCloud
    before: FakePods  # the pods as this step's `up` found them
    after: FakePods  # ... and as it left them, before the operator did anything
    started: dict[str, set[str]]


def follow_the_readme(step: str, pods: FakePods) -> None:
    """What docs/identity.md has the operator do after each step, for workloads outside the program."""
    for cluster in CLUSTERS:
        if step == INSTALL:
            pods.add_workload(cluster, TEAM_APP)
        elif step in (TRUST_BOTH, DROP_PRIMARY):
            pods.rollout_restart(cluster, TEAM_APP)
    if step == SIGN_WITH_NEXT:
        pods.renew_certificates()  # wait a day


def walk(steps: list[str]) -> list[Step]:
    tls, pods, done = StatefulTls(), FakePods(), []
    for name in steps:
        if name == RENEW:
            tls.replace(LOCALLY_SIGNED)  # a new renewal period: the engine replaces the issuers
        cloud = FakeCloud()
        cloud.tls = tls  # one stack: unchanged certificates are kept from the step before
        result = run_main(cloud, config={f"{PROJECT}:identity": json.dumps(STEPS[name])})
        before = pods.fork()
        started = pods.deploy(cloud.kubernetes)
        done.append(Step(name, result, cloud, before, pods.fork(), started))
        follow_the_readme(name, pods)
    return done


@pytest.fixture(scope="module")
def rotation() -> dict[str, Step]:
    return {step.name: step for step in walk(list(STEPS))}


@pytest.fixture(scope="module")
def without_checksum() -> dict[str, Step]:
    """The same steps with the bundle's checksum left out of every pod template."""
    with pytest.MonkeyPatch.context() as patch:
        for module in (linkerd, multicluster, demo):
            patch.setattr(module, "trust_bundle_annotations", lambda pem: {})
        return {step.name: step for step in walk([INSTALL, TRUST_BOTH, SIGN_WITH_NEXT])}


def deployed_issuer(step: Step, cluster: str) -> x509.Certificate:
    values = unwrap(releases(step.run)[(cluster, "linkerd-control-plane")].inputs["values"])
    return x509.load_pem_x509_certificate(values["identity"]["issuer"]["tls"]["crtPEM"].encode())


def anchors(step: Step) -> dict[str, x509.Certificate]:
    return {r.name.removeprefix("trust-anchor-"): x509.load_pem_x509_certificate(r.state["certPem"].encode()) for r in step.run.monitor.of_type("tls:index/selfSignedCert:SelfSignedCert")}


def during_rollout(before: FakePods, after: FakePods) -> dict[tuple, Proxy]:
    """Every proxy of the old and the new pods: a rolling update runs both side by side."""
    return {("old", *key): proxy for key, proxy in before.proxies().items()} | {("new", *key): proxy for key, proxy in after.proxies().items()}


@pytest.mark.parametrize("name", list(STEPS))
def test_each_step_restarts_exactly_the_pods_whose_roots_change(rotation, name):
    step = rotation[name]
    assert step.started == {cluster: EXPECTED_RESTARTS[name](cluster) for cluster in CLUSTERS}


@pytest.mark.parametrize("name", list(STEPS))
def test_each_step_leaves_every_issuer_trusted_by_every_identity_controller_and_proxy(rotation, name):
    step = rotation[name]
    issuers = {cluster: deployed_issuer(step, cluster) for cluster in CLUSTERS}
    for cluster in CLUSTERS:
        identity = step.after.clusters[cluster].identity
        assert identity.issuer == issuers[cluster] and identity.skipped == [], f"{cluster}'s identity controller skipped its new issuer"
    for key, proxy in step.after.proxies().items():
        assert all(chains(issuer, proxy.roots) for issuer in issuers.values()), f"{key} does not trust every cluster's issuer"
    assert refused_connections(during_rollout(step.before, step.after)) == []


def test_the_issuers_really_change_at_a_renewal_and_at_step_2(rotation):
    for earlier, later in ((INSTALL, RENEW), (TRUST_BOTH, SIGN_WITH_NEXT)):
        for cluster in CLUSTERS:
            assert deployed_issuer(rotation[earlier], cluster) != deployed_issuer(rotation[later], cluster), (later, cluster)
    primary, next_ = anchors(rotation[TRUST_BOTH])["primary"], anchors(rotation[TRUST_BOTH])["next"]
    for cluster in CLUSTERS:
        assert chains(deployed_issuer(rotation[TRUST_BOTH], cluster), (primary,))
        assert chains(deployed_issuer(rotation[SIGN_WITH_NEXT], cluster), (next_,)) and not chains(deployed_issuer(rotation[SIGN_WITH_NEXT], cluster), (primary,))
    # The anchor itself survives the steps that keep it.
    assert anchors(rotation[INSTALL])["primary"] == anchors(rotation[SIGN_WITH_NEXT])["primary"]
    assert anchors(rotation[TRUST_BOTH])["next"] == anchors(rotation[DROP_PRIMARY])["next"]


def test_after_the_last_restart_no_proxy_trusts_the_retired_anchor(rotation):
    pods = rotation[DROP_PRIMARY].after.fork()
    follow_the_readme(DROP_PRIMARY, pods)
    next_ = anchors(rotation[DROP_PRIMARY])["next"]
    assert {key: proxy.roots for key, proxy in pods.proxies().items() if proxy.roots != (next_,)} == {}


# Why docs/identity.md's steps for workloads outside the program are needed.


def test_workloads_not_restarted_after_step_1_reject_the_new_issuers_certificates(rotation):
    pods = rotation[TRUST_BOTH].after.fork()  # step 1 done, team apps left as they were
    pods.deploy(rotation[SIGN_WITH_NEXT].cloud.kubernetes)
    refused = refused_connections(pods.proxies())
    assert refused and {client for client, _ in refused} == {(cluster, TEAM_APP) for cluster in CLUSTERS}


def test_step_3_straight_after_step_2_breaks_pods_still_holding_old_certificates(rotation):
    old = rotation[SIGN_WITH_NEXT].after  # step 2 done, no day waited
    pods = old.fork()
    pods.deploy(rotation[DROP_PRIMARY].cloud.kubernetes)
    refused_servers = {server[2] for _, server in refused_connections(during_rollout(old, pods))}
    assert TEAM_APP in refused_servers and "linkerd-viz/web" in refused_servers


# The failure the checksum prevents.


def test_without_the_checksum_step_1_restarts_neither_identity_nor_extensions_nor_demo(without_checksum):
    for cluster in CLUSTERS:
        assert without_checksum[TRUST_BOTH].started[cluster] == RESTARTED_BY_ANY_UPGRADE


def test_without_the_checksum_step_2_leaves_identity_on_the_old_issuer_and_proxies_that_reject_the_new_one(without_checksum):
    step = without_checksum[SIGN_WITH_NEXT]
    for cluster in CLUSTERS:
        identity = step.after.clusters[cluster].identity
        assert identity.skipped == [deployed_issuer(step, cluster)] and identity.issuer != deployed_issuer(step, cluster), cluster
        untrusting = {workload for (where, workload), proxy in step.after.proxies().items() if where == cluster and not chains(deployed_issuer(step, cluster), proxy.roots)}
        assert VIZ_PODS | DEMO_PODS | MULTICLUSTER_PODS[cluster] <= untrusting
    # The next time identity restarts (a node drain, an upgrade), it signs with the new issuer
    # and those proxies refuse every pod that starts after it.
    pods = step.after.fork()
    for cluster in CLUSTERS:
        pods.rollout_restart(cluster, IDENTITY)
        pods.rollout_restart(cluster, TEAM_APP)
    assert refused_connections(pods.proxies())


def test_identity_does_not_start_with_an_issuer_outside_its_bundle(rotation):
    # Why the signing anchor must stay in the bundle: after step 3, an issuer still signed by
    # `primary` would stop identity at its next start.
    pods = rotation[DROP_PRIMARY].after.fork()
    pods.clusters["west"].issuer = deployed_issuer(rotation[TRUST_BOTH], "west")
    with pytest.raises(IdentityCrashLoop):
        pods.rollout_restart("west", IDENTITY)


# A late rotation: begun when verify says the anchor expires before the issuer, which is exactly
# when it says to rotate. Linkerd on one cluster (tests/program.py), each step an `up` of the same
# stack at a simulated time, verify's certificate checks read through the cluster's API.

LATE_START = dt.datetime(2026, 7, 6, 5, 17, tzinfo=dt.timezone.utc)
# The first anchor outlives the first issuer (8760 h) by little, so the renewal signs one that outlives it.
SHORT_ANCHOR = IdentitySpec(anchor_validity_hours=9000)
LATE_STEPS = {
    INSTALL: (0, SHORT_ANCHOR),
    RENEW: (7400, SHORT_ANCHOR),  # the first up of the next renewal period
    TRUST_BOTH: (7401, replace(SHORT_ANCHOR, anchor_validity_hours=87600, anchors=("primary", "next"))),
    SIGN_WITH_NEXT: (7402, replace(SHORT_ANCHOR, anchor_validity_hours=87600, anchors=("primary", "next"), signing_anchor="next")),
    DROP_PRIMARY: (7426, replace(SHORT_ANCHOR, anchor_validity_hours=87600, anchors=("next",), signing_anchor="next")),
}


@dataclass
class LateStep:
    failed: dict[str, str]  # verify's failing certificate checks -> hints
    anchors: dict[str, x509.Certificate]  # by the name in the config
    issuer: x509.Certificate


@pytest.fixture(scope="module")
def late_rotation() -> dict[str, LateStep]:
    clock = FakeClock(LATE_START)
    fakes, prior, steps = FakeCloud(clock), None, {}
    for name, (hours, spec) in LATE_STEPS.items():
        clock.advance(hours - (clock.now() - LATE_START).total_seconds() / 3600)
        prior = run(fakes, linkerd_on_one_cluster(spec, clock.now()), prior=prior)
        checks = cluster_checks(fakes, prior.outputs["kubeconfig"], "solo", spec.issuer_renew_before_hours, clock.now())
        issuer = x509.load_pem_x509_certificate(prior.monitor.named(LOCALLY_SIGNED, "issuer-solo").state["certPem"].encode())
        steps[name] = LateStep({check: hint for check, hint in checks.items() if hint}, anchors(Step(name, prior, fakes, None, None, {})), issuer)
    return steps


def test_a_late_renewal_signs_an_issuer_that_outlives_its_anchor_and_verify_says_so(late_rotation):
    step = late_rotation[RENEW]
    assert step.anchors["primary"].not_valid_after_utc < step.issuer.not_valid_after_utc
    assert set(step.failed) == {"anchor-expiry"}
    assert "which signs the issuer of solo, expires before it" in step.failed["anchor-expiry"]
    # Trusting the next anchor changes nothing yet: primary still signs the issuer.
    assert set(late_rotation[TRUST_BOTH].failed) == {"anchor-expiry"}


def test_after_step_2_of_a_late_rotation_verify_passes_though_the_old_anchor_expires_first(late_rotation):
    step = late_rotation[SIGN_WITH_NEXT]
    # The case verify used to block: an anchor of the bundle expires before the issuer...
    assert step.anchors["primary"].not_valid_after_utc < step.issuer.not_valid_after_utc
    # ... but it no longer signs it.
    assert chains(step.issuer, (step.anchors["next"],)) and not chains(step.issuer, (step.anchors["primary"],))
    assert step.failed == {}
    assert late_rotation[DROP_PRIMARY].failed == {}
