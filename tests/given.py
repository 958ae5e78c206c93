"""Clusters the program is given, for the tests: kubeconfig files for fake clusters (with a token, a
token file, or an exec credential plugin), and stack config that mixes the three cluster sources."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Mapping, Optional

import yaml

from tests.harness import PROJECT

# A plugin like `aws eks get-token`: prints an ExecCredential whose token it read from its environment.
PLUGIN = """import json, os
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": os.environ["FAKE_PLUGIN_TOKEN"], "expirationTimestamp": "2099-01-01T00:00:00Z"}}))
"""


def write_kubeconfig(path: Path, contexts: Mapping[str, tuple[str, dict]]) -> Path:
    """A kubeconfig file with one context (and cluster, and user) per name: name -> (server, user)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": f"{name}-cluster", "cluster": {"server": server}} for name, (server, _) in contexts.items()],
                "users": [{"name": f"{name}-admin", "user": user} for name, (_, user) in contexts.items()],
                "contexts": [{"name": name, "context": {"cluster": f"{name}-cluster", "user": f"{name}-admin"}} for name, _ in contexts.items()],
                "current-context": next(iter(contexts)),
            }
        )
    )
    return path


def plugin_user(directory: Path, token: str) -> dict:
    """An exec user whose plugin (a script beside the kubeconfig, named by a relative path as
    kubeconfigs may) prints `token`."""
    plugin = directory / "get-token"
    plugin.write_text(f"#!{sys.executable} -S\n{PLUGIN}")
    plugin.chmod(0o755)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "./get-token", "env": [{"name": "FAKE_PLUGIN_TOKEN", "value": token}], "interactiveMode": "Never"}}


def token_file_user(directory: Path, token: str) -> dict:
    (directory / "token").write_text(token)
    return {"tokenFile": "token"}  # relative: to the kubeconfig's directory


def created(region: str, octet: int) -> dict:
    return {"region": region, "nodeSize": "s-4vcpu-8gb", "nodeCount": 3, "clusterSubnet": f"172.{octet}.0.0/16", "serviceSubnet": f"192.168.{octet}.0/24"}


def stack_values(clusters: dict, links: list[tuple[str, str]], exports: Optional[list[dict]] = None, demo: bool = True) -> dict[str, str]:
    return {
        f"{PROJECT}:clusters": json.dumps(clusters),
        f"{PROJECT}:links": json.dumps([{"from": a, "to": b} for a, b in links]),
        f"{PROJECT}:exports": json.dumps(exports if exports is not None else [{"cluster": b, "namespace": "emojivoto", "service": "web-svc"} for b in sorted({b for _, b in links})]),
        f"{PROJECT}:demo": json.dumps(demo),
    }
