# The two commands of the README: `make demo` and `make test`. Both install what is
# missing first (scripts/install-deps), so a fresh Debian machine needs nothing else.

CARGO ?= cargo
PACER := target/debug/pacer
DEMO_DIR := .demo

.PHONY: deps build deb demo demo-down test lint bench bench-alerts bench-console bench-decision bench-history bench-metrics bench-load bench-move bench-scale bench-e2e bench-e2e-secure crds conformance chaos chaos-regressions chaos-witness chaos-etcd-outage

RUNS ?= 20
SEED ?= 1
# Extra chaos options: --namespaces, --etcd-members 3, --nodes 2, --lease-ttl S, --burst N, --secure,
# --expect-failsafe (an etcd outage that stops or starts anything is a violation).
CHAOS ?=
ROUNDS ?= 5
TTLS ?= 2,5,10

deps:
	scripts/install-deps

build: deps
	$(CARGO) build --bin pacer

# The Debian package target/debian/pacer_<version>_<arch>.deb (native: changelog.gz,
# md5sums, copyright, maintainer scripts that enable and start nothing): the release binary,
# deploy/systemd/'s units, /etc/pacer/config.yaml.example, /etc/default/pacer and shell
# completions (scripts/deb: dpkg-deb on a staged tree). tests/deb.rs builds one from
# the debug binary.
deb: deps
	$(CARGO) build --release --bin pacer
	scripts/deb

# Starts a private etcd, applies manifests/examples/ and shows every kind.
demo: build
	scripts/demo start $(DEMO_DIR)

demo-down:
	scripts/demo stop $(DEMO_DIR)

# Lint (fmt, clippy), unit, integration (each starts its own etcd) and bad-input
# tests, a check that crds/ matches the types, the Pacemaker conformance floor, a
# small fault campaign and its regressions, an etcd outage ridden out (no stop or
# start it caused) and the two-node-plus-witness topology.
test: deps lint
	$(CARGO) test --workspace
	$(MAKE) conformance
	$(MAKE) chaos RUNS=10 SEED=7
	$(MAKE) chaos-regressions
	$(MAKE) chaos-etcd-outage CHAOS=--expect-failsafe
	$(MAKE) chaos-witness

# Formatting (rustfmt.toml) and clippy with every warning an error.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Pacemaker's scheduler scenarios (../shared/conformance) through `pacer simulate`;
# fails below the figures in tests/conformance/floor.
conformance: build
	scripts/conformance

# Apply benchmark: 1,000 and 10,000 objects against a private etcd. Scheduler
# benchmark: generated CIBs up to 1,000 nodes x 10,000 resources through Pacer and
# crm_simulate (table in target/bench-schedule.txt). Node agent benchmark: plan to
# started, failure to etcd, idle writes (target/bench-agent.txt). Cluster benchmark:
# idle writes of pacer up with 100 resources, failover at lease TTL 2 s and 5 s,
# leader takeover (target/bench-cluster.txt). Decision benchmark: spec change to
# assignment written, the scheduler's turn, etcd requests per decision
# (target/bench-decision.txt; PACER_BENCH_RESOURCES, PACER_BENCH_ROUNDS). Load
# benchmark: 300, 1,000, 3,000 Dummy resources in one apply on pacer up — time until
# all Started, self-fencings, peak agent processes and lease renewal latency per node
# (target/bench-load.txt; PACER_BENCH_LOAD, PACER_BENCH_LOAD_LIMIT).
bench: deps
	$(CARGO) bench --bench apply
	$(CARGO) bench --bench schedule
	$(CARGO) bench --bench agent
	$(CARGO) bench --bench cluster
	$(CARGO) bench --bench decision
	$(CARGO) bench --bench load
	$(CARGO) bench --bench move
	$(CARGO) bench --bench history
	$(CARGO) bench --bench metrics
	$(CARGO) bench --bench alerts
	$(CARGO) bench --bench console
	$(CARGO) bench --bench scale

# The fault campaign (e2e/): a 3-node cluster with two schedulers running the brief's
# workloads, RUNS faults drawn from SEED (agent killed, frozen, frozen mid-start, cut
# off from etcd; leader killed; monitor failed; fencing failing; everything
# restarted; a Burst of 150 Dummy resources in one apply — CHAOS="--burst N" — with
# the next drawn fault struck while it starts; with CHAOS="--etcd-members 3
# --lease-ttl 5" an etcd member killed; CHAOS=--namespaces puts each node in a network
# namespace), each audited by the witness-log observer and for self-fencings of nodes
# that could reach etcd; per fault kind: runs, violations, self-fenced, unrecovered,
# recovery p50/p99/max; any of them fails. `make test` runs a small one.
chaos: build
	$(CARGO) run --quiet -p pacer-e2e --bin chaos -- --runs $(RUNS) --seed $(SEED) $(CHAOS)

# Fault sequences that once found a violation (e2e/regressions/), replayed.
chaos-regressions: build
	$(CARGO) run --quiet -p pacer-e2e --bin chaos -- --sequence-file e2e/regressions/loopback
	$(CARGO) run --quiet -p pacer-e2e --bin chaos -- --etcd-members 3 --lease-ttl 5 --sequence-file e2e/regressions/etcd3

# Two nodes and a witness (three etcd members, the third on no node): a node lost with
# its etcd member, the witness lost, etcd's leader lost; failover times per fault.
chaos-witness: build
	$(CARGO) run --quiet -p pacer-e2e --bin chaos -- --nodes 2 --etcd-members 3 --lease-ttl 5 --sequence-file e2e/regressions/two-nodes-witness $(CHAOS)

# etcd down for everyone (killed, frozen; with a node cut off meanwhile): prints the
# stops and starts the outage alone caused. CHAOS=--expect-failsafe makes them
# violations (issue 20's failsafe brings them to zero).
chaos-etcd-outage: build
	$(CARGO) run --quiet -p pacer-e2e --bin chaos -- --sequence-file e2e/regressions/etcd-outage $(CHAOS)

bench-decision: deps
	$(CARGO) bench --bench decision

# Load benchmark (issue 13): for N in PACER_BENCH_LOAD (default 300,1000,3000) a fresh
# `pacer up --nodes 3 --lease-ttl 5` and N Dummy resources (monitor 60 s) in one apply;
# time from the apply until all N Started (given up after PACER_BENCH_LOAD_LIMIT s,
# default 300, with how many were), self-fencings, peak concurrent agent processes and
# lease renewal p99/max per node. Figures only: target/bench-load.txt.
bench-load: deps
	$(CARGO) bench --bench load

# Scale benchmark (issue 18): for each HxR in PACER_BENCH_SCALE (default
# 100x1000,300x1000) a fresh `pacer up --nodes 0 --hollow-nodes H`, R resources
# (stickiness 1) in one apply: time to all Started, once settled one resource moved by
# a Location (p50/p99 over PACER_BENCH_SCALE_MOVES, default 20), a node lost to its
# resources Started elsewhere,
# etcd writes/s converging and idle, watch events/s, database size, scheduler CPU and
# RSS, RSS per hollow node, `pacer status` time; then on the first size a churn of
# PACER_BENCH_SCALE_CHURN s (default 360) with the database size every 30 s
# (PACER_BENCH_SCALE_LIMIT: seconds the apply may take to converge, default 1800).
# Figures only: target/bench-scale.txt, target/bench-scale-churn.txt.
bench-scale: deps
	$(CARGO) bench --bench scale

# Decision-history benchmark (issue 14): bytes the leader stores per decision to make
# it replayable, and the time to encode them, at 100 x 1,000 and 1,000 x 10,000 nodes
# x resources (PACER_BENCH_HISTORY_SIZES, PACER_BENCH_HISTORY_PROBES). Figures only:
# target/bench-history.txt.
bench-history: deps
	$(CARGO) bench --bench history

# Scrape-cost benchmark (issue 15): one /metrics scrape at 1,000 nodes x 10,000
# resources — the leader's ha_cluster families rendered from a turn's snapshot and plan
# (both formats), an agent's node view from its 10,000 statuses. No etcd, no HTTP.
# Figures only: target/bench-metrics.txt (PACER_BENCH_METRICS_SIZE, default 1000x10000).
bench-metrics: deps
	$(CARGO) bench --bench metrics

# Alert benchmark (issue 15): event -> alert latency p50/p99 on pacer up --nodes 3 with
# an exec receiver, one resource started at a time (PACER_BENCH_ROUNDS, 20) and a burst
# of PACER_BENCH_RESOURCES (300) applied at once. Figures only: target/bench-alerts.txt.
bench-alerts: deps
	$(CARGO) bench --bench alerts

# Console benchmark (issue 17): the status page in headless Chromium with
# PACER_BENCH_CONSOLE (10,10000) resources: time to first render, JS heap and DOM
# nodes, event-to-screen latency of a node's standby, the console's RSS. Figures only:
# target/bench-console.txt.
bench-console: deps
	$(CARGO) bench --bench console

# Move benchmark (issue 14): pacer up --nodes 3 with PACER_BENCH_RESOURCES (10) Dummy
# resources; PACER_BENCH_ROUNDS (10) times `pacer move r0 NODE --wait`, the time until
# it returns, and until the cluster removed the move's constraint. Figures only:
# target/bench-move.txt.
bench-move: deps
	$(CARGO) bench --bench move

# End-to-end benchmarks in the fault campaign's harness: failover per lease TTL (a
# node's agent killed -> its resource Started elsewhere), leader takeover (new term; a
# change applied meanwhile Started), restart after a failed 1 s / 5 s monitor
# (detection, recovery). Figures only: target/bench-e2e.txt.
bench-e2e: build
	$(CARGO) run --quiet -p pacer-e2e --bin bench -- --rounds $(ROUNDS) --ttls $(TTLS)

# Failover and leader takeover in a plaintext cluster and in one with etcd over mutual
# TLS and per-identity rights, side by side in one run (target/bench-e2e.txt).
bench-e2e-secure: build
	$(CARGO) run --quiet -p pacer-e2e --bin bench -- --rounds $(ROUNDS) --ttls 2 --compare-secure

# Regenerate crds/ from the Rust types (a test fails when they are stale).
crds:
	$(CARGO) run --quiet -- crds --out crds
