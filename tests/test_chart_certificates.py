"""The certificates Linkerd's charts generate are renewed before they lapse, with the issuers.

Facts (linkerd/linkerd2 edge-26.6.3, stated here in our words): the control-plane chart (the
proxy-injector, sp-validator and policy-validator webhooks) and the viz chart (the tap APIService
and the tap-injector webhook) make new self-signed certificates, valid 365 days, each time Helm
renders them, and nothing else renews them; Helm renders a release only when an `up` changes it.
The fake release renders them so (tests/fake_charts.py), at the time of a simulated clock.

The walk: Linkerd on one cluster, deployed every four weeks for two and a half years (the deploy
workflow runs weekly: this schedule is slower, so stricter), the clock advanced in between. At
each deploy, before its `up`, no certificate may have lapsed and verify may report a chart's
certificate only when it reports the issuer too; after it, verify finds nothing near its end. The
`up` itself is run when it can change something, at the first deploy of a new renewal period;
an `up` with the same config in the same period changes nothing, which the walk shows on the
first two deploys after each install or renewal, where it also checks that nothing restarts.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Optional

import pytest
from cryptography import x509

from components import linkerd
from components.config import IdentitySpec
from components.identity import renewal_period
from tests.fake_cloud import FakeCloud
from tests.fake_clock import FakeClock
from tests.fake_pods import FakePods
from tests.harness import Run, run
from tests.fake_kubernetes import FakeCluster
from tests.program import RenderedCluster, certificate_checks, linkerd_on_one_cluster

# Not at a renewal-period boundary: the first renewal comes part way into the issuer's life.
START = dt.datetime(2026, 7, 6, 5, 17, tzinfo=dt.timezone.utc)
UP_EVERY_HOURS = 4 * 7 * 24
WALK_HOURS = 30 * 30 * 24
# Long enough for a 365-day certificate to lapse, and for the deploy after that.
LAPSE_WALK_HOURS = 400 * 24
CLUSTER = "solo"
GENERATED_BY = {
    "linkerd-control-plane": {"linkerd-proxy-injector-webhook-config", "linkerd-sp-validator-webhook-config", "linkerd-policy-validator-webhook-config"},
    "linkerd-viz": {"linkerd-tap-injector-webhook-config", "v1alpha1.tap.linkerd.io"},
}
# Pods whose templates hash the generated certificates (checksum/config): a new render restarts them.
SERVING_NEW_CERTIFICATES = {"linkerd/linkerd-destination", "linkerd/linkerd-proxy-injector", "linkerd-viz/tap", "linkerd-viz/tap-injector"}


def chart_certificates(cluster: FakeCluster) -> dict[str, x509.Certificate]:
    """Object name -> the certificate in its caBundle, as the API server holds it."""
    found = {}
    for rendered in cluster.rendered.values():
        for obj in rendered.values():
            kind = obj.get("kind")
            if kind == "APIService":
                bundle = obj["spec"]["caBundle"]
            elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                bundle = obj["webhooks"][0]["clientConfig"]["caBundle"]
            else:
                continue
            found[obj["metadata"]["name"]] = x509.load_pem_x509_certificate(base64.b64decode(bundle))
    return found


@dataclass
class Walk:
    # (time, object names) of certificates found lapsed at a deploy, before its `up`.
    lapsed: list[tuple[dt.datetime, set[str]]] = field(default_factory=list)
    # (time, check -> hint) of verify's failures at each deploy, before and after its `up`.
    before_up: list[tuple[dt.datetime, dict[str, str]]] = field(default_factory=list)
    after_up: list[tuple[dt.datetime, dict[str, str]]] = field(default_factory=list)
    # (time, whether the renewal period changed, the pods that the `up` restarted).
    restarts: list[tuple[dt.datetime, bool, set[str]]] = field(default_factory=list)
    renewals: int = 0


def failures(checks: dict[str, Optional[str]]) -> dict[str, str]:
    return {name: hint for name, hint in checks.items() if hint is not None}


def walk(spec: IdentitySpec, hours: int = WALK_HOURS) -> Walk:
    clock = FakeClock(START)
    fakes, pods, result = FakeCloud(clock), FakePods(), Walk()
    prior: Optional[Run] = None
    period, same_period_ups = None, 0
    while clock.now() < START + dt.timedelta(hours=hours):
        now = clock.now()
        renewed = period is not None and renewal_period(now, spec) != period
        if prior is not None:
            (cluster,) = fakes.kubernetes.clusters.values()
            lapsed = {name for name, cert in chart_certificates(cluster).items() if cert.not_valid_after_utc <= now}
            if lapsed:
                result.lapsed.append((now, lapsed))
            result.before_up.append((now, failures(certificate_checks(RenderedCluster(cluster), spec.issuer_renew_before_hours, now))))
        same_period_ups = 0 if renewed or prior is None else same_period_ups + 1
        if prior is None or renewed or same_period_ups <= 2:
            prior = run(fakes, linkerd_on_one_cluster(spec, now, CLUSTER), prior=prior)
            result.restarts.append((now, renewed, pods.deploy(fakes.kubernetes)[CLUSTER]))
            result.renewals += renewed
            period = renewal_period(now, spec)
        (cluster,) = fakes.kubernetes.clusters.values()
        result.after_up.append((now, failures(certificate_checks(RenderedCluster(cluster), spec.issuer_renew_before_hours, now))))
        clock.advance(UP_EVERY_HOURS)
    return result


@pytest.fixture(scope="module")
def default_walk() -> Walk:
    return walk(IdentitySpec())


def test_the_walk_spans_more_than_two_renewals_and_two_chart_certificate_lifetimes(default_walk):
    assert default_walk.renewals >= 2 and WALK_HOURS > 2 * 365 * 24


def test_no_chart_certificate_ever_lapses(default_walk):
    assert default_walk.lapsed == []


def test_after_each_up_verify_finds_every_certificate_far_from_its_end(default_walk):
    assert [(when, failed) for when, failed in default_walk.after_up if failed] == []


def test_verify_never_reports_a_chart_certificate_before_the_issuer(default_walk):
    # Between a new renewal period and the `up` that starts it, both are within the window.
    flagged = [(when, failed) for when, failed in default_walk.before_up if "chart-certificates" in failed]
    assert flagged, "the walk never came near a certificate's end: it proves nothing about verify"
    assert all("issuer-expiry" in failed for _, failed in flagged)
    assert not any("expired" in hint for _, failed in default_walk.before_up for hint in failed.values())


def test_a_renewal_restarts_only_the_pods_that_serve_new_certificates_and_other_ups_restart_nothing(default_walk):
    _, _, installed = default_walk.restarts[0]
    assert SERVING_NEW_CERTIFICATES < installed
    for when, renewed, started in default_walk.restarts[1:]:
        assert started == (SERVING_NEW_CERTIFICATES if renewed else set()), when


# What the renewal marker and the config's limit prevent.


def test_without_the_renewal_marker_viz_certificates_lapse_after_a_year(monkeypatch):
    monkeypatch.setattr(linkerd, "certificates_renewal", lambda marker: "always the same")
    lapsed = walk(IdentitySpec(), hours=LAPSE_WALK_HOURS).lapsed
    assert lapsed and set().union(*(names for _, names in lapsed)) == GENERATED_BY["linkerd-viz"]
    first, _ = lapsed[0]
    assert START + dt.timedelta(days=365) < first <= START + dt.timedelta(days=365, hours=UP_EVERY_HOURS)


def test_an_issuer_lifetime_over_a_year_lets_every_chart_certificate_lapse():
    # The config refuses it (tests/test_config.py); here is why: renewed every 16080 h, the
    # charts' 8760-h certificates lapse long before the next renewal (the walk spans one whole period).
    spec = IdentitySpec(issuer_validity_hours=17520, issuer_renew_before_hours=1440)
    lapsed = walk(spec, hours=2 * (spec.issuer_validity_hours - spec.issuer_renew_before_hours)).lapsed
    assert lapsed and set().union(*(names for _, names in lapsed)) == GENERATED_BY["linkerd-control-plane"] | GENERATED_BY["linkerd-viz"]
