"""Test certificates made with `cryptography`: a self-signed P-256 CA, as PEM or as an object, and
certificates it signs for a TLS server or client (with their keys)."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_ca(common_name: str, days: int = 365) -> x509.Certificate:
    return signing_ca(common_name, days)[0]


def signing_ca(common_name: str, days: int = 365) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    ), key


def signed_leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], common_name: str, server_ip: str | None = None) -> tuple[str, str]:
    """(certificate PEM, key PEM) signed by `ca`: a server's for `server_ip`, or else a client's
    (an API server's x509 authenticator takes the CN as the user name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if server_ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return pem(builder.sign(ca[1], hashes.SHA256())), key_pem


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
