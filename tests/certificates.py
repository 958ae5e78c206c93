"""Test certificates made with `cryptography`: P-256 CAs, self-signed or signed by another, as PEM or
as objects, valid from `now` (the wall clock unless a test says otherwise), and certificates a CA
signs for a TLS server or client (with their keys)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def new_ca(common_name: str, days: float = 365, signed_by: Optional[Ca] = None, now: Optional[dt.datetime] = None) -> Ca:
    """A CA certificate with its key; signed by `signed_by` (with the key identifiers pulumi-tls and
    Linkerd's issuers carry), or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now or dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signed_by.cert.subject if signed_by else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if signed_by:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signed_by.key.public_key()), critical=False)
    return Ca(builder.sign(signed_by.key if signed_by else key, hashes.SHA256()), key)


def self_signed_ca(common_name: str, days: float = 365) -> x509.Certificate:
    return new_ca(common_name, days).cert


def signed_leaf(ca: Ca, common_name: str, server_ip: Optional[str] = None) -> tuple[str, str]:
    """(certificate PEM, key PEM) signed by `ca`: a server's for `server_ip`, or else a client's
    (an API server's x509 authenticator takes the CN as the user name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if server_ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return pem(builder.sign(ca.key, hashes.SHA256())), key_pem


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
