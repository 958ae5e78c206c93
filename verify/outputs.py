"""Reads and validates the stack outputs (`pulumi stack output --json`; none of them is secret)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from cryptography import x509


# identity.issuerRenewBeforeHours' default (60 days, when `linkerd check` starts warning), for
# stacks deployed before the program exported it.
DEFAULT_ISSUER_RENEW_BEFORE_HOURS = 1440


class OutputsError(Exception):
    """The stack outputs are missing or do not have the expected shape."""


@dataclass(frozen=True)
class Link:
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}->{self.target}"


@dataclass(frozen=True)
class Export:
    cluster: str
    namespace: str
    service: str
    mode: str


@dataclass(frozen=True)
class StackOutputs:
    kubeconfigs: dict[str, str]
    gateway_addresses: dict[str, str]
    links: tuple[Link, ...]
    exports: tuple[Export, ...]
    trust_anchor_pem: str
    issuer_renew_before_hours: int = DEFAULT_ISSUER_RENEW_BEFORE_HOURS

    def exports_of(self, cluster: str) -> list[Export]:
        return [export for export in self.exports if export.cluster == cluster]


def _require(raw: dict, key: str, kind: type) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind):
        raise OutputsError(f"stack output {key!r} is missing or not a {kind.__name__}; did `pulumi up` finish?")
    return value


def parse_outputs(raw: Any) -> StackOutputs:
    if not isinstance(raw, dict):
        raise OutputsError("stack outputs must be a JSON object")
    kubeconfigs = _require(raw, "kubeconfigs", dict)
    gateway_addresses = _require(raw, "gatewayAddresses", dict)
    try:
        links = tuple(Link(entry["from"], entry["to"]) for entry in _require(raw, "links", list))
        exports = tuple(
            Export(entry["cluster"], entry["namespace"], entry["service"], entry.get("mode", "gateway"))
            for entry in _require(raw, "exports", list)
        )
    except (KeyError, TypeError) as err:
        raise OutputsError(f"malformed entry in stack output 'links' or 'exports': {err!r}") from err
    outputs = StackOutputs(
        kubeconfigs=kubeconfigs,
        gateway_addresses=gateway_addresses,
        links=links,
        exports=exports,
        trust_anchor_pem=_require(raw, "trustAnchorPem", str),
        issuer_renew_before_hours=_require(raw, "issuerRenewBeforeHours", int) if "issuerRenewBeforeHours" in raw else DEFAULT_ISSUER_RENEW_BEFORE_HOURS,
    )
    try:
        x509.load_pem_x509_certificates(outputs.trust_anchor_pem.encode())
    except ValueError as err:
        raise OutputsError(f"stack output 'trustAnchorPem' is not a PEM certificate: {err}") from err
    for link in links:
        for cluster in (link.source, link.target):
            if not isinstance(kubeconfigs.get(cluster), str):
                raise OutputsError(f"no kubeconfig for cluster {cluster!r} (link {link}) in the stack outputs")
        if link.target not in gateway_addresses:
            raise OutputsError(f"no gateway address for cluster {link.target!r} (link {link}) in the stack outputs")
    return outputs


def load_outputs(path: str) -> StackOutputs:
    """Loads the outputs from a file, or from stdin when path is '-'."""
    try:
        if path == "-":
            raw = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as handle:
                raw = json.load(handle)
    except OSError as err:
        raise OutputsError(f"cannot read stack outputs: {err}") from err
    except json.JSONDecodeError as err:
        raise OutputsError(f"stack outputs are not JSON: {err}") from err
    return parse_outputs(raw)
