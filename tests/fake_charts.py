"""What a render of Linkerd's charts puts in a cluster that verify reads back, by API path: the
identity's trust roots and issuer, and the certificates the charts generate.

Modelled on linkerd/linkerd2 at edge-26.6.3:
- charts/linkerd-control-plane/templates/identity.yaml: ConfigMap `linkerd-identity-trust-roots`
  (`ca-bundle.crt` = identityTrustAnchorsPEM) and Secret `linkerd-identity-issuer` (`crt.pem`,
  `key.pem`, base64) from the values;
- every render calls `genSelfSignedCert $host (list) (list $host) 365` once per webhook or
  APIService: a new certificate valid 365 days from the moment of the render, put in the serving
  Secret `<...>-k8s-tls` and, as caBundle, in the webhook configuration or APIService
  (charts/linkerd-control-plane/templates/{proxy-injector,destination}-rbac.yaml,
  viz/charts/linkerd-viz/templates/{tap-injector,tap}-rbac.yaml). The multicluster chart
  generates none. Sprig makes a new RSA-2048 key each time; the key plays no part here, so one
  P-256 key is reused, for speed.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.fake_kube_api import core_path

# Sprig's genSelfSignedCert takes days; the charts ask for 365.
CHART_CERTIFICATE_DAYS = 365
ADMISSION_API = "/apis/admissionregistration.k8s.io/v1"
AGGREGATION_API = "/apis/apiregistration.k8s.io/v1"
# chart -> (namespace, serving Secret, service host, kind, object name) of each generated certificate.
GENERATED = {
    "linkerd-control-plane": [
        ("linkerd", "linkerd-proxy-injector-k8s-tls", "linkerd-proxy-injector", "MutatingWebhookConfiguration", "linkerd-proxy-injector-webhook-config"),
        ("linkerd", "linkerd-sp-validator-k8s-tls", "linkerd-sp-validator", "ValidatingWebhookConfiguration", "linkerd-sp-validator-webhook-config"),
        ("linkerd", "linkerd-policy-validator-k8s-tls", "linkerd-policy-validator", "ValidatingWebhookConfiguration", "linkerd-policy-validator-webhook-config"),
    ],
    "linkerd-viz": [
        ("linkerd-viz", "tap-injector-k8s-tls", "tap-injector", "MutatingWebhookConfiguration", "linkerd-tap-injector-webhook-config"),
        ("linkerd-viz", "tap-k8s-tls", "tap", "APIService", "v1alpha1.tap.linkerd.io"),
    ],
}
PATHS = {
    "MutatingWebhookConfiguration": f"{ADMISSION_API}/mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": f"{ADMISSION_API}/validatingwebhookconfigurations",
    "APIService": f"{AGGREGATION_API}/apiservices",
}


@functools.lru_cache(maxsize=1)
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def gen_self_signed_cert(host: str, now: dt.datetime, days: float = CHART_CERTIFICATE_DAYS) -> x509.Certificate:
    """Sprig's genSelfSignedCert: CN and DNS name `host`, valid from now for `days`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(_key(), hashes.SHA256())
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.strip().encode()).decode()


def certificate_objects(namespace: str, secret: str, service: str, kind: str, name: str, cert: x509.Certificate) -> dict[str, dict]:
    """The serving Secret and the webhook configuration or APIService that trusts `cert`."""
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = _key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    client = {"service": {"name": service, "namespace": namespace, "path": "/"}, "caBundle": _b64(cert_pem)}
    if kind == "APIService":
        trusting = {"spec": {"group": "tap.linkerd.io", "version": "v1alpha1", "service": {"name": service, "namespace": namespace}, "caBundle": _b64(cert_pem)}}
    else:
        trusting = {"webhooks": [{"name": f"{service}.linkerd.io", "clientConfig": client}]}
    group = "apiregistration.k8s.io/v1" if kind == "APIService" else "admissionregistration.k8s.io/v1"
    return {
        core_path(namespace, "secrets", secret): {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": namespace},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": _b64(cert_pem), "tls.key": _b64(key_pem)},
        },
        f"{PATHS[kind]}/{name}": {"apiVersion": group, "kind": kind, "metadata": {"name": name}, **trusting},
    }


def render(chart: str, values: dict, now: dt.datetime) -> dict[str, dict]:
    """What one render of `chart` with `values` at `now` leaves that verify reads."""
    objects: dict[str, dict] = {}
    if chart == "linkerd-control-plane":
        objects[core_path("linkerd", "configmaps", "linkerd-identity-trust-roots")] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "linkerd-identity-trust-roots", "namespace": "linkerd"},
            "data": {"ca-bundle.crt": values["identityTrustAnchorsPEM"]},
        }
        tls = values["identity"]["issuer"]["tls"]
        objects[core_path("linkerd", "secrets", "linkerd-identity-issuer")] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "linkerd-identity-issuer", "namespace": "linkerd"},
            "data": {"crt.pem": _b64(tls["crtPEM"]), "key.pem": _b64(tls["keyPEM"])},
        }
    for namespace, secret, service, kind, name in GENERATED.get(chart, []):
        objects.update(certificate_objects(namespace, secret, service, kind, name, gen_self_signed_cert(f"{service}.{namespace}.svc", now)))
    return objects
