//! Scrape-cost benchmark (`make bench-metrics`, part of `make bench`): what one
//! `/metrics` scrape costs at 10,000 resources on 1,000 nodes. No etcd, no HTTP: the
//! work a scrape does besides the socket.
//!
//! - leader: the ha_cluster families rendered from a turn's snapshot and plan
//!   (`metrics::ClusterState`, as the leader publishes it), in both formats; the
//!   rendering runs on the blocking pool, never on the leader's loop, which only swaps
//!   a pointer per turn. Also the cost of making the state (`ClusterState::new`, on the
//!   leader's loop: it drops the plan's score tables).
//! - agent: one node's view (`metrics::node::node_view`, built on the agent's loop when
//!   a scrape asks) from the 10,000 statuses a node keeps (every resource is probed on
//!   every node; 10 run there), and its rendering (off the loop).
//!
//! Generated: 10,000 Dummy primitives (one in ten with a Location, one in a hundred
//! with failures on its node, one in five in a group of five), a clone on every node,
//! running spread over the nodes (`PACER_BENCH_METRICS_SIZE`, default `1000x10000`).
//! Prints a table (also `target/bench-metrics.txt`). Figures only.

use std::fmt::Write as _;
use std::time::Instant;

use pacer::api::records::{ExecStatus, OperationRecord, ResourceStatus};
use pacer::api::{Kind, Object};
use pacer::metrics::node::{NodeFacts, node_view};
use pacer::metrics::{ClusterCollector, ClusterState, Format, NodeCollector, render};
use pacer::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode, ResourceHistory};
use pacer::scheduler::{Snapshot, schedule};
use prometheus_client::registry::Registry;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn object(value: serde_json::Value) -> Object {
    Object::from_value(value.clone()).unwrap_or_else(|error| panic!("{value} does not decode: {error}"))
}

fn node_name(index: usize) -> String {
    format!("node{index:04}")
}

fn rsc_name(index: usize) -> String {
    format!("rsc{index:05}")
}

fn started(call_id: i64) -> Vec<OperationRecord> {
    let operation = |name: &str, interval_ms: u64, call_id: i64, rc: i32, expected_rc: i32| OperationRecord {
        operation: name.to_string(),
        interval_ms,
        call_id,
        rc,
        expected_rc,
        status: ExecStatus::Done,
        last_rc_change: Some(NOW - 3600),
        migrate_source: None,
        migrate_target: None,
        digest: None,
        restart_digest: None,
    };
    vec![operation("monitor", 0, call_id, 7, 7), operation("start", 0, call_id + 1, 0, 0), operation("monitor", 10_000, call_id + 2, 0, 0)]
}

fn generate(nodes: usize, resources: usize) -> Snapshot {
    let mut objects = vec![object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "ClusterPolicy", "metadata": {"name": "cluster", "creationSequence": 0},
        "spec": {"stonithEnabled": false, "defaultResourceStickiness": 100}}))];
    for node in 0..nodes {
        objects.push(object(
            json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Node", "metadata": {"name": node_name(node), "creationSequence": 1 + node}, "spec": {}}),
        ));
    }
    for rsc in 0..resources {
        let name = rsc_name(rsc);
        objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Resource", "metadata": {"name": name, "creationSequence": 10_000 + rsc},
            "spec": {"agent": "ocf:heartbeat:Dummy", "operations": [{"name": "monitor", "interval": "10s"}]}})));
        if rsc % 10 == 0 {
            objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Location", "metadata": {"name": format!("{name}-prefers"), "creationSequence": 100_000 + rsc},
                "spec": {"resource": name, "node": node_name(rsc % nodes), "score": 50}})));
        }
    }
    // One resource in five is in a group of five (members run together).
    for group in 0..resources / 25 {
        let members: Vec<String> = (0..5).map(|member| rsc_name(group * 25 + member)).collect();
        objects.push(object(
            json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Group", "metadata": {"name": format!("grp{group:04}"), "creationSequence": 200_000 + group},
            "spec": {"members": members}}),
        ));
    }
    objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Resource", "metadata": {"name": "everywhere", "creationSequence": 300_000},
        "spec": {"agent": "ocf:heartbeat:Dummy", "clone": {}}})));
    let mut observed = Observed { quorum: true, ..Observed::default() };
    for node in 0..nodes {
        observed.nodes.insert(node_name(node), ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes: Default::default() });
    }
    for rsc in 0..resources {
        // A group's members run where its first member does.
        let home = if rsc % 25 < 5 { (rsc - rsc % 25) % nodes } else { rsc % nodes };
        observed.history.push(ResourceHistory {
            resource: rsc_name(rsc),
            node: node_name(home),
            agent: Some("ocf:heartbeat:Dummy".into()),
            operations: started(1),
        });
        if rsc % 100 == 7
            && let Some(node) = observed.nodes.get_mut(&node_name(home))
        {
            node.attributes.insert(format!("fail-count-{}#monitor_10000", rsc_name(rsc)), "1".into());
        }
    }
    for node in 0..nodes {
        observed.history.push(ResourceHistory {
            resource: "everywhere".into(),
            node: node_name(node),
            agent: Some("ocf:heartbeat:Dummy".into()),
            operations: started(1),
        });
    }
    Snapshot { objects, observed, now: NOW }
}

/// The statuses node 0 keeps: every resource probed (stopped), the ones it runs started.
fn node_statuses(snapshot: &Snapshot, node: &str) -> Vec<ResourceStatus> {
    let running: std::collections::BTreeSet<&str> =
        snapshot.observed.history.iter().filter(|history| history.node == node).map(|history| history.resource.as_str()).collect();
    snapshot
        .objects
        .iter()
        .filter(|object| object.key().kind == pacer::api::Kind::Resource)
        .map(|object| {
            let name = object.name().as_str();
            let role = if running.contains(name) { "Started" } else { "Stopped" };
            serde_json::from_value(json!({"id": name, "name": name, "node": node, "role": role, "definition": {"agent": "ocf:heartbeat:Dummy"}, "history": []}))
                .expect("a status")
        })
        .collect()
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let (nodes, resources) = std::env::var("PACER_BENCH_METRICS_SIZE")
        .ok()
        .and_then(|size| size.split_once('x').and_then(|(nodes, resources)| Some((nodes.trim().parse().ok()?, resources.trim().parse().ok()?))))
        .unwrap_or((1000, 10_000));
    let rounds = 10;
    let snapshot = generate(nodes, resources);
    let started = Instant::now();
    let plan = schedule(&snapshot);
    let schedule_ms = started.elapsed().as_secs_f64() * 1000.0;
    let running =
        plan.resources.iter().filter(|resource| resource.current.iter().any(|placement| placement.role != pacer::api::resource::Role::Stopped)).count();
    assert!(running > resources, "the generated cluster runs: {running}");
    let statuses = node_statuses(&snapshot, &node_name(0));
    let objects = snapshot.objects.clone();

    let started = Instant::now();
    let state = std::sync::Arc::new(ClusterState::new(snapshot, plan, Some(NOW), String::new()));
    let state_ms = started.elapsed().as_secs_f64() * 1000.0;
    let registry = Registry::default();
    let mut report = String::new();
    let _ =
        writeln!(report, "scrape cost at {nodes} nodes x {resources} resources (+ a clone on every node); median of {rounds}; schedule {schedule_ms:.0} ms\n");
    let _ = writeln!(report, "{:<44} {:>10} {:>12} {:>10}", "what", "ms", "bytes", "series");
    let _ = writeln!(report, "{:<44} {:>10.2} {:>12} {:>10}", "leader: ClusterState::new (on its loop)", state_ms, "", "");
    for (format, name) in [(Format::Text, "text 0.0.4"), (Format::OpenMetrics, "OpenMetrics")] {
        let mut samples = Vec::new();
        let mut bytes = 0;
        let mut series = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            let body = render(&registry, Some(Box::new(ClusterCollector(state.clone()))), format).expect("render");
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
            series = body.lines().filter(|line| !line.starts_with('#')).count();
        }
        let _ = writeln!(report, "{:<44} {:>10.2} {:>12} {:>10}", format!("leader: render, {name} (off its loop)"), median_ms(samples), bytes, series);
    }
    let mut view_samples = Vec::new();
    let mut view = None;
    // As an agent holds the configuration: resources apart, looked up by name in its
    // watch cache (a map).
    let (resources, others): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|object| object.kind() == Kind::Resource);
    let resources: std::collections::HashMap<&str, &Object> = resources.into_iter().map(|object| (object.name().as_str(), object)).collect();
    let others: Vec<Object> = others.into_iter().cloned().collect();
    let resource = |name: &str| resources.get(name).copied();
    for _ in 0..rounds {
        let started = Instant::now();
        let facts = NodeFacts { node: "node0000", probed: true, shutting_down: false, assignment: None, objects: &others, resource: &resource };
        view = Some(node_view(facts, statuses.iter().map(|status| (status, None))));
        view_samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = writeln!(
        report,
        "{:<44} {:>10.2} {:>12} {:>10}",
        format!("agent: node_view, {} statuses (on its loop)", statuses.len()),
        median_ms(view_samples),
        "",
        ""
    );
    let view = view.expect("a view");
    let mut samples = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let body = render(&registry, Some(Box::new(NodeCollector(view.clone()))), Format::Text).expect("render");
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    let _ = writeln!(report, "{:<44} {:>10.2} {:>12} {:>10}", "agent: render, text 0.0.4 (off its loop)", median_ms(samples), bytes, "");
    print!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(target.join("bench-metrics.txt"), &report);
}
