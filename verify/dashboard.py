"""`python -m verify.dashboard CLUSTER [--outputs FILE]`: opens the linkerd-viz dashboard of one cluster.

Writes the cluster's kubeconfig from the stack outputs to a private temporary file and runs
`kubectl -n linkerd-viz port-forward svc/web 8084:8084` with it, then http://localhost:8084 shows
the dashboard. The file is removed when the port-forward ends. A cluster given by a kubeconfig is
reached through that file and context, as the outputs name them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Optional, Sequence

from components.kubeconfigs import parse_reference
from verify.outputs import OutputsError, load_outputs

PORT = 8084
PORT_FORWARD = ["-n", "linkerd-viz", "port-forward", "svc/web", f"{PORT}:{PORT}"]
KUBECTL_MISSING = "kubectl is not on PATH; install it (https://kubernetes.io/docs/tasks/tools/) and run this again. It runs:"


def write_kubeconfig(kubeconfig: str) -> str:
    """Writes the kubeconfig to a new file readable by the owner only and returns its path."""
    fd, path = tempfile.mkstemp(prefix="kubeconfig-", suffix=".yaml")
    # mkstemp already creates 0600; say so explicitly: the exec form holds no secret, but the outputs
    # of a stack deployed before it carry a token kubeconfig.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(kubeconfig)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.dashboard", description="Port-forwards the linkerd-viz dashboard of CLUSTER to localhost.")
    parser.add_argument("cluster", metavar="CLUSTER", help="cluster name, as in the `kubeconfigs` stack output")
    parser.add_argument("--outputs", default="-", metavar="FILE", help="stack outputs as JSON in FILE, or '-' for stdin (default)")
    args = parser.parse_args(argv)
    try:
        kubeconfigs = load_outputs(args.outputs).kubeconfigs
    except OutputsError as err:
        print(f"dashboard: {err}", file=sys.stderr)
        return 2
    if args.cluster not in kubeconfigs:
        print(f"dashboard: no cluster {args.cluster!r}; the stack has {', '.join(sorted(kubeconfigs))}", file=sys.stderr)
        return 2
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        # No credentials file is written when nothing could use it.
        print(f"dashboard: {KUBECTL_MISSING}\n    kubectl --kubeconfig <kubeconfig of {args.cluster}> {shlex.join(PORT_FORWARD)}", file=sys.stderr)
        return 1
    given = parse_reference(kubeconfigs[args.cluster])
    path = given[0] if given else write_kubeconfig(kubeconfigs[args.cluster])
    command = [kubectl, "--kubeconfig", path, *(["--context", given[1]] if given else []), *PORT_FORWARD]
    print(f"Dashboard of {args.cluster}: http://localhost:{PORT} (Ctrl-C to stop)\n$ {shlex.join(command)}", flush=True)
    # A child process rather than exec, so the credentials file is removed when kubectl exits.
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0
    finally:
        if not given:
            os.remove(path)  # never the user's own kubeconfig


if __name__ == "__main__":
    sys.exit(main())
