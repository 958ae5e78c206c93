"""A fake `doctl` for the tests: the commands the program runs, as doctl v1.166.0 behaves.

- `kubernetes cluster kubeconfig exec-credential --version=v1beta1 <cluster id>`
  (commands/kubernetes.go, RunKubernetesKubeconfigExecCredential), with doctl's credential cache;
- `kubernetes cluster kubeconfig show <cluster id>` (RunKubernetesKubeconfigShow);
- `kubernetes cluster list` and `kubernetes cluster get <id>`, `--output=json`, against the
  API at DIGITALOCEAN_API_URL (the fake one tests/fake_digitalocean.py serves), paging as doctl does;
- the global flags `--context`, `--access-token`/`-t`, `--config`/`-c`, `--api-url`, `--output`/`-o`,
  and doctl's rule for which token a command uses (see `context_and_token`).

Its config file is read as JSON, which is YAML too (doctl reads YAML): this fake runs without
site-packages (`python -S`, to start fast), so without a YAML parser; the tests write JSON.
tests/conftest.py puts it first on PATH as `doctl` (`install`) and gives each test its own user
config directory (XDG_CONFIG_HOME), where the config file and the credential cache live.
"""

import datetime as dt
import json
import os
import sys
from pathlib import Path

if __package__:  # imported by the tests, for `install`
    from tests.fake_account import ACCOUNT_TOKENS, CLUSTER_TOKEN_SECONDS, OTHER_ACCOUNT_TOKEN, PREVIEW_TOKEN, cluster_token
else:  # run as doctl
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from fake_account import ACCOUNT_TOKENS, CLUSTER_TOKEN_SECONDS, OTHER_ACCOUNT_TOKEN, PREVIEW_TOKEN, cluster_token

# Flags that take a value (`--flag=value` or `--flag value`), by every name they go by.
VALUE_FLAGS = {"--context": "context", "--access-token": "access-token", "-t": "access-token", "--config": "config", "-c": "config", "--api-url": "api-url", "--output": "output", "-o": "output", "--version": "version", "--expiry-seconds": "expiry-seconds"}
# do/pagination.go: doctl lists 200 a page.
PER_PAGE = 200


def install(bin_dir: Path) -> Path:
    """Writes `bin_dir/doctl`, which runs this fake with this interpreter, without site-packages."""
    doctl = bin_dir / "doctl"
    doctl.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{os.path.abspath(__file__)}" "$@"\n')
    doctl.chmod(0o755)
    return doctl


def fail(message: str) -> None:
    # commands/errors.go checkErr: "Error: <message>" on stderr, exit 1.
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(1)


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    positional, flags = [], {}
    items = iter(argv)
    for item in items:
        name, _, value = item.partition("=")
        if name in VALUE_FLAGS:
            flags[VALUE_FLAGS[name]] = value if "=" in item else next(items, "")
        elif item.startswith("-"):
            fail(f"fake doctl: unknown flag {item}")
        else:
            positional.append(item)
    return positional, flags


def user_config_dir() -> Path:
    # Go's os.UserConfigDir on Linux, where the tests run; doit.go defaultConfigHome adds "doctl".
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path(os.environ["HOME"]) / ".config")


def read_config(flags: dict[str, str]) -> dict:
    # doit.go initConfig: `--config` (viper key "config": the flag, else DIGITALOCEAN_CONFIG), else
    # <user config dir>/doctl/config.yaml; a missing file is no error.
    path = Path(flags.get("config") or os.environ.get("DIGITALOCEAN_CONFIG") or user_config_dir() / "doctl" / "config.yaml")
    return json.loads(path.read_text()) if path.is_file() else {}


def context_and_token(flags: dict[str, str], config: dict) -> tuple[str, str]:
    """commands/command_config.go getContextAccessToken, with doit.go initConfig's viper setup
    (env prefix DIGITALOCEAN, AutomaticEnv; viper's order: flag, environment, config file, default)."""
    # The --context flag is not bound to viper: it comes first; lowercased (initConfig).
    context = (flags.get("context") or "").lower() or os.environ.get("DIGITALOCEAN_CONTEXT") or config.get("context") or "default"
    if context == "default":
        return context, flags.get("access-token") or os.environ.get("DIGITALOCEAN_ACCESS_TOKEN") or config.get("access-token") or ""
    # Any other context: its stored token only; neither --access-token nor the environment counts.
    return context, (config.get("auth-contexts") or {}).get(context, "")


def exec_credential(positional: list[str], flags: dict[str, str], token: str) -> None:
    if len(positional) != 1:
        fail("(kubernetes.cluster.kubeconfig.exec-credential) command is missing required arguments")
    version = flags.get("version", "")
    if version != "v1beta1":
        fail(f"Invalid version \"{version}\", expected 'v1beta1'")
    cluster_id = positional[0]
    # The cache: per cluster id, whatever the context or token; served until its expirationTimestamp
    # by the local clock, an expired one removed (kubeconfigCachePath, loadCachedExecCredential).
    cached = user_config_dir() / "doctl" / "cache" / "exec-credential" / f"{cluster_id}.json"
    try:
        credential = json.loads(cached.read_text())
        expires = dt.datetime.fromisoformat(credential["status"]["expirationTimestamp"].replace("Z", "+00:00"))
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError, AttributeError):
        # A file it cannot decode (one another doctl is writing: cacheExecCredential truncates, then
        # writes) is warned about and passed over: RunKubernetesKubeconfigExecCredential fetches anew.
        pass
    else:
        if expires > dt.datetime.now(dt.timezone.utc):
            print(json.dumps(credential))
            return
        cached.unlink(missing_ok=True)
    if token == PREVIEW_TOKEN:
        # GET /v2/kubernetes/clusters/<id>/credentials needs kubernetes:access_cluster: 403.
        fail(f'Failed to fetch credentials for cluster "{cluster_id}": You are not authorized to perform this operation')
    if token == OTHER_ACCOUNT_TOKEN:
        # Another account has no cluster with this id: 404 {"id": "not_found", ...}.
        fail(f'Failed to fetch credentials for cluster "{cluster_id}": The resource you were accessing could not be found.')
    if token not in ACCOUNT_TOKENS:
        # The API answers 401 {"id": "Unauthorized", "message": "Unable to authenticate you"}.
        fail(f'Failed to fetch credentials for cluster "{cluster_id}": Unable to authenticate you')
    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=CLUSTER_TOKEN_SECONDS)
    credential = {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {"interactive": False},
        "status": {"expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": cluster_token(cluster_id, os.urandom(8).hex())},
    }
    # cacheExecCredential: directory 0700, file 0600.
    cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cached.touch(mode=0o600)
    cached.write_text(json.dumps(credential))
    print(json.dumps(credential))


def api_get(api_url: str, path: str, token: str, raw: bool = False):
    import urllib.error  # only here: each doctl run starts a fresh interpreter, and most need no HTTP
    import urllib.request

    url = f"{api_url.rstrip('/')}{path}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return body.decode() if raw else json.loads(body)
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
        # godo.go ErrorResponse.Error.
        fail(f'GET {url}: {error.code} (request "{body.get("request_id", "")}") {body.get("message", "")}')
    except urllib.error.URLError as error:
        fail(f"fake doctl: no fake DigitalOcean API at {api_url} ({error.reason}); the tests serve one per run")
    raise AssertionError("unreachable")


def list_clusters(api_url: str, token: str) -> list[dict]:
    """do/kubernetes.go List through do/pagination.go PaginateResp: page 1, then every page up to the
    one `links.pages.last` names; a later page that fails is left out without a word."""
    first = api_get(api_url, f"/v2/kubernetes/clusters?page=1&per_page={PER_PAGE}", token)
    last = (first.get("links") or {}).get("pages", {}).get("last", "")
    pages = int(last.split("page=")[1].split("&")[0]) if "page=" in last else 1
    clusters = list(first["kubernetes_clusters"])
    for page in range(2, pages + 1):
        clusters += api_get(api_url, f"/v2/kubernetes/clusters?page={page}&per_page={PER_PAGE}", token)["kubernetes_clusters"]
    return clusters


def api_base(flags: dict[str, str]) -> str:
    return flags.get("api-url") or os.environ.get("DIGITALOCEAN_API_URL") or "https://api.digitalocean.com"


def cluster_command(command: str, positional: list[str], flags: dict[str, str], token: str) -> None:
    if flags.get("output") != "json":
        fail("fake doctl: only --output=json is faked")
    if command == "list":
        print(json.dumps(list_clusters(api_base(flags), token), indent=2))
        return
    if len(positional) != 1:
        fail("(kubernetes.cluster.get) command is missing required arguments")
    # commands/kubernetes.go clusterByIDorName: a UUID is fetched (GET /v2/kubernetes/clusters/<id>);
    # a name is looked up in the list, which the program does itself.
    import uuid  # only here: each doctl run starts a fresh interpreter

    try:
        uuid.UUID(positional[0])
    except ValueError:
        fail("fake doctl: `cluster get <name>` is not faked; the program lists the clusters instead")
    print(json.dumps([api_get(api_base(flags), f"/v2/kubernetes/clusters/{positional[0]}", token)["kubernetes_cluster"]], indent=2))


def kubeconfig_show(positional: list[str], flags: dict[str, str], token: str) -> None:
    """commands/kubernetes.go RunKubernetesKubeconfigShow: the kubeconfig the API serves for the
    cluster, printed as it comes; with --expiry-seconds, godo's GetKubeConfigWithExpiry
    (kubernetes.go: GET .../kubeconfig?expiry_seconds=<n>&type=token)."""
    if len(positional) != 1:
        fail("(kubernetes.cluster.kubeconfig.show) command is missing required arguments")
    query = f"?expiry_seconds={flags['expiry-seconds']}&type=token" if flags.get("expiry-seconds") else ""
    print(api_get(api_base(flags), f"/v2/kubernetes/clusters/{positional[0]}/kubeconfig{query}", token, raw=True))


def main(argv: list[str]) -> None:
    positional, flags = parse(argv)
    _, token = context_and_token(flags, read_config(flags))
    if positional[:4] == ["kubernetes", "cluster", "kubeconfig", "exec-credential"]:
        command, rest = "exec-credential", positional[4:]
    elif positional[:4] == ["kubernetes", "cluster", "kubeconfig", "show"]:
        command, rest = "show", positional[4:]
    elif positional[:3] in (["kubernetes", "cluster", "list"], ["kubernetes", "cluster", "get"]):
        command, rest = positional[2], positional[3:]
    else:
        print(f"fake doctl: only exec-credential, kubeconfig show, cluster list and cluster get are faked, not {argv}", file=sys.stderr)
        sys.exit(2)
    # Every command builds its API client first (commands/command_config.go, NewCmdConfig; doit.go,
    # GetGodoClient): without a token it fails before looking at anything else.
    if not token:
        fail("Unable to initialize DigitalOcean API client: access token is required. (hint: run 'doctl auth init')")
    if command == "exec-credential":
        exec_credential(rest, flags, token)
    elif command == "show":
        kubeconfig_show(rest, flags, token)
    else:
        cluster_command(command, rest, flags, token)


if __name__ == "__main__":
    main(sys.argv[1:])
