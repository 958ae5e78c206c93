"""Reading what a cluster produces asynchronously, once `pulumi up` has created its cause.

`Service.get` and `Secret.get` read during previews too, when the object may not exist yet (a
new link to a cluster whose gateway is only being enabled, a re-run after a failed first `up`),
and then fail the preview. A dynamic resource reads only when it is created (or refreshed),
polls a bounded time until the object is ready, and shows "known after apply" in a preview.
Reading never writes: deleting such a resource deletes nothing in the cluster (except the export
label, components/exports.py, a read of a Service that also applies its label and removes it).

How each engine path treats a read (the engine runs the provider in `python -m pulumi.dynamic`):
- diff: the engine passes the stored outputs and the new inputs, `__provider` (the pickled
  provider) included; a new Python or dill version changes that pickle, so `__` keys are not
  compared. The wait's timeout changes nothing that was read, so it is not compared either: a
  preview of a provider without preview support shows an update's new inputs as its outputs,
  which would turn every address unknown and replace every mirror downstream.
- refresh: Read answers with the object as it is, ready or not; only an object that is gone
  (404) answers with an empty id, which makes the engine drop the resource from the state.
- up after a refresh that found the object not ready: the stored outputs are not ready, so the
  read is replaced, i.e. waited for again.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import pulumi
import pulumi.dynamic
from kubernetes.client.exceptions import ApiException

from components.kube_client import api_client

POLL_SECONDS = 5.0
# Every request of a read gives up after this (connect, read) many seconds: a cluster that
# accepts connections and never answers must not stall a wait, let alone a preview's diff.
REQUEST_TIMEOUT = (5, 10)


def look_client(kubeconfig: str) -> Any:
    """A client for a diff's look at a live cluster: it must not stall a preview, so its credential
    plugin and each request get one bounded attempt (no urllib3 retries)."""
    return api_client(kubeconfig, exec_timeout_seconds=sum(REQUEST_TIMEOUT), retries=0)


def changed_inputs(olds: dict, news: dict, ignored: tuple[str, ...] = ()) -> list[str]:
    """The inputs that differ, leaving out `__provider` (the pickled provider: a new Python or dill
    version changes it, not what the provider does) and the keys in `ignored`."""
    return [key for key in news if not key.startswith("__") and key not in ignored and olds.get(key) != news.get(key)]


class NotReady(Exception):
    """The object is missing or not ready yet; the message says what it lacks."""


class WaitTimedOut(Exception):
    pass


def waited(props: dict) -> str:
    """How long a read waited, for messages: "300s"."""
    return f"{float(props['timeoutSeconds']):g}s"


def read_or_none(request: Callable[[], Any]) -> Any:
    """The object, or None when the API server says it does not exist."""
    try:
        return request()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def poll_until_ready(
    read: Callable[[], dict],
    timeout_seconds: float,
    timeout_message: Callable[[str], str],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """`read()` until it stops raising NotReady; WaitTimedOut with `timeout_message(last state)`."""
    deadline = clock() + timeout_seconds
    interval = min(POLL_SECONDS, timeout_seconds / 10)
    while True:
        try:
            return read()
        except NotReady as not_ready:
            if clock() >= deadline:
                raise WaitTimedOut(timeout_message(str(not_ready))) from None
        sleep(interval)


class LiveReadProvider(pulumi.dynamic.ResourceProvider):
    """Subclasses name their `outputs` and what a 404 means (`missing`), and implement
    `observe`, `problem` and `timeout_message`.

    Inputs always include `kubeconfig` (the exec form: no secret; a new one is stored by an
    update) and `timeoutSeconds` (not compared). A change of any other input means the object may
    have changed, so it is read again (a replacement); so is an object stored while not ready, and,
    with `look_live_on_diff`, one that the cluster has changed since.
    """

    outputs: tuple[str, ...] = ()
    missing = "the object does not exist"
    # Whether a diff also looks at the live object, so that a plain `pulumi up` notices a change.
    look_live_on_diff = False

    def observe(self, api: Any, props: dict) -> Optional[dict]:
        """The outputs as the cluster has them now, ready or not; None when the object is gone (404)."""
        raise NotImplementedError

    def problem(self, props: dict, observed: dict) -> Optional[str]:
        """What keeps `observed` from being ready, or None when it is ready."""
        raise NotImplementedError

    def timeout_message(self, props: dict, last_state: str) -> str:
        raise NotImplementedError

    def _read_ready(self, api: Any, props: dict) -> dict:
        observed = self.observe(api, props)
        if observed is None:
            raise NotReady(self.missing)
        problem = self.problem(props, observed)
        if problem:
            raise NotReady(problem)
        return observed

    def _wait(self, props: dict) -> dict:
        api = api_client(props["kubeconfig"])
        return poll_until_ready(
            lambda: self._read_ready(api, props),
            float(props["timeoutSeconds"]),
            lambda last_state: self.timeout_message(props, last_state),
        )

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=props["objectId"], outs={**props, **self._wait(props)})

    def _stored_outputs(self, olds: dict) -> dict:
        return {key: olds.get(key) for key in self.outputs}

    def _looks_different_live(self, olds: dict, news: dict) -> bool:
        """Whether the live object is no longer what was stored; False when it cannot be seen
        (no access from here, e.g. a preview without cluster credentials): then the inputs decide."""
        if not self.look_live_on_diff or olds.get("kubeconfig") != news.get("kubeconfig"):
            return False
        try:
            observed = self.observe(look_client(olds["kubeconfig"]), olds)
        except Exception:  # a best-effort look: an unreachable cluster must not fail the preview
            return False
        return observed != self._stored_outputs(olds)

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        # `__provider` and the timeout are not compared (see the module's docstring).
        changed = changed_inputs(olds, news, (*self.outputs, "timeoutSeconds"))
        # A new kubeconfig (a rotated token) changes nothing that was read: an update stores it.
        replaces = [key for key in changed if key != "kubeconfig"]
        # Stored while not ready (by a refresh), or changed in the cluster since: read it again.
        if not replaces and (self.problem(olds, self._stored_outputs(olds)) or self._looks_different_live(olds, news)):
            replaces = list(self.outputs)
        return pulumi.dynamic.DiffResult(changes=bool(changed or replaces), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs={**news, **{key: olds[key] for key in self.outputs if key in olds}})

    def read(self, id_: str, props: dict) -> pulumi.dynamic.ReadResult:
        """`pulumi refresh`: the object as it is now, ready or not. Only an object that is gone
        answers with an empty id: the engine then drops the read from the state."""
        observed = self.observe(api_client(props["kubeconfig"]), props)
        if observed is None:
            return pulumi.dynamic.ReadResult(id_=None, outs={})
        return pulumi.dynamic.ReadResult(id_=id_, outs={**props, **observed})


def live_read_inputs(kubeconfig: pulumi.Input[str], timeout_seconds: int, object_id: str, **inputs: Any) -> dict:
    """The inputs of a live read: what to read, from where, for how long; outputs start as None."""
    return {"kubeconfig": kubeconfig, "timeoutSeconds": timeout_seconds, "objectId": object_id, **inputs}

