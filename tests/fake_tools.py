"""Fake command-line tools for the Makefile tests. Each does what the real one does for the few
invocations the Makefile makes, and records its calls; nothing here touches the network."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def curl(bin_dir: Path, served: Path, log: Path) -> Path:
    """`curl -fsSL [-o FILE] URL`: the file in `served` named like the URL's last segment."""
    return executable(
        bin_dir / "curl",
        f"""#!{sys.executable}
import pathlib, shutil, sys
args = sys.argv[1:]
url = args[-1]
with open({str(log)!r}, "a") as log:
    log.write(url + "\\n")
source = pathlib.Path({str(served)!r}) / url.rsplit("/", 1)[-1]
if not source.is_file():
    # curl(1), --fail: an HTTP error writes nothing and exits 22.
    sys.stderr.write("curl: (22) The requested URL returned error: 404\\n")
    sys.exit(22)
if "-o" in args:
    shutil.copyfile(source, args[args.index("-o") + 1])
else:
    sys.stdout.write(source.read_text())
""",
    )


def pulumi(path: Path, log: Path, outputs: dict) -> Path:
    """The Pulumi CLI: records argv and what it sees of its environment (of a token, only its
    sha256), and answers `stack output [NAME] --json` with `outputs[NAME]` (all of them without NAME).
    A command that encrypts or decrypts (up, preview, destroy, change-secrets-provider) a stack
    whose stack file has an encryptionsalt fails without a passphrase, whatever the backend, as
    the real one does non-interactively (pkg/cmd/pulumi/stack/secrets.go, GetSecretsManager;
    pkg/secrets/passphrase/manager.go, readPassphrase)."""
    return executable(
        path,
        f"""#!{sys.executable}
import hashlib, json, os, shutil, sys
args = sys.argv[1:]
def fingerprint(name):
    value = os.environ.get(name)
    return hashlib.sha256(value.encode()).hexdigest() if value is not None else None
seen = {{
    "args": args,
    "path": os.environ["PATH"].split(os.pathsep),
    "pulumi": shutil.which("pulumi"),
    "doctl": shutil.which("doctl"),
    "tokens": {{name: fingerprint(name) for name in ("DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN")}},
    "passphrase_file": os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"),
    "passphrase_set": "PULUMI_CONFIG_PASSPHRASE" in os.environ,
}}
with open({str(log)!r}, "a") as log:
    log.write(json.dumps(seen) + "\\n")
stack = args[args.index("--stack") + 1] if "--stack" in args else None
crypts = args[:1] in (["up"], ["preview"], ["destroy"]) or args[:2] == ["stack", "change-secrets-provider"]
salted = stack and os.path.isfile(f"Pulumi.{{stack}}.yaml") and any(line.startswith("encryptionsalt:") for line in open(f"Pulumi.{{stack}}.yaml"))
if crypts and salted and not seen["passphrase_set"] and not seen["passphrase_file"]:
    sys.stderr.write("error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables\\n")
    sys.exit(255)
if args[:2] == ["stack", "output"]:
    outputs = json.loads({json.dumps(outputs)!r})
    names = [arg for index, arg in enumerate(args[2:], 2) if not arg.startswith("-") and args[index - 1] != "--stack"]
    print(json.dumps(outputs[names[0]] if names else outputs))
""",
    )


def python_3_9(path: Path, log: Path) -> Path:
    """A Python 3.9, as the version check sees it: prints "3.9" and exits 1 (sys.version_info < (3, 11))."""
    return executable(path, f'#!/usr/bin/env bash\necho "$*" >> {log}\necho 3.9\nexit 1\n')


def doctl_tarball(path: Path, version: str) -> Path:
    """A release tarball laid out as goreleaser makes doctl's: the binary alone at the top
    (digitalocean/doctl .goreleaser.yml, wrap_in_directory: false)."""
    binary = f"#!/usr/bin/env bash\necho 'doctl version {version}-release'\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("doctl")
        info.size, info.mode = len(binary), 0o755
        tar.addfile(info, io.BytesIO(binary))
    path.write_bytes(buffer.getvalue())
    return path


def pulumi_installer(path: Path, installs_version: str) -> Path:
    """get.pulumi.com's install.sh: `--version V --install-root ROOT --no-edit-path` puts the
    CLI into ROOT/bin. This one installs a CLI that reports `installs_version`."""
    return executable(
        path,
        f"""#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --install-root) root=$2; shift ;; esac
  shift
done
mkdir -p "$root/bin"
printf '#!/bin/sh\\necho v{installs_version}\\n' > "$root/bin/pulumi"
chmod +x "$root/bin/pulumi"
""",
    )


def json_lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
