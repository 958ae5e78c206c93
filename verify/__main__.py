"""Checks the live multi-cluster mesh that the stack outputs describe.

Usage: `python -m verify [--json] [--outputs FILE]`.

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 the outputs, a
kubeconfig or a cluster's credentials are unusable (unreadable outputs, a kubeconfig that is not
YAML, an API server answering 401).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from verify import report
from verify.checks import run_checks
from verify.kube import CredentialsRejected, KubeCluster, KubeError
from verify.outputs import OutputsError, load_outputs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--outputs",
        default="-",
        metavar="FILE",
        help="`pulumi stack output --json` saved to FILE, or '-' for stdin (default)",
    )
    args = parser.parse_args(argv)
    try:
        outputs = load_outputs(args.outputs)
        clusters = {name: KubeCluster(name, kubeconfig) for name, kubeconfig in outputs.kubeconfigs.items()}
    except (OutputsError, KubeError) as err:
        print(f"verify: {err}", file=sys.stderr)
        return 2
    results = run_checks(outputs, clusters)
    print(report.as_json(results) if args.json else report.as_text(results))
    rejected = [cluster.failure for cluster in clusters.values() if isinstance(cluster.failure, CredentialsRejected)]
    for failure in rejected:
        print(f"verify: {failure}", file=sys.stderr)
    if rejected:
        return 2
    return 0 if report.all_ok(results) else 1


if __name__ == "__main__":
    sys.exit(main())
