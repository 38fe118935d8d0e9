# Stepline's front door. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PY_SOURCES := $(wildcard operator tests bench examples)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: install
install: ## Install Debian packages, Python deps into .venv, and build the control plane (cached)
	hack/install-apt.sh
	hack/install-axe.sh >/dev/null
	hack/install-python.sh
	hack/build-binaries.sh >/dev/null

.PHONY: binaries
binaries: ## Build (or reuse) etcd, Kubernetes, kwok and helm from pinned Go modules
	hack/build-binaries.sh

.PHONY: cluster-up
cluster-up: ## Start the local control plane; last line: export KUBECONFIG=...
	@hack/cluster-up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local control plane started by cluster-up
	@hack/cluster-down.sh

.PHONY: kind-up
kind-up: ## A kind cluster from kind-config.yaml on a node image built here, offline (hack/kind/)
	hack/kind/cluster-up.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster made by kind-up (images and caches stay)
	hack/kind/cluster-down.sh

.PHONY: images
images: ## Build the operator and example images with no registry (hack/build-images.sh)
	hack/install-apt.sh containers
	hack/build-images.sh

.PHONY: lint
lint: ## ruff, ruff format --check, mypy --strict, deptry (imports match declared dependencies)
	hack/install-python.sh
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(VENV)/bin/mypy
	$(VENV)/bin/deptry operator

.PHONY: dashboards
dashboards: ## Regenerate dashboards/*.json and deploy/monitoring/prometheusrule.yaml from code
	hack/install-python.sh
	$(PY) -m stepline.observability.dashboards
	$(PY) -m stepline.observability.rules

.PHONY: manifests
manifests: ## Render manifests/ from the chart and refresh the chart's copies of generated files
	hack/render-manifests.sh

.PHONY: test
test: install lint ## Lint, unit and integration tests (own control plane), then real pods on kind (e2e)
	$(VENV)/bin/pytest
	hack/e2e.sh

.PHONY: e2e
e2e: install ## Real pods: images, a kind cluster, helm install, the examples, scaling (hack/e2e.sh)
	hack/e2e.sh

.PHONY: demo
demo: install ## The demo on the local cluster: the finance example (a trade, a saga)
	hack/demo.sh

.PHONY: demo-city
demo-city: install ## The smart-city example on the local cluster: three readings side by side
	hack/demo.sh city
