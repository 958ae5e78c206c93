"""The Pulumi mocks for this program: every provider it uses, faked per resource type.

An unknown resource type or invoke fails the test instead of echoing its inputs, so nothing
the program does goes unfaked.
"""

from __future__ import annotations

import base64
import os
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional

import dill
import grpc
import pulumi
import pulumi.dynamic
import yaml
from pulumi.runtime import mocks, rpc

from components import gateway_api
from components.kubeconfigs import kubeconfig_reference, load_context, parse_reference
from tests.fake_account import DO_TOKEN
from tests.fake_clock import FakeClock
from tests.fake_digitalocean import FakeDigitalOcean, ProviderError
from tests.fake_kubernetes import FakeKubernetes
from tests.fake_tls import FakeTls
from tests.harness import Registration, unwrap

__all__ = ["DO_TOKEN", "FakeCloud"]


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
    def __init__(self, clock: Optional[FakeClock] = None):
        # When certificates are minted and charts rendered.
        self.clock = clock or FakeClock()
        self.digitalocean = FakeDigitalOcean()
        self.tls = FakeTls(self.clock)
        self.kubernetes = FakeKubernetes(self.digitalocean, self.clock)
        self.invokes: list[tuple[str, dict]] = []
        # (type, name) of everything the program asked for, components included.
        self.registered: list[tuple[str, str]] = []
        # The outputs of each dynamic resource the engine created (previews create none), and
        # of each it updated.
        self.dynamic_creates: list[dict] = []
        self.dynamic_updates: list[dict] = []

    def call(self, args: mocks.MockCallArgs):
        self.invokes.append((args.token, args.args))
        if args.token == "digitalocean:index/getKubernetesVersions:getKubernetesVersions":
            return self.digitalocean.get_kubernetes_versions(args.args)
        if args.token == "digitalocean:index/getSizes:getSizes":
            try:
                return self.digitalocean.get_sizes(args.args)
            except ProviderError as error:
                raise InvokeFailed(args.token, str(error)) from None
        raise NotImplementedError(f"no fake for invoke {args.token}")

    @contextmanager
    def serving(self) -> Iterator[None]:
        """For the length of a run: the account's API served, and doctl pointed at it (doctl reads
        DIGITALOCEAN_API_URL: viper key `api-url`, doit.go GetGodoClient); the clusters reached."""
        saved = os.environ.get("DIGITALOCEAN_API_URL")
        with self.digitalocean.serve_api() as url, self.reaching_clusters():
            os.environ["DIGITALOCEAN_API_URL"] = url
            try:
                yield
            finally:
                if saved is None:
                    os.environ.pop("DIGITALOCEAN_API_URL", None)
                else:
                    os.environ["DIGITALOCEAN_API_URL"] = saved

    def new_resource(self, args: mocks.MockResourceArgs):
        self.registered.append((args.typ, args.name))
        return self._create(args)

    def _create(self, args: mocks.MockResourceArgs) -> tuple[str, dict]:
        type_, inputs = args.typ, args.inputs
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
        if type_.startswith("pulumi-python:dynamic"):
            return self.dynamic_resource(inputs)
        raise NotImplementedError(f"no fake for resource type {type_}")

    def dynamic_resource(self, inputs: dict) -> tuple[str, dict]:
        """Runs the program's own dynamic provider, as the engine would, against a fake API
        server that serves what the simulated cluster holds (its endpoint "resolves" there)."""
        provider, props = _provider(inputs), unwrap(inputs)
        with self._against_cluster(props) as (live,):
            result = provider.create(live)
        self.dynamic_creates.append(result.outs)
        return result.id, self._stored(result.outs, inputs)

    @staticmethod
    def _stored(outs: dict, inputs: dict) -> dict:
        # The engine stores the provider's outputs (and the pickled provider), nothing else; the
        # provider saw the fake API servers' kubeconfigs, the state keeps the program's.
        kubeconfigs = {key: unwrap(value) for key, value in inputs.items() if _is_kubeconfig_key(key)}
        return {**outs, **kubeconfigs, "__provider": inputs["__provider"]}

    @contextmanager
    def _against_cluster(self, *props_list: dict) -> Iterator[tuple[dict, ...]]:
        """`props_list` with each known kubeconfig's server moved to the fake API server of its
        cluster (one per cluster); its user (the fake doctl's exec plugin, or a given kubeconfig's
        token, token file or plugin) still provides the credentials. A reference to a kubeconfig
        file's context points at a copy of that context, served the same way."""
        with ExitStack() as stack:
            servers: dict[str, str] = {}  # kubeconfig -> the same, served by the fake API server
            copies = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="served-kubeconfigs-")))
            live = []
            for props in props_list:
                for key, kubeconfig in props.items():
                    if _is_kubeconfig_key(key) and isinstance(kubeconfig, str) and kubeconfig != rpc.UNKNOWN:
                        if kubeconfig not in servers:
                            reference = parse_reference(kubeconfig)
                            if reference:
                                served = load_context(*reference)
                                api = stack.enter_context(self.kubernetes.serve(self.kubernetes.cluster_for_context(*reference)))
                            else:
                                served = yaml.safe_load(kubeconfig)
                                api = stack.enter_context(self.kubernetes.serve(self.kubernetes.cluster_for_kubeconfig(kubeconfig)))
                            served["clusters"][0]["cluster"] = {"server": api.url}
                            servers[kubeconfig] = yaml.safe_dump(served)
                            if reference:
                                copy = copies / f"{len(servers)}.yaml"
                                copy.write_text(servers[kubeconfig])
                                servers[kubeconfig] = kubeconfig_reference(str(copy), reference[1])
                        props = {**props, key: servers[kubeconfig]}
                live.append(props)
            yield tuple(live)

    @contextmanager
    def served(self, kubeconfig: str) -> Iterator[str]:
        """`kubeconfig` (a cluster's exec form) pointed at the fake API server of its cluster, as
        `make verify` reaches the cluster."""
        with self._against_cluster({"kubeconfig": kubeconfig}) as (live,):
            yield live["kubeconfig"]

    @contextmanager
    def reaching_clusters(self) -> Iterator[None]:
        """While the program runs: its own reads at evaluation (components/gateway_api.py) reach the
        simulated cluster behind a kubeconfig's server, as the dynamic providers' reads do."""
        read = gateway_api.read_gateway_api_crds

        def read_simulated(kubeconfig: str) -> dict:
            with self._against_cluster({"kubeconfig": kubeconfig}) as (live,):
                return read(live["kubeconfig"])

        gateway_api.read_gateway_api_crds = read_simulated
        try:
            yield
        finally:
            gateway_api.read_gateway_api_crds = read

    def existing_resource(self, args: mocks.MockResourceArgs, old: Registration) -> tuple[str, dict, str]:
        """A resource the stack already has: (id, outputs, step), as the engine's diff decides.

        A dynamic provider's own diff decides, given the stored outputs and the new inputs
        (sdk/python/lib/pulumi/dynamic/__main__.py, Diff). A provider without preview support, as
        every dynamic provider is (its Configure does not announce it), shows an update's or a
        replacement's new inputs as its outputs in a preview (pkg/resource/plugin/provider_plugin.go,
        Create and Update: `!protocol.supportsPreview`). Any other resource keeps its outputs when
        its inputs are the same, and is applied again through its fake when they differ.
        """
        inputs = args.inputs
        self.registered.append((args.typ, args.name))
        if not args.typ.startswith("pulumi-python:dynamic"):
            if unwrap(inputs) == unwrap(old.inputs):
                return old.id, old.state, "same"
            return (*self._create(args), "update")
        provider, news, olds = _provider(inputs), unwrap(inputs), unwrap(old.state)
        with self._against_cluster(olds, news) as (live_olds, live_news):
            diff = provider.diff(old.id, live_olds, live_news)
            changes = diff.changes if diff.changes is not None else unwrap(old.inputs) != news
            step = "same" if not changes else "replace" if diff.replaces else "update"
            if step == "same":
                return old.id, old.state, step
            if pulumi.runtime.is_dry_run():
                return old.id, inputs, step
            if step == "update":
                outs = provider.update(old.id, live_olds, live_news).outs
                self.dynamic_updates.append(outs)
                return old.id, self._stored(outs, inputs), step
            if diff.delete_before_replace:
                provider.delete(old.id, live_olds)
        return (*self.dynamic_resource(inputs), step)

    def delete_resource(self, old: Registration) -> None:
        """The engine deletes what the program no longer registers, through its provider."""
        if not old.id or old.type.startswith(("pulumi:providers:", "tls:")):
            return  # a component, a provider, or pulumi-tls' keys and certificates (state only): nothing in any cloud to delete
        if old.type.startswith("pulumi-python:dynamic"):
            with self._against_cluster(unwrap(old.state)) as (live,):
                _provider(old.state).delete(old.id, live)
        elif old.type.startswith("kubernetes:"):
            self.kubernetes.delete(old.type, unwrap(old.state), old.provider)
        elif old.type.startswith("pulumi:providers:"):
            return  # a provider's delete touches no cloud (pulumi pkg/resource/deploy/providers/registry.go, Delete)
        elif old.type.startswith("tls:"):
            return  # keys and certificates live only in the state (terraform-provider-tls: Delete only forgets them)
        else:
            raise NotImplementedError(f"no fake deletes {old.type}")


def _provider(inputs: dict) -> pulumi.dynamic.ResourceProvider:
    """The pickled provider that the engine's `python -m pulumi.dynamic` unpickles."""
    return dill.loads(base64.b64decode(unwrap(inputs["__provider"])))


def _is_kubeconfig_key(key: str) -> bool:
    """`kubeconfig`, `sourceKubeconfig`, `targetKubeconfig`: the inputs that name a cluster."""
    return key.lower().endswith("kubeconfig")
