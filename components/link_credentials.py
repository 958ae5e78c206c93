"""A link's credentials, copied from the target into the linking cluster without passing
through the Pulumi state.

The target's multicluster chart creates a remote-access service account for each linking
cluster and a `<account>-token` Secret that Kubernetes' token controller fills in. At create and
update this resource reads that token through the target's kubeconfig, builds the kubeconfig the
service mirror needs, and writes `cluster-credentials-<target>` in the linking cluster (and the
labelled copy in `linkerd` for remote discovery) through the source's kubeconfig. The state
keeps only a fingerprint (a SHA-256 of what was written), never the token.

Credentials that change (a new token, endpoint or CA) must reach the controllers that loaded
the old ones, on the same `pulumi up`:
- the service mirror loads them when it starts and when the Link's spec changes, and ignores
  every other change (multicluster/service-mirror/link_handlers.go), so its Deployment
  `controller-<target>` is restarted (a pod-template annotation, as `kubectl rollout restart`);
  re-creating the Link instead would stop the mirror's workers in between;
- the destination controller handles only Add and Delete of remote-discovery Secrets
  (controller/api/destination/watcher/cluster_store.go), so that copy is deleted and created.
Diff compares what the target issues now with what the linking cluster holds, so a plain
`pulumi up` (and a preview) notices a re-issued token although no input changed.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi
import pulumi.dynamic
from kubernetes import client as kube_api

from components.kube_client import api_client
from components.kubeconfigs import token_kubeconfig
from components.live_read import REQUEST_TIMEOUT, NotReady, changed_inputs, look_client, poll_until_ready, read_or_none, waited
from components.names import LINKERD_NAMESPACE, MULTICLUSTER_NAMESPACE, link_controller

CREDENTIALS_SECRET_TYPE = "mirror.linkerd.io/remote-kubeconfig"
CLUSTER_NAME_LABEL = "multicluster.linkerd.io/cluster-name"
# On the controller's pod template: a new value rolls the Deployment, as `kubectl rollout restart`.
CREDENTIALS_ANNOTATION = "linkerd-mesh/link-credentials"
# What `_held` reports for a copy whose metadata is not what is asked for: never a fingerprint.
OUTDATED = "outdated"


def credentials_secret_name(target: str) -> str:
    return f"cluster-credentials-{target}"


def fingerprint(kubeconfig: str) -> str:
    return "sha256:" + hashlib.sha256(kubeconfig.encode()).hexdigest()


class LinkCredentialsProvider(pulumi.dynamic.ResourceProvider):
    """Inputs: see `LinkCredentials`; the one output is `fingerprint`."""

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"{props['source']}/{credentials_secret_name(props['target'])}", outs={**props, "fingerprint": self._write(props)})

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs={**news, "fingerprint": self._write(news)})

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        # The timeout only bounds the next wait: a change of it alone is no change (as for the live reads).
        if changed_inputs(olds, news, ("fingerprint", "timeoutSeconds")):
            # Rewritten in place: the Secrets keep their names, whatever changed.
            return pulumi.dynamic.DiffResult(changes=True, replaces=[])
        try:
            wanted = fingerprint(self._kubeconfig(self._token(look_client(news["targetKubeconfig"]), news), news))
            held = self._held(kube_api.CoreV1Api(look_client(news["sourceKubeconfig"])), news)
        except NotReady:
            return pulumi.dynamic.DiffResult(changes=True, replaces=[])
        except Exception:  # noqa: BLE001 - a cluster this run cannot reach (a preview token without cluster access) is no news
            return pulumi.dynamic.DiffResult(changes=False, replaces=[])
        return pulumi.dynamic.DiffResult(changes=held != {MULTICLUSTER_NAMESPACE: wanted, LINKERD_NAMESPACE: wanted}, replaces=[])

    def delete(self, _id: str, props: dict) -> None:
        core = kube_api.CoreV1Api(api_client(props["sourceKubeconfig"]))
        for namespace in (MULTICLUSTER_NAMESPACE, LINKERD_NAMESPACE):
            read_or_none(lambda: core.delete_namespaced_secret(credentials_secret_name(props["target"]), namespace, _request_timeout=REQUEST_TIMEOUT))

    @staticmethod
    def _token(target_api: Any, props: dict) -> str:
        secret = read_or_none(lambda: kube_api.CoreV1Api(target_api).read_namespaced_secret(props["tokenSecret"], MULTICLUSTER_NAMESPACE, _request_timeout=REQUEST_TIMEOUT))
        if secret is None:
            raise NotReady("the Secret does not exist")
        token = base64.b64decode((secret.data or {}).get("token") or "").decode()
        if not token:
            # The chart creates the Secret empty and the token controller fills it; a link built
            # on an empty token would fail later with Unauthorized.
            raise NotReady("the token controller has not filled in its token yet")
        return token

    @staticmethod
    def _kubeconfig(token: str, props: dict) -> str:
        return token_kubeconfig(props["target"], props["targetEndpoint"], props.get("targetCaCertificate"), token)

    @staticmethod
    def _held(core: Any, props: dict) -> dict[str, Optional[str]]:
        """namespace -> fingerprint of the kubeconfig the linking cluster holds there (None: none;
        OUTDATED: a copy in `linkerd` without the annotations asked for, so it is written again)."""
        held = {}
        wanted = dict(props.get("remoteDiscoveryAnnotations") or {})
        for namespace in (MULTICLUSTER_NAMESPACE, LINKERD_NAMESPACE):
            secret = read_or_none(lambda: core.read_namespaced_secret(credentials_secret_name(props["target"]), namespace, _request_timeout=REQUEST_TIMEOUT))
            data = (secret.data or {}).get("kubeconfig") if secret else None
            held[namespace] = fingerprint(base64.b64decode(data).decode()) if data else None
            if namespace == LINKERD_NAMESPACE and secret and wanted.items() - (secret.metadata.annotations or {}).items():
                held[namespace] = OUTDATED
        return held

    def _write(self, props: dict) -> str:
        target_api = api_client(props["targetKubeconfig"])
        token = poll_until_ready(lambda: self._token(target_api, props), float(props["timeoutSeconds"]), lambda last: self._timeout_message(props, last))
        kubeconfig = self._kubeconfig(token, props)
        written = fingerprint(kubeconfig)
        source_api = api_client(props["sourceKubeconfig"])
        core = kube_api.CoreV1Api(source_api)
        held = self._held(core, props)
        name = credentials_secret_name(props["target"])
        data = {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}

        def body(namespace: str, labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None) -> dict:
            metadata = {"name": name, "namespace": namespace, "labels": dict(labels or {}), "annotations": dict(annotations or {})}
            return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": CREDENTIALS_SECRET_TYPE, "data": data}

        if held[MULTICLUSTER_NAMESPACE] is None:
            core.create_namespaced_secret(MULTICLUSTER_NAMESPACE, body(MULTICLUSTER_NAMESPACE), _request_timeout=REQUEST_TIMEOUT)
        elif held[MULTICLUSTER_NAMESPACE] != written:
            core.replace_namespaced_secret(name, MULTICLUSTER_NAMESPACE, body(MULTICLUSTER_NAMESPACE), _request_timeout=REQUEST_TIMEOUT)
            self._restart_controller(source_api, props["target"], written)
        if held[LINKERD_NAMESPACE] != written:
            if held[LINKERD_NAMESPACE] is not None:
                core.delete_namespaced_secret(name, LINKERD_NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
            core.create_namespaced_secret(
                LINKERD_NAMESPACE, body(LINKERD_NAMESPACE, {CLUSTER_NAME_LABEL: props["target"]}, props.get("remoteDiscoveryAnnotations")), _request_timeout=REQUEST_TIMEOUT
            )
        return written

    @staticmethod
    def _restart_controller(source_api: Any, target: str, written: str) -> None:
        patch = {"spec": {"template": {"metadata": {"annotations": {CREDENTIALS_ANNOTATION: written.removeprefix("sha256:")[:16]}}}}}
        # No Deployment (404): no controller runs that could hold the old credentials.
        read_or_none(lambda: kube_api.AppsV1Api(source_api).patch_namespaced_deployment(link_controller(target), MULTICLUSTER_NAMESPACE, patch, _request_timeout=REQUEST_TIMEOUT))

    @staticmethod
    def _timeout_message(props: dict, last_state: str) -> str:
        return (
            f"link {props['source']}->{props['target']}: the {MULTICLUSTER_NAMESPACE}/{props['tokenSecret']} Secret in cluster "
            f"{props['target']!r} has no token after {waited(props)} ({last_state}); the target's linkerd-multicluster release "
            "creates it (remoteMirrorServiceAccountName) and Kubernetes' token controller fills it in: check the "
            "kube-controller-manager of that cluster and run `pulumi up` again"
        )


@dataclass(frozen=True)
class LinkCredentialsArgs:
    source: str
    target: str
    source_kubeconfig: pulumi.Input[str]  # exec forms: no secret
    target_kubeconfig: pulumi.Input[str]
    target_endpoint: pulumi.Input[str]
    target_ca_certificate: pulumi.Input[Optional[str]]  # base64 PEM, as DOKS returns it; None: the system's roots
    token_secret: str  # the target's `<remote-access account>-token` Secret for this link
    timeout_seconds: int
    # On the copy in `linkerd`, which the destination controller reads for remote discovery.
    remote_discovery_annotations: Mapping[str, str] = field(default_factory=dict)


class LinkCredentials(pulumi.dynamic.Resource):
    fingerprint: pulumi.Output[str]

    def __init__(self, name: str, args: LinkCredentialsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        inputs = {
            "source": args.source,
            "target": args.target,
            "sourceKubeconfig": args.source_kubeconfig,
            "targetKubeconfig": args.target_kubeconfig,
            "targetEndpoint": args.target_endpoint,
            "targetCaCertificate": args.target_ca_certificate,
            "tokenSecret": args.token_secret,
            "timeoutSeconds": args.timeout_seconds,
            "remoteDiscoveryAnnotations": dict(args.remote_discovery_annotations),
            "fingerprint": None,
        }
        super().__init__(LinkCredentialsProvider(), name, inputs, opts)
