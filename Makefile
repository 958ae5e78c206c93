# The two commands of the README:
#   make deploy   builds the mesh (needs DIGITALOCEAN_TOKEN); installs everything else itself
#   make test     runs the test suite under Pulumi mocks (no cloud, no Pulumi CLI)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK ?= west-east
PYTHON ?= python3
VENV := .venv
# The CLI that matches the pinned SDK, installed into the repo (no system-wide install needed).
PULUMI_VERSION := 3.272.0
PULUMI_ROOT := $(CURDIR)/.pulumi-cli
PULUMI := $(PULUMI_ROOT)/bin/pulumi

# State: a local file backend in the repo (git-ignored) unless PULUMI_BACKEND_URL says otherwise.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
# Secrets in the state are encrypted with a passphrase; without one given, generate it once.
ifndef PULUMI_CONFIG_PASSPHRASE
export PULUMI_CONFIG_PASSPHRASE_FILE ?= $(CURDIR)/.pulumi-passphrase
endif
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: help venv test cli tools token stack existing-stack deploy preview destroy kubeconfig verify dashboard

help:
	@echo "make deploy [STACK=$(STACK)]   build the mesh (needs DIGITALOCEAN_TOKEN)"
	@echo "make test                      run the tests (Pulumi mocks; no cloud needed)"
	@echo "make preview | destroy         show the plan | tear the stack down"
	@echo "make kubeconfig CLUSTER=west   write a kubeconfig for kubectl"
	@echo "make verify [JSON=1]           check the live mesh (links, mirrors, trust, mTLS)"
	@echo "make dashboard CLUSTER=west    open that cluster's viz dashboard on localhost:8084"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

test: venv
	$(VENV)/bin/python -m pytest

cli: $(PULUMI)
$(PULUMI):
	curl -fsSL https://get.pulumi.com | sh -s -- --version $(PULUMI_VERSION) --install-root $(PULUMI_ROOT) --no-edit-path

$(CURDIR)/.pulumi-passphrase:
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@
	@echo "Generated $@: it decrypts this stack's secrets; back it up with the state."

tools: venv cli $(if $(PULUMI_CONFIG_PASSPHRASE_FILE),$(PULUMI_CONFIG_PASSPHRASE_FILE))
	$(if $(filter file://%,$(PULUMI_BACKEND_URL)),mkdir -p $(patsubst file://%,%,$(PULUMI_BACKEND_URL)))

# Deploying and previewing may start a new stack; the other targets need an existing one, so
# a mistyped STACK fails instead of creating an empty stack.
stack: tools
	$(PULUMI) stack select --create $(STACK) --non-interactive

existing-stack: tools
	$(PULUMI) stack select $(STACK) --non-interactive

# Checked first, before anything is installed.
token:
	@[ -n "$${DIGITALOCEAN_TOKEN:-}" ] || { echo "Set DIGITALOCEAN_TOKEN (a DigitalOcean API token with read/write scope)." >&2; exit 1; }

deploy: token stack
	$(PULUMI) up --stack $(STACK) --yes --diff

preview: stack
	$(PULUMI) preview --stack $(STACK) --diff

destroy: existing-stack
	$(PULUMI) destroy --stack $(STACK)

kubeconfig: existing-stack
	@[ -n "$(CLUSTER)" ] || { echo "Usage: make kubeconfig CLUSTER=<name>" >&2; exit 1; }
	@mkdir -p .kube && umask 077 && $(PULUMI) stack output kubeconfigs --stack $(STACK) --show-secrets --json \
		| $(VENV)/bin/python -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$(CLUSTER)" > .kube/$(STACK)-$(CLUSTER).yaml
	@echo "export KUBECONFIG=$(CURDIR)/.kube/$(STACK)-$(CLUSTER).yaml"

# The outputs are piped, so the kubeconfigs never land on disk.
verify: existing-stack
	$(PULUMI) stack output --stack $(STACK) --json --show-secrets | $(VENV)/bin/python -m verify --outputs - $(if $(JSON),--json)

dashboard: existing-stack
	@[ -n "$(CLUSTER)" ] || { echo "Usage: make dashboard CLUSTER=<name>" >&2; exit 1; }
	$(PULUMI) stack output --stack $(STACK) --json --show-secrets | $(VENV)/bin/python -m verify.dashboard "$(CLUSTER)" --outputs -
