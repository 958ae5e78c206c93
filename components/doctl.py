"""doctl as the program runs it: always with the DigitalOcean token of the environment, to look
clusters up and to fetch their short-lived credentials (no Pulumi import: the dynamic providers
and `verify` use it too). Sources: doctl v1.166.0.

Which token doctl uses (commands/command_config.go, getContextAccessToken; commands/doit.go,
initConfig): the context is the `--context` flag, else `context` from the environment
(DIGITALOCEAN_CONTEXT) or from its config file (which `doctl auth switch` writes), else `default`.
Only the `default` context takes DIGITALOCEAN_ACCESS_TOKEN (after an `--access-token` flag, before
the config file's `access-token`); any other context takes its stored token from `auth-contexts`
and ignores the environment. So every doctl command here names `--context=default`.

doctl caches each cluster's exec credential in `<user config dir>/doctl/cache/exec-credential/
<cluster id>.json` and serves it, without asking DigitalOcean, until its expirationTimestamp by the
local clock (commands/kubernetes.go, RunKubernetesKubeconfigExecCredential and
loadCachedExecCredential); only its removal (which `kubeconfig save` also does) makes it fetch anew.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional

import yaml

CONTEXT_FLAG = "--context=default"
# Listing pages through every cluster of the account: a few API calls.
TIMEOUT_SECONDS = 60
# `kubeconfig show --expiry-seconds`: how long the token in the shown kubeconfig lives (only its CA is used).
SHOWN_TOKEN_SECONDS = 60
# The tag terraform-provider-digitalocean puts on a cluster's built-in node pool (kubernetes.go).
BUILT_IN_POOL_TAG = "terraform:default-node-pool"


class DoctlError(Exception):
    """doctl failed or is missing; the message says what to do and never quotes a token."""


@dataclass(frozen=True)
class LivePool:
    name: str
    size: str
    count: int
    tags: tuple[str, ...]


@dataclass(frozen=True)
class LiveCluster:
    """A DOKS cluster as it runs now (the API's fields, as `doctl kubernetes cluster get -o json` prints them)."""

    id: str
    name: str
    region: str
    version: str
    ha: bool
    cluster_subnet: str
    service_subnet: str
    endpoint: str
    node_pools: tuple[LivePool, ...]

    @property
    def system_pool_size(self) -> Optional[str]:
        """The built-in pool's size when Pulumi or Terraform made the cluster (its pool carries their
        tag); None for a cluster made otherwise, whose built-in pool cannot be told apart."""
        return next((pool.size for pool in self.node_pools if BUILT_IN_POOL_TAG in pool.tags), None)


def redacted(text: str, env: Mapping[str, str]) -> str:
    """A tool's message, without any DigitalOcean token from `env`, and kept short."""
    for name in ("DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN"):
        if env.get(name):
            text = text.replace(env[name], "***")
    return text[:300]


def run(args: list[str], timeout_seconds: float = TIMEOUT_SECONDS) -> str:
    """doctl's standard output for `args`, run in the default context; DoctlError when it fails."""
    command = ["doctl", *args, CONTEXT_FLAG]
    shown = " ".join(command)
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_seconds)
    except FileNotFoundError:
        raise DoctlError(f"`{shown}` needs doctl, which is not on PATH; install it (`make deploy` installs the pinned version) or put it on PATH") from None
    except subprocess.TimeoutExpired:
        raise DoctlError(f"`{shown}` did not answer within {timeout_seconds:g}s") from None
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message"
        raise DoctlError(f"`{shown}` failed (exit {done.returncode}: {redacted(said, os.environ)})")
    return done.stdout


def _is_id(name_or_id: str) -> bool:
    """doctl takes a UUID for an id and anything else for a name (commands/kubernetes.go, looksLikeUUID)."""
    try:
        uuid.UUID(name_or_id)
    except ValueError:
        return False
    return True


def _cluster(found: dict) -> LiveCluster:
    # godo's KubernetesCluster JSON; `omitempty` leaves out false and empty fields.
    return LiveCluster(
        id=found["id"],
        name=found["name"],
        region=found["region"],
        version=found["version"],
        ha=bool(found.get("ha")),
        cluster_subnet=found.get("cluster_subnet", ""),
        service_subnet=found.get("service_subnet", ""),
        endpoint=found.get("endpoint", ""),
        node_pools=tuple(LivePool(p["name"], p["size"], int(p.get("count", 0)), tuple(p.get("tags") or ())) for p in found.get("node_pools") or ()),
    )


def find_clusters(names_or_ids: Iterable[str]) -> dict[str, Optional[LiveCluster]]:
    """Each DOKS cluster of the account by name or id, None where none is; DoctlError when the
    lookup fails or a name is ambiguous. It needs only the `kubernetes:read` scope.

    Names are looked up in one `doctl kubernetes cluster list`, which pages through the whole
    account (do/pagination.go: 200 a page, every page), where the API alone returns the first 20
    (per_page's default, DigitalOcean OpenAPI specification/shared/parameters.yml). An id is read
    directly (`get <id>`: GET /v2/kubernetes/clusters/<id>), so no page is involved at all."""
    wanted = list(dict.fromkeys(names_or_ids))
    found: dict[str, Optional[LiveCluster]] = {}
    names = [key for key in wanted if not _is_id(key)]
    if names:
        listed = [_cluster(item) for item in json.loads(run(["kubernetes", "cluster", "list", "--output=json"])) or []]
        for name in names:
            matching = [cluster for cluster in listed if cluster.name == name]
            if len(matching) > 1:
                raise DoctlError(f"{len(matching)} DOKS clusters go by the name {name!r} ({', '.join(c.id for c in matching)}): name one by its id")
            found[name] = matching[0] if matching else None
    for cluster_id in (key for key in wanted if _is_id(key)):
        try:
            found[cluster_id] = _cluster(json.loads(run(["kubernetes", "cluster", "get", cluster_id, "--output=json"]))[0])
        except DoctlError as error:
            # godo's error for a cluster that does not exist: "GET <url>: 404 (request ...) ..." (godo.go, ErrorResponse).
            if ": 404 " not in str(error):
                raise
            found[cluster_id] = None
    return {key: found[key] for key in wanted}


def exec_credential_cluster(command: list[str]) -> Optional[str]:
    """The cluster id of a `doctl kubernetes cluster kubeconfig exec-credential ... <id>` command, else None."""
    if os.path.basename(command[0]) != "doctl" or "exec-credential" not in command:
        return None
    return command[-1]


def _user_config_dir(env: Mapping[str, str]) -> Optional[Path]:
    """Go's os.UserConfigDir, under which doctl keeps its config and cache (commands/doit.go, defaultConfigHome)."""
    home = env.get("HOME", "")
    if sys.platform == "win32":
        return Path(env["AppData"]) if env.get("AppData") else None
    if sys.platform == "darwin":
        return Path(home) / "Library" / "Application Support" if home else None
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg:
        return Path(xdg) if os.path.isabs(xdg) else None
    return Path(home) / ".config" if home else None


def forget_cached_credential(cluster_id: str, refused_token: str, env: Mapping[str, str]) -> None:
    """Removes doctl's cached credential for the cluster if it is the token the API server refused,
    so that doctl fetches a new one; a credential cached since (by another run) stays."""
    base = _user_config_dir(env)
    if base is None:
        return
    path = base / "doctl" / "cache" / "exec-credential" / f"{cluster_id}.json"
    try:
        if json.loads(path.read_text())["status"]["token"] == refused_token:
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none cached, or unreadable: doctl then fetches anew or replaces it itself


def cluster_ca(cluster_id: str) -> str:
    """The cluster's CA certificate (base64 PEM, as kubeconfigs hold it), which the cluster list
    leaves out. It comes from the kubeconfig DigitalOcean serves for the cluster (`kubeconfig show`:
    GET /v2/kubernetes/clusters/<id>/kubeconfig, which needs kubernetes:access_cluster); that file
    also carries a token, which is dropped here and never shown: asked for with the shortest life
    DigitalOcean grants, so that it is useless by the time anything could leak it."""
    shown = run(["kubernetes", "cluster", "kubeconfig", "show", cluster_id, f"--expiry-seconds={SHOWN_TOKEN_SECONDS}"])
    try:
        return yaml.safe_load(shown)["clusters"][0]["cluster"]["certificate-authority-data"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        raise DoctlError(f"`doctl kubernetes cluster kubeconfig show {cluster_id}` printed no cluster CA") from None
