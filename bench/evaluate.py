"""`make bench`: how long the program takes to evaluate under the Pulumi mocks, as a preview
(evaluating the program and registering every resource, which `pulumi preview` pays before any
provider does work). Prints figures, asserts nothing: timings belong here, not in the tests,
where a loaded machine would turn them red.

Prints the seed stack, a 2-cluster and a 16-cluster full mesh, and the growth from 2 to 16
clusters measured in this same run (so the machine's speed cancels out), next to the growth of
the topology: a full mesh of n clusters has n(n-1) links, 120 times as many at 16 as at 2.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from tests import fake_doctl
from tests.fake_account import DO_TOKEN
from tests.fake_cloud import FakeCloud
from tests.harness import run_main
from tests.program import full_mesh_config

ROUNDS = 3
# The seed stack's own config, as `make deploy` runs it: the token comes from the environment.
SEED_CONFIG: dict[str, str] = {}


def seconds(config: dict[str, str]) -> float:
    """The median wall-clock time of ROUNDS previews with this config."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run_main(FakeCloud(), config=config, preview=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    os.environ.setdefault("DIGITALOCEAN_ACCESS_TOKEN", DO_TOKEN)
    # The program looks the clusters up with doctl: the fake one, with a doctl directory of its own.
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        os.environ["PATH"] = f"{fake_doctl.install(Path(scratch)).parent}{os.pathsep}{os.environ['PATH']}"
        os.environ["XDG_CONFIG_HOME"] = scratch
        measure()


def measure() -> None:
    run_main(FakeCloud(), config=SEED_CONFIG, preview=True)  # imports and first-use costs, paid once
    seed_seconds = seconds(SEED_CONFIG)
    two, sixteen = seconds(full_mesh_config(2)), seconds(full_mesh_config(16))
    print(f"seed stack (west-east)             {seed_seconds:7.2f} s")
    print(f"full mesh,  2 clusters,   2 links  {two:7.2f} s")
    print(f"full mesh, 16 clusters, 240 links  {sixteen:7.2f} s")
    print(f"growth from 2 to 16 clusters       {sixteen / two:7.1f} x   (links: 120 x, clusters: 8 x)")


if __name__ == "__main__":
    main()
