"""Names fixed by Linkerd's charts and controllers, shared by the program and `verify`.

Plain constants (no Pulumi import), so the verify tool can use them without the SDKs.
"""

LINKERD_NAMESPACE = "linkerd"
VIZ_NAMESPACE = "linkerd-viz"
MULTICLUSTER_NAMESPACE = "linkerd-multicluster"
# The multicluster chart's gateway Service (a LoadBalancer) in a linked-to cluster.
GATEWAY_SERVICE = "linkerd-gateway"
# The chart's service account for linking clusters; Kubernetes fills this Secret's token.
REMOTE_ACCESS_TOKEN_SECRET = "linkerd-service-mirror-remote-access-default-token"
LINK_GROUP = "multicluster.linkerd.io"
LINK_VERSION = "v1alpha3"
EXPORTED_LABEL = "mirror.linkerd.io/exported"


def mirror_name(service: str, target: str) -> str:
    """The service mirror names the copy of `service` from cluster `target` like this."""
    return f"{service}-{target}"
