"""What every test runs with, as `make deploy` and CI provide it: a `doctl` first on PATH (here
the fake one, tests/fake_doctl.py) and the account's token in DIGITALOCEAN_ACCESS_TOKEN."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.fake_account import DO_TOKEN

FAKE_DOCTL = Path(__file__).parent / "fake_doctl.py"


@pytest.fixture(scope="session", autouse=True)
def doctl_and_token(tmp_path_factory: pytest.TempPathFactory):
    bin_dir = tmp_path_factory.mktemp("bin")
    doctl = bin_dir / "doctl"
    # This interpreter without site-packages: the fake needs none, and starts in ~20 ms.
    doctl.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKE_DOCTL}" "$@"\n')
    doctl.chmod(0o755)
    saved = {name: os.environ.get(name) for name in ("PATH", "DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN")}
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["DIGITALOCEAN_ACCESS_TOKEN"] = DO_TOKEN
    os.environ.pop("DIGITALOCEAN_TOKEN", None)
    yield doctl
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
