"""The mesh's identity, checked the way Linkerd checks it: the minted certificates are parsed and
their signatures verified with `cryptography`, never compared as strings.

What Linkerd requires, stated here rather than read from the components under test:
- the trust anchor and every issuer have ECDSA keys on P-256 and are signed with ECDSA-SHA256;
- both are CAs: BasicConstraints CA:TRUE (critical) and the key usage "certificate signing";
- the anchor is a self-signed root named CN=root.linkerd.cluster.local, the issuer an
  intermediate named CN=identity.linkerd.cluster.local that the anchor signed;
- every cluster of one mesh trusts the same anchor, or cross-cluster mTLS fails;
- `linkerd check` warns once a certificate has fewer than 60 days left.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterator

import pulumi
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from pulumi.runtime import rpc

from components.config import IdentitySpec
from components.identity import MeshIdentity, MeshIdentityArgs, renewal_period
from tests.certificates import self_signed_ca
from tests.fake_cloud import FakeCloud
from tests.harness import Run, run, run_main, unwrap

ANCHOR_CN = "root.linkerd.cluster.local"
ISSUER_CN = "identity.linkerd.cluster.local"
CHECK_WARNING = dt.timedelta(days=60)
DEFAULT_ANCHOR_HOURS = 87600  # ten years
DEFAULT_ISSUER_HOURS = 8760  # one year
CLUSTERS = ["west", "east"]

SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
RELEASE = "kubernetes:helm.sh/v3:Release"
# Lifetimes unlike the defaults, so a hard-coded value in the component would show.
CUSTOM = IdentitySpec(anchor_validity_hours=20000, issuer_validity_hours=3000, issuer_renew_before_hours=1500)
ISO_8601_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def identity_program(spec: IdentitySpec):
    """MeshIdentity alone, exporting what build_mesh consumes from it."""

    def program():
        identity = MeshIdentity("mesh-identity", MeshIdentityArgs(spec=spec, cluster_names=CLUSTERS))
        pulumi.export("anchor", identity.trust_anchor_pem)
        pulumi.export("issuers", {name: {"cert": i.cert_pem, "key": i.key_pem, "expires": i.expires_at} for name, i in identity.issuers.items()})

    return program


@pytest.fixture(scope="module")
def per_cluster() -> Run:
    return run(FakeCloud(), identity_program(IdentitySpec()))


@pytest.fixture(scope="module")
def shared() -> Run:
    return run(FakeCloud(), identity_program(IdentitySpec(shared_issuer=True)))


@pytest.fixture(scope="module")
def custom() -> Run:
    return run(FakeCloud(), identity_program(CUSTOM))


@pytest.fixture(scope="module")
def mesh() -> Run:
    return run_main(FakeCloud())


def load_cert(pem: Any) -> x509.Certificate:
    return x509.load_pem_x509_certificate(unwrap(pem).encode())


def load_key(pem: Any) -> ec.EllipticCurvePrivateKey:
    return serialization.load_pem_private_key(unwrap(pem).encode(), password=None)


def anchor_of(result: Run) -> x509.Certificate:
    """The anchor as the provider minted it (registration state), not as the program relayed it."""
    (anchor,) = result.monitor.of_type(SELF_SIGNED)
    return load_cert(anchor.state["certPem"])


def minted_issuers(result: Run) -> list[x509.Certificate]:
    return [load_cert(r.state["certPem"]) for r in result.monitor.of_type(LOCALLY_SIGNED)]


def component_issuer(result: Run, cluster: str) -> x509.Certificate:
    """`identity.issuers[cluster]`'s certificate, checked to be one the provider really minted."""
    cert = load_cert(result.outputs["issuers"][cluster]["cert"])
    assert cert in minted_issuers(result), f"{cluster}'s issuer is not a minted LocallySignedCert"
    return cert


def common_name(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def same_public_key(a, b) -> bool:
    encode = lambda key: key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return encode(a) == encode(b)


def impostor_anchor() -> x509.Certificate:
    """A CA with the anchor's very name but another key: only a signature check tells them apart."""
    return self_signed_ca(ANCHOR_CN, days=1)


def lifetime_hours(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc) / dt.timedelta(hours=1)


# The component alone.


def test_anchor_and_issuers_are_p256_keys_signed_with_ecdsa_sha256(per_cluster):
    for cert in [anchor_of(per_cluster), *(component_issuer(per_cluster, c) for c in CLUSTERS)]:
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1), common_name(cert.subject)
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256


def test_anchor_and_issuers_are_certificate_authorities(per_cluster):
    for cert in [anchor_of(per_cluster), *(component_issuer(per_cluster, c) for c in CLUSTERS)]:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca, common_name(cert.subject)
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_anchor_is_a_self_signed_root_with_linkerds_name(per_cluster):
    anchor = anchor_of(per_cluster)
    assert common_name(anchor.subject) == ANCHOR_CN
    anchor.verify_directly_issued_by(anchor)
    assert load_cert(per_cluster.outputs["anchor"]) == anchor


def test_each_issuer_is_signed_by_the_anchor_and_by_no_other_ca(per_cluster):
    anchor, impostor = anchor_of(per_cluster), impostor_anchor()
    for cluster in CLUSTERS:
        issuer = component_issuer(per_cluster, cluster)
        assert common_name(issuer.subject) == ISSUER_CN
        issuer.verify_directly_issued_by(anchor)
        # Same issuer name, other key: the signature check must be what fails.
        with pytest.raises(InvalidSignature):
            issuer.verify_directly_issued_by(impostor)


def test_each_issuers_key_is_the_one_its_certificate_certifies(per_cluster):
    for cluster in CLUSTERS:
        key = load_key(per_cluster.outputs["issuers"][cluster]["key"])
        assert same_public_key(key.public_key(), component_issuer(per_cluster, cluster).public_key()), cluster


def test_default_lifetimes_outlast_linkerds_warning_and_the_issuer_expires_first(per_cluster):
    anchor = anchor_of(per_cluster)
    assert lifetime_hours(anchor) == DEFAULT_ANCHOR_HOURS
    for cluster in CLUSTERS:
        issuer = component_issuer(per_cluster, cluster)
        assert lifetime_hours(issuer) == DEFAULT_ISSUER_HOURS
        assert issuer.not_valid_after_utc >= dt.datetime.now(dt.timezone.utc) + CHECK_WARNING
        assert issuer.not_valid_after_utc < anchor.not_valid_after_utc


def test_configured_lifetimes_reach_the_certificates(custom):
    anchor = anchor_of(custom)
    assert lifetime_hours(anchor) == CUSTOM.anchor_validity_hours
    for cluster in CLUSTERS:
        issuer = component_issuer(custom, cluster)
        assert lifetime_hours(issuer) == CUSTOM.issuer_validity_hours
        assert issuer.not_valid_after_utc < anchor.not_valid_after_utc


def test_every_cluster_gets_its_own_issuer_under_one_shared_anchor(per_cluster):
    assert len(per_cluster.monitor.of_type(SELF_SIGNED)) == 1
    west, east = (component_issuer(per_cluster, c) for c in CLUSTERS)
    assert not same_public_key(west.public_key(), east.public_key())
    assert west.serial_number != east.serial_number
    west_key, east_key = (per_cluster.outputs["issuers"][c]["key"] for c in CLUSTERS)
    assert west_key != east_key
    anchor = anchor_of(per_cluster)
    west.verify_directly_issued_by(anchor)
    east.verify_directly_issued_by(anchor)


def test_a_shared_issuer_is_one_certificate_and_key_for_every_cluster(shared):
    assert len(shared.monitor.of_type(LOCALLY_SIGNED)) == 1
    issuers = shared.outputs["issuers"]
    assert issuers["west"] == issuers["east"]
    cert = component_issuer(shared, "west")
    cert.verify_directly_issued_by(anchor_of(shared))
    assert same_public_key(load_key(issuers["west"]["key"]).public_key(), cert.public_key())


@pytest.mark.parametrize("result, spec", [("per_cluster", IdentitySpec()), ("custom", CUSTOM)])
def test_issuers_renew_early_but_the_anchor_never_renews_by_itself(request, result, spec):
    result = request.getfixturevalue(result)
    issuers = result.monitor.of_type(LOCALLY_SIGNED)
    assert len(issuers) == len(CLUSTERS)
    for issuer in issuers:
        assert issuer.inputs.get("earlyRenewalHours") == spec.issuer_renew_before_hours, issuer.name
    # A renewed anchor would be a new root that no cluster trusts yet.
    (anchor,) = result.monitor.of_type(SELF_SIGNED)
    assert not anchor.inputs.get("earlyRenewalHours")


# The whole program: what each cluster's control plane is installed with.


def control_planes(mesh: Run) -> dict[str, Any]:
    """The linkerd-control-plane release of each cluster, keyed by the cluster its provider targets."""
    releases = {}
    for release in mesh.monitor.of_type(RELEASE):
        if release.inputs.get("chart") != "linkerd-control-plane":
            continue
        provider_urn = release.provider.rsplit("::", 1)[0]  # the reference is "<urn>::<id>"
        cluster = mesh.monitor.registrations[mesh.monitor.registrations[provider_urn].parent].name
        assert release.name == f"linkerd-control-plane-{cluster}"
        releases[cluster] = release
    assert sorted(releases) == sorted(CLUSTERS)
    return releases


def deployed_issuer(mesh: Run, cluster: str) -> tuple[x509.Certificate, Any]:
    tls = unwrap(control_planes(mesh)[cluster].inputs["values"])["identity"]["issuer"]["tls"]
    return load_cert(tls["crtPEM"]), load_key(tls["keyPEM"])


def test_each_control_plane_trusts_the_exported_anchor_and_runs_its_own_issuer(mesh):
    anchor_pem = mesh.outputs["trustAnchorPem"]
    anchor = load_cert(anchor_pem)
    assert anchor == anchor_of(mesh)
    serials = set()
    for cluster, release in control_planes(mesh).items():
        assert unwrap(release.inputs["values"])["identityTrustAnchorsPEM"] == anchor_pem
        cert, key = deployed_issuer(mesh, cluster)
        assert cert == load_cert(mesh.monitor.named(LOCALLY_SIGNED, f"issuer-{cluster}").state["certPem"])
        assert same_public_key(key.public_key(), cert.public_key()), cluster
        cert.verify_directly_issued_by(anchor)
        serials.add(cert.serial_number)
    assert len(serials) == len(CLUSTERS), "the clusters share an issuer although sharedIssuer is off"


def test_control_plane_values_hold_the_issuer_key_only_as_a_secret(mesh):
    for cluster, release in control_planes(mesh).items():
        values = release.inputs["values"]
        assert "PRIVATE KEY" in unwrap(values)["identity"]["issuer"]["tls"]["keyPEM"]
        assert [path for path, secret in private_keys(values) if not secret] == [], cluster


# No private key outside a secret, anywhere the engine or the stack outputs would keep it.


def private_keys(value: Any, path: str = "", secret: bool = False) -> Iterator[tuple[str, bool]]:
    """(path, inside a secret) of every string that holds a PEM private key."""
    if rpc.is_rpc_secret(value):
        yield from private_keys(rpc.unwrap_rpc_secret(value), path, True)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from private_keys(item, f"{path}.{key}", secret)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from private_keys(item, f"{path}[{index}]", secret)
    elif isinstance(value, str) and "PRIVATE KEY" in value:
        yield path, secret


def everything_recorded(result: Run) -> dict[str, Any]:
    """Every registration's inputs and state, and every stack output (secret ones wrapped)."""
    recorded = {}
    for registration in result.monitor.registrations.values():
        recorded[f"{registration.urn} inputs"] = registration.inputs
        recorded[f"{registration.urn} state"] = registration.state
    for name, value in result.outputs.items():
        recorded[f"output {name}"] = rpc.wrap_rpc_secret(value) if name in result.secret_outputs else value
    return recorded


def test_the_private_key_walker_finds_plain_keys_and_respects_secrets():
    # Minted here: the repository holds no key, not even a test one.
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode()
    found = dict(private_keys({"values": [{"keyPEM": pem}], "hidden": rpc.wrap_rpc_secret({"nested": [pem]}), "cert": "CERTIFICATE"}))
    assert found == {".values[0].keyPEM": False, ".hidden.nested[0]": True}


def test_a_leaked_issuer_key_output_is_caught():
    def leaky():
        identity = MeshIdentity("mesh-identity", MeshIdentityArgs(spec=IdentitySpec(), cluster_names=CLUSTERS))
        pulumi.export("leak", pulumi.Output.unsecret(identity.issuers["west"].key_pem))

    plain = [where for where, value in everything_recorded(run(FakeCloud(), leaky)).items() for _, secret in private_keys(value) if not secret]
    assert plain == ["output leak"]


def test_no_private_key_is_recorded_or_exported_outside_a_secret(mesh):
    found = [(where + path, secret) for where, value in everything_recorded(mesh).items() for path, secret in private_keys(value)]
    assert [where for where, secret in found if not secret] == []
    # The walk did meet the keys: the anchor's, each issuer's, and the control planes' values.
    assert sum(secret for _, secret in found) >= 1 + len(CLUSTERS) * 2


def test_the_trust_anchor_output_is_public_and_issuer_expiry_is_each_deployed_issuers_end(mesh):
    assert "trustAnchorPem" not in mesh.secret_outputs
    assert "BEGIN CERTIFICATE" in mesh.outputs["trustAnchorPem"]
    expiry = mesh.outputs["issuerExpiry"]
    assert sorted(expiry) == sorted(CLUSTERS)
    for cluster, timestamp in expiry.items():
        assert ISO_8601_UTC.match(timestamp), timestamp
        cert, _ = deployed_issuer(mesh, cluster)
        assert dt.datetime.fromisoformat(timestamp) == cert.not_valid_after_utc


# Anchor rotation: every configured anchor is trusted, only the signing one signs.

ROTATING = IdentitySpec(anchors=("primary", "next"), signing_anchor="next")


@pytest.fixture(scope="module")
def rotating() -> Run:
    return run(FakeCloud(), identity_program(ROTATING))


def test_during_rotation_clusters_trust_both_anchors_and_issuers_chain_to_the_signing_one(rotating):
    minted = {r.name: load_cert(r.state["certPem"]) for r in rotating.monitor.of_type(SELF_SIGNED)}
    assert sorted(minted) == ["trust-anchor-next", "trust-anchor-primary"]
    bundle = x509.load_pem_x509_certificates(rotating.outputs["anchor"].encode())
    assert bundle == [minted["trust-anchor-primary"], minted["trust-anchor-next"]]
    for cluster in CLUSTERS:
        issuer = component_issuer(rotating, cluster)
        issuer.verify_directly_issued_by(minted["trust-anchor-next"])
        with pytest.raises(InvalidSignature):
            issuer.verify_directly_issued_by(minted["trust-anchor-primary"])


# Renewal without relying on a refresh: a new renewal period re-issues the issuers.


def test_issuers_are_reissued_when_the_renewal_period_changes():
    spec = IdentitySpec()  # 8760 h issuers renewed in their last 1440 h: 7320 h periods
    start = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)

    def triggers(now: dt.datetime) -> dict[str, str]:
        def program():
            MeshIdentity("mesh-identity", MeshIdentityArgs(spec=spec, cluster_names=CLUSTERS, now=now))

        result = run(FakeCloud(), program)
        return {r.name: r.replacement_trigger for r in result.monitor.of_type(LOCALLY_SIGNED)}

    first = triggers(start)
    assert set(first) == {"issuer-west", "issuer-east"} and all(first.values())
    period = renewal_period(start, spec)
    next_period = dt.datetime.fromtimestamp((period + 1) * 7320 * 3600, dt.timezone.utc)
    assert triggers(next_period - dt.timedelta(hours=1)) == first, "re-issued within a period"
    assert triggers(next_period) != first, "not re-issued when a new period starts"


def test_a_new_period_starts_before_any_issuer_enters_its_last_60_days():
    spec = IdentitySpec()
    period_hours = spec.issuer_validity_hours - spec.issuer_renew_before_hours
    for issued_hours in range(0, 3 * period_hours, 97):  # issued at many points of several periods
        issued = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=issued_hours)
        expires = issued + dt.timedelta(hours=spec.issuer_validity_hours)
        next_period_start = dt.datetime.fromtimestamp((renewal_period(issued, spec) + 1) * period_hours * 3600, dt.timezone.utc)
        assert next_period_start <= expires - dt.timedelta(hours=spec.issuer_renew_before_hours)


def test_config_changes_never_replace_the_anchor(per_cluster):
    (anchor,) = per_cluster.monitor.of_type(SELF_SIGNED)
    assert {"validityPeriodHours", "subject", "allowedUses", "isCaCertificate"} <= set(anchor.ignore_changes)
    (key,) = [r for r in per_cluster.monitor.of_type("tls:index/privateKey:PrivateKey") if r.name.startswith("trust-anchor-key")]
    assert {"algorithm", "ecdsaCurve"} <= set(key.ignore_changes)
