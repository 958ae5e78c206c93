"""Runs Pulumi code under mocks and records what the engine would have been asked to do.

The stock MockMonitor keeps only each resource's state; the engine also sees dependencies,
the provider, the parent and options such as ignoreChanges, and it marks
`additionalSecretOutputs` (and outputs whose same-named input was secret) as secret. This
monitor does the same, so tests can assert ordering and secrecy the way a real run would have.
A run can also start from the state an earlier run left (`run(..., prior=...)`): then, as the
engine does, it diffs what exists, and deletes what the program no longer registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
import yaml
from pulumi.runtime import mocks, rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import ROOT, SETTINGS
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["name"]


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    inputs: dict
    state: dict
    parent: str
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    ignore_changes: list[str]
    replacement_trigger: Any
    id: str = ""
    # What the engine did with it: create, same, update or replace (see `run`'s `prior`).
    step: str = "create"


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, fakes: mocks.Mocks, prior: Optional["RecordingMonitor"] = None):
        super().__init__(fakes)
        self.registrations: dict[str, Registration] = {}
        # The state an earlier run left: what the engine diffs against, and deletes what is gone.
        self.prior = prior.registrations if prior else {}

    def _record(self, request, urn: str, inputs: dict, state: dict, trigger: Any = None) -> dict:
        secret = set(request.additionalSecretOutputs) | {key for key, value in inputs.items() if rpc.is_rpc_secret(value)}
        state = {key: rpc.wrap_rpc_secret(value) if key in secret and not rpc.is_rpc_secret(value) else value for key, value in state.items()}
        self.registrations[urn] = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            inputs=inputs,
            state=state,
            parent=request.parent,
            provider=request.provider,
            dependencies=list(request.dependencies),
            property_dependencies={key: list(deps.urns) for key, deps in request.propertyDependencies.items()},
            ignore_changes=list(request.ignoreChanges),
            replacement_trigger=trigger,
        )
        return state

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        mocks._ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        old = self.prior.get(urn)
        if old is not None and request.custom:
            # The engine puts each ignored input's stored value in place before the provider's Check
            # and Diff (pulumi pkg/resource/deploy/step_generator.go, processIgnoreChanges); top-level keys here.
            inputs = {**inputs, **{key: old.inputs[key] for key in request.ignoreChanges if key in old.inputs}}
        args = mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        trigger = rpc.deserialize_property(request.replacement_trigger) if request.HasField("replacement_trigger") else None
        if old is not None and args.custom and trigger != old.replacement_trigger:
            # A changed replacementTrigger replaces the resource whatever its provider's diff says
            # (Pulumi docs, resource options: replacementTrigger).
            (id_, state), step = self.mocks.new_resource(args), "replace"
        elif old is not None and args.custom:
            id_, state, step = self.mocks.existing_resource(args, old)
        else:
            (id_, state), step = self.mocks.new_resource(args), "create" if old is None else "same"
        state = self._record(request, urn, inputs, state, trigger)
        self.registrations[urn].id, self.registrations[urn].step = id_, step
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        obj = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)

    def ReadResource(self, request):
        # The engine performs `.get()` reads during previews too, before the objects exist.
        raise AssertionError(f"{request.type} {request.name} is read with .get(), which fails the preview of a stack that does not have it yet")

    # Queries used by the tests.

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations.values() if r.type == type_]

    def named(self, type_: str, name: str) -> Registration:
        matches = [r for r in self.of_type(type_) if r.name == name]
        assert len(matches) == 1, f"expected one {type_} named {name}, got {[r.name for r in self.of_type(type_)]}"
        return matches[0]

    def ancestors_and_deps(self, urn: str) -> set[str]:
        """Everything `urn` waits for: its dependencies, transitively, through components too."""
        seen: set[str] = set()
        todo = [urn]
        while todo:
            current = self.registrations.get(todo.pop())
            if current is None:
                continue
            for dep in current.dependencies + [d for deps in current.property_dependencies.values() for d in deps]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
                    # Depending on a component means depending on all of its children.
                    todo.extend(r.urn for r in self.registrations.values() if r.parent == dep and r.urn not in seen)
        return seen


def unwrap(value: Any) -> Any:
    """A recorded value with every secret wrapper removed."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def stack_config(stack: str) -> dict[str, str]:
    """The stack file's config as the Pulumi CLI hands it to the program: objects JSON-encoded."""
    raw = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text()).get("config", {})
    encoded = {}
    for key, value in raw.items():
        if isinstance(value, str):
            encoded[key] = value
        else:
            encoded[key] = json.dumps(value)
    return encoded


def _finish_pending_work() -> None:
    """A failed program leaves registrations in flight; let them end (or cancel them) so that
    they never reach the next run's monitor."""
    loop = asyncio.get_event_loop()
    tasks = list(asyncio.all_tasks(loop)) + list(SETTINGS.outputs)
    pending = [task for task in tasks if not task.done()]
    if pending:
        _, still = loop.run_until_complete(asyncio.wait(pending, timeout=5))
        for task in still:
            task.cancel()
    # The run's error is the one raised; the same error echoed by dependent tasks, and by the
    # failed resource's output futures (which no task awaits), is noise.
    for future in tasks + [obj for obj in gc.get_objects() if isinstance(obj, asyncio.Future)]:
        if future.done() and not future.cancelled():
            future.exception()


def deletion_order(state: dict[str, Registration], gone: set[str]) -> list[str]:
    """The engine deletes dependents first: a resource goes before its dependencies, its parent
    and its provider, and depending on a component means depending on its children
    (pkg/resource/graph/dependency_graph.go, DependenciesOf). Ties go in registration order."""
    children: dict[str, list[str]] = {}
    for urn, registration in state.items():
        children.setdefault(registration.parent, []).append(urn)

    def expand(urn: str) -> set[str]:
        found, todo = set(), [urn]
        while todo:
            current = todo.pop()
            found.add(current)
            todo.extend(children.get(current, []))
        return found

    needs: dict[str, set[str]] = {}
    for urn in gone:
        registration = state[urn]
        direct = registration.dependencies + [d for deps in registration.property_dependencies.values() for d in deps]
        provider = registration.provider.rsplit("::", 1)[0]
        needs[urn] = ({d for dep in direct for d in expand(dep)} | {registration.parent, provider}) & gone - {urn}
    order: list[str] = []
    remaining = [urn for urn in state if urn in gone]
    while remaining:
        # Deletable once nothing still to be deleted needs it.
        ready = next(urn for urn in remaining if not any(urn in needs[other] for other in remaining if other != urn))
        order.append(ready)
        remaining.remove(ready)
    return order


@dataclass
class Run:
    monitor: RecordingMonitor
    outputs: dict[str, Any]
    secret_outputs: set[str]
    deleted: list[str]  # URNs of the earlier run's resources that this one deleted, in order


def run(
    fakes: mocks.Mocks,
    program: Callable[[], Any],
    config: Optional[dict[str, str]] = None,
    stack: str = "test",
    preview: bool = False,
    prior: Optional[Run] = None,
) -> Run:
    """Run `program` under `fakes`; returns what was registered and exported.

    Without `prior`, on a fresh stack. With it, as an update of the stack `prior` left: each
    resource it has is diffed by `fakes.existing_resource`, and once the program is done (not in
    a preview) what the program no longer registers is deleted by `fakes.delete_resource`.
    """
    # Outputs of an earlier run that failed must not be awaited (and re-raised) by this one.
    SETTINGS.outputs.clear()
    pulumi.runtime.set_all_config(config or {}, [])
    ROOT.set(None)
    monitor = RecordingMonitor(fakes, prior.monitor if prior else None)
    mocks.set_mocks(fakes, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    # What the fakes serve to the program's own tools (the DigitalOcean API that doctl reads) and its
    # own reads at evaluation (the clusters behind kubeconfigs) during the run.
    serving = getattr(fakes, "serving", contextlib.nullcontext)
    try:
        with serving():
            _sync_await(pulumi.runtime.stack.run_pulumi_func(program))
    except BaseException:
        _finish_pending_work()
        raise
    outputs: dict[str, Any] = {}
    secret: set[str] = set()
    for name, value in ROOT.get().outputs.items():
        output = pulumi.Output.from_input(value)
        outputs[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            secret.add(name)
    deleted = deletion_order(monitor.prior, set(monitor.prior) - set(monitor.registrations)) if not preview else []
    for urn in deleted:
        fakes.delete_resource(monitor.prior[urn])
    return Run(monitor=monitor, outputs=outputs, secret_outputs=secret, deleted=deleted)


def run_main(fakes: mocks.Mocks, stack: str = "west-east", config: Optional[dict[str, str]] = None, replace_config: bool = False, **kwargs) -> Run:
    """Run the real `__main__.py` with the config of `Pulumi.<stack>.yaml`, updated (or replaced) by `config`."""
    merged = {**({} if replace_config else stack_config(stack)), **(config or {})}
    return run(fakes, lambda: runpy.run_path(str(REPO / "__main__.py"), run_name="__main__"), merged, stack=stack, **kwargs)
