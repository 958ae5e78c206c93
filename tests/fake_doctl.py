"""A fake `doctl` for the tests: only `kubernetes cluster kubeconfig exec-credential`, as doctl
behaves (commands/kubernetes.go, RunKubernetesKubeconfigExecCredential, at doctl v1.166.0).
tests/conftest.py puts it first on PATH as `doctl`; it has no config file (`doctl auth init`),
so the token comes from DIGITALOCEAN_ACCESS_TOKEN only, and no credential cache (doctl keeps one
per cluster until it expires): stricter, it checks the token on every call."""

import datetime as dt
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_account import ACCOUNT_TOKENS, CLUSTER_TOKEN_SECONDS, PREVIEW_TOKEN, cluster_token  # noqa: E402


def fail(message: str) -> None:
    # commands/errors.go checkErr: "Error: <message>" on stderr, exit 1.
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(1)


args = sys.argv[1:]
if args[:4] != ["kubernetes", "cluster", "kubeconfig", "exec-credential"]:
    print(f"fake doctl: only `kubernetes cluster kubeconfig exec-credential` is faked, not {args}", file=sys.stderr)
    sys.exit(2)
flags = [a for a in args[4:] if a.startswith("--")]
positional = [a for a in args[4:] if not a.startswith("--")]
# Every command builds its API client first (commands/command_config.go, NewCmdConfig; doit.go,
# GetGodoClient): without a token it fails before looking at anything else.
token = os.environ.get("DIGITALOCEAN_ACCESS_TOKEN", "")
if not token:
    fail("Unable to initialize DigitalOcean API client: access token is required. (hint: run 'doctl auth init')")
if len(positional) != 1:
    fail("(kubernetes.cluster.kubeconfig.exec-credential) command is missing required arguments")
version = next((f.split("=", 1)[1] for f in flags if f.startswith("--version=")), "")
if version != "v1beta1":
    fail(f"Invalid version \"{version}\", expected 'v1beta1'")
cluster_id = positional[0]
if token == PREVIEW_TOKEN:
    # GET /v2/kubernetes/clusters/<id>/credentials needs kubernetes:access_cluster: 403.
    fail(f'Failed to fetch credentials for cluster "{cluster_id}": You are not authorized to perform this operation')
if token not in ACCOUNT_TOKENS:
    # The API answers 401 {"id": "Unauthorized", "message": "Unable to authenticate you"}.
    fail(f'Failed to fetch credentials for cluster "{cluster_id}": Unable to authenticate you')
expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=CLUSTER_TOKEN_SECONDS)
credential = {
    "kind": "ExecCredential",
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "spec": {"interactive": False},
    "status": {"expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": cluster_token(cluster_id)},
}
print(json.dumps(credential))
