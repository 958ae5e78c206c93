"""Names fixed by Linkerd's charts and controllers, shared by the program and `verify`.

Plain constants (no Pulumi import), so the verify tool can use them without the SDKs.
"""

LINKERD_NAMESPACE = "linkerd"
VIZ_NAMESPACE = "linkerd-viz"
MULTICLUSTER_NAMESPACE = "linkerd-multicluster"
# The multicluster chart's gateway Service (a LoadBalancer) in a linked-to cluster.
GATEWAY_SERVICE = "linkerd-gateway"
LINK_GROUP = "multicluster.linkerd.io"
LINK_VERSION = "v1alpha3"
EXPORTED_LABEL = "mirror.linkerd.io/exported"
# The linkerd-crds chart, and its release: every release is named after its chart (components/charts.py).
CRDS_RELEASE = "linkerd-crds"


def mirror_name(service: str, target: str) -> str:
    """The service mirror names the copy of `service` from cluster `target` like this."""
    return f"{service}-{target}"


def remote_access_service_account(source: str) -> str:
    """The target's service account for the link from `source`: one per linking cluster."""
    return f"linkerd-service-mirror-remote-access-{source}"


def remote_access_token_secret(source: str) -> str:
    """The multicluster chart creates this Secret with each remote-access service account;
    Kubernetes' token controller fills in its token."""
    return f"{remote_access_service_account(source)}-token"


def link_controller(target: str) -> str:
    """The multicluster chart's service-mirror Deployment for the Link to `target`."""
    return f"controller-{target}"


def service_mirror_lease(target: str) -> str:
    """The Lease the service mirror of the Link to `target` holds while it writes
    (multicluster/cmd/service-mirror/main.go)."""
    return f"service-mirror-write-{target}"
