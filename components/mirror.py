"""A mirrored service as the linking cluster really has it, read back after the link is up.

Linkerd's service-mirror controller creates `<service>-<target>` asynchronously once the Link
is in place, so `pulumi up` waits for it a bounded time and fails with the likely causes if
it never appears. In a preview it shows the name it expects; its address is known after apply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi.dynamic
from kubernetes import client as kube_api

from components.live_read import REQUEST_TIMEOUT, LiveReadProvider, live_read_inputs, read_or_none, waited
from components.names import EXPORTED_LABEL


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


class MirroredServiceProvider(LiveReadProvider):
    outputs = ("clusterIP", "endpoints")
    missing = "the service does not exist"

    def observe(self, api: Any, props: dict) -> Optional[dict]:
        core = kube_api.CoreV1Api(api)
        namespace, service = props["namespace"], props["service"]
        found = read_or_none(lambda: core.read_namespaced_service(service, namespace, _request_timeout=REQUEST_TIMEOUT))
        if found is None:
            return None
        endpoints = read_or_none(lambda: core.read_namespaced_endpoints(service, namespace, _request_timeout=REQUEST_TIMEOUT))
        addresses = sorted({a.ip for subset in ((endpoints.subsets if endpoints else None) or []) for a in (subset.addresses or [])})
        return {"clusterIP": found.spec.cluster_ip, "endpoints": addresses}

    def problem(self, props: dict, observed: dict) -> Optional[str]:
        addresses, gateway = observed["endpoints"], props["gatewayAddress"]
        if not addresses:
            return "the service exists but has no endpoints"
        # Right after the gateway moved, the mirror may still point at the old address.
        if _is_ip(gateway) and addresses != [gateway]:
            return f"its endpoints {addresses} are not the gateway's address {gateway} yet"
        return None

    def timeout_message(self, props: dict, last_state: str) -> str:
        namespace, service = props["namespace"], props["service"]
        return (
            f"link {props['link']}: mirrored service {namespace}/{service} did not become ready within {waited(props)} "
            f"({last_state}). Likely causes: the target's gateway is unreachable from this cluster (its load balancer, "
            f"or linkerd.gatewaySourceRanges); namespace {namespace!r} does not exist in the linking cluster (a mirror "
            f"is only created in an existing namespace); the service is not exported (label {EXPORTED_LABEL}=true in "
            "the target). `linkerd multicluster check` shows the link's state."
        )


@dataclass(frozen=True)
class MirroredServiceArgs:
    source_kubeconfig: pulumi.Input[str]  # the exec form: no secret
    link: str  # "west->east", for messages
    namespace: str
    service: str  # the mirror's name, `<service>-<target>`
    gateway_address: pulumi.Input[str]  # read again when the target's gateway moves
    timeout_seconds: int


class MirroredService(pulumi.dynamic.Resource):
    # Set from the provider's outputs of the same names.
    clusterIP: pulumi.Output[str]
    endpoints: pulumi.Output[list]

    def __init__(self, name: str, args: MirroredServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        inputs = live_read_inputs(
            args.source_kubeconfig,
            args.timeout_seconds,
            f"{args.namespace}/{args.service}",
            link=args.link,
            namespace=args.namespace,
            service=args.service,
            gatewayAddress=args.gateway_address,
            clusterIP=None,
            endpoints=None,
        )
        super().__init__(MirroredServiceProvider(), name, inputs, opts)
