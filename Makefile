# The project's front door. On a bare machine, `make demo` and `make test` are the only two commands a
# user types: every install step they need (Debian packages, the Go-built Kubernetes binaries, cargo
# builds) happens inside them, idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# The cache outside the clone holds only what is keyed by version (the Go-built Kubernetes binaries,
# the Python venvs by their pinned requirements) and the local stack's state. Our own crates build
# into the clone's target/ (cargo's default), so a fresh clone always builds them from empty.
export TRADING_AGENT_CACHE ?= $(HOME)/.cache/trading-agent
export CARGO_TERM_COLOR ?= never
export KUBECONFIG := $(TRADING_AGENT_CACHE)/cluster/kubeconfig
# The build identity every binary reports (`/healthz`, `--version`): one value for the whole run, so
# no step rebuilds the workload crate for a different one.
export TRADING_AGENT_COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
HARNESS := tests/harness
CARGO := cargo

.PHONY: help deps pydeps tools cluster-up cluster-down cluster-status fmt lint test fuzz demo demo-down crd bench clean-cache

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

deps: ## install the Debian packages the project needs (idempotent)
	@scripts/deps.sh

pydeps: ## install the Python test tools (schemathesis, openapi-spec-validator, ta-lib; freqtrade in a venv of its own) into the cache (idempotent)
	@scripts/pydeps.sh >/dev/null
	@tests/bench/freqtrade/venv.sh >/dev/null

tools: deps ## build (once) and cache kube-apiserver, etcd, kwok, helm, ... by version
	@$(HARNESS)/build-tools.sh >/dev/null

cluster-up: tools ## start the local Kubernetes (etcd, apiserver, controller-manager, scheduler, kwok; NODE=real adds a real node)
	@$(HARNESS)/cluster.sh up >/dev/null
	@echo "kubeconfig: $(KUBECONFIG)   (try: kubectl --kubeconfig $(KUBECONFIG) get nodes)"

cluster-down: ## stop what cluster-up started and remove its state
	@$(HARNESS)/cluster.sh down

cluster-status: ## show what the harness runs
	@$(HARNESS)/cluster.sh status

fmt: ## format the Rust code
	$(CARGO) fmt --all

lint: deps ## rustfmt check, clippy with -D warnings, helm lint --strict
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	@if compgen -G "charts/*/Chart.yaml" >/dev/null; then \
	  for c in charts/*/; do "$$($(HARNESS)/build-tools.sh --print)/helm" lint --strict "$$c"; done; \
	fi

crd: ## regenerate crds/tradingagents.yaml and crds/backtests.yaml (and the chart's copies) from the Rust types
	$(CARGO) run --locked --quiet -p trading-agent-operator -- crd tradingagents > crds/tradingagents.yaml
	$(CARGO) run --locked --quiet -p trading-agent-operator -- crd backtests > crds/backtests.yaml
	cp crds/tradingagents.yaml crds/backtests.yaml charts/trading-agent-operator/crds/

# The suites run on kwok's simulated nodes (API objects, scale) and on one real kubelet node (level 3,
# tests/e2e/real_node.rs: images pulled, containers started, probes answered; needs root). NODE=kwok
# leaves level 3 out on purpose (real_node says so).
test: export NODE ?= real
test: tools pydeps lint ## everything: lint, unit, integration and end-to-end tests, level 3 on a real node (NODE=kwok: without it), then a short fuzz pass
	@$(HARNESS)/with-cluster.sh $(CARGO) test --locked --workspace --no-fail-fast
	@echo "fuzz: a short bounded pass, $${FUZZ_SMOKE_SECONDS:-5} s per target (make fuzz runs longer)"
	@FUZZ_SECONDS=$${FUZZ_SMOKE_SECONDS:-5} scripts/fuzz.sh

fuzz: ## run every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (default 60; nightly, pinned cargo-fuzz cached by version): executions and crashes
	@scripts/fuzz.sh

demo: export NODE ?= real
demo: tools ## the golden path on a local stack (NODE=real: on a real kubelet node; NODE=kwok: simulated nodes): build, push, operator, TradingAgent, new push, rollback, workloads
	@scripts/demo.sh

demo-down: ## stop what make demo started (operator, workloads, registry, PostgreSQL, cluster)
	@scripts/demo-down.sh

bench: tools ## run the benchmarks and rewrite tests/bench/RESULTS.md
	@tests/bench/run.sh

clean-cache: cluster-down ## remove cached binaries and build products (next run is cold)
	rm -rf "$(TRADING_AGENT_CACHE)"
