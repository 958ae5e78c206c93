"""A pulumi-tls fake that really mints keys and certificates from the program's inputs.

It behaves like the provider: ECDSA keys on the requested curve (the provider's default is
P224), certificates signed with the hash Go's x509 picks for the signing key (SHA-256 for
P-224/P-256 and RSA, SHA-384 for P-384, SHA-512 for P-521), the CA flag,
key usages and extended key usages from `allowedUses`, validity from `validityPeriodHours`, and
`readyForRenewal` as a freshly minted certificate has it. Private keys come back as plain state: the
recording monitor marks them secret because the SDK lists them in additionalSecretOutputs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.fake_clock import FakeClock
from tests.harness import unwrap

CURVES = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}
KEY_USAGE_FLAGS = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
EXTENDED_USAGES = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH, "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH}
SUBJECT_FIELDS = {
    "commonName": NameOID.COMMON_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "country": NameOID.COUNTRY_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "province": NameOID.STATE_OR_PROVINCE_NAME,
}


class FakeTls:
    def __init__(self, clock: Optional[FakeClock] = None):
        self.clock = clock or FakeClock()

    def private_key(self, inputs: dict) -> dict:
        algorithm = inputs["algorithm"]
        if algorithm == "ECDSA":
            key = ec.generate_private_key(CURVES[inputs.get("ecdsaCurve", "P224")]())
        elif algorithm == "RSA":
            key = rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits", 2048)))
        else:
            raise ValueError(f"fake tls: unsupported algorithm {algorithm}")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode()
        pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return {**inputs, "privateKeyPem": pem, "privateKeyPemPkcs8": pkcs8, "publicKeyPem": public}

    def self_signed_cert(self, inputs: dict) -> dict:
        key = _load_key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject") or {})
        return self._certificate(inputs, subject, key.public_key(), subject, key)

    def cert_request(self, inputs: dict) -> dict:
        key = _load_key(inputs["privateKeyPem"])
        csr = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject") or {})).sign(key, hashes.SHA256())
        return {**inputs, "certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}

    def locally_signed_cert(self, inputs: dict) -> dict:
        csr = x509.load_pem_x509_csr(unwrap(inputs["certRequestPem"]).encode())
        ca_cert = x509.load_pem_x509_certificate(unwrap(inputs["caCertPem"]).encode())
        ca_key = _load_key(inputs["caPrivateKeyPem"])
        return self._certificate(inputs, csr.subject, csr.public_key(), ca_cert.subject, ca_key, ca_cert)

    def _certificate(self, inputs: dict, subject: x509.Name, public_key: Any, issuer: x509.Name, signing_key: Any, ca_cert: Any = None) -> dict:
        start = self.clock.now()
        end = start + dt.timedelta(hours=int(inputs["validityPeriodHours"]))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
        )
        uses = list(inputs.get("allowedUses") or [])
        flags = {flag: False for flag in KEY_USAGE_FLAGS.values()}
        for use in uses:
            if use in KEY_USAGE_FLAGS:
                flags[KEY_USAGE_FLAGS[use]] = True
        if any(flags.values()):
            builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
        extended = [EXTENDED_USAGES[use] for use in uses if use in EXTENDED_USAGES]
        if extended:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
        if inputs.get("isCaCertificate"):
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        if ca_cert is not None:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        cert = builder.sign(signing_key, _signature_hash(signing_key))
        early = int(inputs.get("earlyRenewalHours") or 0)
        return {
            **inputs,
            "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "validityStartTime": start.isoformat().replace("+00:00", "Z"),
            "validityEndTime": end.isoformat().replace("+00:00", "Z"),
            # Freshly minted: ready for renewal only if the early-renewal window covers it all.
            "readyForRenewal": start >= end - dt.timedelta(hours=early),
        }

    def create(self, type_: str, name: str, inputs: dict) -> dict:
        """The provider's state for the resource `name` that the program registers."""
        return self.new_resource(type_, inputs)

    def new_resource(self, type_: str, inputs: dict) -> dict:
        handlers = {
            "tls:index/privateKey:PrivateKey": self.private_key,
            "tls:index/selfSignedCert:SelfSignedCert": self.self_signed_cert,
            "tls:index/certRequest:CertRequest": self.cert_request,
            "tls:index/locallySignedCert:LocallySignedCert": self.locally_signed_cert,
        }
        if type_ not in handlers:
            raise NotImplementedError(f"fake tls has no resource {type_}")
        return handlers[type_](inputs)


def _load_key(pem: Any):
    return serialization.load_pem_private_key(unwrap(pem).encode(), password=None)


def _name(subject: dict) -> x509.Name:
    return x509.Name([x509.NameAttribute(SUBJECT_FIELDS[key], value) for key, value in subject.items() if key in SUBJECT_FIELDS and value])


def _signature_hash(key: Any) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())
    return hashes.SHA256()


# Inputs the provider updates in place; a change of any other input replaces the resource
# (terraform-provider-tls internal/provider/resource_*_cert.go: RequiresReplace on the rest).
UPDATED_IN_PLACE = ("earlyRenewalHours",)


class StatefulTls(FakeTls):
    """pulumi-tls across several `pulumi up`s of one stack: a resource keeps what it minted as long
    as no input that forces a replacement changes, as the engine keeps a resource's state when
    the provider's diff asks for no replacement. (Ignored inputs reach it as stored: tests/harness.py.)"""

    def __init__(self, clock: Optional[FakeClock] = None):
        super().__init__(clock)
        self.minted: dict[tuple[str, str], tuple[str, dict]] = {}  # (type, name) -> (inputs, state)

    def create(self, type_: str, name: str, inputs: dict) -> dict:
        replacing = {key: value for key, value in unwrap(inputs).items() if key not in UPDATED_IN_PLACE}
        canonical = json.dumps(replacing, sort_keys=True)
        kept = self.minted.get((type_, name))
        if kept is None or kept[0] != canonical:
            kept = self.minted[(type_, name)] = (canonical, self.new_resource(type_, inputs))
        return {**kept[1], **{key: inputs[key] for key in UPDATED_IN_PLACE if key in inputs}}

    def replace(self, type_: str) -> None:
        """What the engine does to resources whose replacementTrigger changed (the issuers'
        certificates, in a new renewal period: components/identity.py): the next `up` mints
        them anew, from the same keys."""
        self.minted = {key: value for key, value in self.minted.items() if key[0] != type_}
