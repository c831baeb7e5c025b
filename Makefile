# The two commands of the README: `make demo` and `make test`. Both install what is
# missing first (scripts/install-deps), so a fresh Debian machine needs nothing else.

CARGO ?= cargo
PACER := target/debug/pacer
DEMO_DIR := .demo

.PHONY: deps build demo demo-down test bench crds conformance chaos

RUNS ?= 20
SEED ?= 1

deps:
	scripts/install-deps

build: deps
	$(CARGO) build --bin pacer

# Starts a private etcd, applies manifests/examples/ and shows every kind.
demo: build
	scripts/demo start $(DEMO_DIR)

demo-down:
	scripts/demo stop $(DEMO_DIR)

# Unit, integration (each starts its own etcd) and bad-input tests, a check that
# crds/ matches the types, then the Pacemaker conformance floor.
test: deps
	$(CARGO) test --workspace
	$(MAKE) conformance
	$(MAKE) chaos RUNS=10 SEED=7

# Pacemaker's scheduler scenarios (../shared/conformance) through `pacer simulate`;
# fails below the figures in tests/conformance/floor.
conformance: build
	scripts/conformance

# Apply benchmark: 1,000 and 10,000 objects against a private etcd. Scheduler
# benchmark: generated CIBs up to 1,000 nodes x 10,000 resources through Pacer and
# crm_simulate (table in target/bench-schedule.txt). Node agent benchmark: plan to
# started, failure to etcd, idle writes (target/bench-agent.txt). Cluster benchmark:
# idle writes of pacer up with 100 resources, failover at lease TTL 2 s and 5 s,
# leader takeover (target/bench-cluster.txt).
bench: deps
	$(CARGO) bench --bench apply
	$(CARGO) bench --bench schedule
	$(CARGO) bench --bench agent
	$(CARGO) bench --bench cluster

# The fault campaign (e2e/): a 3-node cluster with two schedulers, RUNS faults drawn
# from SEED (agent killed, frozen, cut off from etcd; leader killed; monitor failed),
# each audited by the witness-log observer; per fault kind: runs, violations,
# recovery p50/p99/max. `make test` runs a small one.
chaos: build
	$(CARGO) run --quiet -p pacer-e2e --bin chaos -- --runs $(RUNS) --seed $(SEED)

# Regenerate crds/ from the Rust types (a test fails when they are stale).
crds:
	$(CARGO) run --quiet -- crds --out crds
