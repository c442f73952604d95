# Everyday commands. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help tools cluster-up cluster-down cluster-status lint check-deploy unit proptest-long integration test run build release demo demo-stop bench soak clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

tools: ## Build the pinned Kubernetes components and tools (cached outside the repo)
	@hack/tools.sh

cluster-up: ## Start the local control plane (etcd, apiserver, controller-manager, scheduler, kwok)
	@hack/cluster.sh up

cluster-down: ## Stop the local control plane and remove its state (logs stay in .cluster/logs)
	@hack/cluster.sh down

cluster-status: ## Say whether the local control plane is up
	@hack/cluster.sh status

build: ## Build the controller (debug)
	$(CARGO) build

release: ## Build the controller (release)
	$(CARGO) build --release

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

check-deploy: ## deploy/ must match the chart's default render
	@hack/render-deploy.sh --check

unit: ## Unit tests (no cluster)
	$(CARGO) test --lib --bins

proptest-long: ## Property tests of the decision code with many cases (PROPTEST_CASES=30000 per property), timed
	@$(CARGO) test --lib --no-run -q
	@start=$$(date +%s); \
	PROPTEST_CASES=$${PROPTEST_CASES:-30000} $(CARGO) test --lib core::properties; rc=$$?; \
	echo "proptest-long: $${PROPTEST_CASES:-30000} cases per property in $$(( $$(date +%s) - start )) s"; exit $$rc

integration: ## Integration tests against the local control plane (started if needed)
	@hack/tools.sh > /dev/null
	$(CARGO) test --no-fail-fast --test '*' -- --test-threads=$${TEST_THREADS:-6}

test: lint check-deploy unit integration ## Everything CI runs: lint, manifests, unit and integration tests

run: ## Start the local control plane and run the controller against it (foreground)
	@hack/run.sh

demo: ## Build, start the local control plane, install an example, change a ConfigMap, watch the rollout
	@hack/demo.sh

demo-stop: ## Stop the demo's controller and the local control plane
	@hack/cluster.sh down

bench: ## Benchmark scenarios on a dedicated control plane (QUICK=1: small sizes; RELOADER_BIN=path: also Stakater Reloader; REPEAT=n; ONLY=churn, waves, sustained, fanout, scale or requests: that scenario alone (requests: 2–5 and the requests sent in them); OURS_BIN=path: that build of ours, e.g. the musl one; SCALE=n: n Secrets, n ConfigMaps, n/10 Deployments)
	@hack/bench.sh $(if $(QUICK),--quick) $(if $(RELOADER_BIN),--reloader-bin $(RELOADER_BIN)) $(if $(OURS_BIN),--ours-bin $(OURS_BIN)) $(if $(SCALE),--scale $(SCALE)) $(if $(REPEAT),--repeat $(REPEAT)) $(if $(ONLY),--only $(ONLY))

soak: ## Chaos soak on a dedicated control plane: random changes under kills, pauses, restarts, refusals (QUICK=1: short; SEED=n: replay; SCALE=n: n times the world and changes; MINUTES=m: fault rounds for about m minutes)
	@hack/soak.sh $(if $(QUICK),--quick) $(if $(SEED),--seed $(SEED)) $(if $(SCALE),--scale $(SCALE)) $(if $(MINUTES),--minutes $(MINUTES))

clean: ## Remove build outputs and the local cluster state
	-@hack/cluster.sh down
	$(CARGO) clean
