"""Exporting a service that Pulumi did not create: label it so linked clusters mirror it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as kubernetes

from components.config import ExportSpec
from components.link import EXPORT_LABEL_VALUES
from components.names import EXPORTED_LABEL


@dataclass(frozen=True)
class ExportedServiceArgs:
    export: ExportSpec
    provider: kubernetes.Provider


class ExportedService(pulumi.ComponentResource):
    """A server-side-apply patch that owns only the export label, not the service."""

    def __init__(self, name: str, args: ExportedServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("linkerd-mesh:index:ExportedService", name, None, opts)
        export = args.export
        kubernetes.core.v1.ServicePatch(
            f"export-{name}",
            metadata=kubernetes.meta.v1.ObjectMetaPatchArgs(
                name=export.service,
                namespace=export.namespace,
                labels={EXPORTED_LABEL: EXPORT_LABEL_VALUES[export.mode]},
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.register_outputs({})
