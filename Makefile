# The two commands of the README:
#   make deploy   builds the mesh (needs DIGITALOCEAN_TOKEN for DOKS clusters); installs everything else itself
#   make test     runs the test suite under Pulumi mocks (no cloud, no Pulumi CLI)
#
# Works with GNU make 3.81 (macOS) too, which ignores .SHELLFLAGS: so no recipe relies on it.
# Every recipe line is one command whose exit status is its own (downloads go to a file
# first, then run), and a line with a pipe sets pipefail itself.
SHELL := /bin/bash
# make splits file names at spaces: in a path with one, the targets would land outside the
# repository (the generated passphrase among them), so refuse before anything runs.
ifneq ($(words $(CURDIR)),1)
$(error The repository's path has a space in it ($(CURDIR)), which make cannot handle: clone or move it to a path without one)
endif
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# A recipe that fails half way leaves nothing behind that would look installed next time.
.DELETE_ON_ERROR:

STACK ?= west-east
# Whether the stack has a DOKS cluster (one it creates has a region, one it adopts an
# existingCluster): only then do the program and its kubeconfigs need the DigitalOcean token and
# doctl. A stack of clusters given by kubeconfigs needs neither; without a stack file, assume so.
STACK_FILE := Pulumi.$(STACK).yaml
hash := $(shell printf '\043')
NEEDS_DIGITALOCEAN := $(if $(wildcard $(STACK_FILE)),$(shell grep -v '^[[:space:]]*$(hash)' $(STACK_FILE) | grep -Eq '(^|[{,[:space:]])(region|existingCluster):' && echo yes),yes)
PYTHON ?= python3
PYTHON_MIN := 3.11
comma := ,
VENV := .venv
# Runtime packages for deploying; the test packages on top of them for `make test`.
RUNTIME_INSTALLED := $(VENV)/.runtime-installed
TEST_INSTALLED := $(VENV)/.test-installed

# The Pulumi CLI that matches the pinned SDK, installed into the repository per version.
PULUMI_VERSION := 3.272.0
PULUMI_ROOT := $(CURDIR)/.pulumi-cli/$(PULUMI_VERSION)
PULUMI := $(PULUMI_ROOT)/bin/pulumi

# doctl, which the clusters' kubeconfigs run for a short-lived token (exec credential plugin),
# from its GitHub release, checked against the tarball's sha256 from that release.
DOCTL_VERSION := 1.166.0
DOCTL_DIR := $(CURDIR)/.tools/doctl/$(DOCTL_VERSION)
DOCTL := $(DOCTL_DIR)/doctl
DOCTL_DOWNLOAD := $(DOCTL_DIR)/download
DOCTL_PLATFORM := $(shell uname -s | tr '[:upper:]' '[:lower:]')-$(patsubst x86_64,amd64,$(patsubst aarch64,arm64,$(shell uname -m)))
DOCTL_ASSET := doctl-$(DOCTL_VERSION)-$(DOCTL_PLATFORM).tar.gz
DOCTL_RELEASE := https://github.com/digitalocean/doctl/releases/download/v$(DOCTL_VERSION)
# Pinned sha256 per platform, as DOCTL_SHA256_<os>-<arch> := <sum>: the lines of the release's
# doctl-<version>-checksums.sha256. None is pinned yet (none could be checked against the
# release from where this was written), so every platform is checked against that file,
# downloaded from the release: it catches a corrupt or truncated download, not a forged release.
DOCTL_SHA256 := $(DOCTL_SHA256_$(DOCTL_PLATFORM))
SHA256SUM := $(if $(shell command -v sha256sum),sha256sum,shasum -a 256)

# The pinned tools come first for every target: another Pulumi on PATH (Homebrew, ~/.pulumi/bin)
# would otherwise supply the language host, and another doctl the kubeconfigs' tokens.
export PATH := $(PULUMI_ROOT)/bin:$(DOCTL_DIR):$(PATH)
# doctl and the program read the token from DIGITALOCEAN_ACCESS_TOKEN, the DigitalOcean provider
# from DIGITALOCEAN_TOKEN first: given DIGITALOCEAN_TOKEN, both carry it.
ifdef DIGITALOCEAN_TOKEN
export DIGITALOCEAN_ACCESS_TOKEN := $(DIGITALOCEAN_TOKEN)
endif

# State: a local file backend in the repo (git-ignored) unless PULUMI_BACKEND_URL says otherwise.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
SELF_MANAGED := $(if $(filter-out https://%,$(PULUMI_BACKEND_URL)),yes)
# The CLI encrypts a stack's secrets with a passphrase whenever its stack file has an
# encryptionsalt, whatever the backend, Pulumi Cloud included (pulumi/pulumi
# pkg/cmd/pulumi/stack/secrets.go, GetSecretsManager); a self-managed backend always does.
SALTED := $(shell grep -qs '^encryptionsalt:' $(STACK_FILE) && echo yes)
# One passphrase for every stack: without one given, the file below (generated once).
PASSPHRASE_FILE := $(CURDIR)/.pulumi-passphrase
ifndef PULUMI_CONFIG_PASSPHRASE
ifneq ($(SELF_MANAGED)$(SALTED),)
export PULUMI_CONFIG_PASSPHRASE_FILE ?= $(PASSPHRASE_FILE)
endif
endif
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: help python-version runtime test bench cli doctl doctl-dir cli-dir tools token cluster-arg stack existing-stack pulumi-cloud cloud-secrets deploy preview destroy kubeconfig verify dashboard

help:
	@echo "make deploy [STACK=$(STACK)]   build the mesh (needs DIGITALOCEAN_TOKEN for DOKS clusters)"
	@echo "make test                      run the tests (Pulumi mocks; no cloud needed)"
	@echo "make preview | destroy         show the plan | tear the stack down"
	@echo "make cloud-secrets [STACK=...] hand a salted stack's secrets to Pulumi Cloud (no passphrase after)"
	@echo "make kubeconfig CLUSTER=west   write a kubeconfig for kubectl (it runs doctl for a token)"
	@echo "make verify [JSON=1]           check the live mesh (links, mirrors, trust, mTLS)"
	@echo "make dashboard CLUSTER=west    open that cluster's viz dashboard on localhost:8084"
	@echo "make bench                     time the program's evaluation (seed, 2 and 16 clusters)"
	@echo "Python $(PYTHON_MIN)+ is needed; choose it with PYTHON=python3.12 make ..."

# Succeeds when the interpreter $(1) is Python $(PYTHON_MIN) or newer, and prints its version.
python_ok = $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2]); sys.exit(sys.version_info < ($(subst .,$(comma) ,$(PYTHON_MIN))))'

# Checked first, before anything is installed.
python-version:
	@v=$$($(call python_ok,$(PYTHON)) 2>/dev/null) || { echo "Python $(PYTHON_MIN) or newer is needed, and $(PYTHON) is $${v:-not found}. Choose one: PYTHON=python3.12 make $(or $(MAKECMDGOALS),deploy)" >&2; exit 1; }

# A .venv left by an older Python is not reused: pip would fail there with a less clear error.
runtime: $(RUNTIME_INSTALLED)
$(RUNTIME_INSTALLED): requirements.txt | python-version
	$(PYTHON) -m venv $(VENV)
	@$(call python_ok,$(VENV)/bin/python) >/dev/null 2>&1 || { echo "$(VENV) was made by a Python older than $(PYTHON_MIN): remove it (rm -rf $(VENV)) and run this again." >&2; exit 1; }
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

$(TEST_INSTALLED): requirements-test.txt $(RUNTIME_INSTALLED)
	$(VENV)/bin/python -m pip install --quiet -r requirements-test.txt
	touch $@

test: $(TEST_INSTALLED)
	$(VENV)/bin/python -m pytest -n auto

# Wall-clock figures stay out of the tests: a loaded machine must not turn them red.
bench: $(TEST_INSTALLED)
	$(VENV)/bin/python -m bench.evaluate

cli: $(PULUMI)
$(PULUMI):
	mkdir -p $(PULUMI_ROOT)
	curl -fsSL -o $(PULUMI_ROOT)/install.sh https://get.pulumi.com
	sh $(PULUMI_ROOT)/install.sh --version $(PULUMI_VERSION) --install-root $(PULUMI_ROOT) --no-edit-path
	rm -f $(PULUMI_ROOT)/install.sh
	test "$$($@ version)" = "v$(PULUMI_VERSION)"

doctl: $(DOCTL)
$(DOCTL):
	mkdir -p $(DOCTL_DOWNLOAD)
	curl -fsSL -o $(DOCTL_DOWNLOAD)/$(DOCTL_ASSET) $(DOCTL_RELEASE)/$(DOCTL_ASSET)
	set -o pipefail && $(if $(DOCTL_SHA256),echo "$(DOCTL_SHA256)  $(DOCTL_ASSET)",curl -fsSL $(DOCTL_RELEASE)/doctl-$(DOCTL_VERSION)-checksums.sha256 | grep ' $(DOCTL_ASSET)$$') > $(DOCTL_DOWNLOAD)/$(DOCTL_ASSET).sha256
	cd $(DOCTL_DOWNLOAD) && $(SHA256SUM) -c $(DOCTL_ASSET).sha256
	tar -xzf $(DOCTL_DOWNLOAD)/$(DOCTL_ASSET) -C $(DOCTL_DIR) doctl
	rm -rf $(DOCTL_DOWNLOAD)
	$@ version

# For CI, which puts the pinned doctl on its PATH: `make doctl && make -s doctl-dir >> "$GITHUB_PATH"`.
doctl-dir:
	@echo "$(DOCTL_DIR)"

# For CI's stack check, which runs the pinned CLI outside make: `make -s cli-dir >> "$GITHUB_PATH"`.
cli-dir:
	@echo "$(PULUMI_ROOT)/bin"

# A stack file with an encryptionsalt was set up with someone else's passphrase: a new one
# could not decrypt it ("incorrect passphrase"), so get that one instead of making another.
# With Pulumi Cloud, a salt left from a self-managed start keeps the passphrase in use, until
# `make cloud-secrets` hands the stack's secrets to Pulumi Cloud and removes the salt.
$(PASSPHRASE_FILE):
	@if [ -n "$(SALTED)" ]; then { \
		echo "$(STACK_FILE) has an encryptionsalt: the stack's secrets are encrypted with the passphrase it was created with, so a new one cannot work."; \
		echo "Get that passphrase from whoever deployed the stack (it is also the CI repository secret PULUMI_CONFIG_PASSPHRASE), then either"; \
		echo "  export PULUMI_CONFIG_PASSPHRASE=...   or   save it in $@ (chmod 600)"; \
		if [ -z "$(SELF_MANAGED)" ]; then \
			echo "Pulumi Cloud too needs the passphrase while $(STACK_FILE) has a salt. To use Pulumi Cloud's own encryption instead:"; \
			echo "  with the passphrase set, run 'make cloud-secrets STACK=$(STACK)', then commit $(STACK_FILE) (without its salt)"; fi; \
		} >&2; exit 1; fi
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@
	@echo "Generated $@: it decrypts this stack's secrets, and Pulumi now writes its salt into $(STACK_FILE)."
	@echo "Commit that file, back the passphrase up with the state, and share it with everyone who deploys:"
	@echo "it is the one passphrase of every stack, and CI's repository secret PULUMI_CONFIG_PASSPHRASE."
	@echo "Nobody can deploy this stack with another passphrase."

# The targets that decrypt (deploy, preview, destroy) need the passphrase; the ones that only
# read the outputs (kubeconfig, verify, dashboard: none is secret) do not, so they neither
# generate one nor refuse a stack whose passphrase this machine lacks.
PASSPHRASE := $(if $(PULUMI_CONFIG_PASSPHRASE_FILE),$(PULUMI_CONFIG_PASSPHRASE_FILE))

tools: runtime cli $(if $(NEEDS_DIGITALOCEAN),doctl)
	$(if $(filter file://%,$(PULUMI_BACKEND_URL)),mkdir -p $(patsubst file://%,%,$(PULUMI_BACKEND_URL)))

# Deploying may start a new stack, and so may previewing in the local backend; the other
# targets need an existing one, so a mistyped STACK fails instead of creating an empty stack,
# and a preview never creates a stack in a shared backend.
stack: tools $(PASSPHRASE)
	$(PULUMI) stack select --create $(STACK) --non-interactive

existing-stack: tools
	$(PULUMI) stack select $(STACK) --non-interactive

# Checked before anything is installed (DIGITALOCEAN_ACCESS_TOKEN alone will do as well), for a
# stack with a DOKS cluster. A preview needs it too (the program refuses to run without it), and so
# does a destroy: the DigitalOcean provider deletes with it, and nothing keeps it in the state.
token:
	@$(if $(NEEDS_DIGITALOCEAN),[ -n "$${DIGITALOCEAN_ACCESS_TOKEN:-}" ] || { echo "Set DIGITALOCEAN_TOKEN (a DigitalOcean API token with read/write scope)." >&2; exit 1; },true)

cluster-arg:
	$(if $(CLUSTER),@true,@echo "Usage: make $(firstword $(MAKECMDGOALS)) CLUSTER=<name>" >&2; exit 1)

# Hands a stack's secrets from its passphrase to Pulumi Cloud: the CLI re-encrypts them and
# removes the salt from the stack file (pkg/secrets/service/manager.go, NewServiceSecretsManager),
# which must then be committed: every clone and CI read that file.
cloud-secrets: python-version pulumi-cloud $(PASSPHRASE) existing-stack
	$(PULUMI) stack change-secrets-provider default --stack $(STACK)
	@echo "Commit $(STACK_FILE): its encryptionsalt is gone, and from now on nobody (CI included) needs a passphrase for $(STACK)."

pulumi-cloud:
	$(if $(SELF_MANAGED),@echo "make cloud-secrets is for a stack in Pulumi Cloud: set PULUMI_BACKEND_URL=https://api.pulumi.com (and PULUMI_DEFAULT_ORGANIZATION). A stack in another backend moves there with pulumi stack export / import first." >&2; exit 1,@true)

# After the plan and the update, what the stack now costs a month, from its outputs (a preview
# shows the same table among its diagnostics: a preview stores no outputs).
# --continue-on-error: without it the first failed step cancels every pending step of the whole
# deployment (pulumi pkg/resource/deploy/step_executor.go), so one region's failure would also stop
# the other regions' work, the issuer renewals of the weekly deploy included. With it, only what
# depends on the failed step is skipped, and `pulumi up` still exits non-zero.
deploy: python-version token stack
	$(PULUMI) up --stack $(STACK) --yes --diff --continue-on-error
	@set -o pipefail && $(PULUMI) stack output --stack $(STACK) --json | $(VENV)/bin/python -m cost_report table

preview: python-version token $(PASSPHRASE) $(if $(filter file://%,$(PULUMI_BACKEND_URL)),stack,existing-stack)
	$(PULUMI) preview --stack $(STACK) --diff

# --refresh: Helm purges a release's record even when its uninstall wait fails (helm
# pkg/action/uninstall.go), and the provider's Delete of that release then fails with "Release not
# loaded" on every later destroy. A refresh first drops what is already gone from the state, so an
# interrupted destroy can simply be run again.
destroy: python-version token $(PASSPHRASE) existing-stack
	$(PULUMI) destroy --stack $(STACK) --refresh

# The kubeconfig holds no secret: kubectl runs doctl, which gets a short-lived token for the
# cluster with DIGITALOCEAN_ACCESS_TOKEN (or, without it, the token `doctl auth init` saved for doctl's
# default context): the kubeconfig names `--context=default`, so a context chosen with `doctl auth
# switch` is never used.
# A cluster given by a kubeconfig keeps only a reference to it in the outputs: use that file and context.
KUBECONFIG_FILE = .kube/$(STACK)-$(CLUSTER).yaml
kubeconfig: cluster-arg python-version existing-stack
	@mkdir -p .kube
	@set -o pipefail && $(PULUMI) stack output kubeconfigs --stack $(STACK) --json \
		| $(VENV)/bin/python -c 'import json, sys; from components.kubeconfigs import parse_reference; configs = json.load(sys.stdin); name = sys.argv[1]; name in configs or sys.exit("no cluster %r; the stack has %s" % (name, ", ".join(sorted(configs)))); given = parse_reference(configs[name]); given and sys.exit("cluster %r is context %r of your kubeconfig %s, which the stack does not copy (it holds your credentials): kubectl --kubeconfig %s --context %s" % (name, given[1], given[0], given[0], given[1])); print(configs[name])' "$(CLUSTER)" \
		> $(KUBECONFIG_FILE).new || { rm -f $(KUBECONFIG_FILE).new; exit 1; }
	@mv $(KUBECONFIG_FILE).new $(KUBECONFIG_FILE)
	@echo "export KUBECONFIG=$(CURDIR)/$(KUBECONFIG_FILE)"
	@echo 'export PATH="$(DOCTL_DIR):$$PATH"   # kubectl runs doctl: this is the pinned one'
	@echo "# and DIGITALOCEAN_ACCESS_TOKEN (or doctl auth init, default context) for doctl's short-lived cluster token"

# The outputs are piped, never written to disk. None is secret (the kubeconfigs run doctl), so
# verify and the dashboard read them as `make kubeconfig` does, without decrypting anything.
verify: python-version existing-stack
	set -o pipefail && $(PULUMI) stack output --stack $(STACK) --json | $(VENV)/bin/python -m verify --outputs - $(if $(JSON),--json)

dashboard: cluster-arg python-version existing-stack
	set -o pipefail && $(PULUMI) stack output --stack $(STACK) --json | $(VENV)/bin/python -m verify.dashboard "$(CLUSTER)" --outputs -
