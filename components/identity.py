"""The mesh's identity: one trust anchor (root CA) and the issuers (intermediate CAs) it signs.

Linkerd accepts ECDSA P-256 issuers signed with ECDSA-SHA256 and marked as CAs; every cluster
of one mesh must trust the same anchor, or cross-cluster mTLS fails. pulumi-tls's ECDSA default
is P-224, so the curve is always set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_tls as tls

from components.config import IdentitySpec

TRUST_ANCHOR_COMMON_NAME = "root.linkerd.cluster.local"
ISSUER_COMMON_NAME = "identity.linkerd.cluster.local"
CA_USES = ["cert_signing", "crl_signing"]
SHARED_ISSUER = "shared"
# A pod-template annotation that changes exactly when the trust bundle does.
TRUST_BUNDLE_ANNOTATION = "checksum/trust-anchors"


@dataclass(frozen=True)
class MeshIdentityArgs:
    spec: IdentitySpec
    cluster_names: Sequence[str]
    # The time of this run; the issuers' renewal period is computed from it.
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


def renewal_period(now: dt.datetime, spec: IdentitySpec) -> int:
    """Which renewal period `now` is in; an issuer is re-issued when the period changes.

    Periods are `issuerValidityHours - issuerRenewBeforeHours` long, so an issuer issued at any
    time sees the next period start at least `issuerRenewBeforeHours` before it expires: the
    first `pulumi up` after that re-issues it. (pulumi-tls's own early renewal only acts on a
    refresh, so it is not relied on.)
    """
    return int(now.timestamp() // 3600 // (spec.issuer_validity_hours - spec.issuer_renew_before_hours))


def renewal_marker(period: int) -> str:
    """Names a renewal period; it changes exactly when the issuers are re-issued."""
    return f"renewal-period-{period}"


def trust_bundle_annotations(trust_anchor_pem: str) -> dict[str, str]:
    """Pod annotations that restart a pod when, and only when, the trust bundle changes.

    Linkerd hands the roots to each pod once, at start: the identity controller reads them when
    it starts (controller/cmd/identity/main.go) and skips a new issuer that does not chain to
    them (pkg/identity/service.go); every proxy gets them as an environment variable, from the
    roots ConfigMap or from the injector (charts/partials/templates/_proxy.tpl). A Helm upgrade
    that changes only the roots changes no pod template, so without this nothing restarts.
    The issuer is left out: identity reloads it by itself, and a renewal must restart nothing.
    """
    return {TRUST_BUNDLE_ANNOTATION: hashlib.sha256(trust_anchor_pem.strip().encode()).hexdigest()}


@dataclass(frozen=True)
class Issuer:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret
    expires_at: pulumi.Output[str]


def _p256_key(name: str, parent: pulumi.Resource, ignore_changes: Optional[list[str]] = None) -> tls.PrivateKey:
    return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=pulumi.ResourceOptions(parent=parent, ignore_changes=ignore_changes))


class MeshIdentity(pulumi.ComponentResource):
    """`issuers[cluster]` is that cluster's issuer; with a shared issuer, all are the same one.
    `trust_anchor_pem` is the bundle of every configured anchor. `renewal_marker` changes exactly
    when the issuers are re-issued: what else must be renewed on their schedule depends on it."""

    trust_anchor_pem: pulumi.Output[str]
    issuers: dict[str, Issuer]
    renewal_marker: str

    def __init__(self, name: str, args: MeshIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:MeshIdentity", name, None, opts)
        spec = args.spec
        anchors = {anchor_name: self._anchor(anchor_name, spec) for anchor_name in spec.anchors}
        # Every cluster trusts the whole bundle, so issuers signed by any of them are accepted.
        self.trust_anchor_pem = pulumi.Output.all(*(cert.cert_pem for _, cert in anchors.values())).apply("".join)
        anchor_key, anchor = anchors[spec.signing_anchor]
        owners = [SHARED_ISSUER] if spec.shared_issuer else list(args.cluster_names)
        self.renewal_marker = renewal_marker(renewal_period(args.now, spec))
        minted = {owner: self._issuer(owner, anchor_key, anchor, spec) for owner in owners}
        self.issuers = {cluster: minted[SHARED_ISSUER if spec.shared_issuer else cluster] for cluster in args.cluster_names}
        self.register_outputs(
            {
                "trust_anchor_pem": self.trust_anchor_pem,
                "issuer_expiry": {cluster: issuer.expires_at for cluster, issuer in self.issuers.items()},
            }
        )

    def _anchor(self, name: str, spec: IdentitySpec) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
        # An anchor is never replaced by a config change: a new anchor would break every link
        # until all clusters trust it. Rotating it is a deliberate procedure (docs/identity.md);
        # a changed lifetime applies to anchors added from then on.
        key = _p256_key(f"trust-anchor-key-{name}", self, ignore_changes=["algorithm", "ecdsaCurve"])
        cert = tls.SelfSignedCert(
            f"trust-anchor-{name}",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=TRUST_ANCHOR_COMMON_NAME),
            validity_period_hours=spec.anchor_validity_hours,
            is_ca_certificate=True,
            allowed_uses=CA_USES,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["validityPeriodHours", "subject", "allowedUses", "isCaCertificate"]),
        )
        return key, cert

    def _issuer(self, owner: str, anchor_key: tls.PrivateKey, anchor: tls.SelfSignedCert, spec: IdentitySpec) -> Issuer:
        key = _p256_key(f"issuer-key-{owner}", self)
        request = tls.CertRequest(
            f"issuer-request-{owner}",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=ISSUER_COMMON_NAME),
            opts=pulumi.ResourceOptions(parent=self),
        )
        cert = tls.LocallySignedCert(
            f"issuer-{owner}",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=anchor_key.private_key_pem,
            ca_cert_pem=anchor.cert_pem,
            validity_period_hours=spec.issuer_validity_hours,
            # Also renews on `pulumi up --refresh` inside the window.
            early_renewal_hours=spec.issuer_renew_before_hours,
            is_ca_certificate=True,
            allowed_uses=CA_USES,
            # A new period re-issues the certificate; it reaches the control plane through its
            # Helm values.
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=self.renewal_marker),
        )
        return Issuer(cert_pem=cert.cert_pem, key_pem=pulumi.Output.secret(key.private_key_pem), expires_at=cert.validity_end_time)
