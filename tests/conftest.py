"""What every test runs with, as `make deploy` and CI provide it: a `doctl` first on PATH (here
the fake one, tests/fake_doctl.py) and the account's token in DIGITALOCEAN_ACCESS_TOKEN; and, per
test, a user config directory of its own (XDG_CONFIG_HOME), where doctl keeps its config and its
credential cache, empty as on a fresh CI runner."""

from __future__ import annotations

import gc
import os

import pytest

from tests import fake_doctl
from tests.fake_account import DO_TOKEN


def pytest_configure(config: pytest.Config) -> None:
    # The program runs under mocks make many short-lived objects: collecting them less often, and
    # never the imported modules (frozen), takes a sixth off the suite's time. Memory is plentiful.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)


@pytest.fixture(scope="session", autouse=True)
def doctl_and_token(tmp_path_factory: pytest.TempPathFactory):
    doctl = fake_doctl.install(tmp_path_factory.mktemp("bin"))
    saved = {name: os.environ.get(name) for name in ("PATH", "DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN", "XDG_CONFIG_HOME")}
    os.environ["PATH"] = f"{doctl.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # Never the user's own doctl directory, not even for module-scoped fixtures (each test gets its own below).
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    os.environ["DIGITALOCEAN_ACCESS_TOKEN"] = DO_TOKEN
    os.environ.pop("DIGITALOCEAN_TOKEN", None)
    yield doctl
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def user_config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """doctl's directory is `<this>/doctl` (Go's os.UserConfigDir on Linux)."""
    config_dir = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_dir))
    monkeypatch.delenv("DIGITALOCEAN_CONTEXT", raising=False)
    return config_dir
