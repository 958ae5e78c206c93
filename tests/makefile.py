"""The repository's Makefile, for the tests: its pinned values, and a copy of the repository to
run `make` in with fake tools, so no test downloads anything or touches the real .venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What the Makefile reads: itself, the requirements and the stack files.
MAKE_INPUTS = ["Makefile", "requirements.txt", "requirements-test.txt", "Pulumi.yaml", *(path.name for path in REPO.glob("Pulumi.*.yaml"))]
# The packages its recipes run with the venv's Python: the cost table, and `make kubeconfig` reads a
# cluster's kubeconfig reference with components/kubeconfigs.py.
MAKE_PACKAGES = ["cost_report", "components"]


def variable(name: str) -> str:
    """The value of a simple `NAME := value` line of the Makefile."""
    match = re.search(rf"^{re.escape(name)} := (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, f"no `{name} :=` in the Makefile"
    return match.group(1).strip()


def copy_repo(destination: Path) -> Path:
    destination.mkdir()
    for name in MAKE_INPUTS:
        shutil.copy2(REPO / name, destination / name)
    for name in MAKE_PACKAGES:
        shutil.copytree(REPO / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def make(repo: Path, *args: str, path: list[Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make ARGS` in `repo` with only `path` (then the system's) on PATH and a clean environment."""
    environment = {"PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"]), "HOME": str(repo), **(env or {})}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=repo, env=environment, capture_output=True, text=True, timeout=60)
