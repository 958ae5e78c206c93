"""The props the engine passes the program's dynamic providers, for tests of a provider alone
against a fake API server (or a server that never answers)."""

from __future__ import annotations

import base64

from tests.fake_kube_api import FakeKubeAPI, SilentServer

GATEWAY = "203.0.113.20"


def mirror_props(api: FakeKubeAPI | SilentServer, gateway: str = GATEWAY, timeout: float = 2.0, **outputs) -> dict:
    """A mirrored-service read's props, as the engine passes them; `outputs` as stored."""
    return {
        "__provider": "pickled-provider",
        "kubeconfig": api.kubeconfig(),
        "timeoutSeconds": timeout,
        "objectId": "emojivoto/web-svc-east",
        "link": "west->east",
        "namespace": "emojivoto",
        "service": "web-svc-east",
        "gatewayAddress": gateway,
        "clusterIP": None,
        "endpoints": None,
        **outputs,
    }


def credentials_props(source: FakeKubeAPI | SilentServer, target: FakeKubeAPI | SilentServer, endpoint: str = "https://east.example", timeout: float = 1) -> dict:
    return {
        "source": "west",
        "target": "east",
        "sourceKubeconfig": source.kubeconfig(),
        "targetKubeconfig": target.kubeconfig(),
        "targetEndpoint": endpoint,
        "targetCaCertificate": base64.b64encode(b"east-ca").decode(),
        "tokenSecret": "linkerd-service-mirror-remote-access-west-token",
        "timeoutSeconds": timeout,
        "remoteDiscoveryAnnotations": {},
        "fingerprint": None,
    }
