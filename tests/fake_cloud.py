"""The Pulumi mocks for this program: every provider it uses, faked per resource type.

An unknown resource type or invoke fails the test instead of echoing its inputs, so nothing
the program does goes unfaked.
"""

from __future__ import annotations

import base64
from contextlib import ExitStack

import dill
import pulumi
import yaml
from pulumi.runtime import mocks

from tests.fake_account import DO_TOKEN
from tests.fake_digitalocean import FakeDigitalOcean
from tests.fake_kubernetes import FakeKubernetes
from tests.fake_tls import FakeTls
from tests.harness import unwrap

__all__ = ["DO_TOKEN", "FakeCloud"]


class FakeCloud(mocks.Mocks):
    def __init__(self):
        self.digitalocean = FakeDigitalOcean()
        self.tls = FakeTls()
        self.kubernetes = FakeKubernetes(self.digitalocean)
        self.invokes: list[tuple[str, dict]] = []
        # (type, name) of everything the program asked for, components included.
        self.registered: list[tuple[str, str]] = []
        # The outputs of each dynamic resource the engine created (previews create none), and
        # of each it updated.
        self.dynamic_creates: list[dict] = []
        self.dynamic_updates: list[dict] = []
        # Dynamic resource name -> (id, stored state): a later run with these fakes is an update
        # of the same stack, as the engine does it (Diff, then Update or Delete + Create).
        self.dynamic_state: dict[str, tuple[str, dict]] = {}
        # Names of the existing resources a preview showed as changing.
        self.preview_changes: list[str] = []
        # (type, name) -> (id, inputs, outputs) of every resource created, for later previews.
        self.kept: dict[tuple[str, str], tuple[str, dict, dict]] = {}

    def call(self, args: mocks.MockCallArgs):
        self.invokes.append((args.token, args.args))
        if args.token == "digitalocean:index/getKubernetesVersions:getKubernetesVersions":
            return self.digitalocean.get_kubernetes_versions(args.args)
        raise NotImplementedError(f"no fake for invoke {args.token}")

    def new_resource(self, args: mocks.MockResourceArgs):
        type_, inputs = args.typ, args.inputs
        self.registered.append((type_, args.name))
        if args.custom is False:
            return "", {}  # a component: the engine keeps no provider state for it
        if pulumi.runtime.is_dry_run():
            return self.preview(args)
        id_, state = self.create(args)
        self.kept[(type_, args.name)] = (id_, unwrap(inputs), state)
        return id_, state

    def preview(self, args: mocks.MockResourceArgs) -> tuple[str, dict]:
        """Nothing is created in a preview. A resource these fakes created in an earlier run
        keeps its outputs when its inputs are the same; anything else shows its inputs, every
        computed output unknown."""
        if args.typ == "pulumi-python:dynamic:Resource" and args.name in self.dynamic_state:
            return self.dynamic_resource(args.name, args.inputs, preview=True)
        kept = self.kept.get((args.typ, args.name))
        if kept is not None and kept[1] == unwrap(args.inputs):
            return kept[0], kept[2]
        if kept is not None:
            self.preview_changes.append(args.name)
        return "", args.inputs

    def create(self, args: mocks.MockResourceArgs) -> tuple[str, dict]:
        type_, inputs = args.typ, args.inputs
        if type_ == "pulumi:providers:kubernetes":
            return f"{args.name}-id", self.kubernetes.register_provider(args.name, inputs)
        if type_ == "digitalocean:index/kubernetesCluster:KubernetesCluster":
            return self.digitalocean.kubernetes_cluster(inputs)
        if type_.startswith("tls:"):
            return f"{args.name}-id", self.tls.new_resource(type_, inputs)
        if type_.startswith("kubernetes:"):
            return self.kubernetes.create(type_, args.name, inputs, args.provider)
        if type_ == "pulumi-python:dynamic:Resource":
            return self.dynamic_resource(args.name, inputs)
        raise NotImplementedError(f"no fake for resource type {type_}")

    def dynamic_resource(self, name: str, inputs: dict, preview: bool = False) -> tuple[str, dict]:
        """Runs the program's own dynamic provider, as the engine would, against fake API servers
        that serve what the simulated clusters hold (each cluster's endpoint "resolves" there).

        An existing resource is diffed first. A preview stops there and, for a provider without
        preview support, shows a changing resource's new inputs as its outputs
        (pkg/resource/deploy/step_generator.go)."""
        provider = dill.loads(base64.b64decode(unwrap(inputs["__provider"])))
        news = {key: unwrap(value) for key, value in inputs.items() if key != "__provider"}
        old = self.dynamic_state.get(name)
        with ExitStack() as stack:
            served = {key: self._served(stack, value) for key, value in news.items() if key.lower().endswith("kubeconfig")}
            local = {**news, **served}
            if old is None:
                result = provider.create(local)
                id_, outs = result.id, result.outs
                self.dynamic_creates.append(outs)
            else:
                id_, olds = old
                diff = provider.diff(id_, {**olds, **served}, local)
                if not diff.changes:
                    return id_, olds | {"__provider": inputs["__provider"]}
                if preview:
                    self.preview_changes.append(name)
                    return id_, inputs
                if diff.replaces:
                    provider.delete(id_, {**olds, **served})
                    result = provider.create(local)
                    id_, outs = result.id, result.outs
                    self.dynamic_creates.append(outs)
                else:
                    outs = provider.update(id_, {**olds, **served}, local).outs
                    self.dynamic_updates.append(outs)
        # The engine stores the provider's outputs (and the pickled provider), nothing else.
        state = {**outs, **{key: news[key] for key in served}}
        self.dynamic_state[name] = (id_, state)
        return id_, {**state, "__provider": inputs["__provider"]}

    def _served(self, stack: ExitStack, kubeconfig_text: str) -> str:
        """The kubeconfig with its server moved to a fake API server of that cluster; its exec
        plugin (the fake doctl) still provides the credentials."""
        api = stack.enter_context(self.kubernetes.serve(self.kubernetes.cluster_for_kubeconfig(kubeconfig_text)))
        kubeconfig = yaml.safe_load(kubeconfig_text)
        kubeconfig["clusters"][0]["cluster"] = {"server": api.url}
        return yaml.safe_dump(kubeconfig)
