"""The seed's demo: emojivoto in a meshed namespace, with the linking cluster's vote-bot
calling the linked cluster's web service through the mirror (`web-svc-<target>`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as kubernetes

from components.identity import trust_bundle_annotations
from components.names import EXPORTED_LABEL

DEMO_NAMESPACE = "emojivoto"
IMAGE_REPOSITORY = "docker.l5d.io/buoyantio"
IMAGE_TAG = "v11"
WEB_SERVICE = "web-svc"
# app -> (image, service, environment); every container listens on 8080.
BACKENDS = {
    "emoji": ("emojivoto-emoji-svc", "emoji-svc", {"GRPC_PORT": "8080", "PROM_PORT": "8801"}),
    "voting": ("emojivoto-voting-svc", "voting-svc", {"GRPC_PORT": "8080", "PROM_PORT": "8801"}),
    "web": (
        "emojivoto-web",
        WEB_SERVICE,
        {
            "WEB_PORT": "8080",
            "EMOJISVC_HOST": f"emoji-svc.{DEMO_NAMESPACE}:8080",
            "VOTINGSVC_HOST": f"voting-svc.{DEMO_NAMESPACE}:8080",
            "INDEX_BUNDLE": "dist/index_bundle.js",
        },
    ),
}


@dataclass(frozen=True)
class DemoArgs:
    provider: kubernetes.Provider
    # The namespace is created after this (the injector must be ready to mesh the pods).
    control_plane: pulumi.Resource
    # Where vote-bot sends its votes: the local web-svc, or the mirror of a linked cluster's.
    web_host: str
    # The mesh's trust bundle: the injector gives each pod the roots once, so a new bundle
    # restarts the demo.
    trust_anchor_pem: pulumi.Input[str]
    # Demo services this cluster exports: service name -> export label value.
    exported: Mapping[str, str] = field(default_factory=dict)


def _env(values: Mapping[str, str]) -> list:
    return [kubernetes.core.v1.EnvVarArgs(name=key, value=value) for key, value in values.items()]


def _deployment(
    name: str,
    app: str,
    image: str,
    env: Mapping[str, str],
    pod_annotations: pulumi.Input[dict],
    opts: pulumi.ResourceOptions,
    command: Optional[list] = None,
    port: Optional[int] = 8080,
) -> kubernetes.apps.v1.Deployment:
    labels = {"app": app, "version": IMAGE_TAG}
    container = kubernetes.core.v1.ContainerArgs(
        name=app,
        image=f"{IMAGE_REPOSITORY}/{image}:{IMAGE_TAG}",
        command=command,
        env=_env(env),
        ports=[kubernetes.core.v1.ContainerPortArgs(name="http", container_port=port)] if port else None,
        resources=kubernetes.core.v1.ResourceRequirementsArgs(requests={"cpu": "100m", "memory": "64Mi"}),
    )
    return kubernetes.apps.v1.Deployment(
        name,
        metadata=kubernetes.meta.v1.ObjectMetaArgs(name=app, namespace=DEMO_NAMESPACE, labels=labels),
        spec=kubernetes.apps.v1.DeploymentSpecArgs(
            replicas=1,
            selector=kubernetes.meta.v1.LabelSelectorArgs(match_labels={"app": app}),
            template=kubernetes.core.v1.PodTemplateSpecArgs(
                metadata=kubernetes.meta.v1.ObjectMetaArgs(labels=labels, annotations=pod_annotations),
                spec=kubernetes.core.v1.PodSpecArgs(service_account_name=app if port else None, containers=[container]),
            ),
        ),
        opts=opts,
    )


class Demo(pulumi.ComponentResource):
    def __init__(self, name: str, args: DemoArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:Demo", name, None, opts)
        namespace = kubernetes.core.v1.Namespace(
            f"emojivoto-{name}",
            metadata=kubernetes.meta.v1.ObjectMetaArgs(name=DEMO_NAMESPACE, annotations={"linkerd.io/inject": "enabled"}),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.control_plane]),
        )
        inside = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[namespace])
        pod_annotations = pulumi.Output.from_input(args.trust_anchor_pem).apply(trust_bundle_annotations)
        for app, (image, service, env) in BACKENDS.items():
            # The identity of each workload in the mesh is its service account.
            kubernetes.core.v1.ServiceAccount(f"{app}-{name}", metadata=kubernetes.meta.v1.ObjectMetaArgs(name=app, namespace=DEMO_NAMESPACE), opts=inside)
            _deployment(f"{app}-{name}", app, image, env, pod_annotations, inside)
            labels = {"app": app}
            if service in args.exported:
                labels = {**labels, EXPORTED_LABEL: args.exported[service]}
            kubernetes.core.v1.Service(
                f"{service}-{name}",
                metadata=kubernetes.meta.v1.ObjectMetaArgs(name=service, namespace=DEMO_NAMESPACE, labels=labels),
                spec=kubernetes.core.v1.ServiceSpecArgs(
                    selector={"app": app},
                    ports=[kubernetes.core.v1.ServicePortArgs(name="http" if app == "web" else "grpc", port=80 if app == "web" else 8080, target_port=8080)],
                ),
                opts=inside,
            )
        _deployment(f"vote-bot-{name}", "vote-bot", "emojivoto-web", {"WEB_HOST": args.web_host}, pod_annotations, inside, command=["emojivoto-vote-bot"], port=None)
        self.register_outputs({"web_host": args.web_host})
