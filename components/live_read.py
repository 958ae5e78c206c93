"""Reading what a cluster produces asynchronously, once `pulumi up` has created its cause.

`Service.get` and `Secret.get` read during previews too, when the object may not exist yet (a
new link to a cluster whose gateway is only being enabled, a re-run after a failed first `up`),
and then fail the preview. A dynamic resource reads only when it is created (or refreshed),
polls a bounded time until the object is ready, and shows "known after apply" in a preview.
Reading never writes: deleting such a resource deletes nothing in the cluster.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import pulumi
import pulumi.dynamic
from kubernetes.client.exceptions import ApiException

from components.kube_client import api_client

POLL_SECONDS = 5.0


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
    """Subclasses name their `outputs` and implement `read_live` and `timeout_message`.

    Inputs always include `kubeconfig` (the exec form: no secret) and `timeoutSeconds`; a change of any other
    input means the object may have changed, so it is read again (a replacement).
    """

    outputs: tuple[str, ...] = ()

    def read_live(self, api: Any, props: dict) -> dict:
        raise NotImplementedError

    def timeout_message(self, props: dict, last_state: str) -> str:
        raise NotImplementedError

    def _wait(self, props: dict) -> dict:
        api = api_client(props["kubeconfig"])
        return poll_until_ready(
            lambda: self.read_live(api, props),
            float(props["timeoutSeconds"]),
            lambda last_state: self.timeout_message(props, last_state),
        )

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=props["objectId"], outs={**props, **self._wait(props)})

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        changed = [key for key in news if key not in self.outputs and olds.get(key) != news.get(key)]
        # A new kubeconfig (a rotated token) or timeout changes nothing that was read: an update
        # just stores it; anything else means the object may differ, so it is read again.
        replaces = [key for key in changed if key not in ("kubeconfig", "timeoutSeconds")]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs={**news, **{key: olds[key] for key in self.outputs if key in olds}})

    def read(self, id_: str, props: dict) -> pulumi.dynamic.ReadResult:
        """`pulumi refresh`: the object as it is now; gone (or not ready) means read it again on `up`."""
        try:
            live = self.read_live(api_client(props["kubeconfig"]), props)
        except NotReady:
            return pulumi.dynamic.ReadResult(id_=None, outs={})
        return pulumi.dynamic.ReadResult(id_=id_, outs={**props, **live})


def live_read_inputs(kubeconfig: pulumi.Input[str], timeout_seconds: int, object_id: str, **inputs: Any) -> dict:
    """The inputs of a live read: what to read, from where, for how long; outputs start as None."""
    return {"kubeconfig": kubeconfig, "timeoutSeconds": timeout_seconds, "objectId": object_id, **inputs}


def live_read_options(opts: Optional[pulumi.ResourceOptions], *secret_outputs: str) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=list(secret_outputs)))
