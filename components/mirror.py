"""A mirrored service as the linking cluster really has it, read back after the link is up.

Linkerd's service-mirror controller creates `<service>-<target>` asynchronously once the Link
is in place, so `pulumi up` polls for it a bounded time (a dynamic resource: no provider plugin
reads "eventually existing" objects) and fails with the likely causes if it never appears.
During preview the resource only shows the name it expects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pulumi
import pulumi.dynamic
import yaml

POLL_SECONDS = 5.0


class MirrorNotReady(Exception):
    pass


def mirror_name(service: str, target: str) -> str:
    return f"{service}-{target}"


def _endpoint_addresses(endpoints: Any) -> list[str]:
    return sorted({address.ip for subset in (endpoints.subsets or []) for address in (subset.addresses or [])})


def wait_for_mirror(
    core_v1: Any,
    *,
    link: str,
    namespace: str,
    service: str,
    timeout_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll until the mirror exists with endpoints; returns its cluster IP and addresses."""
    from kubernetes.client.exceptions import ApiException

    deadline = clock() + timeout_seconds
    poll_seconds = min(POLL_SECONDS, timeout_seconds / 10)
    last_state = "the service does not exist"
    while True:
        try:
            found = core_v1.read_namespaced_service(service, namespace)
            addresses = _endpoint_addresses(core_v1.read_namespaced_endpoints(service, namespace))
            if addresses:
                return {"clusterIP": found.spec.cluster_ip, "endpoints": addresses}
            last_state = "the service exists but has no endpoints"
        except ApiException as error:
            if error.status != 404:
                raise
        if clock() >= deadline:
            raise MirrorNotReady(
                f"link {link}: mirrored service {namespace}/{service} did not become ready within {timeout_seconds:g}s "
                f"({last_state}). Likely causes: the target's gateway is unreachable from this cluster "
                f"(its load balancer, or linkerd.gatewaySourceRanges); namespace {namespace!r} does not exist in the "
                "linking cluster (a mirror is only created in an existing namespace); the service is not exported "
                "(label mirror.linkerd.io/exported=true in the target). `linkerd multicluster check` shows the link's state."
            )
        sleep(poll_seconds)


def core_v1_for(kubeconfig: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig)))


class MirroredServiceProvider(pulumi.dynamic.ResourceProvider):
    """Reads, never writes: creating it waits for the mirror; deleting it is a no-op."""

    def _read_mirror(self, props: dict) -> dict:
        found = wait_for_mirror(
            core_v1_for(props["kubeconfig"]),
            link=props["link"],
            namespace=props["namespace"],
            service=props["service"],
            timeout_seconds=float(props["timeoutSeconds"]),
        )
        # The kubeconfig stays an input only: outputs are shown and exported.
        outs = {key: value for key, value in props.items() if key != "kubeconfig"}
        return {**outs, **found}

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"{props['namespace']}/{props['service']}", outs=self._read_mirror(props))

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        watched = ("link", "namespace", "service", "gatewayAddress")
        changed = [key for key in watched if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def read(self, id_: str, props: dict) -> pulumi.dynamic.ReadResult:
        return pulumi.dynamic.ReadResult(id_=id_, outs={**props, **self._read_mirror(props)} if "kubeconfig" in props else props)


@dataclass(frozen=True)
class MirroredServiceArgs:
    source_kubeconfig: pulumi.Input[str]  # secret
    link: str  # "west->east", for messages
    namespace: str
    service: str  # the mirror's name, `<service>-<target>`
    gateway_address: pulumi.Input[str]  # re-read when the target's gateway moves
    timeout_seconds: int


class MirroredService(pulumi.dynamic.Resource):
    # Set from the provider's outputs of the same names.
    clusterIP: pulumi.Output[str]
    endpoints: pulumi.Output[list]

    def __init__(self, name: str, args: MirroredServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            MirroredServiceProvider(),
            name,
            {
                "kubeconfig": pulumi.Output.secret(args.source_kubeconfig),
                "link": args.link,
                "namespace": args.namespace,
                "service": args.service,
                "gatewayAddress": args.gateway_address,
                "timeoutSeconds": args.timeout_seconds,
                "clusterIP": None,
                "endpoints": None,
            },
            opts,
        )
