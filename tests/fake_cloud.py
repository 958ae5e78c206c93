"""The Pulumi mocks for this program: every provider it uses, faked per resource type.

An unknown resource type or invoke fails the test instead of echoing its inputs, so nothing
the program does goes unfaked.
"""

from __future__ import annotations

import base64

import dill
import grpc
import pulumi
from pulumi.runtime import mocks

from tests.fake_digitalocean import FakeDigitalOcean, ProviderError
from tests.fake_kubernetes import FakeKubernetes
from tests.fake_tls import FakeTls
from tests.harness import unwrap

DO_TOKEN = "dop_v1_fake_account_token_for_tests"


class InvokeFailed(grpc.RpcError):
    """How the engine answers an invoke whose provider failed: a gRPC error whose details carry the
    provider's message (pulumi pkg/resource/deploy/source_eval.go, Invoke: "invocation of <tok>
    returned an error"); the SDK raises it to the program as a plain Exception."""

    def __init__(self, token: str, message: str):
        super().__init__(message)
        self.message = f"invocation of {token} returned an error: {message}"

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self.message


class FakeCloud(mocks.Mocks):
    def __init__(self):
        self.digitalocean = FakeDigitalOcean()
        self.tls = FakeTls()
        self.kubernetes = FakeKubernetes(self.digitalocean)
        self.invokes: list[tuple[str, dict]] = []
        # (type, name) of everything the program asked for, components included.
        self.registered: list[tuple[str, str]] = []
        # The outputs of each dynamic resource the engine created (previews create none).
        self.dynamic_creates: list[dict] = []

    def call(self, args: mocks.MockCallArgs):
        self.invokes.append((args.token, args.args))
        if args.token == "digitalocean:index/getKubernetesVersions:getKubernetesVersions":
            return self.digitalocean.get_kubernetes_versions(args.args)
        if args.token == "digitalocean:index/getKubernetesCluster:getKubernetesCluster":
            try:
                return self.digitalocean.get_kubernetes_cluster(args.args)
            except ProviderError as error:
                raise InvokeFailed(args.token, str(error)) from None
        raise NotImplementedError(f"no fake for invoke {args.token}")

    def new_resource(self, args: mocks.MockResourceArgs):
        type_, inputs = args.typ, args.inputs
        self.registered.append((type_, args.name))
        if args.custom is False:
            return "", {}  # a component: the engine keeps no provider state for it
        if pulumi.runtime.is_dry_run():
            # A preview: nothing is created, so every computed output is unknown.
            return "", inputs
        if type_ == "pulumi:providers:kubernetes":
            return f"{args.name}-id", self.kubernetes.register_provider(args.name, inputs)
        if type_ == "digitalocean:index/kubernetesCluster:KubernetesCluster":
            return self.digitalocean.kubernetes_cluster(inputs)
        if type_ == "digitalocean:index/kubernetesNodePool:KubernetesNodePool":
            return self.digitalocean.kubernetes_node_pool(inputs)
        if type_.startswith("tls:"):
            return f"{args.name}-id", self.tls.create(type_, args.name, inputs)
        if type_.startswith("kubernetes:"):
            return self.kubernetes.create(type_, args.name, inputs, args.provider)
        if type_ == "pulumi-python:dynamic:Resource":
            return self.dynamic_resource(inputs)
        raise NotImplementedError(f"no fake for resource type {type_}")

    def dynamic_resource(self, inputs: dict) -> tuple[str, dict]:
        """Runs the program's own dynamic provider, as the engine would, against a fake API
        server that serves what the simulated cluster holds (its endpoint "resolves" there)."""
        provider = dill.loads(base64.b64decode(unwrap(inputs["__provider"])))
        props = {key: unwrap(value) for key, value in inputs.items() if key != "__provider"}
        cluster = self.kubernetes.cluster_for_kubeconfig(props["kubeconfig"])
        with self.kubernetes.serve(cluster) as api:
            result = provider.create({**props, "kubeconfig": api.kubeconfig()})
        self.dynamic_creates.append(result.outs)
        # The engine stores the provider's outputs (and the pickled provider), nothing else.
        return result.id, {**result.outs, "kubeconfig": props["kubeconfig"], "__provider": inputs["__provider"]}
